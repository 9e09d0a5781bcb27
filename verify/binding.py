"""Binding an implementation to its equation through its jaxtyping annotations.

The annotation is the binding: ``H: Float[Tensor, "*batch n d_e"]`` against the spec's ``H ∈ ℝ^{d_e×n}``
tells the verifier to transpose; ``W_Q: Float[Tensor, "M d_e d_k"]`` is the family ``W_Q^{(m)}`` stacked on
its index axis; ``*batch`` marks leading batch axes. Parameters match spec symbols by ASCII name
(``Lambda`` for ``Λ``); an ``int`` parameter named after an axis receives that size. An annotation that
does not name the spec's axes is a BindingError naming the function, the parameter, what the spec expects
and what was found.
"""

import functools
import inspect
import re
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
import torch

from ..spec import Equation, Family, Kind
from ..spec.axes import GLOSSARY
from ._errors import BindingError, ShapeMismatch
from .oracle import concrete_shape

_AXIS_LOCALS = {name: a.symbol for name, a in GLOSSARY.items()}


def who(fn: Callable) -> str:
    """How messages name a callable: ``module.qualname``, or ``file.py:qualname`` for one the audit loaded
    from a file (its module says how the user named it, in ``__lmspec_display__``)."""
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or repr(fn)
    display = getattr(sys.modules.get(module), "__lmspec_display__", None)
    return f"{display}:{name}" if display else f"{module}.{name}"


@dataclass(frozen=True)
class Layout:
    """How one spec array maps onto one implementation argument (or result).

    ``perm[k]`` is the spec axis (after any family axis, batch axes excluded) that implementation axis k
    holds; ``batched`` says whether the implementation takes leading batch axes there.
    """

    name: str  # spec ASCII name
    param: str  # implementation parameter (or "return[k]")
    annotation: str
    dtype: str  # "float", "bool" or "int"
    perm: tuple[int, ...]
    batched: bool
    optional: bool = False
    convention: str | None = None  # for masks: "bool_keep", "bool_ignore" or "additive" (MASK_CONVENTIONS)
    additive_spec: bool = False  # the spec's array is an additive mask (0 / −∞), not a keep mask (1 / 0)

    def to_impl(self, arr: np.ndarray, batch_ndim: int, dtype: torch.dtype, device: str) -> torch.Tensor:
        if self.dtype in ("python float", "python int"):
            value = np.asarray(arr).item()
            return float(value) if self.dtype == "python float" else int(value)
        batch_ndim = batch_ndim if self.batched else 0
        if is_key_mask(self.convention):
            arr = key_vector(arr, batch_ndim)
        data = np.asarray(arr)
        if not self._identity:
            data = data.transpose((*range(batch_ndim), *(batch_ndim + p for p in self.perm)))
        if not data.flags.c_contiguous:  # (ascontiguousarray would make a 0-d scalar 1-d)
            data = np.ascontiguousarray(data).reshape(data.shape)
        if self.convention is not None or self.dtype == "bool":
            return convert_mask(data, self.additive_spec, self.convention or "bool_keep", dtype, device)
        t = torch.from_numpy(data)
        if self.dtype == "int":
            return t.to(torch.int64).to(device)
        if t.dtype is dtype and device == "cpu":  # the verifier's float64 on the CPU: as it is
            return t
        return t.to(dtype=dtype, device=device)

    def from_impl(
        self, t: torch.Tensor, batch_ndim: int, sizes: Mapping[str, int] | None = None
    ) -> np.ndarray:
        if self.dtype in ("python float", "python int"):
            return np.asarray(float(t))
        arr = (
            t.detach().to("cpu", torch.float64).numpy()
            if t.dtype != torch.bool
            else t.detach().cpu().numpy().astype(np.float64)
        )
        if self._identity:
            return arr
        return arr.transpose((*range(batch_ndim), *(batch_ndim + p for p in self._inverse)))

    @functools.cached_property
    def _identity(self) -> bool:
        """Whether the implementation holds the spec's axes in the spec's order (no transpose either way):
        computed once, as the verifier converts every argument of every call."""
        return self.perm == tuple(range(len(self.perm)))

    @functools.cached_property
    def _inverse(self) -> tuple[int, ...]:
        """The permutation taking the implementation's axes back to the spec's."""
        return tuple(int(p) for p in np.argsort(self.perm))


