"""GPT-2 (Radford et al. 2019): the forward pass, the tied LM head, the shifted loss and generation.

In the tutorial's notation and orientation (columns are tokens):

- ``gpt2.forward``  ``H^0 = E Ω + Λ_{:,1:n}`` (Ω = onehot(k), learned positions, n ≤ n_max), L pre-LN blocks
  ``H^l = Block^{(l)}(H^{l−1}; S)`` with the causal mask S, and the final states ``H̃^L = LN(H^L; α_e, β_e)``;
- ``gpt2.lm_head``  the output layer shares the embedding: ``Ŷ = softmax_col(Eᵀ H̃^L) ∈ (0,1)^{v×n}``, whose
  column i is ``P(w_{i+1} | w_{≤i})``;
- ``gpt2.loss``     ``𝓛 = −Σ_{i=1}^{n−1} log Ŷ_{k_{i+1}, i}``: column i predicts the *next* token, so the
  targets are the tokens shifted by one (``k_{2:n}``) against the first n − 1 columns; the last column
  predicts a token not in the sequence and the first token is never a target. With n = 1 the sum is empty
  and 𝓛 = 0. The variant ``mean`` divides by n − 1 (NaN at n = 1), as Hugging Face's loss does;
- ``gpt2.generate`` one step of generation from the last column of logits ``z = Eᵀ H̃^L_{:,n}``: the greedy
  token ``k̂ = argmax z`` (ties to the lowest index, as torch.argmax), and the sampling distribution
  ``p = softmax(topk_k(z) / τ)`` (top-k filter, then temperature). Generation appends the token and
  repeats; with cached keys and values each step runs the blocks on the new token only, which gives the
  same result as the full forward pass because the model is causal.

H^L has one meaning throughout, as in transformer.stack: the output of the last block, before the final layer
norm. The head and generation take the final states ``H̃^L = LN(H^L; α_e, β_e)``, gpt2.forward's output (their
input is called ``H`` in code, as the final states that Hugging Face's GPT2Model returns).

The tutorial writes layer norm without ε; GPT-2 uses ε = 1e-5 (the named variant ``eps``, ε a scalar
parameter as in transformer.block_pre_ln[eps]).
"""

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from .axes import GLOSSARY, L, d_e, n, n_max, v
from .equation import Equation, Invariant, Reference
from .lm import Ratio, TopKFilter
from .norm import eps_symbol, ln_params, normalise
from .ops import CausalMask, Softmax, SpecOp, T, add, mul
from .ops_nn import Column, FirstColumns, OneHot, Scalar, Scaled, call
from .registry import register
from .tensors import Family, Kind, tensor
from .transformer import attention_params, block_id, ffn_params, l, norm_params

k_top = GLOSSARY["k_top"].symbol

SECTION = "GPT-2"
#: The final states: the last block's output H^L after the final layer norm, H̃^L = LN(H^L; α_e, β_e).
FINAL_TEX = r"\tilde{H}^{L}"
FINAL_MEANING = "final states H̃^L = LN(H^L; α_e, β_e), the output of gpt2.forward (after the final LN)"
RADFORD = "Radford et al. 2019 (GPT-2); Hugging Face GPT2LMHeadModel"


