"""Inference of an nn.Module class's binding: constructor arguments and configuration objects, ties and
constants, its parameters' maps (names, module types, stacked gates), and its forward's layout.
"""

import ast
import dataclasses
import importlib
import inspect
import re
import textwrap
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ....spec import Equation
from ..layout import mapped_sources
from ._code import _gate_order, _layer_norm_literal, _torch_class, stepped_axis, weight_side
from ._function import InferenceError, Inferred, infer_function, probe_sizes
from ._names import (
    _ALL_ROLE_NAMES,
    _ATTENTION_ROLES,
    _CONFIG_BASES,
    _CONFIG_NAMES,
    _EXTRA_INIT,
    _GENERIC_OWNERS,
    _LAYER_CONTAINERS,
    _NORM_LEAVES,
    _NORM_SHIFTS,
    _RECURRENT_INIT,
    _ROLE_SYMBOLS,
    ATTENTION_SCOPES,
    CROSS_SCOPES,
    FFN_SCOPES,
    INIT_NAMES,
    LENGTH_NAMES,
    ROLE_NAMES,
    TORCH_GATE_ORDER,
    TORCH_MASKS,
)


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


def init_args(cls: type, eq: Equation, only: set[str] | None = None) -> dict[str, str]:
    """Constructor arguments by name: sizes, and table lengths long enough for any drawn sequence; of the
    arguments named ``only`` where given (the required ones a user's --init leaves out)."""
    params = _constructor_parameters(cls)
    init, unexplained = {}, []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or (only is not None and p.name not in only):
            continue
        low = p.name.lower()
        axis = _RECURRENT_INIT.get(low) if "d_h" in eq.axes else None
        axis = axis or next((a for a, names in INIT_NAMES.items() if a in eq.axes and low in names), None)
        axis = axis or (_EXTRA_INIT.get(low) if _EXTRA_INIT.get(low) in eq.axes else None)
        axis = axis or ("n_max" if "n_max" in eq.axes and low in LENGTH_NAMES else None)  # Λ's length
        if axis is not None:
            init[p.name] = axis
        elif p.default is inspect.Parameter.empty and (built := _config_init(cls, p, eq)) is not None:
            init[p.name] = built
        elif p.default is inspect.Parameter.empty and (built := _module_init(cls, p, eq)) is not None:
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


def _not_given(cls: type, given: Mapping[str, object]) -> set[str]:
    """The constructor's arguments that ``given`` (a user's --init) leaves out: inferred by name, as with no
    --init at all (``--init k=d_e`` beside a ``heads`` read as M); a required one no name explains is an
    error that says to give it too."""
    varargs = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return {p.name for p in _constructor_parameters(cls) if p.kind not in varargs and p.name not in given}


def _constructor_parameters(cls: type) -> list[inspect.Parameter]:
    """The constructor's parameters; where it takes only ``*args, **kwargs`` (torch's nn.RNN, nn.LSTM,
    nn.GRU), those of its first typed overload, the signature its documentation gives."""
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError) as exc:
        raise InferenceError(f"cannot read the constructor of {cls.__name__} ({exc})") from exc
    varargs = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    if params and all(p.kind in varargs for p in params):
        for overload in typing.get_overloads(getattr(cls, "__init__", None)):
            named = list(inspect.signature(overload).parameters.values())[1:]  # self
            if named and not all(p.kind in varargs for p in named):
                return named
    return params


def _module_init(cls: type, p: inspect.Parameter, eq: Equation) -> str | None:
    """The --init expression of a constructor argument that is itself a module, by its annotation
    (nn.TransformerEncoder's ``encoder_layer: TransformerEncoderLayer``): that class built from its own
    constructor arguments, inferred alike (``TransformerEncoderLayer(d_model=d_e, nhead=M)``). None where the
    annotation names no module class in the module that defines ``cls``."""
    home = vars(inspect.getmodule(cls) or object)
    annotation = p.annotation
    name = annotation.strip("'\"") if isinstance(annotation, str) else getattr(annotation, "__name__", None)
    inner = home.get(name) if name else None
    if not (inspect.isclass(inner) and issubclass(inner, torch.nn.Module)) or inner is cls:
        return None
    try:
        args = init_args(inner, eq)
    except InferenceError:
        return None
    return f"{name}(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")"


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
        axis = axis or ("n_max" if "n_max" in eq.axes and low in LENGTH_NAMES else None)  # Λ's length
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


