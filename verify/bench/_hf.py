"""Part ``hf``: impl's GPT-2 and BERT, on impl's fast path, against transformers' holding the same weights
(the outputs must agree before anything is timed), at each thread count and sequence length, and the weight
copies that make them hold the same weights."""

import statistics
from collections.abc import Callable, Sequence

import torch

from ._gpt2 import forward_no_grad, tokens, with_checks
from ._parts import GOALS, HF_THREADS, MismatchError, Size, sizes_of
from ._timing import measure, no_note


def _perturb(model: torch.nn.Module, seed: int) -> None:
    """Biases and layer-norm parameters away from 0 and 1, so that a mis-copied one shows in the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            owner = name.rsplit(".", 2)[-2].lower() if name.count(".") >= 1 else ""
            is_ln = owner.startswith("ln") or owner == "layernorm"
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
            elif is_ln and name.endswith("weight"):
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)


def gpt2_from_hf(hf, *, fast: bool = False) -> "torch.nn.Module":
    """impl's GPT2 holding the weights of a transformers GPT2LMHeadModel (or GPT2Model); ``fast=True`` runs
    it through impl.fast.

    wte = Eᵀ and wpe = Λᵀ; GPT-2's Conv1D weights are stored in × out, so c_attn's columns are
    ``[W_Q | W_K | W_V]`` with head m at columns ``m d_k … (m+1) d_k − 1`` of each part, c_proj is W_O as is,
    and mlp.c_fc, mlp.c_proj are ``W_1ᵀ``, ``W_2ᵀ``."""
    from ...impl.gpt2 import GPT2

    body = getattr(hf, "transformer", hf)
    cfg = hf.config
    d_e, M = cfg.n_embd, cfg.n_head
    d_k = d_e // M
    ours = GPT2(cfg.vocab_size, cfg.n_positions, d_e, M, cfg.n_layer, cfg.n_inner or 4 * d_e,
                eps=cfg.layer_norm_epsilon, fast=fast).to(body.wte.weight.dtype)  # fmt: skip
    with torch.no_grad():
        ours.E.copy_(body.wte.weight.T)
        ours.Lambda.copy_(body.wpe.weight.T)
        for ob, hb in zip(ours.blocks, body.h, strict=True):
            qkv_w, qkv_b = hb.attn.c_attn.weight, hb.attn.c_attn.bias  # d_e × 3 d_e, 3 d_e
            for part, name in enumerate("QKV"):
                w = qkv_w[:, part * d_e : (part + 1) * d_e]  # d_e × (M d_k)
                getattr(ob.attn, f"W_{name}").copy_(w.reshape(d_e, M, d_k).permute(1, 0, 2))
                getattr(ob.attn, f"b_{name}").copy_(qkv_b[part * d_e : (part + 1) * d_e].reshape(M, d_k))
            ob.attn.W_O.copy_(hb.attn.c_proj.weight)
            ob.attn.b_O.copy_(hb.attn.c_proj.bias)
            ob.ln_1.alpha.copy_(hb.ln_1.weight), ob.ln_1.beta.copy_(hb.ln_1.bias)
            ob.ln_2.alpha.copy_(hb.ln_2.weight), ob.ln_2.beta.copy_(hb.ln_2.bias)
            ob.ffn.W_1.copy_(hb.mlp.c_fc.weight.T), ob.ffn.b_1.copy_(hb.mlp.c_fc.bias)
            ob.ffn.W_2.copy_(hb.mlp.c_proj.weight.T), ob.ffn.b_2.copy_(hb.mlp.c_proj.bias)
        ours.ln_e.alpha.copy_(body.ln_f.weight), ours.ln_e.beta.copy_(body.ln_f.bias)
    return ours.eval()


def bert_from_hf(hf, *, fast: bool = False) -> "torch.nn.Module":
    """impl's BERT holding the weights of a transformers BertModel; ``fast=True`` runs it through impl.fast.

    Embedding tables are transposed (``E``, ``Λ``, ``G`` are d_e × ·); nn.Linear stores out × in, so the
    query, key and value weights are transposed and split by head (``W_Q^{(m)}`` is columns
    ``m d_k … (m+1) d_k − 1`` of ``query.weightᵀ``), attention.output.dense is ``W_Oᵀ``, and the FFN's and
    the pooler's weights are copied as they are (impl keeps W_1 ∈ ℝ^{d_f×d_e} and applies W_p as Linear)."""
    from ...impl.bert import BERT

    cfg = hf.config
    d_e, M, L = cfg.hidden_size, cfg.num_attention_heads, cfg.num_hidden_layers
    d_k = d_e // M
    ours = BERT(cfg.vocab_size, cfg.max_position_embeddings, d_e, M, L, cfg.intermediate_size,
                eps=cfg.layer_norm_eps, fast=fast).to(hf.embeddings.word_embeddings.weight.dtype)  # fmt: skip
    emb = hf.embeddings
    with torch.no_grad():
        ours.E.copy_(emb.word_embeddings.weight.T)
        ours.Lambda.copy_(emb.position_embeddings.weight.T)
        ours.G.copy_(emb.token_type_embeddings.weight.T)
        ours.alpha_e.copy_(emb.LayerNorm.weight), ours.beta_e.copy_(emb.LayerNorm.bias)
        for l, layer in enumerate(hf.encoder.layer):
            att = layer.attention
            for name, lin in (("Q", att.self.query), ("K", att.self.key), ("V", att.self.value)):
                getattr(ours, f"W_{name}")[l].copy_(lin.weight.T.reshape(d_e, M, d_k).permute(1, 0, 2))
                getattr(ours, f"b_{name}")[l].copy_(lin.bias.reshape(M, d_k))
            ours.W_O[l].copy_(att.output.dense.weight.T), ours.b_O[l].copy_(att.output.dense.bias)
            (
                ours.alpha_1[l].copy_(att.output.LayerNorm.weight),
                ours.beta_1[l].copy_(att.output.LayerNorm.bias),
            )
            (
                ours.W_1[l].copy_(layer.intermediate.dense.weight),
                ours.b_1[l].copy_(layer.intermediate.dense.bias),
            )
            ours.W_2[l].copy_(layer.output.dense.weight), ours.b_2[l].copy_(layer.output.dense.bias)
            (
                ours.alpha_2[l].copy_(layer.output.LayerNorm.weight),
                ours.beta_2[l].copy_(layer.output.LayerNorm.bias),
            )
        ours.W_p.copy_(hf.pooler.dense.weight), ours.b_p.copy_(hf.pooler.dense.bias)
    return ours.eval()


