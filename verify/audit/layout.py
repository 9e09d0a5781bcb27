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
output; a subset of the outputs may be returned), ``_`` for a value the audit ignores and ``...`` for any
number of them (what follows is counted from the end: ``-> _, (..., H_out=b n d_e)`` reads the last of
the second value's tuple). A scalar is ``()``.

A module parameter's mapping (``params``)::

    "q_proj.weight": "W_Q -> (M d_k) d_e"          # the family W_Q^{(m)}, transposed, heads stacked
    "c_attn.weight": "W_Q, W_K, W_V -> d_e (3 M d_k)"  # fused: the integer 3 is the axis of the three
    "ln.bias": "beta"                                # as the spec lays it out
    "W_hh": "W_h.T"                                  # transposed: a square matrix stored (in, out)
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
from ..binding import (
    CAUSAL_SETTING,
    KEY_MASKS,
    SETTINGS,
    constant_value,
    is_key_mask,
    is_mask,
    mask_hint,
    same_size,
    spec_axes,
)
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


#: Argument names that hold {0,1} values as ids into a table (BERT's segments): passed as integers.
SEGMENT_IDS = ("token_type_ids", "segment_ids", "segments", "segment_label", "segment_labels", "token_types",
               "seg_ids", "type_ids", "segment_info")  # fmt: skip


def _dtype_of(decl, convention: str | None, arg: str = "") -> tuple[str, str | None]:
    """(dtype kind, mask convention) of an argument laid out by a string. A {0,1} input (Kind.MASK: a keep
    vector, BERT's segment of each token) is passed as floats, or as integers where the argument's name says
    it indexes a table (SEGMENT_IDS: ``token_type_ids``)."""
    if decl.entry_kind == Kind.MASK and arg.lower() in SEGMENT_IDS:
        return "int", None
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
            # (a keyword its **kwargs takes: transformers' output_hidden_states:True)
            if arg not in params and not (_takes_kwargs(params) and arg.isidentifier()):
                raise BindingError(f"{where}: {who(fn)} has no parameter {arg!r} ({', '.join(params)})")
            causal = CAUSAL_SETTING.fullmatch(axis)
            if causal is not None and causal.group(2) not in eq.axes:
                raise BindingError(
                    f"{where}: {axis!r}: {causal.group(2)!r} is not an axis of {eq.id} ({', '.join(eq.axes)})"
                )
            if axis not in eq.axes and axis not in SETTINGS and causal is None:
                try:  # a constant over the sizes: scale:1/sqrt(d_k), ignore_index:-100, eps:1e-5
                    constant_value(axis, {a: 2 for a in eq.axes})
                except Exception:  # noqa: BLE001 - not a constant either: say what it may be
                    raise BindingError(
                        f"{where}: {axis!r} is not an axis of {eq.id} ({', '.join(eq.axes)}), dtype or "
                        "device, nor a constant over the axes (1/sqrt(d_k), -100)"
                    ) from None
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
        members = _tuple_members(axes_text)
        if members is not None:  # a tuple argument: state=(h_prev=b d_h, c_prev=b d_h)
            if explicit is not None:
                raise BindingError(f"{where}: the tuple argument {arg!r} names its symbols inside: {entry!r}")
            for slot, member in enumerate(members):
                name, sep, member_axes = member.partition("=")
                if not sep or not name.strip():
                    raise BindingError(
                        f"{where}, argument {arg!r}: each member of a tuple is SYMBOL=axes, found {member!r}"
                    )
                decl = _symbol_for(name.strip(), name.strip(), eq, decls, where)
                seen.add(decl.ascii)
                lay = _layout(arg, decl, member_axes.strip(), eq, f"{where}, argument {arg!r}[{slot}]", mask)
                args.append(dataclasses.replace(lay, slot=slot))
            continue
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
    try:
        flat = _flatten_results(right)
    except BindingError as exc:
        raise BindingError(f"{where}: {exc}") from None
    nested = any(len(path) > 1 or path[0] < 0 for path, _ in flat)
    if nested and len(_split(right)) == 1:  # one tuple returned as it is: "-> (h_t=b d_h, c_t=b d_h)"
        flat = [(path[1:], entry) for path, entry in flat]
    entries = [e for _, e in flat]
    for path, entry in flat:
        label = f"return{''.join(f'[{i}]' for i in path)}" if len(entries) > 1 or nested else "return"
        if entry == "_":
            outs.append(PatternLayout(None, label, "_", "float", None, False, path=path if nested else None))
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
        out = _layout(label, decl, axes_text, eq, f"{where}, {label}", mask, output=True)
        outs.append(dataclasses.replace(out, path=path) if nested else out)
    if not any(o.name for o in outs):
        raise BindingError(f"{where}: the layout maps no result to an output of {eq.id}")
    if any(is_key_mask(a.convention) for a in args):  # the per-key mask's batch axes are the leading ones
        args = [dataclasses.replace(a, lead_batch=True) for a in args]
        outs = [dataclasses.replace(o, lead_batch=True) for o in outs]
    binding = ImplBinding(eq, fn, tuple(args), tuple(sizes), False, tuple(outs), len(outs) > 1)
    return binding, bool(remaining)


def _takes_kwargs(params) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in params.values())


