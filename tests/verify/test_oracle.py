"""The exact oracle: hand-derivable values, both precisions, caching, and clear errors."""

import math

import mpmath
import numpy as np
import pytest
import sympy as sp

from lmspec import spec
from lmspec.spec import SpecError
from lmspec.spec.ops import LineMax
from lmspec.verify.oracle import Invoke, Oracle, expand, source

SDP = spec.get("attention.scaled_dot_product")


def _causal(n):
    return np.where(np.triu(np.ones((n, n)), 1) > 0, -np.inf, 0.0)


def test_uniform_scores_average_the_values():
    n, d_k, d_v = 3, 2, 5
    V = np.arange(n * d_v, dtype=float).reshape(n, d_v)
    ex = {"Q": np.zeros((n, d_k)), "K": np.zeros((n, d_k)), "V": V, "S": _causal(n)}
    P = Oracle(SDP)(ex, {"n": n, "d_k": d_k, "d_v": d_v})["P"]
    expected = np.cumsum(V, axis=0) / np.arange(1, n + 1)[:, None]  # row i: mean of V's rows 0..i
    np.testing.assert_allclose(P, expected, rtol=0, atol=1e-14)


def test_two_keys_give_the_logistic_weight():
    # Q_0·K_0 = 6, Q_0·K_1 = 0, √d_k = 2: weight on key 0 is e^3 / (1 + e^3)
    Q = np.array([[2.0, 0.0, 0.0, 0.0]])
    K = np.array([[3.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    V = np.array([[1.0], [0.0]])
    ex = {"Q": np.vstack([Q, Q]), "K": K, "V": V, "S": np.zeros((2, 2))}
    P = Oracle(SDP)(ex, {"n": 2, "d_k": 4, "d_v": 1})["P"]
    assert P[0, 0] == pytest.approx(math.exp(3) / (1 + math.exp(3)), abs=1e-15)


def test_fully_masked_rows_under_each_convention():
    n, d_k, d_v = 2, 3, 4
    rng = np.random.default_rng(1)
    S = np.zeros((n, n))
    S[0, :] = -np.inf
    ex = {"Q": rng.normal(size=(n, d_k)), "K": rng.normal(size=(n, d_k)),
          "V": rng.normal(size=(n, d_v)), "S": S}  # fmt: skip
    sizes = {"n": n, "d_k": d_k, "d_v": d_v}
    assert np.all(Oracle(SDP)(ex, sizes)["P"][0] == 0)
    uniform = Oracle(spec.get("attention.scaled_dot_product[fully_masked_uniform]"))(ex, sizes)["P"]
    np.testing.assert_allclose(uniform[0], ex["V"].mean(axis=0), atol=1e-15)
    assert np.isnan(
        Oracle(spec.get("attention.scaled_dot_product[fully_masked_nan]"))(ex, sizes)["P"][0]
    ).all()


def test_without_an_output_projection_multi_head_is_its_heads_side_by_side():
    """attention.multi_head[no_output_projection] is the equation with W_O = I (d_e = M·d_v) and b_O = 0."""
    sizes = {"n": 3, "M": 2, "d_k": 2, "d_v": 3, "d_e": 6}
    rng = np.random.default_rng(4)
    mha = spec.get("attention.multi_head")
    shapes = {
        "W_Q": (2, 6, 2),
        "b_Q": (2, 2),
        "W_K": (2, 6, 2),
        "b_K": (2, 2),
        "W_V": (2, 6, 3),
        "b_V": (2, 3),
    }
    ex = {name: rng.normal(size=shape) for name, shape in shapes.items()}
    ex |= {"H": rng.normal(size=(6, 3)), "S": _causal(3)}
    heads = Oracle(mha.variant("no_output_projection"))(ex, sizes)["A"]
    whole = Oracle(mha)({**ex, "W_O": np.eye(6), "b_O": np.zeros(6)}, sizes)["A"]
    np.testing.assert_allclose(heads, whole, rtol=0, atol=1e-14)
    assert heads.shape == (6, 3)


SDP_MASKED = {
    "Q": [[1.0, 2.0]] * 3,
    "K": [[0.5, -1.0]] * 3,
    "V": [[1.0], [2.0], [4.0]],
    "S": [[-math.inf] * 3, [0.0, -math.inf, 0.0], [0.0, 0.0, 0.0]],
}


@pytest.mark.parametrize(
    ("eq_id", "example"),
    [
        ("lm.softmax", {"z": [-math.inf, -math.inf, -math.inf]}),  # real logits: NaN, no convention
        ("lm.softmax", {"z": [0.5, math.inf, 1.0]}),
        ("attention.softmax_rows", {"Z": [[-math.inf] * 3, [0.0, -math.inf, 2.0], [1.0, 1.0, math.inf]]}),
        ("attention.scaled_dot_product[fully_masked_uniform]", SDP_MASKED),
    ],
    ids=["softmax-all-minus-inf", "softmax-plus-inf", "rows-masked-and-inf", "sdp-uniform"],
)
def test_softmax_named_once_per_line_computes_what_its_entries_define(eq_id, example, monkeypatch):
    """Softmax._explicit builds each line's maximum, exponentials and normaliser once; the oracle it gives
    equals, value for value (NaN where NaN), the one built entry by entry from _entry."""
    from lmspec.spec.ops import Softmax

    eq = spec.get(eq_id)
    sizes = {"v": 3, "n": 3, "d_k": 2, "d_v": 1}
    sizes = {a: sizes[a] for a in eq.axes}
    arrays = {name: np.array(value, dtype=float) for name, value in example.items()}

    def evaluate() -> np.ndarray:
        namespace = {"math": math}
        exec(source(expand(eq, sizes)), namespace)  # no cache: expanded by the Softmax in place now
        return np.array(namespace["oracle"](*(arrays[d.ascii].tolist() for d in (*eq.inputs, *eq.params)))[0])

    once_per_line = evaluate()
    monkeypatch.delattr(Softmax, "_explicit")  # SpecOp's: each entry from _entry
    entry_by_entry = evaluate()
    np.testing.assert_array_equal(once_per_line, entry_by_entry)


def test_mpmath_survives_scores_that_overflow_a_naive_softmax():
    # scores of ±1e4: exp overflows in float64 without the max shift; mpmath at 50 digits is ground truth
    eq = spec.get("attention.softmax_rows")
    Z = np.array([[1e4, 1e4 - 1.0], [-1e4, 0.0]])
    exact = Oracle(eq)({"Z": Z}, {"n": 2}, precision="mpmath", dps=50)["Y"]
    with mpmath.workdps(50):
        w = 1 / (1 + mpmath.e**-1)
        assert abs(exact[0, 0] - w) < mpmath.mpf(10) ** -45
        assert abs(exact[1, 1] - 1) < mpmath.mpf(10) ** -45
    fast = Oracle(eq)({"Z": Z}, {"n": 2})["Y"]
    np.testing.assert_allclose(fast.astype(float), np.array(exact, dtype=float), rtol=1e-15)


def test_batch_axes_are_evaluated_one_by_one():
    eq = spec.get("attention.softmax_rows")
    Z = np.random.default_rng(0).normal(size=(2, 3, 4, 4))
    Y = Oracle(eq)({"Z": Z}, {"n": 4})["Y"]
    assert Y.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(Y[1, 2], Oracle(eq)({"Z": Z[1, 2]}, {"n": 4})["Y"])


def test_compiled_once_per_size_tuple():
    o = Oracle(spec.get("attention.multi_head"))
    sizes = {"n": 2, "d_e": 3, "M": 2, "d_k": 5, "d_v": 7}
    first = o.compiled(sizes)
    assert o.compiled(dict(reversed(sizes.items()))) is first
    assert first.compile_seconds > 0
    assert o.compiled({**sizes, "n": 3}) is not first


def test_program_source_is_straight_line_python():
    prog = expand(SDP, {"n": 2, "d_k": 1, "d_v": 1})
    src = source(prog)
    assert src.startswith("def oracle(Q, K, V, S):")
    assert "math.exp" in src and "max(" in src
    assert "mpmath.exp" in source(prog, "mpmath")


def test_a_called_equation_is_one_function_however_often_it_is_called():
    """A stack of L = 3 blocks prints its block once and calls it three times, and the attention and FFN
    the block calls once each."""
    sizes = {"n": 2, "d_e": 3, "M": 1, "d_k": 2, "d_v": 2, "d_f": 2, "L": 3}
    prog = expand(spec.get("transformer.stack"), sizes)
    invokes = [s for s in prog.assignments if isinstance(s, Invoke)]
    assert len(invokes) == 3 and len({s.fn.name for s in invokes}) == 1
    src = source(prog)
    block = invokes[0].fn.name
    assert src.count(f"def {block}(") == 1 and src.count(f"= {block}(") == 3
    assert src.count("def _attention_multi_head_") == 1 and src.count("def _transformer_ffn") == 1
    assert src.count("= _attention_multi_head_") == 1 and src.count("def ") == 4


def test_an_lstm_step_read_for_two_outputs_is_called_once_per_step():
    sizes = {"n": 3, "d_e": 2, "d_h": 2}
    prog = expand(spec.get("lstm.hidden[sequence]"), sizes)
    assert len([s for s in prog.assignments if isinstance(s, Invoke)]) == 3


def test_line_max_stays_unevaluated_when_rebuilt_and_is_max_on_numbers():
    x, y = sp.symbols("x y", real=True)
    m = LineMax(x, y, x + 1)
    assert isinstance(m, LineMax) and len(m.args) == 3  # Max would drop x, smaller than x + 1
    assert isinstance(m.func(*m.args), LineMax) and isinstance(m.xreplace({y: x}), LineMax)
    assert m.xreplace({x: 1, y: 5}) == 5 and LineMax(2, 7) == 7


def test_missing_or_inconsistent_sizes_are_spec_errors():
    o = Oracle(SDP)
    with pytest.raises(SpecError, match="sizes for d_v are missing"):
        o.compiled({"n": 2, "d_k": 3})
    ex = {"Q": np.zeros((2, 3)), "K": np.zeros((2, 3)), "V": np.zeros((2, 4)), "S": np.zeros((3, 3))}
    with pytest.raises(SpecError, match=r"S has shape \(3, 3\), expected \(2, 2\)"):
        o(ex, {"n": 2, "d_k": 3, "d_v": 4})
    with pytest.raises(SpecError, match="precision must be one of"):
        o.compiled({"n": 2, "d_k": 3, "d_v": 4}, precision="float16")


def test_size_value_evaluates_axis_expressions_by_name():
    import sympy as sp

    from lmspec.spec.axes import M, d_k
    from lmspec.verify.oracle import size_subs, size_value

    sizes = {"M": 3, "d_k": 5, "n": 2}
    assert size_value(M * d_k, sizes) == 15 == int((M * d_k).subs(size_subs(sizes)))
    assert size_value("4*M*d_k", sizes) == 60  # a string: every name of sizes is a symbol
    assert size_value(sp.Symbol("M") + 1, sizes) == 4  # symbols by name, whatever their assumptions
    assert size_value(sp.Integer(7), {}) == 7
    with pytest.raises(TypeError):
        size_value("M*d_v", sizes)  # d_v is not given: as int(expr.subs(...)) would


def test_the_float_printer_prints_what_sympys_printer_prints():
    """The oracle's direct printer (sums, products, powers, numbers, elementary functions) and SymPy's
    PythonCodePrinter, which it falls back to for anything else, give the same values."""
    from sympy.printing.pycode import PythonCodePrinter

    from lmspec.verify.oracle import _FloatPrinter

    x, y, z = sp.symbols("x y z", real=True)
    deep = x
    for k in range(35):  # 70 levels, deeper than the direct printer goes (60): the rest falls back
        deep = sp.tanh(deep + k)
    exprs = [
        x + y * z, x**-2 * y, sp.sqrt(x + 2), 1 / sp.sqrt(y + 3), sp.exp(-x / 2) * sp.Rational(3, 7),
        sp.Float("0.044715") * x**3, sp.Piecewise((x, x > y), (-y, True)), LineMax(x, y, z) - z,
        sp.erf(x / sp.sqrt(2)), sp.log(y + 4) - sp.pi, -x, sp.Add(x, 0, y, evaluate=False), deep,
    ]  # fmt: skip
    plain = PythonCodePrinter(
        {"fully_qualified_modules": True, "allow_unknown_functions": True, "order": "none"}
    )
    plain.known_functions["LineMax"] = plain.known_functions["Max"]
    fast = _FloatPrinter(plain)
    env = {"math": math, "x": 0.37, "y": -1.25, "z": 2.5}
    for e in exprs:
        want = eval(plain.doprint(e), dict(env))
        assert eval(fast.doprint(e), dict(env)) == pytest.approx(want, rel=1e-15, abs=1e-15), e
    assert fast.doprint(x * y + 1) == "((1) + (x*y))"  # printed directly: the sum in SymPy's own order
