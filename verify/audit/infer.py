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

import ast
import importlib
import inspect
import re
import textwrap
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
    "h_prev": ("hx", "h_0", "prev_h", "h_t_1", "hidden", "h_tm1", "state", "h", "h_prev", "hidden_state"),
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
    "src_mask": ("additive",),
    "tgt_mask": ("additive",),
    "memory_mask": ("additive",),
    "attn_bias": ("additive",),
    "bias": ("additive",),
}
#: What each named convention means, for the report's note.
NAMED_MEANING = {
    "key_padding_mask": "torch's key_padding_mask: True = padding",
    "src_key_padding_mask": "torch's key_padding_mask: True = padding",
    "tgt_key_padding_mask": "torch's key_padding_mask: True = padding",
    "padding_mask": "a padding mask: True = padding",
    "attention_mask": "Hugging Face's attention_mask: (batch, n) 1 = attend, 0 = padding, as its models take "
    "it; 4-D, the additive mask (0 / −∞) its layers take (batch, 1, n, n) or, per key, (batch, 1, 1, n)",
    "attn_mask": "torch's float attn_mask: added to the scores",
    "src_mask": "torch's float src_mask (nn.Transformer's name): added to the scores",
    "tgt_mask": "torch's float tgt_mask (nn.Transformer's name): added to the scores",
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
    shared: bool = False  # one of several arguments that take the same tensor (query, key, value: H)


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


def _slots(fn, eq: Equation, with_params: bool = True) -> list[_Slot]:
    """Each argument's role, by its name; InferenceError for a required argument nothing explains."""
    from ...spec import Family

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
        slot.param = slot.symbol in params
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
    return torch.zeros(shape, dtype=torch.float64)


#: The batch-axis arrangements tried, in order of preference: two leading batch axes (batch, heads), one,
#: torch's sequence-first layout (n, batch, …: nn.MultiheadAttention's batch_first=False), none.
SEQ_FIRST = ("seq_first",)


def _lay(prefix, axes: list[str]) -> list[str]:
    """A tensor's axes under a batch arrangement: batch axes first, or after the tokens (sequence-first)."""
    if tuple(prefix) == SEQ_FIRST:
        return [axes[0], "b", *axes[1:]] if axes and axes[0] == "n" else ["b", *axes]
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
) -> Inferred:
    """The layout (and mask convention) of ``fn`` for ``eq``, from names and shapes (module docstring).
    ``mask``: the convention the user gave (--mask), which a mask argument's name then does not override;
    ``hf_layer``: ``fn`` is a transformers module's forward (see _mask_candidates)."""
    slots = _slots(fn, eq, with_params)
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
    # batched before unbatched: a module that also runs on one sequence is checked across a batch
    prefixes = [["b", "h"], ["b"], list(SEQ_FIRST), []] if per_head else [["b"], list(SEQ_FIRST), []]
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
                except Exception as exc:  # noqa: BLE001 - this candidate does not fit
                    first_error = first_error or f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                    continue
                returned = _returned(result, outputs, prefix, sizes, batch, heads, _return_names(fn))
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
        if s.role == "tensor":
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
    return Inferred(layout, mask or chosen, notes, alternatives[:5])


#: The names code returns an equation's outputs under (``return h_next, c_next``), by output symbol.
OUTPUT_NAMES: dict[str, tuple[str, ...]] = {
    "h_t": ("h", "h_t", "h_next", "h_new", "new_h", "next_h", "hy", "h_1", "hidden"),
    "c_t": ("c", "c_t", "c_next", "c_new", "new_c", "next_c", "cy", "c_1", "cell"),
}


def _return_names(fn) -> list[str] | None:
    """The names ``fn``'s code returns as a tuple (``return h_next, c_next``), when every return statement
    of its own body returns the same names; None otherwise (what the code says, never values)."""
    target = getattr(fn, "__lmspec_source__", fn)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(target)))
    except (OSError, TypeError, SyntaxError):
        return None
    body = (
        tree.body[0]
        if tree.body and isinstance(tree.body[0], ast.FunctionDef | ast.AsyncFunctionDef)
        else None
    )
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