def _agreement(what: str, got: torch.Tensor, want: torch.Tensor, tol) -> dict:
    """Max |Δ| of two outputs; a MismatchError when it is beyond ``atol + rtol·|want|`` anywhere."""
    diff = (got.double() - want.double()).abs()
    bound = tol.atol + tol.rtol * want.double().abs()
    if got.shape != want.shape or not bool((diff <= bound).all()):
        where = "shapes differ" if got.shape != want.shape else f"max |Δ| = {diff.max().item():.3g}"
        raise MismatchError(f"{what}: impl and transformers disagree on the same weights ({where})")
    return {
        "max_abs_diff": diff.max().item(),
        "max_abs": want.abs().max().item(),
        "atol": tol.atol,
        "rtol": tol.rtol,
    }


def _ratios(impl: dict, hf: dict) -> dict:
    """impl/HF of each round (the two ran side by side, interleaved): median, min and max."""
    rounds = [i / h for i, h in zip(impl["runs_s"], hf["runs_s"], strict=True)]
    return {"median": statistics.median(rounds), "min": min(rounds), "max": max(rounds)}


def _comparison(times: dict, agree: list[dict], hf_class: str, impl_name: str) -> dict:
    hf_s = times["hf"]["median_s"]
    return {
        "hf_class": hf_class,
        "impl_function": impl_name,
        "hf": times["hf"],
        "impl": times["impl"],
        "impl_unchecked": times["impl_unchecked"],
        "ratio": times["impl"]["median_s"] / hf_s,
        "ratio_unchecked": times["impl_unchecked"]["median_s"] / hf_s,
        "ratio_rounds": _ratios(times["impl"], times["hf"]),
        "ratio_unchecked_rounds": _ratios(times["impl_unchecked"], times["hf"]),
        "agreement": agree,
        "goal_ratio": GOALS["hf_ratio"],
        "aim_ratio": GOALS["hf_ratio_aim"],
    }


def _versus(hf_fn: Callable, impl_fn: Callable, repeat: int) -> dict:
    """transformers, impl with checks on and impl with checks off, interleaved, under no_grad."""

    def no_grad(fn):
        def call():
            with torch.no_grad():
                return fn()

        return call

    return measure(
        {"hf": no_grad(hf_fn), "impl": with_checks(True, no_grad(impl_fn)),
         "impl_unchecked": with_checks(False, no_grad(impl_fn))},
        repeat,
    )  # fmt: skip


def _each(threads: Sequence[int], lengths: Sequence[int]):
    """(threads, n) for every thread count and length, torch set to the thread count meanwhile."""
    before = torch.get_num_threads()
    try:
        for t in threads:
            torch.set_num_threads(t)
            for n in lengths:
                yield t, n
    finally:
        torch.set_num_threads(before)


