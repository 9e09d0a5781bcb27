"""What a target's source code says, read where its names and shapes cannot tell: the outputs it returns by
name, a causal mask it builds itself, the order an LSTM cell unpacks its gates in, a literal ε. Never values.
"""

import ast
import inspect
import itertools
import re
import textwrap
from dataclasses import dataclass

import torch

from ._names import _GATE_NAMES, TORCH_TUPLES


def _function_def(target) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The parsed definition of a function (or method), or None where its source cannot be read."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(target)))
    except (OSError, TypeError, SyntaxError):
        return None
    first = tree.body[0] if tree.body else None
    return first if isinstance(first, ast.FunctionDef | ast.AsyncFunctionDef) else None


def _torch_class(obj: object) -> str | None:
    """The name of torch.nn's class ``obj`` is an instance of (not a subclass written elsewhere), or None."""
    cls = type(obj)
    return cls.__name__ if cls.__module__.startswith("torch.nn.") else None


def _return_names(fn) -> list[str] | None:
    """The names ``fn``'s code returns as a tuple (``return h_next, c_next``), when every return statement
    of its own body returns the same names; None otherwise (what the code says, never values)."""
    body = _function_def(getattr(fn, "__lmspec_source__", fn))
    if body is None:
        return None
    found = set()
    for node in ast.walk(body):
        if isinstance(node, ast.FunctionDef | ast.Lambda) and node is not body:
            return None  # a nested function's returns are not the target's
        if isinstance(node, ast.Return):
            value = node.value
            if not isinstance(value, ast.Tuple) or not all(isinstance(e, ast.Name) for e in value.elts):
                return None
            found.add(tuple(e.id for e in value.elts))
    return list(found.pop()) if len(found) == 1 else None


def _unpacked_arguments(fn) -> dict[str, list[str]]:
    """The arguments ``fn``'s code unpacks into names (``h, c = state``, ``hx, cx = hidden``): argument ->
    the names, in order, where the code unpacks it once (what the code says, never values). A module's
    forward that hands its arguments to ``super().forward(…)`` says what its parent's says."""
    target = getattr(fn, "__lmspec_source__", fn)
    found = _unpacked_in(target)
    owner = getattr(target, "__self__", None)
    if _torch_class(owner) in TORCH_TUPLES:
        return dict(TORCH_TUPLES[_torch_class(owner)])  # torch's code is C++: its documentation says
    if isinstance(owner, torch.nn.Module):
        chain = [
            k for k in type(owner).__mro__ if "forward" in vars(k) and k.__module__.split(".")[0] != "torch"
        ]
        for klass, parent in itertools.pairwise(chain):
            if not _calls_super_forward(klass):
                break
            for arg, names in _unpacked_in(vars(parent)["forward"]).items():
                found.setdefault(arg, names)
    return found


def _unpacked_in(target) -> dict[str, list[str]]:
    """The arguments one function's own code unpacks once into names (see _unpacked_arguments)."""
    body = _function_def(target)
    if body is None:
        return {}
    arguments = {a.arg for a in (*body.args.posonlyargs, *body.args.args, *body.args.kwonlyargs)}
    found: dict[str, list[list[str]]] = {}
    for node in ast.walk(body):
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.value, ast.Name)):
            continue
        names, value = node.targets[0], node.value.id
        if (
            value in arguments
            and isinstance(names, ast.Tuple)
            and all(isinstance(e, ast.Name) for e in names.elts)
        ):
            found.setdefault(value, []).append([e.id for e in names.elts])
    return {arg: ways[0] for arg, ways in found.items() if len(ways) == 1}


#: What code that builds the causal mask itself says: SDPA's flag, a lower-triangular matrix of its own.
_CAUSAL_CODE = re.compile(r"is_causal\s*=\s*True|\btril\(|\btriu\(")


