"""``lmspec bench``: the measurements, each a function that returns plain data (dicts, lists, numbers).

Five parts (docs/bench.md says what each measures and how to read it):

- ``suite``     the verifier suite's wall time per family, serial and in ``jobs`` processes, and its shards;
- ``checking``  the cost of runtime checking (jaxtyping + beartype) on impl's GPT-2 forward;
- ``hf``        impl's GPT-2 and BERT against transformers' with the same weights (outputs agree first);
- ``gflops``    achieved GFLOP/s of impl's GPT-2 forward against square matmuls of the same FLOPs;
- ``oracle``    the oracle's compile and per-example time, float64 and mpmath, as sizes grow.

Timings are warm-up, then ``repeat`` runs timed with ``time.perf_counter``; the competitors of one
comparison run interleaved (A B, B A, A B …) so that a change in the machine's load falls on both.
"""

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch

PARTS = ("suite", "checking", "hf", "gflops", "oracle")
#: The figures the issue sets as goals: checking overhead and impl/HF time ratio.
GOALS = {"checking_overhead_pct": 5.0, "hf_ratio": 1.0}


class MismatchError(RuntimeError):
    """impl's output disagrees with transformers' on the same weights: timings would compare different
    computations."""


@dataclass(frozen=True)
class Size:
    """The models' sizes: GPT-2 (and BERT at the same width, with its own vocabulary and positions)."""

    name: str
    v: int
    n_max: int
    d_e: int
    M: int
    L: int
    d_f: int
    n: int
    batch: int
    v_bert: int
    n_max_bert: int
    #: the side of the square matmuls of the GFLOP/s reference
    square: int
    #: the oracle's ladder: every axis set to s (M and L to at most 2), for each equation
    oracle_steps: tuple[int, ...]
    oracle_equations: tuple[str, ...]

    @property
    def d_k(self) -> int:
        return self.d_e // self.M


SIZES = {
    "gpt2-small": Size(
        "gpt2-small", v=50257, n_max=1024, d_e=768, M=12, L=12, d_f=3072, n=256, batch=1,
        v_bert=30522, n_max_bert=512, square=1024, oracle_steps=(2, 4, 6),
        oracle_equations=("attention.softmax_rows", "attention.scaled_dot_product", "attention.multi_head",
                          "norm.layer_norm", "transformer.block_pre_ln"),
    ),
    "small": Size(
        "small", v=1000, n_max=64, d_e=64, M=4, L=2, d_f=256, n=32, batch=1, v_bert=500, n_max_bert=64,
        square=128, oracle_steps=(2, 3),
        oracle_equations=("attention.softmax_rows", "attention.scaled_dot_product"),
    ),
}  # fmt: skip


# --- machine and timing --------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The facts a figure depends on: CPU, cores, load, library versions, torch's threads."""
    try:
        import transformers

        tf_version = transformers.__version__
    except ImportError:  # the [hf] extra is missing: the hf part says so when it runs
        tf_version = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": cores,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": tf_version,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
    }


def timing(seconds: Sequence[float]) -> dict:
    """Median and min of timed runs (seconds), and the runs themselves."""
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "runs_s": list(seconds)}


def measure(fns: Mapping[str, Callable[[], object]], repeat: int, warmup: int = 1) -> dict[str, dict]:
    """Time each function ``repeat`` times after ``warmup`` untimed calls, interleaved: the order is
    reversed every other round, so a drift in the machine's load falls on every competitor alike."""
    if repeat < 1:
        raise ValueError(f"measure: repeat must be at least 1, found {repeat}")
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    runs: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeat):
        for name in names if r % 2 == 0 else reversed(names):
            start = time.perf_counter()
            fns[name]()
            runs[name].append(time.perf_counter() - start)
    return {name: timing(runs[name]) for name in names}


# --- 1. the verifier suite ----------------------------------------------------------------------------
def _cold_caches() -> None:
    """Forget compiled oracles and generated code: every timed run starts as ``lmspec verify`` does."""
    from ..codegen import compiled
    from ..oracle import _compile

    _compile.cache_clear()
    compiled.cache_clear()


