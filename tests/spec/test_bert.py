"""The bert family of the spec: registry, notation, shapes, variants, hand-derived values with the oracle,
the spec's own invariants, and properties that catch broken targets."""

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from lmspec import spec
from lmspec.spec import Family, Kind, SpecError
from lmspec.spec.axes import GLOSSARY
from lmspec.spec.bert import Constant, Neg, mlm_masking
from lmspec.spec.printing.latex import latex
from lmspec.verify._errors import PropertyViolation
from lmspec.verify.compare import POLICY
from lmspec.verify.oracle import Oracle, concrete_shape
from lmspec.verify.properties import PROPERTIES, properties_of
from lmspec.verify.strategies import examples, size_tuples
from lmspec.verify.targets import GeneratedTarget, OracleTarget, Target

BERT = [
    "bert.input",
    "bert.encoder",
    "bert.mlm_head",
    "bert.mlm_masking",
    "bert.mlm_loss",
    "bert.pooler",
    "bert.nsp_head",
    "bert.classifier",
]
d_e, n, v, L, M, d_k, d_v, d_f, n_max = (
    GLOSSARY[a].symbol for a in ("d_e", "n", "v", "L", "M", "d_k", "d_v", "d_f", "n_max")
)
n_c = GLOSSARY["n_c"].symbol


def test_registry_holds_the_bert_family_in_order():
    assert [e.id for e in spec.families()["bert"]] == BERT
    for eq in spec.select(["bert"]):
        assert eq.reference.status == "R" and "Devlin et al. 2019" in eq.reference.source
        assert eq.title and eq.notes


# LaTeX goldens written from the equations (Devlin et al. 2019 in the tutorial's notation), not copied
# from the printer's output.
def test_input_latex():
    assert spec.get("bert.input").latex_lines() == [
        r"\Omega = \operatorname{onehot}_{v}\left(k\right)",
        r"\Sigma = \operatorname{onehot}_{2}\left(s\right)",
        r"H^{0} = \operatorname{LN}\left(E \Omega + \Lambda_{:,1:n} + G \Sigma; \alpha_{e}, \beta_{e}\right)",
    ]


def test_encoder_latex_is_a_stack_of_post_ln_blocks():
    assert spec.get("bert.encoder").latex_lines() == [
        r"S = S^{\mathrm{pad}}\left(\kappa\right)",
        r"H^{0} = X",
        r"H^{l} = \operatorname{Block}^{(l)}\left(H^{l - 1}, S\right)",
    ]


def test_mlm_head_latex():
    assert spec.get("bert.mlm_head").latex_lines() == [
        r"T = \operatorname{LN}\left(\operatorname{GELU}\left("
        r"W_{m} H^{L} + b_{m} \mathbf{1}_{n}^{\top}\right); \alpha_{m}, \beta_{m}\right)",
        r"Z = E^{\top} T + b_{\mathrm{out}} \mathbf{1}_{n}^{\top}",
        r"\hat{Y} = \operatorname{softmax}_{\mathrm{col}}\left(Z\right)",
    ]


def test_masking_latex_shows_the_rates():
    lines = spec.get("bert.mlm_masking").latex_lines()
    assert lines[1] == (
        r"\Pi = \begin{bmatrix} 0.85 & 1 \\ 0.12 & 0 \\ 0.015 & 0 \\ 0.015 & 0 \end{bmatrix} "
        r"\operatorname{onehot}_{2}\left(\varsigma\right)"
    )
    assert lines[2] == (
        r"\tilde{Q} = \Omega \odot "
        r"\left(\mathbf{1}_{v} \begin{bmatrix} 1 & 0 & 0 & 1 \end{bmatrix} \Pi\right)"
        r" + \operatorname{onehot}_{v}\left(\mu\right) \begin{bmatrix} 0 & 1 & 0 & 0 \end{bmatrix} \Pi"
        r" + \frac{\mathbf{1}_{v} \begin{bmatrix} 0 & 0 & 1 & 0 \end{bmatrix} \Pi}{v}"
    )