def _says_causal(fn, label: str) -> bool:
    """Whether the target says it is causal: its own name (function, class or the name it is audited under),
    the class name of a module inside it (nanoGPT's Block holds a CausalSelfAttention), or its code
    (``is_causal=True``, a ``tril`` of its own) — what the code says, never what its values do."""
    names = [getattr(fn, "__qualname__", ""), getattr(fn, "__name__", ""), label]
    source = getattr(fn, "__lmspec_source__", fn)
    module = getattr(source, "__self__", None)
    if isinstance(module, torch.nn.Module):
        classes = {type(m) for m in module.modules() if type(m).__module__.split(".")[0] != "torch"}
        names += [c.__name__ for c in classes]
        targets = list(classes)
    else:
        targets = [source]
    if any("causal" in str(n).lower() for n in names):
        return True
    for target in targets:
        try:
            if _CAUSAL_CODE.search(inspect.getsource(target)):
                return True
        except (OSError, TypeError):
            continue
    return False


_UNPACKED = re.compile(r"(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*=\s*[^\n]*(?:chunk|split)\(")


def _gate_order(cls: type) -> list[str] | None:
    """The order of the four gates stacked in an LSTM cell's weights, read from how its code unpacks them
    (``i, f, g, o = gates.chunk(4, 1)``: torch's order; ``f, i, o, g = …``): what the code says, never
    values. None where no method unpacks four gates by name — of the class itself, or of those it derives
    from up to the one whose forward runs (a parent's forward that a subclass replaces says nothing, unless
    the subclass's calls it: ``super().forward(x, state)``)."""
    sources = []
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] == "torch":
            break
        try:
            sources.append(inspect.getsource(klass))
        except (OSError, TypeError):
            pass
        if "forward" in vars(klass) and not _calls_super_forward(klass):
            break
    for names in _UNPACKED.findall("\n".join(sources)):
        order = [next((g for g, known in _GATE_NAMES.items() if n.lower() in known), None) for n in names]
        if None not in order and len(set(order)) == 4:
            return order
    return None


def weight_side(cls: type, attr: str) -> str | None:
    """How a class's code multiplies by its raw parameter ``self.<attr>``: ``"in_out"`` where it is the
    right factor (``x @ self.W``, ``torch.matmul(x, self.W)``, ``self.W.T @ x``), ``"out_in"`` where it is the
    left one or transposed on the right (``self.W @ x``, ``x @ self.W.T``, ``F.linear(x, self.W)``). None
    where the code says neither, or both: what the code says, never values. The methods that run are read:
    the class's own and those it inherits (up to torch's classes), each name from the first class that
    defines it, as Python resolves it (a subclass may replace one method only)."""
    methods: dict[str, ast.AST] = {}
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] in ("torch", "builtins"):
            break
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            return None
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                methods.setdefault(node.name, node)
    tree = ast.Module(body=list(methods.values()), type_ignores=[])

    def factor(node: ast.AST) -> bool | None:  # self.W → False, self.W.T / self.W.t() → True, else None
        if isinstance(node, ast.Call) and not node.args and isinstance(node.func, ast.Attribute):
            if node.func.attr == "t":
                return True if factor(node.func.value) is False else None
        if isinstance(node, ast.Attribute) and node.attr == "T":
            return True if factor(node.value) is False else None
        is_self = (
            isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
        )
        return False if is_self and node.attr == attr else None

    sides = set()
    for node in ast.walk(tree):
        pairs = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            pairs.append((node.left, node.right))
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func).rsplit(".", 1)[-1]
            if name in ("matmul", "mm") and len(node.args) == 2:  # torch.matmul(x, self.W)
                pairs.append((node.args[0], node.args[1]))
            elif name in ("matmul", "mm") and len(node.args) == 1 and isinstance(node.func, ast.Attribute):
                pairs.append((node.func.value, node.args[0]))  # x.matmul(self.W)
            elif name == "linear" and len(node.args) >= 2 and factor(node.args[1]) is False:
                sides.add("out_in")
        for left, right in pairs:
            if (t := factor(right)) is not None:
                sides.add("out_in" if t else "in_out")
            if (t := factor(left)) is not None:
                sides.add("in_out" if t else "out_in")
    return sides.pop() if len(sides) == 1 else None


