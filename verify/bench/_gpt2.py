"""impl's GPT-2 as the bench runs it (random weights, stacked spec parameters, token ids), its FLOP count,
and two parts: ``checking`` (the cost of runtime checking) and ``gflops`` (achieved GFLOP/s)."""

from collections.abc import Callable, Mapping

import torch

from ._parts import GOALS, Size, sizes_of
from ._timing import measure, no_note


def gpt2_forward_flops(
    *, n: int, d_e: int, M: int, d_k: int, d_v: int, d_f: int, L: int, batch: int = 1
) -> int:
    """Matmul FLOPs of GPT-2's forward to ``H̃^L = LN(H^L)`` (no head), a multiply-add counted as 2:

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


# --- impl's GPT-2 at a size ---------------------------------------------------------------------------------
def impl_gpt2(size: Size, seed: int = 0):
    """impl's GPT-2 at ``size`` (random weights), its stacked spec parameters and token ids."""
    from ...impl.gpt2 import GPT2

    torch.manual_seed(seed)
    model = GPT2(size.v, size.n_max, size.d_e, size.M, size.L, size.d_f).eval()
    with torch.no_grad():
        params = {name: t.detach().clone() for name, t in model.spec_params().items()}
    return model, params, tokens(size.v, size)


def tokens(v: int, size: Size, seed: int = 1, n: int | None = None) -> torch.Tensor:
    """``size.batch`` sequences of ``n`` (default ``size.n``) token ids in [0, v), seeded."""
    shape = (size.batch, size.n if n is None else n)
    return torch.randint(0, v, shape, generator=torch.Generator().manual_seed(seed))


def forward_no_grad(
    params: Mapping[str, torch.Tensor], k: torch.Tensor, eps: float = 1e-5, *, fast: bool = False
) -> torch.Tensor:
    """The registered ``gpt2.forward`` on stacked spec parameters, under no_grad: impl.gpt2.forward, the
    readable one, or impl.fast.gpt2_forward (``fast=True``)."""
    from ... import impl

    forward = impl.implementation("gpt2.forward", "fast" if fast else "readable")
    with torch.no_grad():
        return forward(k, **params, eps=eps)


def with_checks(enabled: bool, fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` with impl's runtime checking (jaxtyping + beartype) switched on or off around each call."""
    from ... import impl

    def call():
        with impl.runtime_checks(enabled):
            return fn()

    return call


def _overhead(size: Size, repeat: int, note: Callable[[str], None], fast: bool) -> dict:
    """The registered ``gpt2.forward`` (readable, or impl's fast path) with checking on and off, at ``size``
    and at a tiny width with the same L (the checking's own cost)."""
    name = "impl.fast.gpt2_forward" if fast else "impl.gpt2.forward"
    note(f"checking: {name} at {size.name}, checks on / off")
    _, params, k = impl_gpt2(size)
    times = measure(
        {"on": with_checks(True, lambda: forward_no_grad(params, k, fast=fast)),
         "off": with_checks(False, lambda: forward_no_grad(params, k, fast=fast))},
        repeat,
    )  # fmt: skip
    tiny = Size("tiny", v=8, n_max=2, d_e=size.M, M=size.M, L=size.L, d_f=4, n=2, batch=1, v_bert=8,
                n_max_bert=2, square=1, oracle_steps=(), oracle_equations=())  # fmt: skip
    note(f"checking: {name} at d_e = {tiny.d_e}, n = {tiny.n} (the checking's own cost)")
    _, tparams, tk = impl_gpt2(tiny)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the checks are Python; tiny tensors gain nothing from threads but waiting
    try:
        tiny_times = measure(
            {"on": with_checks(True, lambda: forward_no_grad(tparams, tk, fast=fast)),
             "off": with_checks(False, lambda: forward_no_grad(tparams, tk, fast=fast))},
            max(repeat, 20),
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    on, off = times["on"]["median_s"], times["off"]["median_s"]
    # the least disturbed runs (min) measure a cost best on a loaded machine: the checking's own cost is
    # the tiny forward's on − off, and the estimate sets it against the unchecked forward at ``size``
    cost = max(tiny_times["on"]["min_s"] - tiny_times["off"]["min_s"], 0.0)
    return {
        "function": name,
        "on": times["on"],
        "off": times["off"],
        "overhead_pct": 100.0 * (on / off - 1.0),
        "overhead_min_pct": 100.0 * (times["on"]["min_s"] / times["off"]["min_s"] - 1.0),
        "tiny": {"d_e": tiny.d_e, "n": tiny.n, "L": tiny.L, "threads": 1, **tiny_times},
        "checking_cost_s": cost,
        "estimated_overhead_pct": 100.0 * cost / times["off"]["min_s"],
    }


def checking(size: Size, repeat: int = 5, note: Callable[[str], None] = no_note) -> dict:
    """The registered ``gpt2.forward`` with jaxtyping + beartype checking on and off, at ``size`` (the
    overhead as measured), and at a tiny width with the same L, where the difference is the checking's cost
    alone; that cost over the unchecked forward at ``size`` is the overhead estimated without the big run's
    noise. The readable impl.gpt2.forward at the top level, impl's fast path under ``fast``."""
    readable = _overhead(size, repeat, note, fast=False)
    fast = _overhead(size, repeat, note, fast=True)
    return {"size": sizes_of(size), **readable, "fast": fast, "goal_pct": GOALS["checking_overhead_pct"]}


def gflops(size: Size, repeat: int = 5, note: Callable[[str], None] = no_note) -> dict:
    """Achieved GFLOP/s of impl.gpt2.forward (checks off) against square matmuls of about the same FLOPs
    (the machine's practical limit in float32) and against one GEMM of the model's FFN shape
    ``(n × d_e)·(d_e × d_f)``."""
    note(f"gflops: GPT-2 forward at {size.name} and square {size.square}² matmuls")
    flops = _size_flops(size)
    _, params, k = impl_gpt2(size)
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
        {
            "forward": with_checks(False, lambda: forward_no_grad(params, k)),
            "square": squares,
            "gemm": ffn_gemm,
        },
        repeat,
    )
    ref_flops = count * 2 * s**3
    gemm_flops = 2 * size.batch * size.n * size.d_e * size.d_f
    forward_rate = flops / times["forward"]["median_s"] / 1e9
    square_rate = ref_flops / times["square"]["median_s"] / 1e9
    return {
        "size": sizes_of(size),
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