def _returned(result, outputs, prefix, sizes, batch, heads, names=None) -> str | None:
    """The returns part of the layout (after ``->``): outputs the code returns under their names (``return
    h_next, c_next``: _named_returns), else ``result``, or its first element, when it has the shape of one of
    the equation's outputs (the rest of a tuple is ignored, ``_``); else None."""
    values = list(result) if isinstance(result, tuple | list) else [result]
    if not values or not isinstance(values[0], torch.Tensor):
        return None

    def shape_of(out, value) -> str | None:
        for order in _row_orders(out):
            for lead in (prefix, [], ["1"]):
                if tuple(value.shape) == _shape(_lay(lead, order), sizes, batch, heads):
                    return _text(_lay(lead, order))
        return None

    if (both := _named_returns(values, outputs, names, shape_of)) is not None:
        return both
    # a loss returns its mean: where several outputs have the shape, "loss" is the one training code returns
    for out in sorted(outputs, key=lambda o: o.ascii != "loss"):
        for order in _row_orders(out):
            for lead in (prefix, [], ["1"]):
                if tuple(values[0].shape) == _shape(_lay(lead, order), sizes, batch, heads):
                    name = "" if out is outputs[0] else f"{out.ascii}="
                    first = name + _text(_lay(lead, order))
                    return ", ".join([first, *["_"] * (len(values) - 1)])
    return None


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


# --- modules ----------------------------------------------------------------------------------------------
#: A constructor argument's name -> the axis it takes (SIZE_NAMES, and the layer count).
INIT_NAMES: dict[str, tuple[str, ...]] = {
    **{axis: names for axis, names in SIZE_NAMES.items() if axis not in ("n", "n_max")},
    "L": ("l", "n_layer", "n_layers", "num_layers", "num_hidden_layers", "depth", "layers", "n_blocks"),
}
#: Constructor arguments that size a table longer than any sequence the audit draws: given this number.
LENGTH_NAMES = ("block_size", "max_len", "max_seq_len", "n_positions", "max_position_embeddings", "n_ctx",
                "seq_len", "max_length", "context_length")  # fmt: skip
#: A module path's segment -> what it holds. Attention projections, the FFN's two linears, the norms.
ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "q": ("q", "q_proj", "query", "wq", "w_q", "to_q", "q_lin", "q_linear", "linear_q", "q_net"),
    "k": ("k", "k_proj", "key", "wk", "w_k", "to_k", "k_lin", "k_linear", "linear_k", "k_net"),
    "v": ("v", "v_proj", "value", "wv", "w_v", "to_v", "v_lin", "v_linear", "linear_v", "v_net"),
    "qkv": ("c_attn", "qkv", "in_proj", "wqkv", "w_qkv", "query_key_value", "to_qkv", "qkv_proj", "qkv_net"),
    "o": ("o", "o_proj", "out_proj", "wo", "w_o", "to_out", "out", "out_lin", "fc_out", "proj", "c_proj",
          "dense", "linear_out", "o_net", "output"),
    "ffn1": ("c_fc", "fc1", "w_1", "w1", "linear1", "lin1", "up_proj", "fc", "dense_h_to_4h", "fc_in",
             "intermediate"),
    "ffn2": ("c_proj", "fc2", "w_2", "w2", "linear2", "lin2", "down_proj", "dense_4h_to_h", "fc_out", "proj",
             "output", "dense"),
    "ln1": ("ln_1", "ln1", "norm1", "layernorm_before", "attention_norm", "ln_attn", "input_layernorm",
            "norm_1", "attn_norm", "sa_norm"),
    "ln2": ("ln_2", "ln2", "norm2", "layernorm_after", "ffn_norm", "ln_mlp", "post_attention_layernorm",
            "norm_2", "mlp_norm", "ff_norm"),
    "ln": ("ln", "norm", "layer_norm", "layernorm", "norm_layer", "ln_f"),
}  # fmt: skip
#: Segments that place what follows in the attention or in the FFN (c_proj and dense are in both).
ATTENTION_SCOPES = (
    "attn",
    "attention",
    "self_attn",
    "self_attention",
    "mha",
    "sa",
    "att",
    "self",
    "attn_layer",
)
FFN_SCOPES = (
    "mlp",
    "ffn",
    "feed_forward",
    "ff",
    "feedforward",
    "ffwd",
    "intermediate",
    "output",
    "mlp_layer",
)
#: The spec symbols a projection's weight and bias fill, and the axes its output stacks.
_ROLE_SYMBOLS = {
    "q": (("W_Q",), ("b_Q",), "M d_k"),
    "k": (("W_K",), ("b_K",), "M d_k"),
    "v": (("W_V",), ("b_V",), "M d_v"),
    "qkv": (("W_Q", "W_K", "W_V"), ("b_Q", "b_K", "b_V"), "3 M d_k"),
}