# --- operators of this family ------------------------------------------------------------------------
class NextTokenPick(SpecOp):
    """``[Ŷ_{k_{i+1}, i}]_{i=1}^{n−1}``: from each column i < n of Y the entry in the row of the *next*
    token k_{i+1} (a column of n − 1 entries; none when n = 1)."""

    def __new__(cls, Y: sp.Basic, k: sp.Basic) -> "NextTokenPick":
        return MatrixExpr.__new__(cls, Y, k)

    @property
    def shape(self):
        return (self.args[0].shape[1] - 1, sp.Integer(1))

    def _check_shapes(self, checker) -> None:
        Y, k = self.args
        checker.require("next-token pick", "tokens (columns of Y, rows of k)", Y, Y.shape[1], k, k.shape[0])
        checker.require("next-token pick", "index vector columns", k, k.shape[1], k, sp.Integer(1))

    def _entry(self, i, j, **kwargs):
        Y, k = self.args
        rows = Y.shape[0]
        if not sp.sympify(rows).is_Integer:
            return Y[k[i + 1, 0], i]
        return sp.Add(*[sp.Piecewise((Y[r, i], sp.Eq(k[i + 1, 0], r)), (0, True)) for r in range(int(rows))])

    def _latex(self, printer) -> str:
        Y, k = (printer._print(a) for a in self.args)
        last = printer._print(self.args[0].shape[1] - 1)
        return rf"\left[{Y}_{{{k}_{{i+1}}, i}}\right]_{{i=1}}^{{{last}}}"

    def _torchcode(self, ctx) -> str:
        Y, k = (ctx.emit(ctx.expr(a)) for a in self.args)
        return (
            f"torch.gather({Y}[..., :, :-1], -2, {k}[..., 1:, :].long().transpose(-1, -2)).transpose(-1, -2)"
        )


class NegLogSum(SpecOp):
    """``−Σ_i log y_i`` of a column vector, as a 1×1 matrix (0 for an empty column)."""

    def __new__(cls, y: sp.Basic) -> "NegLogSum":
        return MatrixExpr.__new__(cls, y)

    @property
    def shape(self):
        return (sp.Integer(1), sp.Integer(1))

    def _check_shapes(self, checker) -> None:
        y = self.args[0]
        checker.require("sum of logs", "columns of a vector", y, y.shape[1], y, sp.Integer(1))

    def _entry(self, i, j, **kwargs):
        y = self.args[0]
        rows = y.shape[0]
        if not sp.sympify(rows).is_Integer:
            r = sp.Dummy("r", integer=True)
            return -sp.Sum(sp.log(y[r, 0]), (r, 0, rows - 1))
        return -sp.Add(*[sp.log(y[r, 0]) for r in range(int(rows))])

    def _latex(self, printer) -> str:
        y = printer._print(self.args[0])
        rows = printer._print(self.args[0].shape[0])
        return rf"-\sum_{{i=1}}^{{{rows}}} \log {y}_{{i}}"

    def _torchcode(self, ctx) -> str:
        y = ctx.emit(ctx.expr(self.args[0]))
        return f"-torch.log({y}).sum(dim=-2, keepdim=True)"


class Argmax(SpecOp):
    """``argmax z`` of a column vector, 0-based, as a 1×1 index; ties go to the lowest index (the rule of
    torch.argmax): ``k̂ = Σ_j j Π_{i<j} [z_j > z_i] Π_{i>j} [z_j ≥ z_i]``."""

    def __new__(cls, z: sp.Basic) -> "Argmax":
        return MatrixExpr.__new__(cls, z)

    @property
    def shape(self):
        return (sp.Integer(1), sp.Integer(1))

    def _check_shapes(self, checker) -> None:
        z = self.args[0]
        checker.require("argmax", "columns of a vector", z, z.shape[1], z, sp.Integer(1))

    def _entry(self, i, j, **kwargs):
        # [z_r > z_q] = Heaviside(z_r − z_q) with H(0) = 0, [z_r ≥ z_q] with H(0) = 1
        z = self.args[0]
        size = z.shape[0]
        if not sp.sympify(size).is_Integer:
            r, q = sp.Dummy("r", integer=True), sp.Dummy("q", integer=True)
            before = sp.Product(sp.Heaviside(z[r, 0] - z[q, 0], 0), (q, 0, r - 1))
            after = sp.Product(sp.Heaviside(z[r, 0] - z[q, 0], 1), (q, r + 1, size - 1))
            return sp.Sum(r * before * after, (r, 0, size - 1))
        terms = []
        for r in range(1, int(size)):
            before = [sp.Heaviside(z[r, 0] - z[q, 0], 0) for q in range(r)]
            after = [sp.Heaviside(z[r, 0] - z[q, 0], 1) for q in range(r + 1, int(size))]
            terms.append(r * sp.Mul(*before, *after))
        return sp.Add(*terms)

    def _latex(self, printer) -> str:
        return rf"\operatorname{{argmax}}\left({printer._print(self.args[0])}\right)"

    def _latex_definition(self, printer) -> str:
        return (
            r"\operatorname{argmax}(z) = \min \{ j : z_{j} = \max_{i} z_{i} \} "
            r"\quad (\text{0-based; ties to the lowest index})"
        )

    def _torchcode(self, ctx) -> str:
        z = ctx.emit(ctx.expr(self.args[0]))
        return f"torch.argmax({z}, dim=-2, keepdim=True).to({ctx.dtype})"


