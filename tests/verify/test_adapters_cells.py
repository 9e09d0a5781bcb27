"""verify/audit/adapters/torch_cells.py and torch_encoder.py: the built-in audit targets of one recurrent step
(nn.RNNCell, nn.LSTMCell, nn.GRUCell) and of a stack of encoder layers (nn.TransformerEncoder).

- each built-in audits to its verdict: the cells and the encoder stacks pass (nn.TransformerEncoder with a
  final norm after post-LN layers too, against the spec's post_ln_relu_final_ln_eps stack); nn.GRUCell
  (torch's reset-after GRU) is registered to show a real difference the audit must report: looped over a
  sequence it fails (the spec has no unrolled reset-after form), one step of it (GRUCell[h], h_t only)
  matches the variant gru.step[reset_after];
- each runs the real torch object (a spy on the torch class sees the call) and computes the oracle's values
  with the documented mapping; a wrong mapping (a transposed weight, swapped gates, layers in the wrong
  order, swapped norms) fails;
- what torch does, asserted on torch itself: nn.GRUCell is gru.step[reset_after] (its bias_hh n-block is
  b_U, the other blocks only add), and TransformerEncoder's final norm normalises the last layer's output
  once more (after post-LN layers too: the spec's post-LN stack with final_ln).

Numbers come from seeded random draws (NumPy's default_rng) compared with the exact oracle of the spec.
"""

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from lmspec import spec
from lmspec.verify.audit import Builtin, audit, builtins, causal_pin, load
from lmspec.verify.audit.targets import make_target
from lmspec.verify.compare import POLICY, compare
from lmspec.verify.oracle import concrete_shape
from lmspec.verify.strategies import seeded_tensor, size_tuples
from lmspec.verify.targets import OracleTarget

BUILTINS = builtins()
#: Every built-in of the two modules, the equation it is audited against, and its verdict.
EXPECTED = {
    "torch.nn.RNNCell": ("rnn.elman_step", "pass"),
    "torch.nn.LSTMCell": ("lstm.hidden", "pass"),
    "torch.nn.GRUCell": ("gru.step[sequence]", "fail"),
    "torch.nn.GRUCell[h]": ("gru.step", "variant"),
    "torch.nn.TransformerEncoder": ("transformer.stack[post_ln_relu_eps]", "pass"),
    "torch.nn.TransformerEncoder[norm_first]": ("transformer.stack[relu_eps]", "pass"),
    "torch.nn.TransformerEncoder[norm_first,norm]": ("transformer.stack[relu_final_ln_eps]", "pass"),
    "torch.nn.TransformerEncoder[norm]": ("transformer.stack[post_ln_relu_final_ln_eps]", "pass"),
}
KNOWN_DIFFERENT = {name for name, (_, verdict) in EXPECTED.items() if verdict != "pass"}
#: The form a known difference computes, with the values it pins: one step of nn.GRUCell is reset_after with
#: b_U = 0 (its bias_hh n-block).
COMPUTES = {"torch.nn.GRUCell[h]": ("gru.step[reset_after]", {"b_U": 0.0})}
ENCODERS = tuple(name for name in EXPECTED if name.startswith("torch.nn.TransformerEncoder"))


def _example(b: Builtin, batch=(2,), seed=0, sizes=None):
    """Sizes (by default a random tuple, not the pinned n = 1 / M = 1 ones) and seeded arrays for ``b``, its
    constants applied."""
    eq = spec.get(b.equation)
    sizes = sizes or size_tuples(eq, 3, seed, "small", fixed=b.sizes, derive=b.derive)[-1]
    rng = np.random.default_rng(seed)
    arrays = {}
    for d in (*eq.inputs, *eq.params):
        shape = concrete_shape(d, sizes)
        if d.ascii in b.constants:
            arrays[d.ascii] = np.asarray(b.constants[d.ascii])
        else:
            full = (*batch, *shape) if d in eq.inputs else shape
            arrays[d.ascii] = seeded_tensor(rng, d.entry_kind, full, sizes)
    return eq, sizes, arrays


def _run(b: Builtin, eq, arrays, sizes, fn: Callable | None = None) -> dict:
    return make_target(fn or b.make(), eq, name=b.name, layout=b.layout)(arrays, sizes)


def _close(got: dict, want: dict) -> bool:
    """Whether every output the target returns (a layout may return a subset) is the expected one."""
    return all(compare(got[k], want[k], POLICY["float64"]).ok for k in got)


