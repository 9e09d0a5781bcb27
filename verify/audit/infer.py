"""Inference of a function's binding: ``lmspec audit FILE.py:f --as ID`` with no ``--layout``.

lmspec works out the layout string a user would write, from what the code says and what its shapes show,
and then audits with it exactly as if the user had written it (the report and ``--explain`` print it).

**What decides.**

1. *Names* map arguments to the equation's symbols: the symbol's own name in any case (``q`` is Q), then
   the names real code uses (``query``, ``hidden_states``, ``x``, ``logits``, ``labels``, ``attention_mask``
   …, :data:`SYNONYMS`), and integer arguments to the sizes they carry (``seq_len`` is n, ``d_model`` is
   d_e). An ``is_causal`` flag is passed ``True`` and the mask pinned causal.
2. *A mask's convention* comes from its name, never from values (:data:`MASK_NAMES`): ``key_padding_mask``
   is torch's per-key ``True`` = padding, ``attention_mask`` Hugging Face's per-key 1 = attend (or its
   extended additive form), ``attn_mask`` torch's additive float mask, any other ``mask`` a keep mask
   (``masked_fill(mask == 0, -inf)``, the Annotated Transformer's and most tutorials').
3. *Shapes* decide the axis orders, probed at distinct sizes (every axis of the equation, the batch and head
   axes each a different number): tokens as rows or as columns, one or two leading batch axes, where a mask
   sits. A candidate binding must run and return the equation's output shape.

**The rule that keeps a bug visible: values never choose a binding.** Among bindings that fit the shapes
lmspec takes the first in a fixed order of preference (the most batch axes, tokens as rows), and among
conventions a name does not fix it takes the documented default; it never tries bindings until one passes.
A target whose mask polarity, scale or orientation differs from the chosen binding therefore fails or is
named as a variant ("mask polarity inverted") — the verdict a written layout would give — instead of
passing under a binding chosen to hide it. Bindings that fit equally but would mean different things are
named in the notes, with the command for each.
"""

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import product

import torch

from ...spec import Equation, Kind
from .._errors import BindingError
from ..binding import is_mask
from ..strategies import size_tuples

#: The names real code gives the equation's tensors, by the kind of the symbol they can take. A name matching
#: the symbol itself (any case) wins over these.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "Q": ("query", "queries", "xq", "q_states", "query_states", "q"),
    "K": ("key", "keys", "xk", "k_states", "key_states", "k"),
    "V": ("value", "values", "xv", "v_states", "value_states", "v"),
    "Y_hat": ("probs", "probabilities", "y_hat", "p", "predictions", "preds"),
    "f_t": ("f", "forget", "forget_gate", "f_gate"),
    "i_t": ("i", "input_gate", "i_gate", "in_gate"),
    "o_t": ("o", "output_gate", "o_gate", "out_gate"),
    "c_tilde": ("g", "candidate", "c_hat", "cell_input", "g_t", "cell_gate", "c_candidate"),
    "c_prev": ("c", "cx", "c_0", "prev_c", "c_t_1", "cell", "cell_state", "c_tm1"),
    "h_prev": ("hx", "h_0", "prev_h", "h_t_1", "hidden", "h_tm1", "state"),
    "x_t": ("x", "input", "inputs", "xt", "x_i"),
    "alpha": ("weight", "gamma", "g", "scale", "ln_weight", "w", "gain"),
    "beta": ("bias", "b", "shift", "ln_bias", "offset"),
}
#: Names of the one real token input of an equation that has one (H, X, C …), and of logits (Z).
STREAM_NAMES = ("x", "hidden_states", "hidden", "h", "inputs", "input", "src", "tgt", "embeddings", "seq",
                "features", "inputs_embeds", "z", "logits", "scores")  # fmt: skip
