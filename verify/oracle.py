"""The exact oracle: an equation evaluated at concrete sizes from the ``_entry`` meaning of its operators.

At each size tuple the oracle substitutes the sizes, expands every definition into explicit element
formulas (each operator through ``_entry``), turns them into a straight-line program (common
subexpressions shared, each definition materialised once), prints it as Python and compiles it. An equation
it calls (a block's attention, a stack's block, a recurrence's step) is a function of its own, expanded once
per sizes and printed before the caller: its arguments are the caller's entries, its outputs fresh names. The
program is cached per (equation, sizes); it evaluates in float64 or, with mpmath, at any precision.

Arrays are in spec layout: a matrix as the tutorial orients it, a vector with one axis, a family stacked
on a leading index axis, per-example inputs (and outputs) with optional leading batch axes.
"""

import functools
import hashlib
import itertools
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import mpmath
import numpy as np
import sympy as sp
from sympy.printing.pycode import MpmathPrinter, PythonCodePrinter

from ..spec import Equation, Family, Kind, SpecError
from ..spec.ops import SpecOp
from ..spec.ops_nn import Call
from ..spec.tensors import FamilyMember, FamilySlice
from . import cache

PRECISIONS = ("float64", "mpmath")


class _SafeMath:
    """``math`` for compiled oracles, with IEEE overflow (inf) instead of OverflowError."""

    @staticmethod
    def exp(x: float) -> float:
        try:
            return math.exp(x)
        except OverflowError:
            return math.inf

    @staticmethod
    def log(x: float) -> float:
        if x == 0:
            return -math.inf
        if x < 0 or x != x:
            return math.nan
        return math.log(x)

    @staticmethod
    def sqrt(x: float) -> float:
        return math.sqrt(x) if x >= 0 else math.nan

    def __getattr__(self, name: str):
        return getattr(math, name)


def _rsqrt0(x):
    """The oracle's ``Rsqrt0``: 1/√x, and 0 at x = 0 (float or mpmath)."""
    if x == 0:
        return 0 * x
    return 1 / (mpmath.sqrt(x) if isinstance(x, mpmath.mpf) else math.sqrt(x))


def size_subs(sizes: Mapping[str, int]) -> dict[sp.Symbol, sp.Integer]:
    return {sp.Symbol(k, integer=True, positive=True): sp.Integer(v) for k, v in sizes.items()}


def size_value(expr: str | sp.Expr, sizes: Mapping[str, int]) -> int:
    """An axis expression (``"M*d_k"``, ``L``, a SymPy expression of glossary symbols) at concrete sizes, as
    an int. Symbols are matched by name, whatever their assumptions; a string is parsed with every name of
    ``sizes`` as a symbol. Cached: checks evaluate the same few expressions at the same few sizes for every
    example, and ``sympify(…).subs({…})`` costs a parse and a sort of the substitutions each time."""
    return _size_value(expr, tuple(sorted((k, int(v)) for k, v in sizes.items())))


@lru_cache(maxsize=65536)
def _size_value(expr: str | sp.Expr, key: tuple[tuple[str, int], ...]) -> int:
    values = dict(key)
    if isinstance(expr, str):
        expr = sp.sympify(expr, locals={name: sp.Symbol(name) for name in values})
    expr = sp.sympify(expr)
    value = expr.xreplace({s: sp.Integer(values[s.name]) for s in expr.free_symbols if s.name in values})
    return int(value)  # as int(expr.subs(...)): a symbol left over raises TypeError


#: concrete_shape's answers by (the declaration's identity, the sizes): hashing a SymPy declaration costs
#: more than the lookup saves, and declarations live as long as their equations (held here besides)
_SHAPES: dict[tuple[int, tuple], tuple[object, tuple[int, ...]]] = {}


def concrete_shape(decl, sizes: Mapping[str, int]) -> tuple[int, ...]:
    """The spec-layout array shape of a declared tensor or family at concrete sizes."""
    key = (id(decl), tuple(sorted((k, int(v)) for k, v in sizes.items())))
    hit = _SHAPES.get(key)
    if hit is None or hit[0] is not decl:
        hit = _SHAPES[key] = (decl, _concrete_shape(decl, key[1]))
    return hit[1]


@lru_cache(maxsize=4096)
def _concrete_shape(decl, key: tuple[tuple[str, int], ...]) -> tuple[int, ...]:
    dims = tuple(_size_value(s, key) for s in decl.spec_shape)
    if isinstance(decl, Family):
        return (*(_size_value(c, key) for c in decl.counts), *dims)
    return dims


