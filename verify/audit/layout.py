"""Layout strings: how a target lays out the spec's tensors when its annotations do not say.

A function's layout::

    "q=b h n d_k, k=b h n d_k, v=b h n d_v, mask=b h n n -> b h n d_v"

Each entry before ``->`` is ``argument=axes`` for one parameter of the target, or ``argument:axis`` for
an ``int`` parameter that receives that axis's size (``sz:n``). The argument names a spec
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

from ...spec import Equation, Kind
from ...spec.axes import GLOSSARY
from .._errors import BindingError, ShapeMismatch
from ..binding import _AXIS_LOCALS, convert_mask, is_mask, spec_axes

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


def _expr(tok: str) -> sp.Expr:
    return sp.Integer(int(tok)) if tok.isdigit() else sp.sympify(tok, locals=_AXIS_LOCALS)


def _find(free: list[int], axes: Sequence[sp.Expr], expr: sp.Expr) -> int | None:
    return next((k for k in free if sp.simplify(axes[k] - expr) == 0), None)


def _readable(tok: str) -> bool:
    try:
        _expr(tok)
        return True
    except (sp.SympifyError, TypeError, SyntaxError):
        return False


@dataclass(frozen=True)
class Resolved:
    """A pattern against a symbol's spec axes.

    ``factors[s]`` are the target axes spec axis s is split into (usually one: itself); the "virtual" axes
    are these factors in spec order. ``entries`` are the target's axes: ``("batch", k)`` for its k-th batch
    axis or ``("axes", (virtual indices…))`` for spec axes (a group of several is one target axis).
    ``batch`` counts the batch axes (None: "...", any number, leading).
    """

    factors: tuple[tuple[sp.Expr, ...], ...]
    entries: tuple[tuple[str, object], ...]
    batch: int | None


def _resolve(pattern: Pattern, axes: Sequence[sp.Expr], names: Sequence[str], where: str, batch_ok: bool):
    """Map the pattern's names to the symbol's spec axes (see Resolved)."""
    groups = list(pattern.groups)
    variadic = bool(groups) and groups[0] == ("...",)
    if variadic:
        groups = groups[1:]
    if any("..." in group for group in groups):
        raise BindingError(f"{where}: '...' must come first in {pattern.text!r}")
    free = list(range(len(axes)))
    factors: dict[int, tuple[sp.Expr, ...]] = {}
    raw: list[tuple[str, object]] = []  # ("batch", None) | ("spec", [(spec axis, factor k)])
    batch_names: list[str] = []  # for the message when an axis is left out
    k = 0
    while k < len(groups):
        group = groups[k]
        if "..." in group:
            raise BindingError(f"{where}: '...' must come first in {pattern.text!r}")
        if len(group) > 1:  # one target axis holding several spec axes, or one spec axis that is a product
            whole = (
                _find(free, axes, sp.Mul(*(_expr(t) for t in group))) if all(map(_readable, group)) else None
            )
            if whole is not None:
                factors[whole] = (axes[whole],)
                free.remove(whole)
                raw.append(("spec", [(whole, 0)]))
                k += 1
                continue
            members = []
            for tok in group:
                hit = _find(free, axes, _expr(tok)) if _readable(tok) else None
                if hit is None:
                    raise BindingError(
                        f"{where}: axis {tok!r} in {pattern.text!r} is not a (remaining) axis of this symbol "
                        f"(its axes: {', '.join(names)})"
                    )
                factors[hit] = (axes[hit],)
                free.remove(hit)
                members.append((hit, 0))
            raw.append(("spec", members))
            k += 1
            continue
        tok = group[0]
        hit = _find(free, axes, _expr(tok)) if _readable(tok) else None
        if hit is not None:
            factors[hit] = (axes[hit],)
            free.remove(hit)
            raw.append(("spec", [(hit, 0)]))
            k += 1
            continue
        # several single axes holding one spec axis between them (W_O's M·d_v as M, d_v)?
        split = None
        if _readable(tok):
            run: list[str] = []
            for nxt in groups[k:]:
                if len(nxt) != 1 or not _readable(nxt[0]):
                    break
                run.append(nxt[0])
                if len(run) > 1:
                    s_hit = _find(free, axes, sp.Mul(*(_expr(t) for t in run)))
                    if s_hit is not None:
                        split = (s_hit, run)
                        break
        if split is not None:
            s_hit, run = split
            factors[s_hit] = tuple(_expr(t) for t in run)
            free.remove(s_hit)
            raw.extend(("spec", [(s_hit, j)]) for j in range(len(run)))
            k += len(run)
            continue
        leading = all(kind == "batch" for kind, _ in raw)
        if not batch_ok or variadic or (not leading and tok in GLOSSARY):
            raise BindingError(
                f"{where}: {tok!r} in {pattern.text!r} is not an axis of this symbol "
                f"(its axes: {', '.join(names)})"
            )
        raw.append(("batch", None))
        batch_names.append(tok)
        k += 1
    if free:
        missing = ", ".join(names[i] for i in free)
        read = f" (read {', '.join(batch_names)} as batch axes)" if batch_names else ""
        raise BindingError(f"{where}: {pattern.text!r} leaves out the axes {missing}{read}")
    ordered = tuple(factors[i] for i in range(len(axes)))
    offset = [0]
    for f in ordered:
        offset.append(offset[-1] + len(f))
    entries, nb = [], 0
    for kind, what in raw:
        if kind == "batch":
            entries.append(("batch", nb))
            nb += 1
        else:
            entries.append(("axes", tuple(offset[s] + j for s, j in what)))
    return Resolved(ordered, tuple(entries), None if variadic else nb)


def _axis_names(axes: Sequence[sp.Expr]) -> list[str]:
    return [str(a).replace("*", "·") for a in axes]


@dataclass(frozen=True)
class PatternLayout:
    """One argument or result laid out by a pattern (the layout-string counterpart of binding.Layout)."""

    name: str | None  # spec ASCII name; None for an ignored result
    param: str
    annotation: str
    dtype: str  # "float", "int", "bool"
    resolved: Resolved | None
    batched: bool
    decl: object = None
    convention: str | None = None
    additive_spec: bool = False
    optional: bool = False

    needs_sizes = True  # to_impl takes the sizes (split axes)

    @property
    def target_batch(self) -> int | None:
        return self.resolved.batch if self.resolved else 0

    def _virtual(self, sizes: Mapping[str, int]) -> list[int]:
        from ..oracle import size_subs

        subs = size_subs(sizes)
        return [int(sp.sympify(f).subs(subs)) for fs in self.resolved.factors for f in fs]

    def _order(self, nb: int) -> tuple[list[int], list[list[int]]]:
        """The target's axis order over the (batch…, virtual…) array; each target axis's members."""
        order, members = [], []
        for kind, what in self.resolved.entries:
            idx = [what] if kind == "batch" else [nb + v for v in what]
            order.extend(idx)
            members.append(idx)
        return order, members

    def _batch_count(self, bn: int) -> int:
        tb = self.resolved.batch
        if tb is None:
            return bn
        if bn > tb:  # the audit draws at most as many batch axes as the target takes
            raise BindingError(f"{self.param}: the target takes {tb} batch axes, not {bn}")
        return tb

    def to_impl(self, arr, batch_ndim: int, dtype: torch.dtype, device: str, sizes=None) -> torch.Tensor:
        arr = np.asarray(arr)
        bn = batch_ndim if self.batched else 0
        nb = self._batch_count(bn) if self.batched else 0
        batch_shape = (1,) * (nb - bn) + tuple(arr.shape[:bn])
        virtual = self._virtual(sizes) if sizes is not None else list(arr.shape[bn:])
        expanded = arr.reshape((*batch_shape, *virtual))
        order, members = self._order(nb)
        if self.resolved.batch is None:  # "...": the batch axes lead, as they are
            order, members = list(range(nb)) + order, [[i] for i in range(nb)] + members
        moved = np.transpose(expanded, order)
        shape = [int(np.prod([expanded.shape[i] for i in m])) for m in members]
        data = np.ascontiguousarray(moved).reshape(shape)
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
        t = t.detach().to("cpu")
        arr = (t.double() if t.is_floating_point() else t).numpy().astype(np.float64)  # numpy has no bfloat16
        bn = batch_ndim if self.batched else 0
        nb = self._batch_count(bn) if self.batched else 0
        virtual = self._virtual(sizes or {})
        order, members = self._order(nb)
        if self.resolved.batch is None:
            order, members = list(range(nb)) + order, [[i] for i in range(nb)] + members
        # sizes of the padded (batch…, virtual…) axes: batch sizes are read from the result
        if arr.ndim != len(members):
            return arr  # the wrong shape: the comparison reports it
        full: dict[int, int] = {nb + i: v for i, v in enumerate(virtual)}
        for m, size in zip(members, arr.shape, strict=True):
            if len(m) == 1 and m[0] < nb:
                full[m[0]] = size
            elif int(np.prod([full[i] for i in m])) != size:
                return arr
        expanded = arr.reshape([full[i] for m in members for i in m])
        back = np.transpose(expanded, np.argsort(order))
        lead = back.shape[:nb]
        if any(e != 1 for e in lead[: nb - bn]):
            return arr
        spec = [int(np.prod(self._factor_sizes(sizes or {}, s))) for s in range(len(self.resolved.factors))]
        return back.reshape((*lead[nb - bn :], *spec))

    def _factor_sizes(self, sizes, s: int) -> list[int]:
        from ..oracle import size_subs

        subs = size_subs(sizes)
        return [int(sp.sympify(f).subs(subs)) for f in self.resolved.factors[s]]


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

    from ..binding import ImplBinding, who

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
    sizes: list[tuple[str, str]] = []
    for entry in filter(None, (e.strip() for e in _split(left))):
        if "=" not in entry and ":" in entry:  # a size: "sz:n" passes n to the parameter sz
            arg, _, axis = (x.strip() for x in entry.partition(":"))
            if arg not in params:
                raise BindingError(f"{where}: {who(fn)} has no parameter {arg!r} ({', '.join(params)})")
            if axis not in eq.axes:
                raise BindingError(f"{where}: {axis!r} is not an axis of {eq.id} ({', '.join(eq.axes)})")
            sizes.append((arg, axis))
            continue
        if "=" not in entry:
            raise BindingError(f"{where}: entry {entry!r} is not 'argument=axes' or 'argument:axis'")
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
    taken = {a.param for a in args} | {p for p, _ in sizes}
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
            outs.append(PatternLayout(None, label, "_", "float", None, False))
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
    binding = ImplBinding(eq, fn, tuple(args), tuple(sizes), False, tuple(outs), len(outs) > 1)
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
    resolved = _resolve(parse_axes(axes_text, where), axes, _axis_names(axes), where, per_example)
    dtype, convention = ("float", None) if output else _dtype_of(decl, mask)
    return PatternLayout(
        decl.ascii,
        param,
        axes_text,
        dtype,
        resolved,
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
    layout: PatternLayout | None = None
    loop: tuple[str, int, sp.Expr] | None = None  # per-layer path "h.{l}.…": (index, its axis, its count)

    def value(self, example: Mapping[str, np.ndarray], sizes: Mapping[str, int], index: int | None = None):
        if self.mode != "map":
            return None
        arrays = [np.asarray(example[s], dtype=np.float64) for s in self.sources]
        if self.loop is not None:
            arrays = [np.take(a, index, axis=self.loop[1]) for a in arrays]
        if len({a.shape for a in arrays}) > 1:
            shapes = ", ".join(f"{s} {list(a.shape)}" for s, a in zip(self.sources, arrays, strict=True))
            raise ShapeMismatch(
                f"parameter mapping {self.path!r}: cannot stack {shapes}; tie their sizes (derive=, e.g. "
                "{'d_v': 'd_k'})",
                check="shape",
            )
        arr = np.stack(arrays) if len(arrays) > 1 else arrays[0]
        return self.layout.to_impl(arr, 0, torch.float64, "cpu", sizes).numpy()


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
    loop = None
    looped = re.findall(r"\{(\w+)\}", path)
    if looped:  # one module parameter per member of the family: h.{l}.ln_1.weight ← α_1^{(l)}
        decl = decls[sources[0]]
        index_names = [str(i) for i in getattr(decl, "indices", ())]
        if len(looped) != 1 or looped[0] not in index_names:
            raise BindingError(
                f"{where}: {{{looped[0]}}} must name an index of the family {sources[0]} "
                f"({', '.join(index_names) or 'it is not a family'})"
            )
        pos = index_names.index(looped[0])
        loop = (looped[0], pos, decl.counts[pos])
        axes = [a for k, a in enumerate(axes) if k != pos]
    for s in sources[1:]:  # stacked: the same number of axes; the sizes must agree when filled
        if len(spec_axes(decls[s])) != len(spec_axes(decls[sources[0]])):
            raise BindingError(f"{where}: {sources[0]} and {s} have different ranks and cannot be stacked")
    if len(sources) > 1:
        if not arrow:
            raise BindingError(f"{where}: several sources need '-> axes' with {len(sources)} as their axis")
        axes = [sp.Integer(len(sources)), *axes]  # (the layer is taken from each source before stacking)
    names = _axis_names(axes)
    if not arrow:
        axes_text = " ".join(f"({n.replace('·', ' ')})" if "·" in n else n for n in names)
    resolved = _resolve(parse_axes(axes_text, where), axes, names, where, batch_ok=False)
    layout = PatternLayout(None, path, axes_text, "float", resolved, False)
    return ParamMapping(path, text, sources, "map", layout, loop)


__all__ = ["ParamMapping", "Pattern", "PatternLayout", "layout_binding", "parse_axes", "parse_param"]
