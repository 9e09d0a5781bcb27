"""Axes patterns: how one tensor is laid out in a target, and moving arrays between that layout and the
spec's.

A pattern (``"b h n d_k"``, ``"... n (M d_k)"``) names the target's axes in its order: glossary names of the
symbol's spec axes, batch names before them (``...`` for any number), a parenthesised group for one axis
holding several (heads side by side). ``parse_axes`` reads one, ``resolve`` maps it onto a symbol's spec
axes, and a ``PatternLayout`` converts arrays both ways (audit.layout reads the layout strings that are made
of patterns).
"""

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp
import torch

from ...spec.axes import GLOSSARY
from .._errors import BindingError
from ..binding import _AXIS_LOCALS, convert_mask, is_key_mask, key_vector, same_size

_TOKEN = re.compile(r"\(|\)|\.\.\.|[^\s()]+")


@dataclass(frozen=True)
class Pattern:
    """Parsed axes: leading batch names (or variadic) and target axes, each a group of spec axis names."""

    text: str
    batch: int | None  # number of leading batch axes; None for "..."
    groups: tuple[tuple[str, ...], ...]


def parse_axes(text: str, where: str) -> Pattern:
    """Parse ``b h n d_k`` / ``... n (M d_k)`` / ``()``."""
    tokens = _TOKEN.findall(text.strip())
    if tokens == ["(", ")"]:
        return Pattern(text, 0, ())
    groups: list[tuple[str, ...]] = []
    current: list[str] | None = None
    for tok in tokens:
        if tok == "(":
            if current is not None:
                raise BindingError(f"{where}: nested parentheses in {text!r}")
            current = []
        elif tok == ")":
            if not current:
                raise BindingError(f"{where}: an empty or unopened group in {text!r}")
            groups.append(tuple(current))
            current = None
        elif current is not None:
            current.append(tok)
        else:
            groups.append((tok,))
    if current is not None:
        raise BindingError(f"{where}: an unclosed parenthesis in {text!r}")
    return Pattern(text, None, tuple(groups))


def _is_axis(token: str, axes: Sequence[sp.Expr]) -> bool:
    if token.isdigit():
        return True
    try:
        expr = _expr(token)
    except (sp.SympifyError, TypeError, SyntaxError):
        return False
    return any(same_size(expr, a) for a in axes)


@functools.cache
def _expr(tok: str) -> sp.Expr:
    """An axis name or expression of a layout (parsed once: layouts repeat the same few names)."""
    return sp.Integer(int(tok)) if tok.isdigit() else sp.sympify(tok, locals=_AXIS_LOCALS)


def _find(free: list[int], axes: Sequence[sp.Expr], expr: sp.Expr) -> int | None:
    return next((k for k in free if same_size(axes[k], expr)), None)


def _readable(tok: str) -> bool:
    try:
        _expr(tok)
        return True
    except (sp.SympifyError, TypeError, SyntaxError):
        return False


@dataclass(frozen=True)
class Resolved:
    """A pattern against a symbol's spec axes.

    ``factors[s]`` are the target axes spec axis s is split into (usually one: itself); the "virtual" axes
    are these factors in spec order. ``entries`` are the target's axes: ``("batch", k)`` for its k-th batch
    axis or ``("axes", (virtual indices…))`` for spec axes (a group of several is one target axis).
    ``batch`` counts the batch axes (None: "...", any number, leading).
    """

    factors: tuple[tuple[sp.Expr, ...], ...]
    entries: tuple[tuple[str, object], ...]
    batch: int | None


