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

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy as sp
import torch

from ...spec import Equation, Kind
from .._errors import BindingError, ShapeMismatch
from ..binding import KEY_MASKS, SETTINGS, is_key_mask, is_mask, mask_hint, spec_axes
from .pattern import Pattern, PatternLayout, axis_names, parse_axes, resolve


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
    symbols = ", ".join(decls) or "it takes none"
    raise BindingError(
        f"{where}: argument {arg!r} does not name a symbol of {eq.id} ({symbols}); "
        f"write {arg}:SYMBOL=axes for a tensor, or {arg}:AXIS for a size it takes ({', '.join(eq.axes)}), "
        f"{arg}:dtype or {arg}:device"
    )


def _dtype_of(decl, convention: str | None) -> tuple[str, str | None]:
    """(dtype kind, mask convention) of an argument laid out by a string."""
    if is_mask(decl):
        if convention is None:
            convention = "additive" if decl.entry_kind == Kind.ADDITIVE_MASK else None
        encoding = KEY_MASKS.get(convention or "", convention or "")
        kind = {"bool_keep": "bool", "bool_ignore": "bool", "int_keep": "int"}.get(encoding, "float")
        return kind, convention
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
    laid: set[str] = set()
    sizes: list[tuple[str, str]] = []
    for entry in filter(None, (e.strip() for e in _split(left))):
        if "=" not in entry and ":" in entry:  # a size: "sz:n" passes n to the parameter sz
            arg, _, axis = (x.strip() for x in entry.partition(":"))
            if arg not in params:
                raise BindingError(f"{where}: {who(fn)} has no parameter {arg!r} ({', '.join(params)})")
            if axis not in eq.axes and axis not in SETTINGS:
                raise BindingError(
                    f"{where}: {axis!r} is not an axis of {eq.id} ({', '.join(eq.axes)}), nor dtype or device"
                )
            sizes.append((arg, axis))
            continue
        if "=" not in entry:
            raise BindingError(f"{where}: entry {entry!r} is not 'argument=axes' or 'argument:axis'")
        lhs, axes_text = (x.strip() for x in entry.split("=", 1))
        arg, _, explicit = lhs.partition(":")
        arg, explicit = arg.strip(), (explicit.strip() or None)
        if arg not in params:
            raise BindingError(f"{where}: {who(fn)} has no parameter {arg!r} ({', '.join(params)})")
        if arg in laid:
            raise BindingError(f"{where}: argument {arg!r} is laid out twice")
        laid.add(arg)
        decl = _symbol_for(arg, explicit, eq, decls, where)
        seen.add(decl.ascii)  # several arguments may take one symbol: self-attention called as f(x, x, x)
        args.append(_layout(arg, decl, axes_text, eq, f"{where}, argument {arg!r}", mask))
    missing = [k for k in decls if k not in seen and k not in missing_ok]
    if missing:
        raise BindingError(
            f"{where}: no argument takes the spec's {', '.join(eq.space(decls[k]) for k in missing)}"
            + mask_hint([decls[k] for k in missing])
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
    if any(is_key_mask(a.convention) for a in args):  # the per-key mask's batch axes are the leading ones
        args = [dataclasses.replace(a, lead_batch=True) for a in args]
        outs = [dataclasses.replace(o, lead_batch=True) for o in outs]
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
    if not output and is_mask(decl) and is_key_mask(mask):  # a per-key mask takes S's key axis only
        axes = axes[-1:]
    per_example = decl in eq.inputs or (output and bool(eq.inputs))
    resolved = resolve(parse_axes(axes_text, where), axes, axis_names(axes), where, per_example)
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
    names = axis_names(axes)
    if not arrow:
        axes_text = " ".join(f"({n.replace('·', ' ')})" if "·" in n else n for n in names)
    resolved = resolve(parse_axes(axes_text, where), axes, names, where, batch_ok=False)
    layout = PatternLayout(None, path, axes_text, "float", resolved, False)
    return ParamMapping(path, text, sources, "map", layout, loop)


#: Pattern, PatternLayout and parse_axes live in audit.pattern (re-exported for callers importing them here).
__all__ = ["ParamMapping", "Pattern", "PatternLayout", "layout_binding", "parse_axes", "parse_param"]