def _wide_heads(instance: torch.nn.Module, eq: Equation, sizes: Mapping[str, int], derive) -> bool:
    """Whether a multi-head attention built from d_e and M gives every head d_e dimensions of its own (Peter
    Bloem's "transformers from scratch": ``nn.Linear(k, k * heads)``) rather than d_e / M: a projection
    weight with M·d_e rows or columns at the probe's sizes, where d_e = M·d_k was assumed. Only for the
    attention equations (a block's d_f could take that width), where the user ties no size, and where M·d_e
    cannot be a fused projection's 2·d_e (k and v) or 3·d_e (q, k and v): M ≥ 4 at the probe."""
    if derive or "d_f" in eq.axes or not {"d_e", "M", "d_k"} <= set(sizes) or sizes["M"] < 4:
        return False
    wide = sizes["M"] * sizes["d_e"]
    return any(p.dim() == 2 and wide in p.shape for p in instance.parameters())


def _scope(segments: list[str]) -> str | None:
    """Whether a parameter sits in the attention or the FFN, by the outermost module on its path that says
    (BERT's attention.output.dense is the attention's, its output.dense the FFN's)."""
    for seg in segments[:-2]:
        if seg.lower() in ATTENTION_SCOPES:
            return "attention"
        if seg.lower() in FFN_SCOPES:
            return "ffn"
    return None


def _roles(path: str, eq_params: set[str], eq: Equation) -> list[str]:
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
        listed = dict.fromkeys(
            ("linears", "projections", "linear_layers", "proj_layers"), ("q", "k", "v", "o")
        )
        roles = listed.get(segments[-3].lower())
        return [roles[int(owner)]] if roles and int(owner) < len(roles) and "W_Q" in eq_params else []
    if "E" not in eq_params:  # no token embedding in the equation (the roles of a whole model's parts)
        candidates = [c for c in candidates if c != "tok"]
    if "Lambda" not in eq_params:
        candidates = [c for c in candidates if c != "pos"]
    if "alpha_3" not in eq_params:
        candidates = [c for c in candidates if c != "ln3"]
    if "alpha_e" not in eq_params:
        candidates = [c for c in candidates if c != "lnf"]
    elif "lnf" in candidates:  # ln_f: the final norm, never a block's
        candidates = ["lnf"]
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
        # d2l.ai's addnorm1.ln, addnorm2.ln: the layer norm of the sublayer its parent numbers
        parent = re.fullmatch(r"[a-z_]*norm_?([123])", segments[-3].lower()) if len(segments) > 2 else None
        if parent is not None and f"alpha_{parent.group(1)}" in eq_params:
            return [f"ln{parent.group(1)}"]
    one_matrix = len(_matrices(eq_params, eq)) == 1
    if not candidates and (leaf in ("weight", "bias") or len(segments) == 1) and one_matrix:
        return ["single"]  # the equation's one matrix: BERT's pooler.dense, an embedding table, a tied head
    return candidates


def _matrices(eq_params: set[str], eq: Equation) -> list[str]:
    """The equation's matrices (W_p, the token embedding E), the one-matrix case of _roles: an equation
    with one matrix is a dense layer, a lookup table or a tied head, whichever module holds it."""
    shapes = {p: [str(a) for a in eq.declared(p).shape] for p in eq_params}
    return sorted(p for p, axes in shapes.items() if len(axes) == 2 and "1" not in axes)


def _linear_like(module: torch.nn.Module, path: str) -> str:
    """How a module parameter holds a matrix: "out_in" for an nn.Linear's weight (out, in) or torch's
    recurrent weights (as documented), "in_out" for a Conv1D's (GPT-2's, as transformers documents) or a
    raw parameter the code multiplies as ``x @ W`` (weight_side), "out_in" for one it multiplies as
    ``W @ x``, ``x @ W.T`` or ``F.linear(x, W)``, and "in_out?" where the code does not say (a raw
    parameter is taken as (in, out) where its shape tells, never for a square one: see _oriented)."""
    owner_path, _, leaf = path.rpartition(".")
    owner = module.get_submodule(owner_path) if owner_path else module
    if isinstance(owner, torch.nn.Linear) or path.endswith("in_proj_weight"):
        return "out_in"
    if isinstance(owner, torch.nn.RNNBase | torch.nn.RNNCellBase):  # weight_ih (hidden, input), as documented
        return "out_in"
    if type(owner).__name__ == "Conv1D":
        return "in_out"
    return weight_side(type(owner), leaf) or "in_out?"


def _param_text(
    role: str, kind: str, layout: str, eq: Equation, suffix: str, shape: tuple[int, ...] = (), sizes=None
) -> str | None:
    """The --param text of one module parameter ("weight" or "bias") in ``role``; ``shape`` is the
    parameter's at the probe ``sizes`` (distinct per axis), which orients the one matrix of a one-matrix
    equation (see _single)."""
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
    if role in ("ln1", "ln2", "ln3", "ln"):
        index = {"ln1": "_1", "ln2": "_2", "ln3": "_3", "ln": suffix}[role]
        return ("beta" if kind == "bias" else "alpha") + index
    if role == "single":
        return _single(kind, layout, eq, shape, sizes)
    if role in ("tok", "pos") and kind == "weight":  # a table, oriented by its shape (_oriented)
        return _oriented("E" if role == "tok" else "Lambda", layout, eq, shape, sizes)
    if role == "lnf":
        return "beta_e" if kind == "bias" else "alpha_e"
    return None


