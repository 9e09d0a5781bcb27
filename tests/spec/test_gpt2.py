"""The gpt2 family of the spec: notation, shapes, the operators' meaning by hand, and the forward pass as
the composition of the blocks' own oracles."""

import math
import re

import numpy as np
import pytest
import sympy as sp

from lmspec import spec
from lmspec.spec import Family, Kind, SpecShapeError, tensor
from lmspec.spec.axes import GLOSSARY, d_e, n, n_max, v
from lmspec.spec.equation import Equation, Reference
from lmspec.spec.gpt2 import Argmax, NegLogSum, NextTokenPick
from lmspec.spec.lm import TopKFilter
from lmspec.spec.ops_nn import Call
from lmspec.spec.printing.latex import SpecLatexPrinter, latex
from lmspec.verify.oracle import Oracle, concrete_shape

GPT2 = ["gpt2.forward", "gpt2.lm_head", "gpt2.loss", "gpt2.generate"]
k_top = GLOSSARY["k_top"].symbol


def test_registry_holds_the_gpt2_family_in_order():
    assert [e.id for e in spec.families()["gpt2"]] == GPT2
    for eq in spec.select(["gpt2"]):
        assert eq.title and eq.notes and eq.reference.section == "GPT-2"


# Goldens written from the tutorial's equations (CATALOGUE.md, gpt2), not copied from the printer.
def test_forward_latex_is_embedding_blocks_final_norm():
    assert spec.get("gpt2.forward").latex_lines() == [
        r"\Omega = \operatorname{onehot}_{v}\left(k\right)",
        r"S = S^{\mathrm{causal}}_{n}",
        r"H^{0} = E \Omega + \Lambda_{:,1:n}",
        r"H^{l} = \operatorname{Block}^{(l)}\left(H^{l - 1}, S\right)",
        r"\tilde{H}^{L} = \operatorname{LN}\left(H^{L}; \alpha_{e}, \beta_{e}\right)",
    ]


def test_lm_head_latex_is_the_tied_output():
    assert spec.get("gpt2.lm_head").latex() == (
        r"\hat{Y} = \operatorname{softmax}_{\mathrm{col}}\left(E^{\top} \tilde{H}^{L}\right)"
    )


def test_h_L_has_one_meaning_the_last_blocks_output_before_the_final_norm():
    """Issue 16 §4: H^L is the last block's output (transformer.stack), before GPT-2's final layer norm,
    in every GPT-2 equation; the head and generation take the normed states H̃^L = LN(H^L; α_e, β_e),
    gpt2.forward's output, under that name (the code name stays H, what GPT2Model returns)."""
    fwd = spec.get("gpt2.forward")
    final = fwd.declared("H_out")
    assert (final.tex, final.meaning.split(",")[0]) == (r"\tilde{H}^{L}", "final states H̃^L = LN(H^L; α_e")
    assert fwd.declared("H").tex == "H^{{index}}"  # the family H^0..H^L of block outputs
    last = r"\tilde{H}^{L} = \operatorname{LN}\left(H^{L}; \alpha_{e}, \beta_{e}\right)"
    assert fwd.latex_lines()[-1] == last
    for eq_id in ("gpt2.lm_head", "gpt2.generate"):
        eq = spec.get(eq_id)
        (H,) = eq.inputs
        assert (H.name, H.tex) == ("H", final.tex), eq_id
        assert H.meaning.startswith("final states H̃^L = LN(H^L; α_e, β_e), the output of gpt2.forward"), eq_id
        assert eq.space_latex(H) == r"\tilde{H}^{L} \in \mathbb{R}^{d_{e} \times n}"
        # H^L with no tilde (the pre-norm states) appears in neither's lines
        assert not any(re.search(r"(?<!\\tilde\{)H\^\{L\}", line) for line in eq.latex_lines()), eq_id


def test_loss_latex_shifts_the_targets_by_one():
    assert spec.get("gpt2.loss").latex_lines() == [
        r"y = \left[\hat{Y}_{k_{i+1}, i}\right]_{i=1}^{n - 1}",
        r"\mathcal{L} = -\sum_{i=1}^{n - 1} \log y_{i}",
    ]