def stepped_axis(fn) -> int | None:
    """The axis of an argument a function's code steps along in a Python loop: 0 for ``for X in inputs``,
    ``inputs.unbind(0)`` or ``inputs[t]`` inside ``for t in …``; 1 for ``inputs.unbind(1)`` or
    ``inputs[:, t]``. None where it steps along none, or along both: what the code says, never values."""
    node = _function_def(fn)
    if node is None:
        return None
    args = {a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)} - {"self"}
    axes = set()
    for loop in (n for n in ast.walk(node) if isinstance(n, ast.For)):
        it = loop.iter
        if isinstance(it, ast.Name) and it.id in args:
            axes.add(0)
        elif isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute) and it.func.attr == "unbind":
            if isinstance(it.func.value, ast.Name) and it.func.value.id in args:
                dims = [*it.args[:1], *(k.value for k in it.keywords if k.arg == "dim")]
                axes.add(_int_literal(dims[0]) if dims else 0)
        steps = {t.id for t in ast.walk(loop.target) if isinstance(t, ast.Name)}
        for sub in (n for n in ast.walk(loop) if isinstance(n, ast.Subscript)):
            if not (isinstance(sub.value, ast.Name) and sub.value.id in args):
                continue
            index = sub.slice.elts if isinstance(sub.slice, ast.Tuple) else [sub.slice]
            at = [k for k, i in enumerate(index) if isinstance(i, ast.Name) and i.id in steps]
            if len(at) == 1 and all(isinstance(i, ast.Slice) for i in index[: at[0]]):
                axes.add(at[0])
    return axes.pop() if len(axes) == 1 and None not in axes else None


def _calls_super_forward(klass: type) -> bool:
    """Whether ``klass.forward`` runs its parent's (``super().forward(…)``): the parent's code then says
    what the parent's says."""
    try:
        return "super().forward(" in inspect.getsource(vars(klass)["forward"])
    except (OSError, TypeError):
        return False


def _layer_norm_calls(tree: ast.AST):
    """Each ``layer_norm(input, shape, weight, bias, eps)`` call in ``tree``: the ε it passes as a number,
    ``"default"`` where it passes none, None where it passes something else (a name)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not ast.unparse(node.func).endswith("layer_norm"):
            continue
        given = [k.value for k in node.keywords if k.arg == "eps"] + node.args[4:5]
        if not given:
            yield "default"
        elif isinstance(given[0], ast.Constant) and isinstance(given[0].value, float | int):
            yield float(given[0].value)
        else:
            yield None


def _layer_norm_literal(cls: type) -> float | None:
    """The ε a class's code passes to ``layer_norm(input, shape, weight, bias, eps)`` as a number."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return None
    return next((eps for eps in _layer_norm_calls(tree) if isinstance(eps, float)), None)


#: torch's documented ε of ``F.layer_norm`` and ``nn.LayerNorm``.
TORCH_LAYER_NORM_EPS = 1e-5


def function_eps(fn) -> tuple[float, str] | None:
    """The ε a function fixes for its layer norm, and where it says so: its own ``eps`` argument's default
    (``eps=1e-5``), the number it passes to ``layer_norm(…, eps)``, or torch's documented 1e-5 where it calls
    ``F.layer_norm`` without one. None where its code says none of these."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    for name in ("eps", "epsilon", "layer_norm_eps", "layer_norm_epsilon", "variance_epsilon"):
        default = getattr(params.get(name), "default", None)
        if isinstance(default, float):
            return default, f"its argument's default, {name}={default:g}"
    body = _function_def(getattr(fn, "__lmspec_source__", fn))
    if body is None:
        return None
    for eps in _layer_norm_calls(body):
        if isinstance(eps, float):
            return eps, f"the ε it passes to layer_norm, {eps:g}"
        if eps == "default":
            return TORCH_LAYER_NORM_EPS, f"torch's default ε of F.layer_norm, {TORCH_LAYER_NORM_EPS:g}"
    return None


#: Calls that score labels and skip an ignore index (torch's, whose documented default is -100).
_LABEL_LOSSES = ("cross_entropy", "nll_loss", "CrossEntropyLoss", "NLLLoss")
TORCH_IGNORE_INDEX = -100


def _int_literal(node: ast.AST) -> int | None:
    """``-100``, ``-1``, ``0`` as written in code; None for anything else."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _int_literal(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


