"""Part ``audit``: what an audit costs from the command line, start-up included, as a ratio to the import
floor (issue 13, "Fast").

Three commands, each a fresh process timed around its whole life, interleaved (A B C, C B A …):

- ``floor``: ``python -c "import torch, sympy, hypothesis"``, what any audit pays before it does anything;
- ``attention``: the README's one-command audit of a five-line attention function (``my_attention.py``,
  ``--layout … --mask bool_keep``), verdict ``variant``;
- ``gpt_stack``: docs/audit.md's audit of a GPT-2-style stack of L pre-LN blocks (``gpt_stack.py``, ``-p
  quick``, ``--init n_layer=L``: the audit draws L = 2), verdict ``pass``.

The files and commands are the documents' own, verbatim (a test holds them to README.md and docs/audit.md).
The audits run in a folder of their own with a disk cache of their own (``LMSPEC_CACHE_DIR``, verify.cache):
each audit's first run finds none of its entries there and is timed once as the **cold** figure (the oracle
and the generated code are expanded from the SymPy and written); the ``repeat`` timed rounds then find it
**warm**, as every audit after a user's first does. Bytecode is written (to a prefix of the bench's own)
and read as an installed package's is, whatever ``PYTHONDONTWRITEBYTECODE`` says. The floor's first run is
an untimed warm-up (it fills the OS's file cache). Every run must end with the verdict the documents state,
else the part stops (a crash is no figure).
"""

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ._parts import CommandError
from ._startup import _Command, installed_environment, lmspec_command
from ._timing import measure, no_note

#: The goals of issue 13, as ratios of the median wall time to the floor's.
GOAL_RATIOS = {"attention": 1.5, "gpt_stack": 3.0}
#: What the floor imports: what every audit needs before it can do anything.
FLOOR_IMPORTS = "torch, sympy, hypothesis"

ATTENTION_FILE = "my_attention.py"
#: README.md, "Your own attention function, in one command": the file …
ATTENTION_SOURCE = """\
import math
import torch


def attention(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    scores = scores.masked_fill(mask == 0, float("-inf"))
    return scores.softmax(dim=-1) @ v
"""
#: … and the command (after ``lmspec``).
ATTENTION_ARGS = (
    "audit", "my_attention.py:attention", "--as", "attention.scaled_dot_product",
    "--layout", "q=b h n d_k, k=b h n d_k, v=b h n d_v, mask=b h n n -> b h n d_v", "--mask", "bool_keep",
)  # fmt: skip

STACK_FILE = "gpt_stack.py"
#: docs/audit.md, "Modules": a GPT-2-style stack, nanoGPT's layout …
STACK_SOURCE = '''\
import torch
from torch import nn


class Block(nn.Module):
    """A GPT-2 block, nanoGPT-style: pre-LN, fused c_attn, causal attention, GELU (tanh) MLP."""

    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd)
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.mlp_proj = nn.Linear(4 * n_embd, n_embd)

    def attn(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_proj(nn.functional.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, n_layer, n_embd, n_head):
        super().__init__()
        self.h = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))

    def forward(self, x):
        for block in self.h:
            x = block(x)
        return x
'''
#: … and its command (after ``lmspec``).
STACK_ARGS = (
    "audit", "gpt_stack.py:GPT", "--as", "transformer.stack[eps]", "-p", "quick", "--mask", "causal",
    "--constant", "eps=1e-5", "--init", "n_layer=L", "--init", "n_embd=d_e", "--init", "n_head=M",
    "--derive", "d_e=M*d_k", "--derive", "d_v=d_k", "--derive", "d_f=4*d_e",
    "--param", "h.{l}.ln_1.weight=alpha_1", "--param", "h.{l}.ln_1.bias=beta_1",
    "--param", "h.{l}.c_attn.weight=W_Q, W_K, W_V -> (3 M d_k) d_e",
    "--param", "h.{l}.c_attn.bias=b_Q, b_K, b_V -> (3 M d_k)",
    "--param", "h.{l}.c_proj.weight=W_O -> d_e M*d_v", "--param", "h.{l}.c_proj.bias=b_O",
    "--param", "h.{l}.ln_2.weight=alpha_2", "--param", "h.{l}.ln_2.bias=beta_2",
    "--param", "h.{l}.c_fc.weight=W_1", "--param", "h.{l}.c_fc.bias=b_1",
    "--param", "h.{l}.mlp_proj.weight=W_2", "--param", "h.{l}.mlp_proj.bias=b_2",
    "--layout", "x:X=b n d_e -> b n d_e",
)  # fmt: skip