def _computed(name: str, arrays: dict, sizes: dict) -> dict:
    """The oracle's values of the form a known difference computes (COMPUTES), on the same arrays."""
    equation, pinned = COMPUTES[name]
    eq = spec.get(equation)
    extra = {k: np.full(concrete_shape(eq.declared(k), sizes), v) for k, v in pinned.items()}
    return OracleTarget(eq)({**arrays, **extra}, sizes)


# --- the registry -------------------------------------------------------------------------------------------
def test_the_builtins_and_their_equations():
    mine = {
        name: b
        for name, b in BUILTINS.items()
        if b.make.__module__.rsplit(".", 1)[1] in {"torch_cells", "torch_encoder"}
    }
    assert {name: b.equation for name, b in mine.items()} == {k: eq for k, (eq, _) in EXPECTED.items()}
    assert list(mine) == list(EXPECTED)  # listed in registration order, cells first (adapters.MODULES)
    for name, b in mine.items():
        assert b.group == "torch" and b.description and b.mapping, name
        assert bool(b.pins) is bool(b.layout) is (name == "torch.nn.GRUCell[h]"), name
        spec.get(b.equation)  # a known equation or variant
    step = BUILTINS["torch.nn.GRUCell[h]"]  # torch returns h_t only; b_U (reset_after's) is its zero n-block
    assert step.layout.endswith("-> h_t=*batch d_h") and set(step.pins) == {"b_U"}
    assert (step.pins["b_U"]({"d_h": 3}) == 0).all() and step.pins["b_U"]({"d_h": 3}).shape == (3,)
    for name in ENCODERS:  # torch's attention ties the head widths; its LN ε is 1e-5
        assert BUILTINS[name].derive == {"d_e": "M*d_k", "d_v": "d_k"}
        assert BUILTINS[name].constants == {"eps": 1e-5}
    for name in ("torch.nn.TransformerEncoder[norm_first,norm]", "torch.nn.TransformerEncoder[norm]"):
        final = dict(BUILTINS[name].mapping)  # the final norm holds the spec's α_e, β_e
        assert final["alpha_e"].startswith("norm.weight") and final["beta_e"] == "norm.bias"
        assert "alpha_e" in [d.ascii for d in spec.get(BUILTINS[name].equation).params]
    for name in ("torch.nn.TransformerEncoder", "torch.nn.TransformerEncoder[norm_first]"):
        assert "alpha_e" not in dict(BUILTINS[name].mapping)
    assert load("torch.nn.GRUCell") is BUILTINS["torch.nn.GRUCell"]


