"""The zoo: small implementations written the way other people write them, correct and buggy.

Each module of this package holds implementations in their authors' own styles (their own argument names
and layouts, fused projections, masks of either polarity, hand-written layer norms, einsum, ``.view`` head
splits) and, next to them, a list ``CASES`` of :class:`ZooCase`: how to audit each one
(``verify.audit.audit``) and what the audit must conclude. tests/verify/test_zoo.py runs them all.

The buggy ones reproduce real bug classes (:data:`BUG_CLASSES`); each case names the classes it exhibits
in ``tags`` and, for a bug, the checks that must catch it in ``caught_by``.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: The bug classes the zoo must cover (issue 4's list, and the spec's named variants they map to).
BUG_CLASSES: dict[str, str] = {
    "wrong_scale": "scores scaled by √d_e, √d_v or not at all instead of 1/√d_k",
    "softmax_axis": "softmax over the query axis instead of the keys",
    "causal_off_by_one": "causal mask hides the diagonal, or shows one future token",
    "mask_polarity": "a keep mask used as an ignore mask (or the other way round)",
    "mask_fill_1e4": "masked scores filled with −10⁴, which large scores beat",
    "heads_merge": "heads merged with .view/.reshape without moving the head axis",
    "ln_axis": "layer norm statistics over the wrong axis",
    "ln_bessel": "layer norm with Bessel's correction (unbiased variance) and ε outside the root",
    "ln_eps": "layer norm with an ε inside the root (the spec's eps variant)",
    "gelu_mixup": "GELU's tanh approximation where erf is specified, or the other way round",
    "sinusoid_indices": "sinusoidal table with wrong indices (2i vs i, sin/cos swapped, halves)",
    "lstm_gate_plus": "an LSTM gate added (+) where it multiplies (⊙)",
    "ppl_padding": "perplexity averaged over padding positions too",
    "label_shift": "next-token loss with the label shift off by one",
    "pre_post_ln_swap": "a post-LN block where pre-LN is specified (or the other way round)",
    "residual_normed": "the residual taken from the normalised input instead of the stream",
    "missing_bias": "an output (or every) bias left out",
    "fully_masked_row": "a query with every key masked gives NaN or uniform weights instead of 0",
    "mask_axis": "a per-key padding mask broadcast over the queries instead of the keys",
    "batch_pooling": "a batch loss pooled as a mean of per-sequence means where the tokens are pooled",
    "state_order": "a recurrent state returned or read in the wrong order ((c, h) for (h, c))",
    "logits_head": "a head returning logits where the equation's output is their softmax",
    "detached_weight": "a weight read through .detach() (or .data): right values, no gradient",
    "cross_attention_source": "a decoder's cross-attention reading its keys and values from the decoder",
    "decoder_unmasked": "a decoder's self-attention without its causal mask",
    "state_not_carried": "a recurrence whose every step starts from the initial state, not the last one",
    "extra_activation": "an FFN's activation applied to its output as well",
    "lengths_off_by_one": "a mask given as lengths that shows one padded key (<= for <)",
}


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return None if mapping is None else MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class ZooCase:
    """One zoo entry: the target, how to audit it, and the audit's expected conclusion.

    ``verdict`` is "pass", "variant" or "fail"; ``matched`` the variants/conventions the audit must report
    (exactly, as a set); ``caught_by`` the checks that must fail (a bug's fingerprint); ``tags`` the bug
    classes it exhibits (empty for a correct implementation, unless it is a named variant of the spec).
    """

    name: str
    target: Callable | type
    as_: str
    verdict: str
    matched: tuple[str, ...] = ()
    layout: str | None = None
    mask: str | None = None
    init: Mapping[str, Any] | None = None
    params: Mapping[str, str] | None = None
    constants: Mapping[str, float] | None = None
    sizes: Mapping[str, int] | None = None
    derive: Mapping[str, str] | None = None
    pins: Mapping[str, Any] | None = None
    bug: str = ""
    tags: tuple[str, ...] = ()
    caught_by: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # further audit() keyword arguments
    #: why lmspec's inference (no layout) does not reach this case's verdict, where it does not: the case is
    #: then audited with its written layout; every other plain function is audited with none (issue 15)
    not_inferred: str = ""
    #: a failing composite's parts, each audited alone (audit.parts): path -> "pass", "fail" or "variant NAME"
    parts: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if self.verdict not in ("pass", "variant", "fail"):
            raise ValueError(f"zoo case {self.name}: unknown verdict {self.verdict!r}")
        unknown = set(self.tags) - set(BUG_CLASSES)
        if unknown:
            raise ValueError(f"zoo case {self.name}: unknown bug classes {sorted(unknown)}")
        if self.verdict == "pass" and (self.matched or self.caught_by):
            raise ValueError(f"zoo case {self.name}: a passing case matches no variant and fails no check")
        if self.verdict == "variant" and not self.matched:
            raise ValueError(f"zoo case {self.name}: a variant verdict names what it matches")
        for name in ("init", "params", "constants", "sizes", "derive", "pins"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @property
    def correct(self) -> bool:
        """A correct implementation: it passes the base equation."""
        return self.verdict == "pass"

    @property
    def inferable(self) -> bool:
        """A plain function with no annotations and no constructor, or an nn.Module class: lmspec can infer
        its binding (audit.infer)."""
        import inspect

        import torch

        from lmspec.verify.audit.auditor import needs_inference

        if inspect.isclass(self.target) and issubclass(self.target, torch.nn.Module):
            return True
        return self.init is None and self.params is None and needs_inference(self.target)

    @property
    def inferred(self) -> bool:
        """Audited with no layout, mask or pins: lmspec works out the binding."""
        return self.inferable and not self.not_inferred

    def audit_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``verify.audit.audit`` for this case (target and profile aside); none of
        the binding's for a case whose binding is inferred."""
        out: dict[str, Any] = {"as_": self.as_}
        kept = ("constants", "sizes") if isinstance(self.target, type) else ("constants", "sizes", "derive")
        for name in kept if self.inferred else (*kept, "init", "params", "derive", "layout", "mask", "pins"):
            value = getattr(self, name)
            if value is not None:
                out[name] = dict(value) if isinstance(value, Mapping) else value
        out.update(self.extra)
        return out


def all_cases() -> list[ZooCase]:
    """Every case of every zoo module, in module order."""
    from . import (
        activation,
        attention,
        blocks,
        decoder,
        lm,
        losses,
        lstm,
        masks,
        mha,
        norm,
        positional,
        repos,
        tutorial,
    )

    cases: list[ZooCase] = []
    for module in (
        attention,
        mha,
        masks,
        norm,
        activation,
        positional,
        lstm,
        lm,
        losses,
        blocks,
        tutorial,
        decoder,
        repos,
    ):
        cases.extend(module.CASES)
    names = [c.name for c in cases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"zoo cases named twice: {duplicates}")
    return cases


__all__ = ["BUG_CLASSES", "ZooCase", "all_cases"]
