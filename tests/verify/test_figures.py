"""The concept figures (verify/figures): each is a standalone SVG whose numbers are the spec's own — read back
from the ``data-value`` attributes and compared with the equation's exact oracle (or with impl's GPT-2
holding the figure's weights)."""

import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from lmspec import spec
from lmspec.impl.attention import causal_mask, projections, softmax_rows
from lmspec.impl.gpt2 import GPT2, block
from lmspec.impl.lm import embedding
from lmspec.impl.norm import layer_norm
from lmspec.impl.positional import learned
from lmspec.impl.transformer import ffn
from lmspec.verify.figures import Figure, _gpt2, _svg, concept_figures, concepts, panels, read_values
from lmspec.verify.targets import OracleTarget

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def figures() -> dict[str, list[Figure]]:
    return concept_figures()


def _oracle(eq_id, example, sizes):
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in example.items()}
    return OracleTarget(spec.get(eq_id))(arrays, sizes)


def _one(figures, eq_id, name):
    (fig,) = [f for f in figures[eq_id] if f.name == name]
    return fig


def test_every_id_has_figures_that_parse_with_title_legend_and_sizes(figures):
    assert set(figures) == {
        "attention.causal_mask",
        "attention.padding_mask",
        "rnn.gate",
        "positional.sinusoidal",
        "lm.temperature",
        "lm.top_k",
        "gpt2.forward",
        "rnn.elman_step",
        "lstm.hidden",
    }
    for eq_id, figs in figures.items():
        assert spec.get(eq_id).id == eq_id  # a real equation of the catalogue
        assert figs
        for f in figs:
            root = ET.fromstring(f.svg)
            assert root.tag == SVG + "svg"
            assert root.find(SVG + "title").text == f.title
            texts = " ".join("".join(t.itertext()) for t in root.iter(SVG + "text"))
            assert f.title in texts
            assert f.sizes and all(f"{k} = {v}" in f.caption for k, v in f.sizes.items())
            # a colour legend: a gradient bar or swatches
            assert any(e.get("class") in ("legend", "swatch") for e in root.iter()), f.name
            assert panels(f.svg)


def test_ids_without_figures_are_named():
    with pytest.raises(KeyError, match="no concept figure for lm.nonsense"):
        concept_figures(["lm.nonsense"])
    assert list(concept_figures(["lm.top_k"])) == ["lm.top_k"]


def test_causal_mask_cells_are_the_oracle(figures):
    S = read_values(_one(figures, "attention.causal_mask", "causal_mask").svg, "S")
    expected = _oracle("attention.causal_mask", {}, {"n": 6})["S"]
    assert S.shape == (6, 6)
    np.testing.assert_array_equal(S, expected)
    assert S[0, 1] == -math.inf and S[1, 0] == 0.0  # hand-derivable: j > i masked