def _single(kind: str, layout: str, eq: Equation, shape: tuple[int, ...], sizes) -> str | None:
    """The one matrix of a one-matrix equation (its bias b_… where it has one), oriented by the parameter's
    shape at the probe's distinct sizes: stored as the spec writes it (d_e × v for E) or transposed
    (nn.Embedding's and an lm_head Linear's (v, d_e)). Where both axes have one size (W_p, d_e × d_e), the
    module type says: nn.Linear's (out, in) is y = W x, the spec's orientation; x @ W its transpose."""

    params = {d.ascii for d in eq.params}
    (weight,) = _matrices({p for p in params if not eq.declared(p).is_scalar}, eq)
    if kind == "bias":
        bias = "b" + weight[1:]
        return bias if bias in params else None
    return _oriented(weight, layout, eq, shape, sizes)


def _oriented(weight: str, layout: str, eq: Equation, shape: tuple[int, ...], sizes) -> str | None:
    """The --param text of the spec matrix ``weight`` held by a module parameter of ``shape``: as the spec
    writes it, or transposed (``E -> v d_e``), by the shape at the probe's distinct sizes; a square matrix
    by ``layout`` (the module type). None where neither orientation has the shape."""
    from ...oracle import concrete_shape

    decl = eq.declared(weight)
    rows, cols = (str(a) for a in decl.shape)
    spec_shape = concrete_shape(decl, sizes) if sizes is not None else ()
    if spec_shape and spec_shape[0] != spec_shape[1] and tuple(shape) in (spec_shape, spec_shape[::-1]):
        return weight if tuple(shape) == spec_shape else f"{weight} -> {cols} {rows}"
    if spec_shape and tuple(shape) not in (spec_shape, spec_shape[::-1]):
        return None  # neither orientation: not this matrix
    if layout == "out_in" or rows != cols:
        return weight if layout == "out_in" else f"{weight} -> {cols} {rows}"
    # a square matrix (in, out): ``.T`` where its module type or its code says so, else no guess
    return f"{weight}.T" if layout == "in_out" else None


def _params_of(instance: torch.nn.Module, eq: Equation, sizes=None) -> tuple[dict[str, str], list[str]]:
    """--param maps of ``instance``'s parameters by name and module type, and the spec parameters none takes
    (stated absent: held at 0, never drawn)."""
    eq_params = {d.ascii for d in eq.params if not d.is_scalar}
    ln_suffix = "" if "alpha" in eq_params else "_1"
    maps: dict[str, str] = {}
    unexplained = []
    found = []
    shapes = {}
    for path, p in instance.named_parameters():
        key = _per_layer(path, eq)
        if key is not None:  # None: a later layer, mapped by h.{l}.…
            found.append((path, key, _roles(path, eq_params, eq)))
            shapes[path] = tuple(p.shape)
    settled = {roles[0] for _, _, roles in found if len(roles) == 1}
    for path, key, roles in found:
        if len(roles) > 1:  # c_proj: the attention's output where the FFN's has another name, and so on
            roles = [r for r in roles if r not in settled]
        leaf = path.rsplit(".", 1)[-1].lower()
        kind = "bias" if "bias" in leaf or leaf in _NORM_SHIFTS else "weight"
        layout = _linear_like(instance, path)
        text = (
            _param_text(roles[0], kind, layout, eq, ln_suffix, shapes[path], sizes)
            if len(roles) == 1
            else None
        )
        if text is not None and _crosses(path):  # a decoder's cross-attention: W_Q_cross, …
            text = _cross(text, eq_params)
        if text is None or not _fills(text, eq_params):
            unexplained.append(path)
        else:
            maps[key] = text
    if unexplained:  # what names could not say, shapes at the probe's distinct sizes may
        unexplained = _by_shape(instance, eq, unexplained, maps, sizes)
    if unexplained:
        raise InferenceError(
            f"cannot tell which of {eq.id}'s parameters the module's {', '.join(unexplained[:6])}"
            + (f" (and {len(unexplained) - 6} more)" if len(unexplained) > 6 else "")
            + " hold: map them with --param (docs/audit.md, Modules)"
        )
    taken = {s for text in maps.values() for s in mapped_sources(text)}
    untaken = [p for p in (d.ascii for d in eq.params if not d.is_scalar) if p not in taken]
    if any(not p.startswith("b") for p in untaken) and eq.variant_without(untaken) is None:
        raise InferenceError(
            f"no module parameter takes {', '.join(p for p in untaken if not p.startswith('b'))} of {eq.id}: "
            "map them with --param (docs/audit.md, Modules)"
        )
    return maps, untaken


