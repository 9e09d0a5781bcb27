"""Hypothesis strategies: sizes meeting an equation's constraints, and tensors of each kind.

Sizes are distinct per axis (so that a swapped axis cannot pass) with pinned edge cases n = 1 and M = 1.
For speed the oracle sees a few size tuples per run, drawn once from the seed; the values inside the
tensors are drawn by Hypothesis (each tensor's entries as one block of bytes), so failing examples shrink
towards 0 (and masks towards "nothing masked").
"""

import functools
import random
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import sympy as sp
from hypothesis import strategies as st

from ..spec import Equation, Kind, SpecError
from .oracle import concrete_shape, size_subs

#: Size ranges: small for the exact oracle, larger for generated code against the implementation.
SMALL = (2, 7)
LARGE = (3, 17)
#: Oracle sizes of composite equations (blocks, stacks, whole models: they call other equations). Each
#: part is checked on its own at SMALL sizes; the composite's oracle expands every part inline, and its
#: cost grows with the cube of the sizes, so it sees a tighter range (sizes may then repeat across axes).
COMPOSITE = (2, 4)
#: Head counts stay small: each head multiplies the oracle's work.
HEADS = {"small": (2, 3), "large": (2, 4)}
#: Axes that multiply the oracle's work (heads, blocks) stay small.
SMALL_AXES = {"M": HEADS, "L": {"small": (2, 2), "large": (2, 3)}}
#: Bounds of real entries; wide enough to exercise softmax saturation, small enough to stay exact.
REAL_BOUND = 3.0


class Example(NamedTuple):
    sizes: dict[str, int]
    batch: tuple[int, ...]
    arrays: dict[str, np.ndarray]


def size_tuples(
    eq: Equation,
    count: int,
    seed: int,
    scale: str = "small",
    *,
    fixed: Mapping[str, int] | None = None,
    derive: Mapping[str, str] | None = None,
) -> list[dict[str, int]]:
    """``count`` size assignments for ``eq``: distinct per axis, constraints met, edge cases first.

    The first tuple pins n = 1 (or the equation's first sequence axis) and the second M = 1 when the
    equation has those axes; the rest are random. ``fixed`` sizes are kept in every tuple and ``derive``
    computes axes from the others (``{"d_e": "M*d_k"}``): an audited target may need both.
    """
    if count < 1:
        raise SpecError(f"size_tuples: count must be at least 1, found {count}")
    if scale not in ("small", "large"):
        raise SpecError(f"size_tuples: scale must be 'small' or 'large', found {scale!r}")
    key = _size_tuples(eq, count, seed, scale, tuple((fixed or {}).items()), tuple((derive or {}).items()))
    return [dict(sizes) for sizes in key]


@functools.lru_cache(maxsize=4096)
def _size_tuples(
    eq: Equation,
    count: int,
    seed: int,
    scale: str,
    fixed_items: tuple[tuple[str, int], ...],
    derive_items: tuple[tuple[str, str], ...],
) -> tuple[tuple[tuple[str, int], ...], ...]:
    """size_tuples's answer as items, computed once per equation, seed and setting: a plan asks for the same
    tuples for every implementation of an equation, and each costs SymPy work on its constraints. A variant
    draws from its base equation's stream, so where their axes and constraints agree it gets the base's
    sizes, and the equations both call (a block's attention and FFN) are expanded once for both (the oracle
    expands a called equation once per sizes): a third less compile time for the blocks, stacks and models,
    with as many size tuples per equation as before."""
    lo, hi = SMALL if scale == "small" else LARGE
    if scale == "small" and is_composite(eq):
        lo, hi = COMPOSITE
    rng = random.Random(f"{eq.variant_of or eq.id}/{seed}/{scale}")
    fixed, derive = dict(fixed_items), dict(derive_items)
    dependent = {c.lhs.name for c in eq.equalities}  # a derive may restate one (checked on every draw)
    for a in (*fixed, *derive):
        if a not in eq.free_axes and not (a in derive and a in dependent):
            raise SpecError(
                f"{eq.id}: cannot fix or derive the size {a!r}: the free axes are {', '.join(eq.free_axes)}"
            )
    free = [a for a in eq.free_axes]
    tuples: list[tuple[tuple[str, int], ...]] = []
    pins: list[dict[str, int]] = []
    seq = next((a for a in ("n", "n_d", "n_e") if a in free and a not in fixed), None)
    if seq:
        pins.append({seq: 1})
    if "M" in free and "M" not in fixed:
        pins.append({"M": 1})
    for k in range(count):
        pin = {**(pins[k] if k < len(pins) else {}), **fixed}
        for _attempt in range(200):
            sizes = _draw_sizes(eq, free, pin, lo, hi, scale, rng, derive)
            if sizes is not None:
                break
        else:
            ties = f" and the ties {', '.join(f'{a}={e}' for a, e in derive.items())}" if derive else ""
            raise SpecError(f"{eq.id}: no sizes in [{lo}, {hi}] meet the constraints {eq.constraints}{ties}")
        tuples.append(tuple(sizes.items()))
    return tuple(tuples)


