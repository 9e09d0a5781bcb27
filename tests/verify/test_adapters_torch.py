"""verify/audit/adapters/torch_*.py: the built-in audit targets for torch.nn and torch.nn.functional.

- every built-in passes its audit against the equation it is registered with (torch.nn.GRU excepted: it is
  registered to show a real difference, and the audit must report it);
- each built-in runs the real torch object (a spy on the torch class or function sees the call), computes
  the oracle's values with the documented mapping, and a wrong mapping (a transposed or swapped weight,
  an inverted mask) fails;
- what torch 2.13 does on a fully masked attention row, asserted on torch itself: zero weights in
  scaled_dot_product_attention, NaN in nn.MultiheadAttention (need_weights=True), and a path-dependent
  result in nn.TransformerEncoderLayer and with need_weights=False.

Numbers come from seeded random draws (NumPy's default_rng) compared with the exact oracle of the spec.
"""

import contextlib
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmspec import spec
from lmspec.verify.audit import Builtin, audit, builtins, causal_pin, load
from lmspec.verify.audit.adapters import torch_attention
from lmspec.verify.audit.targets import make_target
from lmspec.verify.compare import POLICY, compare
from lmspec.verify.oracle import concrete_shape
from lmspec.verify.runner import Profile
from lmspec.verify.strategies import seeded_tensor, size_tuples
from lmspec.verify.targets import OracleTarget

BUILTINS = builtins()
#: Every torch built-in and the equation it is audited against by default.
EXPECTED = {
    "torch.nn.functional.scaled_dot_product_attention[bool_mask]": "attention.scaled_dot_product",
    "torch.nn.functional.scaled_dot_product_attention[float_mask]": "attention.scaled_dot_product",
    "torch.nn.functional.scaled_dot_product_attention[is_causal]": "attention.scaled_dot_product",
    "torch.nn.MultiheadAttention[batch_first,attn_mask]": "attention.multi_head[fully_masked_nan]",
    "torch.nn.MultiheadAttention[batch_first,bool_attn_mask]": "attention.multi_head[fully_masked_nan]",
    "torch.nn.MultiheadAttention[batch_first,key_padding_mask]": "attention.multi_head[fully_masked_nan]",
    "torch.nn.MultiheadAttention[attn_mask]": "attention.multi_head[fully_masked_nan]",
    "torch.nn.MultiheadAttention[bool_attn_mask]": "attention.multi_head[fully_masked_nan]",
    "torch.nn.MultiheadAttention[key_padding_mask]": "attention.multi_head[fully_masked_nan]",
    "torch.nn.TransformerEncoderLayer": "transformer.block_post_ln[relu_eps]",
    "torch.nn.TransformerEncoderLayer[gelu]": "transformer.block_post_ln[eps]",
    "torch.nn.TransformerEncoderLayer[norm_first]": "transformer.block_pre_ln[relu_eps]",
    "torch.nn.TransformerEncoderLayer[norm_first,gelu]": "transformer.block_pre_ln[gelu_eps]",
    "torch.nn.TransformerDecoderLayer": "transformer.decoder_block[eps]",
    "torch.nn.TransformerDecoderLayer[gelu]": "transformer.decoder_block[gelu_eps]",
    "torch.nn.LayerNorm": "norm.layer_norm[eps]",
    "torch.nn.RNN": "rnn.elman_step[sequence]",
    "torch.nn.RNN[h_0]": "rnn.elman_step",
    "torch.nn.LSTM": "lstm.hidden[sequence]",
    "torch.nn.LSTM[h_0,c_0]": "lstm.hidden",
    "torch.nn.GRU": "gru.step[sequence]",
    "torch.nn.Embedding": "lm.embedding",
    "torch.nn.functional.cross_entropy": "lm.cross_entropy",
}
#: Registered to show a difference the audit must report (see test_gru_*).
KNOWN_DIFFERENT = {"torch.nn.GRU"}
PASSING = sorted(set(EXPECTED) - KNOWN_DIFFERENT)
#: The modules whose built-ins this file covers (torch_cells, torch_encoder and torch_optim have their own
#: tests).
ORIGINAL_MODULES = {"torch_attention", "torch_transformer", "torch_recurrent", "torch_lm"}

