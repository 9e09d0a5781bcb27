"""Mutation operators written for tensor code, applied to the AST of impl/.

Each operator is a class with a ``name``, a one-line ``description`` and ``mutations(ctx)``, which walks the
module's AST and yields, per site, the mutated variants of that site. A mutant replaces only the source
segment of the node(s) it changes (``lineno``/``col_offset``/``end_lineno``/``end_col_offset``, byte offsets
of the UTF-8 source), so its diff is a line or two, never a re-unparsed file.

Sites are looked for only in the code the verifier reaches: the functions registered with ``@implements``
and every impl function they reference, transitively (``reachable``). Module classes and helpers outside
that graph (``GPT2.generate``, ``LSTMCell.from_torch``, ``mlm_mask``) are held by tests/impl, not by
``lmspec verify``, so a mutant there says nothing about the verifier.
"""

import ast
import difflib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .sandbox import package_dir

# --- mutants ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """Replace bytes ``start:end`` of the UTF-8 source by ``text``."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Mutant:
    id: str  # "attention/softmax-axis/1": module, operator, rank among that operator's mutants there
    file: str  # "attention.py", relative to impl/
    operator: str
    function: str  # the enclosing function's name
    line: int
    column: int  # the site's column (with ``line``, it tells sites apart)
    description: str
    original: str  # the replaced segment(s), " … " between several
    mutated: str  # their replacement(s)
    edits: tuple[Edit, ...] = field(repr=False)

    @property
    def module(self) -> str:
        return self.file.removesuffix(".py").replace("/", ".")

    def apply(self, source: str) -> str:
        data = source.encode("utf-8")
        for e in sorted(self.edits, key=lambda e: e.start, reverse=True):
            data = data[: e.start] + e.text.encode("utf-8") + data[e.end :]
        return data.decode("utf-8")

    def diff(self, source: str) -> str:
        """The unified diff of the mutant against the source (impl/FILE on both sides)."""
        lines = difflib.unified_diff(
            source.splitlines(keepends=True),
            self.apply(source).splitlines(keepends=True),
            f"a/impl/{self.file}",
            f"b/impl/{self.file}",
            n=1,
        )
        return "".join(lines)

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "file": self.file,
            "operator": self.operator,
            "function": self.function,
            "line": self.line,
            "description": self.description,
            "original": self.original,
            "mutated": self.mutated,
        }


# --- the module being mutated ----------------------------------------------------------------------


class Context:
    """One impl module: its source, AST, parents, and the functions the verifier reaches."""

    def __init__(self, file: str, source: str, reached: set[str] | None = None) -> None:
        self.file = file
        self.source = source
        self.data = source.encode("utf-8")
        self.tree = ast.parse(source)
        starts, pos = [], 0
        for line in self.data.splitlines(keepends=True):
            starts.append(pos)
            pos += len(line)
        starts.append(pos)
        self._starts = starts
        self.parent: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node
        self.reached = reached

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self._starts[node.lineno - 1] + node.col_offset,
            self._starts[node.end_lineno - 1] + node.end_col_offset,
        )

    def text(self, node: ast.AST) -> str:
        a, b = self.span(node)
        return self.data[a:b].decode("utf-8")

    def function(self, node: ast.AST) -> ast.FunctionDef | None:
        """The innermost function holding ``node``."""
        while node in self.parent:
            node = self.parent[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return node
        return None

    def functions(self) -> Iterator[ast.FunctionDef]:
        """The module-level functions the verifier reaches (all of them when ``reached`` is None)."""
        for node in self.tree.body:
            if isinstance(node, ast.FunctionDef) and (self.reached is None or node.name in self.reached):
                yield node

    def nodes(self) -> Iterator[tuple[ast.FunctionDef, ast.AST]]:
        """Every node inside a reached function, in source order, with its function."""
        for fn in self.functions():
            body = [n for stmt in fn.body for n in ast.walk(stmt)]
            for node in sorted(body, key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0))):
                yield fn, node


@dataclass(frozen=True)
class Proposal:
    """One mutation of one site: the node that anchors it, the edits, and a short description."""

    site: ast.AST
    edits: tuple[tuple[ast.AST, str], ...]  # (node whose segment is replaced, replacement)
    description: str


# --- AST helpers ----------------------------------------------------------------------------------


def _attr_name(func: ast.AST) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _is_call(node: ast.AST, *names: str) -> bool:
    return isinstance(node, ast.Call) and _attr_name(node.func) in names


def _kw(call: ast.Call, name: str) -> ast.keyword | None:
    return next((k for k in call.keywords if k.arg == name), None)


def _int(node: ast.AST | None) -> int | None:
    """The value of an integer literal (``-1`` included), else None."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _int(node.operand)
        return None if inner is None else -inner
    return None


def _atom(ctx: Context, node: ast.AST) -> str:
    """The node's text, parenthesised unless it binds tighter than any operator."""
    text = ctx.text(node)
    simple = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant)
    return text if isinstance(node, simple) else f"({text})"


