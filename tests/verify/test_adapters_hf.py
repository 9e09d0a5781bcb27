"""Built-in Hugging Face targets (verify/audit/adapters/hf_*.py, transformers 5.23): each is audited against
its equation; each really runs the transformers module (a changed forward or a wrong weight layout is
caught); and the differences from the spec they document are real (found by running them, asserted here)."""

import math

import numpy as np
import pytest
import torch

from lmspec import spec
from lmspec.impl.attention import multi_head
from lmspec.impl.norm import layer_norm
from lmspec.impl.transformer import ffn
from lmspec.impl.vit import patchify
from lmspec.verify.audit import audit, builtins
from lmspec.verify.audit.adapters import _hf, hf_gpt2, hf_vit
from lmspec.verify.binding import bind
from lmspec.verify.compare import POLICY, compare
from lmspec.verify.oracle import concrete_shape
from lmspec.verify.strategies import seeded_tensor
from lmspec.verify.targets import GeneratedTarget

#: The built-ins of hf_gpt2, hf_bert and hf_vit (hf_lm and hf_patchtst have their own tests).
HF = {
    name: b
    for name, b in builtins().items()
    if b.group == "hf" and b.make.__module__.rsplit(".", 1)[1] in {"hf_gpt2", "hf_bert", "hf_vit"}
}
NAMES = sorted(HF)

#: What each target is audited against by default.
EQUATIONS = {
    "transformers.GPT2Attention": "attention.multi_head",
    "transformers.GPT2MLP": "transformer.ffn",
    "transformers.GPT2Block": "transformer.block_pre_ln[eps]",
    "transformers.GPT2LMHeadModel": "gpt2.forward[eps]",
    "transformers.GPT2LMHeadModel.lm_head": "gpt2.lm_head",
    "transformers.BertEmbeddings": "bert.input[eps]",
    "transformers.BertSelfAttention": "attention.multi_head[fully_masked_uniform]",
    "transformers.BertLayer": "transformer.block_post_ln[eps]",
    "transformers.BertOnlyMLMHead": "bert.mlm_head[eps]",
    "transformers.BertPooler": "bert.pooler",
    "transformers.BertOnlyNSPHead": "bert.nsp_head",
    "transformers.ViTEmbeddings": "vit.input",
    "transformers.ViTLayer": "transformer.block_pre_ln[gelu_eps]",
}
#: Checks the audit does not apply, and why: the property varies an input the target fixes (its pin), or
#: calls the target with one head of the same width, which Hugging Face's d_e = M d_k forbids.
PINNED = {"property:causal", "property:permutation_equivariance"}
CAUSAL_PINNED = {"property:permutation_equivariance"}  # the causal property runs with the causal mask
ONE_HEAD = {"property:heads_concat", "property:single_head"}
SKIPPED = {
    "transformers.GPT2Attention": CAUSAL_PINNED | ONE_HEAD,
    "transformers.GPT2Block": CAUSAL_PINNED,
    "transformers.BertSelfAttention": ONE_HEAD,
    "transformers.ViTLayer": PINNED,
}
#: Checks that fail for a documented reason (each has its own test below).
KNOWN = {
    "transformers.BertEmbeddings": {"gradient"},
    "transformers.BertLayer": {"value=edges"},  # a fully masked row: finfo.min fills give uniform weights
}


def _example(name: str, seed: int = 0, **override: int):
    """Spec-layout arrays for one example of the built-in at fixed sizes (batch 2), pins applied."""
    b = HF[name]
    eq = spec.get(b.equation)
    base = {"n": 4, "n_max": 6, "v": 7, "d_e": 6, "M": 2, "d_k": 3, "d_v": 3, "d_f": 5, "L": 2, "d_p": 12}
    sizes = {a: base[a] for a in eq.axes if a in base}
    if "N_p" in eq.axes:
        sizes.update(N_p=6, n=7)
    sizes.update(override)
    rng = np.random.default_rng(seed)
    arrays = {}
    for d in (*eq.inputs, *eq.params):
        shape = concrete_shape(d, sizes)
        arrays[d.ascii] = seeded_tensor(rng, d.entry_kind, (2, *shape) if d in eq.inputs else shape, sizes)
    if "s" in arrays:
        arrays["s"] = rng.integers(0, 2, size=arrays["s"].shape)
    for k, value in {**b.pins, **b.constants}.items():
        v = np.asarray(value(sizes) if callable(value) else value, dtype=np.float64)
        arrays[k] = np.broadcast_to(v, (2, *v.shape) if eq.declared(k) in eq.inputs else v.shape).copy()
    return eq, sizes, arrays


def _bound(name: str, eq, arrays):
    """The built-in's callable and the example as its keyword arguments (batch-first, through its binding)."""
    fn = HF[name].make()
    binding = bind(fn, eq, missing_ok=tuple(HF[name].pins))
    kwargs = {lay.param: lay.to_impl(arrays[lay.name], 1, torch.float64, "cpu") for lay in binding.args}
    return fn, kwargs, binding