def _assumptions(kind: Kind) -> dict:
    if kind in (Kind.SCORE, Kind.ADDITIVE_MASK):
        return {"extended_real": True}
    if kind is Kind.INDEX:
        return {"integer": True}
    if kind is Kind.POSITIVE:
        return {"positive": True}
    return {"real": True}


@dataclass
class Program:
    """A straight-line program: input element symbols, assignments, output entries."""

    args: list[tuple[str, list]] = field(default_factory=list)  # (input name, nested element symbols)
    assignments: list = field(default_factory=list)  # (symbol, expression) pairs and Invoke statements
    outputs: list[tuple[str, list]] = field(default_factory=list)
    _fresh: itertools.count = field(default_factory=itertools.count)

    def symbol(self) -> sp.Symbol:
        return sp.Symbol(f"_t{next(self._fresh)}", extended_real=True)

    def names(self, rows: int, cols: int) -> sp.ImmutableMatrix:
        """A matrix of fresh names (a called equation's output)."""
        return sp.ImmutableMatrix(rows, cols, [self.symbol() for _ in range(rows * cols)])

    def materialise(self, mat: sp.ImmutableMatrix, shared: bool = False) -> sp.ImmutableMatrix:
        """Give every compound entry of ``mat`` a name; with ``shared``, name common subexpressions
        first (an operator's entries repeat row maxima and normalisers; products do not)."""
        entries = list(mat)
        compound = [k for k, e in enumerate(entries) if not (e.is_Atom or e.is_Symbol)]
        if not compound:
            return mat
        if shared:
            repl, reduced = sp.cse([entries[k] for k in compound], symbols=iter(self.symbol, None))
            self.assignments.extend(repl)
        else:
            reduced = [entries[k] for k in compound]
        for k, expr in zip(compound, reduced, strict=True):
            if expr.is_Atom:
                entries[k] = expr
            else:
                name = self.symbol()
                self.assignments.append((name, expr))
                entries[k] = name
        return sp.ImmutableMatrix(mat.rows, mat.cols, entries)


def _element_matrix(prefix: str, rows: int, cols: int, kind: Kind) -> sp.ImmutableMatrix:
    return sp.ImmutableMatrix(
        rows, cols, [_element(f"{prefix}_{i}_{j}", kind) for i in range(rows) for j in range(cols)]
    )


@lru_cache(maxsize=1 << 17)
def _element(name: str, kind: Kind) -> sp.Symbol:
    """The symbol of one input entry (``H_0_1``): the same names recur at every compile of an equation and
    its callers, and a Symbol with assumptions costs tens of microseconds to build each time."""
    return sp.Symbol(name, **_assumptions(kind))


def expand(eq: Equation, sizes: Mapping[str, int]) -> Program:
    """The straight-line program of ``eq`` at ``sizes`` (every axis of the equation given)."""
    missing = [a for a in eq.axes if a not in sizes]
    if missing:
        raise SpecError(f"{eq.id}: sizes for {', '.join(missing)} are missing (given {dict(sizes)})")
    subs = size_subs(sizes)
    for c in eq.equalities:
        if int(c.rhs.xreplace(subs)) != sizes[c.lhs.name]:
            raise SpecError(f"{eq.id}: sizes {dict(sizes)} break the constraint {c.lhs} = {c.rhs}")
    for c in eq.inequalities:
        if not bool(c.xreplace(subs)):
            raise SpecError(f"{eq.id}: sizes {dict(sizes)} break the constraint {c}")
    prog = Program()
    env: dict[str, object] = {}
    for d in (*eq.inputs, *eq.params):
        rows, cols = (int(sp.sympify(s).xreplace(subs)) for s in d.shape)
        if isinstance(d, Family):
            members = {}
            for key in _index_range(d, subs):
                suffix = "_".join(str(k) for k in key)
                members[key] = _element_matrix(f"{d.ascii}_{suffix}", rows, cols, d.entry_kind)
            env[d.name] = members
            prog.args.append((d.ascii, _nested_family(d, members, subs)))
        else:
            env[d.name] = _element_matrix(d.ascii, rows, cols, d.entry_kind)
            prog.args.append((d.ascii, _nested(env[d.name], d)))
    _define(prog, eq, subs, env)
    for out in eq.outputs:
        value = env[out.name]
        if isinstance(out, Family):
            prog.outputs.append((out.ascii, _nested_family(out, value, subs)))
        else:
            prog.outputs.append((out.ascii, _nested(value, out)))
    return prog