#: quick, without the shrinking a failure would otherwise get (the tests that expect one only need it found)
NO_SHRINK = Profile("quick-noshrink", 2, 2, 4, 3, 0.0)


def _builtin(name: str) -> Builtin:
    return BUILTINS[name]


def _example(b: Builtin, eq=None, batch=(2,), seed=0, sizes=None):
    """Sizes (by default a random tuple, not the pinned n = 1 / M = 1 ones) and seeded arrays for ``b``, its
    pins and constants applied."""
    eq = eq or spec.get(b.equation)
    sizes = sizes or size_tuples(eq, 3, seed, "small", fixed=b.sizes, derive=b.derive)[-1]
    rng = np.random.default_rng(seed)
    arrays = {}
    for d in (*eq.inputs, *eq.params):
        shape = concrete_shape(d, sizes)
        full = (*batch, *shape) if d in eq.inputs else shape
        if d.ascii in b.constants:
            arrays[d.ascii] = np.asarray(b.constants[d.ascii])
        elif d.ascii in b.pins:
            arrays[d.ascii] = np.broadcast_to(b.pins[d.ascii](sizes), full).copy()
        else:
            arrays[d.ascii] = seeded_tensor(rng, d.entry_kind, full, sizes)
    return eq, sizes, arrays


def _run(b: Builtin, eq, arrays, sizes, fn: Callable | None = None):
    target = make_target(fn or b.make(), eq, name=b.name, missing_ok=set(b.pins))
    return target(arrays, sizes)


def _close(got: dict, want: dict) -> bool:
    return all(compare(got[k], want[k], POLICY["float64"]).ok for k in want)


# --- the registry -------------------------------------------------------------------------------------------
def test_the_torch_builtins_and_their_equations():
    where = {
        name: b.make.__module__.removeprefix("lmspec.verify.audit.adapters.")
        for name, b in BUILTINS.items()
        if b.group == "torch" and b.make.__module__.rsplit(".", 1)[1] in ORIGINAL_MODULES
    }
    assert {name: BUILTINS[name].equation for name in where} == EXPECTED
    assert set(where.values()) == {"torch_attention", "torch_transformer", "torch_recurrent", "torch_lm"}
    for name in EXPECTED:
        b = _builtin(name)
        assert b.group == "torch" and b.description and b.mapping, name
        spec.get(b.equation)  # a known equation or variant
        for symbol in b.pins:
            assert symbol in {d.ascii for d in spec.get(b.equation).inputs}
    tied = [n for n in EXPECTED if n.startswith(("torch.nn.MultiheadAttention", "torch.nn.Transformer"))]
    assert len(tied) == 12
    assert all(_builtin(n).derive == {"d_e": "M*d_k", "d_v": "d_k"} for n in tied)
    assert all(_builtin(n).constants == {"eps": 1e-5} for n in EXPECTED if "Transformer" in n or "Norm" in n)


def test_a_builtin_is_found_by_name():
    assert (
        load("torch.nn.MultiheadAttention[batch_first,attn_mask]")
        is BUILTINS["torch.nn.MultiheadAttention[batch_first,attn_mask]"]
    )


# --- every built-in passes its audit ------------------------------------------------------------------------
@pytest.mark.parametrize("name", PASSING)
def test_builtin_passes_its_audit(name):
    report = audit(_builtin(name), profile="quick")
    failed = [f"{c.name}: {c.message}" for c in report.checks if c.status == "fail"]
    assert report.verdict == "pass", failed
    assert report.equation == EXPECTED[name]
    ran = {c.name for c in report.checks if c.status == "pass"}
    assert {"shape", "value=oracle", "value=generated"} <= ran


