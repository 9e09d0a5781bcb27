"""Losses and recurrent steps as training code writes them: labels shifted inside, padding marked in the
labels (``ignore_index``), one value for the batch, the state passed and returned as a tuple, a module
built from a config object.

Styles: nanoGPT's ``F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-1)`` (targets
already shifted), Hugging Face's causal-LM loss (labels are the input ids, shifted inside, −100 at padding),
a batch perplexity, and the bugs such code has: a mean of per-sequence means, padding counted in the
denominator, the shift the wrong way round. An LSTM cell in the PyTorch-tutorial style, ``forward(x,
state)`` returning ``h, (h, c)``; a block built from a GPT-style ``Config`` dataclass and from a factory.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import ZooCase

CE = "lm.cross_entropy"
FLAT = "logits:Z=b n v, targets:k=b n -> loss=()"
SHIFTED = "logits:Z=b n v, labels:k=b n -> loss=()"
# what a user would write (--labels shift --ignore-index -100 --pool tokens): lmspec reads it from the code
HF = {"layout": SHIFTED}


def nanogpt_loss(logits, targets):
    """nanoGPT's GPT.forward: targets already shifted, −1 where nothing is predicted."""
    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)


def causal_lm_loss(logits, labels):
    """Hugging Face's ForCausalLMLoss: shift inside, −100 at padding, one mean over the batch's tokens."""
    shift_logits = logits[..., :-1, :].contiguous()
    shift_labels = labels[..., 1:].contiguous()
    return F.cross_entropy(
        shift_logits.view(-1, shift_logits.size(-1)), shift_labels.view(-1), ignore_index=-100
    )


def batch_perplexity(logits, labels):
    """exp of the causal-LM loss: the batch's perplexity."""
    return torch.exp(causal_lm_loss(logits, labels))


def mean_of_means(logits, labels):
    """Bug: each sequence's mean loss, then their mean; uneven padding weighs tokens unequally."""
    logits, labels = logits[:, :-1], labels[:, 1:]
    per_token = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    kept = (labels != -100).float()
    return ((per_token * kept).sum(-1) / kept.sum(-1)).mean()


def padding_in_denominator(logits, targets):
    """Bug: the sum over kept tokens divided by every position, padding included."""
    per_token = F.cross_entropy(logits.transpose(1, 2), targets.clamp(min=0), reduction="none")
    kept = (targets != -1).float()
    return (per_token * kept).sum() / kept.numel()


def detached_logits_loss(logits, targets):
    """Bug: the loss is computed on detached logits (a value for logging used for training): right value,
    no gradient reaches the model."""
    flat = logits.detach().view(-1, logits.size(-1))
    return F.cross_entropy(flat, targets.view(-1), ignore_index=-1) + 0.0 * logits.sum()


def reversed_shift(logits, labels):
    """Bug: the shift the wrong way round (column i+1 scored on id i)."""
    return F.cross_entropy(
        logits[:, 1:].reshape(-1, logits.size(-1)), labels[:, :-1].reshape(-1), ignore_index=-100
    )


class LSTMCell(nn.Module):
    """The PyTorch-tutorial LSTM cell: one projection of x and one of h into the four gates (i, f, g, o),
    the state passed and returned as a tuple."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.x2h = nn.Linear(input_size, 4 * hidden_size)
        self.h2h = nn.Linear(hidden_size, 4 * hidden_size, bias=False)

    def forward(self, x, state):
        h, c = state
        i, f, g, o = (self.x2h(x) + self.h2h(h)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class ConcatLSTMCell(nn.Module):
    """The from-scratch style: one Linear on ``cat([x, h])``, its weight ``[W | U]`` for each gate."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.gates = nn.Linear(input_size + hidden_size, 4 * hidden_size)

    def forward(self, x, h, c):
        i, f, g, o = self.gates(torch.cat([x, h], dim=-1)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class ConcatLSTMCellForgetAdded(ConcatLSTMCell):
    """Bug: the forget gate added to the cell state instead of multiplying it."""

    def forward(self, x, h, c):
        i, f, g, o = self.gates(torch.cat([x, h], dim=-1)).chunk(4, dim=-1)
        c = torch.sigmoid(f) + c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class SwappedStateLSTMCell(LSTMCell):
    """Bug: returns the state as (c, h), the order torch.nn.LSTM does not use."""

    def forward(self, x, state):
        h, (h, c) = super().forward(x, state)
        return h, (c, h)


@dataclass
class Config:
    """A GPT-style config object."""

    n_embd: int
    dropout: float = 0.1
    bias: bool = True


class ConfigLayerNorm(nn.Module):
    """nanoGPT's LayerNorm, built from a config: ``LayerNorm(config)``."""

    def __init__(self, config):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(config.n_embd))
        self.bias = nn.Parameter(torch.zeros(config.n_embd)) if config.bias else None

    def forward(self, input):  # noqa: A002 - nanoGPT's name
        return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)


def build_layer_norm(width):
    """A factory: what a model zoo's ``create_model`` does."""
    return ConfigLayerNorm(Config(n_embd=width))


class LMHead(nn.Module):
    """A GPT's ``lm_head``: returns the logits, where gpt2.lm_head's output is their softmax."""

    def __init__(self, vocab_size, n_embd):
        super().__init__()
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)

    def forward(self, x):
        return self.lm_head(x)


