"""What mutation operators work on: the module being mutated (its AST and byte offsets), a proposal, a
mutant, and the Operator base class with the AST helpers the operators share.

A mutant replaces only the source segment of the node(s) it changes (``lineno``/``col_offset``/
``end_lineno``/``end_col_offset``, byte offsets of the UTF-8 source), so its diff is a line or two, never a
re-unparsed file.
"""

import ast
import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

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


def _sqrt_call(node: ast.AST) -> bool:
    return _is_call(node, "sqrt") and isinstance(node.func, ast.Attribute) and node.args != []


def _where_call(node: ast.AST) -> bool:
    return _is_call(node, "where") and len(node.args) == 3


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