@dataclass
class InferredModule:
    """A module's binding: constructor arguments, ties, constants, parameter maps and its forward's layout."""

    init: dict[str, str]
    derive: dict[str, str]
    constants: dict[str, float]
    params: dict[str, str]
    absent: list[str]
    forward: Inferred
    notes: list[str] = field(default_factory=list)

    def options(self) -> list[str]:
        out: list[str] = []
        for k, v in self.init.items():
            out += ["--init", f"{k}={v}"]
        for k, v in self.derive.items():
            out += ["--derive", f"{k}={v}"]
        for k, v in self.constants.items():
            out += ["--constant", f"{k}={v:g}"]
        for k, v in self.params.items():
            out += ["--param", f"{k}={v}"]
        if self.absent:
            out += ["--absent", ",".join(self.absent)]
        return out + self.forward.options()

    def as_json(self) -> dict:
        return {
            **self.forward.as_json(),
            "options": self.options(),
            "notes": [*self.notes, *self.forward.notes],
            "init": dict(self.init),
            "derive": dict(self.derive),
            "params": dict(self.params),
            "constants": dict(self.constants),
            "absent": list(self.absent),
        }


#: More constructor names, by the equation's axes: an LSTM's hidden_size is d_h, a transformer's d_e.
_RECURRENT_INIT = {"input_size": "d_e", "hidden_size": "d_h", "embedding_dim": "d_e", "num_embeddings": "v"}
_EXTRA_INIT = {"h": "M", "features": "d_e", "normalized_shape": "d_e", "num_features": "d_e", "size": "d_e",
               "d": "d_e", "embedding_dim": "d_e", "num_embeddings": "v", "n_embed": "d_e"}  # fmt: skip


def _init_args(cls: type, eq: Equation) -> dict[str, str]:
    """Constructor arguments by name: sizes, and table lengths long enough for any drawn sequence."""
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError) as exc:
        raise InferenceError(f"cannot read the constructor of {cls.__name__} ({exc})") from exc
    init, unexplained = {}, []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        low = p.name.lower()
        axis = _RECURRENT_INIT.get(low) if "d_h" in eq.axes else None
        axis = axis or next((a for a, names in INIT_NAMES.items() if a in eq.axes and low in names), None)
        axis = axis or (_EXTRA_INIT.get(low) if _EXTRA_INIT.get(low) in eq.axes else None)
        if axis is not None:
            init[p.name] = axis
        elif p.default is inspect.Parameter.empty and (built := _config_init(cls, p, eq)) is not None:
            init[p.name] = built
        elif low in LENGTH_NAMES and p.default is inspect.Parameter.empty:
            init[p.name] = "64"
        elif low in ("dropout", "p", "attn_pdrop", "resid_pdrop", "dropout_rate", "drop", "attn_drop"):
            if p.default is inspect.Parameter.empty:
                init[p.name] = "0.0"
        elif p.default is inspect.Parameter.empty:
            unexplained.append(p.name)
    if unexplained:
        raise InferenceError(
            f"{cls.__name__}: cannot tell what the constructor argument{'s' * (len(unexplained) > 1)} "
            f"{', '.join(map(repr, unexplained))} take{'s' * (len(unexplained) == 1)} "
            f"({eq.id}'s sizes: {', '.join(eq.axes)}): say it with --init (docs/audit.md)"
        )
    return init


#: A configuration object's class: a name that says so, or a base class that does (transformers' configs).
_CONFIG_NAMES = ("config", "cfg", "args", "model_args", "params", "hparams", "conf", "configs")
_CONFIG_BASES = ("PreTrainedConfig", "PretrainedConfig")


def _is_config_class(obj: object) -> bool:
    if not inspect.isclass(obj):
        return False
    bases = {b.__name__ for b in obj.__mro__[1:]}
    if bases & set(_CONFIG_BASES):
        return True
    named = obj.__name__.endswith(("Config", "Args", "Configuration", "Params", "Hparams", "HParams"))
    return named and not issubclass(obj, torch.nn.Module)  # nanoGPT's GPTConfig dataclass, a plain class