def resolve(pattern: Pattern, axes: Sequence[sp.Expr], names: Sequence[str], where: str, batch_ok: bool):
    """Map the pattern's names to the symbol's spec axes (see Resolved)."""
    groups = list(pattern.groups)
    variadic = bool(groups) and groups[0] == ("...",)
    if variadic:
        groups = groups[1:]
    if any("..." in group for group in groups):
        raise BindingError(f"{where}: '...' must come first in {pattern.text!r}")
    free = list(range(len(axes)))
    factors: dict[int, tuple[sp.Expr, ...]] = {}
    raw: list[tuple[str, object]] = []  # ("batch", None) | ("spec", [(spec axis, factor k)])
    batch_names: list[str] = []  # for the message when an axis is left out
    k = 0
    while k < len(groups):
        group = groups[k]
        if "..." in group:
            raise BindingError(f"{where}: '...' must come first in {pattern.text!r}")
        if len(group) > 1:  # one target axis holding several spec axes, or one spec axis that is a product
            whole = (
                _find(free, axes, sp.Mul(*(_expr(t) for t in group))) if all(map(_readable, group)) else None
            )
            if whole is not None:
                factors[whole] = (axes[whole],)
                free.remove(whole)
                raw.append(("spec", [(whole, 0)]))
                k += 1
                continue
            members = []
            flattened = False  # a batch axis flattened into a spec axis: logits.view(-1, v) is "(b n) v"
            for tok in group:
                hit = _find(free, axes, _expr(tok)) if _readable(tok) else None
                if hit is None and batch_ok and not variadic and tok not in GLOSSARY and tok.isidentifier():
                    members.append(("batch", tok))
                    batch_names.append(tok)
                    flattened = True
                    continue
                if hit is None:
                    raise BindingError(
                        f"{where}: axis {tok!r} in {pattern.text!r} is not a (remaining) axis of this symbol "
                        f"(its axes: {', '.join(names)})"
                    )
                factors[hit] = (axes[hit],)
                free.remove(hit)
                members.append((hit, 0))
            raw.append(("mixed" if flattened else "spec", members))
            k += 1
            continue
        tok = group[0]
        hit = _find(free, axes, _expr(tok)) if _readable(tok) else None
        if hit is not None:
            factors[hit] = (axes[hit],)
            free.remove(hit)
            raw.append(("spec", [(hit, 0)]))
            k += 1
            continue
        # several single axes holding one spec axis between them (W_O's M·d_v as M, d_v)?
        split = None
        if _readable(tok):
            run: list[str] = []
            for nxt in groups[k:]:
                if len(nxt) != 1 or not _readable(nxt[0]):
                    break
                run.append(nxt[0])
                if len(run) > 1:
                    s_hit = _find(free, axes, sp.Mul(*(_expr(t) for t in run)))
                    if s_hit is not None:
                        split = (s_hit, run)
                        break
        if split is not None:
            s_hit, run = split
            factors[s_hit] = tuple(_expr(t) for t in run)
            free.remove(s_hit)
            raw.extend(("spec", [(s_hit, j)]) for j in range(len(run)))
            k += len(run)
            continue
        leading = all(kind == "batch" for kind, _ in raw)
        if not batch_ok or variadic or (not leading and tok in GLOSSARY):
            raise BindingError(
                f"{where}: {tok!r} in {pattern.text!r} is not an axis of this symbol "
                f"(its axes: {', '.join(names)})"
            )
        raw.append(("batch", None))
        batch_names.append(tok)
        k += 1
    if free:
        missing = ", ".join(names[i] for i in free)
        read = f" (read {', '.join(batch_names)} as batch axes)" if batch_names else ""
        raise BindingError(f"{where}: {pattern.text!r} leaves out the axes {missing}{read}")
    ordered = tuple(factors[i] for i in range(len(axes)))
    offset = [0]
    for f in ordered:
        offset.append(offset[-1] + len(f))
    entries, nb = [], 0
    for kind, what in raw:
        if kind == "batch":
            entries.append(("batch", nb))
            nb += 1
        elif kind == "mixed":  # one target axis of batch and spec axes: ("b", k) and ("v", virtual index)
            parts = []
            for s, j in what:
                if s == "batch":
                    parts.append(("b", nb))
                    nb += 1
                else:
                    parts.append(("v", offset[s] + j))
            entries.append(("mixed", tuple(parts)))
        else:
            entries.append(("axes", tuple(offset[s] + j for s, j in what)))
    return Resolved(ordered, tuple(entries), None if variadic else nb)


