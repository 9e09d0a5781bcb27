# ruff: noqa: F722
"""Built-in audit targets of what users call on a transformers language model (transformers 5.23): the losses
``GPT2LMHeadModel(input_ids, labels=input_ids).loss`` and ``BertForMaskedLM(input_ids, labels=...).loss``,
the sampling warpers ``TemperatureLogitsWarper`` and ``TopKLogitsWarper``, and one step of
``GPT2LMHeadModel.generate``.

The catalogue's losses take the model's distribution Ŷ, and ``gpt2.generate`` takes the final states H, not
token ids. So these built-ins run the real model class with its network — the part that makes the final
states from the ids (``GPT2LMHeadModel.transformer``, ``BertForMaskedLM.bert``) — replaced by a module that
returns the given states (``_GivenStates``): the model's own ``forward`` (its label handling and its loss)
and the generation loop (``GenerationMixin.generate``: logits processors, argmax or softmax) run unchanged
on them. For the losses the output layer is the identity too, so the model's logits are exactly log Ŷ; that
is honest because the losses only read the logits through a softmax over the vocabulary, and
softmax(log Ŷ) = Ŷ for a distribution Ŷ (log-softmax(log Ŷ)_k = log Ŷ_k − log Σ_j Ŷ_j = log Ŷ_k).

The losses are means (over the n − 1 predictions; over 𝓜), the spec's variants ``gpt2.loss[mean]`` and
``bert.mlm_loss[mean]`` (the tutorial sums). Two further differences are the library's by design, and the
built-ins declare them (audit.adapters._registry), each with a test on transformers itself in
tests/verify/test_adapters_lm.py:

- ``ForCausalLMLoss`` takes ``logits.float()`` and ``generate`` takes the last logits ``.to(float32)``
  whatever the model's dtype: a float64 model's loss and sampling distribution have float32's precision
  (``precision="float32"``: the float64 audit compares them at float32's tolerance, and says so);
- ``generate`` is decorated with ``@torch.no_grad()``: its scores carry no gradient (``no_gradient``: the
  gradient check is skipped with that reason).
"""

import functools
from collections.abc import Callable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from ._hf import _transformers, hf_config, rows
from ._registry import builtin

#: The label transformers' losses ignore (``ignore_index`` of ForCausalLMLoss and of CrossEntropyLoss).
IGNORE = -100


# --- a model whose network is given -------------------------------------------------------------------------
class _GivenStates(nn.Module):
    """Stands in for a model's network (``GPT2LMHeadModel.transformer``, ``BertForMaskedLM.bert``): returns
    the final states held in the buffer ``states`` (set per call through ``functional_call``) as the output
    class the model's forward reads, whatever the ids; the ids must have the states' leading shape."""

    def __init__(self, output_cls: type) -> None:
        super().__init__()
        self.output_cls = output_cls
        self.register_buffer("states", torch.zeros(0), persistent=False)

    def forward(self, input_ids: Tensor | None = None, *args, **kwargs):
        if input_ids is not None and tuple(input_ids.shape) != tuple(self.states.shape[:-1]):
            raise ValueError(
                f"the given final states have shape {tuple(self.states.shape)}; the model was called with "
                f"input_ids of shape {tuple(input_ids.shape)}, expected {tuple(self.states.shape[:-1])}"
            )
        return self.output_cls(last_hidden_state=self.states)