# --- every built-in audits to its verdict -------------------------------------------------------------------
#: The checks each known difference fails.
FAILS = {
    "torch.nn.GRUCell": {"value=oracle", "value=generated", "gradient"},
    # h_t only: the properties on the gates and the candidate skip; the step unrolled is not the sequence's
    "torch.nn.GRUCell[h]": {"value=oracle", "value=generated", "gradient", "property:unrolls_to_sequence"},
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_builtin_audits_to_its_verdict(name):
    equation, verdict = EXPECTED[name]
    report = audit(BUILTINS[name], profile="quick")
    assert report.equation == equation
    failed = {c.name for c in report.checks if c.status == "fail"}
    assert report.verdict == verdict, [f"{c.name}: {c.message}" for c in report.failures]
    ran = {c.name for c in report.checks if c.status in ("pass", "fail")}
    assert {"shape", "value=oracle", "value=generated", "gradient"} <= ran
    if verdict == "pass":
        return
    assert failed == FAILS[name] and "shape" not in failed
    tried = {v.name: v.message for v in report.variants}
    if name == "torch.nn.GRUCell[h]":  # one step: torch's reset-after GRU, named
        assert report.matched == ["reset_after"]
        assert "matches reset_after" in report.summary and "--as gru.step[reset_after]" in report.summary
        skipped = {c.name for c in report.checks if c.status == "skip"}
        assert {"property:gates_in_unit_interval", "property:convex_interpolation"} <= skipped
    else:  # looped: no named variant describes it
        assert not report.matched
        # the one-step reset_after form exists, but takes x_t, h_prev: the looped cell cannot be bound to it
        assert "cannot bind" in tried["reset_after"] and "parameter 'X'" in tried["reset_after"]
        assert "cannot bind" in tried["base gru.step"]


# --- the real torch object ----------------------------------------------------------------------------------
def _spy(monkeypatch, cls: type[nn.Module]) -> list[str]:
    calls: list[str] = []
    original = cls.forward

    def forward(self, *args, **kwargs):
        calls.append(cls.__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "forward", forward)
    return calls


@pytest.mark.parametrize("name", list(EXPECTED))
def test_builtin_calls_the_torch_object_and_matches_the_oracle(name, monkeypatch):
    b = BUILTINS[name]
    cls = getattr(nn, name.split("[")[0].rsplit(".", 1)[1])
    calls = _spy(monkeypatch, cls)
    layers = _spy(monkeypatch, nn.TransformerEncoderLayer)
    norms = _spy(monkeypatch, nn.LayerNorm)
    eq, sizes, arrays = _example(b)
    got = _run(b, eq, arrays, sizes)
    if name == "torch.nn.GRUCell":
        assert len(calls) == sizes["n"]  # one call per token: h = cell(x_t, h)
    else:
        assert len(calls) == 1, f"{name} called {cls.__name__}.forward {len(calls)} times"
    if name in ENCODERS:
        assert len(layers) == sizes["L"] >= 2  # the stack runs its L layers
        assert len(norms) == 2 * sizes["L"] + name.endswith("norm]")  # norm1, norm2 of each, the final one
    want = OracleTarget(eq)(arrays, sizes)
    assert set(got) == ({"h_t"} if b.layout else set(want))  # GRUCell[h] returns h_t, the others everything
    assert _close(got, want) is (name not in KNOWN_DIFFERENT), {
        k: compare(got[k], want[k], POLICY["float64"]) for k in got
    }
    if name in COMPUTES:  # what it does compute, with the same arrays
        assert _close(got, _computed(name, arrays, sizes))


def _swap(*pairs):
    def perturb(arrays):
        out = dict(arrays)
        for a, b in pairs:
            out[a], out[b] = arrays[b], arrays[a]
        return out

    return perturb


def _transpose(symbol):
    def perturb(arrays):
        return {**arrays, symbol: np.swapaxes(arrays[symbol], -1, -2).copy()}

    return perturb


def _layers_reversed(arrays):
    """Every per-layer family (a leading L axis) in the opposite layer order."""
    stack = spec.get("transformer.stack")
    per_layer = {d.ascii for d in stack.params if not d.is_scalar and d.ascii not in ("alpha_e", "beta_e")}
    return {k: (v[::-1].copy() if k in per_layer else v) for k, v in arrays.items()}


#: A wrong mapping fed to the built-in: the oracle, given the right arrays, must then disagree. nn.GRUCell
#: is checked on one token (n = 1, from h_0 = 0), where its reset-after form agrees with the spec; its one
#: step against the form it computes (COMPUTES).
WRONG = [
    ("torch.nn.RNNCell", _transpose("W_h")),
    ("torch.nn.LSTMCell", _swap(("W_i", "W_f"), ("U_i", "U_f"), ("b_i", "b_f"))),  # torch's order i, f, g, o
    ("torch.nn.LSTMCell", _swap(("W_c", "W_o"), ("U_c", "U_o"), ("b_c", "b_o"))),
    ("torch.nn.GRUCell", _swap(("W_r", "W_z"), ("b_r", "b_z"))),
    ("torch.nn.GRUCell[h]", _swap(("U_z", "U"))),  # torch's blocks r, z, n: z and the candidate
    ("torch.nn.TransformerEncoder", _layers_reversed),
    ("torch.nn.TransformerEncoder[norm_first]", _swap(("alpha_1", "alpha_2"), ("beta_1", "beta_2"))),
    ("torch.nn.TransformerEncoder[norm_first,norm]", _swap(("alpha_e", "beta_e"))),
    ("torch.nn.TransformerEncoder[norm_first,norm]", _transpose("W_O")),  # square: d_e = M·d_v
    ("torch.nn.TransformerEncoder[norm]", _swap(("alpha_e", "beta_e"))),  # the final norm's own weights
]


@pytest.mark.parametrize(("name", "perturb"), WRONG, ids=[f"{w[0]}-{k}" for k, w in enumerate(WRONG)])
def test_a_wrong_mapping_fails(name, perturb):
    b = BUILTINS[name]
    eq = spec.get(b.equation)
    sizes = size_tuples(eq, 3, 1, "small", derive=b.derive)[-1]
    if name == "torch.nn.GRUCell":
        sizes = {**sizes, "n": 1}
    eq, sizes, arrays = _example(b, seed=1, sizes=sizes)
    if "S" in arrays:  # a mask that masks something and leaves no row empty: the causal one
        n = sizes["n"]
        arrays["S"] = np.broadcast_to(causal_pin(sizes), (2, n, n)).copy()
    want = _computed(name, arrays, sizes) if name in COMPUTES else OracleTarget(eq)(arrays, sizes)
    assert _close(_run(b, eq, arrays, sizes), want)
    assert not _close(_run(b, eq, perturb(arrays), sizes), want)


# --- nn.GRUCell: the reset-after form, on torch itself ------------------------------------------------------
def _gru_cell(t: dict[str, torch.Tensor], b_hh: torch.Tensor) -> nn.GRUCell:
    """A real nn.GRUCell holding the spec's weights (z-blocks negated: torch's z is the spec's 1 − z)."""
    cell = nn.GRUCell(3, 4, dtype=torch.float64)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.cat([t["W_r"], -t["W_z"], t["W"]]))
        cell.weight_hh.copy_(torch.cat([t["U_r"], -t["U_z"], t["U"]]))
        cell.bias_ih.copy_(torch.cat([t["b_r"], -t["b_z"], t["b"]]))
        cell.bias_hh.copy_(b_hh)
    return cell