def _index_range(fam: Family, subs) -> list[tuple[int, ...]]:
    """Every index tuple of a family (inputs and outputs start at 1)."""
    ranges = [range(fam.start, int(c.xreplace(subs)) + 1) for c in fam.counts]
    return list(itertools.product(*ranges))


def _nested_family(fam: Family, members: dict, subs) -> list:
    """A family's members nested by index (1-based indices at 0-based positions), matrices innermost."""
    counts = [int(c.xreplace(subs)) for c in fam.counts]

    def level(prefix: tuple[int, ...]) -> list:
        if len(prefix) == len(counts):
            return _nested(members[prefix], fam)
        return [level((*prefix, k)) for k in range(1, counts[len(prefix)] + 1)]

    return level(())


def _define(prog: Program, eq: Equation, subs: dict, env: dict[str, object]) -> None:
    """Expand the definitions of ``eq`` into ``prog``; ``env`` holds its inputs and parameters (explicit
    matrices, families as dicts by index tuple) and receives its definitions."""
    calls: dict[tuple, dict[str, object]] = {}

    def explicit(e: sp.Basic) -> sp.ImmutableMatrix:
        if isinstance(e, sp.ImmutableMatrix):
            return e
        if isinstance(e, FamilyMember):
            key = tuple(int(k) for k in e.indices)
            try:
                return env[e.name][key]
            except KeyError:
                raise SpecError(f"{eq.id}: {e.name} at index {key} is used before it is defined") from None
        if isinstance(e, sp.MatrixSymbol):
            return env[e.name]
        if isinstance(e, Call):
            # one invocation per equation, arguments and axes, whichever output is read
            invocation = (e.args[0], e.args[2], e.args[3])
            if invocation not in calls:
                calls[invocation] = _call(prog, e, subs, env, explicit)
            if e.output not in calls[invocation]:
                raise SpecError(f"{eq.id}: {e.args[0].name} has no output {e.output}")
            return calls[invocation][e.output]
        if isinstance(e, sp.MatMul):
            coeff = sp.Mul(*[a for a in e.args if not a.is_Matrix])
            mats = [explicit(a) for a in e.args if a.is_Matrix]
            out = mats[0]
            for other in mats[1:]:
                out = _matmul(out, other)
            return sp.ImmutableMatrix(out * coeff) if coeff != 1 else out
        if isinstance(e, sp.MatAdd):
            out = explicit(e.args[0])
            for other in e.args[1:]:
                out = out + explicit(other)
            return sp.ImmutableMatrix(out)
        if isinstance(e, sp.Transpose):
            return explicit(e.arg).T
        if isinstance(e, sp.HadamardProduct):
            out = explicit(e.args[0])
            for other in e.args[1:]:
                out = out.multiply_elementwise(explicit(other))
            return sp.ImmutableMatrix(out)
        if isinstance(e, SpecOp):
            entries = e._explicit(lambda a: prog.materialise(explicit(a)))
            return prog.materialise(entries, shared=e.shares_subexpressions)
        raise SpecError(f"{eq.id}: the oracle cannot expand {type(e).__name__} ({e})")

    for b in eq.bindings:
        rhs = b.rhs.xreplace(subs)
        if isinstance(b.lhs, FamilyMember):
            decl = eq.declared(b.name)
            members = env.setdefault(b.name, {})
            if all(sp.sympify(k).is_Integer for k in b.lhs.indices):
                members[tuple(int(k) for k in b.lhs.indices)] = prog.materialise(explicit(rhs))
                continue
            ranges = [range(1, int(c.xreplace(subs)) + 1) for c in decl.counts]
            for key in itertools.product(*ranges):
                at = dict(zip(b.lhs.indices, key, strict=True))
                members[key] = prog.materialise(explicit(rhs.xreplace(at)))
        else:
            env[b.name] = prog.materialise(explicit(rhs))