def test_padding_and_combined_masks_are_the_oracles(figures):
    n, keep = 6, np.array(concepts.KEEP, dtype=float)
    pad = _oracle("attention.padding_mask", {"keep": keep}, {"n": n})["S"]
    causal = _oracle("attention.causal_mask", {}, {"n": n})["S"]
    np.testing.assert_array_equal(
        read_values(_one(figures, "attention.padding_mask", "padding_mask").svg, "S_pad"), pad
    )
    combined = _one(figures, "attention.padding_mask", "combined_mask").svg
    np.testing.assert_array_equal(read_values(combined, "S_causal"), causal)
    np.testing.assert_array_equal(read_values(combined, "S_pad"), pad)
    S = read_values(combined, "S")
    np.testing.assert_array_equal(S, causal + pad)
    assert np.isneginf(S[:, 4:]).all()  # the two pads, in every row
    W = read_values(combined, "weights")
    np.testing.assert_allclose(W.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (W[np.isneginf(S)] == 0).all() and (W[np.isfinite(S)] > 0).all()


def test_gate_is_the_oracle(figures):
    svg = _one(figures, "rnn.gate", "gate").svg
    a, u = read_values(svg, "a")[:, 0], read_values(svg, "u")[:, 0]
    out = _oracle("rnn.gate", {"a": a, "u": u}, {"d_h": 8})
    np.testing.assert_array_equal(read_values(svg, "m")[:, 0], out["m"])
    np.testing.assert_array_equal(read_values(svg, "u_tilde")[:, 0], out["u_tilde"])
    assert read_values(svg, "m")[3, 0] == pytest.approx(1 / (1 + math.exp(4 / 7)))  # a_4 = −4 + 3·8/7


def test_positional_heat_map_is_the_oracle(figures):
    Lam = read_values(_one(figures, "positional.sinusoidal", "sinusoidal").svg, "Lambda")
    np.testing.assert_array_equal(
        Lam, _oracle("positional.sinusoidal", {}, {"d_e": 24, "n_max": 40})["Lambda"]
    )
    assert Lam[0, 1] == pytest.approx(math.sin(1.0)) and Lam[1, 0] == 1.0  # hand-derivable: sin t, cos 0


def test_temperature_and_top_k_bars_are_the_oracle(figures):
    svg = _one(figures, "lm.temperature", "temperature").svg
    z = read_values(svg, "z")[0]
    np.testing.assert_array_equal(z, concepts.LOGITS)
    for tau in concepts.TEMPERATURES:
        expected = _oracle("lm.temperature", {"z": z, "tau": tau}, {"v": 7})["p_tau"]
        np.testing.assert_array_equal(read_values(svg, f"tau={tau:g}")[0], expected)
    top = _one(figures, "lm.top_k", "top_k").svg
    out = _oracle("lm.top_k", {"z": z}, {"v": 7, "k_top": concepts.K_TOP})
    np.testing.assert_array_equal(read_values(top, "z_top")[0], out["z_top"])
    np.testing.assert_array_equal(read_values(top, "p_top")[0], out["p_top"])
    assert np.isfinite(out["z_top"]).sum() == 3 and (read_values(top, "p_top")[0] > 0).sum() == 3


def test_unrolled_recurrences_are_the_oracle(figures):
    rnn = _one(figures, "rnn.elman_step", "rnn_unrolled").svg
    sizes = {"d_e": 3, "d_h": 5, "n": 6}
    example = concepts._draw("rnn.elman_step[sequence]", sizes, concepts.SEED, 0.8)
    np.testing.assert_array_equal(read_values(rnn, "X"), example["X"])
    H = read_values(rnn, "H")
    np.testing.assert_array_equal(H, _oracle("rnn.elman_step[sequence]", example, sizes)["H"])
    # the first step by hand: h_1 = tanh(W_x x_1 + b_h), from h_0 = 0
    np.testing.assert_allclose(
        H[:, 0], np.tanh(example["W_x"] @ example["X"][:, 0] + example["b_h"]), rtol=1e-12
    )
    np.testing.assert_array_equal(read_values(rnn, "h_0"), np.zeros((5, 1)))
    lstm = _one(figures, "lstm.hidden", "lstm_unrolled").svg
    sizes = {"d_e": 3, "d_h": 4, "n": 6}
    example = concepts._draw("lstm.hidden[sequence]", sizes, concepts.SEED, 0.8)
    out = _oracle("lstm.hidden[sequence]", example, sizes)
    np.testing.assert_array_equal(read_values(lstm, "H"), out["H"])
    np.testing.assert_array_equal(read_values(lstm, "C"), out["C"])
    assert read_values(lstm, "H").shape == (4, 6)  # d_h × n: one column per step t


def _impl_gpt2():
    """impl's GPT2 at the figure's sizes, in float64, holding the figure's NumPy-drawn weights."""
    s = _gpt2.SIZES
    gpt = GPT2(s["v"], s["n_max"], s["d_e"], s["M"], s["L"], s["d_f"], eps=_gpt2.EPS).double()
    params = _gpt2.parameters()
    with torch.no_grad():
        gpt.E.copy_(torch.as_tensor(params["E"]))
        gpt.Lambda.copy_(torch.as_tensor(params["Lambda"]))
        for b, p in zip(gpt.blocks, params["blocks"], strict=True):
            for name, t in b.spec_params().items():
                t.copy_(torch.as_tensor(p[name]))
    # the copies landed: impl's parameters are the figure's, every one of them
    for b, p in zip(gpt.blocks, params["blocks"], strict=True):
        for name, t in b.spec_params().items():
            np.testing.assert_array_equal(t.detach().numpy(), p[name], err_msg=name)
    np.testing.assert_array_equal(gpt.E.detach().numpy(), params["E"])
    return gpt, torch.as_tensor(_gpt2.tokens())


@torch.no_grad()
def _impl_attention_weights(gpt, k):
    """Per block, impl's own weights ``softmax_rows(Q_m K_mᵀ / √d_k + S)`` (impl's functional core, as its
    block takes them), then ``H ← block(H)``."""
    n = k.shape[-1]
    H = embedding(k, gpt.E) + learned(gpt.Lambda, n)
    S = causal_mask(n, dtype=H.dtype)
    weights = []
    for b in gpt.blocks:
        p = b.spec_params()
        Hhat = layer_norm(H, p["alpha_1"], p["beta_1"], gpt.eps)
        Q, K, _ = projections(Hhat, p["W_Q"], p["b_Q"], p["W_K"], p["b_K"], p["W_V"], p["b_V"])
        weights.append(softmax_rows(Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1]) + S).numpy())
        H, _ = block(H, p, eps=gpt.eps)
    return weights