def _hf_gpt2(size: Size, repeat: int, note, tol, threads, lengths) -> tuple[str, dict]:
    import transformers

    note(f"hf: building GPT-2 ({size.name}) in transformers and copying its weights into impl")
    config = transformers.GPT2Config(
        vocab_size=size.v, n_positions=size.n_max, n_embd=size.d_e, n_layer=size.L, n_head=size.M,
        n_inner=size.d_f, use_cache=False,
    )  # fmt: skip
    torch.manual_seed(0)
    hf_lm = transformers.GPT2LMHeadModel(config).eval()
    _perturb(hf_lm, 1)
    ours = gpt2_from_hf(hf_lm, fast=True)
    with torch.no_grad():
        params = {name: t.detach().clone() for name, t in ours.spec_params().items()}
    out = {}
    for t, n in _each(threads, lengths):
        k = tokens(size.v, size, n=n)

        def hf_body(k=k):
            return hf_lm.transformer(input_ids=k, use_cache=False).last_hidden_state

        def hf_head(k=k):
            return hf_lm(input_ids=k, use_cache=False).logits

        def impl_body(k=k):
            return forward_no_grad(params, k, ours.eps, fast=True)

        def impl_head(k=k):
            return ours(k)[0]

        note(f"hf: GPT-2, {t} thread{'s' if t > 1 else ''}, n = {n}: checking that the outputs agree")
        with torch.no_grad():
            agree_body = [_agreement(f"GPT-2 H̃^L = LN(H^L) (n = {n})", impl_body(), hf_body(), tol)]
            agree_head = [_agreement(f"GPT-2 logits (n = {n})", impl_head(), hf_head(), tol)]
        note(f"hf: GPT-2, {t} thread{'s' if t > 1 else ''}, n = {n}: timing GPT2Model, GPT2LMHeadModel")
        body = _versus(hf_body, impl_body, repeat)
        head = _versus(hf_head, impl_head, repeat)
        out[t, n] = {
            "gpt2_model": _comparison(body, agree_body, "GPT2Model", "impl.fast.gpt2_forward"),
            "gpt2_lm_head": _comparison(head, agree_head, "GPT2LMHeadModel", "impl.gpt2.GPT2(fast=True)"),
        }
    return hf_lm.config._attn_implementation, out


def _hf_bert(size: Size, repeat: int, note, tol, threads, lengths) -> dict:
    import transformers

    note(f"hf: building BERT ({size.name} width) in transformers and copying its weights into impl")
    config = transformers.BertConfig(
        vocab_size=size.v_bert, hidden_size=size.d_e, num_hidden_layers=size.L, num_attention_heads=size.M,
        intermediate_size=size.d_f, max_position_embeddings=size.n_max_bert,
    )  # fmt: skip
    torch.manual_seed(0)
    hf_bert = transformers.BertModel(config).eval()
    _perturb(hf_bert, 2)
    ours = bert_from_hf(hf_bert, fast=True)
    out = {}
    for t, n in _each(threads, lengths):
        k = tokens(size.v_bert, size, seed=2, n=n)

        def hf_fn(k=k):
            out = hf_bert(input_ids=k)
            return out.last_hidden_state, out.pooler_output

        def impl_fn(k=k):
            out = ours(k)
            return out.states[..., -1, :, :], out.p

        note(f"hf: BERT, {t} thread{'s' if t > 1 else ''}, n = {n}: checking that the outputs agree")
        with torch.no_grad():
            (want_h, want_p), (got_h, got_p) = hf_fn(), impl_fn()
        agree = [
            _agreement(f"BERT H^L (n = {n})", got_h, want_h, tol),
            _agreement(f"BERT pooled (n = {n})", got_p, want_p, tol),
        ]
        note(f"hf: BERT, {t} thread{'s' if t > 1 else ''}, n = {n}: timing BertModel")
        times = _versus(hf_fn, impl_fn, repeat)
        out[t, n] = {"bert_model": _comparison(times, agree, "BertModel", "impl.bert.BERT(fast=True)")}
    return out


def hf(
    size: Size,
    repeat: int = 5,
    note: Callable[[str], None] = no_note,
    threads: Sequence[int] = HF_THREADS,
    lengths: Sequence[int] | None = None,
) -> dict:
    """impl's GPT-2 (the functional forward, and the model with its tied head) and BERT, on impl's fast path
    (impl.fast, held to the spec by ``lmspec verify``), against transformers' GPT2Model, GPT2LMHeadModel and
    BertModel holding the same weights: float32, eval, no_grad, transformers' default attention, at each
    torch thread count of ``threads`` and each sequence length of ``lengths`` (the size's ``hf_lengths`` by
    default). The outputs must agree (float32 tolerance) before anything is timed."""
    import transformers

    from ..compare import POLICY

    lengths = tuple(lengths or size.hf_lengths or (size.n,))
    longest = min(size.n_max, size.n_max_bert)
    wrong = [n for n in lengths if not 1 <= n <= longest]
    if wrong:
        raise ValueError(f"hf: a length must be in 1..{longest} at {size.name}, found {wrong[0]}")
    transformers.logging.set_verbosity_error()
    tol = POLICY["float32"]
    # the GPT-2 models are freed before BERT is built
    attn, gpt2 = _hf_gpt2(size, repeat, note, tol, threads, lengths)
    bert = _hf_bert(size, repeat, note, tol, threads, lengths)
    return {
        "size": sizes_of(size),
        "dtype": "float32",
        "attn_implementation": attn,
        "threads": list(threads),
        "lengths": list(lengths),
        "runs": [{"threads": t, "n": n, **gpt2[t, n], **bert[t, n]} for t in threads for n in lengths],
        "goal_ratio": GOALS["hf_ratio"],
        "aim_ratio": GOALS["hf_ratio_aim"],
    }
