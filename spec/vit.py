"""The vision transformer (Dosovitskiy et al. 2021): patches, input, encoder and classification head.

An image has C channels of H_img × W_img pixels. lmspec stores it channel first, as torch does (NCHW): a
family of channel planes ``X^{(k)} ∈ ℝ^{H_img×W_img}``, k = 1..C. Cut into P × P patches it is a grid of
N_h × N_w patches (``H_img = P N_h``, ``W_img = P N_w``), ``N = N_h N_w`` in all.

**Order of the patches and of their entries** (one convention, used everywhere in lmspec):

- patches are numbered row-major over the grid: patch ``i = (a − 1) N_w + b`` is grid row a, grid column b;
- a patch is flattened channel first, then pixel row, then pixel column: entry ``(k − 1)P² + (r − 1)P + s``
  of ``x_p^i ∈ ℝ^{P²C}`` is ``X^{(k)}_{(a−1)P + r, (b−1)P + s}``.

This is the order of ``torch.nn.Conv2d(C, d_e, kernel_size=P, stride=P)``: its weight ``(d_e, C, P, P)``
reshaped to ``(d_e, C P²)`` is ``E_p``, and its output ``(d_e, N_h, N_w)`` flattened over the grid is
``E_p X_p + b_p 1ᵀ`` (the property ``patch_embedding_is_conv``). Hugging Face's ``ViTPatchEmbeddings`` and
timm's ``PatchEmbed`` are that convolution. (The paper writes ``x_p ∈ ℝ^{N×(P²·C)}`` without fixing the
order inside a patch; ``einops`` code often flattens (row, column, channel) instead — a different E_p.)

The patch vector width is the axis ``d_p = P²C``, so that ``vit.input`` (which starts from patches, as the
tutorial writes it) and implementations can name it.
"""

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from .axes import L, P, axis, d_e, d_k, d_v, n
from .equation import Equation, Invariant, Reference
from .norm import eps_symbol, ln_params, normalise
from .ops import Ones, Softmax, SpecOp, T, add, mul
from .ops_nn import Column, Zeros, call
from .registry import register
from .tensors import Family, Kind, tensor
from .transformer import attention_params, block_id, ffn_params, norm_params

C_i, H_i, W_i, N_p, N_h, N_w, d_p, n_c = (
    axis(a) for a in ("C_i", "H_i", "W_i", "N_p", "N_h", "N_w", "d_p", "n_c")
)
#: The channel index of the image family X^{(k)}, k = 1..C.
k = sp.Symbol("k", integer=True, positive=True)
#: The layer index of per-layer families, l = 1..L.
l = sp.Symbol("l", integer=True, positive=True)

SECTION = "§5 Transformers in vision"
DOSOVITSKIY = "Dosovitskiy et al. 2021"
#: The ε of the layer norms in real ViT code: Hugging Face's ViTConfig, and the original JAX code / timm.
EPS_HF = sp.Float("1e-12")
EPS_TIMM = sp.Float("1e-6")