def test_gpt2_attention_is_per_head_causal_and_impls(figures):
    figs = figures["gpt2.forward"]
    M, n, L = _gpt2.SIZES["M"], _gpt2.SIZES["n"], _gpt2.SIZES["L"]
    assert len(figs) == L
    gpt, k = _impl_gpt2()
    expected = _impl_attention_weights(gpt, k)
    H = embedding(k, gpt.E) + learned(gpt.Lambda, n)
    for f in figs:
        assert panels(f.svg) == [f"head{m}" for m in range(1, M + 1)]
        W = np.stack([read_values(f.svg, f"head{m}") for m in range(1, M + 1)])  # (M, n, n)
        l = int(f.name[-1]) - 1
        np.testing.assert_allclose(W, expected[l], rtol=0, atol=1e-12)  # impl's weights, head by head
        np.testing.assert_allclose(W.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
        assert (W[:, np.triu_indices(n, 1)[0], np.triu_indices(n, 1)[1]] == 0).all()  # causal
        assert not np.allclose(W[0], W[1])  # the heads differ
        # the drawn weights are the ones impl's block uses: rebuild the block's output from them
        p = gpt.blocks[l].spec_params()
        with torch.no_grad():
            Hhat = layer_norm(H, p["alpha_1"], p["beta_1"], gpt.eps)
            _, _, V = projections(Hhat, p["W_Q"], p["b_Q"], p["W_K"], p["b_K"], p["W_V"], p["b_V"])
            P = (torch.as_tensor(W) @ V).transpose(0, 1).flatten(-2)  # (n, M*d_v)
            X = H + P @ p["W_O"] + p["b_O"]
            rebuilt = X + ffn(
                layer_norm(X, p["alpha_2"], p["beta_2"], gpt.eps), p["W_1"], p["b_1"], p["W_2"], p["b_2"]
            )
            H, _ = block(H, p, eps=gpt.eps)
        torch.testing.assert_close(rebuilt, H, rtol=0, atol=1e-12)


def test_gpt2_parameters_are_seeded_and_leave_numpy_global_generator_alone():
    np.random.seed(5)
    before = np.random.rand(3)
    np.random.seed(5)
    first, second = _gpt2.parameters(), _gpt2.parameters()
    assert np.array_equal(np.random.rand(3), before)
    np.testing.assert_array_equal(first["E"], second["E"])
    np.testing.assert_array_equal(first["blocks"][1]["W_Q"], second["blocks"][1]["W_Q"])
    assert first["E"].std() == pytest.approx(_gpt2.STD, rel=0.3)  # N(0, STD²), not GPT-2's 0.02


def test_concept_figures_import_no_torch():
    """Drawing every concept figure must not import torch (about 3 s of a first ``lmspec render``)."""
    code = (
        "import sys\n"
        "from lmspec.verify.figures import concept_figures\n"
        "figs = concept_figures(['gpt2.forward', 'rnn.gate'])\n"
        "assert len(figs['gpt2.forward']) == 2\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    env = {**os.environ, "LMSPEC_NO_CACHE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_concept_figures_computed_in_forked_processes_are_the_same(figures):
    wait = concepts.concept_figures_ahead(["lm.top_k", "rnn.gate", "gpt2.forward"], jobs=2)
    ahead = wait()
    assert list(ahead) == ["lm.top_k", "rnn.gate", "gpt2.forward"]
    for eq_id, figs in ahead.items():
        assert [vars(f) for f in figs] == [vars(f) for f in figures[eq_id]]
    with pytest.raises(KeyError, match="no concept figure for lm.nonsense"):
        concepts.concept_figures_ahead(["lm.nonsense"], jobs=2)


def test_cached_concept_figures_are_kept_and_read_back(tmp_path, monkeypatch, figures):
    from lmspec.verify.figures import _cache

    monkeypatch.setenv("LMSPEC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("LMSPEC_NO_CACHE", raising=False)
    assert _cache.kept_concept_figures(["rnn.gate"]) is None  # nothing kept yet: nothing computed
    drawn = _cache.cached_concept_figures_ahead(["rnn.gate"], jobs=2)()
    kept = _cache.kept_concept_figures(["rnn.gate"])
    assert kept is not None and [vars(f) for f in kept["rnn.gate"]] == [vars(f) for f in drawn["rnn.gate"]]
    assert [vars(f) for f in drawn["rnn.gate"]] == [vars(f) for f in figures["rnn.gate"]]
    (entry,) = tmp_path.rglob("concepts-*.json")
    entry.write_bytes(entry.read_bytes()[:-5])  # a damaged entry is not trusted
    assert _cache.kept_concept_figures(["rnn.gate"]) is None


def test_nonfinite_colours_are_distinct_from_every_scale_colour():
    finite = set()
    for scale in (
        _svg.Scale("sequential", 0.0, 1.0, "p"),
        _svg.Scale("diverging", -2.0, 2.0, "x"),
        _svg.Scale("mask", 0.0, 0.0, "S"),
    ):
        finite |= {scale.colour(x) for x in np.linspace(scale.lo - 1, scale.hi + 1, 2001)}
        assert scale.colour(math.nan) == _svg.NONFINITE_COLOURS["NaN"]
        assert scale.colour(-math.inf) == _svg.NONFINITE_COLOURS["−∞"]
    colours = list(_svg.NONFINITE_COLOURS.values())
    assert len(set(colours)) == 3 and not finite & set(colours)


def test_a_nan_cell_is_drawn_in_the_nan_colour_reads_back_and_is_in_the_legend():
    values = np.array([[0.5, math.nan], [-math.inf, 1.0]])
    scale = _svg.Scale("sequential", 0.0, 1.0, "p")
    fig = _svg.panels_figure(
        "t", "T", "s", "c", [_svg.Heat(values, "A", "i", "j", ["1", "2"], ["1", "2"], scale, "A")]
    )
    np.testing.assert_array_equal(read_values(fig.svg, "A"), values)  # NaN == NaN for assert_array_equal
    rects = list(ET.fromstring(fig.svg).iter(SVG + "rect"))
    cells = {(e.get("data-row"), e.get("data-col")): e.get("fill") for e in rects if e.get("class") == "cell"}
    assert cells[("0", "1")] == _svg.NONFINITE_COLOURS["NaN"]
    assert cells[("1", "0")] == _svg.NONFINITE_COLOURS["−∞"]
    assert cells[("0", "0")] not in _svg.NONFINITE_COLOURS.values()
    swatches = [
        e.get("fill") for e in ET.fromstring(fig.svg).iter(SVG + "rect") if e.get("class") == "swatch"
    ]
    assert _svg.NONFINITE_COLOURS["NaN"] in swatches and _svg.NONFINITE_COLOURS["+∞"] not in swatches
    with pytest.raises(KeyError, match="no panel 'B'"):
        read_values(fig.svg, "B")


def test_labels_escape_and_set_subscripts():
    assert _svg.rich("h_t <x>") == (
        'h<tspan dy="0.3em" font-size="75%">t</tspan><tspan dy="-0.3em">\u200b</tspan> &lt;x&gt;'
    )
    assert "max" in _svg.rich("n_{max}") and "{" not in _svg.rich("n_{max}")
    assert _svg.fmt(-0.5) == "−0.5" and _svg.fmt(-math.inf) == "−∞" and _svg.fmt(math.nan) == "NaN"