def suite(
    families: Sequence[str] | None = None,
    profile: str = "default",
    jobs: int = 0,
    shards: int = 2,
    note: Callable[[str], None] = lambda _: None,
) -> dict:
    """Wall time of the verifier suite (``verify.parallel.run_suite``, one seed): each family serially (in
    this process, caches cold) and in ``jobs`` worker processes, the selected families together in ``jobs``
    processes (one run), and each of ``shards`` shards serially.

    The first parallel run of a process also starts the workers' machinery (a forkserver that imports torch
    and the verifier): that run is a warm-up, timed on its own (``startup``), so that each family's
    parallel time is the time of its checks, as in one ``lmspec verify --jobs N`` over many families."""
    from ... import spec
    from ..parallel import default_jobs, run_suite

    jobs = jobs or default_jobs()
    names = list(families) if families else list(spec.FAMILIES)
    ids_of = {family: [eq.id for eq in spec.select([family])] for family in names}
    all_ids = [eq_id for family in names for eq_id in ids_of[family]]
    rows, failed = [], 0

    def timed(ids: list[str], **kwargs) -> tuple[float, list]:
        _cold_caches()
        start = time.perf_counter()
        results = run_suite(ids, profile=profile, seeds=[0], **kwargs)
        return time.perf_counter() - start, results

    note(f"suite: start-up of {jobs} worker processes (a warm-up run of {', '.join(all_ids[:2])})")
    startup, _ = timed(all_ids[:2], jobs=jobs)
    for family in names:
        ids = ids_of[family]
        note(f"suite: {family}, serial")
        serial, results = timed(ids, jobs=1)
        note(f"suite: {family}, {jobs} jobs")
        parallel, presults = timed(ids, jobs=jobs)
        bad = sum(not r.passed for r in results) + sum(not r.passed for r in presults)
        failed += bad
        rows.append(
            {"family": family, "equations": len(ids), "checks": len(results), "failed": bad,
             "serial_s": serial, "parallel_s": parallel, "speedup": serial / parallel,
             "check_seconds": sum(r.seconds for r in results)}
        )  # fmt: skip
    serial_total = sum(r["serial_s"] for r in rows)
    if len(rows) > 1:
        note(f"suite: all {len(rows)} families, {jobs} jobs")
        parallel_total, presults = timed(all_ids, jobs=jobs)
        failed += sum(not r.passed for r in presults)
    else:
        parallel_total = rows[0]["parallel_s"]
    shard_rows = []
    for i in range(1, shards + 1):
        note(f"suite: shard {i}/{shards}, serial")
        seconds, results = timed(all_ids, jobs=1, shard=(i, shards))
        failed += sum(not r.passed for r in results)
        shard_rows.append({"shard": f"{i}/{shards}", "checks": len(results), "seconds": seconds})
    return {
        "profile": profile,
        "jobs": jobs,
        "startup": {"equations": all_ids[:2], "seconds": startup},
        "families": rows,
        "total": {
            "equations": len(all_ids),
            "checks": sum(r["checks"] for r in rows),
            "serial_s": serial_total,
            "parallel_s": parallel_total,
            "speedup": serial_total / parallel_total,
        },
        "shards": shard_rows,
        "failed": failed,
    }


# --- GPT-2: sizes, FLOPs, models --------------------------------------------------------------------------
def gpt2_forward_flops(
    *, n: int, d_e: int, M: int, d_k: int, d_v: int, d_f: int, L: int, batch: int = 1
) -> int:
    """Matmul FLOPs of GPT-2's forward to ``H^L`` (no head), a multiply-add counted as 2:

    per block, ``2n(2 d_e M d_k + 2 d_e M d_v + 2 d_e d_f)`` for the parameters' matmuls (Q, K: d_e × M d_k;
    V: d_e × M d_v; W_O: M d_v × d_e; W_1, W_2: d_e × d_f) and ``2 M n² (d_k + d_v)`` for ``QKᵀ`` and
    ``PV`` (all n² scores: impl computes the masked ones too). Layer norms, GELU, softmax, biases and the
    embedding lookup are O(n d_e) per block and left out (under 1 % at GPT-2-small)."""
    params = 2 * n * (2 * d_e * M * d_k + 2 * d_e * M * d_v + 2 * d_e * d_f)
    attention = 2 * M * n * n * (d_k + d_v)
    return batch * L * (params + attention)


FLOP_FORMULA = "batch · L · [2n(2 d_e M d_k + 2 d_e M d_v + 2 d_e d_f) + 2 M n² (d_k + d_v)]"


def _size_flops(size: Size) -> int:
    return gpt2_forward_flops(
        n=size.n, d_e=size.d_e, M=size.M, d_k=size.d_k, d_v=size.d_k, d_f=size.d_f, L=size.L, batch=size.batch
    )