class Patchify(SpecOp):
    """``patchify_P(X) ∈ ℝ^{P²C×N_h N_w}``: the P × P patches of an image as columns (module docstring).

    Operands: ``body`` the image's channel plane ``X^{(k)}`` (a family member in ``index``), ``count`` the
    channels C, the patch size P and the grid ``rows`` × ``cols`` (N_h × N_w).
    """

    def __new__(cls, body, index, count, size, rows, cols) -> "Patchify":
        return MatrixExpr.__new__(cls, body, index, *(sp.sympify(x) for x in (count, size, rows, cols)))

    @property
    def body(self):
        return self.args[0]

    @property
    def sizes(self) -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]:
        """(C, P, N_h, N_w)."""
        return self.args[2], self.args[3], self.args[4], self.args[5]

    @property
    def shape(self):
        count, size, rows, cols = self.sizes
        return (size**2 * count, rows * cols)

    @property
    def free_symbols(self) -> set:
        out = self.body.free_symbols - {self.args[1]}
        for s in self.sizes:
            out |= s.free_symbols
        return out

    def _check_shapes(self, checker) -> None:
        _, size, rows, cols = self.sizes
        checker.require(
            "patchify", "image rows (P N_h)", self.body, self.body.shape[0], self.body, size * rows
        )
        checker.require(
            "patchify", "image columns (P N_w)", self.body, self.body.shape[1], self.body, size * cols
        )

    def _pixel(self, plane, i, j):
        """The pixel at entry (i, j) of the patch matrix (0-based) in ``plane(k)`` (k 1-based)."""
        _, size, _, cols = self.sizes
        channel, within = sp.floor(i / size**2), sp.Mod(i, size**2)
        r, s = sp.floor(within / size), sp.Mod(within, size)
        a, b = sp.floor(j / cols), sp.Mod(j, cols)
        return plane(channel + 1)[size * a + r, size * b + s]

    def _entry(self, i, j, **kwargs):
        return self._pixel(lambda c: self.body.subs(self.args[1], c), i, j)

    def _explicit(self, explicit):
        count, size, rows, cols = (int(s) for s in self.sizes)
        planes = {c: explicit(self.body.subs(self.args[1], c)) for c in range(1, count + 1)}
        return sp.ImmutableMatrix(
            size * size * count, rows * cols, lambda i, j: self._pixel(planes.__getitem__, i, j)
        )

    def _name(self, printer) -> str:
        name = self.body.name
        return printer._tex_name(name, name) if hasattr(printer, "_tex_name") else name

    def _latex(self, printer) -> str:
        size = printer._print(self.sizes[1])
        return rf"\operatorname{{patchify}}_{{{size}}}\left({self._name(printer)}\right)"

    def _latex_definition(self, printer) -> str:
        size, cols = (printer._print(s) for s in (self.sizes[1], self.sizes[3]))
        return (
            rf"\left[{self._latex(printer)}\right]_{{(k-1){size}^{{2}} + (r-1){size} + s,\ (a-1){cols} + b}}"
            rf" = {self._name(printer)}^{{(k)}}_{{(a-1){size} + r,\ (b-1){size} + s}}"
        )

    def _torchcode(self, ctx) -> str:
        body, index = self.args[:2]
        size, rows, cols = (ctx.size(s) for s in self.sizes[1:])
        parts = ctx.fresh("planes")
        ctx.line(f"{parts} = []")
        with ctx.loop(str(index), self.sizes[0]):
            ctx.line(f"{parts}.append({ctx.expr(body)})")
        # (*batch, C, H, W) -> (*batch, C, N_h, P, N_w, P) -> (*batch, N_h, N_w, C, P, P)
        grid = ctx.emit(
            f"torch.stack({parts}, dim=-3).unflatten(-1, ({cols}, {size})).unflatten(-3, ({rows}, {size}))"
        )
        patches = ctx.emit(f"torch.einsum('...karbs->...abkrs', {grid}).flatten(-3).flatten(-3, -2)")
        return f"{patches}.transpose(-1, -2)"  # (*batch, P²C, N)