def _config_class(cls: type, p: inspect.Parameter) -> tuple[type, str] | None:
    """The class of the configuration object ``p`` takes, and how an --init expression names it: the
    annotation, the class's ``config_class`` (transformers' models), or the one configuration class in the
    module that defines ``cls`` (nanoGPT's GPTConfig, a tutorial's ModelArgs). None where it cannot tell."""
    home = vars(inspect.getmodule(cls) or object)
    annotation = p.annotation
    if isinstance(annotation, str):
        annotation = home.get(annotation.strip("'\""))
    found = [annotation] if _is_config_class(annotation) else []
    if not found and _is_config_class(getattr(cls, "config_class", None)):
        found = [cls.config_class]
    if not found and p.name.lower() in _CONFIG_NAMES:
        found = list(
            dict.fromkeys(
                v
                for v in home.values()
                if (_is_config_class(v) and v.__module__ == cls.__module__)
                or (_is_config_class(v) and set(_CONFIG_BASES) & {b.__name__ for b in v.__mro__[1:]})
            )
        )
        if len(found) > 1:  # transformers' modeling files import their own config and no other
            own = [c for c in found if c.__module__ == cls.__module__]
            found = own if len(own) == 1 else found
    if len(found) != 1:
        return None
    config = found[0]
    named = next((k for k, v in home.items() if v is config and not k.startswith("_")), None)
    if named is None:
        top = config.__module__.split(".")[0]
        if getattr(importlib.import_module(top), config.__name__, None) is not config:
            return None
        named = f"{top}.{config.__name__}"
    return config, named


def _config_fields(config: type) -> dict[str, inspect.Parameter]:
    """The fields a configuration class takes (a dataclass's fields, a constructor's keyword arguments)."""
    try:
        params = inspect.signature(config).parameters
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in params.items() if v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)}


def _config_init(cls: type, p: inspect.Parameter, eq: Equation) -> str | None:
    """The --init expression that builds the configuration object ``p`` takes, its sizes from the
    equation's axes by the fields' names (``GPT2Config(n_embd=d_e, n_head=M, n_inner=d_f)``), tables long
    enough for any drawn sequence, dropout 0 where it has no default, and transformers' eager attention
    (the readable path, which runs in float64 as the spec is evaluated). None where it is not a
    configuration object lmspec can build."""
    found = _config_class(cls, p)
    if found is None:
        return None
    config, named = found
    fields = _config_fields(config)
    args: dict[str, str] = {}
    for name, field_ in fields.items():
        low = name.lower()
        axis = _RECURRENT_INIT.get(low) if "d_h" in eq.axes else None
        axis = axis or next((a for a, names in INIT_NAMES.items() if a in eq.axes and low in names), None)
        if axis is not None:
            args[name] = axis
        elif low in LENGTH_NAMES:
            args[name] = "64"
        elif "drop" in low and field_.default is inspect.Parameter.empty:
            args[name] = "0.0"
        elif field_.default is inspect.Parameter.empty:
            return None  # a required field lmspec cannot fill: --init says it
    if not args:
        return None
    if {b.__name__ for b in config.__mro__[1:]} & set(_CONFIG_BASES):
        args["attn_implementation"] = '"sdpa"'
    return f"{named}(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")"