def _tuple_members(text: str) -> list[str] | None:
    """The members of a tuple written ``(h_prev=b d_h, c_prev=b d_h)``, or None for axes (``(M d_k) d_e``)."""
    text = text.strip()
    if not (text.startswith("(") and text.endswith(")")) or _depth_closes_early(text):
        return None
    members = [m.strip() for m in _split(text[1:-1])]
    return members if any("=" in m or m == "_" for m in members) else None


def _depth_closes_early(text: str) -> bool:
    """Whether the opening parenthesis of ``text`` closes before its end (``(M d_k) d_e``)."""
    depth = 0
    for k, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and k < len(text) - 1:
            return True
    return False


def _flatten_results(text: str, path: tuple[int, ...] = ()) -> list[tuple[tuple[int, ...], str]]:
    """Each result entry with its path in the returned value: ``b n d_h, (h_t=b d_h, c_t=b d_h)`` gives
    ``((0,), 'b n d_h'), ((1, 0), 'h_t=b d_h'), ((1, 1), 'c_t=b d_h')``. ``...`` stands for any number of
    values the audit ignores; the entries after it are counted from the end: ``_, (..., H_out=b n d_e)``
    reads the last of a tuple whose length the sizes set (a transformers model's ``hidden_states``, one
    per layer and the embeddings: its last is ``hidden_states[-1]``) at ``(1, -1)``."""
    entries = [e.strip() for e in _split(text)]
    if entries.count("...") > 1:
        raise BindingError(f"the results {text!r}: '...' may stand once in a tuple")
    skip = entries.index("...") if "..." in entries else len(entries)
    out = []
    for k, entry in enumerate(entries):
        if k == skip:
            continue
        index = k if k < skip else k - len(entries)
        members = _tuple_members(entry)
        if members is not None and len(path) < 4:
            out.extend(_flatten_results(", ".join(members), (*path, index)))
        else:
            out.append(((*path, index), entry))
    return out


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
    dtype, convention = ("float", None) if output else _dtype_of(decl, mask, param)
    if output and is_mask(decl) and mask not in (None, "additive"):  # a returned mask: read in its convention
        if is_key_mask(mask):
            raise BindingError(f"{where}: a returned mask is n×n; --mask {mask} is one value per key")
        convention = mask
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
    #: each stacked source as the spec parameters laid side by side in it ("W_i | U_i": [W_i U_i], their
    #: last axes joined); one name each when nothing is joined
    parts: tuple[tuple[str, ...], ...] = ()
    #: spec parameters filled negated (``-W_z``: torch's GRU holds the spec's update gate as 1 − z, i.e. its
    #: pre-activation negated, σ(−a) = 1 − σ(a))
    negated: frozenset[str] = frozenset()
    #: spec parameters filled transposed (``W_h.T``: each matrix, the last two axes, as xᵀ W reads it — a
    #: square weight stored (in, out) and used as ``x @ W``, which axis names alone cannot say)
    transposed: frozenset[str] = frozenset()

    def _terms(self) -> tuple[tuple[str, ...], ...]:
        return self.parts or tuple((s,) for s in self.sources)

    def value(self, example: Mapping[str, np.ndarray], sizes: Mapping[str, int], index: int | None = None):
        if self.mode != "map":
            return None
        arrays = [
            np.concatenate([self._part(example, p, index) for p in term], axis=-1) for term in self._terms()
        ]
        if len({a.shape for a in arrays}) > 1:
            names = [" | ".join(term) for term in self._terms()]
            shapes = ", ".join(f"{s} {list(a.shape)}" for s, a in zip(names, arrays, strict=True))
            raise ShapeMismatch(
                f"parameter mapping {self.path!r}: cannot stack {shapes}; tie their sizes (derive=, e.g. "
                "{'d_v': 'd_k'})",
                check="shape",
            )
        arr = np.stack(arrays) if len(arrays) > 1 else arrays[0]
        return self.layout.to_impl(arr, 0, torch.float64, "cpu", sizes).numpy()

    def _part(self, example, name: str, index: int | None) -> np.ndarray:
        a = np.asarray(example[name], dtype=np.float64)
        a = -a if name in self.negated else a
        a = np.take(a, index, axis=self.loop[1]) if self.loop is not None else a
        return np.swapaxes(a, -1, -2) if name in self.transposed else a

    def adjoint(self, grad: torch.Tensor, example, sizes: Mapping[str, int], index: int | None = None):
        """The gradient with respect to the module parameter, carried back to the spec parameters it was
        filled from (the mapping only moves entries: its adjoint moves them back, zeros elsewhere)."""
        g = self.layout.from_impl(grad, 0, sizes)
        terms = self._terms()
        stacked = list(g) if len(terms) > 1 else [g]
        out = {}
        for term, joined in zip(terms, stacked, strict=True):
            widths = [self._part(example, p, index).shape[-1] for p in term]
            pieces = np.split(joined, np.cumsum(widths)[:-1], axis=-1)
            for s, part in zip(term, pieces, strict=True):
                part = -part if s in self.negated else part  # the entries moved back, their sign too
                part = np.swapaxes(part, -1, -2) if s in self.transposed else part
                full = np.zeros(np.shape(example[s]))
                if self.loop is None:
                    full = full + part
                else:
                    where = [slice(None)] * full.ndim
                    where[self.loop[1]] = index
                    full[tuple(where)] = part
                out[s] = out[s] + full if s in out else full
        return out