def axis_names(axes: Sequence[sp.Expr]) -> list[str]:
    """The spec axes as a layout string names them (``M*d_k`` → ``M·d_k``)."""
    return [str(a).replace("*", "·") for a in axes]


@dataclass(frozen=True)
class PatternLayout:
    """One argument or result laid out by a pattern (the layout-string counterpart of binding.Layout)."""

    name: str | None  # spec ASCII name; None for an ignored result
    param: str
    annotation: str
    dtype: str  # "float", "int", "bool"
    resolved: Resolved | None
    batched: bool
    decl: object = None
    convention: str | None = None
    additive_spec: bool = False
    optional: bool = False
    #: the drawn batch axes are the target's first ones, the rest of its batch axes 1 (a target with a
    #: per-key mask ``b n`` beside ``q=b h n d_k``: the mask's b is q's b, not its h); else its last ones
    lead_batch: bool = False
    #: the position of this tensor inside a tuple argument (``state=(h, c)``), or None for a plain one
    slot: int | None = None
    #: where a result sits in a nested return (``out, (h, c)``: ``(1, 0)`` is h), or None for a flat one
    path: tuple[int, ...] | None = None
    #: the spec-layout value this argument receives, from the example, when it is not the symbol's own
    #: (labels built from k and κ: audit.losses); None for ``example[name]``
    source: object = None
    #: a result pooled over the batch (one value for the whole batch: audit.losses), read without batch axes
    pooled: bool = False
    #: a result returned as logits where the spec's output is a probability distribution (a model's head
    #: before its softmax): read back through a softmax over the distribution's axis
    logits: bool = False

    needs_sizes = True  # to_impl takes the sizes (split axes)

    def _pad(self, batch: tuple[int, ...], nb: int) -> tuple[int, ...]:
        """The drawn batch shape padded with 1s to the target's ``nb`` batch axes."""
        ones = (1,) * (nb - len(batch))
        return (*batch, *ones) if self.lead_batch else (*ones, *batch)

    @property
    def target_batch(self) -> int | None:
        return self.resolved.batch if self.resolved else 0

    def _virtual(self, sizes: Mapping[str, int]) -> list[int]:
        from ..oracle import size_value

        return [size_value(f, sizes) for fs in self.resolved.factors for f in fs]

    def _order(self, nb: int) -> tuple[list[int], list[list[int]]]:
        """The target's axis order over the (batch…, virtual…) array; each target axis's members."""
        order, members = [], []
        for kind, what in self.resolved.entries:
            if kind == "mixed":
                idx = [i if part == "b" else nb + i for part, i in what]
            else:
                idx = [what] if kind == "batch" else [nb + v for v in what]
            order.extend(idx)
            members.append(idx)
        return order, members

    def _batch_count(self, bn: int) -> int:
        tb = self.resolved.batch
        if tb is None:
            return bn
        if bn > tb:  # the audit draws at most as many batch axes as the target takes
            raise BindingError(f"{self.param}: the target takes {tb} batch axes, not {bn}")
        return tb

    def to_impl(self, arr, batch_ndim: int, dtype: torch.dtype, device: str, sizes=None) -> torch.Tensor:
        arr = np.asarray(arr)
        bn = batch_ndim if self.batched else 0
        if is_key_mask(self.convention):  # a per-key mask: S's key row, laid out as the key axis alone
            arr = key_vector(arr, bn)
        nb = self._batch_count(bn) if self.batched else 0
        batch_shape = self._pad(tuple(arr.shape[:bn]), nb)
        virtual = self._virtual(sizes) if sizes is not None else list(arr.shape[bn:])
        expanded = arr.reshape((*batch_shape, *virtual))
        order, members = self._order(nb)
        if self.resolved.batch is None:  # "...": the batch axes lead, as they are
            order, members = list(range(nb)) + order, [[i] for i in range(nb)] + members
        moved = np.transpose(expanded, order)
        shape = [int(np.prod([expanded.shape[i] for i in m])) for m in members]
        data = np.ascontiguousarray(moved).reshape(shape)
        if self.convention is not None:
            return convert_mask(data, self.additive_spec, self.convention, dtype, device)
        t = torch.from_numpy(data)
        if self.dtype == "int":
            return t.to(torch.int64).to(device)
        if self.dtype == "bool":
            return (t > 0).to(device)
        return t.to(dtype=dtype, device=device)

    def from_impl(
        self, t: torch.Tensor, batch_ndim: int, sizes: Mapping[str, int] | None = None
    ) -> np.ndarray:
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t)
        t = t.detach().to("cpu")
        if self.convention is not None and not is_key_mask(self.convention):  # a returned mask, to the spec's
            t = torch.from_numpy(_spec_mask(t.numpy(), self.convention, self.additive_spec))
        arr = (t.double() if t.is_floating_point() else t).numpy().astype(np.float64)  # numpy has no bfloat16
        bn = batch_ndim if self.batched else 0
        nb = self._batch_count(bn) if self.batched else 0
        virtual = self._virtual(sizes or {})
        order, members = self._order(nb)
        if self.resolved.batch is None:
            order, members = list(range(nb)) + order, [[i] for i in range(nb)] + members
        # sizes of the padded (batch…, virtual…) axes: batch sizes are read from the result
        if arr.ndim != len(members):
            return arr  # the wrong shape: the comparison reports it
        full: dict[int, int] = {nb + i: v for i, v in enumerate(virtual)}
        for m, size in zip(members, arr.shape, strict=True):
            if len(m) == 1 and m[0] < nb:
                full[m[0]] = size
                continue
            unknown = [i for i in m if i not in full]  # a batch axis flattened with others: "(b n) v"
            known = int(np.prod([full[i] for i in m if i in full]))
            if len(unknown) == 1 and known and size % known == 0:
                full[unknown[0]] = size // known
            elif unknown or known != size:
                return arr
        expanded = arr.reshape([full[i] for m in members for i in m])
        back = np.transpose(expanded, np.argsort(order))
        lead = back.shape[:nb]
        ones, kept = (lead[bn:], lead[:bn]) if self.lead_batch else (lead[: nb - bn], lead[nb - bn :])
        if any(e != 1 for e in ones):
            return arr
        spec = [int(np.prod(self._factor_sizes(sizes or {}, s))) for s in range(len(self.resolved.factors))]
        out = back.reshape((*kept, *spec))
        return softmax(out, axis=len(kept)) if self.logits else out  # (a distribution's first spec axis)

    def _factor_sizes(self, sizes, s: int) -> list[int]:
        from ..oracle import size_value

        return [size_value(f, sizes) for f in self.resolved.factors[s]]


__all__ = ["Pattern", "PatternLayout", "Resolved", "axis_names", "parse_axes", "resolve"]


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """Softmax along ``axis``, in float64 (logits of −∞ get probability 0; a row of them, 0 everywhere)."""
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(x - top)
    total = e.sum(axis=axis, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def _spec_mask(arr: np.ndarray, convention: str, additive_spec: bool) -> np.ndarray:
    """A mask returned in ``convention`` (bool keep or ignore, 1/0 keep) as the spec writes it: additive
    0 / −∞, or keep 1 / 0."""
    if convention == "additive":
        keep = arr == 0
    elif convention == "bool_ignore":
        keep = ~(arr > 0)
    else:
        keep = arr > 0
    return np.where(keep, 0.0, -np.inf) if additive_spec else keep.astype(np.float64)
