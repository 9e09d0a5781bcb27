"""Mutation operators of the layers around attention: the norm axis, Bessel's correction, ε, the GELU form,
the residual's source and the layer norm's placement.
"""

import ast

from ._base import (
    Context,
    Operator,
    Proposal,
    _atom,
    _int,
    _is_call,
    _is_layer_norm,
    _kw,
    _replace_within,
    _same,
    _sqrt_call,
)


def _in_norm(fn: ast.FunctionDef) -> bool:
    return "norm" in fn.name.lower()


class NormAxis(Operator):
    name = "norm-axis"
    description = "layer-norm statistics over the wrong axis: mean/var(dim=-1, keepdim=True) → dim=-2"

    def mutations(self, ctx):
        for fn, node in ctx.nodes():
            if _in_norm(fn) and _is_call(node, "mean", "var", "std") and _kw(node, "dim"):
                arg = _kw(node, "dim").value
                d = _int(arg)
                if d is not None:
                    yield Proposal(
                        node, ((arg, str(d - 1 if d < 0 else d + 1)),), "statistic over the token axis"
                    )


class Bessel(Operator):
    name = "bessel"
    description = "Bessel-corrected variance: mean of squares → sum / (d − 1); unbiased/correction flipped"

    def mutations(self, ctx):
        for fn, node in ctx.nodes():
            if not _in_norm(fn):
                continue
            if (
                _is_call(node, "mean")
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.BinOp)
                and isinstance(node.func.value.op, ast.Pow)
            ):
                squares = ctx.text(node.func.value)
                kws = ", ".join(ctx.text(k) for k in node.keywords)
                dim = _int(_kw(node, "dim").value) if _kw(node, "dim") else -1
                centred = node.func.value.left
                new = f"({squares}).sum({kws}) / ({_atom(ctx, centred)}.shape[{dim}] - 1)"
                yield Proposal(node, ((node, new),), "variance divided by d − 1 (Bessel)")
            elif _is_call(node, "var", "std"):
                kw = _kw(node, "unbiased") or _kw(node, "correction")
                if kw is not None:
                    flip = {"False": "True", "True": "False", "0": "1", "1": "0"}.get(ctx.text(kw.value))
                    if flip:
                        yield Proposal(node, ((kw.value, flip),), f"{kw.arg}={flip}")


def _is_eps(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return "eps" in node.id.lower()
    return isinstance(node, ast.Constant) and isinstance(node.value, float) and 0 < node.value < 1e-3


class Epsilon(Operator):
    name = "epsilon"
    description = "ε moved (√(x + ε) ↔ √x + ε) or dropped"

    def mutations(self, ctx):
        for _, node in ctx.nodes():
            # sqrt(x + eps) or x.sqrt() with x = a + eps inside
            if _sqrt_call(node):
                fn_call = isinstance(node.func.value, ast.Name)  # torch.sqrt(…) / math.sqrt(…)
                arg = node.args[0] if fn_call else None
                if (
                    arg is not None
                    and isinstance(arg, ast.BinOp)
                    and isinstance(arg.op, ast.Add)
                    and _is_eps(arg.right)
                ):
                    head = ctx.text(node.func)
                    x, eps = ctx.text(arg.left), ctx.text(arg.right)
                    yield Proposal(node, ((node, f"({head}({x}) + {eps})"),), "ε moved outside the root")
                    yield Proposal(node, ((node, f"{head}({x})"),), "ε dropped")
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and _is_eps(node.right):
                root = node.left
                if _sqrt_call(root) or _is_call(root, "sqrt"):
                    eps = ctx.text(node.right)
                    if isinstance(root.func, ast.Attribute) and not isinstance(root.func.value, ast.Name):
                        x = ctx.text(root.func.value)  # x.sqrt()
                        inside = f"({x} + {eps}).sqrt()"
                    elif root.args:
                        inside = f"{ctx.text(root.func)}({ctx.text(root.args[0])} + {eps})"
                    else:
                        x = ctx.text(root.func.value)
                        inside = f"({x} + {eps}).sqrt()"
                    yield Proposal(node, ((node, inside),), "ε moved inside the root")
                    yield Proposal(node, ((node, ctx.text(root)),), "ε dropped")


_TANH_GELU = "torch.tanh(math.sqrt(2.0 / math.pi) * ({x} + 0.044715 * {x} ** 3))"


class GeluForm(Operator):
    name = "gelu-form"
    description = "GELU erf ↔ tanh: erf(x/√2) ↔ tanh(√(2/π)(x + 0.044715 x³)); F.gelu approximate flipped"

    def mutations(self, ctx):
        for _, node in ctx.nodes():
            if _is_call(node, "erf") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Div):
                    x = _atom(ctx, arg.left)
                    yield Proposal(node, ((node, _TANH_GELU.format(x=x)),), "exact GELU → tanh approximation")
            elif _is_call(node, "tanh") and node.args and "0.044715" in ctx.text(node.args[0]):
                inner = next(
                    (
                        n
                        for n in ast.walk(node.args[0])
                        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add)
                    ),
                    None,
                )
                if inner is not None:
                    x = _atom(ctx, inner.left)
                    yield Proposal(node, ((node, f"torch.erf({x} / math.sqrt(2.0))"),), "tanh GELU → exact")
            elif _is_call(node, "gelu"):
                kw = _kw(node, "approximate")
                if kw is not None:
                    yield Proposal(node, ((kw, 'approximate="none"'),), "F.gelu tanh → exact")
                elif node.args:
                    call = ctx.text(node)
                    yield Proposal(
                        node, ((node, f'{call[:-1]}, approximate="tanh")'),), "F.gelu exact → tanh"
                    )


