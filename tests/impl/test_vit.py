"""impl/ vit: hand-derivable patches, the Conv2d equivalence, the model against Hugging Face's ViTModel, and
wrong implementations the verifier catches."""

import functools
import math

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from jaxtyping import Float, TypeCheckError
from torch import Tensor

from lmspec import impl, spec
from lmspec.impl._registry import checked
from lmspec.impl.transformer import stack
from lmspec.impl.vit import ViT, encoder, head, input_, patchify, unpatchify
from lmspec.verify import strategies
from lmspec.verify._errors import PropertyViolation
from lmspec.verify.compare import POLICY
from lmspec.verify.properties import properties_of
from lmspec.verify.runner import PROFILES, checks_for, run_check, verify
from lmspec.verify.strategies import size_tuples
from lmspec.verify.targets import ImplTarget

torch.set_default_dtype(torch.float64)
# distinct sizes per axis: batch 2, P 3, C 5, grid 2 × 7 (image 6 × 21), d_e 4, M 2, d_k 3, d_f 11, n_c 13
B, P, C, N_h, N_w = 2, 3, 5, 2, 7


def test_patchify_by_hand():
    X = torch.arange(B * C * 6 * 21, dtype=torch.float64).reshape(B, C, 6, 21)
    X_p = patchify(X, P)
    assert X_p.shape == (B, N_h * N_w, P * P * C)
    # patch i = a N_w + b (0-based) holds X[k, 3a + r, 3b + s] at entry 9k + 3r + s
    for a, b, k, r, s in [(0, 0, 0, 0, 0), (1, 4, 2, 1, 2), (0, 6, 4, 2, 0), (1, 0, 3, 0, 1)]:
        assert X_p[1, a * N_w + b, 9 * k + 3 * r + s] == X[1, k, 3 * a + r, 3 * b + s]


def test_unpatchify_inverts_patchify_and_patchify_permutes():
    X = torch.randn(B, C, 6, 21)
    X_p = patchify(X, P)
    torch.testing.assert_close(unpatchify(X_p, P, C, N_h, N_w), X, rtol=0, atol=0)
    assert torch.equal(X_p.flatten().sort().values, X.flatten().sort().values)


def test_patch_embedding_is_a_stride_P_convolution():
    X = torch.randn(B, C, 6, 21)
    conv = torch.nn.Conv2d(C, 4, kernel_size=P, stride=P)
    want = conv(X).flatten(-2).transpose(-1, -2)  # (B, N, d_e), the grid row-major
    got = patchify(X, P) @ conv.weight.reshape(4, -1).transpose(0, 1) + conv.bias
    torch.testing.assert_close(got, want)


def test_patchify_rejects_a_patch_size_that_does_not_divide_the_image():
    with pytest.raises(ValueError, match="the patch size P=4 must divide the image height 6 and width 21"):
        patchify(torch.zeros(C, 6, 21), 4)


def test_input_by_hand_and_its_checks():
    X_p = torch.tensor([[[1.0], [2.0], [3.0]]])  # one image, N = 3 patches of d_p = 1
    E_p, b_p = torch.tensor([[1.0], [2.0]]), torch.tensor([0.0, 1.0])
    x_cls, Lambda = torch.tensor([5.0, 7.0]), torch.zeros(2, 4)
    H0 = input_(X_p, x_cls, E_p, Lambda, b_p)
    assert H0.tolist() == [[[5, 7], [1, 3], [2, 5], [3, 7]]]  # the class token first
    assert input_(X_p, x_cls, E_p, Lambda)[0, 1:, 1].tolist() == [2, 4, 6]  # no_bias
    with pytest.raises(ValueError, match=r"Λ has n=3 positions, but N=3 patches need N \+ 1 = 4"):
        input_(X_p, x_cls, E_p, torch.zeros(2, 3), b_p)
    with pytest.raises(TypeCheckError, match="E_p"):
        input_(X_p, x_cls, torch.zeros(2, 2), Lambda, b_p)