def test_generate_latex_is_one_step_from_the_last_column():
    assert spec.get("gpt2.generate").latex_lines() == [
        r"z = E^{\top} \tilde{H}^{L}_{:,n}",
        r"\hat{k} = \operatorname{argmax}\left(z\right)",
        r"p = \operatorname{softmax}_{\mathrm{col}}\left(\operatorname{top}_{k}\left(z\right) / \tau\right)",
    ]
    assert spec.get("gpt2.generate[no_top_k]").latex_lines()[2] == (
        r"p = \operatorname{softmax}_{\mathrm{col}}\left(z / \tau\right)"
    )


def test_where_lines_define_argmax_and_top_k():
    where = spec.get("gpt2.generate").where_latex()
    assert where[0] == (
        r"\operatorname{argmax}(z) = \min \{ j : z_{j} = \max_{i} z_{i} \} "
        r"\quad (\text{0-based; ties to the lowest index})"
    )
    assert where[2].startswith(r"\operatorname{top}_{k}(z)")  # lm.top_k's filter, shared


def test_forward_calls_the_pre_ln_block_with_layer_l_parameters():
    eq = spec.get("gpt2.forward")
    (block,) = [b.rhs for b in eq.bindings if b.name == "H" and b.lhs.indices != (0,)]
    assert isinstance(block, Call) and block.args[0].name == "transformer.block_pre_ln"
    args = block.arguments
    l = spec.transformer.l
    assert args["W_Q"].name == "W_Q" and args["W_Q"].indices == (l,)  # the head family of layer l
    assert args["W_O"].indices == (l,) and args["alpha_2"].indices == (l,)
    W_Q = eq.declared("W_Q")
    assert isinstance(W_Q, Family) and W_Q.counts == (spec.axes.L, spec.axes.M)
    assert eq.space(eq.declared("W_1")) == "W_1^(l) ∈ ℝ^(d_f×d_e), l = 1..L"
    assert [d.name for d in eq.params][:2] == ["E", "Lambda"]
    assert [d.name for d in eq.params][-2:] == ["alpha_e", "beta_e"]


def test_eps_variant_passes_one_scalar_epsilon_to_every_layer_norm():
    var = spec.get("gpt2.forward[eps]")
    eps = var.declared("eps")
    assert eps.is_scalar and eps.entry_kind is Kind.POSITIVE
    (block,) = [b.rhs for b in var.bindings if b.name == "H" and b.lhs.indices != (0,)]
    assert block.args[0].name == "transformer.block_pre_ln[eps]"
    assert block.arguments["eps"] == eps
    assert var.latex_lines()[-1] == (
        r"\tilde{H}^{L} = \operatorname{LN}_{\varepsilon}\left(H^{L}; \alpha_{e}, \beta_{e}\right)"
    )
    assert "1e-5" in var.description


def test_shapes_kinds_and_constraints():
    fwd = spec.get("gpt2.forward")
    assert fwd.declared("k").entry_kind is Kind.INDEX and fwd.declared("k").spec_shape == (n,)
    assert fwd.declared("Lambda").shape == (d_e, n_max)
    assert fwd.inequalities == (sp.Le(n, n_max),)
    assert fwd.outputs[0].shape == (d_e, n)
    head = spec.get("gpt2.lm_head")
    assert head.outputs[0].shape == (v, n) and head.outputs[0].entry_kind is Kind.PROBABILITY
    assert [d.name for d in head.params] == ["E"]  # tied: the embedding is the only parameter
    loss = spec.get("gpt2.loss")
    assert loss.outputs[0].is_scalar and loss.declared("y").shape == (n - 1, 1)
    gen = spec.get("gpt2.generate")
    assert gen.inequalities == (sp.Le(k_top, v),)
    assert [o.name for o in gen.outputs] == ["k_next", "p"]
    assert gen.declared("k_next").entry_kind is Kind.INDEX
    assert spec.get("gpt2.generate[no_top_k]").inequalities == ()


# --- the operators, by hand -------------------------------------------------------------------------
def test_argmax_takes_the_first_largest_entry():
    for z, want in [((1, 3, 3, 0), 1), ((5, 1, 5), 0), ((-1, -2, 0), 2), ((2,), 0)]:
        col = sp.ImmutableMatrix([[x] for x in z])
        assert Argmax(col)._entry(0, 0) == want