def _normed_inputs(ctx: Context, fn: ast.FunctionDef) -> dict[str, tuple[str, ast.Call, int]]:
    """Per residual stream h: (the text standing for LN(h), the LN call, its line), from ``z = LN(h, …)``
    assignments or inline ``LN(h, …)`` calls in ``fn``."""
    out: dict[str, tuple[str, ast.Call, int]] = {}
    for node in ast.walk(fn):
        if _is_layer_norm(node) and node.args and isinstance(node.args[0], ast.Name):
            h = node.args[0].id
            parent = ctx.parent.get(node)
            if (
                isinstance(parent, ast.Assign)
                and len(parent.targets) == 1
                and isinstance(parent.targets[0], ast.Name)
            ):
                out.setdefault(h, (parent.targets[0].id, node, node.lineno))
            else:
                out.setdefault(h, (ctx.text(node), node, node.lineno))
    return out


def _residual_adds(ctx: Context, fn: ast.FunctionDef):
    """``h + sublayer`` additions of a pre-LN block: h a Name whose LN appears earlier in the function."""
    normed = _normed_inputs(ctx, fn)
    for node in ast.walk(fn):
        if (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Add)
            and isinstance(node.left, ast.Name)
            and isinstance(node.right, (ast.Call, ast.Name))
            and node.left.id in normed
            and normed[node.left.id][2] <= node.lineno
            and not _is_layer_norm(ctx.parent.get(node))
        ):
            yield node, normed[node.left.id]


class ResidualSource(Operator):
    name = "residual-source"
    description = "residual taken from the normed input: H + f(LN(H)) → LN(H) + f(LN(H))"

    def mutations(self, ctx):
        for fn in ctx.functions():
            for node, (z, _, _) in sorted(_residual_adds(ctx, fn), key=lambda p: p[0].lineno):
                yield Proposal(node, ((node.left, z),), f"residual from {z} instead of {node.left.id}")


class LNPlacement(Operator):
    name = "ln-placement"
    description = "pre-LN ↔ post-LN: H + f(LN(H)) ↔ LN(H + f(H))"

    def mutations(self, ctx):
        for fn in ctx.functions():
            # pre → post: h + f(…z…) with z = LN(h, rest) → LN(h + f(…h…), rest)
            for node, (z, ln, _) in sorted(_residual_adds(ctx, fn), key=lambda p: p[0].lineno):
                h = node.left.id
                rest = ", ".join(ctx.text(a) for a in [*ln.args[1:], *ln.keywords])
                head = ctx.text(ln.func)
                if isinstance(node.right, ast.Call):
                    body = _replace_within(
                        ctx, node, [n for n in ast.walk(node.right) if _same(ctx, n, z)], h
                    )
                    yield Proposal(node, ((node, f"{head}({body}, {rest})"),), "pre-LN sublayer made post-LN")
                else:  # h + a, a from a call on an inline LN(h, …) (gpt2.block): two edits
                    if ctx.text(ln) != z:
                        continue
                    yield Proposal(
                        node,
                        ((ln, h), (node, f"{head}({ctx.text(node)}, {rest})")),
                        "pre-LN sublayer made post-LN",
                    )
            # post → pre: LN(h + f(…h…), rest) → h + f(…LN(h, rest)…)
            for node in ast.walk(fn):
                if not (_is_layer_norm(node) and node.args and isinstance(node.args[0], ast.BinOp)):
                    continue
                add = node.args[0]
                if not (
                    isinstance(add.op, ast.Add)
                    and isinstance(add.left, ast.Name)
                    and isinstance(add.right, ast.Call)
                ):
                    continue
                h = add.left.id
                uses = [a for a in add.right.args if isinstance(a, ast.Name) and a.id == h]
                if not uses:
                    continue
                rest = ", ".join(ctx.text(a) for a in [*node.args[1:], *node.keywords])
                body = _replace_within(ctx, add, uses[:1], f"{ctx.text(node.func)}({h}, {rest})")
                yield Proposal(node, ((node, body),), "post-LN sublayer made pre-LN")