# --- parameters ----------------------------------------------------------------------------------------
def _embedding():
    E = tensor("E", (d_e, v), meaning="token embedding, one column per vocabulary entry (tied output)")
    Lambda = tensor(
        "Lambda", (d_e, n_max), tex=r"\Lambda", meaning="learned positional encoding, one column per position"
    )
    return E, Lambda


def _layers() -> dict:
    """The per-layer parameters of the L blocks as transformer.stack names them: head families indexed
    (l, m), the others by l."""
    a1, b1 = norm_params(1, per_layer=True)
    a2, b2 = norm_params(2, per_layer=True)
    return {
        **attention_params(per_layer=True),
        "alpha_1": a1,
        "beta_1": b1,
        "alpha_2": a2,
        "beta_2": b2,
        **ffn_params(per_layer=True),
    }


# --- gpt2.forward --------------------------------------------------------------------------------------
def forward(eps: bool = False) -> Equation:
    k = tensor("k", (n,), Kind.INDEX, meaning="token indices k_1..k_n (0-based vocabulary entries)")
    E, Lambda = _embedding()
    layers = _layers()
    alpha_e, beta_e = ln_params("e", "the final layer norm")
    e = eps_symbol() if eps else None
    Omega = tensor("Omega", (v, n), Kind.ONE_HOT, tex=r"\Omega", meaning="one-hot tokens, ω_i = column i")
    S = tensor("S", (n, n), Kind.ADDITIVE_MASK, meaning="causal mask")
    H = Family(
        "H", l, L, (d_e, n), start=0, tex="H^{{index}}", meaning="states after block l (H^0: the input)"
    )
    out = tensor("H_out", (d_e, n), tex=FINAL_TEX, meaning="final states H̃^L = LN(H^L; α_e, β_e)")
    args = {name: f.slice(l) if len(f.indices) == 2 else f[l] for name, f in layers.items()}
    if e is not None:
        args["eps"] = e
    block = call(block_id("pre", eps=eps), "H_out", tex=r"\operatorname{Block}", H=H[l - 1], S=S, **args)
    return Equation(
        "gpt2.forward",
        "GPT-2 forward pass",
        inputs=(k,),
        params=(E, Lambda, *layers.values(), alpha_e, beta_e, *((e,) if e is not None else ())),
        intermediates=(Omega, S, H, out),
        bindings=[
            (Omega, OneHot(k, v)),
            (S, CausalMask(n)),
            (H[0], add(mul(E, Omega), FirstColumns(Lambda, n))),
            (H[l], block),
            (out, normalise(H[L], alpha_e, beta_e, e)),
        ],
        outputs=(out,),
        reference=Reference(SECTION, source=RADFORD),
        constraints=(sp.Le(n, n_max),),
        invariants=(
            Invariant("causal_tokens", {"tokens": "k", "output": "H_out"}),
            Invariant("causal_large_scores", {"tokens": "k", "output": "H_out", "scale": ("W_Q", "W_K")}),
            Invariant("prefix_consistency", {"tokens": "k", "output": "H_out"}),
        ),
        notes="H^0 = E Ω + Λ_{:,1:n} (transformer.input), then L pre-LN blocks (transformer.block_pre_ln: "
        "Ĥ = LN(H; α_1, β_1), X = H + MHA(Ĥ; S), C = LN(X; α_2, β_2), H' = X + FFN(C), φ = GELU-tanh), each "
        "with its own parameters, and a final LN(H^L; α_e, β_e). The embedding E is shared with the output "
        "layer (gpt2.lm_head). Hugging Face names: wte.weight = Eᵀ, wpe.weight = Λᵀ, h.l.ln_1 = (α_1, β_1), "
        "h.l.attn.c_attn = [W_Q | W_K | W_V] (Conv1D, in × out, heads side by side), h.l.attn.c_proj = W_O, "
        "h.l.ln_2 = (α_2, β_2), h.l.mlp.c_fc = W_1ᵀ, h.l.mlp.c_proj = W_2ᵀ, ln_f = (α_e, β_e). The tutorial "
        "writes LN without ε; GPT-2 uses ε = 1e-5 (variant eps). Phuong & Hutter (Algorithm 10, "
        "DTransformer) write W_e, W_p for E, Λ and γ, β for α, β.",
    )