def _derive(eq: Equation, init: Mapping[str, str], fixed) -> dict[str, str]:
    """The ties a module built from d_e and M has: d_k = d_e / M (and d_v = d_k)."""
    # the axes the constructor's arguments name, as values (n_embd=d_e) or inside them (Config(n_embd=d_e))
    named = {a for v in init.values() for a in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", str(v))}
    given = named | set(fixed or {})
    derive = {}
    if {"d_e", "M"} <= given and "d_k" in eq.axes:
        derive["d_e"] = "M*d_k"
        if "d_v" in eq.axes:
            derive["d_v"] = "d_k"
    return derive


def _scope(segments: list[str]) -> str | None:
    """Whether a parameter sits in the attention or the FFN, by the outermost module on its path that says
    (BERT's attention.output.dense is the attention's, its output.dense the FFN's)."""
    for seg in segments[:-2]:
        if seg.lower() in ATTENTION_SCOPES:
            return "attention"
        if seg.lower() in FFN_SCOPES:
            return "ffn"
    return None


#: A norm's own parameters: the scale (weight, gamma, a_2 in the Annotated Transformer) and the shift.
_NORM_LEAVES = ("weight", "gamma", "a_2", "scale", "g", "alpha", "bias", "beta", "b_2", "shift", "b")
_NORM_SHIFTS = ("bias", "beta", "b_2", "shift", "b")


def _roles(path: str, eq_params: set[str]) -> list[str]:
    """What a module parameter may hold, by the names on its path (more than one where a name is used for
    two things, such as c_proj: _params_of settles those by what the other parameters took)."""
    segments = path.split(".")
    owner = segments[-2].lower() if len(segments) > 1 else ""
    leaf = segments[-1].lower()
    if leaf in ("in_proj_weight", "in_proj_bias"):
        return ["qkv"]
    if len(segments) == 1 and "alpha" in eq_params:  # a layer norm's own parameters
        return ["ln"] if leaf in _NORM_LEAVES else []
    if owner in _GENERIC_OWNERS and len(segments) > 2 and segments[-3].lower() in _ALL_ROLE_NAMES:
        segments = segments[:-2] + segments[-1:]  # BERT's attention.output.dense: the role is the parent's
        owner = segments[-2].lower()
    scope = _scope(segments)
    head, _, rest = owner.partition("_")  # mlp_proj, attn_out: a scope, then a role
    if rest and head in (*ATTENTION_SCOPES, *FFN_SCOPES) and owner not in _ALL_ROLE_NAMES:
        scope, owner = ("attention" if head in ATTENTION_SCOPES else "ffn"), rest
    candidates = [role for role, names in ROLE_NAMES.items() if owner in names]
    if not candidates and owner.isdigit() and len(segments) > 2:  # nn.ModuleList of projections
        listed = {"linears": ("q", "k", "v", "o"), "projections": ("q", "k", "v", "o")}
        roles = listed.get(segments[-3].lower())
        return [roles[int(owner)]] if roles and int(owner) < len(roles) and "W_Q" in eq_params else []
    if "W_1" not in eq_params:  # no FFN in the equation: c_proj, dense, proj are the attention's output
        candidates = [c for c in candidates if not c.startswith("ffn")]
    if "W_Q" not in eq_params:
        candidates = [c for c in candidates if c not in _ATTENTION_ROLES]
    if len(candidates) > 1 and scope is not None:
        in_scope = [c for c in candidates if (c in _ATTENTION_ROLES) == (scope == "attention")]
        candidates = in_scope or candidates
    if len(candidates) > 1 and {"ln1", "ln2", "ln"} & set(candidates):
        candidates = [c for c in candidates if c != "ln"] or candidates
    if candidates == ["ln"] and "alpha_1" in eq_params and scope is not None:  # BERT's attention.output.…
        return ["ln1" if scope == "attention" else "ln2"]
    if (
        candidates == ["ln"] and "alpha_1" in eq_params
    ):  # the Annotated Transformer's sublayer.0.norm, .1.norm
        numbered = [s for k, s in enumerate(segments[:-2]) if s in ("0", "1") and k > 0
                    and segments[k - 1].lower() not in _LAYER_CONTAINERS]  # fmt: skip
        if len(numbered) == 1:
            return ["ln1" if numbered[0] == "0" else "ln2"]
    if not candidates and leaf in ("weight", "bias") and len(_matrices(eq_params)) == 1:
        return ["single"]  # the equation's one dense layer (BERT's pooler.dense)
    return candidates


#: Names of a layer that take their role from the module holding them (BERT's attention.output.dense).
_GENERIC_OWNERS = ("dense", "linear", "lin", "fc", "layer")


def _matrices(eq_params: set[str]) -> list[str]:
    """The equation's weight matrices (W_…), the one-dense-layer case of _roles."""
    return sorted(p for p in eq_params if p.startswith("W"))


_ATTENTION_ROLES = ("q", "k", "v", "qkv", "o")
_ALL_ROLE_NAMES = {name for names in ROLE_NAMES.values() for name in names}


def _linear_like(module: torch.nn.Module, path: str) -> str:
    """ "out_in" for a parameter of an nn.Linear (weight (out, in)), "in_out" for a Conv1D (GPT-2's) or a raw
    parameter used as x @ W."""
    owner = module.get_submodule(path.rsplit(".", 1)[0]) if "." in path else module
    if isinstance(owner, torch.nn.Linear) or path.endswith("in_proj_weight"):
        return "out_in"
    return "in_out"


def _param_text(role: str, kind: str, layout: str, eq: Equation, suffix: str) -> str | None:
    """The --param text of one module parameter ("weight" or "bias") in ``role``."""
    if role in _ROLE_SYMBOLS:
        weights, biases, axes = _ROLE_SYMBOLS[role]
        if kind == "bias":
            return f"{', '.join(biases)} -> ({axes})"
        return f"{', '.join(weights)} -> " + (f"({axes}) d_e" if layout == "out_in" else f"d_e ({axes})")
    if role == "o":
        if kind == "bias":
            return "b_O"
        return "W_O -> d_e M*d_v" if layout == "out_in" else "W_O"
    if role == "ffn1":
        return "b_1" if kind == "bias" else ("W_1" if layout == "out_in" else "W_1 -> d_e d_f")
    if role == "ffn2":
        return "b_2" if kind == "bias" else ("W_2" if layout == "out_in" else "W_2 -> d_f d_e")
    if role in ("ln1", "ln2", "ln"):
        index = {"ln1": "_1", "ln2": "_2", "ln": suffix}[role]
        return ("beta" if kind == "bias" else "alpha") + index
    if role == "single":
        (weight,) = _matrices({d.ascii for d in eq.params})
        if kind == "bias":
            bias = "b" + weight[1:]
            return bias if bias in {d.ascii for d in eq.params} else None
        rows, cols = (str(a) for a in eq.declared(weight).shape)
        return weight if layout == "out_in" else f"{weight} -> {cols} {rows}"
    return None


_LAYER_CONTAINERS = ("h", "layers", "blocks", "layer", "block", "encoder_layers", "decoder_layers")


def _params_of(instance: torch.nn.Module, eq: Equation) -> tuple[dict[str, str], list[str]]:
    """--param maps of ``instance``'s parameters by name and module type, and the spec parameters none takes
    (stated absent: held at 0, never drawn)."""
    eq_params = {d.ascii for d in eq.params if not d.is_scalar}
    ln_suffix = "" if "alpha" in eq_params else "_1"
    maps: dict[str, str] = {}
    unexplained = []
    found = []
    for path, _ in instance.named_parameters():
        key = _per_layer(path, eq)
        if key is not None:  # None: a later layer, mapped by h.{l}.…
            found.append((path, key, _roles(path, eq_params)))
    settled = {roles[0] for _, _, roles in found if len(roles) == 1}
    for path, key, roles in found:
        if len(roles) > 1:  # c_proj: the attention's output where the FFN's has another name, and so on
            roles = [r for r in roles if r not in settled]
        leaf = path.rsplit(".", 1)[-1].lower()
        kind = "bias" if "bias" in leaf or leaf in _NORM_SHIFTS else "weight"
        layout = _linear_like(instance, path)
        text = _param_text(roles[0], kind, layout, eq, ln_suffix) if len(roles) == 1 else None
        if text is None or not _fills(text, eq_params):
            unexplained.append(path)
        else:
            maps[key] = text
    if unexplained:
        raise InferenceError(
            f"cannot tell which of {eq.id}'s parameters the module's {', '.join(unexplained[:6])}"
            + (f" (and {len(unexplained) - 6} more)" if len(unexplained) > 6 else "")
            + " hold: map them with --param (docs/audit.md, Modules)"
        )
    taken = {s.strip() for text in maps.values() for s in text.split("->")[0].split(",")}
    untaken = [p for p in (d.ascii for d in eq.params if not d.is_scalar) if p not in taken]
    if any(not p.startswith("b") for p in untaken):
        raise InferenceError(
            f"no module parameter takes {', '.join(p for p in untaken if not p.startswith('b'))} of {eq.id}: "
            "map them with --param (docs/audit.md, Modules)"
        )
    return maps, untaken


#: The LSTM's gates: the spec's letter of each, and the names code unpacks the stacked gates into.
_GATE_NAMES = {
    "i": ("i", "i_t", "ig", "in_gate", "input_gate", "ingate", "i_gate", "input"),
    "f": ("f", "f_t", "fg", "forget_gate", "forgetgate", "f_gate", "forget"),
    "c": ("g", "g_t", "c", "c_tilde", "c_hat", "cell_gate", "cellgate", "candidate", "cell", "c_in", "z"),
    "o": ("o", "o_t", "og", "out_gate", "output_gate", "outgate", "o_gate", "output", "out"),
}
_UNPACKED = re.compile(r"(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*=\s*[^\n]*(?:chunk|split)\(")


def _gate_order(cls: type) -> list[str] | None:
    """The order of the four gates stacked in an LSTM cell's weights, read from how its code unpacks them
    (``i, f, g, o = gates.chunk(4, 1)``: torch's order; ``f, i, o, g = …``): what the code says, never
    values. None where no method unpacks four gates by name — of the class itself, or of those it derives
    from up to the one whose forward runs (a parent's forward that a subclass replaces says nothing)."""
    sources = []
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] == "torch":
            break
        try:
            sources.append(inspect.getsource(klass))
        except (OSError, TypeError):
            pass
        if "forward" in vars(klass):
            break
    for names in _UNPACKED.findall("\n".join(sources)):
        order = [next((g for g, known in _GATE_NAMES.items() if n.lower() in known), None) for n in names]
        if None not in order and len(set(order)) == 4:
            return order
    return None


