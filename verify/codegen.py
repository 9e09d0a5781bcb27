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
from contextlib import contextmanager
from functools import lru_cache

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter
from sympy.printing.pytorch import TorchPrinter

from spec import Equation, Family, SpecError
from spec.axes import GLOSSARY
from spec.tensors import FamilyMember


class _SizePrinter(PythonCodePrinter):
    """Size expressions are Python ints: ``math.sqrt(d_k)``, ``M*d_v``; −∞ is ``-math.inf``."""

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True})

    def _print_NegativeInfinity(self, expr: sp.Expr) -> str:
        return "-math.inf"

    def _print_Infinity(self, expr: sp.Expr) -> str:
        return "math.inf"


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
        index = self.size(e.index)
        if e.name in self.family_inputs:
            return f"{name}[..., {index} - 1, :, :]"
        return f"{name}[{index}]"

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
            dims = [d.count, *dims]
        for k, dim in enumerate(dims):
            if isinstance(dim, sp.Symbol) and dim.name not in found:
                found[dim.name] = f"{d.ascii}.shape[{k - len(dims)}]"
    missing = [a for a in eq.axes if a not in found and a in GLOSSARY]
    return found, missing


def function_name(eq: Equation) -> str:
    return eq.id.replace(".", "_").replace("[", "__").replace("]", "")


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
    for b in eq.bindings:
        name = p.ascii[b.name]
        if isinstance(b.lhs, FamilyMember):
            decl = eq.declared(b.name)
            if not any(line.strip() == f"{name} = {{}}" for line in p.lines):
                p.line(f"{name} = {{}}")
            with p.loop(str(b.lhs.index), decl.count):
                p.line(f"{name}[{b.lhs.index}] = {p.expr(b.rhs)}")
        else:
            p.line(f"{name} = {p.expr(b.rhs)}")
    outs = []
    for o in eq.outputs:
        if isinstance(o, Family):
            outs.append(f"torch.stack([{o.ascii}[m] for m in range(1, {p.size(o.count)} + 1)], dim=-3)")
        else:
            outs.append(o.ascii)
    p.line(f"return ({', '.join(outs)},)")
    doc = f'    """{eq.title} ({eq.id}), generated from its SymPy definition by lmspec."""'
    header = f"def {function_name(eq)}({', '.join(signature)}):"
    return "\n".join(["import math", "", "import torch", "", "", header, doc, *p.lines]) + "\n"


@lru_cache(maxsize=256)
def compiled(eq: Equation):
    """The generated function of ``eq``, compiled once."""
    src = generate(eq)
    namespace: dict = {}
    try:
        exec(compile(src, f"<lmspec codegen {eq.id}>", "exec"), namespace)
    except SyntaxError as exc:  # a bug of the printer, never of the user
        raise SpecError(f"generated code for {eq.id} does not compile: {exc}\n{src}") from exc
    return namespace[function_name(eq)]


def size_arguments(eq: Equation) -> list[str]:
    """Axes the generated function takes as arguments (no input carries them)."""
    return _size_sources(eq)[1]


__all__ = ["TorchCodePrinter", "compiled", "generate"]