def _plus(ctx: Context, node: ast.AST, delta: int) -> str:
    """``node + delta`` written as a literal when the node is one, else ``expr ± 1``."""
    value = _int(node)
    if value is not None:
        return str(value + delta)
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, (ast.Add, ast.Sub))
        and _int(node.right) is not None
    ):
        c = _int(node.right) * (1 if isinstance(node.op, ast.Add) else -1) + delta
        left = ctx.text(node.left)
        return left if c == 0 else f"{left} {'+' if c > 0 else '-'} {abs(c)}"
    text = ctx.text(node)
    if isinstance(node, (ast.BinOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Lambda)):
        text = f"({text})"
    return f"{text} {'+' if delta > 0 else '-'} {abs(delta)}"


def _contains(node: ast.AST, kind: type) -> bool:
    return any(isinstance(n, kind) for n in ast.walk(node))


def _is_transpose(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute) and node.attr in ("T", "mT") and isinstance(node.ctx, ast.Load):
        return True
    return _is_call(node, "transpose", "swapaxes") and len(getattr(node, "args", ())) >= 2


def _is_layer_norm(node: ast.AST) -> bool:
    return _is_call(node, "layer_norm", "LayerNorm", "ln")


# --- operators ------------------------------------------------------------------------------------


class Operator:
    name = ""
    description = ""
    #: why it finds no site in impl/, where that is so (documented instead of tested)
    no_site_reason: str | None = None

    def mutations(self, ctx: Context) -> Iterator[Proposal]:
        raise NotImplementedError


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


def _sqrt_call(node: ast.AST) -> bool:
    return _is_call(node, "sqrt") and isinstance(node.func, ast.Attribute) and node.args != []


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


def _where_call(node: ast.AST) -> bool:
    return _is_call(node, "where") and len(node.args) == 3


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


def _same(ctx: Context, node: ast.AST, text: str) -> bool:
    return isinstance(node, (ast.Name, ast.Call)) and hasattr(node, "lineno") and ctx.text(node) == text


def _replace_within(ctx: Context, outer: ast.AST, inner: Sequence[ast.AST], text: str) -> str:
    """The source of ``outer`` with each node of ``inner`` replaced by ``text``."""
    a, b = ctx.span(outer)
    data = ctx.data[a:b]
    for node in sorted(inner, key=lambda n: ctx.span(n)[0], reverse=True):
        s, e = ctx.span(node)
        data = data[: s - a] + text.encode("utf-8") + data[e - a :]
    return data.decode("utf-8")


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


OPERATORS: tuple[Operator, ...] = (
    SoftmaxAxis(),
    TransposeDrop(),
    TransposeAdd(),
    Scale(),
    CausalDiagonal(),
    MaskPolarity(),
    FillValue(),
    NormAxis(),
    Bessel(),
    Epsilon(),
    GeluForm(),
    ResidualSource(),
    LNPlacement(),
    LabelShift(),
    PaddingCounted(),
    GateProduct(),
    SinCos(),
    SliceOffByOne(),
)
OPERATOR_NAMES = tuple(op.name for op in OPERATORS)


def operator(name: str) -> Operator:
    for op in OPERATORS:
        if op.name == name:
            return op
    raise KeyError(name)


# --- impl/: reachability and the families a module feeds -----------------------------------------


def impl_dir() -> Path:
    """impl/'s directory, found without importing it (importing impl imports torch)."""
    return package_dir("impl")


def module_sources(root: Path) -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(root.glob("*.py"))}


def _graph(sources: dict[str, str]):
    """The module-level definitions of impl/ and the registered roots: (defs, imports, roots), roots being
    ``(module, function, equation id)`` of every ``@implements("id")`` function."""
    defs: dict[str, dict[str, ast.AST]] = {}
    imports: dict[str, dict[str, tuple[str, str]]] = {}
    roots: list[tuple[str, str, str]] = []
    for mod, src in sources.items():
        tree = ast.parse(src)
        defs[mod], imports[mod] = {}, {}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                defs[mod][node.name] = node
                for d in node.decorator_list:
                    if _is_call(d, "implements") and d.args and isinstance(d.args[0], ast.Constant):
                        roots.append((mod, node.name, str(d.args[0].value)))
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name) and node.value is not None:
                        defs[mod][t.id] = node.value
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("impl."):
                for alias in node.names:
                    imports[mod][alias.asname or alias.name] = (node.module.split(".", 1)[1], alias.name)
    return defs, imports, roots


