"""Strategies: sizes distinct per axis with pinned edge cases, constraints met, tensors of each kind."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import find, given, settings
from hypothesis import strategies as st

from lmspec import spec
from lmspec.spec import Equation, Kind, Reference, SpecError, tensor
from lmspec.spec.axes import M, d_e, d_k, n
from lmspec.spec.ops import mul
from lmspec.verify.strategies import (
    ENTRYWISE_LIMIT,
    drawn_examples,
    examples,
    seeded_tensor,
    size_tuples,
    tensors,
)


@pytest.mark.parametrize("eq", spec.select(["attention"]), ids=lambda e: e.id)
def test_sizes_are_distinct_per_axis_with_edge_cases_pinned(eq):
    for scale in ("small", "large"):
        tuples = size_tuples(eq, 6, seed=1, scale=scale)
        assert len(tuples) == 6
        for sizes in tuples:
            assert set(sizes) == set(eq.axes)
            assert len(set(sizes.values())) == len(sizes) or 1 in sizes.values()
            others = [v for v in sizes.values() if v != 1]
            assert len(set(others)) == len(others)
        seq = next(a for a in ("n", "n_d") if a in eq.axes)
        assert tuples[0][seq] == 1
        if "M" in eq.axes:
            assert tuples[1]["M"] == 1
            assert all(t["M"] >= 2 for t in tuples[2:])


def test_sizes_depend_on_the_seed_only():
    eq = spec.get("attention.multi_head")
    assert size_tuples(eq, 4, 7) == size_tuples(eq, 4, 7)
    assert size_tuples(eq, 4, 7) != size_tuples(eq, 4, 8)


def test_constraints_give_the_dependent_axes():
    H = tensor("H", (d_e, n))
    W = tensor("W", (d_e, M * d_k))
    X = tensor("X", (M * d_k, n))
    eq = Equation("test.c", "c", inputs=(H,), params=(W,), intermediates=(X,),
                  bindings=[(X, mul(W.T, H))], outputs=(X,), reference=Reference("t"),
                  constraints=(sp.Eq(d_e, M * d_k),))  # fmt: skip
    for sizes in size_tuples(eq, 5, 0):
        assert sizes["d_e"] == sizes["M"] * sizes["d_k"]


def test_a_derive_may_restate_a_dependent_axis_and_draws_keep_to_both():
    """An audit's ties (d_e = M·d_k, d_v = d_k) meet a variant whose own constraint gives d_e (= M·d_v):
    sizes agree with both; a derive that can never agree is an error, not a silent override."""
    var = spec.get("attention.multi_head[no_output_projection]")
    ties = {"d_e": "M*d_k", "d_v": "d_k"}
    for sizes in size_tuples(var, 4, 0, derive=ties):
        assert sizes["d_e"] == sizes["M"] * sizes["d_k"] == sizes["M"] * sizes["d_v"]
    with pytest.raises(SpecError, match="no sizes in .* meet the constraints"):
        size_tuples(var, 1, 0, derive={"d_e": "M*d_v + 1"})
    with pytest.raises(SpecError, match="cannot fix or derive the size 'd_e'"):
        size_tuples(var, 1, 0, fixed={"d_e": 6})


def test_bad_arguments_are_named():
    eq = spec.get("attention.softmax_rows")
    with pytest.raises(SpecError, match="count must be at least 1, found 0"):
        size_tuples(eq, 0, 0)
    with pytest.raises(SpecError, match="scale must be 'small' or 'large', found 'huge'"):
        size_tuples(eq, 1, 0, "huge")


@settings(max_examples=30, deadline=None, database=None)
@given(st.data())
def test_tensors_of_each_kind(data):
    shape = (2, 3, 4)
    real = data.draw(tensors(Kind.REAL, shape, {}))
    assert real.shape == shape and np.all(np.abs(real) <= 3)
    mask = data.draw(tensors(Kind.ADDITIVE_MASK, shape, {}))
    assert set(np.unique(mask)) <= {0.0, -np.inf}
    keep = data.draw(tensors(Kind.MASK, shape, {}))
    assert set(np.unique(keep)) <= {0.0, 1.0}
    scores = data.draw(tensors(Kind.SCORE, shape, {}))
    assert np.all(np.isfinite(scores) | np.isneginf(scores))
    ids = data.draw(tensors(Kind.INDEX, shape, {"v": 5}))
    assert ids.min() >= 0 and ids.max() < 5
    onehot = data.draw(tensors(Kind.ONE_HOT, shape, {}))
    assert np.all(onehot.sum(axis=-2) == 1)
    probs = data.draw(tensors(Kind.PROBABILITY, shape, {}))
    np.testing.assert_allclose(probs.sum(axis=-2), 1.0)


def test_seeded_tensors_have_the_same_kinds():
    rng = np.random.default_rng(0)
    assert set(np.unique(seeded_tensor(rng, Kind.ADDITIVE_MASK, (3, 5, 5), {}))) <= {0.0, -np.inf}
    onehot = seeded_tensor(rng, Kind.ONE_HOT, (7, 4), {})
    assert np.all(onehot.sum(axis=0) == 1)


@settings(max_examples=10, deadline=None, database=None)
@given(st.data())
def test_examples_batch_inputs_not_parameters(data):
    eq = spec.get("attention.multi_head")
    sizes = size_tuples(eq, 3, 0)[2]
    ex = data.draw(examples(eq, sizes))
    assert ex.arrays["H"].shape == (*ex.batch, sizes["d_e"], sizes["n"])
    assert ex.arrays["W_Q"].shape == (sizes["M"], sizes["d_e"], sizes["d_k"])
    assert ex.arrays["b_O"].shape == (sizes["d_e"],)


@settings(max_examples=3, deadline=None, database=None)
@given(st.data())
def test_large_examples_come_from_a_seed(data):
    eq = spec.get("attention.multi_head")
    big = size_tuples(eq, 3, 0, "large")[2]
    ex = data.draw(examples(eq, big, batch=(2,)))
    total = sum(a.size for a in ex.arrays.values())
    assert total > ENTRYWISE_LIMIT
    assert np.unique(ex.arrays["H"]).size == ex.arrays["H"].size  # no fill value repeated


def test_keep_vectors_draw_right_padding_padding_anywhere_and_fully_padded_sequences():
    """The per-key masks' keep vectors: one per batch element, 0/1, and the domain's edges are reached."""
    from hypothesis import find
    from hypothesis.errors import NoSuchExample

    from lmspec.verify.runner import padding_mask
    from lmspec.verify.strategies import keep_vectors

    strategy = keep_vectors((2,), 4)
    some = find(strategy, lambda k: True)
    assert some.shape == (2, 4) and set(np.unique(some)) <= {0.0, 1.0}
    find(strategy, lambda k: (k.sum(axis=-1) == 0).any())  # a sequence of padding only
    find(strategy, lambda k: any(list(r) not in ([1.0] * (4 - j) + [0.0] * j for j in range(5)) for r in k))
    right = keep_vectors((2,), 4, right_only=True)  # what lengths can say: real keys, then padding
    prefixes = [[1.0] * (4 - j) + [0.0] * j for j in range(5)]
    assert find(right, lambda k: True).shape == (2, 4)
    find(right, lambda k: (k.sum(axis=-1) == 0).any())
    with pytest.raises(NoSuchExample):
        find(right, lambda k: any(list(r) not in prefixes for r in k), settings=settings(max_examples=200))
    S = padding_mask(np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]), 2)
    assert S.shape == (2, 2, 3)
    assert (S[0] == np.array([[0.0, 0.0, -np.inf]] * 2)).all() and np.isneginf(S[1]).all()


def test_drawn_examples_take_sizes_and_batch_from_the_pool_and_shrink_to_the_first():
    eq = spec.get("attention.scaled_dot_product")
    pool = size_tuples(eq, 3, 0)
    batches = ((2,), ())
    strategy = drawn_examples(eq, pool, batches)
    assert drawn_examples(eq, [dict(s) for s in pool], batches) is strategy  # built once per pool
    seen = []

    @settings(max_examples=20, deadline=None, database=None)
    @given(strategy)
    def collect(ex):
        assert ex.sizes in pool and ex.batch in batches
        assert ex.arrays["Q"].shape == (*ex.batch, ex.sizes["n"], ex.sizes["d_k"])
        ex.sizes["n"] = -1  # each example has its own sizes: the pool is left as it was
        seen.append(ex)

    collect()
    assert {len(ex.batch) for ex in seen} == {0, 1} and all(s["n"] > 0 for s in pool)
    smallest = find(strategy, lambda ex: True, settings=settings(database=None))
    assert (smallest.sizes, smallest.batch) == (pool[0], (2,))
    assert all(not np.any(a) for a in smallest.arrays.values())  # zeros, nothing masked


# How the runner draws: two shortcuts through Hypothesis's engine (verify.runner) that must not change a
# single example.


def test_a_fixed_size_block_drawn_at_once_is_the_block_hypothesis_draws_byte_by_byte():
    import random

    from hypothesis.internal.conjecture.data import ConjectureData
    from hypothesis.internal.conjecture.providers import HypothesisProvider

    from lmspec.verify import runner

    def draw(provider_draw, seed: int, min_size: int, max_size: int) -> tuple[bytes, object]:
        rng = random.Random(seed)
        provider = HypothesisProvider(ConjectureData(random=rng))
        return provider_draw(provider, min_size, max_size), rng.getstate()

    own = HypothesisProvider.draw_bytes
    for seed in range(40):
        for size in (0, 1, 3, 64, 481):
            assert draw(runner._draw_bytes_at_once, seed, size, size) == draw(own, seed, size, size)
        # a block of variable size is Hypothesis's own
        assert draw(runner._draw_bytes_at_once, seed, 2, 9) == draw(own, seed, 2, 9)
    with runner.bytes_drawn_at_once(), runner.bytes_drawn_at_once():  # nests
        assert HypothesisProvider.draw_bytes is runner._draw_bytes_at_once
    assert HypothesisProvider.draw_bytes is own


def test_the_runners_shortcuts_draw_the_same_examples_from_prngs_seeded_the_same_way():
    """Inside ``prngs_saved_once`` and ``bytes_drawn_at_once`` a test draws the examples it draws without
    them; every example starts with the global PRNGs seeded as Hypothesis seeds them, and afterwards the
    PRNGs are where they were."""
    import random

    import hypothesis.core
    from hypothesis import HealthCheck
    from hypothesis import seed as hseed

    from lmspec.verify import runner

    eq = spec.get("attention.scaled_dot_product")
    strategy = drawn_examples(eq, size_tuples(eq, 3, 0), ((), (2,)))

    def run() -> list:
        seen = []

        @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @hseed(0)
        @given(st.data())
        def collect(data):
            ex = data.draw(strategy)
            seen.append((ex.sizes, ex.batch, {k: v.tolist() for k, v in ex.arrays.items()}))
            seen.append((random.random(), np.random.random()))  # as seeded for this example
            random.random(), np.random.random()  # moved on: the next example starts seeded again

        collect()
        return seen

    random.seed(7)
    np.random.seed(7)
    with runner.examples_from_strategies_only():
        expected = run()
    after = random.getstate(), np.random.get_state()[1].tolist()
    random.seed(7)
    np.random.seed(7)
    own = hypothesis.core.deterministic_PRNG
    with runner.examples_from_strategies_only(), runner.prngs_saved_once(), runner.bytes_drawn_at_once():
        assert hypothesis.core.deterministic_PRNG is not own
        assert run() == expected
    assert hypothesis.core.deterministic_PRNG is own
    assert (random.getstate(), np.random.get_state()[1].tolist()) == after
    assert len({str(x) for x in expected[::2]}) == 12  # twelve different examples, not one


def test_a_variant_draws_its_base_equations_sizes_so_their_callees_are_expanded_once():
    """transformer.block_pre_ln[eps] has the base's axes and constraints: the same size tuples, so the
    attention and FFN both blocks call are one expansion per sizes (verify/oracle.py's _subprogram)."""
    base, variant = spec.get("transformer.block_pre_ln"), spec.get("transformer.block_pre_ln[eps]")
    assert size_tuples(variant, 3, 0) == size_tuples(base, 3, 0)
