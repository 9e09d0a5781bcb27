"""Losses as code writes them: labels shifted inside, padding marked in the labels, one value for a batch.

The catalogue's losses take what the tutorial writes: logits Z, the ids k each column is scored on, a keep
vector κ (1 = a predicted position), and give one value per sequence. Training code passes other things:

- ``shift``: the target takes the sequence itself and scores column i on the next id (``logits[:, :-1]``
  against ``ids[:, 1:]``, as Hugging Face's GPT2LMHeadModel). The spec's k is then the sequence shifted by
  one and κ_n = 0 (the last column predicts nothing): the target receives ``roll(k, 1)``, whose first id is
  never scored, and every drawn κ has its last entry 0.
- ``ignore_index`` I: the target's labels carry I where κ = 0 (``F.cross_entropy(..., ignore_index=-100)``,
  a pad id): κ is not passed; the labels are ``where(κ, k, I)``. When I is itself an id (a pad id in
  [0, v)), kept positions never hold it.
- ``pool``: the target returns one value for the whole batch. ``tokens`` is the equation over every
  sequence's positions at once (one mean over all kept tokens: ``F.cross_entropy`` on flattened logits, a
  batch perplexity), ``sum`` the sum of the per-sequence values, ``mean`` their mean (a mean of
  per-sequence means).

A target that pools differently than stated (a mean of means where the tokens are pooled), counts padding in
a denominator or shifts the wrong way differs at batch > 1 with uneven padding, which the checks draw; the
diagnosis then tries the other poolings and names the one that matches.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ...spec import Equation, Kind
from .._errors import AuditError
from ..binding import spec_axes
from ..strategies import Example

#: How a target may pool a batch into one value (``--pool``), with what each means.
POOLS = {
    "tokens": "one value over every kept token of the batch (the equation on all sequences at once)",
    "sum": "the sum of the per-sequence values",
    "mean": "the mean of the per-sequence values (a mean of per-sequence means)",
}


@dataclass(frozen=True)
class Labels:
    """How a loss target takes its labels and pools its batch (see the module docstring)."""

    shift: bool = False
    ignore_index: int | None = None
    pool: str | None = None

    def __bool__(self) -> bool:
        return self.shift or self.ignore_index is not None or self.pool is not None

    def describe(self) -> list[str]:
        notes = []
        if self.shift:
            notes.append(
                "the target shifts its labels inside (column i scored on id i+1): it receives the sequence, "
                "the spec's k shifted by one with κ_n = 0"
            )
        if self.ignore_index is not None:
            notes.append(f"padding is marked in the labels as {self.ignore_index} (κ = 0), not passed as κ")
        if self.pool is not None:
            notes.append(f"the batch is pooled into one value: {self.pool}, {POOLS[self.pool]}")
        return notes


def check_labels(eq: Equation, labels: Labels) -> None:
    """The equation has what the options act on: an error naming what is missing."""
    names = {d.ascii: d for d in eq.inputs}
    if (labels.shift or labels.ignore_index is not None) and not (tokens_of(eq) and _keep(eq)):
        raise AuditError(
            f"--labels shift and --ignore-index act on token ids and a keep vector κ; {eq.id} takes "
            f"{', '.join(names) or 'no inputs'} (losses that take them: lm.cross_entropy, lm.perplexity)"
        )
    if labels.pool is not None:
        if labels.pool not in POOLS:
            raise AuditError(f"--pool {labels.pool}: expected one of {', '.join(POOLS)}")
        if labels.pool == "tokens" and not any("n" in _axis_names(d) for d in eq.inputs):
            raise AuditError(f"--pool tokens pools a sequence axis n, which {eq.id}'s inputs do not have")
        if not _pooled(eq):
            raise AuditError(f"--pool gives one value for the batch; {eq.id} has no scalar output to pool")


def _axis_names(decl) -> list[str]:
    return [str(a) for a in spec_axes(decl)]


def _pooled(eq: Equation) -> list[str]:
    """The outputs a pooled target can give: the scalar ones."""
    return [d.ascii for d in eq.outputs if d.is_scalar]


def tokens_of(eq: Equation) -> str | None:
    found = [d.ascii for d in eq.inputs if d.entry_kind == Kind.INDEX]
    return found[0] if len(found) == 1 else None


def _keep(eq: Equation) -> str | None:
    found = [d.ascii for d in eq.inputs if d.entry_kind == Kind.MASK]
    return found[0] if len(found) == 1 else None


def missing_ok(eq: Equation, labels: Labels) -> set[str]:
    """Spec inputs the target does not take: κ when it is carried by the labels or fixed by the shift."""
    keep = _keep(eq)
    return {keep} if keep and (labels.shift or labels.ignore_index is not None) else set()


def transform(eq: Equation, labels: Labels) -> Callable[[Example], Example] | None:
    """The change every drawn example undergoes: κ_n = 0 under a shift (κ = 1 before it when κ is not
    passed at all), kept ids moved off an ignore index that is itself an id."""
    keep, tokens = _keep(eq), tokens_of(eq)
    if not (labels.shift or labels.ignore_index is not None) or keep is None or tokens is None:
        return None

    def apply(ex: Example) -> Example:
        arrays = dict(ex.arrays)
        kappa = np.array(arrays[keep], dtype=np.float64)
        if labels.ignore_index is None:  # nothing marks padding: every position before the last is kept
            kappa = np.ones_like(kappa)
        if labels.shift:
            kappa[..., -1] = 0.0
        arrays[keep] = kappa
        v = int(ex.sizes.get("v", 0))
        ids = np.array(arrays[tokens])
        if labels.ignore_index is not None and 0 <= labels.ignore_index < v and v > 1:
            clash = (kappa > 0) & (ids == labels.ignore_index)
            ids = np.where(clash, (labels.ignore_index + 1) % v, ids)
        arrays[tokens] = ids
        return ex._replace(arrays=arrays)

    apply.shifts = labels.shift  # type: ignore[attr-defined]  # (audit.context.inapplicable reads it)
    return apply


def label_source(eq: Equation, labels: Labels) -> Callable[[Mapping], np.ndarray] | None:
    """The ids the target's label argument receives, from the spec's k and κ."""
    keep, tokens = _keep(eq), tokens_of(eq)
    if not (labels.shift or labels.ignore_index is not None) or keep is None or tokens is None:
        return None

    def source(example: Mapping) -> np.ndarray:
        ids = np.asarray(example[tokens])
        if labels.ignore_index is not None:
            ids = np.where(np.asarray(example[keep]) > 0, ids, labels.ignore_index)
        if labels.shift:  # id i+1 of the sequence is the spec's k_i; the first is never scored
            ids = np.roll(ids, 1, axis=-1)
        return ids

    return source


def expect(eq: Equation, pool: str | None) -> Callable[[Callable, Example], dict] | None:
    """The reference's outputs pooled over the batch as the target pools it."""
    if pool is None:
        return None
    outputs = _pooled(eq)

    def pooled(reference: Callable, ex: Example) -> dict:
        nb = len(ex.batch)
        if pool == "tokens":
            arrays, sizes = _all_at_once(eq, ex)
            out = reference(arrays, sizes)
            return {k: np.asarray(out[k]) for k in outputs}
        out = reference(ex.arrays, ex.sizes)
        reduce = np.sum if pool == "sum" else np.mean
        axes = tuple(range(nb))
        return {k: np.asarray(reduce(np.asarray(out[k]), axis=axes)) for k in outputs}

    pooled.pool = pool  # type: ignore[attr-defined]  # (audit.checks.gradient_check reads it)
    return pooled