def parse_param(path: str, text: str, eq: Equation) -> ParamMapping:
    where = f"parameter mapping {path!r}"
    text = str(text).strip()
    if text in ("0", "zero", "zeros"):
        return ParamMapping(path, text, (), "zero")
    if text == "keep":
        return ParamMapping(path, text, (), "keep")
    src_text, arrow, axes_text = text.partition("->")
    decls = {d.ascii: d for d in eq.params}
    signed = tuple(tuple(p.strip() for p in s.split("|")) for s in src_text.split(",") if s.strip())
    terms = tuple(tuple(_bare(p) for p in term) for term in signed)
    negated = frozenset(_bare(p) for term in signed for p in term if p.startswith("-"))
    transposed = frozenset(_bare(p) for term in signed for p in term if p.endswith(".T"))
    if not terms:
        raise BindingError(f"{where}: no spec parameter before '->' in {text!r}")
    for s in (p for term in terms for p in term):
        if s not in decls:
            raise BindingError(f"{where}: {s!r} is not a parameter of {eq.id} ({', '.join(decls) or 'none'})")
        if s in transposed and len(spec_axes(decls[s])) - len(getattr(decls[s], "indices", ())) != 2:
            raise BindingError(f"{where}: {s}.T transposes a matrix; {s} is not one")
    joined = any(len(term) > 1 for term in terms)
    if joined and re.search(r"\{(\w+)\}", path):
        raise BindingError(f"{where}: a per-layer path cannot join parameters side by side ('|')")
    sources = tuple(term[0] for term in terms)  # (each term's first part stands for its shape below)
    axes = _joined_axes(terms[0], decls, where, transposed)
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
    for term in terms[1:]:  # stacked: the same number of axes; the sizes must agree when filled
        if len(_joined_axes(term, decls, where, transposed)) != len(
            _joined_axes(terms[0], decls, where, transposed)
        ):
            raise BindingError(
                f"{where}: {sources[0]} and {term[0]} have different ranks and cannot be stacked"
            )
    if len(sources) > 1:
        if not arrow:
            raise BindingError(f"{where}: several sources need '-> axes' with {len(sources)} as their axis")
        axes = [sp.Integer(len(sources)), *axes]  # (the layer is taken from each source before stacking)
    names = axis_names(axes)
    if not arrow:
        axes_text = " ".join(f"({n.replace('·', ' ')})" if "·" in n else n for n in names)
    resolved = resolve(parse_axes(axes_text, where), axes, names, where, batch_ok=False)
    layout = PatternLayout(None, path, axes_text, "float", resolved, False)
    every = tuple(p for term in terms for p in term)
    return ParamMapping(path, text, every, "map", layout, loop, terms if joined else (), negated, transposed)


def mapped_sources(text: str) -> list[str]:
    """The spec parameters a --param text fills, by name: ``W_r, -W_z | U_z -> …`` gives W_r, W_z, U_z
    (and ``W_h.T`` W_h); none for ``0`` and ``keep``."""
    if text.strip() in ("0", "zero", "zeros", "keep"):
        return []
    return [_bare(p) for term in text.split("->")[0].split(",") for p in term.split("|") if p.strip()]


def _bare(source: str) -> str:
    """A source's spec name without its sign and transposition: ``-W_z`` and ``W_h.T`` name W_z and W_h."""
    return source.strip().removeprefix("-").strip().removesuffix(".T").strip()


def _joined_axes(term: tuple[str, ...], decls, where: str, transposed: frozenset[str] = frozenset()) -> list:
    """The spec axes of parameters laid side by side (``W_i | U_i``): the same leading axes, the last ones
    added (d_h × (d_e + d_h)); a transposed one's last two swapped."""

    def axes_of(p: str) -> list:
        axes = list(spec_axes(decls[p]))
        return [*axes[:-2], axes[-1], axes[-2]] if p in transposed else axes

    shapes = [axes_of(p) for p in term]
    first = shapes[0]
    if len(term) == 1:
        return list(first)
    for p, shape in zip(term[1:], shapes[1:], strict=True):
        if len(shape) != len(first) or any(
            not same_size(a, b) for a, b in zip(shape[:-1], first[:-1], strict=False)
        ):
            raise BindingError(
                f"{where}: {term[0]} and {p} cannot be laid side by side: their axes before the last differ"
            )
    return [*first[:-1], sp.Add(*(s[-1] for s in shapes))]


#: Pattern, PatternLayout and parse_axes live in audit.pattern (re-exported for callers importing them here).
__all__ = [
    "ParamMapping",
    "Pattern",
    "PatternLayout",
    "layout_binding",
    "mapped_sources",
    "parse_axes",
    "parse_param",
]
