"""Mutation operators of attention: the softmax axis, transposes, the scale, the causal diagonal, mask
polarity and the mask's fill value.
"""

import ast

from ._base import (
    Operator,
    Proposal,
    _atom,
    _contains,
    _int,
    _is_call,
    _is_transpose,
    _kw,
    _plus,
    _sqrt_call,
    _where_call,
)


class SoftmaxAxis(Operator):
    name = "softmax-axis"
    description = "softmax / log_softmax over the wrong axis: dim=-1 → dim=-2 (the query axis of scores)"

    def mutations(self, ctx):
        for _, node in ctx.nodes():
            if _is_call(node, "softmax", "log_softmax"):
                kw = _kw(node, "dim")
                arg = kw.value if kw else (node.args[1] if len(node.args) > 1 else None)
                d = _int(arg)
                if d is not None:
                    new = d - 1 if d < 0 else d + 1
                    yield Proposal(node, ((arg, str(new)),), f"softmax over dim={new} instead of dim={d}")


class TransposeDrop(Operator):
    name = "transpose-drop"
    description = "a transpose dropped: x.transpose(a, b) / x.T / x.mT → x"

    def mutations(self, ctx):
        for _, node in ctx.nodes():
            if _is_transpose(node):
                inner = node.value if isinstance(node, ast.Attribute) else node.func.value  # type: ignore[attr-defined]
                yield Proposal(node, ((node, ctx.text(inner)),), f"{ctx.text(node)} without its transpose")


class TransposeAdd(Operator):
    name = "transpose-add"
    description = "a transpose added: the right operand of a matrix product A @ B → A @ B.transpose(-2, -1)"

    def mutations(self, ctx):
        for _, node in ctx.nodes():
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.MatMult)
                and not _is_transpose(node.right)
            ):
                new = f"{_atom(ctx, node.right)}.transpose(-2, -1)"
                yield Proposal(node, ((node.right, new),), "the right factor of a product transposed")


def _d_e_expression(fn: ast.FunctionDef) -> str | None:
    """An expression for d_e inside ``fn``: a parameter whose annotation's last axis is d_e."""
    for a in [*fn.args.args, *fn.args.kwonlyargs]:
        ann = a.annotation
        if isinstance(ann, ast.BinOp):  # X | None
            ann = ann.left
        if isinstance(ann, ast.Subscript) and isinstance(ann.slice, ast.Tuple) and len(ann.slice.elts) == 2:
            axes = ann.slice.elts[1]
            if (
                isinstance(axes, ast.Constant)
                and isinstance(axes.value, str)
                and axes.value.split()[-1] == "d_e"
            ):
                return f"{a.arg}.shape[-1]"
    return None


class Scale(Operator):
    name = "scale"
    description = "attention scale: scores / √d_k → / √d_e, no scale, or × √d_k (inverted)"

    def mutations(self, ctx):
        for fn, node in ctx.nodes():
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Div)
                and _sqrt_call(node.right)
                and _contains(node.left, ast.MatMult)
            ):
                left, right = ctx.text(node.left), ctx.text(node.right)
                d_e = _d_e_expression(fn)
                if d_e is not None:
                    yield Proposal(node, ((node.right.args[0], d_e),), "scaled by √d_e instead of √d_k")
                yield Proposal(node, ((node, left),), "no scale")
                yield Proposal(node, ((node, f"{left} * {right}"),), "multiplied by √d_k instead of divided")


class CausalDiagonal(Operator):
    name = "causal-diagonal"
    description = "causal mask off by one: triu/tril(diagonal=k) → k ± 1"

    def mutations(self, ctx):
        for _, node in ctx.nodes():
            if _is_call(node, "triu", "tril"):
                kw = _kw(node, "diagonal")
                arg = kw.value if kw else None
                if arg is None:
                    positional = node.args[1:] if isinstance(node.func, ast.Name) else node.args
                    if positional:
                        arg = positional[0]
                if arg is None:  # default diagonal 0: add the keyword
                    for d in (1, -1):
                        call = ctx.text(node)
                        yield Proposal(node, ((node, f"{call[:-1]}, diagonal={d})"),), f"diagonal={d}")
                    continue
                for delta in (1, -1):
                    yield Proposal(node, ((arg, _plus(ctx, arg, delta)),), f"diagonal {delta:+d}")


class MaskPolarity(Operator):
    name = "mask-polarity"
    description = (
        "mask polarity: ~mask dropped, a masked_fill condition negated, torch.where branches swapped"
    )

    def mutations(self, ctx):
        for _, node in ctx.nodes():
            if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
                yield Proposal(node, ((node, _atom(ctx, node.operand)),), "~ dropped")
            elif _is_call(node, "masked_fill") and node.args:
                cond = node.args[0]
                if not (isinstance(cond, ast.UnaryOp) and isinstance(cond.op, ast.Invert)):
                    yield Proposal(node, ((cond, f"~{_atom(ctx, cond)}"),), "masked_fill condition negated")
            elif _where_call(node):
                a, b = node.args[1], node.args[2]
                yield Proposal(node, ((a, ctx.text(b)), (b, ctx.text(a))), "torch.where branches swapped")


def _is_neg_inf(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = node.operand
        return isinstance(inner, ast.Attribute) and inner.attr == "inf"
    if _is_call(node, "float") and node.args and isinstance(node.args[0], ast.Constant):
        return str(node.args[0].value).strip().lower() in ("-inf", "-infinity")
    return isinstance(node, ast.Attribute) and node.attr == "min" and _is_call(node.value, "finfo")


class FillValue(Operator):
    name = "fill-value"
    description = "mask fill −∞ → −1e4 (-math.inf, float('-inf'), torch.finfo(…).min)"

    def mutations(self, ctx):
        for _, node in ctx.nodes():
            if _is_neg_inf(node):
                yield Proposal(node, ((node, "-1e4"),), f"{ctx.text(node)} → -1e4")