def test_gru_cell_is_the_reset_after_step():
    """One nn.GRUCell step with bias_hh's n-block = b_U is h_t of gru.step[reset_after]; it is not gru.step's
    h_t once h_{t−1} ≠ 0, and is from h_{t−1} = 0 with b_U = 0 (why the built-in's first token agrees)."""
    after, before = spec.get("gru.step[reset_after]"), spec.get("gru.step")
    sizes = {"d_e": 3, "d_h": 4}
    rng = np.random.default_rng(5)
    a = {d.ascii: rng.uniform(-2, 2, concrete_shape(d, sizes)) for d in (*after.inputs, *after.params)}
    t = {k: torch.as_tensor(v) for k, v in a.items()}
    cell = _gru_cell(t, torch.cat([torch.zeros(8, dtype=torch.float64), t["b_U"]]))
    with torch.no_grad():
        h_t = cell(t["x_t"][None], t["h_prev"][None])[0].numpy()
    np.testing.assert_allclose(h_t, OracleTarget(after)(a, sizes)["h_t"], rtol=1e-12, atol=1e-12)
    plain = {k: v for k, v in a.items() if k != "b_U"}
    assert np.abs(h_t - OracleTarget(before)(plain, sizes)["h_t"]).max() > 1e-3
    cell = _gru_cell(t, torch.zeros(12, dtype=torch.float64))
    zero = {**plain, "h_prev": np.zeros(4)}
    with torch.no_grad():
        first = cell(t["x_t"][None])[0].numpy()  # hx=None: torch's h_0 = 0
    np.testing.assert_allclose(first, OracleTarget(before)(zero, sizes)["h_t"], rtol=1e-12, atol=1e-12)


def test_gru_cell_bias_hh_adds_in_the_gates_but_not_in_the_candidate():
    """The r- and z-blocks of bias_hh only add to bias_ih's (the built-in puts all of the spec's bias in
    bias_ih); the n-block sits inside the reset gate, so moving it to bias_ih changes the result."""
    g = torch.Generator().manual_seed(0)
    cell = nn.GRUCell(3, 4, dtype=torch.float64)
    shapes = ((2, 3), (2, 4), (12,), (12,))
    x, h, b_ih, b_hh = (torch.randn(*shape, generator=g, dtype=torch.float64) for shape in shapes)

    def run(ih: torch.Tensor, hh: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            cell.bias_ih.copy_(ih)
            cell.bias_hh.copy_(hh)
            return cell(x, h)

    out = run(b_ih, b_hh)
    gates, n = slice(0, 8), slice(8, 12)
    moved = b_hh.clone()
    moved[gates] = 0
    summed = b_ih.clone()
    summed[gates] += b_hh[gates]
    torch.testing.assert_close(run(summed, moved), out, rtol=1e-12, atol=1e-12)
    summed[n] += b_hh[n]
    assert (run(summed, torch.zeros(12, dtype=torch.float64)) - out).abs().max() > 1e-3


# --- nn.TransformerEncoder ----------------------------------------------------------------------------------
def _encoder(norm_first: bool, norm: bool) -> nn.TransformerEncoder:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        4, 2, 8, dropout=0.0, batch_first=True, norm_first=norm_first, dtype=torch.float64
    )
    final = nn.LayerNorm(4, dtype=torch.float64) if norm else None
    return nn.TransformerEncoder(layer, 2, norm=final, enable_nested_tensor=False).eval()


