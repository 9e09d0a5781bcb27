"""Properties of the vit equations: patches, the patch embedding as a convolution, the input's token locality
(also the timeseries input's), the class token.

Each applies to any target through the spec-layout convention (verify.targets): an image is
``(*batch, C, H_img, W_img)`` (the family of channel planes), patches ``(*batch, d_p, N)``, hidden states
``(*batch, d_e, n)``.
"""

import numpy as np
import torch
from hypothesis import strategies as st

from ._base import _agree, _axis, _noise, _violation, _with, prop


def unpatchify(X_p: np.ndarray, P: int, C: int, N_h: int, N_w: int) -> np.ndarray:
    """The image ``(*batch, C, P N_h, P N_w)`` of patches ``(*batch, P²C, N_h N_w)`` in the spec's order:
    patches row-major over the grid, entries (channel, row, column) within a patch."""
    lead = X_p.shape[:-2]
    grid = np.swapaxes(X_p, -1, -2).reshape(*lead, N_h, N_w, C, P, P)  # (…, a, b, k, r, s)
    return np.einsum("...abkrs->...karbs", grid).reshape(*lead, C, N_h * P, N_w * P)


# --- vit.patchify ---------------------------------------------------------------------------------
@prop("patchify_bijection", "patchify permutes the image's entries and unpatchify ∘ patchify = id")
def _patchify_bijection(eq, target, example, data, options, tol):
    name, out = options["input"], options["output"]
    s = example.sizes
    X = example.arrays[name]
    seed = data.draw(st.integers(0, 2**32 - 1), label="pixel order")
    distinct = np.random.default_rng(seed).permutation(X.size).reshape(X.shape).astype(np.float64)
    X_p = target(_with(example, **{name: distinct}), s)[out]
    if X_p.size != distinct.size or not np.array_equal(np.sort(X_p, axis=None), np.sort(distinct, axis=None)):
        raise _violation(
            "patchify_bijection", target, "the patches do not hold every pixel of the image exactly once"
        )
    back = unpatchify(X_p, s["P"], s["C_i"], s["N_h"], s["N_w"])
    _agree(
        "patchify_bijection",
        target,
        back,
        distinct,
        "unpatchify(patchify(X)) ≠ X: the patches or their entries are not in the spec's order "
        "(row-major patches, each flattened channel, row, column)",
        tol,
    )


@prop("patch_embedding_is_conv", "E_p X_p + b_p 1ᵀ equals Conv2d(C, d_e, P, stride=P) with E_p's reshape")
def _patch_embedding_is_conv(eq, target, example, data, options, tol):
    name, out = options["input"], options["output"]
    s = example.sizes
    P, C = s["P"], s["C_i"]
    d_e = data.draw(st.integers(1, 4), label="d_e")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="embedding seed"))
    E_p, b_p = rng.uniform(-1, 1, size=(d_e, C * P * P)), rng.uniform(-1, 1, size=d_e)
    X = example.arrays[name]
    X_p = target(example.arrays, s)[out]  # (*batch, P²C, N)
    got = np.einsum("ed,...dn->...en", E_p, X_p) + b_p[:, None]
    image = torch.from_numpy(np.ascontiguousarray(X)).reshape(-1, C, *X.shape[-2:])
    weight = torch.from_numpy(E_p).reshape(d_e, C, P, P)  # Conv2d's (out, in, kernel, kernel)
    conv = torch.nn.functional.conv2d(image, weight, torch.from_numpy(b_p), stride=P)  # (B, d_e, N_h, N_w)
    want = conv.flatten(-2).reshape(*X.shape[:-3], d_e, -1).numpy()
    _agree(
        "patch_embedding_is_conv",
        target,
        got,
        want,
        "E_p x_p^i + b_p is not the stride-P convolution with weight E_p reshaped to (d_e, C, P, P)",
        tol,
    )


# --- vit.input, timeseries.input ------------------------------------------------------------------
@prop("token_locality", "input column j reaches output column j + offset only (the class token none)")
def _token_locality(eq, target, example, data, options, tol):
    name, out, offset = options["input"], options["output"], options.get("offset", 0)
    x = example.arrays[name]
    in_axis = _axis(eq, name, options["input_axis"], example.batch)
    out_axis = _axis(eq, out, options["output_axis"], example.batch)
    j = data.draw(st.integers(0, x.shape[in_axis] - 1), label="column j")
    noise = _noise(data, x.shape, f"new {name}")
    at = (np.arange(x.shape[in_axis]) == j).reshape([-1 if k == in_axis else 1 for k in range(x.ndim)])
    before = target(example.arrays, example.sizes)[out]
    after = target(_with(example, **{name: np.where(at, noise, x)}), example.sizes)[out]
    others = [k for k in range(before.shape[out_axis]) if k != j + offset]
    _agree(
        "token_locality",
        target,
        np.take(after, others, axis=out_axis),
        np.take(before, others, axis=out_axis),
        f"changing column {j + 1} of {name} changed a column of {out} other than {j + 1 + offset}",
        tol,
    )


# --- vit.head -------------------------------------------------------------------------------------
@prop("class_token_only", "the class probabilities read the class token (column 1) only and sum to 1")
def _class_token_only(eq, target, example, data, options, tol):
    name, out = options["input"], options["output"]
    H = example.arrays[name]
    before = target(example.arrays, example.sizes)[out]
    _agree(
        "class_token_only",
        target,
        before.sum(axis=-1),
        np.ones(before.shape[:-1]),
        "ŷ does not sum to 1",
        tol,
    )
    if (before < 0).any():
        raise _violation("class_token_only", target, "a class probability is negative")
    noise = _noise(data, H.shape, f"new {name}")
    moved = H.copy()
    moved[..., 1:] = noise[..., 1:]  # every column but the class token
    after = target(_with(example, **{name: moved}), example.sizes)[out]
    _agree("class_token_only", target, after, before, "changing the patch tokens changed ŷ", tol)