def _blocks(L=2, d_e=4, M=2, d_k=3, d_f=11, scale=0.5):
    shapes = {
        "W_Q": (L, M, d_e, d_k), "b_Q": (L, M, d_k), "W_K": (L, M, d_e, d_k), "b_K": (L, M, d_k),
        "W_V": (L, M, d_e, d_k), "b_V": (L, M, d_k), "W_O": (L, M * d_k, d_e), "b_O": (L, d_e),
        "alpha_1": (L, d_e), "beta_1": (L, d_e), "alpha_2": (L, d_e), "beta_2": (L, d_e),
        "W_1": (L, d_f, d_e), "b_1": (L, d_f), "W_2": (L, d_e, d_f), "b_2": (L, d_e),
    }  # fmt: skip
    return {k: torch.randn(s) * scale for k, s in shapes.items()}


def test_encoder_is_the_pre_ln_stack_with_exact_gelu_and_no_mask():
    X, p = torch.randn(B, 5, 4), _blocks()
    torch.testing.assert_close(encoder(X, **p), stack(X, None, **p, norm_first=True, activation="gelu"))
    tanh = stack(X, None, **p, norm_first=True, activation="gelu_tanh")
    assert (encoder(X, **p) - tanh).abs().max() > 1e-6  # the activation matters
    for name in ("W_O", "b_O", "W_2", "b_2"):
        p[name] = torch.zeros_like(p[name])
    torch.testing.assert_close(encoder(X, **p, eps=1e-6), X)  # zero sublayers: the identity


def test_encoder_activation_option_is_the_gelu_tanh_variant():
    X, p = torch.randn(B, 5, 4), _blocks()
    torch.testing.assert_close(
        encoder(X, **p, activation="gelu_tanh"), stack(X, None, **p, norm_first=True, activation="gelu_tanh")
    )
    model = ViT(6, 3, C, 4, 2, 1, 11, 13, activation="gelu_tanh")
    assert model.blocks.activation == "gelu_tanh"


def test_encoder_is_permutation_equivariant():
    X, p = torch.randn(B, 5, 4), _blocks()
    perm = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(encoder(X[:, perm], **p), encoder(X, **p)[:, perm])


def test_head_reads_the_class_token_only():
    H = torch.tensor([[[1.0, 3.0], [100.0, -100.0]]])  # class token (1, 3): LN gives (−1, 1)
    y = head(H, torch.ones(2), torch.zeros(2), torch.eye(2), torch.zeros(2))
    e = math.exp(2.0)
    torch.testing.assert_close(y, torch.tensor([[1 / (1 + e), e / (1 + e)]]), rtol=1e-15, atol=0)
    H[0, 1] = torch.tensor([-7.0, 9.0])
    torch.testing.assert_close(head(H, torch.ones(2), torch.zeros(2), torch.eye(2), torch.zeros(2)), y)


def test_vit_module_composes_the_four_equations():
    torch.manual_seed(0)
    model = ViT((6, 21), P, C, d_e=4, M=2, L=2, d_f=11, n_c=13, eps=1e-6)
    params = model.spec_params()
    assert params["E_p"].shape == (4, 45) and params["Lambda"].shape == (4, 15)
    assert params["W_Q"].shape == (2, 2, 4, 2) and params["W_head"].shape == (13, 4)
    assert sum(p.numel() for p in params.values()) == sum(p.numel() for p in model.parameters())
    X = torch.randn(B, C, 6, 21)
    H0 = input_(patchify(X, P), params["x_cls"], params["E_p"], params["Lambda"], params["b_p"])
    blocks = {k: params[k] for k in _blocks()}
    H = encoder(H0, **blocks, eps=1e-6)
    y = model(X)
    torch.testing.assert_close(
        y, head(H, params["alpha_e"], params["beta_e"], params["W_head"], params["b_head"], 1e-6)
    )
    assert y.shape == (B, 13)
    torch.testing.assert_close(model.patch_embedding_weight().reshape(4, -1), params["E_p"])


