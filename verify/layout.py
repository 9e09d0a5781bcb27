"""Layout strings: how a target lays out the spec's tensors when its annotations do not say.

A function's layout::

    "q=b h n d_k, k=b h n d_k, v=b h n d_v, mask=b h n n -> b h n d_v"

Each entry before ``->`` is ``argument=axes`` for one parameter of the target. The argument names a spec
symbol when it matches one ignoring case (``q`` is Q) or when it is a mask and the equation has one mask;
otherwise write ``argument:Symbol=axes``. The axes are glossary names of the symbol's axes (``lmspec show
ID`` lists them) in the target's order; names before them that are not axes of the equation (``b``, ``h``)
are batch axes, and ``...`` stands for any number of them; ``(M d_k)`` is one axis holding the two (heads
side by side). After ``->`` come the returned values in order: ``axes`` or ``Symbol=axes`` (naming which
output; a subset of the outputs may be returned), and ``_`` for a value the audit ignores. A scalar is ``()``.

A module parameter's mapping (``params``)::

    "q_proj.weight": "W_Q -> (M d_k) d_e"          # the family W_Q^{(m)}, transposed, heads stacked
    "c_attn.weight": "W_Q, W_K, W_V -> d_e (3 M d_k)"  # fused: the integer 3 is the axis of the three
    "ln.bias": "beta"                                # as the spec lays it out
    "extra.bias": "0"                                # zeros (the spec has no such parameter)
    "rotary.freq": "keep"                            # left as the module initialised it
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp
import torch

from spec import Equation, Kind
from verify._errors import BindingError, ShapeMismatch
from verify.binding import _AXIS_LOCALS, convert_mask, is_mask, spec_axes

_TOKEN = re.compile(r"\(|\)|\.\.\.|[^\s()]+")


@dataclass(frozen=True)
class Pattern:
    """Parsed axes: leading batch names (or variadic) and target axes, each a group of spec axis names."""

    text: str
    batch: int | None  # number of leading batch axes; None for "..."
    groups: tuple[tuple[str, ...], ...]


def parse_axes(text: str, where: str) -> Pattern:
    """Parse ``b h n d_k`` / ``... n (M d_k)`` / ``()``."""
    tokens = _TOKEN.findall(text.strip())
    if tokens == ["(", ")"]:
        return Pattern(text, 0, ())
    groups: list[tuple[str, ...]] = []
    current: list[str] | None = None
    for tok in tokens:
        if tok == "(":
            if current is not None:
                raise BindingError(f"{where}: nested parentheses in {text!r}")
            current = []
        elif tok == ")":
            if not current:
                raise BindingError(f"{where}: an empty or unopened group in {text!r}")
            groups.append(tuple(current))
            current = None
        elif current is not None:
            current.append(tok)
        else:
            groups.append((tok,))
    if current is not None:
        raise BindingError(f"{where}: an unclosed parenthesis in {text!r}")
    return Pattern(text, None, tuple(groups))


def _is_axis(token: str, axes: Sequence[sp.Expr]) -> bool:
    if token.isdigit():
        return True
    try:
        expr = sp.sympify(token, locals=_AXIS_LOCALS)
    except (sp.SympifyError, TypeError, SyntaxError):
        return False
    return any(sp.simplify(expr - a) == 0 for a in axes)


def _resolve(pattern: Pattern, axes: Sequence[sp.Expr], names: Sequence[str], where: str, batch_ok: bool):
    """Split leading batch names off and map each remaining token to a spec axis index.

    Returns (batch count or None, groups of spec-axis indices)."""
    groups = list(pattern.groups)
    batch: int | None = 0
    if groups and groups[0] == ("...",):
        batch, groups = None, groups[1:]
    else:
        while groups and len(groups[0]) == 1 and not _is_axis(groups[0][0], axes):
            if not batch_ok:
                raise BindingError(
                    f"{where}: {groups[0][0]!r} in {pattern.text!r} is not an axis of this symbol "
                    f"(its axes: {', '.join(names)})"
                )
            batch += 1
            groups = groups[1:]
    free = list(range(len(axes)))
    out: list[tuple[int, ...]] = []
    for group in groups:
        if len(group) > 1 and "..." not in group:  # one spec axis that is itself a product (W_O: M·d_v)
            product = sp.Mul(
                *(sp.Integer(int(t)) if t.isdigit() else sp.sympify(t, locals=_AXIS_LOCALS) for t in group)
            )
            whole = next((k for k in free if sp.simplify(axes[k] - product) == 0), None)
            if whole is not None:
                out.append((whole,))
                free.remove(whole)
                continue
        idx = []
        for tok in group:
            if tok == "...":
                raise BindingError(f"{where}: '...' must come first in {pattern.text!r}")
            expr = sp.Integer(int(tok)) if tok.isdigit() else sp.sympify(tok, locals=_AXIS_LOCALS)
            hit = next((k for k in free if sp.simplify(axes[k] - expr) == 0), None)
            if hit is None:
                raise BindingError(
                    f"{where}: axis {tok!r} in {pattern.text!r} is not a (remaining) axis of this symbol "
                    f"(its axes: {', '.join(names)})"
                )
            idx.append(hit)
            free.remove(hit)
        out.append(tuple(idx))
    if free:
        missing = ", ".join(names[k] for k in free)
        raise BindingError(f"{where}: {pattern.text!r} leaves out the axes {missing}")
    return batch, tuple(out)


def _axis_names(axes: Sequence[sp.Expr]) -> list[str]:
    return [str(a).replace("*", "·") for a in axes]


@dataclass(frozen=True)
class PatternLayout:
    """One argument or result laid out by a pattern (the layout-string counterpart of binding.Layout)."""

    name: str | None  # spec ASCII name; None for an ignored result
    param: str
    annotation: str
    dtype: str  # "float", "int", "bool"
    groups: tuple[tuple[int, ...], ...]  # target axis -> spec axes it holds
    target_batch: int | None  # leading batch axes of the target (None: any number)
    batched: bool
    decl: object = None
    convention: str | None = None
    additive_spec: bool = False
    optional: bool = False

    @property
    def perm(self) -> tuple[int, ...]:
        return tuple(i for g in self.groups for i in g)

    def _spec_shape(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        from verify.oracle import concrete_shape

        return concrete_shape(self.decl, sizes)

    def to_impl(self, arr, batch_ndim: int, dtype: torch.dtype, device: str, sizes=None) -> torch.Tensor:
        arr = np.asarray(arr)
        bn = batch_ndim if self.batched else 0
        batch_shape, spec_shape = arr.shape[:bn], arr.shape[bn:]
        moved = np.transpose(arr, [*range(bn), *(bn + p for p in self.perm)])
        shape = [int(np.prod([spec_shape[i] for i in g])) for g in self.groups]
        if self.target_batch is not None and self.batched:
            if bn > self.target_batch:  # the audit draws at most as many batch axes as the target takes
                raise BindingError(f"{self.param}: the target takes {self.target_batch} batch axes, not {bn}")
            batch_shape = (1,) * (self.target_batch - len(batch_shape)) + tuple(batch_shape)
        data = np.ascontiguousarray(moved).reshape((*batch_shape, *shape))
        if self.convention is not None:
            return convert_mask(data, self.additive_spec, self.convention, dtype, device)
        t = torch.from_numpy(data)
        if self.dtype == "int":
            return t.to(torch.int64).to(device)
        if self.dtype == "bool":
            return (t > 0).to(device)
        return t.to(dtype=dtype, device=device)

    def from_impl(
        self, t: torch.Tensor, batch_ndim: int, sizes: Mapping[str, int] | None = None
    ) -> np.ndarray:
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t)
        arr = t.detach().to("cpu", torch.float64 if t.dtype != torch.bool else torch.bool).numpy()
        arr = arr.astype(np.float64)
        bn = batch_ndim if self.batched else 0
        spec_shape = self._spec_shape(sizes or {})
        tb = bn if self.target_batch is None or not self.batched else self.target_batch
        lead = arr.shape[:tb] if arr.ndim >= tb else arr.shape
        rest = arr.shape[tb:]
        want = [int(np.prod([spec_shape[i] for i in g])) for g in self.groups]
        if list(rest) != want:
            return arr  # the wrong shape: the comparison reports it
        if tb > bn:
            extra = lead[: tb - bn]
            if any(e != 1 for e in extra):
                return arr
            lead = lead[tb - bn :]
        split = [spec_shape[i] for g in self.groups for i in g]
        arr = arr.reshape((*lead, *split))
        inverse = np.argsort(self.perm)
        return np.transpose(arr, [*range(len(lead)), *(len(lead) + int(p) for p in inverse)])


def _symbol_for(arg: str, explicit: str | None, eq: Equation, decls: Mapping[str, object], where: str):
    if explicit is not None:
        if explicit not in decls:
            raise BindingError(f"{where}: {explicit!r} is not a symbol of {eq.id} ({', '.join(decls)})")
        return decls[explicit]
    by_lower = {k.lower(): v for k, v in decls.items()}
    if arg.lower() in by_lower:
        return by_lower[arg.lower()]
    masks = [d for d in decls.values() if is_mask(d)]
    if "mask" in arg.lower() and len(masks) == 1:
        return masks[0]
    raise BindingError(
        f"{where}: argument {arg!r} does not name a symbol of {eq.id} ({', '.join(decls)}); "
        f"write {arg}:SYMBOL=axes"
    )


def _dtype_of(decl, convention: str | None) -> tuple[str, str | None]:
    """(dtype kind, mask convention) of an argument laid out by a string."""
    if is_mask(decl):
        if convention is None:
            convention = "additive" if decl.entry_kind == Kind.ADDITIVE_MASK else None
        return ("bool" if convention and convention.startswith("bool") else "float"), convention
    if decl.entry_kind == Kind.INDEX:
        return "int", None
    return "float", None


def layout_binding(fn, eq: Equation, layout: str, *, mask: str | None = None, symbols=None, missing_ok=()):
    """Bind ``fn`` to ``eq`` through a layout string; returns a binding.ImplBinding."""
    import inspect

    from verify.binding import ImplBinding, who

    where = f"layout of {who(fn)}"
    if layout.count("->") != 1:
        raise BindingError(
            f"{where}: expected 'argument=axes, ... -> axes', found {layout!r} (no single '->')"
        )
    left, right = (part.strip() for part in layout.split("->"))
    decls = {d.ascii: d for d in (symbols if symbols is not None else (*eq.inputs, *eq.params))}
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError) as exc:
        raise BindingError(f"{who(fn)}: cannot read its signature ({exc})") from exc
    args: list[PatternLayout] = []
    seen: set[str] = set()
    for entry in filter(None, (e.strip() for e in _split(left))):
        if "=" not in entry:
            raise BindingError(f"{where}: entry {entry!r} is not 'argument=axes'")
        lhs, axes_text = (x.strip() for x in entry.split("=", 1))
        arg, _, explicit = lhs.partition(":")
        arg, explicit = arg.strip(), (explicit.strip() or None)
        if arg not in params:
            raise BindingError(f"{where}: {who(fn)} has no parameter {arg!r} ({', '.join(params)})")
        decl = _symbol_for(arg, explicit, eq, decls, where)
        if decl.ascii in seen:
            raise BindingError(f"{where}: two arguments take {decl.ascii}")
        seen.add(decl.ascii)
        args.append(_layout(arg, decl, axes_text, eq, f"{where}, argument {arg!r}", mask))
    missing = [k for k in decls if k not in seen and k not in missing_ok]
    if missing:
        raise BindingError(
            f"{where}: no argument takes the spec's {', '.join(eq.space(decls[k]) for k in missing)}"
        )
    taken = {a.param for a in args}
    for name, p in params.items():
        required = p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        if name not in taken and required and name != "self":
            raise BindingError(f"{where}: parameter {name!r} of {who(fn)} is not in the layout")
    outs: list[PatternLayout] = []
    remaining = [o for o in eq.outputs]
    entries = [e.strip() for e in _split(right)]
    for k, entry in enumerate(entries):
        label = f"return[{k}]" if len(entries) > 1 else "return"
        if entry == "_":
            outs.append(PatternLayout(None, label, "_", "float", (), 0, False))
            continue
        name, sep, axes_text = entry.partition("=")
        if sep and not re.fullmatch(r"[A-Za-z_]\w*", name.strip()):
            raise BindingError(f"{where}: cannot read the result {entry!r}")
        if sep:
            match = [o for o in eq.outputs if o.ascii == name.strip()]
            if not match:
                names = ", ".join(o.ascii for o in eq.outputs)
                raise BindingError(f"{where}: {name.strip()!r} is not an output of {eq.id} ({names})")
            decl = match[0]
        else:
            axes_text = entry
            if not remaining:
                raise BindingError(f"{where}: more results than {eq.id} has outputs")
            decl = remaining[0]
        if decl not in remaining:
            raise BindingError(f"{where}: {decl.ascii} is returned twice")
        remaining.remove(decl)
        outs.append(_layout(label, decl, axes_text, eq, f"{where}, {label}", None, output=True))
    if not any(o.name for o in outs):
        raise BindingError(f"{where}: the layout maps no result to an output of {eq.id}")
    binding = ImplBinding(eq, fn, tuple(args), (), False, tuple(outs), len(outs) > 1)
    return binding, bool(remaining)


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _layout(param, decl, axes_text, eq, where, mask, output=False) -> PatternLayout:
    axes = spec_axes(decl)
    per_example = decl in eq.inputs or (output and bool(eq.inputs))
    batch, groups = _resolve(parse_axes(axes_text, where), axes, _axis_names(axes), where, per_example)
    dtype, convention = ("float", None) if output else _dtype_of(decl, mask)
    return PatternLayout(
        decl.ascii,
        param,
        axes_text,
        dtype,
        groups,
        batch,
        per_example,
        decl,
        convention,
        decl.entry_kind == Kind.ADDITIVE_MASK,
    )


# --- module parameters ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamMapping:
    """How one module parameter is filled from spec parameters (see the module docstring)."""

    path: str
    text: str
    sources: tuple[str, ...]  # spec ASCII names; () for "0" and "keep"
    mode: str  # "map", "zero" or "keep"
    groups: tuple[tuple[int, ...], ...] = ()

    def value(self, example: Mapping[str, np.ndarray], eq: Equation) -> np.ndarray | None:
        if self.mode != "map":
            return None
        arrays = [np.asarray(example[s], dtype=np.float64) for s in self.sources]
        if len({a.shape for a in arrays}) > 1:
            shapes = ", ".join(f"{s} {list(a.shape)}" for s, a in zip(self.sources, arrays, strict=True))
            raise ShapeMismatch(
                f"parameter mapping {self.path!r}: cannot stack {shapes}; tie their sizes (derive=, e.g. "
                "{'d_v': 'd_k'})",
                check="shape",
            )
        arr = np.stack(arrays) if len(arrays) > 1 else arrays[0]
        perm = [i for g in self.groups for i in g]
        moved = np.transpose(arr, perm)
        shape = [int(np.prod([arr.shape[i] for i in g])) for g in self.groups]
        return np.ascontiguousarray(moved).reshape(shape)


def parse_param(path: str, text: str, eq: Equation) -> ParamMapping:
    where = f"parameter mapping {path!r}"
    text = str(text).strip()
    if text in ("0", "zero", "zeros"):
        return ParamMapping(path, text, (), "zero")
    if text == "keep":
        return ParamMapping(path, text, (), "keep")
    src_text, arrow, axes_text = text.partition("->")
    decls = {d.ascii: d for d in eq.params}
    sources = tuple(s.strip() for s in src_text.split(",") if s.strip())
    if not sources:
        raise BindingError(f"{where}: no spec parameter before '->' in {text!r}")
    for s in sources:
        if s not in decls:
            raise BindingError(f"{where}: {s!r} is not a parameter of {eq.id} ({', '.join(decls) or 'none'})")
    axes = spec_axes(decls[sources[0]])
    for s in sources[1:]:  # stacked: the same number of axes; the sizes must agree when filled
        if len(spec_axes(decls[s])) != len(axes):
            raise BindingError(f"{where}: {sources[0]} and {s} have different ranks and cannot be stacked")
    if len(sources) > 1:
        if not arrow:
            raise BindingError(f"{where}: several sources need '-> axes' with {len(sources)} as their axis")
        axes = [sp.Integer(len(sources)), *axes]
    if not arrow:
        return ParamMapping(path, text, sources, "map", tuple((k,) for k in range(len(axes))))
    names = _axis_names(axes)
    _, groups = _resolve(parse_axes(axes_text, where), axes, names, where, batch_ok=False)
    return ParamMapping(path, text, sources, "map", groups)


__all__ = ["ParamMapping", "Pattern", "PatternLayout", "layout_binding", "parse_axes", "parse_param"]