#: How an implementation may take a mask: True where attention is allowed, True where it is not, or
#: added to the scores (0 / −∞).
#: How a target takes the spec's mask: the whole matrix (n×n, as the spec's S) in one of three encodings…
MATRIX_MASKS = ("bool_keep", "bool_ignore", "additive")
#: …or one value per key (a padding mask, ``(batch, n)``), from which the spec's S is the padding mask
#: ``attention.padding_mask`` of a keep vector κ: the encoding each per-key convention uses.
KEY_MASKS = {
    "key_padding": "bool_ignore",  # bool, True = padding (nn.MultiheadAttention's key_padding_mask)
    "key_keep": "bool_keep",  # bool, True = a real token
    "key_keep_int": "int_keep",  # 1 / 0 integers (Hugging Face's attention_mask)
    "key_keep_float": "float_keep",  # 1.0 / 0.0 floats
    "key_additive": "additive",  # 0 / −∞ added to each key's scores (an "extended" (batch, 1, 1, n) mask)
    "key_lengths": "lengths",  # the number of real keys per sequence, (batch,) integers (d2l's valid_lens)
}
#: Or no mask at all: the target builds S itself (a registered tril buffer, is_causal=True) or attends
#: everywhere; the audit then pins S to the causal mask or to 0.
BUILT_IN_MASKS = ("causal", "none")
MASK_CONVENTIONS = (*MATRIX_MASKS, *KEY_MASKS, *BUILT_IN_MASKS)


#: What a layout's ``arg:NAME`` passes besides an axis's size: the audit's torch dtype and device.
SETTINGS = ("dtype", "device")


def setting_value(name: str, sizes: Mapping[str, int], dtype: torch.dtype, device: str) -> object:
    """The value of a size-like argument: an axis's size, the audit's dtype or device, or a constant written
    over the sizes (``1/sqrt(d_k)``, ``-100``: see ``constant_value``)."""
    if name == "dtype":
        return dtype
    if name == "device":
        return torch.device(device)
    if name in sizes:
        return int(sizes[name])
    if (causal := CAUSAL_SETTING.fullmatch(name)) is not None:
        return causal_mask(int(sizes[causal.group(2)]), dtype, device, keep=bool(causal.group(1)))
    return constant_value(name, sizes)


#: ``causal(n_d)``: the additive causal mask over an axis's tokens (0 / −∞), ``causal_keep(n_d)`` the same
#: as booleans (True = may attend), passed to an argument of the target that takes the causal mask the
#: equation builds in (``tgt_mask`` of nn.TransformerDecoderLayer, which torch's documentation says to give
#: ``generate_square_subsequent_mask(n)``).
CAUSAL_SETTING = re.compile(r"causal(_keep)?\((\w+)\)")


def causal_mask(size: int, dtype: torch.dtype, device: str, keep: bool = False) -> torch.Tensor:
    """The causal mask, (size, size): additive, 0 where token j ≤ i and −∞ after (torch's
    ``generate_square_subsequent_mask``); or ``keep``, True where j ≤ i (a lower-triangular keep mask)."""
    future = torch.ones(size, size, dtype=torch.bool, device=device).triu(1)
    if keep:
        return ~future
    return torch.zeros(size, size, dtype=dtype, device=device).masked_fill(future, float("-inf"))


def constant_value(text: str, sizes: Mapping[str, int]) -> int | float | None:
    """A constant argument written as a number or an expression over the axis sizes (``-100``,
    ``1/sqrt(d_k)``, ``d_e // M``): an int when it is whole and written without a float, else a float;
    ``None`` as itself (a recurrent layer's initial state left to its default, zeros)."""
    import math

    if text.strip() == "None":
        return None
    names = {k: getattr(math, k) for k in ("sqrt", "log", "exp", "pi", "inf")}
    value = eval(compile(text, "<layout constant>", "eval"), {"__builtins__": {}}, {**names, **sizes})
    return value if isinstance(value, int) else float(value)


def mask_hint(missing) -> str:
    """What to write when the spec's mask is what no argument takes (a hint appended to the error)."""
    if not any(is_mask(d) for d in missing):
        return ""
    return (
        "; a target that takes no mask says how it masks: --mask causal (it masks the future itself) or "
        "--mask none (it attends everywhere); one that takes a mask per key: --mask key_padding, key_keep, "
        "key_keep_int, key_keep_float, key_additive or key_lengths"
    )


def is_key_mask(convention: str | None) -> bool:
    """Whether a target taking its mask in ``convention`` takes one value per key."""
    return convention in KEY_MASKS