def test_vit_module_rejects_bad_sizes_and_loads_spec_params():
    with pytest.raises(ValueError, match=r"the patch size P=4 must divide the image size 6×21"):
        ViT((6, 21), 4, C, 4, 2, 2, 11, 13)
    with pytest.raises(ValueError, match="d_e=5 must be a multiple of the number of heads M=2"):
        ViT(6, 3, C, 5, 2, 2, 11, 13)
    model = ViT(6, 3, C, 4, 2, 2, 11, 13)
    params = {k: torch.zeros_like(v) for k, v in model.spec_params().items()}
    model.load_spec_params(params)
    assert all(not p.detach().any() for p in model.parameters())
    with pytest.raises(ValueError, match=r"missing b_head"):
        model.load_spec_params({k: v for k, v in params.items() if k != "b_head"})
    with pytest.raises(ValueError, match=r"W_Q\[0\] has shape \(2, 4, 3\), expected \(2, 4, 2\)"):
        model.load_spec_params({**params, "W_Q": torch.zeros(2, 2, 4, 3)})


# --- Hugging Face ---------------------------------------------------------------------------------
def _hf_to_spec(state: dict[str, Tensor], L: int, M: int, d_e: int) -> dict[str, Tensor]:
    """Hugging Face (transformers 5) ViT weights named and oriented as the spec's (spec_params())."""
    d_k = d_e // M

    def heads(w: Tensor) -> Tensor:  # nn.Linear weight (M d_k, d_e) -> W^{(m)} ∈ ℝ^{d_e×d_k}, stacked on m
        return w.transpose(0, 1).reshape(d_e, M, d_k).permute(1, 0, 2)

    out = {
        "E_p": state["embeddings.patch_embeddings.projection.weight"].reshape(d_e, -1),
        "b_p": state["embeddings.patch_embeddings.projection.bias"],
        "x_cls": state["embeddings.cls_token"][0, 0],
        "Lambda": state["embeddings.position_embeddings"][0].transpose(0, 1),
        "alpha_e": state["layernorm.weight"],
        "beta_e": state["layernorm.bias"],
    }
    per_layer: dict[str, list[Tensor]] = {}
    for layer in range(L):
        s = {
            k.removeprefix(f"layers.{layer}."): v
            for k, v in state.items()
            if k.startswith(f"layers.{layer}.")
        }
        one = {"W_O": s["attention.o_proj.weight"].transpose(0, 1), "b_O": s["attention.o_proj.bias"]}
        for x in "QKV":
            one[f"W_{x}"] = heads(s[f"attention.{x.lower()}_proj.weight"])
            one[f"b_{x}"] = s[f"attention.{x.lower()}_proj.bias"].reshape(M, d_k)
        one.update(alpha_1=s["layernorm_before.weight"], beta_1=s["layernorm_before.bias"])
        one.update(alpha_2=s["layernorm_after.weight"], beta_2=s["layernorm_after.bias"])
        one.update(
            W_1=s["mlp.fc1.weight"], b_1=s["mlp.fc1.bias"], W_2=s["mlp.fc2.weight"], b_2=s["mlp.fc2.bias"]
        )
        for k, v in one.items():
            per_layer.setdefault(k, []).append(v)
    out.update({k: torch.stack(v) for k, v in per_layer.items()})
    return out


def _hf_pair(attn: str, n_c: int = 0):
    from transformers import ViTConfig, ViTForImageClassification, ViTModel

    config = ViTConfig(
        image_size=8, patch_size=4, num_channels=3, hidden_size=12, num_hidden_layers=2,
        num_attention_heads=3, intermediate_size=20, attn_implementation=attn, num_labels=max(n_c, 1),
    )  # fmt: skip
    torch.manual_seed(0)
    hf = (ViTForImageClassification(config) if n_c else ViTModel(config, add_pooling_layer=False)).double()
    with torch.no_grad():
        for p in hf.parameters():  # random weights of a trained model's scale, not the init's zeros/ones
            p.normal_(0.0, 0.5)
    hf.eval()
    ours = ViT(8, 4, 3, d_e=12, M=3, L=2, d_f=20, n_c=max(n_c, 1), eps=config.layer_norm_eps)
    state = hf.state_dict() if not n_c else {k.removeprefix("vit."): v for k, v in hf.state_dict().items()}
    params = _hf_to_spec(state, L=2, M=3, d_e=12)
    if n_c:
        params.update(W_head=state["classifier.weight"], b_head=state["classifier.bias"])
    else:
        params.update(W_head=torch.zeros(1, 12), b_head=torch.zeros(1))
    ours.load_spec_params(params)
    return hf, ours