def _sliced_from_one(node: ast.AST, name: str) -> bool:
    """``name[..., 1:]`` or ``name[:, 1:]``: the labels shifted left by one (each column scored on the next
    id), the slice on the last axis."""
    if not (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == name):
        return False
    index = node.slice.elts[-1] if isinstance(node.slice, ast.Tuple) else node.slice
    return (
        isinstance(index, ast.Slice)
        and _int_literal(index.lower) == 1
        and index.upper is None
        and index.step is None
    )


def _labels_like(name: str, labels_arg: str) -> bool:
    """Whether a name in a loss's code holds its labels: the argument itself, or a name that says so
    (``shift_labels``, ``flat_targets``)."""
    low = name.lower()
    return name == labels_arg or "label" in low or "target" in low


@dataclass(frozen=True)
class LossCode:
    """What a loss's code says about its labels: it shifts them inside (``labels[..., 1:]``), the values it
    marks padding with (``ignore_index=-1`` passed to cross_entropy, ``targets != -1``), whether it calls a
    torch loss that skips an ignore index without naming one (torch's default, -100), and the reductions
    it names (``reduction="sum"``)."""

    shifts: bool = False
    ignore_values: frozenset[int] = frozenset()
    torch_default: bool = False
    reductions: frozenset[str] = frozenset()


def loss_code(fn, labels_arg: str, depth: int = 1) -> LossCode:
    """Read ``fn``'s code (and, ``depth`` levels down, the code of the module-level functions it hands the
    labels to: a batch perplexity's ``exp(causal_lm_loss(logits, labels))``) for its label conventions
    (LossCode). What the code says, never values."""
    source = getattr(fn, "__lmspec_source__", fn)
    body = _function_def(source)
    if body is None:
        return LossCode()
    shifts, values, default, reductions = False, set(), False, set()
    scope = getattr(inspect.unwrap(source), "__globals__", {})
    for node in ast.walk(body):
        shifts = shifts or _sliced_from_one(node, labels_arg)
        if (
            isinstance(node, ast.Compare)
            and len(node.ops) == 1
            and isinstance(node.ops[0], ast.Eq | ast.NotEq)
        ):
            sides = (node.left, node.comparators[0])
            named = [s for s in sides if isinstance(s, ast.Name) and _labels_like(s.id, labels_arg)]
            literal = [v for s in sides if (v := _int_literal(s)) is not None]
            if named and literal and literal[0] < 0:  # ``targets != -1``: a pad value no id can be
                values.add(literal[0])
        if not isinstance(node, ast.Call):
            continue
        called = ast.unparse(node.func).rsplit(".", 1)[-1]
        if called in _LABEL_LOSSES:
            given = {k.arg: k.value for k in node.keywords}
            if "ignore_index" in given:
                if (value := _int_literal(given["ignore_index"])) is not None:
                    values.add(value)
            else:
                default = True
            if isinstance(given.get("reduction"), ast.Constant):
                reductions.add(str(given["reduction"].value))
        callee = scope.get(called) if isinstance(node.func, ast.Name) else None
        if depth > 0 and inspect.isfunction(callee):
            try:
                params = list(inspect.signature(callee).parameters)
            except (TypeError, ValueError):
                continue
            passed = [params[i] for i, a in enumerate(node.args[: len(params)])
                      if isinstance(a, ast.Name) and a.id == labels_arg]  # fmt: skip
            if passed:
                inner = loss_code(callee, passed[0], depth - 1)
                shifts = shifts or inner.shifts
                values |= inner.ignore_values
                default = default or inner.torch_default
                reductions |= inner.reductions
    return LossCode(shifts, frozenset(values), default, frozenset(reductions))