def _call(name: str, arrays, eq) -> torch.Tensor:
    fn, kwargs, _ = _bound(name, eq, arrays)
    return fn(**kwargs)


def _spec_value(name: str, eq, sizes, arrays) -> torch.Tensor:
    """The spec's output (the generated code's), batch-first like the built-in's."""
    lay = _bound(name, eq, arrays)[2].outputs[0]
    want = GeneratedTarget(eq)(arrays, sizes)[lay.name]
    return torch.from_numpy(np.ascontiguousarray(np.transpose(want, [0] + [1 + int(k) for k in lay.perm])))


# --- registration ---------------------------------------------------------------------------------------
def test_each_hugging_face_target_is_registered_with_its_equation_mapping_and_ties():
    assert {name: b.equation for name, b in HF.items()} == EQUATIONS
    for name, b in HF.items():
        eq = spec.get(b.equation)
        assert len(b.mapping) >= 2 and len(b.description) > 60, name
        assert set(b.derive) <= set(eq.free_axes), name
    assert HF["transformers.GPT2Attention"].derive == {"d_e": "M*d_k", "d_v": "d_k"}
    assert HF["transformers.ViTLayer"].derive == {"d_v": "d_k"}  # ViTAttention reads config.head_dim
    assert HF["transformers.GPT2Block"].constants == {"eps": 1e-5}
    assert HF["transformers.BertLayer"].constants == {"eps": 1e-12}
    assert set(HF["transformers.ViTLayer"].pins) == {"S"} and set(HF["transformers.GPT2Block"].pins) == {"S"}
    assert _hf.zeros_pin({"n": 3}).tolist() == np.zeros((3, 3)).tolist()


# --- the audit --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_audit_of_the_builtin(name):
    report = audit(name, profile="quick", diagnose=False)
    assert report.equation == EQUATIONS[name]
    status = {c.name: c.status for c in report.checks}
    messages = {c.name: c.message for c in report.checks}
    skipped, known = SKIPPED.get(name, set()), KNOWN.get(name, set())
    want = {c: "skip" if c in skipped else "fail" if c in known else "pass" for c in status}
    assert status == want, messages
    assert {"shape", "value=oracle", "value=generated", "gradient"} <= set(status)
    assert report.verdict == ("fail" if name in KNOWN else "pass"), report.summary


# --- each goes through Hugging Face -----------------------------------------------------------------------
#: The transformers class whose forward computes each target's result.
CLASSES = {
    "transformers.GPT2Attention": ("gpt2", "GPT2Attention"),
    "transformers.GPT2MLP": ("gpt2", "GPT2MLP"),
    "transformers.GPT2Block": ("gpt2", "GPT2Block"),
    "transformers.GPT2LMHeadModel": ("gpt2", "GPT2Block"),
    "transformers.GPT2LMHeadModel.lm_head": ("gpt2", "GPT2LMHeadModel.get_output_embeddings"),
    "transformers.BertEmbeddings": ("bert", "BertEmbeddings"),
    "transformers.BertSelfAttention": ("bert", "BertSelfAttention"),
    "transformers.BertLayer": ("bert", "BertLayer"),
    "transformers.BertOnlyMLMHead": ("bert", "BertOnlyMLMHead"),
    "transformers.BertPooler": ("bert", "BertPooler"),
    "transformers.BertOnlyNSPHead": ("bert", "BertOnlyNSPHead"),
    "transformers.ViTEmbeddings": ("vit", "ViTEmbeddings"),
    "transformers.ViTLayer": ("vit", "ViTLayer"),
}


def _doubled(out):
    if isinstance(out, torch.Tensor):
        return 2 * out
    if isinstance(out, tuple):
        return (_doubled(out[0]), *out[1:])
    if isinstance(out, torch.nn.Module):  # get_output_embeddings: a layer doubling its output
        return lambda H: 2 * out(H)
    raise TypeError(type(out))


@pytest.mark.parametrize("name", NAMES)
def test_the_result_comes_from_the_transformers_module(name, monkeypatch):
    """Doubling the output of the transformers class's forward changes the built-in's result: it is
    computed by that class (on the first call the result is the spec's)."""
    import transformers

    family, attr = CLASSES[name]
    cls_name, _, method = attr.partition(".")
    cls = getattr(getattr(transformers.models, family), f"modeling_{family}").__dict__[cls_name]
    eq, sizes, arrays = _example(name)
    before = _call(name, arrays, eq)
    torch.testing.assert_close(before, _spec_value(name, eq, sizes, arrays), rtol=1e-9, atol=1e-10)
    original = getattr(cls, method or "forward")
    calls = []

    def spy(self, *args, **kwargs):
        calls.append(type(self).__name__)
        return _doubled(original(self, *args, **kwargs))

    monkeypatch.setattr(cls, method or "forward", spy)
    after = _call(name, arrays, eq)
    assert calls and not torch.allclose(after, before)