# --- the real torch object ----------------------------------------------------------------------------------
def _spied(name: str) -> tuple[object, str]:
    """The torch class (its forward) or function a built-in must call."""
    path = name.split("[")[0]
    if path.startswith("torch.nn.functional."):
        return torch.nn.functional, path.rsplit(".", 1)[1]
    return getattr(nn, path.rsplit(".", 1)[1]), "forward"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_calls_the_torch_object_and_matches_the_oracle(name, monkeypatch):
    b = _builtin(name)
    owner, attr = _spied(name)
    original = getattr(owner, attr)
    calls = []

    def spy(*args, **kwargs):
        calls.append(attr)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, attr, spy)
    eq, sizes, arrays = _example(b)
    got = _run(b, eq, arrays, sizes)
    assert calls, f"{name} never called {getattr(owner, '__name__', owner)}.{attr}"
    want = OracleTarget(eq)(arrays, sizes)
    if name in KNOWN_DIFFERENT:
        assert not _close(got, want)
    else:
        assert _close(got, want), {k: compare(got[k], want[k], POLICY["float64"]) for k in want}


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


def _invert_mask(arrays):
    return {**arrays, "S": np.where(arrays["S"] == 0, -np.inf, 0.0)}


#: A wrong mapping fed to the built-in: the oracle, given the right arrays, must then disagree.
WRONG = [
    ("torch.nn.functional.scaled_dot_product_attention[bool_mask]", _invert_mask),
    ("torch.nn.functional.scaled_dot_product_attention[float_mask]", _swap(("Q", "K"))),
    ("torch.nn.MultiheadAttention[batch_first,attn_mask]", _transpose("W_O")),  # square: d_e = M·d_v
    ("torch.nn.MultiheadAttention[bool_attn_mask]", _invert_mask),
    ("torch.nn.MultiheadAttention[attn_mask]", _swap(("W_Q", "W_K"))),
    ("torch.nn.TransformerEncoderLayer", _swap(("alpha_1", "alpha_2"), ("beta_1", "beta_2"))),
    ("torch.nn.TransformerEncoderLayer[norm_first,gelu]", _transpose("W_O")),
    ("torch.nn.TransformerDecoderLayer", _swap(("W_V", "W_V_cross"))),
    ("torch.nn.LayerNorm", _swap(("alpha", "beta"))),
    ("torch.nn.RNN", _transpose("W_h")),
    ("torch.nn.RNN[h_0]", _transpose("W_h")),
    ("torch.nn.LSTM[h_0,c_0]", _swap(("W_i", "W_f"), ("U_i", "U_f"), ("b_i", "b_f"))),  # gate order
    ("torch.nn.LSTM", _transpose("U_c")),
    ("torch.nn.Embedding", lambda a: {**a, "E": np.roll(a["E"], 1, axis=1)}),
]


@pytest.mark.parametrize(("name", "perturb"), WRONG, ids=[w[0] for w in WRONG])
def test_a_wrong_mapping_fails(name, perturb):
    b = _builtin(name)
    eq, sizes, arrays = _example(b, seed=1)
    if "S" in arrays:  # a mask that masks something and leaves no row empty: the causal one
        n = sizes["n"]
        arrays["S"] = np.broadcast_to(causal_pin(sizes), (2, n, n)).copy()
    want = OracleTarget(eq)(arrays, sizes)
    assert _close(_run(b, eq, arrays, sizes), want)
    assert not _close(_run(b, eq, perturb(arrays), sizes), want)


def test_is_causal_is_audited_with_the_causal_mask_only():
    name = "torch.nn.functional.scaled_dot_product_attention[is_causal]"
    report = audit(_builtin(name), pins={"S": lambda sizes: np.zeros((sizes["n"], sizes["n"]))},
                   profile=NO_SHRINK, diagnose=False)  # fmt: skip
    assert report.verdict == "fail"
    assert any(c.name == "value=oracle" and c.status == "fail" for c in report.checks)


@pytest.mark.parametrize(
    "name",
    [
        "torch.nn.MultiheadAttention[batch_first,key_padding_mask]",
        "torch.nn.MultiheadAttention[key_padding_mask]",
    ],
)
def test_key_padding_mask_polarity_is_pinned(name):
    """torch's key_padding_mask is True at padding: the spec's S of the opposite padding disagrees."""
    inverted = lambda sizes: np.where(torch_attention.padding_pin(sizes) == 0, -np.inf, 0.0)  # noqa: E731
    report = audit(_builtin(name), pins={"S": inverted}, profile=NO_SHRINK, diagnose=False)
    assert report.verdict == "fail"
    assert any(c.name == "value=oracle" and c.status == "fail" for c in report.checks)