def _by_shape(
    instance: torch.nn.Module, eq: Equation, paths: list[str], maps: dict[str, str], sizes
) -> list[str]:
    """Map the module parameters ``paths`` that names left open by their shapes at the probe's distinct
    sizes and their modules' types, into ``maps``; the paths still open are returned. A matrix takes the one
    spec matrix left with its shape in either orientation, or where two are (W_1 and W_2 of an FFN), the one
    in its module type's orientation (an nn.Linear's (out, in) is the spec's y = W x); a square one only
    from an nn.Linear (_oriented); a Linear's bias the bias of the matrix its weight took; a layer
    norm's scale and shift the one α and β left of its width; any other vector the one spec vector left of
    its shape (BERT's MLM head's ``predictions.bias``: b_out, (v,)). Only where exactly one spec parameter
    is left for it — never a choice among alike ones, and never by values."""
    if sizes is None:
        return paths
    from ...oracle import concrete_shape

    taken = {s for text in maps.values() for s in mapped_sources(text)}
    decls = {d.ascii: d for d in eq.params if not d.is_scalar and d.ascii not in taken}
    shape_of = {name: tuple(concrete_shape(d, sizes)) for name, d in decls.items()}
    named = dict(instance.named_parameters())
    matrix_of: dict[str, str] = {}  # an owner module's path -> the spec matrix its weight took
    open_paths = []
    for path in [q for q in paths if _unreferenced(instance, q)]:  # BertLMPredictionHead's own bias
        maps[_per_layer(path, eq) or path] = "keep"
    paths = [q for q in paths if maps.get(_per_layer(q, eq) or q) != "keep"]
    for path in sorted(paths, key=lambda q: named[q].dim(), reverse=True):  # weights before their biases
        shape, owner = tuple(named[path].shape), path.rsplit(".", 1)[0] if "." in path else ""
        module = instance.get_submodule(owner) if owner else instance
        leaf = path.rsplit(".", 1)[-1].lower()
        text = None
        if len(shape) == 2:
            fits = [w for w, ws in shape_of.items() if len(ws) == 2 and shape in (ws, ws[::-1])]
            if len(fits) > 1:  # W_1 (d_f, d_e) and W_2 (d_e, d_f): the module type's orientation decides
                as_is = _linear_like(instance, path) == "out_in"  # nn.Linear: y = W x, the spec's
                fits = [w for w in fits if (shape_of[w] == shape) == as_is]
            if len(fits) == 1:
                text = _oriented(fits[0], _linear_like(instance, path), eq, shape, sizes)
                matrix_of[owner] = fits[0]
        elif len(shape) == 1 and isinstance(module, torch.nn.LayerNorm | torch.nn.GroupNorm):
            family = "beta" if leaf in _NORM_SHIFTS else "alpha"
            fits = [v for v, vs in shape_of.items() if v.startswith(family) and vs[:1] == shape]
            text = fits[0] if len(fits) == 1 else None
        elif len(shape) == 1 and _second_bias(module, leaf, maps, owner):
            text = "0"  # torch's bias_hh beside bias_ih, which holds the spec's one bias (_SECOND_BIAS)
        elif len(shape) == 1:
            bias = "b" + matrix_of[owner][1:] if owner in matrix_of else None  # a Linear's: its matrix's bias
            fits = [
                v for v, vs in shape_of.items() if vs[:1] == shape and len([a for a in vs if a != 1]) == 1
            ]
            fits = [v for v in fits if not v.startswith(("alpha", "beta"))]
            text = bias if bias in shape_of and shape_of[bias][:1] == shape else None
            text = text or (fits[0] if len(fits) == 1 else None)
        if text is None:
            open_paths.append(path)
            continue
        maps[_per_layer(path, eq) or path] = text
        shape_of.pop(text.split(" ")[0], None)
    return [q for q in paths if q in open_paths]


def _second_bias(module: torch.nn.Module, leaf: str, maps: Mapping[str, str], owner: str) -> bool:
    """Whether ``leaf`` is torch's second recurrent bias (``bias_hh…``) whose ``bias_ih…`` already took the
    spec's one bias: torch only adds the two."""
    if not (isinstance(module, torch.nn.RNNBase | torch.nn.RNNCellBase) and leaf.startswith("bias_hh")):
        return False
    first = f"{owner}.{leaf.replace('bias_hh', 'bias_ih')}" if owner else leaf.replace("bias_hh", "bias_ih")
    return maps.get(first, "0") != "0"