# --- gpt2.lm_head --------------------------------------------------------------------------------------
def lm_head() -> Equation:
    H = tensor("H", (d_e, n), tex=FINAL_TEX, meaning=FINAL_MEANING)
    E, _ = _embedding()
    Y = tensor("Y_hat", (v, n), Kind.PROBABILITY, tex=r"\hat{Y}", meaning="column i: P(w_{i+1} | w_{≤i})")
    return Equation(
        "gpt2.lm_head",
        "Tied language-model head",
        inputs=(H,),
        params=(E,),
        intermediates=(Y,),
        bindings=[(Y, Softmax(mul(T(E), H), "columns"))],
        outputs=(Y,),
        reference=Reference(SECTION, source=RADFORD, status="R"),
        invariants=(Invariant("lm_head_distribution", {"input": "H", "output": "Y_hat"}),),
        notes="The output layer is the transposed token embedding (weight tying): the logit of token j at "
        "position i is the dot product e_jᵀ h̃_i of its embedding and the final state of position i. Column i "
        "of Ŷ is the distribution of the next token w_{i+1} given w_1..w_i. The input is gpt2.forward's "
        "output H̃^L = LN(H^L; α_e, β_e), the states after the final layer norm; H^L itself, the last "
        "block's output, is never fed to the head.",
    )


# --- gpt2.loss -----------------------------------------------------------------------------------------
def loss(mean: bool = False) -> Equation:
    """``mean=True``: the mean over the n − 1 predictions, 𝓛 / (n − 1), NaN at n = 1 (Hugging Face)."""
    Y = tensor("Y_hat", (v, n), Kind.PROBABILITY, tex=r"\hat{Y}", meaning="output of gpt2.lm_head")
    k = tensor("k", (n,), Kind.INDEX, meaning="token indices of the sequence")
    y = tensor("y", (n - 1,), meaning="probability given to each next token")
    if not mean:
        out = tensor("loss", (), tex=r"\mathcal{L}", meaning="negative log-likelihood of tokens 2..n")
        return Equation(
            "gpt2.loss",
            "Language-model loss (next-token prediction)",
            inputs=(Y, k),
            intermediates=(y, out),
            bindings=[
                (y, NextTokenPick(Y, k)),
                (out, NegLogSum(y)),
            ],
            outputs=(out,),
            reference=Reference(SECTION, source=RADFORD, status="R"),
            invariants=(
                Invariant("shifted_loss", {"probabilities": "Y_hat", "tokens": "k", "output": "loss"}),
            ),
            notes="𝓛 = −Σ_{i=1}^{n−1} log Ŷ_{k_{i+1}, i}: column i is scored on the next token k_{i+1}, so "
            "the targets are shifted by one (Hugging Face shifts labels inside GPT2LMHeadModel). The sum is "
            "over n − 1 predictions (a sum, not a mean); with n = 1 it is empty and 𝓛 = 0. Hugging Face "
            "takes the mean instead: the variant mean.",
        )
    total = tensor("loss_sum", (), tex=r"\mathcal{L}_{\mathrm{sum}}", meaning="summed over tokens 2..n")
    out = tensor("loss", (), tex=r"\mathcal{L}", meaning="mean negative log-likelihood of tokens 2..n")
    return Equation(
        "gpt2.loss",
        "Language-model loss (next-token prediction)",
        inputs=(Y, k),
        intermediates=(y, total, out),
        bindings=[
            (y, NextTokenPick(Y, k)),
            (total, NegLogSum(y)),
            (out, Ratio(total, Scalar(n - 1))),
        ],
        outputs=(out,),
        reference=Reference(SECTION, source=RADFORD, status="R"),
        invariants=(
            Invariant(
                "shifted_loss",
                {"probabilities": "Y_hat", "tokens": "k", "output": "loss", "mean": True},
            ),
        ),
        notes="𝓛 = −(1/(n−1)) Σ_{i=1}^{n−1} log Ŷ_{k_{i+1}, i}: the mean over the n − 1 predictions, the "
        "tutorial's sum divided by n − 1. This is what Hugging Face computes: GPT2LMHeadModel(input_ids, "
        "labels=input_ids).loss is ForCausalLMLoss, F.cross_entropy over the shifted labels with "
        "reduction='mean' (a batch pools all its predicted tokens into one mean). With n = 1 nothing is "
        "predicted and the mean is 0/0 = NaN, as F.cross_entropy gives when every target is ignored (the "
        "convention of lm.cross_entropy). Its invariant shifted_loss takes the option mean: uniform "
        "predictions give log v, not the sum's (n − 1) log v.",
    )