def test_the_padding_pin():
    assert torch_attention.padding_pin({"n": 1}).tolist() == [[-math.inf]]
    assert torch_attention.padding_pin({"n": 3}).tolist() == [[0.0, -math.inf, -math.inf]] * 3
    assert torch_attention.padding_pin({"n": 4}).tolist() == [[0.0, 0.0, -math.inf, -math.inf]] * 4


def test_attention_modules_refuse_untied_head_widths():
    b = _builtin("torch.nn.MultiheadAttention[batch_first,attn_mask]")
    eq = spec.get(b.equation)
    sizes = {"n": 3, "d_e": 5, "M": 2, "d_k": 3, "d_v": 3}
    rng = np.random.default_rng(0)
    arrays = {d.ascii: seeded_tensor(rng, d.entry_kind, concrete_shape(d, sizes), sizes) for d in eq.params}
    arrays["H"], arrays["S"] = rng.standard_normal((5, 3)), np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"needs d_e = M·d_k and d_v = d_k .* found d_e=5, M=2, d_k=3"):
        _run(b, eq, arrays, sizes)


# --- fully masked rows: what torch does ---------------------------------------------------------------------
def _qkv(seed=0, n=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, n, d, generator=g, dtype=torch.float64) for d in (4, 4, 2)]


def test_sdpa_gives_a_fully_masked_row_zero_weights():
    Q, K, V = _qkv()
    keep = torch.ones(3, 3, dtype=torch.bool)
    keep[0] = False  # query 0 sees no key
    S = torch.zeros(3, 3, dtype=torch.float64).masked_fill(~keep, -math.inf)
    for out in (F.scaled_dot_product_attention(Q, K, V, attn_mask=keep),
                F.scaled_dot_product_attention(Q, K, V, attn_mask=S)):  # fmt: skip
        assert torch.equal(out[:, 0], torch.zeros(2, 2, dtype=torch.float64))  # zero weights: output 0
        assert torch.isfinite(out).all()


def _mha(batch_first: bool, M: int = 2) -> nn.MultiheadAttention:
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(4, M, batch_first=batch_first, dtype=torch.float64).eval()
    with torch.no_grad():
        mha.out_proj.bias.fill_(0.5)  # b_O: the output of a row with zero weights
    return mha


def _row_masks():
    ignore = torch.zeros(3, 3, dtype=torch.bool)
    ignore[0] = True  # query 0 may attend to nothing
    additive = torch.zeros(3, 3, dtype=torch.float64).masked_fill(ignore, -math.inf)
    padding = torch.zeros(2, 3, dtype=torch.bool)
    padding[0] = True  # every key of sequence 0 is padding
    return {"attn_mask": ignore}, {"attn_mask": additive}, {"key_padding_mask": padding}


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("grad", [True, False])
def test_multihead_attention_gives_nan_on_a_fully_masked_row_as_users_call_it(batch_first, grad):
    mha = _mha(batch_first)
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    x = x if batch_first else x.transpose(0, 1)
    with contextlib.nullcontext() if grad else torch.no_grad():
        for masks in _row_masks():
            out = mha(x, x, x, **masks)[0]  # need_weights=True, the default
            assert torch.isnan(out[0, 0]).all(), masks  # query 0 of sequence 0 in either layout


def test_multihead_attention_without_weights_depends_on_the_path():
    """need_weights=False: zero weights (output b_O) on the autograd path, NaN on the inference fast path
    (eval, no grad, batch_first, even M, bool mask)."""
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    ignore, additive, _ = _row_masks()
    mha = _mha(batch_first=True)
    out = mha(x, x, x, need_weights=False, **ignore)[0]  # the weights require grad: autograd path
    assert torch.allclose(out[0, 0], torch.full((4,), 0.5, dtype=torch.float64))
    with torch.no_grad():
        assert torch.isnan(mha(x, x, x, need_weights=False, **ignore)[0][0, 0]).all()  # fast path
        out = mha(x, x, x, need_weights=False, **additive)[0]  # float masks never take the fast path
        assert torch.allclose(out[0, 0], torch.full((4,), 0.5, dtype=torch.float64))
        odd = _mha(batch_first=True, M=1)(x, x, x, need_weights=False, **ignore)[0]
        assert torch.allclose(odd[0, 0], torch.full((4,), 0.5, dtype=torch.float64))


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_fully_masked_row_zero_in_training_nan_on_the_fast_path(norm_first):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        4, 2, 8, dropout=0.0, batch_first=True, norm_first=norm_first, dtype=torch.float64
    ).eval()
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    _, additive, _ = _row_masks()
    assert torch.isfinite(layer(x, src_mask=additive["attn_mask"])).all()  # autograd path
    with torch.no_grad():
        fast = layer(x, src_mask=additive["attn_mask"])
    assert torch.isnan(fast[:, 0]).all() and torch.isfinite(fast[:, 1:]).all()