def _unreferenced(instance: torch.nn.Module, path: str) -> bool:
    """Whether a parameter held directly by a module written outside torch is named by no line of its
    class's code but the constructor (``self.bias = nn.Parameter(…)`` that forward never reads: transformers'
    BertLMPredictionHead, whose decoder's own bias is the one used). Such a parameter takes no part in the
    output: it is left as it is (``keep``), never given a spec parameter another one holds."""
    owner_path, _, leaf = path.rpartition(".")
    owner = instance.get_submodule(owner_path) if owner_path else instance
    if type(owner).__module__.split(".")[0] == "torch":
        return False
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(type(owner))))
    except (OSError, TypeError, SyntaxError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name != "__init__":
            for inner in ast.walk(node):
                if isinstance(inner, ast.Attribute) and inner.attr == leaf:
                    return False
    return True


def _gate_stacks(instance: torch.nn.Module, eq: Equation, sizes: Mapping[str, int]):
    """--param maps of an LSTM cell that stacks its four gates in one weight (``x2h``: (4 d_h, d_e),
    ``h2h``: (4 d_h, d_h), or one Linear on ``cat([x, h])``: [W | U]) and one bias: the stacks told apart by
    their shapes at the probe's distinct sizes, the gate order by the code (_gate_order). None where the
    equation has no gate stacks or the module is not laid out so (names decide then, as for any module)."""
    eq_params = {d.ascii for d in eq.params if not d.is_scalar}
    if not {"W_i", "W_f", "W_c", "W_o", "U_i"} <= eq_params or "d_h" not in sizes:
        return None
    order = _gate_order(type(instance)) or TORCH_GATE_ORDER.get(_torch_class(instance))
    named = list(instance.named_parameters())
    d_e, d_h = sizes["d_e"], sizes["d_h"]
    if order is None or not named or any(4 * d_h not in p.shape for _, p in named):
        return None
    stack = ", ".join  # "W_i, W_f, W_c, W_o" in the code's order
    maps: dict[str, str] = {}
    for path, p in named:
        if p.dim() == 1:
            if any(text.startswith("b_") for text in maps.values()):
                maps[path] = "0"  # a second bias (torch's bias_hh): only added to the first (_SECOND_BIAS)
                continue
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
    taken = {s for text in maps.values() for s in mapped_sources(text)}
    if not {f"{w}_{g}" for w in "WU" for g in "ifco"} <= taken:
        return None
    return maps, [p for p in sorted(eq_params - taken) if p.startswith("b")]


#: a per-gate weight or bias named as d2l.ai's LSTM from scratch names them: W_xi (input to gate i), W_hi
#: (state to gate i), b_i; the gates i, f, o and c (d2l's input node), or g as torch names the candidate
_PER_GATE = re.compile(r"(?:w_?(?P<source>[xh])|b_?)(?P<gate>[ifocg])", re.IGNORECASE)


def _per_gate(instance: torch.nn.Module, eq: Equation, sizes: Mapping[str, int]):
    """--param maps of an LSTM step or sequence whose every gate has its own raw weights, named as d2l.ai
    names them (W_xi, W_hi, b_i, …: _PER_GATE): W_x• is the spec's W_•, oriented by its shape; W_h• is U_•,
    square, held as the code multiplies by it (``H @ self.W_hi``: ``U_i.T``, _linear_like). None where the
    equation has no such gates, a name is not a gate's, or the code does not say how a square one is used."""
    eq_params = {d.ascii for d in eq.params if not d.is_scalar}
    if not {f"{w}_{g}" for w in "WU" for g in "ifco"} <= eq_params or "d_h" not in sizes:
        return None
    d_e, d_h = sizes["d_e"], sizes["d_h"]
    maps: dict[str, str] = {}
    for path, p in instance.named_parameters():
        found = _PER_GATE.fullmatch(path)
        if found is None:
            return None
        gate = {"g": "c"}.get(found["gate"].lower(), found["gate"].lower())
        shape, source = tuple(p.shape), (found["source"] or "").lower()
        if source == "" and shape == (d_h,):
            maps[path] = f"b_{gate}"
        elif source == "x" and shape in ((d_h, d_e), (d_e, d_h)):
            maps[path] = f"W_{gate}" if shape == (d_h, d_e) else f"W_{gate} -> d_e d_h"
        elif source == "h" and shape == (d_h, d_h) and _linear_like(instance, path) != "in_out?":
            maps[path] = f"U_{gate}.T" if _linear_like(instance, path) == "in_out" else f"U_{gate}"
        else:
            return None
    taken = {s for text in maps.values() for s in mapped_sources(text)}
    if not {f"{w}_{g}" for w in "WU" for g in "ifco"} <= taken:
        return None
    return maps, sorted(p for p in eq_params - taken if p.startswith("b"))


def _elman(instance: torch.nn.Module, eq: Equation, sizes: Mapping[str, int]):
    """--param maps of an Elman cell (rnn.elman_step: W_x, W_h, b_h) by shape at the probe's distinct sizes:
    a (d_h, d_e) weight is W_x, the (d_h, d_h) one W_h, held as the code multiplies by it (``h @ W``: W_h.T)
    or else as W_x is, a d_h vector b_h; a second d_h vector (torch's bias_hh) is zeroed (_SECOND_BIAS). A
    cell whose W_x is (d_e, d_h) and whose code does not say how it uses W_h is not bound. None then, and
    where the equation is not the Elman step or a parameter has another shape."""
    eq_params = {d.ascii for d in eq.params if not d.is_scalar}
    if eq_params != {"W_x", "W_h", "b_h"} or "d_h" not in sizes:
        return None
    d_e, d_h = sizes["d_e"], sizes["d_h"]
    named = dict(instance.named_parameters())
    # W_x's shape says how the module stores its weights ((out, in): W x, or (in, out): x @ W); the square
    # W_h, which no shape can orient, as its code uses it, or else the same way
    out_in = next(
        (tuple(p.shape) == (d_h, d_e) for p in named.values() if p.dim() == 2 and d_e in p.shape), None
    )
    if out_in is None:
        return None
    maps: dict[str, str] = {}
    for path, p in named.items():
        shape = tuple(p.shape)
        if shape == (d_h,):
            maps[path] = "0" if "b_h" in maps.values() else "b_h"
        elif shape == (d_h, d_h) and not {"W_h", "W_h.T"} & set(maps.values()):
            side = _linear_like(instance, path)  # what the code says of the square one, else W_x's way
            if side == "in_out?" and not out_in:  # (in, out) like W_x, or not: the code does not say
                raise InferenceError(
                    f"the module's {path} is W_h, square, and its code does not show how it multiplies by "
                    f"it (x @ W or W @ x): map it with --param {path}=W_h.T where it is stored (in, out) "
                    f"like its input weight, or --param {path}=W_h where (out, in) (docs/audit.md, Modules)"
                )
            maps[path] = "W_h.T" if side == "in_out" else "W_h"
        elif shape in ((d_h, d_e), (d_e, d_h)):
            maps[path] = "W_x" if out_in else "W_x -> d_e d_h"
        else:
            return None
    if not {"W_x", "W_h"} <= {text.split(" ")[0] for text in maps.values()}:
        return None
    return maps, [] if "b_h" in maps.values() else ["b_h"]


def _torch_gru(instance: torch.nn.Module, eq: Equation):
    """--param maps of torch's own nn.GRU / nn.GRUCell, as torch documents them: row blocks r, z, n, and
    h' = (1 − z) ⊙ n + z ⊙ h, so its update gate is the spec's 1 − z — its z-rows hold −W_z, −U_z, −b_z
    (σ(−a) = 1 − σ(a)); bias_ih takes the spec's biases and bias_hh is 0, whose n-block is reset_after's
    b_U (stated absent: held at 0 in that variant, which is what torch computes). None for anything else."""
    if _torch_class(instance) not in ("GRU", "GRUCell"):
        return None
    eq_params = {d.ascii for d in eq.params if not d.is_scalar}
    if not {"W_r", "W_z", "W", "U_r", "U_z", "U", "b_r", "b_z", "b"} <= eq_params:
        return None
    suffix = "_l0" if _torch_class(instance) == "GRU" else ""
    maps = {
        f"weight_ih{suffix}": "W_r, -W_z, W -> (3 d_h) d_e",
        f"weight_hh{suffix}": "U_r, -U_z, U -> (3 d_h) d_h",
        f"bias_ih{suffix}": "b_r, -b_z, b -> (3 d_h)",
        f"bias_hh{suffix}": "0",
    }
    if set(maps) != {path for path, _ in instance.named_parameters()}:
        return None  # more layers, directions or no biases: written by hand
    return maps, []


#: The note for a second bias: torch's recurrent cells add bias_ih and bias_hh where the spec has one b.
_SECOND_BIAS = (
    "a second bias ({paths}) is zeroed (--param …=0): it is only added to the first, which holds the spec's "
    "one bias (torch's bias_ih + bias_hh)"
)


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


def _crosses(path: str) -> bool:
    """Whether a parameter sits in a decoder's cross-attention (CROSS_SCOPES on its path)."""
    return any(seg.lower() in CROSS_SCOPES for seg in path.split(".")[:-1])


def _cross(text: str, eq_params: set[str]) -> str | None:
    """A --param text's symbols as the cross-attention's (``W_Q, W_K, W_V -> …`` → ``W_Q_cross, …``); None
    where the equation has no such parameter (it has no cross-attention)."""
    head, arrow, rest = text.partition("->")
    symbols = [s.strip() for s in head.split(",")]
    if not all(f"{s}_cross" in eq_params for s in symbols):
        return None
    return ", ".join(f"{s}_cross" for s in symbols) + (f" ->{rest}" if arrow else "")


def _fills(text: str, eq_params: set[str]) -> bool:
    sources = mapped_sources(text)  # none for "0" and "keep": those fill nothing
    return bool(sources) and all(s in eq_params for s in sources)


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


def infer_module(
    cls, eq: Equation, *, fixed=None, derive=None, label: str = "the target", mask=None, init=None
):
    """The binding of an nn.Module class to ``eq``: its constructor arguments (those ``init`` leaves out
    and needs: a user gives a config object, say, or a size no equation names), ties and constants, its
    parameters' maps (names and module types: nn.Linear's (out, in), Conv1D's (in, out), fused q/k/v,
    per-layer containers), the spec parameters it lacks (absent), and its forward's layout."""
    from ..targets import _home, init_value, lazy_parameters, quiet_special_token_ids

    init = init_args(cls, eq) if init is None else {**init_args(cls, eq, only=_not_given(cls, init)), **init}
    ties = {**_derive(eq, init, fixed), **dict(derive or {})}

    def build(sizes: Mapping[str, int]) -> torch.nn.Module:
        try:
            with quiet_special_token_ids():
                built = cls(**{k: init_value(k, v, sizes, _home(cls)) for k, v in init.items()})
            module = built.double().eval()
        except Exception as exc:  # noqa: BLE001 - a setup problem: say what was tried
            call = ", ".join(f"{k}={v}" for k, v in init.items())
            raise InferenceError(
                f"{label}: building {cls.__name__}({call}) raised {type(exc).__name__}: {exc}"
            ) from None
        if lazy_parameters(module):  # nn.LazyLinear (d2l.ai): its first call gives them their shapes
            infer_forward(module, eq, fixed=fixed, derive=ties, label=label, mask=mask)
            if left := lazy_parameters(module):
                raise InferenceError(
                    f"{label}: the lazy parameters {', '.join(left)} of {cls.__name__} have no shape after a "
                    "call at the probe; map them with --param and write the layout (docs/audit.md, Modules)"
                )
        return module

    sizes = probe_sizes(eq, fixed, ties)[0]
    instance = build(sizes)
    notes = []
    if _wide_heads(instance, eq, sizes, derive):  # Bloem's heads: each as wide as the model, d_k = d_e
        ties = {**{k: v for k, v in ties.items() if k not in ("d_e", "d_v")}, "d_k": "d_e", "d_v": "d_e"}
        sizes = probe_sizes(eq, fixed, ties)[0]
        instance = build(sizes)
        notes.append("each head is d_e wide, d_k = d_v = d_e (read from the projections' shapes: M·d_e rows)")
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
    gates = (
        _gate_stacks(instance, eq, sizes)
        or _per_gate(instance, eq, sizes)
        or _elman(instance, eq, sizes)
        or _torch_gru(instance, eq)
    )
    params, untaken = gates if gates is not None else _params_of(instance, eq, sizes)
    zeroed = [path for path, text in params.items() if text == "0"]
    if zeroed:
        notes.append(_SECOND_BIAS.format(paths=", ".join(zeroed)))
    absent: list[str] = []
    if _torch_gru(instance, eq) is not None:
        absent = ["b_U"]  # bias_hh's n-block, zeroed: reset_after's b_U, held at 0 where a form has it
        notes.append("torch's GRU: its update gate is the spec's 1 − z (z-rows negated, -W_z); bias_hh is 0, "
                     "so reset_after's b_U is held at 0 (--absent b_U)")  # fmt: skip
    elif untaken and (variant := eq.variant_without(untaken)) is not None:
        # never stated absent: the variant is the finding
        notes.append(f"no module parameter takes {', '.join(untaken)}: the audit names the variant without "
                     f"them ({variant}), as with a written binding")  # fmt: skip
    elif untaken:  # no variant of the equation leaves them out: stated, printed, held at 0
        absent = untaken
        notes.append(f"no module parameter takes {', '.join(untaken)}: held at 0 (--absent)")
    fwd = infer_forward(instance, eq, fixed=fixed, derive=ties, label=label, mask=mask)
    return InferredModule(init, ties, constants, params, absent, fwd, notes)


def infer_forward(
    module: torch.nn.Module, eq: Equation, *, fixed=None, derive=None, label: str = "the target", mask=None
) -> Inferred:
    """The layout of a module instance's forward (its parameters are mapped apart, not passed)."""

    from ..targets import plain_outputs

    def forward(**kwargs):
        return plain_outputs(module(**kwargs))  # a ModelOutput read as its tuple, as the audit reads it

    forward.__signature__ = inspect.signature(module.forward)
    forward.__lmspec_source__ = module.forward  # its code says what it returns (_return_names)
    forward.__qualname__ = forward.__name__ = type(module).__name__

    def infer(fn) -> Inferred:
        return infer_function(
            fn,
            eq,
            fixed=fixed,
            derive=derive,
            label=label,
            mask=mask or TORCH_MASKS.get(_torch_class(module)),
            with_params=False,
            hf_layer=_transformers_module(module),
            batch_first=_batch_first(module),
        )

    try:
        return infer(forward)
    except InferenceError:
        hidden = _last_hidden_state(module, eq, forward, infer) if _transformers_module(module) else None
        if hidden is None:
            raise
        return hidden


def _last_hidden_state(module: torch.nn.Module, eq: Equation, forward, infer) -> Inferred | None:
    """A transformers model with a head (``GPT2LMHeadModel``) returns logits; the equation of its body
    (``gpt2.forward``'s H_out) is its ``hidden_states[-1]``, asked for with ``output_hidden_states=True`` —
    the last of its hidden states, after the final layer norm where the model has one. The layout reads it
    from the returned tuple (``-> _, _, (..., H_out=b n d_e)``: ``...`` stands for the earlier layers',
    whose number the sizes set). Tried only where reading the model's own results found no fit: None where
    this fails too (the original error stands)."""
    where: dict[str, int] = {}

    def last_hidden(**kwargs):
        result = module(**kwargs, output_hidden_states=True)
        keys = list(result.keys()) if isinstance(result, Mapping) else []
        if "hidden_states" not in keys:
            raise TypeError(f"{type(module).__name__} returned no hidden_states")
        where.update(at=keys.index("hidden_states"), of=len(keys))
        return result["hidden_states"][-1]

    for name in ("__signature__", "__lmspec_source__", "__qualname__", "__name__"):
        setattr(last_hidden, name, getattr(forward, name))
    try:
        found = infer(last_hidden)
    except InferenceError:
        return None
    inputs, _, returned = found.layout.partition(" -> ")
    name, sep, axes = returned.partition("=")
    read = f"{name}={axes}" if sep else f"{eq.outputs[0].ascii}={returned}"
    results = ["_"] * where["of"]
    results[where["at"]] = f"(..., {read})"
    layout = f"{inputs}, output_hidden_states:True -> {', '.join(results)}"
    note = (
        "its results hold no output of the equation: read from hidden_states[-1] "
        "(output_hidden_states=True), the last hidden state, after the final layer norm where it has one"
    )
    return dataclasses.replace(found, layout=layout, notes=[note, *found.notes])


#: torch's modules whose ``batch_first`` says their layout (False: sequence-first, torch's default).
_BATCH_FIRST_MODULES = (torch.nn.RNNBase, torch.nn.MultiheadAttention, torch.nn.TransformerEncoderLayer,
                        torch.nn.TransformerDecoderLayer, torch.nn.Transformer)  # fmt: skip
_SWAPS_BATCH = re.compile(r"transpose\(\s*(0\s*,\s*1|1\s*,\s*0)\s*\)|permute\(\s*1\s*,\s*0\b|\.t\(\)")


def _batch_first(module: torch.nn.Module) -> bool | None:
    """Whether the module's tensors are batch-first: its own ``batch_first`` attribute, else that of the
    torch layers inside it where they agree (pytorch/examples' word language model feeds its nn.RNN's
    sequence-first layout straight through: its (n, b) ids fit (b, n) as well, so shapes could not tell),
    unless its own code swaps the first two axes (``x.transpose(0, 1)`` before a sequence-first layer):
    None then, and shapes decide."""
    own = getattr(module, "batch_first", None)
    if isinstance(own, bool):
        return own
    inner = {m.batch_first for m in module.modules() if isinstance(m, _BATCH_FIRST_MODULES)
             and isinstance(getattr(m, "batch_first", None), bool)}  # fmt: skip
    if not inner:  # no torch layer says: a Python loop over the tokens may (d2l's ``for X in inputs``)
        axis = stepped_axis(type(module).forward)
        return None if axis is None else axis == 1
    if len(inner) != 1:
        return None
    for cls in {type(m) for m in module.modules() if type(m).__module__.split(".")[0] != "torch"}:
        try:
            if _SWAPS_BATCH.search(inspect.getsource(cls)):
                return None
        except (OSError, TypeError):
            return None
    return inner.pop()


def _transformers_module(module: torch.nn.Module) -> bool:
    """Whether ``module`` is a transformers module (or one built from a transformers configuration, as
    remote code is): its layers take the 4-D additive attention_mask the model builds."""
    if type(module).__module__.split(".")[0] == "transformers":
        return True
    config = getattr(module, "config", None)
    return config is not None and bool({b.__name__ for b in type(config).__mro__} & set(_CONFIG_BASES))