def _wrong_heads_linear(W):
    """The classic bug: heads merged without the transpose (rows of Wᵀ read in the wrong order)."""
    return W.reshape(-1, W.shape[1])


def _wrong_heads_conv1d(W):
    return W.reshape(W.shape[1], -1)


@pytest.mark.parametrize(
    ("name", "module", "helper", "wrong"),
    [
        ("transformers.GPT2Attention", hf_gpt2, "_heads_conv1d", _wrong_heads_conv1d),
        ("transformers.GPT2LMHeadModel", hf_gpt2, "_heads_conv1d", _wrong_heads_conv1d),
        ("transformers.BertSelfAttention", _hf, "heads_linear", _wrong_heads_linear),
        ("transformers.BertLayer", _hf, "heads_linear", _wrong_heads_linear),
        ("transformers.ViTLayer", _hf, "heads_linear", _wrong_heads_linear),
    ],
)
def test_a_wrong_head_layout_is_caught(name, module, helper, wrong, monkeypatch):
    eq, _, arrays = _example(name)
    right = _call(name, arrays, eq)
    monkeypatch.setattr(module, helper, wrong)
    assert not torch.allclose(_call(name, arrays, eq), right, atol=1e-6)


def test_a_wrong_head_layout_fails_the_audit(monkeypatch):
    monkeypatch.setattr(_hf, "heads_linear", _wrong_heads_linear)
    report = audit("transformers.BertSelfAttention", profile="quick", diagnose=False)
    status = {c.name: c.status for c in report.checks}
    assert status["value=oracle"] == "fail" and status["value=generated"] == "fail"
    assert report.verdict == "fail"


def test_patches_become_the_image_whose_patches_they_are():
    """The ViT adapter's image (pixel_values) has the spec's patches (impl.vit.patchify) as patches."""
    assert hf_vit.patch_geometry(12, 6) == (3, 2, 2, 3)  # C = 3 channels of 2 × 2 patches, a 2 × 3 grid
    assert hf_vit.patch_geometry(16, 4) == (1, 4, 2, 2)
    assert hf_vit.patch_geometry(7, 5) == (7, 1, 1, 5)  # no square divides 7: 1 × 1 patches of 7 channels
    X_p = torch.randn(2, 6, 12, dtype=torch.float64)
    image = hf_vit._image(X_p, 3, 2, 2, 3)
    assert image.shape == (2, 3, 4, 6)
    torch.testing.assert_close(patchify(image, 2), X_p, rtol=0, atol=0)


def test_a_wrong_patch_order_is_caught(monkeypatch):
    name = "transformers.ViTEmbeddings"
    eq, _, arrays = _example(name)  # d_p = 12: 3 channels of 2 × 2 patches
    right = _call(name, arrays, eq)

    def rows_and_columns_swapped(X_p, C, P, N_h, N_w):
        grid = X_p.reshape(X_p.shape[0], N_h, N_w, C, P, P)
        return grid.permute(0, 3, 1, 5, 2, 4).reshape(X_p.shape[0], C, N_h * P, N_w * P)

    monkeypatch.setattr(hf_vit, "_image", rows_and_columns_swapped)
    assert not torch.allclose(_call(name, arrays, eq), right, atol=1e-6)


def test_heads_wider_than_d_e_over_M_are_refused_with_the_tie():
    name = "transformers.GPT2Attention"
    eq, _, arrays = _example(name, d_e=6, M=1, d_k=3, d_v=3)
    with pytest.raises(ValueError, match=r"GPT2Attention needs d_k = d_v = d_e / M, found d_e=6, M=1, d_k=3"):
        _call(name, arrays, eq)


# --- the differences they document ------------------------------------------------------------------------
def test_gpt2_attention_is_causal_only_through_the_mask_the_model_builds(monkeypatch):
    """GPT2Attention with eager attention and no mask attends to future tokens: the causality of GPT-2 is
    the mask GPT2Model builds (create_causal_mask), which the built-in passes as the model does."""
    name = "transformers.GPT2Attention"
    eq, _, arrays = _example(name)
    causal = _call(name, arrays, eq)
    monkeypatch.setattr(hf_gpt2, "_gpt2_causal_mask", lambda config, H: None)
    open_ = _call(name, arrays, eq)
    torch.testing.assert_close(open_[:, -1], causal[:, -1])  # the last token sees everything either way
    assert not torch.allclose(open_[:, 0], causal[:, 0])  # the first one now sees the future