def _draw_sizes(eq, free, pin, lo, hi, scale, rng, derive=None) -> dict[str, int] | None:
    """One size assignment, or None when it breaks an inequality constraint (drawn again)."""
    pool = list(range(lo, hi + 1))
    rng.shuffle(pool)
    for value in pin.values():  # keep the other axes distinct from a pinned size
        if value in pool:
            pool.remove(value)
    sizes: dict[str, int] = {}
    for a in sorted(free, key=lambda a: a not in SMALL_AXES):  # small axes first: they need small values
        if a in pin:
            sizes[a] = pin[a]
        elif a in SMALL_AXES:  # at least two, distinct from every other size
            lo_m, hi_m = SMALL_AXES[a][scale]
            choice = [x for x in range(lo_m, hi_m + 1) if x in pool] or list(range(lo_m, hi_m + 1))
            sizes[a] = rng.choice(choice)
            if sizes[a] in pool:
                pool.remove(sizes[a])
        else:
            if not pool:  # more axes than sizes in the range: start a fresh (shuffled) pool
                pool = list(range(lo, hi + 1))
                rng.shuffle(pool)
            sizes[a] = pool.pop()
    sizes = {a: sizes[a] for a in free}  # glossary order
    # xreplace, not subs: the same symbols replaced by the same integers, without subs's sorting and caching
    # of every substitution (most of what planning a verifier run cost when it was subs)
    for a, expr in (derive or {}).items():
        subs = size_subs(sizes)
        value = sp.sympify(expr, locals={s.name: s for s in subs}).xreplace(subs)
        if not value.is_Integer or value < 1:
            return None
        sizes[a] = int(value)
    subs = size_subs(sizes)
    for c in eq.equalities:
        value = int(c.rhs.xreplace(subs))
        if sizes.setdefault(c.lhs.name, value) != value:  # a derive that disagrees with the equation's own
            return None
    subs = size_subs(sizes)
    if not all(bool(c.xreplace(subs)) for c in eq.inequalities):
        return None
    return sizes


#: Real entries are multiples of 2⁻⁶: a column of equal entries then has an exactly zero spread in any
#: summation order, so ill-conditioned cases (layer norm of a constant column) are exact, not noise.
GRID = 64


def is_composite(eq: Equation) -> bool:
    """Whether ``eq`` calls other equations (a block, a stack, a whole model)."""
    from ..spec.ops_nn import Call

    return any(node.atoms(Call) for node in (b.rhs for b in eq.bindings))


# A tensor is drawn as one block of bytes and decoded entry by entry (a layout per kind, below); an example
# with every tensor small enough is one block for all of them. One choice for Hypothesis instead of one per
# entry or per tensor: drawing entries one at a time was half of the verifier's time, and each further draw
# costs about a quarter of a millisecond of Hypothesis's bookkeeping. All-zero bytes decode to the simplest
# tensor (zeros, nothing masked, index 0, the first pattern), so failing examples still shrink towards it,
# byte by byte. Layouts and strategies are built once per shape (functools.lru_cache): Hypothesis validates
# a strategy on its first draw, and one built afresh per tensor was validated thousands of times per audit.


def _shape(shape) -> tuple[int, ...]:
    return tuple(int(s) for s in shape)


def _words(raw: bytes, width: int) -> np.ndarray:
    """The block's entries as unsigned integers of ``width`` bytes (little-endian)."""
    return np.frombuffer(raw, dtype=f"<u{width}").astype(np.int64)


class _Layout(NamedTuple):
    """How many bytes a tensor takes, and how they decode into it."""

    size: int
    decode: Callable[[bytes], np.ndarray]


#: How a real tensor's entries are spread: "coarse" entries are the integers −3…3 (ties, zeros, the
#: bounds: a constant column, a saturated softmax), "fine" ones any multiple of 1/64. Coarse comes first:
#: a failing example shrinks towards it, and so towards small integers.
REAL_STYLES = ("coarse", "fine", "fine")


