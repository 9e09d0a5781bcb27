"""Operators: meaning element by element, notation, and code for every operator of the registry."""

import pytest
import sympy as sp

from lmspec import spec
from lmspec.spec import SpecError, tensor
from lmspec.spec.axes import d_k, m, n
from lmspec.spec.ops import OPERATORS_BASE, CausalMask, HeadConcat, MaskFill, Ones, PaddingMask, Softmax
from lmspec.spec.ops_nn import OPERATORS, OPERATORS_NN
from lmspec.spec.printing.latex import latex
from lmspec.spec.tensors import Family, Kind


def test_softmax_entry_is_the_textbook_formula_at_symbolic_size():
    Z = tensor("Z", (n, n))
    i, j = sp.symbols("i j", integer=True)
    entry = Softmax(Z)._entry(i, j)
    (k,) = entry.atoms(sp.Dummy)
    assert entry == sp.exp(Z[i, j]) / sp.Sum(sp.exp(Z[i, k]), (k, 0, n - 1))


def test_softmax_entry_at_concrete_size_is_hand_derivable():
    # scores (0, ln 2, ln 3) give weights (1, 2, 3) / 6
    Z = sp.ImmutableMatrix([[0, sp.log(2), sp.log(3)]])
    weights = [sp.nsimplify(Softmax(Z)._entry(0, j)) for j in range(3)]
    assert weights == [sp.Rational(1, 6), sp.Rational(1, 3), sp.Rational(1, 2)]


def test_softmax_columns_normalise_each_column():
    Z = sp.ImmutableMatrix([[0, 0], [sp.log(3), 0]])
    col = Softmax(Z, "columns")
    assert sp.nsimplify(col._entry(0, 0)) == sp.Rational(1, 4)
    assert sp.nsimplify(col._entry(1, 1)) == sp.Rational(1, 2)


@pytest.mark.parametrize(("convention", "expected"), [("zero", 0), ("uniform", sp.Rational(1, 2))])
def test_fully_masked_row_follows_its_convention(convention, expected):
    Z = sp.ImmutableMatrix([[-sp.oo, -sp.oo], [0, -sp.oo]])
    s = Softmax(Z, "rows", convention)
    assert s._entry(0, 0) == expected and s._entry(0, 1) == expected
    assert s._entry(1, 0).doit() == 1 and s._entry(1, 1).doit() == 0


def test_fully_masked_nan_convention():
    Z = sp.ImmutableMatrix([[-sp.oo, -sp.oo]])
    assert Softmax(Z, "rows", "nan")._entry(0, 0) is sp.nan


def test_softmax_rejects_unknown_options():
    Z = tensor("Z", (n, n))
    with pytest.raises(SpecError, match="axis must be 'rows' or 'columns', found 'diag'"):
        Softmax(Z, "diag")
    with pytest.raises(SpecError, match="fully_masked must be one of"):
        Softmax(Z, "rows", "ones")


def test_causal_mask_entries():
    S = CausalMask(sp.Integer(3))
    got = [[S._entry(i, j) for j in range(3)] for i in range(3)]
    assert got == [[0, -sp.oo, -sp.oo], [0, 0, -sp.oo], [0, 0, 0]]
    assert CausalMask(sp.Integer(2), -10_000)._entry(0, 1) == -10_000


def test_padding_mask_masks_columns_of_padded_keys():
    keep = sp.ImmutableMatrix([[1], [0], [1]])
    S = PaddingMask(keep, 2)
    assert S.shape == (2, 3)
    assert [[S._entry(i, j) for j in range(3)] for i in range(2)] == [[0, -sp.oo, 0]] * 2


def test_mask_fill_replaces_only_minus_infinity():
    S = sp.ImmutableMatrix([[0, -sp.oo]])
    f = MaskFill(S, -10_000)
    assert (f._entry(0, 0), f._entry(0, 1)) == (0, -10_000)


