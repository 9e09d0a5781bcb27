"""Properties of the transformer equations: the feed-forward network position by position, the input's
token locality, the decoder's built-in causal mask, and a block with its sublayers switched off (which builds
on the norm family's reference layer norm).

Each applies to any target (impl/, the oracle, generated code, a third-party implementation) through the
``target(arrays, sizes)`` convention of verify.targets, arrays in spec layout (``H`` is ``d_e × n`` after any
batch axes). Options come from the equation's ``Invariant`` declarations in spec/.
"""

import numpy as np
from hypothesis import strategies as st

from ...spec import Family
from ..strategies import tensors
from ._base import _after_position, _agree, _axis, _changed_after, _eps, _with, prop
from .norm import reference_layer_norm


# --- tokens ----------------------------------------------------------------------------------------
@prop("ffn_position_wise", "each output column is the network applied to that input column alone")
def _position_wise(eq, target, example, data, options, tol):
    name, out = options["input"], options["output"]
    whole = target(example.arrays, example.sizes)[out]
    C = example.arrays[name]
    for i in range(C.shape[-1]):
        alone = target(_with(example, **{name: C[..., i : i + 1]}), {**example.sizes, "n": 1})[out]
        _agree(
            "ffn_position_wise",
            target,
            alone,
            whole[..., i : i + 1],
            f"column {i} computed alone differs from column {i} of the whole",
            tol,
        )


@prop("input_token_locality", "changing token j changes output column j only")
def _token_locality(eq, target, example, data, options, tol):
    name, out = options["input"], options["output"]
    axis = _axis(eq, name, options["input_axis"], example.batch)
    out_axis = _axis(eq, out, options["output_axis"], example.batch)
    arr = example.arrays[name]
    n = arr.shape[axis]
    j = data.draw(st.integers(0, n - 1), label="token j")
    fresh = data.draw(tensors(eq.declared(name).entry_kind, arr.shape, example.sizes), label=f"new {name}")
    at_j = (np.arange(n) == j).reshape([-1 if k == axis else 1 for k in range(arr.ndim)])
    before = target(example.arrays, example.sizes)[out]
    after = target(_with(example, **{name: np.where(at_j, fresh, arr)}), example.sizes)[out]
    others = [i for i in range(before.shape[out_axis]) if i != j]
    _agree(
        "input_token_locality",
        target,
        np.take(after, others, axis=out_axis),
        np.take(before, others, axis=out_axis),
        f"changing token {j} changed another column of {out}",
        tol,
    )


@prop("decoder_causal", "(a built-in causal mask) changing tokens after i leaves outputs up to i unchanged")
def _causal_prefix(eq, target, example, data, options, tol):
    tokens: dict[str, int] = options["tokens"]
    first = next(iter(tokens))
    n = example.arrays[first].shape[_axis(eq, first, tokens[first], example.batch)]
    i = _after_position(data, n)
    moved = _changed_after(data, eq, example.arrays, tokens, i, example.batch)
    before = target(example.arrays, example.sizes)
    after = target(moved, example.sizes)
    for out, ax in options["output_tokens"].items():
        axis = _axis(eq, out, ax, example.batch)
        _agree(
            "decoder_causal",
            target,
            np.take(after[out], range(i + 1), axis=axis),
            np.take(before[out], range(i + 1), axis=axis),
            f"changing tokens after position {i} changed {out} at a position ≤ {i}",
            tol,
        )


# --- blocks ----------------------------------------------------------------------------------------
@prop(
    "block_zero_sublayers",
    "with the sublayers' output projections zero, a pre-LN block (stack) is the identity (then the final "
    "LN) and a post-LN block applies its layer norms only",
)
def _zero_sublayers(eq, target, example, data, options, tol):
    zeroed = {k: np.zeros_like(example.arrays[k]) for k in options["zero"]}
    got = target(_with(example, **zeroed), example.sizes)[options["output"]]
    want = example.arrays[options["input"]]
    eps = _eps(example, options)
    per_layer = isinstance(eq.declared(options["norms"][0][0]), Family)
    layers = example.sizes["L"] if per_layer else 1
    if options["form"] == "post":
        for layer in range(layers):
            for a, b in options["norms"]:
                alpha, beta = example.arrays[a], example.arrays[b]
                if per_layer:
                    alpha, beta = alpha[layer], beta[layer]
                want = reference_layer_norm(want, alpha, beta, eps)
    if "final" in options:
        a, b = options["final"]
        want = reference_layer_norm(want, example.arrays[a], example.arrays[b], eps)
    what = {"pre": "the input (then the final LN)", "post": "the input through the block's layer norms"}
    _agree(
        "block_zero_sublayers",
        target,
        got,
        want,
        f"with {', '.join(options['zero'])} = 0 the output is not {what[options['form']]}",
        tol,
    )
