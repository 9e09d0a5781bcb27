"""What a built-in may declare about its library (audit.adapters._registry): ``precision`` (the dtype it
computes in whatever its inputs' dtype, with the reason) and ``no_gradient`` (why it gives none by design).

Held on lm.temperature, softmax(z / τ), written three ways: in float32 inside a float64 function (as
transformers' losses and generate do), with a stray ``.detach()``, and wrong. Each is audited as a user's
own annotated function and as a built-in that declares the difference, made here (not registered, so
``lmspec audit --list`` is untouched). The declarations turn exactly their difference into a pass and a
note or a skip; they hide no other bug, and a target that does not declare them still fails.
"""

import inspect

import pytest
import torch
from jaxtyping import Float
from torch import Tensor

from lmspec.verify.audit import audit
from lmspec.verify.audit.adapters import BUILTINS, Builtin, builtin
from lmspec.verify.audit.context import tolerance
from lmspec.verify.compare import POLICY
from lmspec.verify.runner import Profile

#: quick, without shrinking a failure (the tests that expect one only need it found)
NO_SHRINK = Profile("quick-noshrink", 2, 2, 4, 3, 0)
WHY_F32 = "the test's softmax takes (z / τ).float()"
WHY_NO_GRAD = "the test's softmax detaches z"


def float32_inside(z: Float[Tensor, "*batch v"], tau: float) -> Float[Tensor, "*batch v"]:
    """softmax(z / τ) computed in float32 and returned in the inputs' dtype."""
    return torch.softmax((z / tau).float(), dim=-1).to(z.dtype)


def detached(z: Float[Tensor, "*batch v"], tau: float) -> Float[Tensor, "*batch v"]:
    """softmax(z / τ) with a stray .detach(): right values, no gradient."""
    return torch.softmax(z.detach() / tau, dim=-1)


def float32_and_wrong(z: Float[Tensor, "*batch v"], tau: float) -> Float[Tensor, "*batch v"]:
    """softmax(z · τ) in float32: a bug far beyond float32's rounding."""
    return torch.softmax((z * tau).float(), dim=-1).to(z.dtype)


def _declaring(fn, **declared) -> Builtin:
    return Builtin(
        f"test.{fn.__name__}",
        "lm.temperature",
        lambda: fn,
        description=fn.__doc__,
        mapping=(("z", "z"), ("tau", "tau"), ("p_tau", "the result")),
        **declared,
    )


def _status(report) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


# --- precision ----------------------------------------------------------------------------------------------
def test_a_function_computing_in_float32_fails_the_float64_audit():
    report = audit(float32_inside, as_="lm.temperature", profile=NO_SHRINK, diagnose=False)
    assert report.verdict == "fail"
    failed = {c for c, s in _status(report).items() if s == "fail"}
    assert {"value=oracle", "value=generated", "gradient"} <= failed  # the backward pass is float32's too
    assert not any(note.startswith("compared at") for note in report.notes)


def test_declared_float32_is_compared_at_float32s_tolerance_and_says_so():
    """The audit still runs in float64 (its inputs and the references); only the comparison widens."""
    report = audit(_declaring(float32_inside, precision="float32", precision_reason=WHY_F32), profile="quick")
    assert report.verdict == "pass", {c.name: c.message for c in report.checks}
    assert report.dtype == "float64" and report.target == "test.float32_inside"
    f32 = POLICY["float32"]
    assert {(c.atol, c.rtol) for c in report.checks if c.name.startswith("value")} == {(f32.atol, f32.rtol)}
    assert (
        "compared at float32's tolerance: test.float32_inside computes in float32 whatever its inputs' "
        f"dtype ({WHY_F32})"
    ) in report.notes


def test_declared_float32_hides_no_other_bug():
    built = _declaring(float32_and_wrong, precision="float32", precision_reason=WHY_F32)
    report = audit(built, profile=NO_SHRINK, diagnose=False)
    assert report.verdict == "fail" and _status(report)["value=oracle"] == "fail"
    worst = next(c for c in report.checks if c.name == "value=oracle")
    assert worst.max_abs > 1e-3  # far beyond float32's rounding


def test_the_tolerance_is_the_coarser_of_the_audits_dtype_and_the_declared_one():
    assert tolerance("float64", None) == "float64"
    assert tolerance("float64", "float32") == "float32"
    assert tolerance("float32", "float32") == "float32"
    assert tolerance("bfloat16", "float32") == "bfloat16"  # never tightened
    assert tolerance("float16", "bfloat16") == "bfloat16"


# --- no_gradient --------------------------------------------------------------------------------------------
def test_a_function_without_a_gradient_fails_the_gradient_check():
    """A user's stray .detach() is a bug: returning no gradient is never taken as a declaration."""
    report = audit(detached, as_="lm.temperature", profile=NO_SHRINK, diagnose=False)
    assert report.verdict == "fail"
    assert {c for c, s in _status(report).items() if s == "fail"} == {"gradient"}


def test_declared_no_gradient_skips_the_gradient_check_with_the_reason():
    report = audit(_declaring(detached, no_gradient=WHY_NO_GRAD), profile="quick")
    assert report.verdict == "pass", {c.name: c.message for c in report.checks}
    gradient = next(c for c in report.checks if c.name == "gradient")
    assert (gradient.status, gradient.message) == ("skip", f"declared by the built-in: {WHY_NO_GRAD}")
    assert _status(report)["value=oracle"] == "pass"


# --- who may declare, and how -------------------------------------------------------------------------------
def test_a_users_own_target_cannot_declare_either():
    parameters = inspect.signature(audit).parameters
    assert not {"precision", "precision_reason", "no_gradient"} & set(parameters)
    with pytest.raises(TypeError):
        audit(float32_inside, as_="lm.temperature", precision="float32")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ({"precision": "float8", "precision_reason": WHY_F32}, r"precision='float8', expected one of"),
        ({"precision": "float64", "precision_reason": WHY_F32}, r"precision='float64', expected one of"),
        ({"precision": "float32"}, r"precision and precision_reason go together .* precision_reason=None"),
        ({"precision_reason": WHY_F32}, r"precision and precision_reason go together .* precision=None"),
        ({"no_gradient": " "}, r"no_gradient must say why the target gives none"),
    ],
    ids=["unknown-dtype", "float64", "no-reason", "reason-alone", "empty-no-gradient"],
)
def test_a_malformed_declaration_is_refused_and_not_registered(declared, message):
    with pytest.raises(ValueError, match=r"built-in 'test\.float32_inside': " + message):
        _declaring(float32_inside, **declared)
    with pytest.raises(ValueError, match=message):
        register = builtin("test.refused", "lm.temperature", description="-", mapping={}, **declared)
        register(lambda: float32_inside)
    assert "test.refused" not in BUILTINS
