"""Inference of a function's binding (the layout of its arguments and returns, its mask's convention), by
names and by shapes probed at distinct sizes; a module's forward goes through here too (infer_forward).
"""

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import product

import torch

from ....spec import Equation, Kind
from ..._errors import BindingError
from ...binding import is_mask, setting_value, stacked_steps
from ...strategies import size_tuples
from ..layout import SEGMENT_IDS
from ._code import (
    TORCH_IGNORE_INDEX,
    _return_names,
    _says_causal,
    _unpacked_arguments,
    function_eps,
    loss_code,
)
from ._names import (
    CAUSAL_FLAGS,
    CAUSAL_INPUTS,
    DEFAULT_MASK,
    INDEX_NAMES,
    INITIAL_STATES,
    KEEP_NAMES,
    MASK_NAMES,
    NAMED_MEANING,
    OUTPUT_NAMES,
    SCALAR_NAMES,
    SECONDARY,
    SIZE_NAMES,
    STREAM_NAMES,
    SYNONYMS,
)


class InferenceError(BindingError):
    """No binding fits: what was tried, and what to write instead."""


@dataclass
class Inferred:
    """A binding worked out for a target: the options a user would have written, and why."""

    layout: str
    mask: str | None = None
    notes: list[str] = field(default_factory=list)
    alternatives: list[str] = field(default_factory=list)
    #: a loss's label conventions, read from its code (losses.Labels): --labels shift, --ignore-index, --pool
    labels: str | None = None
    ignore_index: int | None = None
    pool: str | None = None
    #: constants its code fixes (ε of its layer norm): --constant
    constants: dict[str, float] = field(default_factory=dict)

    def options(self) -> list[str]:
        """The command-line options that pin this binding."""
        out = [opt for k, v in self.constants.items() for opt in ("--constant", f"{k}={v:g}")]
        out += ["--layout", self.layout]
        if self.mask is not None:
            out += ["--mask", self.mask]
        if self.labels is not None:
            out += ["--labels", self.labels]
        if self.ignore_index is not None:
            out += ["--ignore-index", str(self.ignore_index)]
        if self.pool is not None:
            out += ["--pool", self.pool]
        return out

    def as_json(self) -> dict:
        return {
            "layout": self.layout,
            "mask": self.mask,
            "labels": self.labels,
            "ignore_index": self.ignore_index,
            "pool": self.pool,
            "constants": dict(self.constants),
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
    shared: bool = False  # one of several arguments that take the same tensor (query, key, value: H)
    group: str | None = None  # the tuple argument this slot is a member of (``state`` = (h, c))


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
    reals = [d.ascii for d in eq.inputs if d.entry_kind == Kind.REAL and d.ascii not in SECONDARY]
    return reals[0] if len(reals) == 1 else None


def _slots(fn, eq: Equation, with_params: bool = True) -> list[_Slot]:
    """Each argument's role, by its name; InferenceError for a required argument nothing explains."""
    from ....spec import Family

    # a function takes the equation's parameters as arguments too (not per-head families: their layouts are
    # written by hand), and not a scalar it fixes with a default (eps=1e-5)
    params = {d.ascii: d for d in eq.params if not isinstance(d, Family) and not d.is_scalar and with_params}
    symbols = {**{d.ascii: d for d in eq.inputs}, **params}
    by_lower = {name.lower(): name for name in symbols}
    masks = [d.ascii for d in eq.inputs if d.entry_kind == Kind.ADDITIVE_MASK]
    stream = _stream(eq)
    index = [d.ascii for d in eq.inputs if d.entry_kind == Kind.INDEX]
    keeps = [d.ascii for d in eq.inputs if d.entry_kind == Kind.MASK]
    slots: list[_Slot] = []
    taken: set[str] = set()
    unexplained = []

    def by_name(name: str) -> _Slot | None:
        low = name.lower()
        slot = None
        if name in by_lower.values() or low in by_lower:
            symbol = by_lower.get(low, name)
            role = "mask" if symbol in masks else "tensor"
            slot = _Slot(name, role, symbol, written=symbol != name and symbol.lower() != low)
        elif low in CAUSAL_FLAGS and masks:
            slot = _Slot(name, "flag")
        elif low in INITIAL_STATES and "d_h" in eq.axes and not any(s.endswith("_prev") for s in symbols):
            slot = _Slot(name, "size", axis="None")  # h_0 = 0 built in: torch's layers read None as zeros
        elif low in CAUSAL_INPUTS and not masks and (axis := _built_in_causal(eq)) is not None:
            slot = _Slot(name, "size", axis=_causal_input(fn, name, axis))  # the decoder's tgt_mask: S^causal
        elif masks and ("mask" in low or low in MASK_NAMES):  # a layout reads "mask" in a name as the mask
            slot = _Slot(name, "mask", masks[0], written="mask" not in low or len(masks) > 1)
        elif keeps and low in KEEP_NAMES:
            slot = _Slot(name, "tensor", keeps[0], written=True)
        elif keeps and low in SEGMENT_IDS:  # BERT's segment of each token: ids into its table G
            slot = _Slot(name, "tensor", keeps[0], written=True)
        elif index and (low in INDEX_NAMES or (stream is None and len(index) == 1 and low in STREAM_NAMES)):
            # ids by their name, or the one input of an equation whose only input is ids (nn.Embedding's)
            slot = _Slot(name, "tensor", index[0], written=True)
        else:
            for symbol, names in SYNONYMS.items():
                if symbol in symbols and low in names and symbol not in taken:
                    slot = _Slot(name, "tensor", symbol, written=True)
                    break
            if slot is None and stream is not None and stream not in taken and low in STREAM_NAMES:
                slot = _Slot(name, "tensor", stream, written=True)
            if slot is None and stream is not None and "Q" not in symbols:  # self-attention as f(x, x, x)
                if any(low in SYNONYMS[s] for s in ("Q", "K", "V")):
                    slot = _Slot(name, "tensor", stream, written=True, shared=True)
                    taken.add(stream)
            if slot is None:
                for axis, names in SIZE_NAMES.items():
                    if axis in eq.axes and low in names:
                        slot = _Slot(name, "size", axis=axis)
                        break
        if slot is None and low in ("dtype", "device"):
            slot = _Slot(name, "setting", axis=low)
        return slot

    unpacked = _unpacked_arguments(fn)
    for p in _params(fn):
        name = p.name
        if (
            name in unpacked
        ):  # ``h, c = state``: a tuple (whatever its own name), its members named by the code
            members = _tuple_members(name, unpacked[name], by_name, taken)
            if members is not None:
                slots += members
                continue
        slot = by_name(name)
        if slot is not None and slot.axis == "None" and p.default is not inspect.Parameter.empty:
            continue  # an initial state with a default keeps it (None: zeros in torch's layers)
        if slot is None and with_params:  # a scalar it takes: τ; ε only where required (else its default)
            slot = _scalar_slot(name, eq, taken, required=p.default is inspect.Parameter.empty)
        if slot is None:
            if p.default is inspect.Parameter.empty:
                unexplained.append(name)
            continue
        if slot.symbol is not None and not slot.shared:
            if slot.symbol in taken:  # two arguments named for one symbol: written by hand
                if p.default is inspect.Parameter.empty:
                    unexplained.append(name)
                continue
            taken.add(slot.symbol)
        slot.param = slot.symbol in params or slot.symbol in {d.ascii for d in eq.params if d.is_scalar}
        slots.append(slot)
    if unexplained:
        raise InferenceError(
            f"cannot tell which of {eq.id}'s symbols ({', '.join(symbols)}) or sizes the argument"
            f"{'s' if len(unexplained) > 1 else ''} {', '.join(map(repr, unexplained))} take"
            f"{'' if len(unexplained) > 1 else 's'}: write the binding with --layout (docs/audit.md)"
        )
    if any(x.role == "mask" for x in slots):  # a mask is taken: is_causal keeps its default (False)
        slots = [x for x in slots if x.role != "flag"]
    flagged = any(x.role == "flag" for x in slots)
    missing = [s for s in symbols if s not in taken and not (s in masks and flagged)]
    return slots + [_Slot(m, "absent", m) for m in missing]


def _scalar_slot(arg: str, eq: Equation, taken: set[str], required: bool) -> _Slot | None:
    """The slot of an argument that takes one of the equation's scalar parameters (a temperature τ, a
    required layer norm's ε), by the symbol's own name or SCALAR_NAMES; passed a 0-d tensor
    (``temperature:tau=()``). An ε with a default is left to it (the module's or the audit's --constant)."""
    low = arg.lower()
    for d in eq.params:
        named = low == d.ascii.lower() or low in SCALAR_NAMES.get(d.ascii, ())
        if d.is_scalar and d.ascii not in taken and named and (required or d.ascii != "eps"):
            return _Slot(arg, "tensor", d.ascii, written=low != d.ascii.lower())
    return None


def _tuple_members(arg: str, names: list[str], by_name, taken: set[str]) -> list[_Slot] | None:
    """The slots of a tuple argument the code unpacks by name (``h, c = state``: an LSTM's state, as
    nn.LSTMCell takes it), one per member, in the code's order; None unless every member's name says which
    of the equation's tensors it is."""
    members: list[_Slot] = []
    for k, member in enumerate(names):
        slot = by_name(member)
        if slot is None or slot.role != "tensor" or slot.symbol in taken or slot.shared:
            taken.difference_update(m.symbol for m in members)
            return None
        taken.add(slot.symbol)
        slot.arg, slot.group, slot.written = f"{arg}.{k}", arg, True
        members.append(slot)
    return members


#: The axes that count tokens: a sequence's, a decoder's and its encoder's.
TOKEN_AXES = ("n", "n_d", "n_e")


def _row_orders(decl) -> list[list[str]]:
    """A tensor's axis orders to try: tokens as rows first (the order real code uses), then the other."""
    from ..pattern import axis_names

    names = [a for a in axis_names(decl.shape) if a != "1"]  # a vector declared n×1 is laid out as n
    if len(names) != 2:
        return [names]
    orders = [names[::-1], names] if names[-1] in TOKEN_AXES else [names, names[::-1]]
    return orders


def probe_sizes(eq: Equation, fixed, derive) -> tuple[dict[str, int], int, int]:
    sizes = size_tuples(eq, 3, 7919, "large", fixed=fixed, derive=derive)[-1]
    used = set(sizes.values())
    free = [p for p in (2, 3, 5, 7, 11, 13, 17, 19, 23) if p not in used]
    return dict(sizes), free[0], free[1]


def _shape(axes: list[str], sizes: Mapping[str, int], batch: int, heads: int) -> tuple[int, ...]:
    values = {"b": batch, "h": heads, "1": 1}
    return tuple(values[a] if a in values else int(a) if a.isdigit() else int(sizes[a]) for a in axes)


def _mask_candidates(
    arg: str, prefix: list[str], given: str | None, hf_layer: bool = False
) -> list[tuple[str, list[str]]]:
    """(convention, axes) for a mask argument, in order of preference: the conventions its name means, or
    the one the user ``given``. In a transformers module (``hf_layer``), a 4-D ``attention_mask`` is the
    additive mask (0 / −∞) the model builds for its layers, not the model's 1 / 0 input expanded."""
    conventions = (given,) if given else MASK_NAMES.get(arg.lower(), DEFAULT_MASK)
    out = []
    for convention in conventions:
        if convention == "key_additive":  # Hugging Face's extended mask
            out += [(convention, ["b", "1", "1", "n"]), (convention, ["b", "1", "n"])]
        elif convention == "key_keep_int" and hf_layer:  # a model's input, or what the model hands its layers
            out += [
                (convention, ["b", "n"]),
                ("additive", ["b", "1", "n", "n"]),
                ("key_additive", ["b", "1", "1", "n"]),
            ]
        elif convention == "key_keep_int":  # Hugging Face's attention_mask: as its models take it, expanded
            out += [(convention, ["b", "n"]), (convention, ["b", "1", "1", "n"])]
        elif convention == "key_lengths":  # a count per sequence: laid out as the key row it counts
            out += [(convention, ["b", "n"])]
        elif convention.startswith("key_"):  # one value per key, or broadcast over the queries already
            out += [(convention, ["b", "n"]), (convention, ["b", "1", "n"])]
        else:
            full = [] if tuple(prefix) == SEQ_FIRST else [*prefix]
            full = [*full, "n", "n"]
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
    if convention == "key_lengths":  # every key real: the full length, one per sequence
        return torch.full(shape[:-1], shape[-1], dtype=torch.long)
    return torch.zeros(shape, dtype=torch.float64)


#: The batch-axis arrangements tried, in order of preference: two leading batch axes (batch, heads), one,
#: torch's sequence-first layout (n, batch, …: nn.MultiheadAttention's batch_first=False), none.
SEQ_FIRST = ("seq_first",)


def _lay(prefix, axes: list[str]) -> list[str]:
    """A tensor's axes under a batch arrangement: batch axes first, or after the tokens (sequence-first)."""
    if tuple(prefix) == SEQ_FIRST:
        return [axes[0], "b", *axes[1:]] if axes and axes[0] in TOKEN_AXES else ["b", *axes]
    return [*prefix, *axes]


def _text(axes: list[str]) -> str:
    return " ".join(axes) if axes else "()"


def infer_function(
    fn,
    eq: Equation,
    *,
    fixed=None,
    derive=None,
    label: str = "the target",
    mask: str | None = None,
    with_params: bool = True,
    hf_layer: bool = False,
    batch_first: bool | None = None,
) -> Inferred:
    """The layout (and mask convention) of ``fn`` for ``eq``, from names and shapes (module docstring).
    ``mask``: the convention the user gave (--mask), which a mask argument's name then does not override;
    ``hf_layer``: ``fn`` is a transformers module's forward (see _mask_candidates); ``batch_first``: the
    module's own ``batch_first`` attribute (torch's recurrent layers, nn.MultiheadAttention): False says its
    tensors are sequence-first, which shapes cannot tell where nothing else has the batch axis (an RNN's
    (n, b, d_e) input fits (b, n, d_e) too)."""
    slots = _slots(fn, eq, with_params)
    absent = [s for s in slots if s.role == "absent"]
    if any(not is_mask(eq.declared(s.symbol)) for s in absent):  # a mask or keep vector may be built in
        names = ", ".join(s.symbol for s in absent if not is_mask(eq.declared(s.symbol)))
        raise InferenceError(
            f"{label}: no argument's name says it takes {names} of {eq.id}; write the binding with --layout"
        )
    sizes, batch, heads = probe_sizes(eq, fixed, derive)
    tensors = [s for s in slots if s.role == "tensor"]
    mask_slots = [s for s in slots if s.role == "mask"]
    flags = [s for s in slots if s.role == "flag"]
    per_head = "M" not in eq.axes and any(s.symbol in ("Q", "K", "V") for s in tensors)
    # batched before unbatched: a module that also runs on one sequence is checked across a batch
    prefixes = [["b", "h"], ["b"], list(SEQ_FIRST), []] if per_head else [["b"], list(SEQ_FIRST), []]
    if batch_first is False:  # what the module says: sequence-first, never the batch-first reading
        prefixes = [list(SEQ_FIRST), []]
    elif batch_first is True:
        prefixes = [p for p in prefixes if tuple(p) != SEQ_FIRST]
    outputs = list(eq.outputs)
    tried = 0
    fits: list[tuple[list[str], dict, tuple | None, object]] = []
    nearest: tuple[dict, object] | None = None  # the first candidate that ran, and what it returned
    first_error: str | None = None
    for prefix in prefixes:
        order_choices = [_row_orders(eq.declared(s.symbol)) for s in tensors if not _copy(s, tensors)]
        mask_choices = [_mask_candidates(s.arg, prefix, mask, hf_layer) for s in mask_slots] or [[None]]
        for chosen_orders in product(*order_choices):
            orders = _spread(tensors, chosen_orders)
            for masks in product(*mask_choices):
                tried += 1
                kwargs = {}
                for s, axes in zip(tensors, orders, strict=True):
                    if _copy(s, tensors):  # the same tensor as the first argument that takes its symbol
                        kwargs[s.arg] = kwargs[next(t.arg for t in tensors if t.symbol == s.symbol)]
                        continue
                    decl = eq.declared(s.symbol)
                    shape = _shape(_lay([] if s.param else prefix, axes), sizes, batch, heads)
                    if decl.entry_kind == Kind.INDEX:
                        kwargs[s.arg] = torch.zeros(shape, dtype=torch.long)
                    elif decl.entry_kind == Kind.MASK and s.arg.lower() in SEGMENT_IDS:
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
                        kwargs[s.arg] = setting_value(s.axis, sizes, torch.float64, "cpu")
                    elif s.role == "flag":
                        kwargs[s.arg] = True
                for group in dict.fromkeys(s.group for s in tensors if s.group):  # (h, c) as one tuple
                    kwargs[group] = tuple(kwargs.pop(s.arg) for s in tensors if s.group == group)
                try:
                    with torch.no_grad():
                        result = fn(**kwargs)
                except Exception as exc:  # noqa: BLE001 - this candidate does not fit
                    first_error = first_error or f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                    continue
                state = [s.symbol for s in tensors if s.group]
                returned = _returned(result, outputs, prefix, sizes, batch, heads, _return_names(fn), state,
                                     scores=getattr(fn, "__lmspec_scores__", False))  # fmt: skip
                if returned is None:  # it ran: the nearest binding, its shapes bound, its output not
                    nearest = nearest or (kwargs, result)
                    continue
                fits.append(
                    (prefix, dict(zip((s.arg for s in tensors), orders, strict=True)), masks, returned)
                )
        if fits:
            break
    if not fits:
        arrangements = " or ".join(
            "sequence-first" if tuple(p) == SEQ_FIRST else _text(p) if p else "no" for p in prefixes
        )
        raise InferenceError(
            f"{label}: no layout fits {eq.id}: {tried} candidate layouts (tokens as rows or columns, "
            f"{arrangements} batch axes"
            + (", the masks' conventions by name" if mask_slots else "")
            + ") either raised or returned another shape"
            + _nearest(nearest, first_error, eq, sizes)
            + "; write the binding with --layout (docs/audit.md)"
        )
    prefix, orders, masks, returned = fits[0]
    returned_mask = _returned_mask(fn, eq, fits[0], slots, sizes, batch, heads)
    entries = []
    for s in slots:
        if s.role == "tensor" and s.group:  # state=(h_prev=b d_h, c_prev=b d_h), once, at its first member
            if s is next(t for t in slots if t.group == s.group):
                members = [t for t in slots if t.group == s.group]
                inner = ", ".join(f"{t.symbol}={_text(_lay(prefix, orders[t.arg]))}" for t in members)
                entries.append(f"{s.group}=({inner})")
        elif s.role == "tensor":
            head = f"{s.arg}:{s.symbol}" if s.written else s.arg
            entries.append(f"{head}={_text(_lay([] if s.param else prefix, orders[s.arg]))}")
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
        notes.append("no argument takes a mask and the target's name or code says causal (a class named "
                     "Causal…, is_causal=True, a tril of its own): S is the causal mask "
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
            alternatives.append(", ".join(f"{a}={_text(_lay(other[0], o))}" for a, o in other[1].items()))
    if alternatives:
        notes.append(f"other axis orders fit the shapes as well ({len(alternatives)}); the first in lmspec's "
                     "order of preference (tokens as rows) was taken")  # fmt: skip
    labels = _label_conventions(fn, eq, slots, prefix, returned, notes)
    constants = {}
    if with_params and not any(s.symbol == "eps" for s in slots) and (found := function_eps(fn)) is not None:
        constants["eps"], where = (
            found  # also where the equation has none: its eps variants are tried with it
        )
        notes.append(f"ε = {found[0]:g}: {where} (--constant eps={found[0]:g})")
    return Inferred(layout, mask or chosen, notes, alternatives[:5], *labels, constants=constants)


def _label_conventions(fn, eq: Equation, slots, prefix, returned: str, notes: list[str]):
    """A loss's label conventions (``--labels shift``, ``--ignore-index``, ``--pool``), for an equation that
    scores token ids under a keep vector κ that no argument takes: what its code says (_code.loss_code) —
    labels sliced ``[..., 1:]`` are shifted inside; the pad value it passes as ``ignore_index`` or compares
    the labels with, else torch's documented -100 where it calls torch's cross_entropy without one; one
    value for a batched input is pooled over the batch's tokens (what ``F.cross_entropy`` on flattened
    logits computes: its default reduction). A mean of per-sequence means is then named by the diagnosis
    ("pooled as mean"), never bound around. (None, None, None) for any other equation."""
    index = [d.ascii for d in eq.inputs if d.entry_kind == Kind.INDEX]
    keep = [d.ascii for d in eq.inputs if d.entry_kind == Kind.MASK]
    taken = {s.symbol for s in slots if s.role == "tensor"}
    labels_arg = next((s.arg for s in slots if index and s.symbol == index[0] and s.role == "tensor"), None)
    if not (index and keep and labels_arg) or keep[0] in taken:
        return None, None, None
    code = loss_code(fn, labels_arg)
    try:
        own = inspect.signature(fn).parameters.get("ignore_index")
    except (TypeError, ValueError):
        own = None
    if own is not None and type(own.default) is int:  # F.cross_entropy itself: its documented default
        ignore = own.default
        notes.append(f"ignore_index: its default, {ignore}, marks padding in the labels (--ignore-index)")
    elif len(code.ignore_values) > 1:
        raise InferenceError(
            f"the code marks padding with {' and '.join(map(str, sorted(code.ignore_values)))}: say which "
            "with --ignore-index (docs/audit.md, Losses)"
        )
    elif code.ignore_values:
        (ignore,) = code.ignore_values
        notes.append(f"the code marks padding in the labels as {ignore} (--ignore-index)")
    elif code.torch_default:
        ignore = TORCH_IGNORE_INDEX
        notes.append(f"it calls torch's cross_entropy without ignore_index: torch's default, {ignore}, marks "
                     "padding (--ignore-index)")  # fmt: skip
    else:
        ignore = None
    shift = "shift" if code.shifts else None
    if shift:
        notes.append(f"{labels_arg}[..., 1:]: the code shifts its labels inside (--labels shift)")
    pool = None
    outs = [part.split("=")[-1] for part in returned.split(", ") if part != "_"]
    if prefix == ["b"] and outs and all(axes == "()" for axes in outs):
        if other := sorted(code.reductions - {"none", "mean"}):
            raise InferenceError(
                f"the code reduces with {', '.join(other)} and returns one value for the batch: say how with "
                "--pool and --layout (docs/audit.md, Losses)"
            )
        pool = "tokens"
        notes.append("one value for a batch: the mean over every kept token of the batch, F.cross_entropy's "
                     "default (--pool tokens; --pool mean for a mean of per-sequence means)")  # fmt: skip
    return shift, ignore, pool


def _named_returns(values, outputs, names, shape_of) -> str | None:
    """``h_t=b d_h, c_t=b d_h`` when the returned names say which output each tensor is (OUTPUT_NAMES, or
    the symbol's own name) and each has that output's shape; None when fewer than two are named so."""
    if names is None or len(names) != len(values):
        return None
    by_name = {o.ascii: o for o in outputs}
    parts, named = [], 0
    for name, value in zip(names, values, strict=True):
        symbol = next(
            (o for o, known in OUTPUT_NAMES.items() if o in by_name and name.lower() in known), None
        )
        symbol = symbol or (name if name in by_name else None)
        axes = shape_of(by_name[symbol], value) if symbol and isinstance(value, torch.Tensor) else None
        if axes is None:
            parts.append("_")
            continue
        parts.append(f"{symbol}={axes}")
        named += 1
    named_symbols = [p.split("=")[0] for p in parts if p != "_"]
    return ", ".join(parts) if named >= 2 and len(set(named_symbols)) == named else None


def _returned(result, outputs, prefix, sizes, batch, heads, names=None, state=(), scores=False) -> str | None:
    """The returns part of the layout (after ``->``): the state a target takes as one tuple, returned in the
    same order (_returned_state); outputs the code returns under their names (``return h_next, c_next``:
    _named_returns); else ``result``, or its first element, when it has the shape of one of the equation's
    outputs (the rest of a tuple is ignored, ``_``); else None."""
    if state and (found := _returned_state(result, outputs, state, prefix, sizes, batch, heads)) is not None:
        return found
    # a tuple's members may be lists of per-step tensors (d2l's ``return outputs, state``): stacked
    values = (
        [stacked_steps(v) for v in result]
        if isinstance(result, tuple)
        else list(result)
        if isinstance(result, list)
        else [result]
    )
    if not values or not isinstance(values[0], torch.Tensor):
        return None

    def shape_of(out, value) -> str | None:
        if (axes := _fits(out, value, (prefix, [], ["1"]), sizes, batch, heads)) is not None:
            return axes
        for order in _row_orders(out):
            # the batch and the tokens flattened into one axis, (b n) v: logits.view(-1, v) for cross_entropy
            # … or, sequence-first, (n b) v: pytorch/examples' word language model's decoded.view(-1, ntoken)
            if tuple(prefix) in (("b",), SEQ_FIRST) and len(order) > 1 and order[0] == "n":
                flat = (batch * int(sizes["n"]), *_shape(order[1:], sizes, batch, heads))
                if tuple(value.shape) == flat:
                    return _text(["(b n)" if prefix == ["b"] else "(n b)", *order[1:]])
        return None

    if (both := _named_returns(values, outputs, names, shape_of)) is not None:
        return both
    fitting = [(out, axes) for out in outputs if (axes := shape_of(out, values[0])) is not None]
    if len(fitting) > 1:  # which output one returned tensor is: a name decides, never a guess (_one_of)
        fitting = _one_of(fitting, scores)
    if not fitting:
        return None
    out, axes = fitting[0]
    name = "" if out is outputs[0] else f"{out.ascii}="
    return ", ".join([name + axes, *["_"] * (len(values) - 1)])


def _one_of(fitting: list, scores: bool = False) -> list:
    """Of several outputs with the shape of the one tensor a target returns, the one it is: the logits where
    the target is a logits processor (``scores``: what it returns, by its API), ``loss`` (what
    training code returns of a loss's outputs), else the hidden state (h_t of a step, H of a sequence: what
    a recurrent cell or layer returns first, before c_t, C or a gate r_t), else a step's other next state.
    Otherwise the outputs are alike and nothing says which: InferenceError, naming them (``--layout``)."""
    by_name = {out.ascii: (out, axes) for out, axes in fitting}
    logits = [(out, axes) for out, axes in fitting if out.entry_kind != Kind.PROBABILITY]
    if scores and len(logits) == 1:  # a logits processor returns scores: the logits, never their softmax
        return logits
    for preferred in ("loss", "h_t", "H"):
        if preferred in by_name:
            return [by_name[preferred]]
    states = [(out, axes) for out, axes in fitting if out.ascii.endswith("_t") and out.ascii != "x_t"]
    if states:
        return states[:1]
    raise InferenceError(
        f"the target returns one tensor, which has the shape of each of {', '.join(by_name)}: nothing says "
        "which it is; write the binding with --layout (docs/audit.md)"
    )


def _fits(out, value, leads, sizes, batch, heads) -> str | None:
    """The axes ``value`` has as the output ``out`` (tokens as rows or columns) behind one of ``leads``
    (batch arrangements), as a layout writes them; None where it has neither shape."""
    if not isinstance(value, torch.Tensor):
        return None
    for order in _row_orders(out):
        for lead in leads:
            if tuple(value.shape) == _shape(_lay(lead, order), sizes, batch, heads):
                return _text(_lay(lead, order))
    return None


def _returned_state(result, outputs, state: list[str], prefix, sizes, batch, heads) -> str | None:
    """Where a target takes its state as one tuple (``state = (h, c)``), the tuple it returns with as many
    tensors is the next state, in the order it takes it: a step's output state is fed back as the next
    step's input, so its order is the input's, whatever the code names its members — a cell that returns
    (c, h) for an input (h, c) is then caught, never bound around. Each member X_prev is output X_t.
    ``(h_t=b d_h, c_t=b d_h)`` inside the result's structure (``_, (…)`` for ``return h, (h, c)``), or None
    where no returned tuple has the state's outputs' shapes."""
    by_name = {o.ascii: o for o in outputs}
    wanted = [by_name.get(s.removesuffix("_prev") + "_t") for s in state]
    if None in wanted:
        return None

    def as_state(value) -> str | None:
        if not isinstance(value, tuple | list) or len(value) != len(wanted):
            return None
        parts = [_fits(out, v, (prefix,), sizes, batch, heads) for out, v in zip(wanted, value, strict=True)]
        return (
            None if None in parts else ", ".join(f"{o.ascii}={a}" for o, a in zip(wanted, parts, strict=True))
        )

    if (whole := as_state(result)) is not None:
        return whole
    if isinstance(result, tuple | list):
        inner = [as_state(v) for v in result]
        if sum(x is not None for x in inner) == 1:
            return ", ".join(f"({x})" if x is not None else "_" for x in inner)
    return None


def _returned_mask(fn, eq: Equation, fit, slots, sizes, batch, heads) -> str | None:
    """ "bool" when the target returns the equation's mask output as booleans or integers, "float" as floats;
    None when its output is no mask."""
    if not any(o.entry_kind == Kind.ADDITIVE_MASK for o in eq.outputs[:1]):
        return None
    if any(s.role in ("tensor", "mask") for s in slots):
        return None
    kwargs = {s.arg: setting_value(s.axis, sizes, torch.float64, "cpu") for s in slots if s.role == "size"}
    kwargs.update({s.arg: torch.float64 if s.axis == "dtype" else torch.device("cpu")
                   for s in slots if s.role == "setting"})  # fmt: skip
    try:
        value = fn(**kwargs)
    except Exception:  # noqa: BLE001 - it ran once already; no verdict here either way
        return None
    value = value[0] if isinstance(value, tuple | list) else value
    return "float" if torch.is_floating_point(value) else "bool"


def _causal_input(fn, arg: str, axis: str) -> str:
    """``causal(AXIS)`` for the argument of torch's decoder classes that takes the causal mask the equation
    builds in (torch documents it: the float mask of ``generate_square_subsequent_mask``, added to the
    scores). Elsewhere a ``tgt_mask`` may be a keep mask (the Annotated Transformer's ``mask == 0``) or an
    additive one, which its name does not say: InferenceError, naming both ways to write it."""
    owner = getattr(getattr(fn, "__lmspec_source__", fn), "__self__", None)
    if isinstance(
        owner, torch.nn.TransformerDecoderLayer | torch.nn.TransformerDecoder | torch.nn.Transformer
    ):
        return f"causal({axis})"
    raise InferenceError(
        f"{arg}: the causal mask the equation builds in, in a convention its name does not say: write "
        f"{arg}:causal({axis}) in --layout if it is added to the scores (0 / −inf, torch's), or "
        f"{arg}:causal_keep({axis}) if True (or 1) means attend (docs/audit.md)"
    )


def _built_in_causal(eq: Equation) -> str | None:
    """The axis over whose tokens ``eq`` builds a causal mask in (the decoder block's n_d: an invariant on
    causality that names no mask input), or None."""
    for inv in eq.invariants:
        tokens = inv.options.get("tokens")
        if (
            "causal" not in inv.name
            or "mask" in inv.options
            or not isinstance(tokens, dict)
            or len(tokens) != 1
        ):
            continue
        ((symbol, axis),) = tokens.items()
        return str(eq.declared(symbol).shape[axis])
    return None


def _copy(slot: _Slot, tensors: list[_Slot]) -> bool:
    """Whether ``slot`` takes the tensor of an earlier argument (self-attention's query, key and value)."""
    first = next(t for t in tensors if t.symbol == slot.symbol)
    return slot.shared and first is not slot


def _spread(tensors: list[_Slot], chosen: tuple) -> tuple:
    """Axis orders for every tensor argument from those chosen for the arguments that are not copies."""
    it = iter(chosen)
    out, by_symbol = [], {}
    for s in tensors:
        if _copy(s, tensors):
            out.append(by_symbol[s.symbol])
        else:
            by_symbol[s.symbol] = next(it)
            out.append(by_symbol[s.symbol])
    return tuple(out)


def _shape_of(value) -> str:
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_shape_of(v) for v in value) + ")"
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


def _nearest(nearest, first_error: str | None, eq: Equation, sizes: Mapping[str, int]) -> str:
    """What came closest, for the error: the first candidate that ran (its arguments' shapes, what it returned
    against the outputs' shapes), else the first candidate's error."""
    if nearest is None:
        return f" (the first raised {first_error})" if first_error else ""
    kwargs, result = nearest
    given = ", ".join(f"{k} {_shape_of(v)}" for k, v in kwargs.items() if isinstance(v, torch.Tensor))
    wanted = " or ".join(
        f"{o.ascii} {tuple(int(sizes[a]) for a in _row_orders(o)[0])} (after batch axes)" for o in eq.outputs
    )
    returned = _shape_of(result)
    return f" (the nearest ran on {given} at sizes {dict(sizes)} and returned {returned}, not {wanted})"
