"""Properties: the spec satisfies its own invariants, and each property catches a target that breaks it."""

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from lmspec import spec
from lmspec.verify._errors import PropertyViolation
from lmspec.verify.compare import POLICY
from lmspec.verify.properties import PROPERTIES, properties_of
from lmspec.verify.strategies import examples, size_tuples
from lmspec.verify.targets import GeneratedTarget, OracleTarget, Target


class Wrapped(Target):
    """A target that post-processes another one's outputs (to break one property on purpose)."""

    def __init__(self, inner: Target, change, name: str) -> None:
        super().__init__(inner.eq)
        self.inner, self.change, self.name = inner, change, name

    def __call__(self, example, sizes):
        return {k: self.change(v, example, sizes) for k, v in self.inner(example, sizes).items()}


def _holds(eq, target, prop, options, max_examples=6):
    pool = size_tuples(eq, 3, 0, "small")

    # no shrinking: these tests need the verdict, not the smallest example
    @settings(max_examples=max_examples, deadline=None, database=None, phases=[Phase.generate])
    @given(st.data())
    def run(data):
        ex = data.draw(examples(eq, data.draw(st.sampled_from(pool))))
        prop.check(eq, target, ex, data, options, POLICY["float64"])

    run()


@pytest.mark.parametrize("eq", spec.select(["attention"]), ids=lambda e: e.id)
def test_the_spec_satisfies_its_own_invariants(eq):
    # on the generated code and on the exact oracle: the properties are true statements about the math
    for prop, options in properties_of(eq):
        _holds(eq, GeneratedTarget(eq), prop, options)
        _holds(eq, OracleTarget(eq), prop, options, max_examples=3)


def _violates(eq_id, prop_name, change):
    eq = spec.get(eq_id)
    target = Wrapped(GeneratedTarget(eq), change, "broken")
    options = next(o for p, o in properties_of(eq) if p.name == prop_name)
    with pytest.raises(PropertyViolation) as err:
        _holds(eq, target, PROPERTIES[prop_name], options, max_examples=30)
    assert err.value.check == f"property:{prop_name}"
    assert str(err.value).startswith(f"broken violates {prop_name}")


def test_sum_to_one_catches_unnormalised_weights():
    _violates("attention.softmax_rows", "softmax_rows_sum_to_one", lambda y, ex, s: y * 1.01)


def test_non_negative_catches_negative_weights():
    _violates("attention.softmax_rows", "softmax_non_negative", lambda y, ex, s: y - 0.01)


def test_shift_invariance_catches_a_score_dependent_output():
    _violates(
        "attention.softmax_rows",
        "softmax_shift_invariant",
        lambda y, ex, s: y + 1e-3 * np.nan_to_num(ex["Z"], neginf=0.0),
    )


def test_causality_catches_a_leak_from_the_future():
    # add the last token's values to every output row: the past now depends on the future
    _violates("attention.scaled_dot_product", "causal", lambda p, ex, s: p + ex["V"][..., -1:, :])


def test_equivariance_catches_position_dependence():
    _violates(
        "attention.scaled_dot_product",
        "permutation_equivariance",
        lambda p, ex, s: p + np.arange(p.shape[-2])[:, None],
    )


def test_kv_invariance_catches_key_order_dependence():
    _violates(
        "attention.scaled_dot_product", "kv_permutation_invariance", lambda p, ex, s: p + ex["K"][..., :1, :1]
    )


def test_heads_concat_catches_a_per_head_bias():
    _violates("attention.multi_head", "heads_concat", lambda a, ex, s: a + s["M"] ** 2)


def test_single_head_catches_a_wrong_scale():
    _violates("attention.multi_head", "single_head", lambda a, ex, s: a * 1.5)