def test_vit_equals_hugging_face_with_sdpa_attention_in_float64():
    hf, ours = _hf_pair("sdpa")
    X = torch.randn(B, 3, 8, 8)
    with torch.no_grad():
        want = hf(pixel_values=X).last_hidden_state
    torch.testing.assert_close(ours.last_hidden_state(X), want, rtol=1e-12, atol=1e-12)


def test_vit_equals_hugging_face_with_eager_attention():
    # Hugging Face's eager attention takes the softmax in float32 (softmax(..., dtype=torch.float32)) even in
    # a float64 model, so the two agree to float32's precision only (measured max |Δ| ≈ 4e-8).
    hf, ours = _hf_pair("eager")
    assert hf.config._attn_implementation == "eager"
    X = torch.randn(B, 3, 8, 8)
    with torch.no_grad():
        want = hf(pixel_values=X).last_hidden_state
    torch.testing.assert_close(ours.last_hidden_state(X), want, rtol=1e-6, atol=1e-6)


def test_vit_classifier_equals_hugging_face_logits():
    hf, ours = _hf_pair("sdpa", n_c=7)
    X = torch.randn(B, 3, 8, 8)
    with torch.no_grad():
        logits = hf(pixel_values=X).logits
    torch.testing.assert_close(ours(X), torch.softmax(logits, dim=-1), rtol=1e-12, atol=1e-12)