def test_the_encoder_builtin_takes_the_training_path_under_no_grad():
    """The audit calls targets under no_grad: the built-in still gives the spec's zero-weight rows."""
    b = _builtin("torch.nn.TransformerEncoderLayer")
    sizes = {"n": 3, "d_e": 4, "M": 2, "d_k": 2, "d_v": 2, "d_f": 5}  # even M: the fast path would apply
    eq, sizes, arrays = _example(b, sizes=sizes)
    S = np.zeros((2, 3, 3))
    S[:, 0, :] = -np.inf  # query 0 sees nothing
    arrays["S"] = S
    got = _run(b, eq, arrays, sizes)  # BoundTarget runs under torch.no_grad()
    assert np.isfinite(got["H_out"]).all() and _close(got, OracleTarget(eq)(arrays, sizes))
    assert torch.backends.mha.get_fastpath_enabled()  # switched back on afterwards


@pytest.mark.parametrize(
    ("name", "matches", "differs"),
    [
        ("torch.nn.functional.scaled_dot_product_attention[bool_mask]", "", "[fully_masked_nan]"),
        ("torch.nn.functional.scaled_dot_product_attention[float_mask]", "", "[fully_masked_nan]"),
        ("torch.nn.MultiheadAttention[batch_first,attn_mask]", "[fully_masked_nan]", ""),
        ("torch.nn.MultiheadAttention[batch_first,bool_attn_mask]", "[fully_masked_nan]", ""),
        ("torch.nn.MultiheadAttention[attn_mask]", "[fully_masked_nan]", ""),
        ("torch.nn.MultiheadAttention[bool_attn_mask]", "[fully_masked_nan]", ""),
    ],
)
def test_the_fully_masked_row_convention_of_each_attention_builtin(name, matches, differs):
    """With a fully masked row, the built-in matches the oracle of its registered form and not the other."""
    b = _builtin(name)
    root = b.equation.split("[")[0]
    eq, sizes, arrays = _example(b)
    n = sizes["n"]
    S = np.broadcast_to(causal_pin(sizes), (2, n, n)).copy()
    S[0, n - 1, :] = -np.inf  # the last query of example 0 sees nothing
    arrays["S"] = S
    got = _run(b, eq, arrays, sizes)
    assert _close(got, OracleTarget(spec.get(root + matches))(arrays, sizes))
    assert not _close(got, OracleTarget(spec.get(root + differs))(arrays, sizes))


def test_the_key_padding_builtins_fully_masked_case_is_nan():
    """n = 1 under the padding pin: the one key is padding, every output is NaN (fully_masked_nan)."""
    for name in (
        "torch.nn.MultiheadAttention[batch_first,key_padding_mask]",
        "torch.nn.MultiheadAttention[key_padding_mask]",
    ):
        b = _builtin(name)
        sizes = {"n": 1, "d_e": 4, "M": 2, "d_k": 2, "d_v": 2}
        eq, sizes, arrays = _example(b, sizes=sizes)
        got = _run(b, eq, arrays, sizes)
        assert np.isnan(got["A"]).all()
        assert _close(got, OracleTarget(eq)(arrays, sizes))


# --- torch.nn.GRU: the reset-after form ---------------------------------------------------------------------
def test_gru_audit_reports_the_reset_after_difference():
    report = audit(_builtin("torch.nn.GRU"), profile=NO_SHRINK, diagnose=False)
    assert report.verdict == "fail"
    failed = {c.name for c in report.checks if c.status == "fail"}
    assert {"value=oracle", "value=generated"} <= failed
    assert "shape" not in failed