#: Names of label ids (an INDEX input) and of a loss's keep mask (a MASK input).
INDEX_NAMES = ("labels", "targets", "target", "y", "ids", "input_ids", "tokens", "token_ids", "k")
KEEP_NAMES = ("mask", "attention_mask", "padding_mask", "loss_mask", "keep", "valid", "keep_mask")
#: Integer arguments and the axis whose size they take.
SIZE_NAMES: dict[str, tuple[str, ...]] = {
    "n_max": ("n_max", "max_len", "num_positions", "n_positions", "max_position_embeddings", "max_seq_len",
              "n_ctx", "block_size", "seq_len", "length", "n"),
    "n": ("n", "size", "seq_len", "seq_length", "length", "sz", "t", "n_positions", "max_len", "block_size",
          "n_ctx", "num_positions", "seqlen"),
    "d_e": ("d_e", "d_model", "dim", "hidden_size", "embed_dim", "n_embd", "d_embed", "emb_dim", "d_hid"),
    "d_k": ("d_k", "head_dim", "d_head", "dim_head", "head_size"),
    "M": ("m", "n_head", "n_heads", "nhead", "num_heads", "heads", "num_attention_heads"),
    "v": ("v", "vocab_size", "n_vocab", "num_classes", "vocab"),
    "d_f": ("d_f", "d_ff", "dim_feedforward", "intermediate_size", "ffn_dim", "d_inner", "hidden_dim"),
}  # fmt: skip
#: A mask argument's name -> the conventions (``--mask``) it may mean, in order of preference; every
#: convention here agrees with the name's documented meaning, so shapes alone choose among them.
MASK_NAMES: dict[str, tuple[str, ...]] = {
    "key_padding_mask": ("key_padding",),
    "src_key_padding_mask": ("key_padding",),
    "tgt_key_padding_mask": ("key_padding",),
    "padding_mask": ("key_padding",),
    "attention_mask": ("key_keep_int",),
    "extended_attention_mask": ("key_additive",),
    "attn_mask": ("additive",),
    "attn_bias": ("additive",),
    "bias": ("additive",),
}
#: What each named convention means, for the report's note.
NAMED_MEANING = {
    "key_padding_mask": "torch's key_padding_mask: True = padding",
    "src_key_padding_mask": "torch's key_padding_mask: True = padding",
    "tgt_key_padding_mask": "torch's key_padding_mask: True = padding",
    "padding_mask": "a padding mask: True = padding",
    "attention_mask": "Hugging Face's attention_mask: 1 = attend, 0 = padding; the extended additive "
    "form its layers take (0 / −∞) is --mask key_additive",
    "attn_mask": "torch's float attn_mask: added to the scores",
    "attn_bias": "a bias added to the scores",
    "bias": "a bias added to the scores",
    "extended_attention_mask": "Hugging Face's extended mask: added to the scores",
}
#: Any other argument whose name contains "mask": a keep mask (True / 1 = attend), whole or per key.
DEFAULT_MASK = ("bool_keep", "key_keep")
#: Flags that say a function builds the causal mask itself.
CAUSAL_FLAGS = ("is_causal", "causal")


class InferenceError(BindingError):
    """No binding fits: what was tried, and what to write instead."""


@dataclass
class Inferred:
    """A binding worked out for a target: the options a user would have written, and why."""

    layout: str
    mask: str | None = None
    notes: list[str] = field(default_factory=list)
    alternatives: list[str] = field(default_factory=list)

    def options(self) -> list[str]:
        """The command-line options that pin this binding."""
        out = ["--layout", self.layout]
        if self.mask is not None:
            out += ["--mask", self.mask]
        return out

    def as_json(self) -> dict:
        return {
            "layout": self.layout,
            "mask": self.mask,
            "options": self.options(),
            "notes": list(self.notes),
            "alternatives": list(self.alternatives),
        }


@dataclass
class _Slot:
    arg: str
    role: str  # "tensor", "mask", "size", "setting", "flag", "absent"
    symbol: str | None = None
    axis: str | None = None
    written: bool = False  # the argument's name does not name the symbol: write arg:SYMBOL=axes
    param: bool = False  # one of the equation's parameters: no batch axes


def _params(fn) -> list[inspect.Parameter]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise InferenceError(f"cannot read the signature of {fn!r} ({exc})") from exc
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
             inspect.Parameter.KEYWORD_ONLY)  # fmt: skip
    return [
        p
        for i, p in enumerate(sig.parameters.values())
        if p.kind in kinds and not (i == 0 and p.name == "self")
    ]


def _stream(eq: Equation) -> str | None:
    reals = [d.ascii for d in eq.inputs if d.entry_kind == Kind.REAL]
    return reals[0] if len(reals) == 1 else None