def key_vector(arr: np.ndarray, batch_ndim: int) -> np.ndarray:
    """The per-key row of a padding mask S (batch…, n_q, n_k): row 0, since every row of a padding mask is
    the same (the audit draws S as one, attention.padding_mask of a keep vector, for a per-key target)."""
    arr = np.asarray(arr)
    return arr[(slice(None),) * batch_ndim + (0,)]


def convert_mask(
    data: np.ndarray, additive_spec: bool, convention: str, dtype: torch.dtype, device: str
) -> torch.Tensor:
    """A spec mask (additive 0/−∞, or keep 1/0) in the implementation's ``convention`` (a per-key convention
    gets the per-key row already: see key_vector)."""
    keep = (data == 0) if additive_spec else (data > 0)
    encoding = KEY_MASKS.get(convention, convention)
    if encoding == "bool_keep":
        return torch.from_numpy(np.ascontiguousarray(keep)).to(device)
    if encoding == "bool_ignore":
        return torch.from_numpy(np.ascontiguousarray(~keep)).to(device)
    if encoding == "int_keep":
        return torch.from_numpy(keep.astype(np.int64)).to(device)
    if encoding == "float_keep":
        return torch.from_numpy(keep.astype(np.float64)).to(dtype=dtype, device=device)
    if encoding == "additive":
        return torch.from_numpy(np.where(keep, 0.0, -np.inf)).to(dtype=dtype, device=device)
    if encoding == "lengths":  # a right-padded keep row (drawn so: Setting.lengths) is its count of real keys
        return torch.from_numpy(keep.sum(axis=-1).astype(np.int64)).to(device)
    known = ", ".join(MASK_CONVENTIONS)
    raise BindingError(f"unknown mask convention {convention!r}: expected one of {known}")


def _jaxtyping_type(annotation: object) -> tuple[object | None, bool]:
    """The jaxtyping array type inside ``annotation`` (unwrapping ``X | None``); whether None is allowed."""
    if hasattr(annotation, "dim_str"):
        return annotation, False
    args = typing.get_args(annotation)
    if args and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and hasattr(inner[0], "dim_str"):
            return inner[0], True
    return None, False


def _dtype_kind(jt: object) -> str:
    dtypes = set(getattr(jt, "dtypes", ()) or ())
    if dtypes and dtypes <= {"bool", "bool_"}:
        return "bool"
    if dtypes and all(d.startswith(("int", "uint")) for d in dtypes):
        return "int"
    return "float"


def _parse_dims(fn: Callable, param: str, jt: object) -> tuple[bool, list[sp.Expr]]:
    batched, dims = False, []
    for k, d in enumerate(jt.dims):
        kind = type(d).__name__
        if kind in ("_NamedVariadicDim", "_AnonymousVariadicDim"):
            if k != 0:
                raise BindingError(
                    f"{who(fn)}: parameter {param!r} is annotated {jt.dim_str!r}: batch axes "
                    "('*batch') must come first"
                )
            batched = True
        elif kind == "_NamedDim":
            if d.name not in GLOSSARY:
                raise BindingError(
                    f"{who(fn)}: parameter {param!r} is annotated {jt.dim_str!r}: axis {d.name!r} is "
                    f"not in the glossary ({', '.join(GLOSSARY)})"
                )
            dims.append(GLOSSARY[d.name].symbol)
        elif kind == "_SymbolicDim":
            try:
                dims.append(sp.sympify(d.elem, locals=_AXIS_LOCALS))
            except (sp.SympifyError, TypeError) as exc:
                raise BindingError(
                    f"{who(fn)}: parameter {param!r}: cannot read the axis expression {d.elem!r}"
                ) from exc
        elif kind == "_FixedDim":
            dims.append(sp.Integer(d.size))
        else:
            raise BindingError(
                f"{who(fn)}: parameter {param!r} is annotated {jt.dim_str!r}: lmspec cannot bind a "
                f"{kind.strip('_')} axis; use glossary names"
            )
    return batched, dims


@functools.lru_cache(maxsize=8192)
def same_size(a: sp.Expr, b: sp.Expr) -> bool:
    """Whether two symbolic sizes are the same (``d_e`` and ``M*d_k`` are not; ``M*d_k`` and ``d_k*M`` are):
    structurally, else after expansion; ``sp.simplify`` only where the difference holds a function (floor,
    ceiling …) that expansion may leave undecided. Cached: layouts are resolved again for every variant."""
    if a == b:
        return True
    diff = sp.expand(sp.sympify(a) - sp.sympify(b))
    if diff == 0:
        return True
    if diff.atoms(sp.Function):
        return sp.simplify(diff) == 0
    return False