class HCat(SpecOp):
    """``[A, B]``: two matrices with the same rows side by side (the class token before the patches)."""

    def __new__(cls, A, B) -> "HCat":
        return MatrixExpr.__new__(cls, A, B)

    @property
    def shape(self):
        A, B = self.args
        return (A.shape[0], A.shape[1] + B.shape[1])

    def _check_shapes(self, checker) -> None:
        A, B = self.args
        checker.require("side-by-side concatenation", "rows", A, A.shape[0], B, B.shape[0])

    def _entry(self, i, j, **kwargs):
        A, B = self.args
        width = A.shape[1]
        if sp.sympify(j).is_Integer and sp.sympify(width).is_Integer:
            return A[i, j] if j < width else B[i, j - width]
        return sp.Piecewise((A[i, j], sp.Lt(j, width)), (B[i, j - width], True))

    def _explicit(self, explicit):
        A, B = (explicit(a) for a in self.args)
        return sp.ImmutableMatrix(sp.Matrix.hstack(A, B))

    def _latex(self, printer) -> str:
        A, B = (printer._print(a) for a in self.args)
        return rf"\left[{A}, {B}\right]"

    def _torchcode(self, ctx) -> str:
        A, B = (ctx.emit(ctx.expr(a)) for a in self.args)
        lead = ctx.emit(f"torch.broadcast_shapes({A}.shape[:-2], {B}.shape[:-2])")
        return (
            f"torch.cat([{A}.expand(*{lead}, *{A}.shape[-2:]), {B}.expand(*{lead}, *{B}.shape[-2:])], dim=-1)"
        )


def image() -> Family:
    return Family("X", k, C_i, (H_i, W_i), meaning="channel k of the image (channel first, as torch's NCHW)")


GRID = (sp.Eq(H_i, P * N_h), sp.Eq(W_i, P * N_w), sp.Eq(N_p, N_h * N_w), sp.Eq(d_p, P**2 * C_i))


# --- vit.patchify ---------------------------------------------------------------------------------
def patchify() -> Equation:
    X = image()
    X_p = tensor("X_p", (d_p, N_p), tex="X_{p}", meaning="patches [x_p^1, …, x_p^N], one column per patch")
    return Equation(
        "vit.patchify",
        "Image to patches",
        inputs=(X,),
        intermediates=(X_p,),
        bindings=[(X_p, Patchify(X[k], k, C_i, P, N_h, N_w))],
        outputs=(X_p,),
        reference=Reference(SECTION, source=f"{DOSOVITSKIY}, §3.1", status="R"),
        constraints=GRID,
        invariants=(
            Invariant("patchify_bijection", {"input": "X", "output": "X_p"}),
            Invariant("patch_embedding_is_conv", {"input": "X", "output": "X_p"}),
        ),
        notes="An image of C channels of H_img × W_img pixels becomes N = H_img W_img / P² patches "
        "x_p^i ∈ ℝ^{P²C}, the columns of X_p (as tokens are the columns of H). Patches are numbered "
        "row-major over the N_h × N_w grid; inside a patch the entries are ordered channel, row, column — "
        "the order of Conv2d's weight (d_e, C, P, P), so that E_p X_p is the stride-P convolution. "
        "The paper writes x_p ∈ ℝ^{N×(P²·C)} (patches as rows).",
    )


# --- vit.input ------------------------------------------------------------------------------------
def input_(bias: bool = True) -> Equation:
    X_p = tensor("X_p", (d_p, N_p), tex="X_{p}", meaning="patches [x_p^1, …, x_p^N] (vit.patchify)")
    x_cls = tensor("x_cls", (d_e,), tex=r"x_{\mathrm{cls}}", meaning="learned class token")
    E_p = tensor("E_p", (d_e, d_p), tex="E_{p}", meaning="patch embedding (Conv2d's weight reshaped)")
    b_p = tensor("b_p", (d_e,), tex="b_{p}", meaning="patch embedding bias (Conv2d's bias)")
    Lambda = tensor("Lambda", (d_e, n), tex=r"\Lambda", meaning="learned position embedding, N + 1 columns")
    H0 = tensor("H0", (d_e, n), tex="H^{0}", meaning="encoder input: class token then the N patches")
    patches = mul(E_p, X_p)
    if bias:
        patches = add(patches, mul(b_p, T(Ones(N_p))))
    return Equation(
        "vit.input",
        "ViT input: class token, embedded patches, positions",
        inputs=(X_p,),
        params=(x_cls, E_p, *((b_p,) if bias else ()), Lambda),
        intermediates=(H0,),
        bindings=[(H0, add(HCat(x_cls, patches), Lambda))],
        outputs=(H0,),
        reference=Reference(SECTION, source=f"{DOSOVITSKIY}, eq. 1", status="R"),
        constraints=(sp.Eq(n, N_p + 1),),
        invariants=(
            Invariant(
                "token_locality",
                {"input": "X_p", "input_axis": 1, "output": "H0", "output_axis": 1, "offset": 1},
            ),
        ),
        notes="H^0 = [x_cls, E_p x_p^1 + b_p, …, E_p x_p^N + b_p] + Λ ∈ ℝ^{d_e×(N+1)}: n = N + 1 tokens, the "
        "class token first. E_p ∈ ℝ^{d_e×d_p}, d_p = P²C. The paper (eq. 1) writes z_0 = [x_class; x_p^1 E; "
        "…; x_p^N E] + E_pos with no bias; every implementation embeds with a Conv2d that has one "
        "(Hugging Face ViTPatchEmbeddings, timm, the JAX original), so b_p is part of the form and the "
        "variant no_bias is the paper's. Hugging Face: cls_token = x_clsᵀ, position_embeddings = Λᵀ, "
        "patch_embeddings.projection.weight = E_p reshaped to (d_e, C, P, P).",
    )