def _sizes(size: Size) -> dict:
    """The models' sizes of ``size`` (with d_k = d_v = d_e / M)."""
    keys = ("v", "n_max", "d_e", "M", "L", "d_f", "n", "batch", "v_bert", "n_max_bert")
    return {"name": size.name, **{key: getattr(size, key) for key in keys}, "d_k": size.d_k}


def _impl_gpt2(size: Size, seed: int = 0):
    """impl's GPT-2 at ``size`` (random weights), its stacked spec parameters and token ids."""
    from ...impl.gpt2 import GPT2

    torch.manual_seed(seed)
    model = GPT2(size.v, size.n_max, size.d_e, size.M, size.L, size.d_f).eval()
    with torch.no_grad():
        params = {name: t.detach().clone() for name, t in model.spec_params().items()}
    return model, params, _tokens(size.v, size)


def _tokens(v: int, size: Size, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, v, (size.batch, size.n), generator=torch.Generator().manual_seed(seed))


def _forward(params: Mapping[str, torch.Tensor], k: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    from ...impl.gpt2 import forward

    with torch.no_grad():
        return forward(k, **params, eps=eps)


def _with_checks(enabled: bool, fn: Callable[[], object]) -> Callable[[], object]:
    from ... import impl

    def call():
        with impl.runtime_checks(enabled):
            return fn()

    return call


# --- 2. runtime checking ------------------------------------------------------------------------------
def checking(size: Size, repeat: int = 5, note: Callable[[str], None] = lambda _: None) -> dict:
    """impl.gpt2.forward with jaxtyping + beartype checking on and off, at ``size`` (the overhead as
    measured), and at a tiny width with the same L, where the difference is the checking's cost alone; that
    cost over the unchecked forward at ``size`` is the overhead estimated without the big run's noise."""
    note(f"checking: GPT-2 forward at {size.name}, checks on / off")
    _, params, k = _impl_gpt2(size)
    times = measure(
        {"on": _with_checks(True, lambda: _forward(params, k)),
         "off": _with_checks(False, lambda: _forward(params, k))},
        repeat,
    )  # fmt: skip
    tiny = Size("tiny", v=8, n_max=2, d_e=size.M, M=size.M, L=size.L, d_f=4, n=2, batch=1, v_bert=8,
                n_max_bert=2, square=1, oracle_steps=(), oracle_equations=())  # fmt: skip
    note(f"checking: the same forward at d_e = {tiny.d_e}, n = {tiny.n} (the checking's own cost)")
    _, tparams, tk = _impl_gpt2(tiny)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the checks are Python; tiny tensors gain nothing from threads but waiting
    try:
        tiny_times = measure(
            {"on": _with_checks(True, lambda: _forward(tparams, tk)),
             "off": _with_checks(False, lambda: _forward(tparams, tk))},
            max(repeat, 20),
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    on, off = times["on"]["median_s"], times["off"]["median_s"]
    # the least disturbed runs (min) measure a cost best on a loaded machine: the checking's own cost is
    # the tiny forward's on − off, and the estimate sets it against the unchecked forward at ``size``
    cost = max(tiny_times["on"]["min_s"] - tiny_times["off"]["min_s"], 0.0)
    return {
        "size": _sizes(size),
        "function": "impl.gpt2.forward",
        "on": times["on"],
        "off": times["off"],
        "overhead_pct": 100.0 * (on / off - 1.0),
        "overhead_min_pct": 100.0 * (times["on"]["min_s"] / times["off"]["min_s"] - 1.0),
        "tiny": {"d_e": tiny.d_e, "n": tiny.n, "L": tiny.L, "threads": 1, **tiny_times},
        "checking_cost_s": cost,
        "estimated_overhead_pct": 100.0 * cost / times["off"]["min_s"],
        "goal_pct": GOALS["checking_overhead_pct"],
    }


# --- 3. against transformers -------------------------------------------------------------------------------
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


def gpt2_from_hf(hf) -> "torch.nn.Module":
    """impl's GPT2 holding the weights of a transformers GPT2LMHeadModel (or GPT2Model).

    wte = Eᵀ and wpe = Λᵀ; GPT-2's Conv1D weights are stored in × out, so c_attn's columns are
    ``[W_Q | W_K | W_V]`` with head m at columns ``m d_k … (m+1) d_k − 1`` of each part, c_proj is W_O as is,
    and mlp.c_fc, mlp.c_proj are ``W_1ᵀ``, ``W_2ᵀ``."""
    from ...impl.gpt2 import GPT2

    body = getattr(hf, "transformer", hf)
    cfg = hf.config
    d_e, M = cfg.n_embd, cfg.n_head
    d_k = d_e // M
    ours = GPT2(cfg.vocab_size, cfg.n_positions, d_e, M, cfg.n_layer, cfg.n_inner or 4 * d_e,
                eps=cfg.layer_norm_epsilon).to(body.wte.weight.dtype)  # fmt: skip
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


def bert_from_hf(hf) -> "torch.nn.Module":
    """impl's BERT holding the weights of a transformers BertModel.

    Embedding tables are transposed (``E``, ``Λ``, ``G`` are d_e × ·); nn.Linear stores out × in, so the
    query, key and value weights are transposed and split by head (``W_Q^{(m)}`` is columns
    ``m d_k … (m+1) d_k − 1`` of ``query.weightᵀ``), attention.output.dense is ``W_Oᵀ``, and the FFN's and
    the pooler's weights are copied as they are (impl keeps W_1 ∈ ℝ^{d_f×d_e} and applies W_p as Linear)."""
    from ...impl.bert import BERT

    cfg = hf.config
    d_e, M, L = cfg.hidden_size, cfg.num_attention_heads, cfg.num_hidden_layers
    d_k = d_e // M
    ours = BERT(cfg.vocab_size, cfg.max_position_embeddings, d_e, M, L, cfg.intermediate_size,
                eps=cfg.layer_norm_eps).to(hf.embeddings.word_embeddings.weight.dtype)  # fmt: skip
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
        "agreement": agree,
        "goal_ratio": GOALS["hf_ratio"],
    }


def _versus(hf_fn: Callable, impl_fn: Callable, repeat: int) -> dict:
    """transformers, impl with checks on and impl with checks off, interleaved, under no_grad."""

    def no_grad(fn):
        def call():
            with torch.no_grad():
                return fn()

        return call

    return measure(
        {"hf": no_grad(hf_fn), "impl": _with_checks(True, no_grad(impl_fn)),
         "impl_unchecked": _with_checks(False, no_grad(impl_fn))},
        repeat,
    )  # fmt: skip


def _hf_gpt2(size: Size, repeat: int, note: Callable[[str], None], tol) -> dict:
    import transformers

    note(f"hf: building GPT-2 ({size.name}) in transformers and copying its weights into impl")
    config = transformers.GPT2Config(
        vocab_size=size.v, n_positions=size.n_max, n_embd=size.d_e, n_layer=size.L, n_head=size.M,
        n_inner=size.d_f, use_cache=False,
    )  # fmt: skip
    torch.manual_seed(0)
    hf_lm = transformers.GPT2LMHeadModel(config).eval()
    _perturb(hf_lm, 1)
    ours = gpt2_from_hf(hf_lm)
    with torch.no_grad():
        params = {name: t.detach().clone() for name, t in ours.spec_params().items()}
    k = _tokens(size.v, size)

    def hf_body():
        return hf_lm.transformer(input_ids=k, use_cache=False).last_hidden_state

    def hf_head():
        return hf_lm(input_ids=k, use_cache=False).logits

    def impl_body():
        return _forward(params, k, ours.eps)

    def impl_head():
        return ours(k)[0]

    note("hf: checking that impl's and transformers' GPT-2 outputs agree")
    with torch.no_grad():
        agree_body = [_agreement("GPT-2 H^L", impl_body(), hf_body(), tol)]
        agree_head = [_agreement("GPT-2 logits", impl_head(), hf_head(), tol)]
    note("hf: timing GPT2Model against impl.gpt2.forward")
    body = _comparison(_versus(hf_body, impl_body, repeat), agree_body, "GPT2Model", "impl.gpt2.forward")
    note("hf: timing GPT2LMHeadModel against impl.gpt2.GPT2")
    head = _comparison(_versus(hf_head, impl_head, repeat), agree_head, "GPT2LMHeadModel", "impl.gpt2.GPT2")
    return {
        "attn_implementation": hf_lm.config._attn_implementation,
        "gpt2_model": body,
        "gpt2_lm_head": head,
    }


def _hf_bert(size: Size, repeat: int, note: Callable[[str], None], tol) -> dict:
    import transformers

    note(f"hf: building BERT ({size.name} width) in transformers and copying its weights into impl")
    config = transformers.BertConfig(
        vocab_size=size.v_bert, hidden_size=size.d_e, num_hidden_layers=size.L, num_attention_heads=size.M,
        intermediate_size=size.d_f, max_position_embeddings=size.n_max_bert,
    )  # fmt: skip
    torch.manual_seed(0)
    hf_bert = transformers.BertModel(config).eval()
    _perturb(hf_bert, 2)
    ours = bert_from_hf(hf_bert)
    k = _tokens(size.v_bert, size, seed=2)

    def hf_fn():
        out = hf_bert(input_ids=k)
        return out.last_hidden_state, out.pooler_output

    def impl_fn():
        out = ours(k)
        return out.states[..., -1, :, :], out.p

    note("hf: checking that impl's and transformers' BERT outputs agree")
    with torch.no_grad():
        (want_h, want_p), (got_h, got_p) = hf_fn(), impl_fn()
    agree = [_agreement("BERT H^L", got_h, want_h, tol), _agreement("BERT pooled", got_p, want_p, tol)]
    note("hf: timing BertModel against impl.bert.BERT")
    return {"bert_model": _comparison(_versus(hf_fn, impl_fn, repeat), agree, "BertModel", "impl.bert.BERT")}


def hf(size: Size, repeat: int = 5, note: Callable[[str], None] = lambda _: None) -> dict:
    """impl's GPT-2 (functional forward, and the model with its tied head) and BERT against transformers'
    GPT2Model, GPT2LMHeadModel and BertModel holding the same weights: float32, eval, no_grad, the same
    threads, transformers' default attention. The outputs must agree (float32 tolerance) before timing."""
    import transformers

    from ..compare import POLICY

    transformers.logging.set_verbosity_error()
    tol = POLICY["float32"]
    out = {"size": _sizes(size), "dtype": "float32", "threads": torch.get_num_threads()}
    out |= _hf_gpt2(size, repeat, note, tol)  # the GPT-2 models are freed before BERT is built
    out |= _hf_bert(size, repeat, note, tol)
    return out


# --- 4. GFLOP/s -----------------------------------------------------------------------------------------
def gflops(size: Size, repeat: int = 5, note: Callable[[str], None] = lambda _: None) -> dict:
    """Achieved GFLOP/s of impl.gpt2.forward (checks off) against square matmuls of about the same FLOPs
    (the machine's practical limit in float32) and against one GEMM of the model's FFN shape
    ``(n × d_e)·(d_e × d_f)``."""
    note(f"gflops: GPT-2 forward at {size.name} and square {size.square}² matmuls")
    flops = _size_flops(size)
    _, params, k = _impl_gpt2(size)
    s = size.square
    count = max(1, round(flops / (2 * s**3)))
    gen = torch.Generator().manual_seed(3)
    A, B = torch.randn(s, s, generator=gen), torch.randn(s, s, generator=gen)
    C = torch.empty(s, s)
    X = torch.randn(size.batch * size.n, size.d_e, generator=gen)
    W = torch.randn(size.d_e, size.d_f, generator=gen)

    def squares():
        for _ in range(count):
            torch.mm(A, B, out=C)

    def ffn_gemm():
        return X @ W

    times = measure(
        {"forward": _with_checks(False, lambda: _forward(params, k)), "square": squares, "gemm": ffn_gemm},
        repeat,
    )
    ref_flops = count * 2 * s**3
    gemm_flops = 2 * size.batch * size.n * size.d_e * size.d_f
    forward_rate = flops / times["forward"]["median_s"] / 1e9
    square_rate = ref_flops / times["square"]["median_s"] / 1e9
    return {
        "size": _sizes(size),
        "formula": FLOP_FORMULA,
        "flops": flops,
        "forward": times["forward"],
        "forward_gflops": forward_rate,
        "square": {"side": s, "count": count, "flops": ref_flops, **times["square"], "gflops": square_rate},
        "ffn_gemm": {
            "shape": [size.batch * size.n, size.d_e, size.d_f],
            "flops": gemm_flops,
            **times["gemm"],
            "gflops": gemm_flops / times["gemm"]["median_s"] / 1e9,
        },
        "efficiency": forward_rate / square_rate,
        "threads": torch.get_num_threads(),
    }


# --- 5. the oracle ----------------------------------------------------------------------------------------
def oracle_sizes(eq, s: int) -> dict[str, int]:
    """Every free axis of ``eq`` set to ``s`` (M and L to at most 2), then its equalities."""
    from ..oracle import size_subs

    sizes = {a: min(s, 2) if a in ("M", "L") else s for a in eq.free_axes}
    for c in eq.equalities:
        sizes[c.lhs.name] = int(c.rhs.subs(size_subs(sizes)))
    if not all(bool(c.subs(size_subs(sizes))) for c in eq.inequalities):
        raise ValueError(f"{eq.id}: the sizes {sizes} break its constraints")
    return sizes


def oracle(size: Size, repeat: int = 5, note: Callable[[str], None] = lambda _: None) -> dict:
    """For each equation of ``size.oracle_equations`` and each step s of ``size.oracle_steps``: the oracle's
    compile time (expansion of ``_entry`` + Python compile, cache cleared first) and its evaluation time per
    example (median of ``repeat``), in float64 and with mpmath (50 digits)."""
    import numpy as np

    from ... import spec
    from ..oracle import Oracle, _compile, concrete_shape
    from ..strategies import seeded_tensor

    rows = []
    for eq_id in size.oracle_equations:
        eq = spec.get(eq_id)
        ora = Oracle(eq)
        for s in size.oracle_steps:
            note(f"oracle: {eq_id} at s = {s}")
            sizes = oracle_sizes(eq, s)
            rng = np.random.default_rng(0)
            example = {
                d.ascii: seeded_tensor(rng, d.entry_kind, concrete_shape(d, sizes), sizes)
                for d in (*eq.inputs, *eq.params)
            }
            row: dict = {"equation": eq_id, "step": s, "sizes": sizes,
                         "entries": int(sum(np.size(a) for a in example.values()))}  # fmt: skip
            for precision in ("float64", "mpmath"):
                _compile.cache_clear()
                compiled = ora.compiled(sizes, precision)
                row[f"compile_{precision}_s"] = compiled.compile_seconds
                row["lines"] = len(compiled.program.assignments)
                evaluate = partial(ora, example, sizes, precision=precision)
                row[f"eval_{precision}"] = measure({"eval": evaluate}, repeat)["eval"]
            rows.append(row)
    return {"steps": list(size.oracle_steps), "rows": rows}


# --- all of it ------------------------------------------------------------------------------------------
def run(
    parts: Sequence[str] = PARTS,
    size: str = "gpt2-small",
    repeat: int = 5,
    jobs: int = 0,
    profile: str = "default",
    families: Sequence[str] | None = None,
    shards: int = 2,
    threads: int | None = None,
    note: Callable[[str], None] = lambda _: None,
) -> dict:
    """The selected parts, in the order of PARTS, with the machine's facts and the settings."""
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}")
    chosen = SIZES[size]
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        report: dict = {
            "machine": machine(),
            "settings": {"parts": [p for p in PARTS if p in parts], "size": size, "repeat": repeat,
                         "jobs": jobs, "profile": profile, "families": list(families or []),
                         "shards": shards, "threads": torch.get_num_threads()},
        }  # fmt: skip
        for part in PARTS:
            if part not in parts:
                continue
            if part == "suite":
                report["suite"] = suite(families, profile, jobs, shards, note)
            else:
                measure_part = {"checking": checking, "hf": hf, "gflops": gflops, "oracle": oracle}[part]
                report[part] = measure_part(chosen, repeat, note)
    finally:
        torch.set_num_threads(before)
    report["wall_s"] = time.perf_counter() - start
    return report


def goals(report: Mapping) -> list[dict]:
    """Each goal of the issue that the report measured: its figure, the target and whether it is met."""
    out = []
    if "checking" in report:
        c = report["checking"]
        out.append({"goal": "runtime checking overhead (measured)", "value": c["overhead_pct"], "unit": "%",
                    "target": c["goal_pct"], "met": c["overhead_pct"] <= c["goal_pct"]})  # fmt: skip
        out.append({"goal": "runtime checking overhead (estimated)", "value": c["estimated_overhead_pct"],
                    "unit": "%", "target": c["goal_pct"],
                    "met": c["estimated_overhead_pct"] <= c["goal_pct"]})  # fmt: skip
    if "hf" in report:
        for key, label in (("gpt2_model", "GPT2Model"), ("gpt2_lm_head", "GPT2LMHeadModel"),
                           ("bert_model", "BertModel")):  # fmt: skip
            c = report["hf"][key]
            for field, how in (("ratio", "checks on"), ("ratio_unchecked", "checks off")):
                out.append({"goal": f"impl / {label} time ({how})", "value": c[field], "unit": "×",
                            "target": c["goal_ratio"], "met": c[field] <= c["goal_ratio"]})  # fmt: skip
    return out