def spec_axes(decl) -> list[sp.Expr]:
    """The non-batch axes of a declared symbol's spec-layout array (family index axis first)."""
    dims = [sp.sympify(s) for s in decl.spec_shape]
    return [*decl.counts, *dims] if isinstance(decl, Family) else dims


def _match(
    fn: Callable,
    param: str,
    jt: object,
    decl,
    eq: Equation,
    batch: bool = True,
    keys: bool = False,
) -> tuple[int, ...]:
    """The permutation taking the spec's axes of ``decl`` to the annotated ones, or a BindingError.

    With ``batch`` a per-example input or output must take leading batch axes; outputs of equations
    without inputs (a mask of a given size) take none. With ``keys`` the argument is a per-key mask: of
    the spec's S it takes the key axis only.
    """
    batched, dims = _parse_dims(fn, param, jt)
    want = spec_axes(decl)[-1:] if keys else spec_axes(decl)
    perm: list[int] = []
    free = list(range(len(want)))
    for d in dims:
        hit = next((k for k in free if same_size(want[k], d)), None)
        if hit is None:
            break
        perm.append(hit)
        free.remove(hit)
    if len(dims) != len(want) or len(perm) != len(want):
        expected = ", ".join(str(w).replace("*", "·") for w in want)
        found = ", ".join(str(d).replace("*", "·") for d in dims) or "none"
        after = " after *batch" if batch and decl in (*eq.inputs, *eq.outputs) else ""
        raise BindingError(
            f"{who(fn)} (implementing {eq.id}): {_what(param)} is annotated {jt.dim_str!r}, "
            f"which does not match the spec's {eq.space(decl)}: expected the axes ({expected}) in "
            f"some order{after}, found ({found})"
        )
    if batch and (decl in eq.inputs or decl in eq.outputs) and not batched:
        raise BindingError(
            f"{who(fn)} (implementing {eq.id}): {_what(param)} is annotated {jt.dim_str!r}: a "
            "per-example input or output must take leading batch axes ('*batch ...')"
        )
    return tuple(perm)


def _what(param: str) -> str:
    return f"the {param} value" if param.startswith("return") else f"parameter {param!r}"