class FlatLMHead(LMHead):
    """A head that returns ``logits.view(-1, vocab)``: (batch · tokens, vocab), ready for F.cross_entropy."""

    def forward(self, x):
        logits = self.lm_head(x)
        return logits.view(-1, logits.size(-1))


HEAD = {
    "init": {"vocab_size": "v", "n_embd": "d_e"},
    "params": {"lm_head.weight": "E -> v d_e"},
    "layout": "x:H=b n d_e -> b n v",
}

LSTM_PARAMS = {
    "x2h.weight": "W_i, W_f, W_c, W_o -> (4 d_h) d_e",
    "x2h.bias": "b_i, b_f, b_c, b_o -> (4 d_h)",
    "h2h.weight": "U_i, U_f, U_c, U_o -> (4 d_h) d_h",
}
LSTM = {
    "layout": "x:x_t=b d_e, state=(h_prev=b d_h, c_prev=b d_h) -> _, (h_t=b d_h, c_t=b d_h)",
    "init": {"input_size": "d_e", "hidden_size": "d_h"},
    "params": LSTM_PARAMS,
}
CONCAT = {
    "layout": "x:x_t=b d_e, h:h_prev=b d_h, c:c_prev=b d_h -> h_t=b d_h, c_t=b d_h",
    "init": {"input_size": "d_e", "hidden_size": "d_h"},
    "params": {
        "gates.weight": "W_i | U_i, W_f | U_f, W_c | U_c, W_o | U_o -> (4 d_h) d_e+d_h",
        "gates.bias": "b_i, b_f, b_c, b_o -> (4 d_h)",
    },
}
LN = {
    "layout": "input:H=b n d_e -> b n d_e",
    "params": {"weight": "alpha", "bias": "beta"},
    "constants": {"eps": 1e-5},
}

CASES = [
    ZooCase("loss_nanogpt", nanogpt_loss, as_=CE, layout=FLAT, verdict="pass"),
    ZooCase("loss_causal_lm", causal_lm_loss, as_=CE, verdict="pass", **HF),
    ZooCase("loss_batch_perplexity", batch_perplexity, as_="lm.perplexity", verdict="pass",
            **{**HF, "layout": "logits:Z=b n v, labels:k=b n -> ()"}),
    ZooCase("loss_mean_of_means", mean_of_means, as_=CE, verdict="variant", matched=("pooled as mean",),
            # at the quick profile's four small examples, the oracle check misses it under seed 0 (every
            # sequence drew the same number of padded labels: the two means agree); seeds 1-9 catch it
            # there too. The larger examples of value=generated and the gradient catch it under seeds 0-9.
            bug="a mean of per-sequence means", tags=("batch_pooling",),
            caught_by=("value=generated", "gradient"), **HF),
    ZooCase("loss_padding_in_denominator", padding_in_denominator, as_=CE, layout=FLAT,
            verdict="variant", matched=("mean_over_all",), bug="padding counted in the mean's denominator",
            tags=("ppl_padding",), caught_by=("value=oracle",)),
    ZooCase("loss_detached_logits", detached_logits_loss, as_=CE, layout=FLAT, verdict="fail",
            bug="the loss of detached logits: no gradient", tags=("detached_weight",),
            caught_by=("gradient",)),
    ZooCase("loss_reversed_shift", reversed_shift, as_=CE, verdict="fail",
            bug="the shift the wrong way round", tags=("label_shift",), caught_by=("value=oracle",), **HF),
    ZooCase("head_logits", LMHead, as_="gpt2.lm_head", verdict="pass", extra={"logits": True}, **HEAD),
    ZooCase("head_logits_unstated", LMHead, as_="gpt2.lm_head", verdict="variant",
            matched=("returns logits",), bug="logits where the equation's output is their softmax",
            tags=("logits_head",), caught_by=("value=oracle",), **HEAD),
    ZooCase("head_flattened_logits", FlatLMHead, as_="gpt2.lm_head", verdict="pass", extra={"logits": True},
            **{**HEAD, "layout": "x:H=b n d_e -> (b n) v"}),
    ZooCase("lstm_cell_tuple_state", LSTMCell, as_="lstm.hidden", verdict="pass", **LSTM),
    ZooCase("lstm_cell_state_swapped", SwappedStateLSTMCell, as_="lstm.hidden", verdict="fail",
            bug="the returned state is (c, h)", tags=("state_order",), caught_by=("value=oracle",), **LSTM),
    ZooCase("lstm_cell_concatenated_weights", ConcatLSTMCell, as_="lstm.hidden", verdict="pass", **CONCAT),
    ZooCase("lstm_cell_forget_added", ConcatLSTMCellForgetAdded, as_="lstm.hidden", verdict="fail",
            bug="c = σ(f) + c + …: the forget gate added", tags=("lstm_gate_plus",),
            caught_by=("value=oracle",), **CONCAT),
    ZooCase("ln_config_object", ConfigLayerNorm, as_="norm.layer_norm[eps]", verdict="pass",
            init={"config": "Config(n_embd=d_e, bias=True)"}, **LN),
    ZooCase("ln_factory", build_layer_norm, as_="norm.layer_norm[eps]", verdict="pass",
            init={"width": "d_e"}, **LN),
]  # fmt: skip
