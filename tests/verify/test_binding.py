"""Binding implementations to equations through jaxtyping annotations."""

import math

import numpy as np
import pytest
import torch
from jaxtyping import Float
from torch import Tensor

from lmspec import impl, spec
from lmspec.verify._errors import BindingError
from lmspec.verify.binding import bind

SDP = spec.get("attention.scaled_dot_product")
MHA = spec.get("attention.multi_head")


def test_impl_layouts_are_read_from_annotations():
    b = bind(impl.implementation("attention.multi_head"), MHA)
    layouts = {lay.name: lay for lay in b.args}
    assert layouts["H"].perm == (1, 0) and layouts["H"].batched  # "*batch n d_e" vs H ∈ ℝ^{d_e×n}
    assert layouts["W_Q"].perm == (0, 1, 2) and not layouts["W_Q"].batched  # stacked family
    assert layouts["W_O"].annotation == "M*d_v d_e"
    assert b.outputs[0].perm == (1, 0)


def test_values_are_transposed_on_the_way_in_and_out():
    def transpose_only(
        H: Float[Tensor, "*batch n d_e"],
        S: Float[Tensor, "*batch n n"],
    ) -> Float[Tensor, "*batch n d_e"]:
        return H

    eq = spec.Equation(
        "test.identity", "identity", inputs=(MHA.declared("H"), MHA.declared("S")),
        intermediates=(spec.tensor("A", (spec.axes.d_e, spec.axes.n)),),
        bindings=[(spec.tensor("A", (spec.axes.d_e, spec.axes.n)), MHA.declared("H"))],
        outputs=(spec.tensor("A", (spec.axes.d_e, spec.axes.n)),), reference=spec.Reference("t"),
    )  # fmt: skip
    b = bind(transpose_only, eq)
    H = np.arange(6.0).reshape(2, 3)  # d_e = 2, n = 3 in spec layout
    out = b.call({"H": H, "S": np.zeros((3, 3))}, {"n": 3, "d_e": 2}, batch_ndim=0)
    np.testing.assert_array_equal(out["A"], H)


def test_wrong_annotation_names_function_parameter_expected_and_found():
    def attn(
        Q: Float[Tensor, "*batch n d_k"],
        K: Float[Tensor, "*batch n d_v"],  # wrong: keys have width d_k
        V: Float[Tensor, "*batch n d_v"],
        S: Float[Tensor, "*batch n n"],
    ) -> Float[Tensor, "*batch n d_v"]:
        return V

    with pytest.raises(BindingError) as err:
        bind(attn, SDP)
    who, _, rest = str(err.value).partition(" (implementing ")
    assert who.endswith("test_wrong_annotation_names_function_parameter_expected_and_found.<locals>.attn")
    assert rest == (
        "attention.scaled_dot_product): parameter 'K' is annotated '*batch n d_v', which does not "
        "match the spec's K ∈ ℝ^(n×d_k): expected the axes (n, d_k) in some order after *batch, "
        "found (n, d_v)"
    )


def test_missing_batch_axes_unknown_axes_and_missing_parameters():
    def no_batch(
        Q: Float[Tensor, "n d_k"],
        K: Float[Tensor, "n d_k"],
        V: Float[Tensor, "n d_v"],
        S: Float[Tensor, "n n"],
    ) -> Float[Tensor, "n d_v"]:
        return V

    with pytest.raises(BindingError, match=r"parameter 'Q' .* must take leading batch axes"):
        bind(no_batch, SDP)

    def odd_axis(Q: Float[Tensor, "*batch seq d_k"], K, V, S) -> Float[Tensor, "*batch n d_v"]:
        return V

    with pytest.raises(BindingError, match="axis 'seq' is not in the glossary"):
        bind(odd_axis, SDP)

    def no_mask(
        Q: Float[Tensor, "*batch n d_k"], K: Float[Tensor, "*batch n d_k"], V: Float[Tensor, "*batch n d_v"]
    ) -> Float[Tensor, "*batch n d_v"]:
        return V

    with pytest.raises(BindingError, match=r"no parameter for the spec's S ∈ \{0,−∞\}\^\(n×n\)"):
        bind(no_mask, SDP)

    def unannotated(Q, K, V, S):
        return V

    with pytest.raises(BindingError, match="parameter 'Q' has no jaxtyping annotation"):
        bind(unannotated, SDP)

    def extra(
        Q: Float[Tensor, "*batch n d_k"],
        K: Float[Tensor, "*batch n d_k"],
        V: Float[Tensor, "*batch n d_v"],
        S: Float[Tensor, "*batch n n"],
        temperature,
    ):
        return V

    with pytest.raises(BindingError, match="parameter 'temperature' is not a symbol of the spec"):
        bind(extra, SDP)