def test_loss_pooler_and_heads_latex():
    assert spec.get("bert.mlm_loss").latex() == (
        r"\mathcal{L} = -\mathbb{1}_{\mathcal{M}}^{\top} \log\left(\left[\hat{Y}_{k_{i}, i}\right]_{i}\right)"
    )
    assert spec.get("bert.pooler").latex() == r"p = \tanh\left(W_{p} H^{L}_{:,1} + b_{p}\right)"
    assert spec.get("bert.nsp_head").latex() == (
        r"\hat{y} = \operatorname{softmax}_{\mathrm{col}}\left(W_{\mathrm{nsp}} p + b_{\mathrm{nsp}}\right)"
    )
    assert spec.get("bert.classifier").latex_lines() == [
        r"\hat{y} = \operatorname{softmax}_{\mathrm{col}}\left(W_{c} p + b_{c}\right)",
        r"\mathcal{L} = -y^{\top} \log\left(\hat{y}\right)",
    ]


def test_shapes_and_kinds_follow_the_tutorial():
    eq = spec.get("bert.input")
    assert eq.declared("E").shape == (d_e, v)
    assert eq.declared("Lambda").shape == (d_e, n_max)
    assert eq.declared("G").shape == (d_e, 2)
    assert eq.declared("Sigma").shape == (2, n) and eq.declared("Sigma").entry_kind is Kind.ONE_HOT
    assert eq.declared("k").entry_kind is Kind.INDEX
    assert eq.declared("s").entry_kind is Kind.MASK  # segment ids are 0 or 1
    assert eq.constraints == (sp.Le(n, n_max),)
    enc = spec.get("bert.encoder")
    W_Q = enc.declared("W_Q")
    assert isinstance(W_Q, Family) and W_Q.counts == (L, M) and W_Q.shape == (d_e, d_k)
    assert enc.space(W_Q) == "W_Q^(l,m) ∈ ℝ^(d_e×d_k), l = 1..L, m = 1..M"
    assert enc.space(enc.declared("W_1")) == "W_1^(l) ∈ ℝ^(d_f×d_e), l = 1..L"
    assert enc.declared("keep").entry_kind is Kind.MASK
    assert enc.constraints == (sp.Eq(d_v, d_k),)
    assert enc.free_axes == ("n", "d_e", "M", "d_k", "d_f", "L")
    H = enc.outputs[0]
    assert isinstance(H, Family) and H.start == 0 and H.shape == (d_e, n)
    assert spec.get("bert.mlm_head").outputs[0].shape == (v, n)
    assert spec.get("bert.mlm_masking").outputs[0].shape == (4, n)
    assert spec.get("bert.mlm_masking").declared("mask_id").spec_shape == ()
    assert spec.get("bert.mlm_loss").outputs[0].spec_shape == ()
    assert spec.get("bert.nsp_head").declared("W_nsp").shape == (2, d_e)
    assert spec.get("bert.classifier").declared("W_c").shape == (n_c, d_e)
    assert spec.get("bert.classifier").declared("y").shape == (n_c, 1)


def test_variants():
    for eq_id in ("bert.input", "bert.encoder", "bert.mlm_head"):
        base, var = spec.get(eq_id), spec.get(f"{eq_id}[eps]")
        assert "eps" not in {d.name for d in base.params}
        eps = var.declared("eps")
        assert eps.spec_shape == () and eps.entry_kind is Kind.POSITIVE
    # the encoder's eps variant calls the block's eps variant and passes ε on
    call = spec.get("bert.encoder[eps]").bindings[2].rhs
    assert call.equation.id == "transformer.block_post_ln[eps]"
    assert call.arguments["eps"].name == "eps"
    assert spec.get("bert.encoder").bindings[2].rhs.equation.id == "transformer.block_post_ln"
    assert r"\operatorname{GELU}_{\tanh}" in spec.get("bert.mlm_head[gelu_tanh]").latex()
    assert r"\begin{bmatrix} 0.85 & 1 \\ 0.15 & 0 \\ 0 & 0 \\ 0 & 0 \end{bmatrix}" in (
        spec.get("bert.mlm_masking[mask_only]").latex()
    )