def _slots(fn, eq: Equation) -> list[_Slot]:
    """Each argument's role, by its name; InferenceError for a required argument nothing explains."""
    from ...spec import Family

    # a function takes the equation's parameters as arguments too (not per-head families: their layouts are
    # written by hand), and not a scalar it fixes with a default (eps=1e-5)
    params = {d.ascii: d for d in eq.params if not isinstance(d, Family) and not d.is_scalar}
    symbols = {**{d.ascii: d for d in eq.inputs}, **params}
    by_lower = {name.lower(): name for name in symbols}
    masks = [d.ascii for d in eq.inputs if d.entry_kind == Kind.ADDITIVE_MASK]
    stream = _stream(eq)
    index = [d.ascii for d in eq.inputs if d.entry_kind == Kind.INDEX]
    keeps = [d.ascii for d in eq.inputs if d.entry_kind == Kind.MASK]
    slots: list[_Slot] = []
    taken: set[str] = set()
    unexplained = []
    for p in _params(fn):
        name, low = p.name, p.name.lower()
        slot = None
        if name in by_lower.values() or low in by_lower:
            symbol = by_lower.get(low, name)
            role = "mask" if symbol in masks else "tensor"
            slot = _Slot(name, role, symbol, written=symbol != name and symbol.lower() != low)
        elif low in CAUSAL_FLAGS and masks:
            slot = _Slot(name, "flag")
        elif masks and ("mask" in low or low in MASK_NAMES):  # a layout reads "mask" in a name as the mask
            slot = _Slot(name, "mask", masks[0], written="mask" not in low or len(masks) > 1)
        elif keeps and low in KEEP_NAMES:
            slot = _Slot(name, "tensor", keeps[0], written=True)
        elif index and low in INDEX_NAMES:
            slot = _Slot(name, "tensor", index[0], written=True)
        else:
            for symbol, names in SYNONYMS.items():
                if symbol in symbols and low in names and symbol not in taken:
                    slot = _Slot(name, "tensor", symbol, written=True)
                    break
            if slot is None and stream is not None and stream not in taken and low in STREAM_NAMES:
                slot = _Slot(name, "tensor", stream, written=True)
            if slot is None:
                for axis, names in SIZE_NAMES.items():
                    if axis in eq.axes and low in names:
                        slot = _Slot(name, "size", axis=axis)
                        break
        if slot is None and low in ("dtype", "device"):
            slot = _Slot(name, "setting", axis=low)
        if slot is None:
            if p.default is inspect.Parameter.empty:
                unexplained.append(name)
            continue
        if slot.symbol is not None:
            if slot.symbol in taken:  # self-attention called f(x, x, x) is written by hand
                if p.default is inspect.Parameter.empty:
                    unexplained.append(name)
                continue
            taken.add(slot.symbol)
        slot.param = slot.symbol in params
        slots.append(slot)
    if unexplained:
        raise InferenceError(
            f"cannot tell which of {eq.id}'s symbols ({', '.join(symbols)}) or sizes the argument"
            f"{'s' if len(unexplained) > 1 else ''} {', '.join(map(repr, unexplained))} take"
            f"{'' if len(unexplained) > 1 else 's'}: write the binding with --layout (docs/audit.md)"
        )
    missing = [
        s for s in symbols if s not in taken and not (s in masks and any(x.role == "flag" for x in slots))
    ]
    return slots + [_Slot(m, "absent", m) for m in missing]


def _row_orders(decl) -> list[list[str]]:
    """A tensor's axis orders to try: tokens as rows first (the order real code uses), then the other."""
    from .pattern import axis_names

    names = [a for a in axis_names(decl.shape) if a != "1"]  # a vector declared n×1 is laid out as n
    if len(names) != 2:
        return [names]
    orders = [names[::-1], names] if names[-1] == "n" else [names, names[::-1]]
    return orders


def _probe_sizes(eq: Equation, fixed, derive) -> tuple[dict[str, int], int, int]:
    sizes = size_tuples(eq, 3, 7919, "large", fixed=fixed, derive=derive)[-1]
    used = set(sizes.values())
    free = [p for p in (2, 3, 5, 7, 11, 13, 17, 19, 23) if p not in used]
    return dict(sizes), free[0], free[1]


def _shape(axes: list[str], sizes: Mapping[str, int], batch: int, heads: int) -> tuple[int, ...]:
    values = {"b": batch, "h": heads, "1": 1}
    return tuple(values[a] if a in values else int(sizes[a]) for a in axes)


def _mask_candidates(arg: str, prefix: list[str], given: str | None) -> list[tuple[str, list[str]]]:
    """(convention, axes) for a mask argument, in order of preference: the conventions its name means, or
    the one the user ``given``."""
    conventions = (given,) if given else MASK_NAMES.get(arg.lower(), DEFAULT_MASK)
    out = []
    for convention in conventions:
        if convention == "key_additive":  # Hugging Face's extended mask
            out += [(convention, ["b", "1", "1", "n"]), (convention, ["b", "1", "n"])]
        elif convention == "key_keep_int":  # Hugging Face's attention_mask: as its models take it, expanded
            out += [(convention, ["b", "n"]), (convention, ["b", "1", "1", "n"])]
        elif convention.startswith("key_"):  # one value per key, or broadcast over the queries already
            out += [(convention, ["b", "n"]), (convention, ["b", "1", "n"])]
        else:
            full = [*prefix, "n", "n"]
            out += [(convention, full), (convention, ["b", "1", "n", "n"]), (convention, ["n", "n"])]
    seen, unique = set(), []
    for c in out:
        key = (c[0], tuple(c[1]))
        if key not in seen:
            seen.add(key)
            unique.append(c)
    return unique