def test_argmax_at_symbolic_size_is_a_sum_of_first_maximum_indicators():
    z = tensor("z", (v,))
    entry = Argmax(z)._entry(0, 0)
    assert isinstance(entry, sp.Sum) and entry.limits[0][2] == v - 1
    assert {h.args[1] for h in entry.atoms(sp.Heaviside)} == {0, 1}  # strict before j, ≥ after j


def test_top_k_filter_keeps_every_tie():
    # the filter is lm.top_k's; generation relies on its tie rule (HF's `scores < topk(...)[-1]`)
    col = sp.ImmutableMatrix([[1], [3], [3], [0], [2]])
    assert [TopKFilter(col, 1)._entry(i, 0) for i in range(5)] == [-sp.oo, 3, 3, -sp.oo, -sp.oo]
    assert [TopKFilter(col, 3)._entry(i, 0) for i in range(5)] == [-sp.oo, 3, 3, -sp.oo, 2]


def test_next_token_pick_and_neg_log_sum_by_hand():
    Y = sp.ImmutableMatrix(
        [[sp.Rational(1, 2), sp.Rational(1, 4), 1], [sp.Rational(1, 2), sp.Rational(3, 4), 0]]
    )
    k = sp.ImmutableMatrix([[1], [0], [1]])
    picked = [NextTokenPick(Y, k)._entry(i, 0) for i in range(2)]
    assert picked == [sp.Rational(1, 2), sp.Rational(3, 4)]  # Ŷ_{k_2, 1} = Ŷ_{0,0}, Ŷ_{k_3, 2} = Ŷ_{1,1}
    y = sp.ImmutableMatrix([[sp.Rational(1, 2)], [sp.Rational(1, 4)]])
    assert sp.simplify(NegLogSum(y)._entry(0, 0) - sp.log(8)) == 0
    assert NegLogSum(sp.ImmutableMatrix(0, 1, []))._entry(0, 0) == 0


def test_operator_latex():
    z = tensor("z", (v,))
    Y, k = tensor("Y", (v, n)), tensor("k", (n,), Kind.INDEX)
    assert latex(Argmax(z)) == r"\operatorname{argmax}\left(z\right)"
    assert latex(NextTokenPick(Y, k)) == r"\left[Y_{k_{i+1}, i}\right]_{i=1}^{n - 1}"
    assert latex(NegLogSum(z)) == r"-\sum_{i=1}^{v} \log z_{i}"
    assert NegLogSum(z)._latex(SpecLatexPrinter()) == latex(NegLogSum(z))


def test_next_token_pick_checks_tokens_against_columns():
    Y, k = tensor("Y", (v, n)), tensor("k", (v,), Kind.INDEX)
    y = tensor("y", (n - 1,))
    with pytest.raises(SpecShapeError, match="next-token pick"):
        Equation(
            "gpt2.t", "t", inputs=(Y, k), intermediates=(y,), bindings=[(y, NextTokenPick(Y, k))],
            outputs=(y,), reference=Reference("test"),
        )  # fmt: skip


# --- the equations' oracles, by hand ------------------------------------------------------------------
def test_loss_oracle_by_hand():
    # v = 3, n = 4, k = (2, 0, 1, 1): 𝓛 = −log Ŷ_{0,0} − log Ŷ_{1,1} − log Ŷ_{1,2}; column 4 and k_1 unused
    Y = np.array([[0.5, 0.1, 0.3, 0.2], [0.25, 0.8, 0.6, 0.2], [0.25, 0.1, 0.1, 0.6]])
    out = Oracle(spec.get("gpt2.loss"))({"Y_hat": Y, "k": np.array([2, 0, 1, 1])}, {"v": 3, "n": 4})
    assert out["loss"] == pytest.approx(-math.log(0.5) - math.log(0.8) - math.log(0.6), rel=1e-15)


def test_loss_of_one_token_is_zero():
    out = Oracle(spec.get("gpt2.loss"))(
        {"Y_hat": np.full((3, 1), 1 / 3), "k": np.array([1])}, {"v": 3, "n": 1}
    )
    assert out["loss"] == 0.0


