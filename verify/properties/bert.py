"""Properties of the bert equations: padding, distributions, the MLM masking rates and loss, the pooler.

Each applies to any target through the spec-layout convention of verify.properties (arrays as the tutorial
orients them, per-example inputs and outputs with leading batch axes).
"""

import numpy as np
from hypothesis import strategies as st

from .._errors import PropertyViolation
from ..strategies import reals
from ._base import _agree, _axis, _token_mask, _with, prop


@prop("padding_invariance", "changing padded tokens leaves the outputs at real tokens unchanged")
def _padding(eq, target, example, data, options, tol):
    keep = example.arrays[options["keep"]] > 0
    nb = len(example.batch)
    moved = {}
    for name, ax in options["tokens"].items():
        arr = example.arrays[name]
        axis = _axis(eq, name, ax, example.batch)
        noise = data.draw(reals(arr.shape), label=f"new {name}")
        moved[name] = np.where(_token_mask(keep, arr, axis, nb), arr, noise)
    before = target(example.arrays, example.sizes)
    after = target(_with(example, **moved), example.sizes)
    for out, ax in options["output_tokens"].items():
        axis = _axis(eq, out, ax, example.batch)
        real = _token_mask(keep, before[out], axis, nb)
        _agree(
            "padding_invariance",
            target,
            np.where(real, after[out], 0.0),
            np.where(real, before[out], 0.0),
            f"changing padded tokens of {', '.join(options['tokens'])} changed {out} at a real token",
            tol,
        )


@prop("columns_are_distributions", "each column of the outputs is a probability distribution")
def _distributions(eq, target, example, data, options, tol):
    result = target(example.arrays, example.sizes)
    for out in options["outputs"]:
        Y = result[out]
        bad = ~(Y >= 0)
        if bad.any():
            where = [int(i) for i in np.argwhere(bad)[0]]
            raise PropertyViolation(
                f"{target.name} violates columns_are_distributions: {out} entry {where} is "
                f"{Y[tuple(where)]:.6g}, not a probability",
                check="property:columns_are_distributions",
            )
        sums = Y.sum(axis=_axis(eq, out, 0, example.batch))
        _agree(
            "columns_are_distributions",
            target,
            sums,
            np.ones_like(sums),
            f"a column of {out} does not sum to 1",
            tol,
        )


@prop("columns_standardised", "with α = 1 and β = 0 every column has mean 0 and variance 1 (or 0)")
def _standardised(eq, target, example, data, options, tol):
    arrays = _with(
        example,
        **{
            options["alpha"]: np.ones_like(example.arrays[options["alpha"]]),
            options["beta"]: np.zeros_like(example.arrays[options["beta"]]),
        },
    )
    H = target(arrays, example.sizes)[options["output"]]
    features = _axis(eq, options["output"], 0, example.batch)
    mean = H.mean(axis=features)
    _agree("columns_standardised", target, mean, np.zeros_like(mean), "a column's mean is not 0", tol)
    var = (H**2).mean(axis=features)
    if "eps" in options:  # σ²/(σ² + ε) < 1
        ok = (var >= 0) & (var < 1 + tol.atol)
        if not ok.all():
            where = [int(i) for i in np.argwhere(~ok)[0]]
            raise PropertyViolation(
                f"{target.name} violates columns_standardised: column {where} has variance "
                f"{var[tuple(where)]:.6g}, outside [0, 1) with ε > 0",
                check="property:columns_standardised",
            )
        return
    want = np.where(var < 0.5, 0.0, 1.0)  # a constant column normalises to 0
    _agree("columns_standardised", target, var, want, "a column's variance is neither 1 nor 0", tol)


@prop("mlm_masking_rates", "special tokens are never selected; other tokens follow the 15% / 80-10-10 rates")
def _masking_rates(eq, target, example, data, options, tol):
    special = example.arrays[options["special"]] > 0
    Pi = target(example.arrays, example.sizes)[options["output"]]
    outcomes = _axis(eq, options["output"], 0, example.batch)
    rho = options["select"]
    maskable = np.array([1 - rho, *(rho * f for f in options["split"])])
    untouched = np.array([1.0, 0.0, 0.0, 0.0])
    want = np.where(special[..., None], untouched, maskable)  # (*batch, n, 4)
    _agree(
        "mlm_masking_rates",
        target,
        np.moveaxis(Pi, outcomes, -1),
        want,
        "the outcome probabilities of a token are not (1, 0, 0, 0) for a special token and "
        f"{tuple(maskable.round(4))} for the others",
        tol,
    )


@prop("mlm_loss_masked_only", "the loss does not depend on the tokens outside the masked set, and is ≥ 0")
def _masked_only(eq, target, example, data, options, tol):
    sel = example.arrays[options["select"]] > 0
    Y = example.arrays[options["probabilities"]]
    k = example.arrays[options["index"]]
    v = Y.shape[-2]
    weights = data.draw(
        st.lists(st.integers(1, 64), min_size=Y.size, max_size=Y.size), label="new probabilities"
    )
    fresh = np.array(weights, dtype=np.float64).reshape(Y.shape)
    fresh = fresh / fresh.sum(axis=-2, keepdims=True)
    other = np.array(
        data.draw(st.lists(st.integers(0, v - 1), min_size=k.size, max_size=k.size), label="new ids")
    ).reshape(k.shape)
    moved = {
        options["probabilities"]: np.where(sel[..., None, :], Y, fresh),
        options["index"]: np.where(sel, k, other),
    }
    before = target(example.arrays, example.sizes)
    after = target(_with(example, **moved), example.sizes)
    for out, value in before.items():
        _agree(
            "mlm_loss_masked_only",
            target,
            after[out],
            value,
            "changing Ŷ and k outside the masked set changed the loss",
            tol,
        )
        if (value < -tol.atol).any():
            raise PropertyViolation(
                f"{target.name} violates mlm_loss_masked_only: the loss {value.min():.6g} is negative",
                check="property:mlm_loss_masked_only",
            )


@prop("first_token_only", "the output depends on the first token ([CLS]) only")
def _first_token(eq, target, example, data, options, tol):
    moved = {}
    for name, ax in options["tokens"].items():
        arr = example.arrays[name]
        axis = _axis(eq, name, ax, example.batch)
        noise = data.draw(reals(arr.shape), label=f"new {name}")
        first = (np.arange(arr.shape[axis]) == 0).reshape([-1 if d == axis else 1 for d in range(arr.ndim)])
        moved[name] = np.where(first, arr, noise)
    before = target(example.arrays, example.sizes)
    after = target(_with(example, **moved), example.sizes)
    for out in before:
        _agree(
            "first_token_only", target, after[out], before[out], f"changing tokens 2..n changed {out}", tol
        )


@prop("classifier_cross_entropy", "the loss is −log ŷ_c of the label c, and ŷ is a distribution")
def _cross_entropy(eq, target, example, data, options, tol):
    out = target(example.arrays, example.sizes)
    y = example.arrays["y"][..., 0]  # (*batch, n_c), one-hot
    picked = (out["y_hat"] * y).sum(axis=-1)
    with np.errstate(divide="ignore"):
        want = -np.log(picked)
    _agree("classifier_cross_entropy", target, out["loss"], want, "the loss is not −log ŷ of the label", tol)