def _real_values(shape: tuple[int, ...], raw: bytes) -> np.ndarray:
    """Byte 0 picks the style; then two bytes per entry, whose low bit is the sign."""
    style = REAL_STYLES[raw[0] % len(REAL_STYLES)]
    u = _words(raw[1:], 2)
    bound = int(REAL_BOUND * GRID)
    step = GRID if style == "coarse" else 1
    magnitude = (u >> 1) % (bound // step + 1) * step
    return (np.where(u & 1, -magnitude, magnitude) / GRID).reshape(shape)


def _flag_values(shape: tuple[int, ...], weight: int, raw: bytes) -> np.ndarray:
    """One byte per entry, True for about one in ``weight`` (False is the simpler value)."""
    return (_words(raw, 1) % weight == weight - 1).reshape(shape)


#: The patterns of an additive mask; fully masked rows are part of the domain, and real code disagrees
#: about them (NaN, uniform weights, zeros): one pattern in five has one, so every check meets them.
MASK_PATTERNS = ("none", "causal", "padding", "random", "masked row")


def _mask_values(shape: tuple[int, ...], raw: bytes) -> np.ndarray:
    """Byte 0 the pattern, byte 1 the masked row, then one flag byte per entry (padding reads the first
    row's worth)."""
    *lead, rows, cols = shape
    pattern = MASK_PATTERNS[raw[0] % len(MASK_PATTERNS)]
    flags = raw[2:]
    if pattern == "none":
        masked = np.zeros(shape, dtype=bool)
    elif pattern == "causal":
        masked = np.broadcast_to(np.triu(np.ones((rows, cols), dtype=bool), 1), shape).copy()
    elif pattern == "padding":
        pad_shape = (*lead, 1, cols)
        pad = _flag_values(pad_shape, 3, flags[: int(np.prod(pad_shape))])
        masked = np.broadcast_to(pad, shape).copy()
    else:
        masked = _flag_values(shape, 3, flags)
        if pattern == "masked row":
            masked[..., raw[1] % rows, :] = True
    return np.where(masked, -np.inf, 0.0)


@functools.lru_cache(maxsize=4096)
def _layout(kind: Kind, shape: tuple[int, ...], v: int | None) -> _Layout:
    """The byte layout of a tensor of ``kind`` and ``shape`` (``v``: the vocabulary of an index tensor)."""
    count = int(np.prod(shape))
    if kind is Kind.REAL:
        return _Layout(1 + 2 * count, functools.partial(_real_values, shape))
    if kind is Kind.SCORE:  # reals, a flag per entry (−∞), and whether the first row is fully masked

        def score(raw: bytes) -> np.ndarray:
            z = _real_values(shape, raw[: 1 + 2 * count])
            masked = _flag_values(shape, 4, raw[1 + 2 * count : 1 + 3 * count])
            if shape and raw[-1] & 1:
                masked[..., 0, :] = True
            return np.where(masked, -np.inf, z)

        return _Layout(2 + 3 * count, score)
    if kind is Kind.ADDITIVE_MASK:
        return _Layout(2 + count, functools.partial(_mask_values, shape))
    if kind is Kind.MASK:
        return _Layout(count, lambda raw: (~_flag_values(shape, 3, raw)).astype(np.float64))
    if kind is Kind.INDEX:
        if v is None:
            raise SpecError("tensors: an index tensor needs the size v")
        return _index_layout(shape, v)
    if kind is Kind.ONE_HOT:
        *lead, rows, cols = shape
        index = _index_layout((*lead, cols), rows)
        return _Layout(index.size, lambda raw: np.moveaxis(np.eye(rows)[index.decode(raw)], -1, -2))
    if kind is Kind.PROBABILITY:  # weights in [0.01, 1], normalised

        def probability(raw: bytes) -> np.ndarray:
            w = ((1 + _words(raw, 1) % 100) / 100).reshape(shape)
            return w / w.sum(axis=-2, keepdims=True)

        return _Layout(count, probability)
    if kind is Kind.POSITIVE:  # multiples of 1/64 in [1/8, 4]
        return _Layout(count, lambda raw: ((8 + _words(raw, 1) % 249) / GRID).reshape(shape))
    raise SpecError(f"tensors: no strategy for kind {kind}")


def _index_layout(shape: tuple[int, ...], v: int) -> _Layout:
    """Integers in [0, v): one byte each while v ≤ 256, else four."""
    width = 1 if v <= 256 else 4
    count = int(np.prod(shape))
    return _Layout(width * count, lambda raw: (_words(raw, width) % v).reshape(shape))


@functools.lru_cache(maxsize=4096)
def _block(size: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=size, max_size=size)


@functools.lru_cache(maxsize=4096)
def _tensors(kind: Kind, shape: tuple[int, ...], v: int | None) -> st.SearchStrategy[np.ndarray]:
    layout = _layout(kind, shape, v)
    return _block(layout.size).map(layout.decode)


def tensors(kind: Kind, shape: tuple[int, ...], sizes: Mapping[str, int]) -> st.SearchStrategy[np.ndarray]:
    """Arrays of ``kind`` with ``shape`` (spec layout, batch axes included)."""
    v = int(sizes["v"]) if kind is Kind.INDEX and "v" in sizes else None
    return _tensors(kind, _shape(shape), v)


def reals(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    """Float64 arrays of multiples of 1/64 in [−3, 3]; every entry drawn (no fill value)."""
    return _tensors(Kind.REAL, _shape(shape), None)


def additive_masks(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    """Masks ``{0, −∞}`` shaped ``(*batch, n_q, n_k)``: none, causal, padding, random entries, or random
    entries with one row fully masked (``MASK_PATTERNS``)."""
    return _tensors(Kind.ADDITIVE_MASK, _shape(shape), None)


def keep_vectors(batch: tuple[int, ...], n: int, right_only: bool = False) -> st.SearchStrategy[np.ndarray]:
    """Keep vectors κ ∈ {0, 1}^n, one per batch element, shaped ``(*batch, n)``: right padding (the common
    case, n − k real tokens then k pads) or padding anywhere; k = n, a fully padded element whose every
    query has every key masked, is part of the domain. Shrinks towards no padding. ``right_only``: right
    padding alone (what a count of real keys, a target's lengths, can say)."""
    return _keep_vectors(_shape(batch), int(n), right_only)


@functools.lru_cache(maxsize=1024)
def _keep_vectors(batch: tuple[int, ...], n: int, right_only: bool = False) -> st.SearchStrategy[np.ndarray]:
    count = int(np.prod(batch)) if batch else 1
    right = st.integers(0, n).map(lambda k: [1.0] * (n - k) + [0.0] * k)
    anywhere = st.lists(st.sampled_from([1.0, 1.0, 0.0]), min_size=n, max_size=n)
    one = right if right_only else st.one_of(right, anywhere)
    rows = st.lists(one, min_size=count, max_size=count)
    return rows.map(lambda r: np.asarray(r, dtype=np.float64).reshape((*batch, n)))


def seeded_tensor(
    rng: np.random.Generator, kind: Kind, shape: tuple[int, ...], sizes: Mapping[str, int]
) -> np.ndarray:
    """The same kinds as ``tensors``, from a NumPy generator (examples too large for Hypothesis's buffer)."""
    if kind is Kind.REAL:
        return rng.uniform(-REAL_BOUND, REAL_BOUND, size=shape)
    if kind is Kind.POSITIVE:
        return rng.uniform(0.125, 4.0, size=shape)
    if kind is Kind.SCORE:
        z = rng.uniform(-REAL_BOUND, REAL_BOUND, size=shape)
        masked = rng.random(shape) < 0.25
        if shape and rng.random() < 0.5:
            masked[..., 0, :] = True
        return np.where(masked, -np.inf, z)
    if kind is Kind.ADDITIVE_MASK:
        *lead, rows, cols = shape
        pattern = rng.integers(4)
        if pattern == 0:
            masked = np.zeros(shape, dtype=bool)
        elif pattern == 1:
            masked = np.broadcast_to(np.triu(np.ones((rows, cols), dtype=bool), 1), shape)
        elif pattern == 2:
            masked = np.broadcast_to(rng.random((*lead, 1, cols)) < 0.3, shape)
        else:
            masked = rng.random(shape) < 0.3
        return np.where(masked, -np.inf, 0.0)
    if kind is Kind.MASK:
        return (rng.random(shape) >= 0.3).astype(np.float64)
    if kind is Kind.INDEX:
        return rng.integers(0, int(sizes["v"]), size=shape)
    if kind is Kind.ONE_HOT:
        *lead, rows, cols = shape
        return np.moveaxis(np.eye(rows)[rng.integers(0, rows, size=(*lead, cols))], -1, -2)
    if kind is Kind.PROBABILITY:
        w = rng.uniform(0.01, 1.0, size=shape)
        return w / w.sum(axis=-2, keepdims=True)
    raise SpecError(f"seeded_tensor: no generator for kind {kind}")


#: Above this many entries in one example, values come from a drawn seed instead of Hypothesis's blocks
#: (its buffer would overflow and discard the example).
ENTRYWISE_LIMIT = 160
#: The seeds of those examples' values (one strategy, not one built per example).
_SEEDS = st.integers(0, 2**32 - 1)


@st.composite
def examples(
    draw: st.DrawFn, eq: Equation, sizes: Mapping[str, int], batch: tuple[int, ...] | None = None
) -> Example:
    """An example of ``eq`` at ``sizes``: per-example inputs with ``batch`` axes (drawn from (), (2,) if
    None), parameters without. Small examples are drawn by Hypothesis and shrink towards zero; large
    ones from a drawn seed."""
    if batch is None:
        batch = draw(st.sampled_from([(), (2,)]), label="batch axes")
    return _example(draw, eq, tuple(sizes.items()), _shape(batch))


def drawn_examples(
    eq: Equation, pool: Sequence[Mapping[str, int]], batches: Sequence[tuple[int, ...]]
) -> st.SearchStrategy[Example]:
    """Examples of ``eq`` at one of the size tuples of ``pool`` (drawn first), with one of the leading
    ``batches`` (drawn next), as ``examples`` draws them: the same choices in the same order, so they
    shrink alike (towards the first size tuple, the first batch shape, then zeros).

    One strategy for the three draws, built once per equation, pool and batches: the verifier draws an
    example thousands of times per run, and each draw through Hypothesis's ``data`` object, or of a
    strategy built afresh (validated at its first draw), cost more than decoding the example."""
    key = tuple(tuple(sizes.items()) for sizes in pool)
    return _drawn_examples(eq, key, tuple(_shape(b) for b in batches))


@functools.lru_cache(maxsize=1024)
def _drawn_examples(
    eq: Equation, pool: tuple[tuple[tuple[str, int], ...], ...], batches: tuple[tuple[int, ...], ...]
) -> st.SearchStrategy[Example]:
    if not pool:
        raise SpecError(f"drawn_examples: {eq.id} has no size tuples to draw from")
    sizes_from, batch_from = st.sampled_from(pool), st.sampled_from(batches)

    @st.composite
    def drawn(draw: st.DrawFn) -> Example:
        sizes = draw(sizes_from, label="sizes")
        return _example(draw, eq, sizes, draw(batch_from, label="batch axes"))

    return drawn()


class _Plan(NamedTuple):
    """What an example of an equation at given sizes and batch axes holds: each array's kind and shape, and
    the byte layouts of the arrays when the example is drawn as one block (None: from a drawn seed)."""

    shapes: dict[str, tuple[Kind, tuple[int, ...]]]
    layouts: dict[str, _Layout] | None
    size: int  # bytes of the block


@functools.lru_cache(maxsize=4096)
def _plan(eq: Equation, sizes: tuple[tuple[str, int], ...], batch: tuple[int, ...]) -> _Plan:
    """The plan of an example of ``eq`` at ``sizes`` (as items) with ``batch`` axes, computed once: the
    shapes follow from the sizes alone, and every example at them would compute the same."""
    values = dict(sizes)
    shapes = {}
    for d in eq.inputs:
        shapes[d.ascii] = (d.entry_kind, (*batch, *concrete_shape(d, values)))
    for d in eq.params:
        shapes[d.ascii] = (d.entry_kind, concrete_shape(d, values))
    total = sum(int(np.prod(shape)) for _, shape in shapes.values())
    if total > ENTRYWISE_LIMIT:
        return _Plan(shapes, None, 0)
    v = int(values["v"]) if "v" in values else None
    layouts = {
        name: _layout(kind, shape, v if kind is Kind.INDEX else None)
        for name, (kind, shape) in shapes.items()
    }
    return _Plan(shapes, layouts, sum(layout.size for layout in layouts.values()))


def _example(
    draw: st.DrawFn, eq: Equation, sizes: tuple[tuple[str, int], ...], batch: tuple[int, ...]
) -> Example:
    """An example of ``eq`` at ``sizes`` (as items, in the pool's order) with ``batch`` axes: its values as
    one block of bytes, or from a drawn seed when it has more than ENTRYWISE_LIMIT entries."""
    plan = _plan(eq, sizes, batch)
    values = dict(sizes)
    arrays: dict[str, np.ndarray] = {}
    if plan.layouts is None:
        rng = np.random.default_rng(draw(_SEEDS, label="values seed"))
        for name, (kind, shape) in plan.shapes.items():
            arrays[name] = seeded_tensor(rng, kind, shape, values)
    else:  # one block of bytes for the whole example
        raw = draw(_block(plan.size), label="values")
        at = 0
        for name, layout in plan.layouts.items():
            arrays[name] = layout.decode(raw[at : at + layout.size])
            at += layout.size
    return Example(values, batch, arrays)