def pooled_vjp(eq: Equation, pool: str, vjp: Callable, ex: Example, cot: Mapping[str, float]) -> dict:
    """The reference's vector-Jacobian product for a target that pools its batch into one value: the
    cotangent of the pooled value spread over the batch (``sum``: each sequence gets it, ``mean``: a B-th
    of it), or, for ``tokens``, the product of the equation over all positions at once carried back to each
    sequence's positions."""
    nb = len(ex.batch)
    count = int(np.prod(ex.batch)) if nb else 1
    if pool in ("sum", "mean"):
        share = 1.0 if pool == "sum" else 1.0 / count
        spread = {k: np.full(ex.batch, float(c) * share) for k, c in cot.items()}
        return vjp(ex.arrays, ex.sizes, spread)
    arrays, sizes = _all_at_once(eq, ex)
    grads = vjp(arrays, sizes, {k: np.asarray(c, dtype=np.float64) for k, c in cot.items()})
    out = {}
    for name, g in grads.items():
        d = eq.declared(name)
        names = _axis_names(d)
        if d not in eq.inputs or "n" not in names:
            out[name] = g
            continue
        k = names.index("n")  # undo _all_at_once: (…, B·n, …) → (…, B, n, …) → (B, …, n, …)
        g = np.asarray(g)
        split = g.reshape((*g.shape[:k], count, ex.sizes["n"], *g.shape[k + 1 :]))
        out[name] = np.moveaxis(split, k, 0).reshape((*ex.batch, *np.shape(ex.arrays[name])[nb:]))
    return out


def _all_at_once(eq: Equation, ex: Example) -> tuple[dict, dict]:
    """The example's sequences laid end to end: every per-example input's axis n holds the batch's
    positions in turn (batch element 0's, then 1's …), and n is the total."""
    nb = len(ex.batch)
    count = int(np.prod(ex.batch)) if nb else 1
    arrays = {}
    for d in (*eq.inputs, *eq.params):
        arr = np.asarray(ex.arrays[d.ascii])
        names = _axis_names(d)
        if d not in eq.inputs or "n" not in names:
            arrays[d.ascii] = arr
            continue
        k = names.index("n")
        flat = arr.reshape((count, *arr.shape[nb:]))  # (B, …, n, …)
        moved = np.moveaxis(flat, 0, k)  # (…, B, n, …): B then n, so that they merge in that order
        shape = moved.shape
        arrays[d.ascii] = moved.reshape((*shape[:k], shape[k] * shape[k + 1], *shape[k + 2 :]))
    sizes = {**ex.sizes, "n": ex.sizes["n"] * count}
    return arrays, sizes


__all__ = [
    "POOLS",
    "Labels",
    "check_labels",
    "expect",
    "label_source",
    "missing_ok",
    "pooled_vjp",
    "tokens_of",
    "transform",
]
