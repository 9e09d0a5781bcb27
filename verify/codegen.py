"""Code generation: an equation printed as a batched PyTorch function from its SymPy definition.

SymPy's TorchPrinter prints unbatched expressions (``Q.permute(1, 0)``), sends Python-int size expressions
through torch (``torch.sqrt(d_k)`` fails on an int) and knows none of our operators. ``TorchCodePrinter``
fixes these: sizes are Python ints read from the input shapes and printed with ``math``; transposes swap the
last two axes, so square matrices and leading batch axes are handled alike; products use ``@``; operators
of spec/ops.py print themselves through ``_torchcode``; family definitions become loops over the index.

The generated function takes and returns spec layout: a matrix as the tutorial orients it, a vector as a
column ``k × 1``, a family stacked on the axis before the matrix axes, any leading batch axes.
"""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import lru_cache

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter
from sympy.printing.pytorch import TorchPrinter

from ..spec import Equation, Family, SpecError
from ..spec.axes import GLOSSARY
from ..spec.tensors import FamilyMember
from . import cache


class _SizePrinter(PythonCodePrinter):
    """Size expressions are Python ints: ``math.sqrt(d_k)``, ``M*d_v``; −∞ is ``-math.inf``."""

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True})

    def _print_NegativeInfinity(self, expr: sp.Expr) -> str:
        return "-math.inf"

    def _print_Infinity(self, expr: sp.Expr) -> str:
        return "math.inf"


class _PointwisePrinter(TorchPrinter):
    """Scalar formulas over a tensor variable: ``torch.tanh(x)``; constant parts as Python floats."""

    def _print(self, expr, **kwargs) -> str:
        if isinstance(expr, sp.Expr) and expr.is_number and not expr.is_Integer:
            return repr(float(expr))
        return super()._print(expr, **kwargs)

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        out = self._print(expr.args[-1].expr)
        for value, cond in reversed(expr.args[:-1]):
            out = f"torch.where({self._print(cond)}, {self._print(value)}, {out})"
        return out


class TorchCodePrinter(TorchPrinter):
    """Prints the matrix expressions of one equation as statements of a batched PyTorch function."""

    def __init__(self, eq: Equation) -> None:
        super().__init__()
        self.eq = eq
        self.lines: list[str] = []
        self.depth = 1
        self._counter = 0
        self._sizes = _SizePrinter()
        self.dtype = "dtype"
        self.device = "device"
        self.family_inputs = {d.name for d in (*eq.inputs, *eq.params) if isinstance(d, Family)}
        self.ascii = {d.name: d.ascii for d in eq.symbols}
        self.callees: dict[str, Equation] = {}

    # -- the statement builder the operators use ------------------------------------------------------
    def fresh(self, prefix: str = "t") -> str:
        self._counter += 1
        return f"_{prefix}{self._counter}"

    def line(self, code: str) -> None:
        self.lines.append("    " * self.depth + code)

    def emit(self, code: str) -> str:
        """Assign ``code`` to a fresh local and return its name (a name is returned as it is)."""
        if code.isidentifier():
            return code
        name = self.fresh()
        self.line(f"{name} = {code}")
        return name

    def expr(self, e: sp.Basic) -> str:
        return self._print(e)

    def size(self, e: sp.Expr) -> str:
        return self._sizes.doprint(sp.sympify(e))

    def scalar(self, e: sp.Expr) -> str:
        return self._sizes.doprint(sp.sympify(e))

    @contextmanager
    def loop(self, var: str, count: sp.Expr) -> Iterator[None]:
        self.line(f"for {var} in range(1, {self.size(count)} + 1):")
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    # -- matrix expressions -------------------------------------------------------------------------
    def _print_MatrixSymbol(self, e: sp.MatrixSymbol) -> str:
        return self.ascii.get(e.name, e.name)

    def _print_FamilyMember(self, e: FamilyMember) -> str:
        name = self.ascii.get(e.name, e.name)
        indices = [self.size(k) for k in e.indices]
        if e.name in self.family_inputs:
            return f"{name}[..., {', '.join(f'{k} - 1' for k in indices)}, :, :]"
        return f"{name}[{', '.join(indices)}]"

    def _print_FamilySlice(self, e) -> str:
        name = self.ascii.get(e.name, e.name)
        if e.name not in self.family_inputs:
            raise SpecError(f"{self.eq.id}: only input or parameter families can be passed on ({e.name})")
        fixed = ", ".join(f"{self.size(k)} - 1" for k in e.indices)
        return f"{name}[..., {fixed}, :, :, :]" if fixed else name

    def pointwise(self, formula: sp.Expr, x: sp.Symbol, tensor: str) -> str:
        """A scalar formula in ``x`` applied entry by entry to the tensor called ``tensor``."""
        placeholder = sp.Symbol(tensor, real=True)
        return "(" + _PointwisePrinter().doprint(formula.subs(x, placeholder)) + ")"

    def call(self, node) -> str:
        """A call of another equation's generated function; its source is emitted with this one."""
        sub = node.equation
        self.callees[function_name(sub)] = sub
        args = []
        for d in (*sub.inputs, *sub.params):
            args.append(self.expr(node.arguments[d.name]))
        renames = node.renames
        for axis in size_arguments(sub):
            symbol = sp.Symbol(axis, integer=True, positive=True)
            args.append(self.size(renames.get(symbol, symbol)))
        position = [o.name for o in sub.outputs].index(node.output)
        return self.emit(f"{function_name(sub)}({', '.join(args)})[{position}]")

    def _print_MatMul(self, e: sp.MatMul) -> str:
        coeff = sp.Mul(*[a for a in e.args if not getattr(a, "is_Matrix", False)])
        mats = " @ ".join(self._print(a) for a in e.args if getattr(a, "is_Matrix", False))
        return f"({mats})" if coeff == 1 else f"({mats}) * ({self.size(coeff)})"

    def _print_MatAdd(self, e: sp.MatAdd) -> str:
        return "(" + " + ".join(self._print(a) for a in e.args) + ")"

    def _print_HadamardProduct(self, e: sp.HadamardProduct) -> str:
        return "(" + " * ".join(self._print(a) for a in e.args) + ")"

    def _print_Transpose(self, e: sp.Transpose) -> str:
        return f"{self._print(e.arg)}.transpose(-1, -2)"