def test_masking_rejects_rates_that_are_not_a_distribution():
    with pytest.raises(SpecError, match=r"bert.mlm_masking: the split \(4/5, 1/10, 1/5\) must sum to 1"):
        mlm_masking(split=(sp.Rational(8, 10), sp.Rational(1, 10), sp.Rational(2, 10)))


def test_constant_and_neg_operators():
    c = Constant([[1, sp.Rational(3, 20)]])
    assert c.shape == (1, 2) and c.free_symbols == set()
    assert latex(c) == r"\begin{bmatrix} 1 & 0.15 \end{bmatrix}"
    assert c._explicit(None) == sp.ImmutableMatrix([[1, sp.Rational(3, 20)]])
    x = spec.tensor("x", (d_e,))
    assert latex(Neg(x)) == "-x" and Neg(x).shape == (d_e, 1)
    assert Neg(x)._entry(2, 0) == -x[2, 0]


# --- hand-derived values, through the exact oracle -----------------------------------------------
def test_input_by_hand():
    # d_e = 2: a column (a, b) with a < b normalises to (−1, 1). E, Λ and G are chosen so that each of the
    # three sums flips the order: token 0 at position 1 in segment 0, token 2 at position 2 in segment 1.
    E = np.array([[0.0, 5.0, 1.0], [1.0, 0.0, 0.0]])  # v = 3
    Lam = np.array([[0.0, 0.5, 9.0], [0.0, 0.0, 0.0]])  # n_max = 3
    G = np.array([[0.0, 0.0], [0.0, 2.0]])
    arrays = {"k": np.array([0, 2]), "s": np.array([0.0, 1.0]), "E": E, "Lambda": Lam, "G": G,
              "alpha_e": np.array([2.0, 1.0]), "beta_e": np.array([0.0, 7.0])}  # fmt: skip
    out = Oracle(spec.get("bert.input"))(arrays, {"n": 2, "n_max": 3, "v": 3, "d_e": 2})["H_0"]
    # column 1: E_0 + Λ_1 + G_0 = (0, 1) → (−1, 1); column 2: E_2 + Λ_2 + G_1 = (1.5, 2) → (−1, 1)
    np.testing.assert_allclose(out, [[-2.0, -2.0], [8.0, 8.0]], atol=1e-15)
    arrays["s"] = np.array([0.0, 0.0])  # column 2 becomes (1.5, 0) → (1, −1)
    out = Oracle(spec.get("bert.input"))(arrays, {"n": 2, "n_max": 3, "v": 3, "d_e": 2})["H_0"]
    np.testing.assert_allclose(out[:, 1], [2.0, 6.0], atol=1e-15)


def test_mlm_head_by_hand():
    # W_m = 0, b_m = (0, 1): T's columns are LN((GELU 0, GELU 1)) = (−1, 1) for α_m = 1, β_m = 0;
    # Z = Eᵀ (−1, 1) + b_out with E's columns e_1, e_2, 0: Z = (−1, 1, 0) + (0, 0, log 2)
    arrays = {"H": np.ones((2, 3)), "W_m": np.zeros((2, 2)), "b_m": np.array([0.0, 1.0]),
              "alpha_m": np.ones(2), "beta_m": np.zeros(2), "E": np.array([[1.0, 0, 0], [0, 1.0, 0]]),
              "b_out": np.array([0.0, 0.0, math.log(2)])}  # fmt: skip
    Y = Oracle(spec.get("bert.mlm_head"))(arrays, {"n": 3, "v": 3, "d_e": 2})["Y_hat"]
    z = np.array([math.exp(-1), math.e, 2.0])
    np.testing.assert_allclose(Y, np.tile((z / z.sum())[:, None], (1, 3)), rtol=1e-14)