def _call(prog: Program, call: Call, subs: dict, env: dict, explicit) -> dict[str, object]:
    """A called equation as a call of its own program (``Invoke``): its arguments are the caller's explicit
    matrices, its outputs fresh names. The callee is expanded once per sizes (``_subprogram``) however many
    times it is called (a stack's L blocks, a recurrence's n steps) and by however many equations (every
    block calls one multi-head attention), and its outputs are read from one call whichever the caller
    uses (an LSTM step's h_t and c_t)."""
    sub = call.equation
    renames = call.renames
    sizes = {}
    for name in sub.axes:
        symbol = sp.Symbol(name, integer=True, positive=True)
        sizes[name] = int(sp.sympify(renames.get(symbol, symbol)).xreplace(subs))
    sub_subs = size_subs(sizes)
    arguments = call.arguments
    args = []
    for d in (*sub.inputs, *sub.params):
        if d.name not in arguments:
            raise SpecError(f"{sub.id}: called without a value for {d.name}")
        value = arguments[d.name]
        if isinstance(value, FamilySlice):
            fixed = tuple(int(sp.sympify(k).xreplace(subs)) for k in value.indices)
            members = {
                key[len(fixed) :]: mat for key, mat in env[value.name].items() if key[: len(fixed)] == fixed
            }
            args.append(_nested_family(d, members, sub_subs))
        else:
            args.append(_nested(explicit(value), d))
    results: dict[str, object] = {}
    targets = []
    for out in sub.outputs:
        rows, cols = (int(sp.sympify(x).xreplace(sub_subs)) for x in out.shape)
        if isinstance(out, Family):
            members = {key: prog.names(rows, cols) for key in _index_range(out, sub_subs)}
            results[out.name] = members
            targets.append(_nested_family(out, members, sub_subs))
        else:
            results[out.name] = prog.names(rows, cols)
            targets.append(_nested(results[out.name], out))
    prog.assignments.append(Invoke(_subprogram(sub, tuple(sorted(sizes.items()))), args, targets))
    return results


@dataclass(frozen=True)
class Subprogram:
    """A called equation's program at concrete sizes, printed as a function named ``name``."""

    name: str
    program: "Program"


@lru_cache(maxsize=1024)
def _subprogram(eq: Equation, key: tuple[tuple[str, int], ...]) -> Subprogram:
    digest = hashlib.sha256(repr((eq.id, key)).encode()).hexdigest()[:10]
    name = "_" + re.sub(r"\W", "_", eq.id) + "_" + digest
    return Subprogram(name, expand(eq, dict(key)))


@dataclass(frozen=True)
class Invoke:
    """A program's statement ``targets = fn(*args)``: nested lists of the caller's entries in, nested lists of
    fresh names out, in the order of the callee's outputs."""

    fn: Subprogram
    args: list
    targets: list


