"""Audit targets: a function or an nn.Module bound to an equation, called on spec-layout examples,
with the vector-Jacobian product the gradient check needs (see verify.audit)."""

import builtins
import dataclasses
import importlib
import inspect
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import torch

from ...spec import Equation, Kind
from .._errors import BindingError, ShapeMismatch
from ..binding import ImplBinding, bind
from ..oracle import _batch_shape, size_value
from ..targets import Target
from .layout import layout_binding, parse_param
from .pattern import PatternLayout


# --- targets ----------------------------------------------------------------------------------------
class BoundTarget(Target):
    """A callable (or a module's forward) behind a binding, on a device and in a dtype."""

    def __init__(
        self,
        eq: Equation,
        binding: ImplBinding,
        name: str,
        dtype: torch.dtype,
        device: str,
        partial: bool = False,
    ) -> None:
        super().__init__(eq)
        self.binding = binding
        self.name = name
        self.dtype = dtype
        self.device = device
        self.partial_outputs = partial

    def prepare(self, example, sizes) -> ImplBinding:
        return self.binding

    def __call__(self, example, sizes):
        batch = _batch_shape(self.eq, example, sizes)
        binding = self.prepare(example, sizes)
        with torch.no_grad():
            return binding.call(example, sizes, len(batch), self.dtype, self.device)

    def probe(self, pool) -> None:
        """Raise BindingError now if the target cannot be set up at one of these size tuples (a module that
        cannot be built, a parameter mapping that does not fit): before any check, never as a verdict."""

    # the gradient check -------------------------------------------------------------------------------
    def vjp(self, example, sizes, cotangents: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = _batch_shape(self.eq, example, sizes)
        binding = self.prepare(example, sizes)
        leaves = {}

        def leaf(lay, value):
            if (
                isinstance(value, torch.Tensor)
                and value.is_floating_point()
                and differentiable(self.eq, lay.name)
            ):
                value = value.detach().requires_grad_(True)
                leaves[(lay.param, getattr(lay, "slot", None))] = (lay, value)  # the same tensor may be
            return value  # passed to several arguments: one leaf each

        kwargs = binding.arguments(example, sizes, len(batch), self.dtype, self.device, leaf=leaf)
        results = binding.results(binding.fn(**kwargs, **binding.options))
        total = 0
        for lay, value in zip(binding.outputs, results, strict=True):
            if lay.name is None or lay.name not in cotangents or not isinstance(value, torch.Tensor):
                continue
            if not value.is_floating_point():
                continue
            nb = 0 if getattr(lay, "pooled", False) else len(batch)  # a pooled value has no batch axes
            cot = _to_layout(lay, cotangents[lay.name], nb, sizes, value.dtype, value.device)
            total = total + (value * cot).sum()
        params = list(leaves)
        weights = self.weights(binding, sizes)  # a module's parameters filled from the spec's
        if not params and not weights:  # nothing of the spec's to differentiate
            return {}
        tensors = [leaves[k][1] for k in params] + [w for *_, w in weights]
        if not isinstance(total, torch.Tensor) or not total.requires_grad:  # nothing depends on the inputs
            grads = [None] * len(tensors)
        else:
            grads = torch.autograd.grad(total, tensors, allow_unused=True)
        out: dict[str, np.ndarray] = {}
        for k, g in zip(params, grads[: len(params)], strict=True):
            lay, value = leaves[k]
            g = torch.zeros_like(value) if g is None else g
            d = lay.from_impl(g, len(batch) if lay.batched else 0, sizes)
            out[lay.name] = out[lay.name] + d if lay.name in out else d  # f(x, x, x): ∂/∂H sums the three
        for (mapping, index, w), g in zip(weights, grads[len(params) :], strict=True):
            g = torch.zeros_like(w) if g is None else g
            for name, d in mapping.adjoint(g, example, sizes, index).items():
                out[name] = out[name] + d if name in out else d  # a tied weight: the uses add up
        return out

    def weights(self, binding: ImplBinding, sizes) -> list[tuple[object, int | None, torch.Tensor]]:
        """(mapping, layer index, tensor) of each module parameter filled from spec parameters: the
        gradient check differentiates through them too (a plain function has none)."""
        return []


def _to_layout(lay, arr, batch_ndim, sizes, dtype, device) -> torch.Tensor:
    """A spec-layout array (a cotangent of an output) in the target's layout of that output."""
    if isinstance(lay, PatternLayout):
        plain = dataclasses.replace(lay, convention=None, dtype="float")
        return plain.to_impl(arr, batch_ndim, dtype, device, sizes)
    plain = dataclasses.replace(lay, convention=None, dtype="float", batched=lay.batched)
    return plain.to_impl(arr, batch_ndim, dtype, device)


def differentiable(eq: Equation, name: str) -> bool:
    decl = eq.declared(name)
    return decl.entry_kind in (Kind.REAL, Kind.SCORE) and not decl.is_scalar


class ModuleTarget(BoundTarget):
    """An nn.Module: built per size tuple from a class (``init``) or used as given, its parameters filled
    from the spec's through ``params``, called through a binding of its forward."""

    def __init__(self, eq, binding, name, dtype, device, module, init, params, partial=False) -> None:
        super().__init__(eq, binding, name, dtype, device, partial)
        self.module = module
        self.init = dict(init or {})
        self.params = [parse_param(path, text, eq) for path, text in (params or {}).items()]
        self._built: dict[tuple, torch.nn.Module] = {}
        self._checked: set[tuple] = set()

    def _instance(self, sizes) -> torch.nn.Module:
        if isinstance(self.module, torch.nn.Module):
            return self.module
        key = tuple(sorted(sizes.items()))
        if key not in self._built:
            with quiet_special_token_ids():
                kwargs = {k: init_value(k, v, sizes, _home(self.module)) for k, v in self.init.items()}
                call = f"{self.name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
                try:
                    mod = self.module(**kwargs)
                except Exception as exc:  # a setup problem, the user's to fix: never a verdict
                    raise BindingError(
                        f"cannot build the module: {call} raised {type(exc).__name__}: {exc}; check --init, "
                        "or tie the sizes the module ties (--derive, e.g. d_e=M*d_k)"
                    ) from exc
            if not isinstance(mod, torch.nn.Module):
                raise BindingError(f"{call} returned a {type(mod).__name__}, not an nn.Module")
            self._built = {key: mod}  # one at a time: sizes repeat in runs of examples
        return self._built[key]

    def probe(self, pool) -> None:
        for sizes in pool:
            self._check_params(self._instance(sizes), sizes)

    def _expanded(self, sizes) -> list[tuple[str, object, int | None]]:
        """(module path, mapping, layer index) for every mapping, per-layer paths ("h.{l}.…") unrolled."""
        out = []
        for m in self.params:
            if m.loop is None:
                out.append((m.path, m, None))
                continue
            name, _, count = m.loop
            n = size_value(count, sizes)
            out.extend((m.path.replace("{" + name + "}", str(i)), m, i) for i in range(n))
        return out

    def _check_params(self, mod: torch.nn.Module, sizes) -> None:
        names = dict(mod.named_parameters())
        mapped = {path for path, _, _ in self._expanded(sizes)}
        unknown = sorted(mapped - set(names) - {n for n, _ in mod.named_buffers()})
        if unknown:
            raise BindingError(
                f"{self.name}: the parameter mapping names {', '.join(unknown)}, which the module does not "
                f"have (its parameters: {', '.join(names) or 'none'})"
            )
        unmapped = sorted(set(names) - mapped)
        if unmapped:
            raise BindingError(
                f"{self.name}: no mapping for the module parameters {', '.join(unmapped)}; map each to spec "
                "parameters ('W_Q -> (M d_k) d_e'), to '0' or to 'keep'"
            )

    def prepare(self, example, sizes) -> ImplBinding:
        mod = self._instance(sizes)
        key = (id(mod), tuple(sorted(sizes.items())))
        if key not in self._checked:
            self._check_params(mod, sizes)
            self._checked.add(key)
        mod.to(device=self.device, dtype=self.dtype).eval()
        with torch.no_grad():
            for path, m, index in self._expanded(sizes):
                tensor = mod.get_parameter(path) if _has_param(mod, path) else mod.get_buffer(path)
                if m.mode == "keep":
                    continue
                if m.mode == "zero":
                    tensor.zero_()
                    continue
                value = m.value(example, sizes, index)
                if isinstance(tensor, torch.nn.parameter.UninitializedParameter):  # nn.LazyLinear's: shaped
                    tensor.materialize(value.shape, dtype=self.dtype, device=self.device)  # by the mapping
                if tuple(value.shape) != tuple(tensor.shape):
                    raise ShapeMismatch(
                        f"{self.name}: the mapping {path} = {m.text} gives shape {list(value.shape)}, the "
                        f"module's {path} has shape {list(tensor.shape)}",
                        check="shape",
                    )
                tensor.copy_(torch.from_numpy(value).to(dtype=tensor.dtype, device=tensor.device))
        return dataclasses.replace(self.binding, fn=ModuleCall(mod))

    def weights(self, binding: ImplBinding, sizes) -> list[tuple[object, int | None, torch.Tensor]]:
        mod = binding.fn.module
        out = []
        for path, m, index in self._expanded(sizes):
            if m.mode == "map" and _has_param(mod, path):
                out.append((m, index, mod.get_parameter(path)))
        return out


class ModuleCall:
    """Calls a module as its users do, ``module(**kwargs)``; a transformers ``ModelOutput`` (a dict of named
    tensors, ``last_hidden_state`` first) comes back as its ``to_tuple()``, the positions a layout's returns
    read (``-> b n d_e, _``)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self.__qualname__ = self.__name__ = type(module).__name__

    def __call__(self, *args, **kwargs):
        return plain_outputs(self.module(*args, **kwargs))


def plain_outputs(result: object) -> object:
    """``result``, or a transformers ``ModelOutput``'s tuple of the values it holds (``to_tuple()``)."""
    to_tuple = getattr(result, "to_tuple", None)
    return to_tuple() if isinstance(result, Mapping) and callable(to_tuple) else result


def lazy_parameters(module: torch.nn.Module) -> list[str]:
    """The parameters of ``module`` that have no shape yet (``nn.LazyLinear``'s before its first call)."""
    return [
        name
        for name, p in module.named_parameters()
        if isinstance(p, torch.nn.parameter.UninitializedParameter)
    ]


def _has_param(mod: torch.nn.Module, path: str) -> bool:
    try:
        mod.get_parameter(path)
        return True
    except AttributeError:
        return False


class _InitNames(Mapping):
    """The names an ``--init`` expression sees: the axis sizes of the example (``d_e``, ``4*d_e``), then the
    names of the target's own module (``GPTConfig``), then importable modules (``transformers.GPT2Config``);
    builtins come after these."""

    def __init__(self, sizes: Mapping[str, int], home: Mapping[str, object]) -> None:
        self.sizes, self.home = sizes, home

    def __getitem__(self, name: str):
        if name in self.sizes:
            return self.sizes[name]
        if name in self.home:
            return self.home[name]
        if name in vars(builtins):
            raise KeyError(name)  # LOAD_NAME goes on to the builtins
        try:
            return importlib.import_module(name)
        except ImportError:
            raise KeyError(name) from None

    def __iter__(self):
        return iter({**self.home, **self.sizes})

    def __len__(self) -> int:
        return len({**self.home, **self.sizes})


class _SpecialTokenIds(logging.Filter):
    """Drops transformers' warning that a configuration's special token ids (GPT-2's bos and eos, 50256)
    lie outside the vocabulary: the audit's sizes make the vocabulary small, so the warning is about the
    sizes lmspec chose, never about the code audited (no check reads those ids)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "_token_id must be `None` or an integer within the vocabulary" not in record.getMessage()


@contextmanager
def quiet_special_token_ids() -> Iterator[None]:
    """Build a target's configuration and module without _SpecialTokenIds's warning."""
    log, drop = logging.getLogger("transformers.configuration_utils"), _SpecialTokenIds()
    log.addFilter(drop)
    try:
        yield
    finally:
        log.removeFilter(drop)


def init_value(key: str, value, sizes: Mapping[str, int], home: Mapping[str, object] | None = None):
    """The constructor argument ``key`` at these sizes: a string is a Python expression over the axis sizes,
    the target module's names and importable modules (``4*d_e``, ``'gelu'``, ``GPTConfig(n_embd=d_e)``);
    any other value is passed as it is. A name that is none of these is an error that says so."""
    if not isinstance(value, str):
        return value
    names = _InitNames(sizes, home or {})
    try:
        return eval(compile(value, f"--init {key}", "eval"), {"__builtins__": builtins}, names)
    except NameError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        axes = ", ".join(sizes) or "none"
        quoted = f"--init \"{key}='{value}'\"" if value.isidentifier() else f"'{missing}'"
        raise BindingError(
            f"--init {key}={value}: {missing!r} is not an axis here ({axes}), nor a name in the target's "
            f"module, nor an importable module; a string is written in quotes: {quoted}"
        ) from None
    except SyntaxError as exc:
        raise BindingError(f"--init {key}={value}: not a Python expression ({exc.msg})") from None
    except Exception as exc:  # noqa: BLE001 - the user's expression raised: a setup problem, not a verdict
        raise BindingError(f"--init {key}={value} raised {type(exc).__name__}: {exc}") from None


def _home(obj: object) -> Mapping[str, object]:
    """The global names of the module that defines ``obj`` (for --init expressions)."""
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    if module is None and not inspect.isclass(obj):
        module = sys.modules.get(getattr(type(obj), "__module__", "") or "")
    return vars(module) if module is not None else {}


def make_target(
    obj: object,
    eq: Equation,
    *,
    name: str,
    layout: str | None = None,
    mask: str | None = None,
    init: Mapping | None = None,
    params: Mapping[str, str] | None = None,
    missing_ok=(),
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
    first_sizes: Mapping[str, int] | None = None,
) -> BoundTarget:
    """Bind ``obj`` (a function, an nn.Module class or instance, or with ``init`` a function that builds
    one: a factory) to ``eq``; BindingError when it cannot. ``first_sizes`` are the sizes a factory is
    called at to learn which module it builds."""
    is_class = inspect.isclass(obj) and issubclass(obj, torch.nn.Module)
    is_factory = init is not None and callable(obj) and not inspect.isclass(obj)
    is_factory = is_factory and not isinstance(obj, torch.nn.Module)
    if is_class and init is None:
        init = _no_arguments(obj, name)
    if is_class or is_factory or isinstance(obj, torch.nn.Module):
        if is_factory:
            probe = ModuleTarget(eq, None, name, dtype, device, obj, init, None)
            forward = type(probe._instance(dict(first_sizes or {}))).forward
        else:
            forward = obj.forward
        symbols = tuple(eq.inputs)
        partial = False
        if layout:
            binding, partial = layout_binding(
                forward, eq, layout, mask=mask, symbols=symbols, missing_ok=missing_ok
            )
        else:
            binding = bind(forward, eq, symbols=symbols, missing_ok=missing_ok, mask=mask)
        return ModuleTarget(eq, binding, name, dtype, device, obj, init, params, partial)
    if not callable(obj):
        raise BindingError(f"{name} is a {type(obj).__name__}, not callable")
    if layout:
        binding, partial = layout_binding(obj, eq, layout, mask=mask, missing_ok=missing_ok)
        return BoundTarget(eq, binding, name, dtype, device, partial)
    return BoundTarget(eq, bind(obj, eq, missing_ok=missing_ok, mask=mask), name, dtype, device)


def all_spec_params_taken(target: "ModuleTarget", missing_ok) -> None:
    """Every tensor parameter of the equation fills a module parameter (--param) or is stated absent: the
    reference never draws a value the module does not hold."""
    eq = target.eq
    taken = {src for m in target.params for src in m.sources}
    untaken = [d.ascii for d in eq.params if not d.is_scalar and d.ascii not in taken | set(missing_ok)]
    if not untaken:
        return
    variant = eq.variant_without(untaken)
    audit_as = f"audit it as {eq.id}[{variant}], the equation without them" if variant else ""
    absent = (
        f"state that {target.name} has no such parameter with --absent {','.join(untaken)} (the reference "
        "then holds it at 0, and the report says so)"
        if variant is None or all(p.startswith("b") for p in untaken)  # a weight held at 0 is no layer
        else ""
    )
    raise BindingError(
        f"no --param takes the spec's {', '.join(untaken)}: map each to a module parameter, or "
        + ", or ".join(filter(None, (audit_as, absent)))
    )


def _no_arguments(cls: type, name: str) -> dict:
    """A module class built without --init: {} when its constructor needs no argument, else an error naming
    the arguments to give."""
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        params = []
    required = [
        p.name
        for p in params
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        example = " ".join(f"--init {r}=…" for r in required)
        raise BindingError(
            f"{name} is an nn.Module class: say how to build it ({example}; a value is an axis such as d_e, "
            "an expression such as 4*d_e, a literal, or a config object such as 'Config(n_embd=d_e)')"
        )
    return {}


def target_batches(target: BoundTarget) -> tuple[tuple[int, ...], ...]:
    counts = [
        lay.target_batch for lay in target.binding.args if isinstance(lay, PatternLayout) and lay.batched
    ]
    fixed = [c for c in counts if c is not None]
    if fixed and min(fixed) == 0:
        return ((),)
    return ((), (2,))