def _probe_value(convention: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A mask that masks nothing, in ``convention``'s encoding."""
    if convention in ("bool_keep", "key_keep"):
        return torch.ones(shape, dtype=torch.bool)
    if convention in ("bool_ignore", "key_padding"):
        return torch.zeros(shape, dtype=torch.bool)
    if convention == "key_keep_int":
        return torch.ones(shape, dtype=torch.long)
    if convention == "key_keep_float":
        return torch.ones(shape, dtype=torch.float64)
    return torch.zeros(shape, dtype=torch.float64)


def _text(axes: list[str]) -> str:
    return " ".join(axes) if axes else "()"


def infer_function(
    fn, eq: Equation, *, fixed=None, derive=None, label: str = "the target", mask: str | None = None
) -> Inferred:
    """The layout (and mask convention) of ``fn`` for ``eq``, from names and shapes (module docstring).
    ``mask``: the convention the user gave (--mask), which a mask argument's name then does not override."""
    slots = _slots(fn, eq)
    absent = [s for s in slots if s.role == "absent"]
    if any(not is_mask(eq.declared(s.symbol)) for s in absent):  # a mask or keep vector may be built in
        names = ", ".join(s.symbol for s in absent if not is_mask(eq.declared(s.symbol)))
        raise InferenceError(
            f"{label}: no argument's name says it takes {names} of {eq.id}; write the binding with --layout"
        )
    sizes, batch, heads = _probe_sizes(eq, fixed, derive)
    tensors = [s for s in slots if s.role == "tensor"]
    mask_slots = [s for s in slots if s.role == "mask"]
    flags = [s for s in slots if s.role == "flag"]
    per_head = "M" not in eq.axes and any(s.symbol in ("Q", "K", "V") for s in tensors)
    prefixes = [["b", "h"], ["b"], []] if per_head else [["b"], []]
    outputs = list(eq.outputs)
    tried = 0
    fits: list[tuple[list[str], dict, tuple | None, object]] = []
    for prefix in prefixes:
        order_choices = [_row_orders(eq.declared(s.symbol)) for s in tensors]
        mask_choices = [_mask_candidates(s.arg, prefix, mask) for s in mask_slots] or [[None]]
        for orders in product(*order_choices):
            for masks in product(*mask_choices):
                tried += 1
                kwargs = {}
                for s, axes in zip(tensors, orders, strict=True):
                    decl = eq.declared(s.symbol)
                    shape = _shape([*([] if s.param else prefix), *axes], sizes, batch, heads)
                    if decl.entry_kind == Kind.INDEX:
                        kwargs[s.arg] = torch.zeros(shape, dtype=torch.long)
                    elif decl.entry_kind == Kind.MASK:
                        kwargs[s.arg] = torch.ones(shape, dtype=torch.float64)
                    else:
                        kwargs[s.arg] = torch.randn(shape, dtype=torch.float64)
                for s, m in zip(mask_slots, masks, strict=False):
                    if m is not None:
                        kwargs[s.arg] = _probe_value(m[0], _shape(m[1], sizes, batch, heads))
                for s in slots:
                    if s.role == "setting":
                        kwargs[s.arg] = torch.float64 if s.axis == "dtype" else torch.device("cpu")
                    elif s.role == "size":
                        kwargs[s.arg] = int(sizes[s.axis])
                    elif s.role == "flag":
                        kwargs[s.arg] = True
                try:
                    with torch.no_grad():
                        result = fn(**kwargs)
                except Exception:  # noqa: BLE001 - this candidate does not fit
                    continue
                returned = _returned(result, outputs, prefix, sizes, batch, heads)
                if returned is None:
                    continue
                fits.append(
                    (prefix, dict(zip((s.arg for s in tensors), orders, strict=True)), masks, returned)
                )
        if fits:
            break
    if not fits:
        raise InferenceError(
            f"{label}: no layout fits {eq.id}: {tried} candidate layouts (tokens as rows or columns, "
            f"{' or '.join(_text(p) or 'no' for p in prefixes)} batch axes"
            + (", the masks' conventions by name" if mask_slots else "")
            + ") either raised or returned another shape; write the binding with --layout (docs/audit.md)"
        )
    prefix, orders, masks, returned = fits[0]
    returned_mask = _returned_mask(fn, eq, fits[0], slots, sizes, batch, heads)
    entries = []
    for s in slots:
        if s.role == "tensor":
            head = f"{s.arg}:{s.symbol}" if s.written else s.arg
            entries.append(f"{head}={_text([*([] if s.param else prefix), *orders[s.arg]])}")
        elif s.role in ("size", "setting"):
            entries.append(f"{s.arg}:{s.axis}")
        elif s.role == "flag":
            entries.append(f"{s.arg}:True")
    chosen = None
    for s, m in zip(mask_slots, masks, strict=False):
        if m is not None:
            head = f"{s.arg}:{s.symbol}" if s.written else s.arg
            entries.append(f"{head}={_text(m[1])}")
            chosen = m[0]
    notes = []
    if mask is None and mask_slots and masks[0] is not None:
        default = "a keep mask: the default where the name says nothing"
        why = NAMED_MEANING.get(mask_slots[0].arg.lower(), default)
        notes.append(f"{mask_slots[0].arg}: --mask {masks[0][0]} ({why}; values never choose it)")
    takes_s = any(d.entry_kind == Kind.ADDITIVE_MASK for d in eq.inputs)
    if flags:
        chosen = "causal"
        notes.append(f"{flags[0].arg}=True: the target builds the causal mask itself (--mask causal)")
    elif not mask_slots and takes_s and mask is None and _says_causal(fn, label):
        chosen = "causal"
        notes.append("no argument takes a mask and the target's name says causal: S is the causal mask "
                     "(--mask causal)")  # fmt: skip
    elif not mask_slots and takes_s and mask is None:
        chosen = "none"
        notes.append("no argument takes a mask: the target is held to S = 0 (--mask none); say --mask causal "
                     "if it masks the future itself")  # fmt: skip
    if returned_mask and mask is None:
        chosen = "bool_keep" if returned_mask == "bool" else None
        if chosen:
            notes.append("it returns a boolean mask: read as a keep mask (True = attend), the default where "
                         "nothing says otherwise (--mask bool_ignore for True = masked)")  # fmt: skip
    layout = f"{', '.join(entries)} -> {returned}"
    alternatives = []
    for other in fits[1:]:
        if other[1] != orders:
            alternatives.append(", ".join(f"{a}={_text([*other[0], *o])}" for a, o in other[1].items()))
    if alternatives:
        notes.append(f"other axis orders fit the shapes as well ({len(alternatives)}); the first in lmspec's "
                     "order of preference (tokens as rows) was taken")  # fmt: skip
    return Inferred(layout, mask or chosen, notes, alternatives[:5])


def _returned(result, outputs, prefix, sizes, batch, heads) -> str | None:
    """The returns part of the layout (after ``->``) when ``result``, or its first element, has the shape of
    one of the equation's outputs (the rest of a tuple is ignored, ``_``); else None."""
    values = list(result) if isinstance(result, tuple | list) else [result]
    if not values or not isinstance(values[0], torch.Tensor):
        return None
    # a loss returns its mean: where several outputs have the shape, "loss" is the one training code returns
    for out in sorted(outputs, key=lambda o: o.ascii != "loss"):
        for order in _row_orders(out):
            for lead in (prefix, [], ["1"]):
                if tuple(values[0].shape) == _shape([*lead, *order], sizes, batch, heads):
                    name = "" if out is outputs[0] else f"{out.ascii}="
                    first = name + _text([*lead, *order])
                    return ", ".join([first, *["_"] * (len(values) - 1)])
    return None


def _says_causal(fn, label: str) -> bool:
    """Whether the target's own name (function, class or the name it is audited under) says it is causal."""
    names = (getattr(fn, "__qualname__", ""), getattr(fn, "__name__", ""), label)
    return any("causal" in str(n).lower() for n in names)


def _returned_mask(fn, eq: Equation, fit, slots, sizes, batch, heads) -> str | None:
    """ "bool" when the target returns the equation's mask output as booleans or integers, "float" as floats;
    None when its output is no mask."""
    if not any(o.entry_kind == Kind.ADDITIVE_MASK for o in eq.outputs[:1]):
        return None
    kwargs = {s.arg: int(sizes[s.axis]) for s in slots if s.role == "size"}
    kwargs.update({s.arg: torch.float64 if s.axis == "dtype" else torch.device("cpu")
                   for s in slots if s.role == "setting"})  # fmt: skip
    if any(s.role in ("tensor", "mask") for s in slots):
        return None
    try:
        value = fn(**kwargs)
    except Exception:  # noqa: BLE001 - it ran once already; no verdict here either way
        return None
    value = value[0] if isinstance(value, tuple | list) else value
    return "float" if torch.is_floating_point(value) else "bool"