def _gate_stacks(instance: torch.nn.Module, eq: Equation, sizes: Mapping[str, int]):
    """--param maps of an LSTM cell that stacks its four gates in one weight (``x2h``: (4 d_h, d_e),
    ``h2h``: (4 d_h, d_h), or one Linear on ``cat([x, h])``: [W | U]) and one bias: the stacks told apart by
    their shapes at the probe's distinct sizes, the gate order by the code (_gate_order). None where the
    equation has no gate stacks or the module is not laid out so (names decide then, as for any module)."""
    eq_params = {d.ascii for d in eq.params if not d.is_scalar}
    if not {"W_i", "W_f", "W_c", "W_o", "U_i"} <= eq_params or "d_h" not in sizes:
        return None
    order = _gate_order(type(instance))
    named = list(instance.named_parameters())
    d_e, d_h = sizes["d_e"], sizes["d_h"]
    if order is None or not named or any(4 * d_h not in p.shape for _, p in named):
        return None
    stack = ", ".join  # "W_i, W_f, W_c, W_o" in the code's order
    maps: dict[str, str] = {}
    for path, p in named:
        if p.dim() == 1:
            if "b" in {k[0] for k in maps.values()}:
                return None  # two biases (torch's bias_ih, bias_hh): their sum is the spec's; say it by hand
            maps[path] = f"{stack(f'b_{g}' for g in order)} -> (4 d_h)"
            continue
        out_in = p.shape[0] == 4 * d_h
        width = p.shape[1] if out_in else p.shape[0]
        families = {d_e: [f"W_{g}" for g in order], d_h: [f"U_{g}" for g in order]}.get(width)
        if families is None and width == d_e + d_h:
            families = [f"W_{g} | U_{g}" for g in order]  # cat([x, h]): the input's columns first
            width_axes = "d_e+d_h"
        else:
            width_axes = "d_e" if width == d_e else "d_h"
        if families is None or (not out_in and width_axes == "d_e+d_h"):
            return None
        maps[path] = f"{stack(families)} -> " + (
            f"(4 d_h) {width_axes}" if out_in else f"{width_axes} (4 d_h)"
        )
    taken = {
        s.strip() for text in maps.values() for fam in text.split("->")[0].split(",") for s in fam.split("|")
    }
    if not {f"{w}_{g}" for w in "WU" for g in "ifco"} <= taken:
        return None
    return maps, [p for p in sorted(eq_params - taken) if p.startswith("b")]


