"""Language-model losses as training scripts write them: perplexity from F.cross_entropy with an
attention mask, and the next-token loss with its label shift. Audited against lm.perplexity and gpt2.loss
(the equation with the shift: column i of Ŷ is scored on token k_{i+1})."""

import torch
import torch.nn.functional as F
from torch import nn

from . import ZooCase

PPL = "logits:Z=b n v, labels:k=b n, attention_mask:keep=b n -> b"
NLL = "probs:Y_hat=b n v, input_ids:k=b n -> b"


def perplexity(logits, labels, attention_mask):
    """Per-sequence perplexity over the real tokens (attention_mask 1), padding left out."""
    nll = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")  # (b, n)
    mask = attention_mask.to(nll.dtype)
    return torch.exp((nll * mask).sum(-1) / mask.sum(-1))


def perplexity_counting_padding(logits, labels, attention_mask):
    """The mask is accepted but the mean runs over every position, padding included."""
    nll = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
    return nll.mean(dim=-1).exp()


def next_token_nll(probs, input_ids):
    """Σ_i −log p_i(token i+1): predictions 1..n−1 against tokens 2..n."""
    picked = probs[:, :-1].gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # (b, n − 1)
    return -picked.log().sum(-1)


def nll_without_shift(probs, input_ids):
    """Labels not shifted: position i is scored on its own token."""
    picked = probs.gather(-1, input_ids.unsqueeze(-1)).squeeze(-1)
    return -torch.log(picked).sum(-1)


def nll_shifted_backwards(probs, input_ids):
    """Shifted the wrong way: prediction i + 1 scored on token i."""
    picked = torch.gather(probs[:, 1:], 2, input_ids[:, :-1].unsqueeze(2)).squeeze(2)
    return -torch.log(picked).sum(dim=1)


class TokenEmbedding(nn.Module):
    """nanoGPT's ``wte``: a module fed token ids only (its weights are its own parameters)."""

    def __init__(self, vocab_size, n_embd):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)

    def forward(self, idx):
        return self.wte(idx)  # (B, T, n_embd)


class FrozenLookupEmbedding(TokenEmbedding):
    """Bug: the lookup reads a detached copy of the table, so the embedding never learns (its values are
    right; only the gradient, taken through the module's parameters, sees it)."""

    def forward(self, idx):
        return self.wte.weight.detach()[idx]


CASES = [
    ZooCase("perplexity_masked", perplexity, as_="lm.perplexity", layout=PPL, verdict="pass"),
    ZooCase("perplexity_counting_padding", perplexity_counting_padding, as_="lm.perplexity", layout=PPL,
            verdict="fail", bug="mean NLL over every position, padding included", tags=("ppl_padding",),
            caught_by=("value=oracle", "property:ignores_padding")),
    ZooCase("next_token_nll", next_token_nll, as_="gpt2.loss", layout=NLL, verdict="pass"),
    ZooCase("nll_without_shift", nll_without_shift, as_="gpt2.loss", layout=NLL, verdict="fail",
            bug="labels not shifted: column i scored on k_i", tags=("label_shift",),
            caught_by=("value=oracle", "property:shifted_loss")),
    ZooCase("nll_shifted_backwards", nll_shifted_backwards, as_="gpt2.loss", layout=NLL, verdict="fail",
            bug="column i+1 scored on k_i", tags=("label_shift",),
            caught_by=("value=oracle", "property:shifted_loss")),
    ZooCase("nanogpt_token_embedding", TokenEmbedding, as_="lm.embedding", verdict="pass",
            init={"vocab_size": "v", "n_embd": "d_e"}, params={"wte.weight": "E -> v d_e"},
            layout="idx:k=b n -> b n d_e"),
    ZooCase("embedding_detached_weight", FrozenLookupEmbedding, as_="lm.embedding", verdict="fail",
            init={"vocab_size": "v", "n_embd": "d_e"}, params={"wte.weight": "E -> v d_e"},
            layout="idx:k=b n -> b n d_e", bug="the table is read detached: no gradient reaches it",
            tags=("detached_weight",), caught_by=("gradient",)),
]  # fmt: skip


def sampling_distribution(logits, temperature=1.0):
    """nanoGPT's generate, one step: the last position's logits over the temperature, then their softmax."""
    logits = logits / temperature
    return F.softmax(logits, dim=-1)


def bigram_loss(logits, targets):
    """The "GPT from scratch" bigram model's loss: (B, T, C) logits flattened, no ignore index named."""
    B, T, C = logits.shape
    return F.cross_entropy(logits.view(B * T, C), targets.view(B * T))


CASES += [
    ZooCase("sampling_temperature", sampling_distribution, as_="lm.temperature", verdict="pass"),
    ZooCase("bigram_cross_entropy", bigram_loss, as_="lm.cross_entropy", verdict="pass"),
]


class WordLanguageModel(nn.Module):
    """pytorch/examples' word_language_model (RNN_TANH, one layer): an Embedding, a sequence-first nn.RNN and
    a Linear decoder, its output flattened to (n·b, ntoken) log-probabilities (for NLLLoss); the initial
    ``hidden`` state it requires is None (nn.RNN's zeros), the spec's h_0 = 0."""

    def __init__(self, ntoken, ninp, nhid, dropout=0.5):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.RNN(ninp, nhid, 1, nonlinearity="tanh")
        self.decoder = nn.Linear(nhid, ntoken)

    def forward(self, input, hidden):  # noqa: A002 - its names, which inference reads (hidden: None)
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        decoded = self.decoder(self.drop(output)).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden


CASES += [
    # sequence-first, as its nn.RNN says (its (n, b) ids fit (b, n) too); softmax of its log-probs is Ŷ
    ZooCase("word_language_model", WordLanguageModel, as_="rnn.output", verdict="variant",
            matched=("returns logits",), bug="log-probabilities where the equation's output is Ŷ",
            tags=("logits_head",), caught_by=("value=oracle",)),
]  # fmt: skip