def test_size_parameters_and_dtype_are_supplied():
    b = bind(impl.implementation("attention.causal_mask"), spec.get("attention.causal_mask"))
    assert b.sizes == (("n", "n"),) and b.takes_dtype
    out = b.call({}, {"n": 2}, batch_ndim=0)
    assert out["S"].tolist() == [[0, -math.inf], [0, 0]]


def test_bool_masks_are_converted():
    b = bind(impl.implementation("attention.padding_mask"), spec.get("attention.padding_mask"))
    assert b.args[0].dtype == "bool"
    t = b.args[0].to_impl(np.array([1.0, 0.0]), 0, torch.float64, "cpu")
    assert t.dtype == torch.bool and t.tolist() == [True, False]


# --- per-key masks: the target takes one value per key, the spec's S is their padding mask ---------------
S_PAD = np.array([[0.0, -np.inf, 0.0], [0.0, -np.inf, 0.0]])  # κ = (1, 0, 1), two query rows


@pytest.mark.parametrize(
    "convention, dtype, want",
    [
        ("key_padding", torch.bool, [False, True, False]),  # True = padding (nn.MultiheadAttention)
        ("key_keep", torch.bool, [True, False, True]),
        ("key_keep_int", torch.int64, [1, 0, 1]),  # Hugging Face's attention_mask
        ("key_keep_float", torch.float32, [1.0, 0.0, 1.0]),
        ("key_additive", torch.float32, [0.0, -math.inf, 0.0]),
    ],
)
def test_a_per_key_convention_takes_the_key_row_of_a_padding_mask(convention, dtype, want):
    from lmspec.verify.binding import convert_mask, key_vector

    row = key_vector(S_PAD[None], 1)  # one batch axis
    got = convert_mask(row, True, convention, torch.float32, "cpu")
    assert got.dtype == dtype and got.shape == (1, 3)
    assert got[0].tolist() == want


def test_lengths_count_the_real_keys_of_each_right_padded_row():
    """--mask key_lengths (d2l.ai's valid_lens): a right-padded keep row is its number of real keys."""
    from lmspec.verify.binding import convert_mask

    S = np.array([[0.0, 0.0, -math.inf], [-math.inf] * 3, [0.0] * 3])  # rows: 2 real keys, none, all
    got = convert_mask(S, True, "key_lengths", torch.float32, "cpu")
    assert got.dtype == torch.int64 and got.tolist() == [2, 0, 3]


def test_a_per_key_mask_is_annotated_with_the_key_axis_only():
    from jaxtyping import Bool

    def attend(
        Q: Float[Tensor, "*batch n d_k"],
        K: Float[Tensor, "*batch n d_k"],
        V: Float[Tensor, "*batch n d_v"],
        S: Bool[Tensor, "*batch n"],
    ) -> Float[Tensor, "*batch n d_v"]:
        return V

    eq = spec.get("attention.scaled_dot_product")
    bound = bind(attend, eq, mask="key_padding")
    assert [a.convention for a in bound.args if a.name == "S"] == ["key_padding"]
    with pytest.raises(
        BindingError, match=r"parameter 'S' is annotated '\*batch n'.*expected the axes \(n, n\)"
    ):
        bind(attend, eq, mask="bool_keep")  # an n×n convention needs both axes


def test_same_size_decides_size_expressions_without_simplify():
    import sympy as sp

    from lmspec.spec.axes import M, d_e, d_k
    from lmspec.verify.binding import same_size

    assert same_size(M * d_k, d_k * M)
    assert same_size(2 * (d_e + d_k), 2 * d_e + 2 * d_k)  # equal once expanded
    assert not same_size(d_e, M * d_k)  # a constraint may tie them; the expressions differ
    assert same_size(sp.floor(d_e / 2) + 1, 1 + sp.floor(d_e / 2))
    assert not same_size(sp.floor(d_e / 2), sp.ceiling(d_e / 2))