def test_masking_distribution_by_hand():
    # v = 4, [MASK] = 3; token 1 is special, token 2 is vocabulary entry 2
    out = Oracle(spec.get("bert.mlm_masking"))(
        {"k": np.array([0, 2]), "special": np.array([1.0, 0.0]), "mask_id": np.array(3)}, {"n": 2, "v": 4}
    )
    np.testing.assert_allclose(out["Pi"], [[1, 0.85], [0, 0.12], [0, 0.015], [0, 0.015]], atol=1e-16)
    r = 0.015 / 4  # a random token is each of the 4 entries with probability 0.015 / v
    np.testing.assert_allclose(out["Q"], [[1, r], [0, r], [0, 0.865 + r], [0, 0.12 + r]], atol=1e-16)
    only = Oracle(spec.get("bert.mlm_masking[mask_only]"))(
        {"k": np.array([0]), "special": np.array([0.0]), "mask_id": np.array(3)}, {"n": 1, "v": 4}
    )
    np.testing.assert_allclose(only["Q"][:, 0], [0.85, 0, 0, 0.15], atol=1e-16)


def test_mlm_loss_counts_the_masked_tokens_only():
    Y = np.array([[0.5, 0.1, 0.2], [0.25, 0.3, 0.7], [0.25, 0.6, 0.1]])
    out = Oracle(spec.get("bert.mlm_loss"))(
        {"Y_hat": Y, "k": np.array([0, 1, 2]), "sel": np.array([1.0, 0.0, 1.0])}, {"n": 3, "v": 3}
    )["loss"]
    assert float(out) == pytest.approx(-math.log(0.5) - math.log(0.1), rel=1e-15)


def test_pooler_nsp_and_classifier_by_hand():
    H = np.array([[0.5, 9.0], [-1.0, 9.0]])
    p = Oracle(spec.get("bert.pooler"))(
        {"H": H, "W_p": np.eye(2), "b_p": np.array([0.0, 1.0])}, {"n": 2, "d_e": 2}
    )
    np.testing.assert_allclose(p["p"], [math.tanh(0.5), 0.0], atol=1e-16)
    y = Oracle(spec.get("bert.nsp_head"))(
        {"p": np.ones(3), "W_nsp": np.zeros((2, 3)), "b_nsp": np.array([math.log(3), 0.0])}, {"d_e": 3}
    )["y_hat"]
    np.testing.assert_allclose(y, [0.75, 0.25], rtol=1e-15)
    out = Oracle(spec.get("bert.classifier"))(
        {"p": np.ones(2), "y": np.array([[0.0], [1.0], [0.0]]), "W_c": np.zeros((3, 2)),
         "b_c": np.log(np.array([1.0, 2.0, 5.0]))},
        {"d_e": 2, "n_c": 3},
    )  # fmt: skip
    np.testing.assert_allclose(out["y_hat"], [0.125, 0.25, 0.625], rtol=1e-15)
    assert float(out["loss"]) == pytest.approx(math.log(4), rel=1e-15)


def test_encoder_is_the_post_ln_block_applied_layer_by_layer():
    sizes = {"n": 3, "d_e": 3, "M": 2, "d_k": 2, "d_v": 2, "d_f": 4, "L": 2}
    eq = spec.get("bert.encoder")
    rng = np.random.default_rng(7)
    arrays = {"X": rng.normal(size=(3, 3)), "keep": np.array([1.0, 1.0, 0.0])}
    for d in eq.params:
        arrays[d.ascii] = rng.normal(size=concrete_shape(d, sizes))
    got = Oracle(eq)(arrays, sizes)["H"]
    assert got.shape == (2, 3, 3)  # H^1, H^2
    block = Oracle(spec.get("transformer.block_post_ln"))
    S = np.array([[0.0, 0.0, -np.inf]] * 3)  # the padded third key, for every query
    H = arrays["X"]
    for layer in range(2):
        layer_arrays = {d.ascii: arrays[d.ascii][layer] for d in eq.params}
        H = block(
            {"H": H, "S": S, **layer_arrays}, {k: sizes[k] for k in ("n", "d_e", "M", "d_k", "d_v", "d_f")}
        )["H_out"]
        np.testing.assert_allclose(got[layer], H, rtol=1e-12, atol=1e-12)


# --- the spec satisfies its own invariants; each property catches a target that breaks it ----------
def _holds(eq, target, prop, options, max_examples=5):
    pool = size_tuples(eq, 3, 0, "small")

    @settings(max_examples=max_examples, deadline=None, database=None, phases=[Phase.generate])
    @given(st.data())
    def run(data):
        ex = data.draw(examples(eq, data.draw(st.sampled_from(pool))))
        prop.check(eq, target, ex, data, options, POLICY["float64"])

    run()