def _per_layer(path: str, eq: Equation) -> str | None:
    """``path`` with a per-layer container's index as ``{l}`` (``h.0.ln_1.weight`` -> ``h.{l}.ln_1.weight``),
    None for the layers after the first (the first stands for all); ``path`` itself outside containers."""
    segments = path.split(".")
    for k, seg in enumerate(segments[:-1]):
        if seg.isdigit() and k > 0 and segments[k - 1].lower() in _LAYER_CONTAINERS and "L" in eq.axes:
            if seg != "0":
                return None
            segments[k] = "{l}"
    return ".".join(segments)


def _fills(text: str, eq_params: set[str]) -> bool:
    return all(s.strip() in eq_params for s in text.split("->")[0].split(","))


def _eps_of(instance: torch.nn.Module) -> float | None:
    """The ε of the module's layer norms (nn.LayerNorm's, or an ``eps``/``variance_epsilon`` attribute), or
    the number its code passes to ``F.layer_norm`` (nanoGPT's ``F.layer_norm(input, …, 1e-5)``)."""
    for mod in instance.modules():
        for name in ("eps", "variance_epsilon", "epsilon"):
            value = getattr(mod, name, None)
            if isinstance(value, float):
                return value
    for cls in {type(m) for m in instance.modules() if type(m).__module__.split(".")[0] != "torch"}:
        if (value := _layer_norm_literal(cls)) is not None:
            return value
    return None