def _reach(defs, imports, start: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Every (module, name) that ``start`` names, transitively (functions and module-level values)."""
    seen: set[tuple[str, str]] = set()
    todo = list(start)
    while todo:
        mod, name = todo.pop()
        if (mod, name) in seen or name not in defs.get(mod, {}):
            continue
        seen.add((mod, name))
        for n in ast.walk(defs[mod][name]):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                if n.id in defs[mod]:
                    todo.append((mod, n.id))
                elif n.id in imports[mod]:
                    todo.append(imports[mod][n.id])
    return {(m, n) for m, n in seen if isinstance(defs[m][n], ast.FunctionDef)}


def reachable(sources: dict[str, str]) -> dict[str, set[str]]:
    """Per module, the names of its module-level functions that the verifier reaches: those decorated with
    ``@implements`` and, transitively, every impl function (or module-level value's function) they name."""
    defs, imports, roots = _graph(sources)
    out: dict[str, set[str]] = {mod: set() for mod in sources}
    for mod, name in _reach(defs, imports, [(m, f) for m, f, _ in roots]):
        out[mod].add(name)
    return out


_REACH_CACHE: dict[int, list[tuple[str, set[tuple[str, str]]]]] = {}


def _reach_table(sources: dict[str, str]) -> list[tuple[str, set[tuple[str, str]]]]:
    """(equation id, the functions its registered function reaches) for every root; cached per sources."""
    key = hash(tuple(sorted(sources.items())))
    if key not in _REACH_CACHE:
        defs, imports, roots = _graph(sources)
        _REACH_CACHE[key] = [(eq, _reach(defs, imports, [(m, f)])) for m, f, eq in roots]
    return _REACH_CACHE[key]


def equations_reaching(module: str, function: str, sources: dict[str, str]) -> list[str]:
    """The equation ids whose registered function reaches ``module.function``: those of the module's own
    family first, then the others in the registry's family order."""
    hits = [eq for eq, reached in _reach_table(sources) if (module, function) in reached]
    order = family_order(sources)
    rank = {fam: i for i, fam in enumerate(order)}
    return sorted(hits, key=lambda eq: (eq.split(".")[0] != module, rank.get(eq.split(".")[0], len(order))))


def family_order(sources: dict[str, str]) -> list[str]:
    """The families in the registry's order (impl/_registry.py's FAMILIES)."""
    tree = ast.parse(sources.get("_registry", ""))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "FAMILIES" for t in node.targets
        ):
            return [e.value for e in node.value.elts]  # type: ignore[attr-defined]
    return sorted(m for m in sources if not m.startswith("_"))


def families_for(module: str, sources: dict[str, str]) -> list[str]:
    """The family of ``module`` first, then every family whose impl module imports it, transitively."""
    key = (module, hash(tuple(sorted(sources.items()))))
    if key not in _FAMILY_CACHE:
        _FAMILY_CACHE[key] = _families_for(module, sources)
    return list(_FAMILY_CACHE[key])


_FAMILY_CACHE: dict[tuple[str, int], list[str]] = {}


def _families_for(module: str, sources: dict[str, str]) -> list[str]:
    importers: dict[str, set[str]] = {m: set() for m in sources}
    for mod, src in sources.items():
        for node in ast.parse(src).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("impl."):
                dep = node.module.split(".", 1)[1]
                if dep in importers:
                    importers[dep].add(mod)
    seen, todo = {module}, [module]
    while todo:
        for m in importers.get(todo.pop(), ()):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    order = family_order(sources)
    rest = [f for f in order if f in seen and f != module]
    return [module, *rest] if module in order else rest


# --- mutants of impl/ -----------------------------------------------------------------------------


def mutants_of(
    file: str,
    source: str,
    operators: Sequence[Operator] = OPERATORS,
    reached: set[str] | None = None,
) -> list[Mutant]:
    """Every mutant of one module by the given operators, in operator then source order."""
    ctx = Context(file, source, reached)
    module = file.removesuffix(".py")
    out: list[Mutant] = []
    for op in operators:
        seen: set[tuple] = set()
        rank = 0
        for p in op.mutations(ctx):
            edits = tuple(Edit(*ctx.span(node), text) for node, text in p.edits)
            key = tuple((e.start, e.end, e.text) for e in edits)
            if key in seen or all(ctx.data[e.start : e.end].decode() == e.text for e in edits):
                continue
            seen.add(key)
            rank += 1
            fn = ctx.function(p.site)
            out.append(
                Mutant(
                    id=f"{module}/{op.name}/{rank}",
                    file=file,
                    operator=op.name,
                    function=fn.name if fn else "",
                    line=p.site.lineno,
                    column=p.site.col_offset,
                    description=p.description,
                    original=" … ".join(ctx.text(node) for node, _ in p.edits),
                    mutated=" … ".join(text for _, text in p.edits),
                    edits=edits,
                )
            )
    return out


def discover(
    files: Sequence[str] | None = None,
    operators: Sequence[Operator] = OPERATORS,
    root: Path | None = None,
    sources: dict[str, str] | None = None,
) -> list[Mutant]:
    """The mutants of impl/ (or of ``files``, names relative to impl/), in reached code only."""
    root = root or impl_dir()
    sources = sources if sources is not None else module_sources(root)
    reached = reachable(sources)
    names = files if files is not None else [f"{m}.py" for m in sources if not m.startswith("_")]
    out: list[Mutant] = []
    for file in names:
        mod = file.removesuffix(".py")
        out += mutants_of(file, sources[mod], operators, reached.get(mod, set()))
    return out


def sites(mutants: Sequence[Mutant]) -> dict[str, int]:
    """Sites per operator: the distinct nodes its mutants change (several mutants may share one)."""
    per: dict[str, set] = {op.name: set() for op in OPERATORS}
    for m in mutants:
        per[m.operator].add((m.file, m.line, m.column))
    return {k: len(v) for k, v in per.items()}