@pytest.mark.parametrize("norm_first", [False, True])
def test_the_final_norm_normalises_the_last_layer_once_more(norm_first):
    """norm=nn.LayerNorm(d_e) is applied to the last layer's output, after post-LN layers too, which already
    end in their norm2. There it is nearly the identity while norm2 keeps torch's initial weight 1, bias 0
    (normalising a normalised row changes it by ε only), and not once norm2 has other weights."""
    with_norm, bare = _encoder(norm_first, True), _encoder(norm_first, False)
    bare.load_state_dict({k: v for k, v in with_norm.state_dict().items() if not k.startswith("norm.")})
    x = torch.randn(2, 3, 4, dtype=torch.float64)

    def outputs():
        with torch.no_grad():
            return with_norm(x), bare(x)

    out, inner = outputs()
    torch.testing.assert_close(out, with_norm.norm(inner), rtol=1e-12, atol=1e-12)
    assert bool((out - inner).abs().max() < 1e-4) is (not norm_first)  # post-LN at initialisation: ε only
    with torch.no_grad():
        for model in (with_norm, bare):  # norm2 of the last layer, as training leaves it
            model.layers[-1].norm2.weight.copy_(torch.tensor([0.5, 2.0, -1.0, 3.0]))
            model.layers[-1].norm2.bias.copy_(torch.tensor([1.0, 0.0, -2.0, 0.5]))
    out, inner = outputs()
    assert (out - inner).abs().max() > 0.1


def test_the_encoder_builtin_takes_the_training_path_under_no_grad():
    """The audit calls targets under no_grad; with a fully masked row and an even head count torch's
    inference fast path would give NaN. The built-in gives the spec's zero-weight rows, and switches the
    fast path back on afterwards."""
    b = BUILTINS["torch.nn.TransformerEncoder[norm_first,norm]"]
    sizes = {"n": 3, "d_e": 4, "M": 2, "d_k": 2, "d_v": 2, "d_f": 5, "L": 2}
    eq, sizes, arrays = _example(b, sizes=sizes)
    S = np.zeros((2, 3, 3))
    S[:, 0, :] = -np.inf  # query 0 sees nothing
    arrays["S"] = S
    got = _run(b, eq, arrays, sizes)
    assert np.isfinite(got["H_out"]).all() and _close(got, OracleTarget(eq)(arrays, sizes))
    assert torch.backends.mha.get_fastpath_enabled()


def test_the_encoder_refuses_untied_heads_and_ragged_layers():
    fn = BUILTINS["torch.nn.TransformerEncoder"].make()
    d_e, M, d_k, d_f, L = 4, 2, 2, 5, 2

    def args(**shapes):
        base = {
            "X": (1, 3, d_e), "S": (3, 3), "W_Q": (L, M, d_e, d_k), "b_Q": (L, M, d_k),
            "W_K": (L, M, d_e, d_k), "b_K": (L, M, d_k), "W_V": (L, M, d_e, d_k), "b_V": (L, M, d_k),
            "W_O": (L, M * d_k, d_e), "b_O": (L, d_e),
            "alpha_1": (L, d_e), "beta_1": (L, d_e), "alpha_2": (L, d_e), "beta_2": (L, d_e),
            "W_1": (L, d_f, d_e), "b_1": (L, d_f), "W_2": (L, d_e, d_f), "b_2": (L, d_e),
        } | shapes  # fmt: skip
        return {k: torch.zeros(v, dtype=torch.float64) for k, v in base.items()}

    assert fn(**args(), eps=1e-5).shape == (1, 3, d_e)
    with pytest.raises(ValueError, match=r"TransformerEncoder needs d_e = M·d_k .* found d_e=4, M=2, d_k=3"):
        fn(**args(W_Q=(L, M, d_e, 3), W_K=(L, M, d_e, 3)), eps=1e-5)
    with pytest.raises(ValueError, match=r"stacked on its layer axis L; W_Q has L=2, W_2 has 3 \(shape"):
        fn(**args(W_2=(3, d_e, d_f)), eps=1e-5)