def _layer_norm_literal(cls: type) -> float | None:
    """The ε a class's code passes to ``layer_norm(input, shape, weight, bias, eps)`` as a number."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not ast.unparse(node.func).endswith("layer_norm"):
            continue
        given = [k.value for k in node.keywords if k.arg == "eps"] + node.args[4:5]
        if given and isinstance(given[0], ast.Constant) and isinstance(given[0].value, float | int):
            return float(given[0].value)
    return None


def infer_module(
    cls, eq: Equation, *, fixed=None, derive=None, label: str = "the target", mask=None, init=None
):
    """The binding of an nn.Module class to ``eq``: its constructor arguments (unless ``init`` gives them: a
    config object, say), ties and constants, its parameters' maps (names and module types: nn.Linear's
    (out, in), Conv1D's (in, out), fused q/k/v, per-layer containers), the spec parameters it lacks
    (absent), and its forward's layout."""
    from .targets import _home, init_value

    init = dict(init) if init is not None else _init_args(cls, eq)
    ties = {**_derive(eq, init, fixed), **dict(derive or {})}
    sizes = _probe_sizes(eq, fixed, ties)[0]
    try:
        instance = cls(**{k: init_value(k, v, sizes, _home(cls)) for k, v in init.items()}).double().eval()
    except Exception as exc:  # noqa: BLE001 - a setup problem: say what was tried
        call = ", ".join(f"{k}={v}" for k, v in init.items())
        raise InferenceError(
            f"{label}: building {cls.__name__}({call}) raised {type(exc).__name__}: {exc}"
        ) from None
    notes = []
    if "d_f" in eq.axes and "d_f" not in init.values() and "d_f" not in ties:
        for factor in (4, 2, 8, 1):
            if any(factor * sizes["d_e"] in tuple(p.shape) for p in instance.parameters()) and factor != 1:
                ties["d_f"] = f"{factor}*d_e"
                notes.append(f"the FFN's width is {factor}·d_e (read from its parameters' shapes)")
                break
    constants = {}
    eps = _eps_of(instance)  # also where the equation has none: its eps variants are then tried with it
    if eps is not None:
        constants["eps"] = eps
    gates = _gate_stacks(instance, eq, sizes)
    params, untaken = gates if gates is not None else _params_of(instance, eq)
    absent: list[str] = []
    if untaken and _a_variant_lacks(eq, untaken):  # never stated absent: the variant is the finding
        notes.append(f"no module parameter takes {', '.join(untaken)}: the audit names the variant without "
                     "them, as with a written binding")  # fmt: skip
    elif untaken:  # no variant of the equation leaves them out: stated, printed, held at 0
        absent = untaken
        notes.append(f"no module parameter takes {', '.join(untaken)}: held at 0 (--absent)")
    fwd = infer_forward(instance, eq, fixed=fixed, derive=ties, label=label, mask=mask)
    return InferredModule(init, ties, constants, params, absent, fwd, notes)


def infer_forward(
    module: torch.nn.Module, eq: Equation, *, fixed=None, derive=None, label: str = "the target", mask=None
) -> Inferred:
    """The layout of a module instance's forward (its parameters are mapped apart, not passed)."""

    def forward(**kwargs):
        return module(**kwargs)

    forward.__signature__ = inspect.signature(module.forward)
    forward.__lmspec_source__ = module.forward  # its code says what it returns (_return_names)
    forward.__qualname__ = forward.__name__ = type(module).__name__
    return infer_function(
        forward,
        eq,
        fixed=fixed,
        derive=derive,
        label=label,
        mask=mask,
        with_params=False,
        hf_layer=_transformers_module(module),
    )


def _transformers_module(module: torch.nn.Module) -> bool:
    """Whether ``module`` is a transformers module (or one built from a transformers configuration, as
    remote code is): its layers take the 4-D additive attention_mask the model builds."""
    if type(module).__module__.split(".")[0] == "transformers":
        return True
    config = getattr(module, "config", None)
    return config is not None and bool({b.__name__ for b in type(config).__mro__} & set(_CONFIG_BASES))


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


def _a_variant_lacks(eq: Equation, untaken: list[str]) -> bool:
    """Whether a named variant of ``eq`` is the equation without exactly these parameters (no_bias): a
    module lacking them then computes that variant, which the audit names, not the equation."""
    base = {d.ascii for d in eq.params}
    variants = (eq.variant(name) for name in eq.variants())
    return any(base - {d.ascii for d in v.params} == set(untaken) for v in variants)


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