def _size_sources(eq: Equation) -> tuple[dict[str, str], list[str]]:
    """For each axis, an expression reading it from an input's shape; axes no input carries."""
    found: dict[str, str] = {}
    for d in (*eq.inputs, *eq.params):
        dims = list(d.shape)
        if isinstance(d, Family):
            dims = [*d.counts, *dims]
        for k, dim in enumerate(dims):
            if isinstance(dim, sp.Symbol) and dim.name not in found:
                found[dim.name] = f"{d.ascii}.shape[{k - len(dims)}]"
    missing = [a for a in eq.axes if a not in found and a in GLOSSARY]
    return found, missing


def function_name(eq: Equation) -> str:
    return eq.id.replace(".", "_").replace("[", "__").replace("]", "").replace("+", "_and_")


def generate(eq: Equation) -> str:
    """The source of ``def <family>_<name>(...)``: batched PyTorch computing ``eq`` in spec layout."""
    p = TorchCodePrinter(eq)
    sources, missing = _size_sources(eq)
    args = [d.ascii for d in (*eq.inputs, *eq.params)]
    tensors = [d.ascii for d in (*eq.inputs, *eq.params)]
    signature = args + missing
    if tensors:
        p.line(f"dtype, device = {tensors[0]}.dtype, {tensors[0]}.device")
    else:
        signature += ["dtype=torch.float64", "device=None"]
    for axis in eq.axes:
        if axis in sources:
            p.line(f"{axis} = {sources[axis]}")
    defined: set[str] = set()
    for b in eq.bindings:
        name = p.ascii[b.name]
        if isinstance(b.lhs, FamilyMember):
            decl = eq.declared(b.name)
            if name not in defined:
                p.line(f"{name} = {{}}")
                defined.add(name)
            if all(sp.sympify(k).is_Integer for k in b.lhs.indices):
                key = ", ".join(str(k) for k in b.lhs.indices)
                p.line(f"{name}[{key}] = {p.expr(b.rhs)}")
                continue
            with ExitStack() as stack:
                for index, count in zip(b.lhs.indices, decl.counts, strict=True):
                    stack.enter_context(p.loop(str(index), count))
                key = ", ".join(str(k) for k in b.lhs.indices)
                p.line(f"{name}[{key}] = {p.expr(b.rhs)}")
        else:
            p.line(f"{name} = {p.expr(b.rhs)}")
    outs = []
    for o in eq.outputs:
        if isinstance(o, Family):
            if len(o.counts) != 1:
                raise SpecError(f"{eq.id}: a multi-index family ({o.name}) cannot be an output")
            outs.append(f"torch.stack([{o.ascii}[m] for m in range(1, {p.size(o.count)} + 1)], dim=-3)")
        else:
            outs.append(o.ascii)
    p.line(f"return ({', '.join(outs)},)")
    doc = f'    """{eq.title} ({eq.id}), generated from its SymPy definition by lmspec."""'
    header = f"def {function_name(eq)}({', '.join(signature)}):"
    body = "\n".join([header, doc, *p.lines]) + "\n"
    return "\n".join(["import math", "", "import torch", "", "", *_callee_sources(p.callees), body])


def _callee_sources(callees: dict[str, Equation]) -> list[str]:
    """The generated functions an equation calls (and theirs), each once, callees first."""
    out: dict[str, str] = {}

    def visit(sub: Equation) -> None:
        src = generate(sub)
        body = src.split("\n\n\n", 1)[1]  # drop the imports
        for part in body.split("\n\n\n"):
            name = part.split("(", 1)[0].removeprefix("def ")
            if name not in out:
                out[name] = part.rstrip("\n") + "\n\n"

    for sub in callees.values():
        visit(sub)
    return list(out.values())


@lru_cache(maxsize=256)
def compiled(eq: Equation):
    """The generated function of ``eq``, compiled once (its source from the disk cache when it is there)."""
    name = cache.key(eq, (), "torch")
    src = cache.load(name)
    if src is None:
        src = generate(eq)
        cache.store(name, src)
    namespace: dict = {}
    try:
        exec(cache.compile_source(src, f"<lmspec codegen {eq.id}>"), namespace)
    except SyntaxError as exc:  # a bug of the printer, never of the user
        raise SpecError(f"generated code for {eq.id} does not compile: {exc}\n{src}") from exc
    return namespace[function_name(eq)]


def size_arguments(eq: Equation) -> list[str]:
    """Axes the generated function takes as arguments (no input carries them)."""
    return _size_sources(eq)[1]


__all__ = ["TorchCodePrinter", "compiled", "generate"]