# --- vit.encoder ----------------------------------------------------------------------------------
def _per_layer(family_params: dict) -> dict:
    """The block's arguments at layer l: per-head families sliced, per-layer families at l."""
    return {name: (fam.slice(l) if len(fam.indices) == 2 else fam[l]) for name, fam in family_params.items()}


def encoder(eps: bool = False, activation: str = "gelu") -> Equation:
    X = tensor("X", (d_e, n), meaning="H^0, the output of vit.input")
    layer = dict(attention_params(per_layer=True))
    a1, b1 = norm_params(1, per_layer=True)
    a2, b2 = norm_params(2, per_layer=True)
    layer.update(alpha_1=a1, beta_1=b1, alpha_2=a2, beta_2=b2, **ffn_params(per_layer=True))
    e = eps_symbol() if eps else None
    args = _per_layer(layer)
    if e is not None:
        args["eps"] = e
    Hs = Family("H", l, L, (d_e, n), start=0, tex="H^{{index}}", meaning="output of block l (H^0 = X)")
    H_out = tensor("H_out", (d_e, n), tex=r"H_{\mathrm{out}}", meaning="H^L, before the final layer norm")
    block = call(
        block_id("pre", activation, eps),
        "H_out",
        tex=r"\operatorname{Block}",
        H=Hs[l - 1],
        S=Zeros(n, n),
        **args,
    )
    return Equation(
        "vit.encoder",
        "ViT encoder: L pre-LN blocks, no mask",
        inputs=(X,),
        params=(*layer.values(), *((e,) if e is not None else ())),
        intermediates=(Hs, H_out),
        bindings=[(Hs[0], X), (Hs[l], block), (H_out, Hs[L])],
        outputs=(H_out,),
        reference=Reference(SECTION, source=f"{DOSOVITSKIY}, eqs. 2–3", status="R"),
        constraints=(sp.Eq(d_v, d_k),),
        invariants=(
            Invariant("permutation_equivariance", {"tokens": {"X": 1}, "output_tokens": {"H_out": 1}}),
        ),
        notes="H^l = Block^{(l)}(H^{l−1}; 0), l = 1..L: the pre-LN block of transformer.block_pre_ln "
        "(z'_l = MSA(LN(z_{l−1})) + z_{l−1}, z_l = MLP(LN(z'_l)) + z'_l in the paper) with exact GELU and no "
        "mask (every patch attends to every patch, S = 0). ViT has d_v = d_k = d_e/M; the spec only ties "
        "d_v = d_k. The final LN of the paper's eq. 4 is in vit.head. LN has no ε (the tutorial's form); "
        "the variant eps has ε a scalar parameter (Hugging Face ViTConfig 10⁻¹², the JAX original and timm "
        "10⁻⁶). The JAX original's nn.gelu is the tanh approximation: the variants gelu_tanh, "
        "gelu_tanh_eps. Hugging Face: layernorm_before = (α_1, β_1), layernorm_after = (α_2, β_2).",
    )