@pytest.mark.parametrize("eq_id", BERT)
def test_the_spec_satisfies_its_own_invariants(eq_id):
    eq = spec.get(eq_id)
    for prop, options in properties_of(eq):
        _holds(eq, GeneratedTarget(eq), prop, options)
        if eq_id != "bert.encoder":  # its oracle takes seconds per size: the generated code stands in
            _holds(eq, OracleTarget(eq), prop, options, max_examples=2)


class Wrapped(Target):
    """A target that post-processes the generated code's outputs (to break one property on purpose)."""

    def __init__(self, eq, change) -> None:
        super().__init__(eq)
        self.inner, self.change, self.name = GeneratedTarget(eq), change, "broken"

    def __call__(self, example, sizes):
        return {k: self.change(k, out, example) for k, out in self.inner(example, sizes).items()}


def _last_token(name, out, ex):
    return out + ex["X"][..., None, :, -1:] if name == "H" else out


BROKEN = [
    # (equation, property, change of the outputs)
    ("bert.encoder", "padding_invariance", _last_token),  # every token sees the last (often padded) one
    ("bert.encoder", "permutation_equivariance", lambda k, out, ex: out + np.arange(out.shape[-1])),
    ("bert.mlm_head", "columns_are_distributions", lambda k, out, ex: out * 1.01),
    ("bert.mlm_masking", "columns_are_distributions", lambda k, out, ex: out * 1.01 if k == "Q" else out),
    ("bert.mlm_masking", "mlm_masking_rates", lambda k, out, ex: out[..., ::-1, :] if k == "Pi" else out),
    ("bert.mlm_loss", "mlm_loss_masked_only", lambda k, out, ex: out + (ex["k"] * (1 - ex["sel"])).sum(-1)),
    ("bert.pooler", "first_token_only", lambda k, out, ex: out + ex["H"].mean(axis=-1)),
    ("bert.classifier", "classifier_cross_entropy", lambda k, out, ex: out + 0.01 if k == "loss" else out),
    ("bert.input", "columns_standardised", lambda k, out, ex: out * 1.01),
]  # fmt: skip


# Whether a property catches its broken target is a function of the code alone. Only some examples can catch
# one (padding_invariance: n > 1, the last token padded and another real, ~1 example in 5), and Hypothesis
# used to draw them from a fresh random seed per run: 1 run in ~300 drew none in 40 examples and the test
# failed ("DID NOT RAISE"), at random. tests/conftest.py derandomizes every @given: the same examples, and so
# the same verdict, in every run, order and load (the next test holds it to that).
@pytest.mark.parametrize(("eq_id", "name", "change"), BROKEN, ids=[f"{b[0]}-{b[1]}" for b in BROKEN])
def test_properties_catch_a_broken_target(eq_id, name, change):
    eq = spec.get(eq_id)
    options = next(o for p, o in properties_of(eq) if p.name == name)
    with pytest.raises(PropertyViolation) as err:
        _holds(eq, Wrapped(eq, change), PROPERTIES[name], options, max_examples=40)
    assert err.value.check == f"property:{name}"
    assert str(err.value).startswith(f"broken violates {name}")


def test_a_broken_target_is_caught_on_the_same_examples_in_every_run():
    eq = spec.get("bert.encoder")
    options = next(o for p, o in properties_of(eq) if p.name == "padding_invariance")

    class Recording(Wrapped):
        def __call__(self, example, sizes):
            seen.append((dict(sizes), example["keep"].tolist(), example["X"].tolist()))
            return super().__call__(example, sizes)

    runs = []
    for _ in range(2):
        seen: list = []
        with pytest.raises(PropertyViolation, match="broken violates padding_invariance") as err:
            _holds(eq, Recording(eq, _last_token), PROPERTIES["padding_invariance"], options, max_examples=40)
        runs.append((seen, str(err.value)))
    assert runs[0] == runs[1]
    # the example that catches it: more than one token, the last one padded
    assert any(sizes["n"] > 1 and (np.asarray(keep)[..., -1] == 0).any() for sizes, keep, _ in runs[0][0])
