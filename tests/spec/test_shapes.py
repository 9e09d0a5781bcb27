"""The strict symbolic shape checker: SymPy alone accepts mismatched symbolic products."""

import pytest
import sympy as sp

from lmspec.spec import Equation, Family, Reference, SpecError, SpecShapeError, tensor
from lmspec.spec.axes import M, d_e, d_k, d_v, m, n
from lmspec.spec.ops import Ones, Softmax, T, add, mul

REF = Reference("test")


def test_sympy_alone_lets_a_symbolic_mismatch_through():
    Q = sp.MatrixSymbol("Q", n, d_k)
    V = sp.MatrixSymbol("V", n, d_v)
    assert (Q * V).shape == (n, d_v)  # why spec/ has its own checker


def test_product_mismatch_names_equation_axis_and_both_sides():
    Q = tensor("Q", (n, d_k))
    V = tensor("V", (n, d_v))
    P = tensor("P", (n, d_v))
    with pytest.raises(SpecShapeError) as err:
        Equation(
            "test.bad_product",
            "bad",
            inputs=(Q, V),
            intermediates=(P,),
            bindings=[(P, mul(Q, V))],
            outputs=(P,),
            reference=REF,
        )
    msg = str(err.value)
    assert msg == (
        "test.bad_product: product: inner axis (columns × rows) disagrees: "
        "left side Q (n×d_k) has d_k, right side V (n×d_v) has n"
    )
    assert err.value.equation == "test.bad_product"
    assert err.value.axis == "inner axis (columns × rows)"


def test_sum_mismatch_names_the_axis():
    A = tensor("A", (n, d_k))
    B = tensor("B", (n, d_v))
    C = tensor("C", (n, d_k))
    with pytest.raises(
        SpecShapeError,
        match=r"test.bad_sum: sum: columns disagrees: left side A "
        r"\(n×d_k\) has d_k, right side B \(n×d_v\) has d_v",
    ):
        Equation(
            "test.bad_sum",
            "bad",
            inputs=(A, B),
            intermediates=(C,),
            bindings=[(C, add(A, B))],
            outputs=(C,),
            reference=REF,
        )


def test_mismatch_inside_an_operator_is_found():
    Q = tensor("Q", (n, d_k))
    K = tensor("K", (n, d_v))
    Y = tensor("Y", (n, n))
    with pytest.raises(SpecShapeError, match="inner axis"):
        Equation(
            "test.bad_scores",
            "bad",
            inputs=(Q, K),
            intermediates=(Y,),
            bindings=[(Y, Softmax(mul(Q, T(K))))],
            outputs=(Y,),
            reference=REF,
        )


def test_constraints_make_equal_what_they_declare():
    H = tensor("H", (d_e, n))
    W = tensor("W", (d_e, M * d_k))
    X = tensor("X", (d_e, n))
    # W H needs M·d_k = d_e: rejected without the constraint, accepted with it
    with pytest.raises(SpecShapeError):
        Equation(
            "test.c",
            "c",
            inputs=(H, W),
            intermediates=(X,),
            bindings=[(X, mul(W, H))],
            outputs=(X,),
            reference=REF,
        )
    eq = Equation(
        "test.c",
        "c",
        inputs=(H, W),
        intermediates=(X,),
        bindings=[(X, mul(W, H))],
        outputs=(X,),
        reference=REF,
        constraints=(sp.Eq(d_e, M * d_k),),
    )
    assert eq.free_axes == ("n", "M", "d_k")


def test_declared_shape_must_match_the_definition():
    H = tensor("H", (d_e, n))
    X = tensor("X", (n, d_e))
    with pytest.raises(SpecError, match=r"test.decl: X is declared n×d_e but its definition has rows"):
        Equation(
            "test.decl", "d", inputs=(H,), intermediates=(X,), bindings=[(X, H)], outputs=(X,), reference=REF
        )


def test_undeclared_symbol_is_rejected():
    H = tensor("H", (d_e, n))
    G = tensor("G", (d_e, n))
    X = tensor("X", (d_e, n))
    with pytest.raises(SpecError, match="uses G before it is declared"):
        Equation(
            "test.undeclared",
            "u",
            inputs=(H,),
            intermediates=(X,),
            bindings=[(X, add(H, G))],
            outputs=(X,),
            reference=REF,
        )


def test_families_are_checked_per_member():
    H = tensor("H", (d_e, n))
    W = Family("W_Q", m, M, (d_e, d_k))
    b = Family("b_Q", m, M, (d_v,))
    Q = Family("Q", m, M, (n, d_k))
    with pytest.raises(SpecShapeError, match="columns disagrees"):
        Equation(
            "test.fam",
            "f",
            inputs=(H,),
            params=(W, b),
            intermediates=(Q,),
            bindings=[(Q[m], add(mul(T(H), W[m]), mul(Ones(n), T(b[m]))))],
            outputs=(Q,),
            reference=REF,
        )


def test_bad_equation_ids_and_shapes_are_spec_errors():
    with pytest.raises(SpecError, match="vector or a matrix"):
        tensor("X", (n, n, n))
    H = tensor("H", (d_e, n))
    with pytest.raises(SpecError, match="must be 'family.name'"):
        Equation("noperiod", "x", inputs=(H,), bindings=[], outputs=(), reference=REF)
