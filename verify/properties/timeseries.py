"""Properties of the timeseries equations: the masked reconstruction loss, channel independence.

Each applies to any target through the spec-layout convention (verify.targets): a per-variable family is
``(*batch, m, …)``.
"""

import numpy as np
from hypothesis import strategies as st

from ._base import _agree, _axis, _noise, _violation, _with, prop


# --- timeseries.masked_mse ------------------------------------------------------------------------
@prop(
    "masked_entries_only",
    "the loss ignores unmasked entries, is ≥ 0, and is 0 (or NaN, option empty) when nothing is masked",
)
def _masked_entries_only(eq, target, example, data, options, tol):
    pred, mask_name, out = options["prediction"], options["mask"], options["output"]
    X_hat, mask = example.arrays[pred], example.arrays[mask_name]
    before = target(example.arrays, example.sizes)[out]
    scored = mask.reshape(*mask.shape[:-2], -1).any(axis=-1)  # examples with a masked entry
    if not (before[scored] >= 0).all():
        raise _violation(
            "masked_entries_only", target, f"the loss is {before[scored].min():.6g} (< 0 or NaN)"
        )
    noise = _noise(data, X_hat.shape, f"new {pred}")
    after = target(_with(example, **{pred: np.where(mask > 0, X_hat, noise)}), example.sizes)[out]
    _agree(
        "masked_entries_only", target, after, before, "changing unmasked predictions changed the loss", tol
    )
    empty = target(_with(example, **{mask_name: np.zeros_like(mask)}), example.sizes)[out]
    nan = options.get("empty", "zero") == "nan"
    _agree(
        "masked_entries_only",
        target,
        empty,
        np.full_like(empty, np.nan if nan else 0.0),
        f"with no masked entry the loss is not {'NaN' if nan else '0 (the mean over no entry)'}",
        tol,
    )


# --- timeseries.patching --------------------------------------------------------------------------
@prop("channel_independence", "variable i's output is the output of variable i's series alone (m = 1)")
def _channel_independence(eq, target, example, data, options, tol):
    name, out = options["input"], options["output"]
    X = example.arrays[name]
    var_axis = _axis(eq, name, 0, example.batch)
    i = data.draw(st.integers(0, X.shape[var_axis] - 1), label="variable i")
    whole = target(example.arrays, example.sizes)[out]
    alone = target(_with(example, **{name: np.take(X, [i], axis=var_axis)}), {**example.sizes, "d_x": 1})[out]
    lead = len(example.batch)  # the family axis of the output follows the batch axes
    _agree(
        "channel_independence",
        target,
        np.take(whole, i, axis=lead),
        np.take(alone, 0, axis=lead),
        f"the output of variable {i + 1} depends on the other variables",
        tol,
    )