@dataclass(frozen=True)
class ImplBinding:
    """How to call an implementation with spec-layout examples and read its results back."""

    eq: Equation
    fn: Callable
    args: tuple[Layout, ...]
    sizes: tuple[tuple[str, str], ...]  # (parameter, axis)
    takes_dtype: bool
    outputs: tuple[Layout, ...]
    returns_tuple: bool
    options: Mapping[str, object] = field(default_factory=dict)  # keyword arguments selecting a variant

    def arguments(
        self,
        example: Mapping[str, np.ndarray],
        sizes: Mapping[str, int],
        batch_ndim: int,
        dtype: torch.dtype = torch.float64,
        device: str = "cpu",
        leaf: Callable | None = None,
    ) -> dict[str, object]:
        """The keyword arguments of one call: each laid-out tensor (``leaf(layout, tensor)`` may replace
        it, for the gradient), a tuple argument gathered from its slots, the sizes, the dtype."""
        kwargs: dict[str, object] = {}
        tuples: dict[str, dict[int, object]] = {}
        for lay, needs_sizes, source, slot in self._argument_plan:
            extra = {"sizes": sizes} if needs_sizes else {}
            arr = source(example) if source is not None else example[lay.name]
            value = lay.to_impl(arr, batch_ndim, dtype, device, **extra)
            if leaf is not None:
                value = leaf(lay, value)
            if slot is None:
                kwargs[lay.param] = value
            else:  # one member of a tuple argument: forward(x, state=(h, c))
                tuples.setdefault(lay.param, {})[slot] = value
        for param, members in tuples.items():
            kwargs[param] = tuple(members[k] for k in sorted(members))
        for param, axis in self.sizes:
            kwargs[param] = setting_value(axis, sizes, dtype, device)
        if self.takes_dtype:
            kwargs["dtype"] = dtype
        return kwargs

    @functools.cached_property
    def _argument_plan(self) -> tuple[tuple[Layout, bool, Callable | None, int | None], ...]:
        """Each argument's layout with what the audit's layouts may add (``needs_sizes``, ``source``,
        ``slot``), read once per binding instead of three ``getattr`` per argument per call."""
        extra = (("needs_sizes", False), ("source", None), ("slot", None))
        return tuple((lay, *(getattr(lay, k, default) for k, default in extra)) for lay in self.args)

    @functools.cached_property
    def _paths(self) -> tuple[tuple[int, ...] | None, ...]:
        """Where each output sits in a nested returned value (an audit layout's ``path``), else None."""
        return tuple(getattr(lay, "path", None) for lay in self.outputs)

    @functools.cached_property
    def _pooled(self) -> tuple[bool, ...]:
        """Whether each output is pooled over the batch (an audit layout's ``pooled``): no batch axes."""
        return tuple(getattr(lay, "pooled", False) for lay in self.outputs)

    def results(self, result: object) -> tuple:
        """The returned values in the order of ``outputs``: nested tuples (``out, (h, c)``) are read through
        each output's path, and a list of per-step tensors is one tensor (stacked_steps)."""
        paths = self._paths
        if any(p is not None for p in paths):
            picked = []
            for lay, path in zip(self.outputs, paths, strict=True):
                value = result
                for i in path:
                    if not isinstance(value, (tuple, list)) or not -len(value) <= i < len(value):
                        raise ShapeMismatch(
                            f"{who(self.fn)} returned {_structure(result)}, its binding reads "
                            f"{lay.param} at {list(path)}",
                            check="shape",
                        )
                    value = value[i]
                picked.append(stacked_steps(value))
            return tuple(picked)
        results = tuple(map(stacked_steps, result)) if self.returns_tuple else (stacked_steps(result),)
        if len(results) != len(self.outputs):
            raise ShapeMismatch(
                f"{who(self.fn)} returned {len(results)} value(s), its binding expects {len(self.outputs)}",
                check="shape",
            )
        return results

    def call(
        self,
        example: Mapping[str, np.ndarray],
        sizes: Mapping[str, int],
        batch_ndim: int,
        dtype: torch.dtype = torch.float64,
        device: str = "cpu",
    ) -> dict[str, np.ndarray]:
        kwargs = self.arguments(example, sizes, batch_ndim, dtype, device)
        results = self.results(self.fn(**kwargs, **self.options))
        out = {}
        for lay, pooled, value in zip(self.outputs, self._pooled, results, strict=True):
            if lay.name is None:  # a returned value the binding ignores
                continue
            if not isinstance(value, torch.Tensor) and "python" not in lay.dtype:
                raise ShapeMismatch(
                    f"{who(self.fn)} returned a {type(value).__name__} for {lay.name}, not a tensor",
                    check="shape",
                )
            out[lay.name] = lay.from_impl(value, 0 if pooled else batch_ndim, sizes)
        return out


def stacked_steps(value: object) -> object:
    """A list of tensors of one shape — a recurrence's outputs step by step, as d2l's RNNs return them
    (``outputs.append(state)`` … ``return outputs, state``) — as one tensor, the steps on a new first axis
    (``torch.stack(outputs, 0)``); anything else as it is. Only a list: a tuple is a structure, ``(h, c)``."""
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, torch.Tensor) for v in value)
        and len({tuple(v.shape) for v in value}) == 1
    ):
        return torch.stack(value)
    return value


def _structure(value: object) -> str:
    """A returned value's nesting, as a reader writes it: ``(tensor, (tensor, tensor))``."""
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_structure(v) for v in value) + ")"
    return "tensor" if isinstance(value, torch.Tensor) else type(value).__name__


def is_mask(decl) -> bool:
    return getattr(decl, "entry_kind", None) in (Kind.MASK, Kind.ADDITIVE_MASK)