def test_head_concat_puts_heads_side_by_side():
    P = Family("P", m, 2, (n, d_k))
    cat = HeadConcat(P[m], m, 2)
    assert cat.shape == (n, 2 * d_k)
    blocks = sp.ImmutableMatrix([[1, 2]]), sp.ImmutableMatrix([[3, 4]])
    explicit = cat._explicit(lambda e: blocks[int(e.index) - 1])
    assert explicit == sp.ImmutableMatrix([[1, 2, 3, 4]])


def test_ones_broadcasts_a_bias_to_every_row():
    b = sp.ImmutableMatrix([[5], [7]])
    assert sp.ImmutableMatrix(Ones(3)._explicit(lambda e: e)) * b.T == sp.ImmutableMatrix([[5, 7]] * 3)


def _instances():
    Z = tensor("Z", (n, n), Kind.SCORE)
    keep = tensor("keep", (n,), Kind.MASK)
    P = Family("P", m, 2, (n, d_k))
    return {
        Softmax: Softmax(Z),
        Ones: Ones(n),
        CausalMask: CausalMask(n),
        PaddingMask: PaddingMask(keep, n),
        MaskFill: MaskFill(Z, -10_000),
        HeadConcat: HeadConcat(P[m], m, 2),
        **_nn_instances(),
    }


def _nn_instances():
    from lmspec.spec.axes import d_e, v
    from lmspec.spec.ops_nn import (
        Call,
        Column,
        Elementwise,
        FirstColumns,
        LayerNorm,
        Neg,
        OneHot,
        Pick,
        Scalar,
        Scaled,
        Stacked,
        Zeros,
        call,
    )

    H = tensor("H", (d_e, n))
    alpha, beta = tensor("alpha", (d_e,), tex=r"\alpha"), tensor("beta", (d_e,), tex=r"\beta")
    k = tensor("k", (n,), Kind.INDEX)
    tau = tensor("tau", (), Kind.POSITIVE, tex=r"\tau")
    x = Family("x", m, 2, (d_e,), tex="x_{{index}}")
    return {
        Neg: Neg(H),
        Elementwise: Elementwise(H, "gelu"),
        LayerNorm: LayerNorm(H, alpha, beta),
        OneHot: OneHot(k, v),
        Pick: Pick(tensor("Y", (v, n)), k),
        Column: Column(H, 2),
        FirstColumns: FirstColumns(tensor("Lambda", (d_e, v), tex=r"\Lambda"), n),
        Stacked: Stacked(x[m], m, 2),
        Zeros: Zeros(d_e),
        Scalar: Scalar(2 * d_e),
        Scaled: Scaled(H, tau, -1),
        # call() takes a registered equation: spec.get loads the catalogue, which registers it
        Call: call(
            spec.get("attention.softmax_rows").id, "Y", tex=r"\operatorname{softmax}", Z=tensor("Z", (n, n))
        ),
    }


def test_operators_are_those_of_ops_and_ops_nn():
    """spec.ops_nn.OPERATORS joins both modules' operators: every SpecOp they define, each once."""
    from lmspec.spec import ops, ops_nn

    assert OPERATORS == (*OPERATORS_BASE, *OPERATORS_NN)
    defined = {
        obj
        for module in (ops, ops_nn)
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, ops.SpecOp) and obj is not ops.SpecOp
        and obj.__module__ == module.__name__
    }  # fmt: skip
    assert set(OPERATORS) == defined and len(OPERATORS) == len(defined)


@pytest.mark.parametrize("op", OPERATORS, ids=lambda o: o.__name__)
def test_every_operator_prints_latex_and_str(op):
    expr = _instances()[op]
    text = latex(expr)
    assert text and text != str(expr)
    assert str(expr)


def test_operator_latex_goldens():
    inst = _instances()
    assert latex(inst[Softmax]) == r"\operatorname{softmax}\left(Z\right)"
    assert latex(inst[Ones]) == r"\mathbf{1}_{n}"
    assert latex(inst[HeadConcat]) == r"\left[P^{(1)}, \ldots, P^{(2)}\right]"
    assert latex(Softmax(tensor("Y", (n, n)), "columns")) == (
        r"\operatorname{softmax}_{\mathrm{col}}\left(Y\right)"
    )