def test_lm_head_oracle_by_hand():
    # E = [[1, 0, 0], [0, 1, 1]] (d_e = 2, v = 3), h = (0, ln 2): logits (0, ln 2, ln 2) → (1/5, 2/5, 2/5)
    E = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    out = Oracle(spec.get("gpt2.lm_head"))(
        {"H": np.array([[0.0], [math.log(2)]]), "E": E}, {"d_e": 2, "v": 3, "n": 1}
    )
    np.testing.assert_allclose(out["Y_hat"], [[0.2], [0.4], [0.4]], rtol=1e-15)


def test_generate_oracle_by_hand():
    # the last column of H picks logits z = Eᵀ h_n = (1, 3, 3, 0, 2): greedy k̂ = 1 (the first of the tie),
    # top-2 keeps z_1 = z_2 = 3 (both tied), so p = (0, 1/2, 1/2, 0, 0) at any τ
    E = np.array([[1.0, 3.0, 3.0, 0.0, 2.0], [5.0, 5.0, 5.0, 5.0, 5.0]])
    H = np.array([[7.0, 1.0], [7.0, 0.0]])
    sizes = {"d_e": 2, "v": 5, "n": 2, "k_top": 2}
    out = Oracle(spec.get("gpt2.generate"))({"H": H, "E": E, "tau": np.array(0.7)}, sizes)
    assert out["k_next"] == 1
    np.testing.assert_allclose(out["p"], [0, 0.5, 0.5, 0, 0], atol=1e-15)
    # top-3 adds z_4 = 2: weights ∝ (e^{3/τ}, e^{3/τ}, e^{2/τ}); τ = 1/ln 2 makes them (2, 2, 1) / 5
    out = Oracle(spec.get("gpt2.generate"))(
        {"H": H, "E": E, "tau": np.array(1 / math.log(2))}, {**sizes, "k_top": 3}
    )
    np.testing.assert_allclose(out["p"], [0, 0.4, 0.4, 0, 0.2], rtol=1e-14)


def test_forward_oracle_is_embedding_then_block_oracles_then_final_norm(rng):
    """The inline expansion of gpt2.forward equals transformer.block_pre_ln's own oracle layer by layer,
    between the embedding and the final layer norm computed by hand."""
    sizes = {"n": 4, "n_max": 9, "v": 8, "d_e": 5, "M": 3, "d_k": 1, "d_v": 6, "d_f": 7, "L": 2}
    eq = spec.get("gpt2.forward")
    arrays = {d.ascii: rng.normal(size=concrete_shape(d, sizes)) for d in (*eq.inputs, *eq.params)}
    arrays["k"] = np.array([3, 7, 0, 3])
    got = Oracle(eq)(arrays, sizes)["H_out"]
    block = Oracle(spec.get("transformer.block_pre_ln"))
    S = np.where(np.triu(np.ones((4, 4)), 1) > 0, -np.inf, 0.0)
    H = arrays["E"][:, arrays["k"]] + arrays["Lambda"][:, :4]  # E Ω + Λ_{:,1:n}
    names = [d.ascii for d in spec.get("transformer.block_pre_ln").params]
    block_sizes = {a: sizes[a] for a in ("n", "d_e", "M", "d_k", "d_v", "d_f")}
    for layer in range(2):
        H = block({"H": H, "S": S, **{k: arrays[k][layer] for k in names}}, block_sizes)["H_out"]
    mu, sd = H.mean(axis=0), H.std(axis=0)  # population spread, ε = 0
    want = arrays["alpha_e"][:, None] * (H - mu) / sd + arrays["beta_e"][:, None]
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12)


def test_forward_refuses_sizes_beyond_n_max():
    eq = spec.get("gpt2.forward")
    sizes = {"n": 5, "n_max": 4, "v": 3, "d_e": 2, "M": 1, "d_k": 1, "d_v": 1, "d_f": 1, "L": 1}
    with pytest.raises(spec.SpecError, match=r"break the constraint n <= n_max"):
        Oracle(eq).compiled(sizes)