#: Each audit: its file, source, command, the verdict the documents state, and what the figure is.
AUDITS = {
    "attention": (ATTENTION_FILE, ATTENTION_SOURCE, ATTENTION_ARGS, "variant",
                  "README: my_attention.py:attention as attention.scaled_dot_product (default profile)"),
    "gpt_stack": (STACK_FILE, STACK_SOURCE, STACK_ARGS, "pass",
                  "docs/audit.md: gpt_stack.py:GPT as transformer.stack[eps] (-p quick)"),
}  # fmt: skip


def _verdict_line(args: tuple[str, ...], verdict: str) -> str:
    """What the audit prints first: ``<target> as <ID>: <verdict>``."""
    return f"{args[1]} as {args[args.index('--as') + 1]}: {verdict}"


def _accept(expected: str) -> Callable[[str], str | None]:
    def complaint(output: str) -> str | None:
        return None if expected in output else f"did not print {expected!r}"

    return complaint


def _ratio(row: dict, floor: dict, goal: float) -> dict:
    """A timed audit beside the floor: the ratio of the medians (and of the mins) and the goal."""
    return {
        "ratio": row["median_s"] / floor["median_s"],
        "ratio_min": row["min_s"] / floor["min_s"],
        "over_floor_s": row["median_s"] - floor["median_s"],
        "goal_ratio": goal,
    }


def _cpu(command: _Command) -> float | None:
    """The median CPU time (user + system) of a command's timed runs (all but its first)."""
    runs = command.cpu_s[1:]
    return None if not runs or None in runs else statistics.median(runs)


def audit(repeat: int = 5, note: Callable[[str], None] = no_note) -> dict:
    """The floor, the README's attention audit and docs/audit.md's GPT-2-style stack, in fresh processes,
    interleaved: median, min and max of ``repeat`` warm-cache runs, each audit's one cold-cache run, and each
    audit's ratio to the floor beside the goal."""
    with tempfile.TemporaryDirectory(prefix="lmspec-bench-audit-") as tmp:
        folder, cache = Path(tmp) / "work", Path(tmp) / "cache"
        folder.mkdir()
        env = installed_environment(Path(tmp))  # bytecode as an installed package's
        env["LMSPEC_CACHE_DIR"] = str(cache)
        commands = {"floor": _Command([sys.executable, "-c", f"import {FLOOR_IMPORTS}"], env=env)}
        lmspec = lmspec_command()
        for name, (file, source, args, verdict, _) in AUDITS.items():
            (folder / file).write_text(source, encoding="utf-8")
            commands[name] = _Command([*lmspec, *args], folder, 0 if verdict == "pass" else 1, env=env)
        note(
            f"audit: `{commands['floor'].shown}`, the README's attention audit and docs/audit.md's "
            f"GPT-2-style stack, each in fresh processes ({repeat} rounds after a cold run)"
        )
        commands["floor"]()  # untimed: the OS's file cache
        accept = {name: _accept(_verdict_line(a[2], a[3])) for name, a in AUDITS.items()}
        cold = {}
        for name in AUDITS:
            start = time.perf_counter()
            commands[name]()
            cold[name] = time.perf_counter() - start
            commands[name].checked(accept[name])  # a broken audit stops the part now, not minutes later
        times = measure(commands, repeat, warmup=0)
        cached = sum(1 for _ in cache.rglob("*.py")) if cache.is_dir() else 0

    floor = {**commands["floor"].checked(), **times["floor"], "max_s": max(times["floor"]["runs_s"]),
             "cpu_median_s": _cpu(commands["floor"])}  # fmt: skip
    out: dict = {"floor": floor}
    for name, (_, _, _, verdict, what) in AUDITS.items():
        row = commands[name].checked(accept[name])
        timing, cpu = times[name], _cpu(commands[name])
        out[name] = {
            **row, "what": what, "verdict": verdict, **timing, "max_s": max(timing["runs_s"]),
            **_ratio(timing, floor, GOAL_RATIOS[name]), "cold_s": cold[name],
            "cold_ratio": cold[name] / floor["median_s"], "cpu_median_s": cpu,
            "cpu_ratio": None if cpu is None or not floor["cpu_median_s"] else cpu / floor["cpu_median_s"],
        }  # fmt: skip
    out["cache"] = {
        "warm": True,
        "entries": cached,
        "note": "a cache of the bench's own, empty for each audit's cold run, then warm",
    }
    if not cached:  # the cache was never written: the "warm" runs were cold too
        raise CommandError(f"the audits wrote nothing to their cache ({os.fspath(cache)})")
    return out