class _Generate(nn.Module):
    """``model.generate(input_ids, attention_mask=ones, **options)`` as a forward, so that
    ``functional_call`` can hand the model its states and output weight for the whole generation loop."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, **options):
        return self.model.generate(input_ids, attention_mask=torch.ones_like(input_ids), **options)


@functools.lru_cache(maxsize=32)
def _model(kind: str, v: int, d_e: int, device: str, dtype: torch.dtype) -> nn.Module:
    """The transformers model ``kind`` for vocabulary v (and width d_e), in eval mode, its network replaced by
    ``_GivenStates`` and, for the losses, its output layer by the identity. Built once per sizes, device and
    dtype (Hugging Face draws the discarded random weights without moving torch's global random stream)."""
    tf = _transformers()
    from transformers.modeling_outputs import (
        BaseModelOutputWithPastAndCrossAttentions as GPT2Output,
    )
    from transformers.modeling_outputs import (
        BaseModelOutputWithPoolingAndCrossAttentions as BertOutput,
    )

    gpt2 = dict(hf_config("gpt2", n_embd=d_e, n_head=1, n_layer=1, vocab_size=v))
    bert = dict(hf_config("bert", hidden_size=1, num_attention_heads=1, intermediate_size=1,
                          num_hidden_layers=1, vocab_size=v))  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        if kind == "GPT2LMHeadModel":  # the loss: logits = lm_head(transformer(...)) = log Ŷ
            model = tf.GPT2LMHeadModel(tf.GPT2Config(**gpt2))
            model.transformer, model.lm_head = _GivenStates(GPT2Output), nn.Identity()
        elif kind == "GPT2LMHeadModel.generate":  # lm_head (weight Eᵀ) on the given final states
            model = tf.GPT2LMHeadModel(tf.GPT2Config(**gpt2))
            model.transformer = _GivenStates(GPT2Output)
            model = _Generate(model)
        elif kind == "BertForMaskedLM":  # the loss: prediction_scores = cls(bert(...)[0]) = log Ŷ
            model = tf.BertForMaskedLM(tf.BertConfig(**bert))
            model.bert, model.cls = _GivenStates(BertOutput), nn.Identity()
        else:
            raise ValueError(f"hf_lm: unknown model {kind!r}")
    return model.to(device=device, dtype=dtype).eval()


def _loss_model(kind: str, logits: Tensor) -> nn.Module:
    """The loss model ``kind`` for logits (…, v) on their device and dtype."""
    return _model(kind, logits.shape[-1], 1, str(logits.device), logits.dtype)


# --- what the spec's tensors become (module-level, so a test can swap one for a wrong one) -----------------
def _logits(Y_hat: Tensor) -> Tensor:
    """Logits whose softmax over the vocabulary is Ŷ: log Ŷ."""
    return torch.log(Y_hat)


def _causal_labels(k: Tensor) -> Tensor:
    """GPT2LMHeadModel's labels: the sequence itself (it shifts them inside)."""
    return k


def _mlm_labels(k: Tensor, sel: Tensor) -> Tensor:
    """BertForMaskedLM's labels: the original ids on 𝓜, the ignored label −100 elsewhere."""
    return k.masked_fill(~sel.bool(), IGNORE)


def _lm_head_weight(E: Tensor) -> Tensor:
    """GPT-2's lm_head.weight (nn.Linear, v × d_e, logits = x @ weightᵀ) from E ∈ ℝ^{d_e×v}: Eᵀ."""
    return E.T


def _per_sequence(model: nn.Module, states: str, logits: Tensor, ids: Tensor, labels: Tensor) -> Tensor:
    """``model(input_ids=ids, labels=labels).loss`` for each sequence alone (a batch of one: transformers
    pools a batch into one value), the model's final states ``states`` set to that sequence's logits."""
    losses = []
    for z, t, y in zip(logits, ids, labels, strict=True):
        kwargs = {"input_ids": t[None], "labels": y[None]}
        losses.append(torch.func.functional_call(model, {states: z[None]}, (), kwargs, strict=False).loss)
    return torch.stack(losses)


# --- the losses ---------------------------------------------------------------------------------------------
@builtin(
    "transformers.GPT2LMHeadModel[labels]",
    "gpt2.loss[mean]",
    description=(
        "GPT2LMHeadModel(input_ids=k, labels=k).loss, one sequence at a time (a batch pools all its tokens "
        "into one mean), on a GPT2LMHeadModel whose logits are log Ŷ (its transformer returns log Ŷ as the "
        "final states and lm_head is the identity; softmax(log Ŷ) = Ŷ). Its forward calls "
        "self.loss_function = ForCausalLMLoss, which shifts the labels inside (column i scored on k_{i+1}, "
        "the last column on nothing) as the spec does, and takes the MEAN over the n − 1 predictions: "
        "gpt2.loss[mean] (the tutorial's sum / (n − 1); NaN at n = 1, where the sum is 0). "
        "ForCausalLMLoss computes in float32 whatever the model's dtype (logits = logits.float(), an "
        "upcast for float16/bfloat16 but a DOWNCAST for float64): the float64 audit compares at float32's "
        "tolerance (declared precision; without it, value=oracle and value=generated fail by float32's "
        "rounding, about 1e−7 relative)."
    ),
    mapping={
        "Y_hat": "logits = log Ŷ (n × v per sequence; softmax over the vocabulary gives back Ŷ)",
        "k": "input_ids and labels (shifted inside: labels[..., 1:], −100 after the last)",
        "loss": "output.loss: ForCausalLMLoss = F.cross_entropy(..., ignore_index=−100), mean over n − 1",
    },
    group="hf",
    precision="float32",
    precision_reason="transformers' ForCausalLMLoss takes logits.float()",
)
def _gpt2_lm_loss() -> Callable:
    def gpt2_lm_loss(
        Y_hat: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"]
    ) -> Float[Tensor, "*batch"]:
        logits, lead = rows(_logits(Y_hat))
        ids = k.reshape(-1, k.shape[-1])
        labels = _causal_labels(ids)
        model = _loss_model("GPT2LMHeadModel", logits)
        return _per_sequence(model, "transformer.states", logits, ids, labels).reshape(lead)

    return gpt2_lm_loss


@builtin(
    "transformers.BertForMaskedLM[labels]",
    "bert.mlm_loss[mean]",
    description=(
        "BertForMaskedLM(input_ids=k, labels=where(𝓜, k, −100)).loss, one sequence at a time (a batch "
        "pools all its selected tokens into one mean), on a BertForMaskedLM whose prediction scores are "
        "log Ŷ (its bert returns log Ŷ as the final states and its cls head is the identity; "
        "softmax(log Ŷ) = Ŷ). Its forward computes the loss inline: CrossEntropyLoss()(prediction_scores"
        ".view(−1, v), labels.view(−1)), no shift, in the model's dtype: the MEAN over 𝓜, "
        "bert.mlm_loss[mean] (the tutorial's sum / |𝓜|; NaN when 𝓜 is empty, where the sum is 0)."
    ),
    mapping={
        "Y_hat": "prediction_scores = log Ŷ (n × v per sequence)",
        "k": "input_ids; labels = k on 𝓜",
        "sel": "labels = −100 outside 𝓜 (CrossEntropyLoss's ignore_index)",
        "loss": "output.loss: CrossEntropyLoss(), mean over 𝓜",
    },
    group="hf",
)
def _bert_mlm_loss() -> Callable:
    def bert_mlm_loss(
        Y_hat: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"], sel: Bool[Tensor, "*batch n"]
    ) -> Float[Tensor, "*batch"]:
        scores, lead = rows(_logits(Y_hat))
        ids = k.reshape(-1, k.shape[-1])
        labels = _mlm_labels(ids, sel.reshape(ids.shape))
        model = _loss_model("BertForMaskedLM", scores)
        return _per_sequence(model, "bert.states", scores, ids, labels).reshape(lead)

    return bert_mlm_loss


# --- sampling: the warpers and one generation step ----------------------------------------------------------
def _no_ids(scores: Tensor) -> Tensor:
    """The ids a logits processor is called with (batch × 0): the warpers read only the scores."""
    return torch.empty((scores.shape[0], 0), dtype=torch.long, device=scores.device)


@builtin(
    "transformers.TemperatureLogitsWarper",
    "lm.temperature",
    description=(
        "TemperatureLogitsWarper(τ)(input_ids, z) returns the scores z / τ; the built-in takes their "
        "softmax over the vocabulary, as generate(do_sample=True) does before drawing "
        "(probs = softmax(next_token_scores, dim=−1)). τ is passed as float(τ): the warper refuses anything "
        "but a positive Python float."
    ),
    mapping={"z": "scores (batch × v)", "tau": "temperature", "p_tau": "softmax(warper(input_ids, z), −1)"},
    group="hf",
)
def _temperature() -> Callable:
    def temperature(z: Float[Tensor, "*batch v"], tau: float) -> Float[Tensor, "*batch v"]:
        scores, _ = rows(z, 1)
        warper = _transformers().TemperatureLogitsWarper(float(tau))
        return torch.softmax(warper(_no_ids(scores), scores), dim=-1).reshape(z.shape)

    return temperature


@builtin(
    "transformers.TopKLogitsWarper",
    "lm.top_k",
    description=(
        "TopKLogitsWarper(top_k=k)(input_ids, z): scores below the k-th largest (scores < topk(scores, "
        "k)[..., −1]) are set to filter_value = −∞, so every score tied with the k-th largest is kept, as "
        "the spec says; min_tokens_to_keep = 1 (the default: top_k = max(k, 1)). p_top is their softmax, "
        "as generate(do_sample=True) takes it."
    ),
    mapping={
        "z": "scores (batch × v)",
        "k_top": "top_k",
        "z_top": "warper(input_ids, z) (filter_value = −∞)",
        "p_top": "softmax(z_top, −1)",
    },
    group="hf",
)
def _top_k() -> Callable:
    def top_k(
        z: Float[Tensor, "*batch v"], k_top: int
    ) -> tuple[Float[Tensor, "*batch v"], Float[Tensor, "*batch v"]]:
        scores, _ = rows(z, 1)
        z_top = _transformers().TopKLogitsWarper(top_k=int(k_top))(_no_ids(scores), scores)
        return z_top.reshape(z.shape), torch.softmax(z_top, dim=-1).reshape(z.shape)

    return top_k


@builtin(
    "transformers.GPT2LMHeadModel.generate",
    "gpt2.generate",
    description=(
        "One step of GPT2LMHeadModel.generate (max_new_tokens=1) on a GPT2LMHeadModel whose transformer "
        "returns the given final states H (the prompt ids are placeholders: zeros of length n, attention "
        "mask all ones) and whose lm_head weight is Eᵀ: the real generation loop takes the last position's "
        "logits z = Eᵀ h_n and runs its logits processors. k̂ is the new token of "
        "generate(do_sample=False) (greedy: torch.argmax, ties to the lowest index); p is the softmax of "
        "the processed scores of generate(do_sample=True, temperature=τ, top_k=k, output_scores=True, "
        "return_dict_in_generate=True) — TemperatureLogitsWarper then TopKLogitsWarper, the distribution "
        "_sample draws from (the draw itself runs in a forked random stream). generate takes the last "
        "logits .to(float32) whatever the model's dtype, so a float64 model's p has float32's precision: "
        "the float64 audit compares at float32's tolerance (declared precision); and generate is decorated "
        "with @torch.no_grad(), so p carries no gradient: the gradient check is skipped (declared)."
    ),
    mapping={
        "H": "the final states GPT2LMHeadModel.transformer returns (last_hidden_state)",
        "E": "lm_head.weight = Eᵀ (v × d_e)",
        "tau": "generate(temperature=τ) (TemperatureLogitsWarper)",
        "k_top": "generate(top_k=k) (TopKLogitsWarper)",
        "k_next": "generate(do_sample=False).sequences[:, −1]",
        "p": "softmax(generate(do_sample=True, output_scores=True).scores[0], −1)",
    },
    group="hf",
    precision="float32",
    precision_reason="GenerationMixin._sample takes outputs.logits[:, −1].to(dtype=torch.float32)",
    no_gradient="GenerationMixin.generate is @torch.no_grad()",
)
def _generate() -> Callable:
    def generate(
        H: Float[Tensor, "*batch n d_e"], E: Float[Tensor, "d_e v"], tau: float, k_top: int
    ) -> tuple[Int[Tensor, "*batch"], Float[Tensor, "*batch v"]]:
        (d_e, v), (X, lead) = E.shape, rows(H)
        model = _model("GPT2LMHeadModel.generate", v, d_e, str(X.device), X.dtype)
        weights = {"model.transformer.states": X, "model.lm_head.weight": _lm_head_weight(E)}
        ids = torch.zeros(X.shape[:-1], dtype=torch.long, device=X.device)

        def run(**options):
            return torch.func.functional_call(model, weights, (ids,), {"max_new_tokens": 1, **options},
                                              strict=False)  # fmt: skip

        greedy = run(do_sample=False)
        devices = [X.device] if X.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the draw leaves torch's global random stream alone
            sampled = run(do_sample=True, temperature=float(tau), top_k=int(k_top), output_scores=True,
                          return_dict_in_generate=True)  # fmt: skip
        p = torch.softmax(sampled.scores[0], dim=-1)
        return greedy[:, -1].reshape(lead), p.reshape(*lead, v)

    return generate