def test_gru_is_the_reset_after_step_and_agrees_on_the_first_token():
    """One step of nn.GRU with the documented mapping (torch's z-blocks negated, b_U in bias_hh's n-block)
    is h_t of gru.step[reset_after]; from h_0 = 0 with b_U = 0 the first token agrees with gru.step."""
    eq = spec.get("gru.step[reset_after]")
    sizes = {"d_e": 3, "d_h": 4}
    rng = np.random.default_rng(3)
    a = {d.ascii: rng.uniform(-2, 2, concrete_shape(d, sizes)) for d in (*eq.inputs, *eq.params)}
    want = OracleTarget(eq)(a, sizes)["h_t"]
    t = {k: torch.as_tensor(v) for k, v in a.items()}
    gru = nn.GRU(3, 4, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.cat([t["W_r"], -t["W_z"], t["W"]]))
        gru.weight_hh_l0.copy_(torch.cat([t["U_r"], -t["U_z"], t["U"]]))
        gru.bias_ih_l0.copy_(torch.cat([t["b_r"], -t["b_z"], t["b"]]))
        gru.bias_hh_l0.copy_(torch.cat([torch.zeros(8, dtype=torch.float64), t["b_U"]]))
        _, h_n = gru(t["x_t"].reshape(1, 1, 3), t["h_prev"].reshape(1, 1, 4))
    np.testing.assert_allclose(h_n.reshape(4).numpy(), want, rtol=1e-12, atol=1e-12)
    # the built-in (b_U = 0) on one token from h_0 = 0 is the catalogue's step: the forms differ from token 2
    b = _builtin("torch.nn.GRU")
    seq = spec.get(b.equation)
    _, sizes1, arrays = _example(b, seed=2)
    first = {**arrays, "X": arrays["X"][..., :1]}
    assert _close(_run(b, seq, first, {**sizes1, "n": 1}), OracleTarget(seq)(first, {**sizes1, "n": 1}))


# --- F.cross_entropy ----------------------------------------------------------------------------------------
def test_cross_entropy_ell_is_taken_without_ignore_index():
    """torch's per-position loss is 0 at an ignored target; the spec's ℓ is defined there too."""
    Z = torch.randn(4, 5, dtype=torch.float64)
    k = torch.tensor([1, 2, 3, 4])
    ignored = k.masked_fill(torch.tensor([False, True, False, False]), -100)
    assert F.cross_entropy(Z, ignored, reduction="none")[1] == 0
    assert F.cross_entropy(Z, k, reduction="none")[1] > 0


def test_cross_entropy_builtin_with_nothing_kept():
    b = _builtin("torch.nn.functional.cross_entropy")
    eq, sizes, arrays = _example(b)
    arrays["keep"] = np.zeros_like(arrays["keep"])
    got = _run(b, eq, arrays, sizes)
    assert np.isnan(got["loss"]).all() and (got["loss_sum"] == 0).all()
    assert _close(got, OracleTarget(eq)(arrays, sizes))


def test_builtins_are_listed_in_module_order_whatever_was_imported_first(monkeypatch):
    """A test or a user that imports hf_vit before torch_attention registers its built-ins first; the list
    (and docs/audit.md, generated from it) keeps the order of adapters.MODULES all the same."""
    from lmspec.verify.audit import adapters
    from lmspec.verify.audit.adapters import _registry

    want = list(builtins())
    last = want[-1]
    module = _registry.BUILTINS[last].make.__module__  # hf_vit's built-ins, registered first
    early = {k: v for k, v in _registry.BUILTINS.items() if v.make.__module__ == module}
    shuffled = early | {k: v for k, v in _registry.BUILTINS.items() if k not in early}
    monkeypatch.setattr(_registry, "BUILTINS", shuffled)
    monkeypatch.setattr(adapters, "BUILTINS", shuffled)
    assert next(iter(shuffled)) != want[0]  # the registry itself is out of order
    assert list(adapters.builtins()) == want
    modules = [b.make.__module__.rsplit(".", 1)[1] for b in adapters.builtins().values()]
    assert modules == sorted(modules, key=[m.lstrip(".") for m in adapters.MODULES].index)