def test_bert_layer_gives_a_fully_masked_row_uniform_weights():
    """With BertModel's extended mask (finfo.min), a query whose keys are all masked averages every value
    (the spec's variant fully_masked_uniform), where the spec gives it zero weights."""
    name = "transformers.BertLayer"
    eq, sizes, arrays = _example(name)
    S = np.zeros((2, 4, 4))
    S[0, 1, :] = -np.inf  # query 1 of sequence 0: every key masked
    S[1, :, 2] = -np.inf  # key 2 masked for every query of sequence 1
    arrays["S"] = S
    got = _call(name, arrays, eq)
    want = _spec_value(name, eq, sizes, arrays)
    assert not torch.allclose(got[0, 1], want[0, 1], atol=1e-3)  # the fully masked row differs
    torch.testing.assert_close(got[1], want[1], rtol=1e-9, atol=1e-10)  # partly masked rows agree
    # the post-LN block whose attention is multi_head[fully_masked_uniform] gives Hugging Face's values
    p = _bound(name, eq, arrays)[1]
    heads = ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O")
    mha = spec.get("attention.multi_head[fully_masked_uniform]")
    mha_sizes = {k: sizes[k] for k in mha.axes}
    A = GeneratedTarget(mha)({**{k: arrays[k] for k in heads}, "H": arrays["H"], "S": S}, mha_sizes)["A"]
    A = torch.from_numpy(np.ascontiguousarray(np.swapaxes(A, -1, -2)))
    eps = p["eps"]
    C = layer_norm(p["H"] + A, p["alpha_1"], p["beta_1"], eps)
    D = ffn(C, p["W_1"], p["b_1"], p["W_2"], p["b_2"], "gelu")
    H_out = layer_norm(C + D, p["alpha_2"], p["beta_2"], eps)
    torch.testing.assert_close(got, H_out, rtol=1e-9, atol=1e-10)
    # and with −∞ (impl/, the spec) that row attends to nothing: only b_O reaches it
    A_spec = multi_head(p["H"], *(p[k] for k in heads), S=torch.from_numpy(S))
    torch.testing.assert_close(A_spec[0, 1], p["b_O"])


def test_bert_embeddings_give_the_pad_vector_no_gradient():
    """word_embeddings has padding_idx = pad_token_id = 0: the values are the spec's, but column 0 of E (the
    [PAD] vector) gets a zero gradient where the spec's gradient is not zero."""
    name = "transformers.BertEmbeddings"
    eq, sizes, arrays = _example(name)
    arrays["k"][0, :2] = 0  # [PAD] twice in the first sequence
    fn, kwargs, _ = _bound(name, eq, arrays)
    E = kwargs["E"].clone().requires_grad_(True)
    H = fn(**{**kwargs, "E": E})
    torch.testing.assert_close(H, _spec_value(name, eq, sizes, arrays), rtol=1e-9, atol=1e-10)
    G = torch.randn_like(H)
    (grad,) = torch.autograd.grad((H * G).sum(), E)
    E2 = kwargs["E"].clone().requires_grad_(True)
    ours = layer_norm(E2.T[kwargs["k"]] + kwargs["Lambda"].T[:4] + kwargs["G"].T[kwargs["s"]],
                      kwargs["alpha_e"], kwargs["beta_e"], kwargs["eps"])  # fmt: skip
    (want,) = torch.autograd.grad((ours * G).sum(), E2)
    assert torch.all(grad[:, 0] == 0) and torch.all(want[:, 0].abs() > 0)
    torch.testing.assert_close(grad[:, 1:], want[:, 1:], rtol=1e-9, atol=1e-10)


def test_vit_eager_attention_agrees_to_float32_only(monkeypatch):
    """ViT's eager attention takes its softmax in float32: in float64 it misses the tolerance (hence sdpa)."""
    name = "transformers.ViTLayer"
    eq, sizes, arrays = _example(name)
    want = _spec_value(name, eq, sizes, arrays)
    sdpa = _call(name, arrays, eq)
    torch.testing.assert_close(sdpa, want, rtol=1e-9, atol=1e-10)
    monkeypatch.setattr(hf_vit, "VIT_ATTENTION", "eager")
    c = compare(_call(name, arrays, eq).numpy(), want.numpy(), POLICY["float64"])
    assert not c.ok and 1e-12 < c.max_rel < 1e-5  # float32 rounding, relative to the entries


def test_gpt2_lm_head_logits_come_through_the_tie_to_wte():
    name = "transformers.GPT2LMHeadModel.lm_head"
    eq, _, arrays = _example(name)
    fn, kwargs, _ = _bound(name, eq, arrays)
    Y = fn(**kwargs)
    torch.testing.assert_close(Y, torch.softmax(kwargs["H"] @ kwargs["E"], dim=-1), rtol=1e-12, atol=1e-12)
    assert math.isclose(Y.sum(-1).mean().item(), 1.0)
