"""Properties: the spec satisfies its own invariants, and each property catches a target that breaks it."""

import ast
import pkgutil
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from lmspec import spec
from lmspec.spec import SpecError
from lmspec.verify import properties
from lmspec.verify._errors import PropertyViolation
from lmspec.verify.compare import POLICY
from lmspec.verify.properties import PROPERTIES, PROPERTY_FAMILIES, properties_of
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


def test_a_variant_impl_does_not_implement_is_held_to_its_properties_on_the_generated_code():
    """`lmspec verify 'attention.multi_head[no_output_projection]'`: no implementation computes it, so there
    is nothing to bind and nothing to fail for it; the generated code meets the oracle and the variant's own
    properties (it has no W_O to split into heads)."""
    from lmspec.verify.runner import PROFILES, checks_for, run_check

    eq = spec.get("attention.multi_head[no_output_projection]")
    checks = checks_for(eq, PROFILES["quick"], 0)
    assert [(c.name, c.target_name) for c in checks] == [
        ("generated=oracle", "generated"),
        ("property:causal", "generated"),
        ("property:permutation_equivariance", "generated"),
    ]
    results = [run_check(c, PROFILES["quick"], 0) for c in checks]
    assert all(r.passed for r in results), [r.message for r in results]


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


# --- one module per family ---------------------------------------------------------------------------------
#: The modules of verify/properties/ that are not a family's: the machinery and the face.
_MACHINERY = {"_base", "__init__"}
#: Family modules that build on another family's module (the transformer block's layer norms on norm's).
_BUILDS_ON = {"transformer": {"norm"}}


def _modules() -> set[str]:
    return {m.name for m in pkgutil.iter_modules(properties.__path__)} - _MACHINERY


def _declaring_families() -> dict[str, set[str]]:
    """Each declared property name, with the families of the equations (variants too) that declare it."""
    out: dict[str, set[str]] = {}
    for eq in spec.all():
        for e in (eq, *eq.variants().values()):
            for inv in e.invariants:
                out.setdefault(inv.name, set()).add(e.family)
    return out


def test_every_module_is_named_after_a_family_and_the_face_loads_each():
    assert _modules() <= set(spec.FAMILIES), _modules() - set(spec.FAMILIES)
    assert set(PROPERTY_FAMILIES) == _modules()
    assert list(PROPERTY_FAMILIES) == [f for f in spec.FAMILIES if f in _modules()]  # the catalogue's order


def test_each_property_lives_in_a_module_of_a_family_that_declares_it():
    declared = _declaring_families()
    for eq in spec.all():
        properties_of(eq)  # loads every family module
    assert set(PROPERTIES) == set(declared), set(PROPERTIES) ^ set(declared)
    wrong = {}
    for name, p in PROPERTIES.items():
        package, _, module = p.check.__module__.rpartition(".")
        if package != properties.__name__ or module not in declared[name]:
            wrong[name] = (p.check.__module__, sorted(declared[name]))
    assert not wrong, wrong


def test_the_causal_mask_and_layer_norm_belong_to_their_own_families():
    properties_of(spec.get("transformer.block_pre_ln"))
    assert PROPERTIES["causal"].check.__module__ == "lmspec.verify.properties.attention"
    assert PROPERTIES["layer_norm_statistics"].check.__module__ == "lmspec.verify.properties.norm"
    assert PROPERTIES["permutation_equivariance"].check.__module__ == "lmspec.verify.properties.attention"


def test_family_modules_import_the_machinery_not_the_face_nor_each_other():
    folder = Path(properties.__file__).parent
    for module in sorted(_modules()):
        siblings = set()
        for node in ast.walk(ast.parse((folder / f"{module}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                siblings.add(node.module or "")  # "" is the face itself (from . import …)
        assert siblings - {"_base"} <= _BUILDS_ON.get(module, set()), (module, siblings)
        assert "_base" in siblings, module


def test_prop_refuses_a_name_already_taken():
    properties_of(spec.get("attention.softmax_rows"))
    taken = PROPERTIES["causal"]

    def another(eq, target, example, data, options, tol):
        pass

    owners = rf"\(lmspec\.verify\.properties\.attention and {re.escape(__name__)}\)"
    with pytest.raises(SpecError, match=rf"^property 'causal' is registered twice {owners}$"):
        properties.prop("causal", "another check")(another)
    assert PROPERTIES["causal"] is taken