def _times(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """``a·b``, left unevaluated where neither is a number (two named entries: SymPy's product would only
    sort them and ask their assumptions); with a number (a 0, a 1 of a ones vector) SymPy's, which folds
    it."""
    if a.is_Number or b.is_Number:
        return a * b
    return sp.Mul(a, b, evaluate=False)


def _matmul(A: sp.ImmutableMatrix, B: sp.ImmutableMatrix) -> sp.ImmutableMatrix:
    """A product of explicit matrices: sums of products, left unsimplified (SymPy's own product
    canonicalises every sum, which dominates compile time)."""
    inner = A.cols

    def entry(i: int, j: int) -> sp.Expr:
        terms = [_times(A[i, k], B[k, j]) for k in range(inner)]
        terms = [t for t in terms if t != 0]
        if not terms:
            return sp.S.Zero
        return terms[0] if len(terms) == 1 else sp.Add(*terms, evaluate=False)

    return sp.ImmutableMatrix(A.rows, B.cols, entry)


def _nested(mat: sp.ImmutableMatrix, decl) -> list | sp.Expr:
    if decl.is_scalar:
        return mat[0, 0]
    if decl.is_vector:
        return [mat[i, 0] for i in range(mat.rows)]
    return [[mat[i, j] for j in range(mat.cols)] for i in range(mat.rows)]


def _print_nested(printer, value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_print_nested(printer, v) for v in value) + "]"
    return printer.doprint(value)


def _unpack(name: str, value, path: str = "") -> list[str]:
    if isinstance(value, list):
        lines = []
        for k, v in enumerate(value):
            lines.extend(_unpack(name, v, f"{path}[{k}]"))
        return lines
    return [f"    {value.name} = {name}{path}"]


def source(prog: Program, precision: str = "float64") -> str:
    """Python source of the program: ``def oracle(<inputs>) -> tuple of nested lists``, after a function
    for each equation it calls (and they call), each once."""
    settings = {"fully_qualified_modules": True, "allow_unknown_functions": True, "order": "none"}
    printer = PythonCodePrinter(settings) if precision == "float64" else MpmathPrinter(settings)
    printer.known_functions["LineMax"] = printer.known_functions["Max"]  # Max, kept unevaluated (spec/ops)
    if precision == "float64":
        printer = _FloatPrinter(printer)
    called: dict[str, Subprogram] = {}
    _collect_calls(prog, called)
    parts = [_function_source(sub.name, sub.program, printer, precision) for sub in called.values()]
    parts.append(_function_source("oracle", prog, printer, precision))
    return "\n".join(parts)


class _FloatPrinter:
    """The float64 oracle's printer: sums, products, powers, numbers, names and the elementary functions —
    nearly every node of a program — printed directly and fully parenthesised, anything else (Piecewise,
    relations, Max, Rsqrt0, …) by SymPy's PythonCodePrinter. SymPy's printer orders each sum's terms,
    weighs every node's precedence and turns products into fractions; that was a fifth of an oracle's
    compile time. The value is the same up to the rounding of reassociated float operations (1e-16
    relative), which the oracle's own checks against the generated code and impl/ would show."""

    #: one-argument functions printed as ``math.NAME(x)`` (the oracle's ``math`` guards exp, log, sqrt)
    FUNCTIONS = frozenset({"exp", "log", "tanh", "sin", "cos", "erf", "sqrt", "sinh", "cosh", "atan"})
    #: deeper expressions go to SymPy's printer (Python's parser refuses ~200 nested parentheses)
    DEPTH = 60

    def __init__(self, fallback: PythonCodePrinter) -> None:
        self.fallback = fallback

    def doprint(self, expr) -> str:
        try:
            return self._print(expr, 0)
        except RecursionError:
            return self.fallback.doprint(expr)

    def _print(self, e, depth: int) -> str:
        if e.is_Symbol:
            return e.name
        if depth > self.DEPTH:
            return f"({self.fallback.doprint(e)})"
        if e.is_Integer:
            return f"({int(e)})"
        if e.is_Rational:
            return f"({e.p}/{e.q})"
        if e.is_Float:
            return f"({float(e)!r})"
        cls = type(e)
        if cls is sp.Add or cls is sp.Mul:
            joined = (" + " if cls is sp.Add else "*").join(self._print(a, depth + 1) for a in e.args)
            return f"({joined})"
        if cls is sp.Pow and e.exp.is_Rational:
            base = self._print(e.base, depth + 1)
            if e.exp.is_Integer:
                n = int(e.exp)
                return f"({base}**{n})" if n >= 0 else f"(1/{base}**{-n})"
            if e.exp == sp.S.Half:
                return f"math.sqrt({base})"
            if e.exp == -sp.S.Half:
                return f"(1/math.sqrt({base}))"
        if isinstance(e, sp.Function) and cls.__name__ in self.FUNCTIONS and len(e.args) == 1:
            return f"math.{cls.__name__}({self._print(e.args[0], depth + 1)})"
        return f"({self.fallback.doprint(e)})"


def _collect_calls(prog: Program, into: dict[str, Subprogram]) -> None:
    """Every subprogram ``prog`` calls, directly or not, callees first."""
    for statement in prog.assignments:
        if isinstance(statement, Invoke) and statement.fn.name not in into:
            _collect_calls(statement.fn.program, into)
            into[statement.fn.name] = statement.fn


#: subprograms' printed functions by (name, precision): the same in every program that calls them
_SUBPROGRAM_SOURCES: dict[tuple[str, str], str] = {}


def _function_source(name: str, prog: Program, printer, precision: str) -> str:
    if name == "oracle":
        return _print_function(name, prog, printer)
    if (name, precision) not in _SUBPROGRAM_SOURCES:
        _SUBPROGRAM_SOURCES[name, precision] = _print_function(name, prog, printer)
    return _SUBPROGRAM_SOURCES[name, precision]


def _print_function(name: str, prog: Program, printer) -> str:
    lines = [f"def {name}({', '.join(arg for arg, _ in prog.args)}):"]
    for arg, value in prog.args:
        lines.extend(_unpack(arg, value))
    for statement in prog.assignments:
        if isinstance(statement, Invoke):
            targets = "".join(_print_nested(printer, t) + ", " for t in statement.targets)
            args = ", ".join(_print_nested(printer, a) for a in statement.args)
            lines.append(f"    {targets}= {statement.fn.name}({args})")
        else:
            sym, expr = statement
            lines.append(f"    {sym.name} = {printer.doprint(expr)}")
    outs = ", ".join(_print_nested(printer, value) for _, value in prog.outputs)
    lines.append(f"    return ({outs},)")
    return "\n".join(lines) + "\n"


@dataclass
class Compiled:
    fn: object
    eq: Equation
    sizes: tuple[tuple[str, int], ...]
    precision: str
    compile_seconds: float
    cached: bool = False  # its source came from the disk cache (verify.cache): no SymPy expansion ran

    @functools.cached_property
    def program(self) -> Program:
        """The straight-line program (expanded on first use when the source came from the cache)."""
        return expand(self.eq, dict(self.sizes))


@lru_cache(maxsize=512)
def _compile(eq: Equation, key: tuple[tuple[str, int], ...], precision: str) -> Compiled:
    start = time.perf_counter()
    name = cache.key(eq, key, precision)
    src = cache.load(name)
    cached = src is not None
    prog = None
    if src is None:
        prog = expand(eq, dict(key))
        src = source(prog, precision)
        cache.store(name, src)
    namespace = {"math": _SafeMath(), "mpmath": mpmath, "Rsqrt0": _rsqrt0}
    exec(cache.compile_source(src, f"<oracle {eq.id} {dict(key)}>"), namespace)
    compiled = Compiled(namespace["oracle"], eq, key, precision, time.perf_counter() - start, cached)
    if prog is not None:
        compiled.program = prog  # the cached_property's value: expanded already
    return compiled


class Oracle:
    """Exact evaluation of one equation (or variant) from its spec."""

    def __init__(self, eq: Equation) -> None:
        self.eq = eq

    def compiled(self, sizes: Mapping[str, int], precision: str = "float64") -> Compiled:
        if precision not in PRECISIONS:
            raise SpecError(f"oracle precision must be one of {PRECISIONS}, found {precision!r}")
        key = tuple(sorted((k, int(v)) for k, v in sizes.items() if k in self.eq.axes))
        return _compile(self.eq, key, precision)

    def __call__(
        self,
        example: Mapping[str, np.ndarray],
        sizes: Mapping[str, int],
        precision: str = "float64",
        dps: int = 50,
    ) -> dict[str, np.ndarray]:
        """Evaluate at ``sizes``; inputs may carry leading batch axes (evaluated one by one)."""
        compiled = self.compiled(sizes, precision)
        decls = [*self.eq.inputs, *self.eq.params]
        batch = _batch_shape(self.eq, example, sizes)
        results: dict[str, list] = {o.ascii: [] for o in self.eq.outputs}
        n_inputs = len(self.eq.inputs)
        for idx in np.ndindex(*batch):
            args = []
            for k, d in enumerate(decls):
                arr = np.asarray(example[d.ascii])
                if k < n_inputs and batch:
                    arr = arr[idx]
                args.append(_to_scalars(arr, precision))
            with mpmath.workdps(dps):
                outs = compiled.fn(*args)
            for o, value in zip(self.eq.outputs, outs, strict=True):
                results[o.ascii].append(
                    np.array(value, dtype=np.float64 if precision == "float64" else object)
                )
        out = {}
        for o in self.eq.outputs:
            stacked = np.stack(results[o.ascii]) if results[o.ascii] else np.zeros(0)
            out[o.ascii] = stacked.reshape((*batch, *concrete_shape(o, sizes)))
        return out


def _to_scalars(arr: np.ndarray, precision: str) -> list:
    if precision == "float64":
        return np.asarray(arr, dtype=np.float64).tolist()
    return np.vectorize(lambda x: mpmath.mpf(float(x)), otypes=[object])(arr).tolist()


def _batch_shape(eq: Equation, example: Mapping[str, np.ndarray], sizes: Mapping[str, int]) -> tuple:
    """The leading batch axes shared by the per-example inputs; shapes are checked on the way."""
    batch: tuple | None = None
    # roles by position, not ``d in eq.inputs``: SymPy's == on declarations cost a second per verifier run
    for is_input, d in (*((True, d) for d in eq.inputs), *((False, d) for d in eq.params)):
        if d.ascii not in example:
            raise SpecError(f"{eq.id}: the example has no value for {d.ascii}")
        shape = np.shape(example[d.ascii])
        want = concrete_shape(d, sizes)
        lead = shape[: len(shape) - len(want)]
        if shape[len(lead) :] != want or (not is_input and lead):
            raise SpecError(
                f"{eq.id}: {d.ascii} has shape {shape}, expected {want} (sizes {dict(sizes)})"
                + (" after optional batch axes" if is_input else "")
            )
        if is_input:
            if batch is not None and lead != batch:
                raise SpecError(f"{eq.id}: {d.ascii} has batch axes {lead}, others have {batch}")
            batch = lead
    return batch or ()