# --- vit.head -------------------------------------------------------------------------------------
def head(eps: bool = False, bias: bool = True) -> Equation:
    H = tensor("H", (d_e, n), meaning="H^L, the encoder output; column 1 is the class token")
    alpha_e, beta_e = ln_params("e", "the final layer norm")
    W_head = tensor("W_head", (n_c, d_e), tex=r"W_{\mathrm{head}}", meaning="classifier weight")
    b_head = tensor("b_head", (n_c,), tex=r"b_{\mathrm{head}}", meaning="classifier bias")
    e = eps_symbol() if eps else None
    h = tensor("h", (d_e,), tex=r"\hat{h}", meaning="the normalised class token LN(h^L_cls)")
    z = tensor("z", (n_c,), meaning="class scores (logits)")
    y_hat = tensor("y_hat", (n_c,), Kind.PROBABILITY, tex=r"\hat{y}", meaning="class probabilities")
    return Equation(
        "vit.head",
        "ViT classification head",
        inputs=(H,),
        params=(alpha_e, beta_e, W_head, *((b_head,) if bias else ()), *((e,) if e is not None else ())),
        intermediates=(h, z, y_hat),
        bindings=[
            (h, normalise(Column(H, 1), alpha_e, beta_e, e)),
            (z, add(mul(W_head, h), b_head) if bias else mul(W_head, h)),
            (y_hat, Softmax(z, "columns")),
        ],
        outputs=(y_hat,),
        reference=Reference(SECTION, source=f"{DOSOVITSKIY}, eq. 4 and §3.1", status="R"),
        invariants=(Invariant("class_token_only", {"input": "H", "output": "y_hat"}),),
        notes="ŷ = softmax(W_head LN(h^L_cls; α_e, β_e) + b_head): only the class token (column 1) is "
        "read. The paper's y = LN(z_L^0) (eq. 4) followed by the fine-tuning head, a single linear layer "
        "(Hugging Face ViTForImageClassification: layernorm, then classifier on token 0; the classifier has "
        "a bias). Hugging Face applies the final LN to every token (last_hidden_state); only the first "
        "reaches the head. The catalogue writes no b_head: the variant no_bias. LN has no ε; the variant "
        "eps has ε a scalar parameter (10⁻¹² Hugging Face, 10⁻⁶ timm).",
    )


def _eps_variant(eq: Equation, build) -> Equation:
    eq.add_variant(
        "eps",
        lambda: build(eps=True),
        "ε > 0 a scalar parameter in every LN (Hugging Face ViTConfig 1e-12, the JAX original and timm 1e-6)",
    )
    return eq


register(patchify())
register(input_()).add_variant(
    "no_bias", lambda: input_(bias=False), "E_p x_p^i without b_p, as the paper writes eq. 1"
)
_ENCODER = register(_eps_variant(encoder(), encoder))
_ENCODER.add_variant(
    "gelu_tanh",
    lambda: encoder(activation="gelu_tanh"),
    "φ = GELU-tanh (the JAX original: flax's nn.gelu approximates by default)",
)
_ENCODER.add_variant(
    "gelu_tanh_eps", lambda: encoder(eps=True, activation="gelu_tanh"), "φ = GELU-tanh and ε > 0 in every LN"
)
_HEAD = register(_eps_variant(head(), head))
_HEAD.add_variant(
    "no_bias", lambda: head(bias=False), "ŷ = softmax(W_head LN(h^L_cls)), as the catalogue writes it"
)
_HEAD.add_variant("no_bias_eps", lambda: head(eps=True, bias=False), "no b_head and ε > 0 in the LN")

__all__ = ["EPS_HF", "EPS_TIMM", "HCat", "Patchify"]