def bind(
    fn: Callable,
    eq: Equation,
    *,
    symbols: tuple | None = None,
    missing_ok: typing.Collection[str] = (),
    mask: str | None = None,
) -> ImplBinding:
    """Bind ``fn`` to ``eq`` from its signature and jaxtyping annotations, or raise BindingError.

    ``symbols`` are the spec symbols it must take (every input and parameter by default), of which those
    in ``missing_ok`` it may leave out (the target fixes them itself: an audit pins their values).
    ``mask`` is the convention in which it takes masks (MASK_CONVENTIONS; bool annotations default to
    "bool_keep"; a per-key convention annotates the mask with the key axis only, ``Bool[Tensor, "*batch
    n"]``).
    """
    try:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
    except (TypeError, ValueError, NameError) as exc:
        raise BindingError(f"{who(fn)}: cannot read its signature or annotations ({exc})") from exc
    decls = {d.ascii: d for d in (symbols if symbols is not None else (*eq.inputs, *eq.params))}
    args: list[Layout] = []
    sizes: list[tuple[str, str]] = []
    seen: set[str] = set()
    for k, (name, p) in enumerate(sig.parameters.items()):
        if k == 0 and name == "self":  # a module's forward, read from its class
            continue
        if name in decls and decls[name].is_scalar and hints.get(name) in (float, int):
            if decls[name] in eq.inputs:
                raise BindingError(
                    f"{who(fn)} (implementing {eq.id}): parameter {name!r} is a Python "
                    f"{hints[name].__name__}, but the spec's {eq.space(decls[name])} is per example: "
                    'annotate it Float[Tensor, "*batch"]'
                )
            args.append(Layout(name, name, hints[name].__name__, f"python {hints[name].__name__}", (), False))
            seen.add(name)
        elif name in decls:
            jt, optional = _jaxtyping_type(hints.get(name))
            if jt is None:
                raise BindingError(
                    f"{who(fn)} (implementing {eq.id}): parameter {name!r} has no jaxtyping "
                    f"annotation; the spec's {eq.space(decls[name])} needs one, e.g. "
                    f'Float[Tensor, "{"*batch " if decls[name] in eq.inputs else ""}'
                    f'{" ".join(str(a) for a in spec_axes(decls[name]))}"]'
                )
            masky = is_mask(decls[name])
            perm = _match(fn, name, jt, decls[name], eq, keys=masky and is_key_mask(mask))
            args.append(
                Layout(
                    name,
                    name,
                    jt.dim_str,
                    _dtype_kind(jt),
                    perm,
                    decls[name] in eq.inputs,
                    optional,
                    convention=mask if masky else None,
                    additive_spec=getattr(decls[name], "entry_kind", None) == Kind.ADDITIVE_MASK,
                )
            )
            seen.add(name)
        elif name in eq.axes and hints.get(name) is int:
            sizes.append((name, name))
        elif name == "dtype" and p.default is not inspect.Parameter.empty:
            continue
        elif p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise BindingError(
                f"{who(fn)} (implementing {eq.id}): parameter {name!r} is not a symbol of the spec "
                f"(symbols: {', '.join(decls) or 'none'}; sizes: {', '.join(eq.axes)})"
            )
    missing = [k for k in decls if k not in seen and k not in missing_ok]
    if missing:
        raise BindingError(
            f"{who(fn)} (implementing {eq.id}): no parameter for the spec's "
            + ", ".join(eq.space(decls[k]) for k in missing)
            + mask_hint([decls[k] for k in missing])
        )
    ret = hints.get("return")
    if typing.get_origin(ret) is tuple:
        rets, returns_tuple = list(typing.get_args(ret)), True
    else:
        rets, returns_tuple = [ret], False
    if len(rets) != len(eq.outputs):
        raise BindingError(
            f"{who(fn)} (implementing {eq.id}): returns {len(rets)} value(s), the spec defines "
            f"{len(eq.outputs)} ({', '.join(o.ascii for o in eq.outputs)})"
        )
    outputs = []
    for k, (r, o) in enumerate(zip(rets, eq.outputs, strict=True)):
        label = f"return[{k}]" if returns_tuple else "return"
        if r in (int, float) and o.is_scalar and not eq.inputs:
            outputs.append(Layout(o.ascii, label, r.__name__, f"python {r.__name__}", (), False))
            continue
        jt, _ = _jaxtyping_type(r)
        if jt is None:
            raise BindingError(
                f"{who(fn)} (implementing {eq.id}): the {label} value has no "
                f"jaxtyping annotation for the spec's {eq.space(o)}"
            )
        batched = bool(eq.inputs)  # a mask of a given size carries no batch axes
        perm = _match(fn, label, jt, o, eq, batch=batched)
        outputs.append(Layout(o.ascii, label, jt.dim_str, _dtype_kind(jt), perm, batched))
    takes_dtype = "dtype" in sig.parameters
    return ImplBinding(eq, fn, tuple(args), tuple(sizes), takes_dtype, tuple(outputs), returns_tuple)


__all__ = ["ImplBinding", "Layout", "bind", "concrete_shape", "spec_axes"]