# --- the verifier -----------------------------------------------------------------------------------
@checked
def patchify_einops_order(X: Float[Tensor, "*batch C_i H_i W_i"], P: int) -> Float[Tensor, "*batch N_p d_p"]:
    """'b c (h p1) (w p2) -> b (h w) (p1 p2 c)': within a patch (row, column, channel) — a different E_p."""
    H, W = X.shape[-2:]
    grid = X.unflatten(-1, (W // P, P)).unflatten(-3, (H // P, P))  # (*batch, C, N_h, P, N_w, P)
    return torch.einsum("...karbs->...abrsk", grid).flatten(-3).flatten(-3, -2)


@checked
def patchify_column_major(X: Float[Tensor, "*batch C_i H_i W_i"], P: int) -> Float[Tensor, "*batch N_p d_p"]:
    """Patches numbered down the columns of the grid instead of along its rows."""
    H, W = X.shape[-2:]
    grid = X.unflatten(-1, (W // P, P)).unflatten(-3, (H // P, P))
    return torch.einsum("...karbs->...bakrs", grid).flatten(-3).flatten(-3, -2)


@checked
def input_class_token_last(
    X_p: Float[Tensor, "*batch N_p d_p"],
    x_cls: Float[Tensor, " d_e"],
    E_p: Float[Tensor, "d_e d_p"],
    b_p: Float[Tensor, " d_e"],
    Lambda: Float[Tensor, "d_e n"],
) -> Float[Tensor, "*batch n d_e"]:
    patches = X_p @ E_p.transpose(0, 1) + b_p
    cls = x_cls.expand(*patches.shape[:-2], 1, x_cls.shape[-1])
    return torch.cat([patches, cls], dim=-2) + Lambda.transpose(0, 1)


@checked
def head_mean_pool(
    H: Float[Tensor, "*batch n d_e"],
    alpha_e: Float[Tensor, " d_e"],
    beta_e: Float[Tensor, " d_e"],
    W_head: Float[Tensor, "n_c d_e"],
    b_head: Float[Tensor, " n_c"],
) -> Float[Tensor, "*batch n_c"]:
    """Average pooling over every token instead of the class token."""
    h = impl.implementation("norm.layer_norm")(H.mean(dim=-2, keepdim=True), alpha_e, beta_e)[..., 0, :]
    return torch.softmax(h @ W_head.transpose(0, 1) + b_head, dim=-1)


WRONG = [
    # (bug, equation, implementation, the property that catches it)
    ("einops patch order", "vit.patchify", patchify_einops_order, "patchify_bijection"),
    ("einops patch order", "vit.patchify", patchify_einops_order, "patch_embedding_is_conv"),
    ("column-major patches", "vit.patchify", patchify_column_major, "patchify_bijection"),
    ("column-major patches", "vit.patchify", patchify_column_major, "patch_embedding_is_conv"),
    ("class token last", "vit.input", input_class_token_last, "token_locality"),
    ("mean pooling head", "vit.head", head_mean_pool, "class_token_only"),
]


def property_violations(eq_id: str, name: str, fn, examples: int = 6) -> list[str]:
    """The messages of the property ``name`` on ``fn`` over a few drawn examples (no shrinking)."""
    eq = spec.get(eq_id)
    target = ImplTarget(eq, fn, name="wrong")
    prop, options = next((p, o) for p, o in properties_of(eq) if p.name == name)
    pool = size_tuples(eq, 2, 0)
    caught: list[str] = []

    @settings(max_examples=examples, phases=[Phase.generate], database=None, deadline=None)
    @given(st.data())
    def run(data):
        example = data.draw(strategies.examples(eq, data.draw(st.sampled_from(pool))))
        try:
            prop.check(eq, target, example, data, options, POLICY["float64"])
        except PropertyViolation as exc:
            caught.append(str(exc))

    run()
    return caught


@pytest.mark.parametrize(("bug", "eq_id", "fn", "name"), WRONG, ids=[f"{w[0]}-{w[3]}" for w in WRONG])
def test_wrong_implementation_violates_the_property(bug, eq_id, fn, name):
    caught = property_violations(eq_id, name, fn)
    assert caught and all(m.startswith(f"wrong violates {name}: ") for m in caught)
    assert not property_violations(eq_id, name, impl.implementation(eq_id))  # impl/ satisfies it


@pytest.mark.parametrize(
    ("bug", "eq_id", "fn"), sorted({w[:3] for w in WRONG}, key=str), ids=lambda x: str(x)[:20]
)
def test_wrong_implementation_fails_against_the_generated_code(bug, eq_id, fn):
    eq = spec.get(eq_id)
    target = ImplTarget(eq, fn, name=f"wrong[{bug}]")
    check = next(c for c in checks_for(eq, PROFILES["quick"], 0, target) if c.name == "impl=generated")
    result = run_check(check, PROFILES["quick"], 0)
    assert not result.passed and result.message.startswith(f"wrong[{bug}]: ")
    assert result.counterexample["sizes"]


@functools.wraps(encoder)  # the same signature and annotations
def encoder_gelu_tanh(X: Tensor, **params: Tensor) -> Tensor:
    """GPT-2's GELU-tanh instead of ViT's exact GELU."""
    params.pop("eps", None)
    return stack(X, None, **params, norm_first=True, activation="gelu_tanh")


def test_encoder_with_tanh_gelu_is_caught():
    eq = spec.get("vit.encoder")
    target = ImplTarget(eq, encoder_gelu_tanh, name="wrong[gelu_tanh]")
    check = next(c for c in checks_for(eq, PROFILES["quick"], 0, target) if c.name == "impl=generated")
    result = run_check(check, PROFILES["quick"], 0)
    assert not result.passed and "wrong[gelu_tanh]" in result.message


@pytest.mark.parametrize(
    "eq_id", ["vit.input[no_bias]", "vit.encoder[eps]", "vit.head[eps]", "vit.head[no_bias_eps]"]
)
def test_impl_also_implements_the_named_variants(eq_id):
    # a bias left out is the variant no_bias; eps (a float keyword) binds to the variants' ε
    eq = spec.get(eq_id)
    check = next(c for c in checks_for(eq, PROFILES["quick"], 0) if c.name == "impl=generated")
    assert run_check(check, PROFILES["quick"], 0).passed


def test_impl_passes_the_verifier():
    results = verify(spec.select(["vit"]), "quick", 1)
    failures = [f"{r.equation} {r.check}: {r.message}" for r in results if not r.passed]
    assert not failures
    assert len(results) == 17