# --- gpt2.generate -------------------------------------------------------------------------------------
def generate(top_k: bool = True) -> Equation:
    H = tensor("H", (d_e, n), tex=FINAL_TEX, meaning=FINAL_MEANING + " of the sequence so far")
    E, _ = _embedding()
    tau = tensor("tau", (), Kind.POSITIVE, tex=r"\tau", meaning="temperature")
    z = tensor("z", (v,), meaning="logits of the next token (last column of Eᵀ H̃^L)")
    k_next = tensor("k_next", (), Kind.INDEX, tex=r"\hat{k}", meaning="greedy next token")
    p = tensor("p", (v,), Kind.PROBABILITY, meaning="sampling distribution of the next token")
    filtered = TopKFilter(z, k_top) if top_k else z
    return Equation(
        "gpt2.generate",
        "Generation step: greedy token and sampling distribution",
        inputs=(H,),
        params=(E, tau),
        intermediates=(z, k_next, p),
        bindings=[
            (z, mul(T(E), Column(H, n))),
            (k_next, Argmax(z)),
            (p, Softmax(Scaled(filtered, tau, -1), "columns")),
        ],
        outputs=(k_next, p),
        reference=Reference(SECTION, source=RADFORD + "; Fan et al. 2018 (top-k sampling)", status="R"),
        constraints=(sp.Le(k_top, v),) if top_k else (),
        invariants=(
            Invariant("next_token_distribution", {"top_k": top_k}),
            Invariant("next_token_scale_invariance", {}),
        ),
        notes="One step: the next token is k̂ = argmax z (greedy, ties to the lowest index as torch.argmax) "
        "or a sample from p = softmax(top_k(z)/τ); append it to k (n ← n + 1) and repeat, at most "
        "until n = n_max. Filtering before or after dividing by τ > 0 keeps the same entries; τ → 0 gives "
        "the greedy token. top_k keeps every entry tied with the k-th largest. With a key-value cache a "
        "step runs the blocks on the new token only: its keys and values are appended to the cached ones "
        "of the earlier tokens, which are unchanged because the model is causal.",
    )


register(forward()).add_variant(
    "eps",
    lambda: forward(eps=True),
    "every layer norm divides by √(σ² + ε), ε > 0 a scalar parameter (GPT-2: layer_norm_epsilon = 1e-5)",
)
register(lm_head())
register(loss()).add_variant(
    "mean",
    loss,
    "the mean over the n − 1 predictions (𝓛/(n − 1); NaN at n = 1), as Hugging Face",
    {"mean": True},
)
register(generate()).add_variant(
    "no_top_k", lambda: generate(top_k=False), "temperature sampling without a top-k filter: p = softmax(z/τ)"
)
