"""Mutation operators of losses, gates and encodings: label shift, off-by-one slices, padding counted,
the gate product and sin/cos.
"""

import ast
import re
from pathlib import Path

from ._base import Context, Operator, Proposal, _atom, _int, _is_call, _plus, _where_call

_LOSS_FUNCTION = re.compile(r"nll|loss|ngram|mle")


def _slices(ctx: Context, fn: ast.FunctionDef):
    for node in ast.walk(fn):
        if isinstance(node, ast.Subscript):
            if isinstance(node.value, ast.Attribute) and node.value.attr == "shape":
                continue
            parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            for part in parts:
                if isinstance(part, ast.Slice):
                    for bound in (part.lower, part.upper):
                        if bound is not None:
                            yield bound


class _SliceBounds(Operator):
    def bounds(self, ctx: Context):
        raise NotImplementedError

    def mutations(self, ctx):
        for bound in sorted(self.bounds(ctx), key=lambda n: (n.lineno, n.col_offset)):
            for delta in (1, -1):
                yield Proposal(bound, ((bound, _plus(ctx, bound, delta)),), f"slice bound {delta:+d}")


class LabelShift(_SliceBounds):
    name = "label-shift"
    description = "label shift ±1: a slice bound in an LM loss (k[..., 1:], logY[..., :-1, :]) or shift=s ± 1"

    def bounds(self, ctx):
        for fn in ctx.functions():
            if _LOSS_FUNCTION.search(fn.name):
                yield from _slices(ctx, fn)

    def mutations(self, ctx):
        yield from super().mutations(ctx)
        for _, node in ctx.nodes():
            if isinstance(node, ast.keyword) and node.arg == "shift" and _int(node.value) is not None:
                s = _int(node.value)
                for new in (s + 1, s - 1):
                    if new >= 0:
                        yield Proposal(node.value, ((node.value, str(new)),), f"shift={new} instead of {s}")


class SliceOffByOne(_SliceBounds):
    name = "slice-off-by-one"
    description = "off-by-one in a slice bound (outside the LM losses, not on .shape): a:b → a±1 or b±1"

    def bounds(self, ctx):
        for fn in ctx.functions():
            if not _LOSS_FUNCTION.search(fn.name):
                yield from _slices(ctx, fn)


class PaddingCounted(Operator):
    name = "padding-counted"
    description = (
        "padding counted: where(keep, x, 0) → x in a masked sum, keep.sum() → count of all positions"
    )

    def mutations(self, ctx):
        for fn in ctx.functions():
            masks = set()
            for node in sorted(
                (n for n in ast.walk(fn) if _where_call(n)), key=lambda n: (n.lineno, n.col_offset)
            ):
                cond, _, other = node.args
                if (isinstance(cond, ast.Name) and _int(other) == 0) or (
                    isinstance(cond, ast.Name) and isinstance(other, ast.Constant) and other.value == 0.0
                ):
                    masks.add(cond.id)
                    yield Proposal(
                        node, ((node, _atom(ctx, node.args[1])),), f"the mask {cond.id} dropped from a sum"
                    )
            for node in sorted(
                (n for n in ast.walk(fn) if _is_call(n, "sum")), key=lambda n: (n.lineno, n.col_offset)
            ):
                recv = node.func.value if isinstance(node.func, ast.Attribute) else None
                if isinstance(recv, ast.Name) and recv.id in masks:
                    new = f"torch.ones_like({recv.id})"
                    yield Proposal(node, ((recv, new),), f"every position counted, not only {recv.id}")


_GATE = re.compile(r"^([a-z]_t|m|gate\w*)$")


def _gate_operand(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and _GATE.match(n.id) for n in ast.walk(node))


class GateProduct(Operator):
    name = "gate-product"
    description = "gate ⊙ → + in gated recurrences (LSTM, GRU, the RNN gate)"

    def mutations(self, ctx):
        if Path(ctx.file).stem not in ("lstm", "gru", "rnn"):
            return
        for _, node in ctx.nodes():
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Mult)
                and (_gate_operand(node.left) or _gate_operand(node.right))
                and _int(node.left) is None
                and _int(node.right) is None
            ):
                new = f"({ctx.text(node.left)} + {ctx.text(node.right)})"
                yield Proposal(node, ((node, new),), "gate product ⊙ replaced by +")


class SinCos(Operator):
    name = "sin-cos"
    description = "sin ↔ cos in the sinusoidal encodings"

    def mutations(self, ctx):
        for _, node in ctx.nodes():
            if _is_call(node, "sin", "cos") and isinstance(node.func, ast.Attribute):
                other = "cos" if node.func.attr == "sin" else "sin"
                new = f"{ctx.text(node.func.value)}.{other}"
                yield Proposal(node, ((node.func, new),), f"{node.func.attr} → {other}")
