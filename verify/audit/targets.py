"""Audit targets: a function or an nn.Module bound to an equation, called on spec-layout examples,
with the vector-Jacobian product the gradient check needs (see verify.audit)."""

import dataclasses
import inspect
from collections.abc import Mapping

import numpy as np
import sympy as sp
import torch

from ...spec import Equation, Kind
from .._errors import AuditError, BindingError, ShapeMismatch
from ..binding import ImplBinding, bind, setting_value
from ..oracle import _batch_shape, size_subs
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
        kwargs, leaves = {}, {}
        for lay in binding.args:
            extra = {"sizes": sizes} if getattr(lay, "needs_sizes", False) else {}
            value = lay.to_impl(example[lay.name], len(batch), self.dtype, self.device, **extra)
            if (
                isinstance(value, torch.Tensor)
                and value.is_floating_point()
                and differentiable(self.eq, lay.name)
            ):
                value = value.detach().requires_grad_(True)
                leaves[lay.param] = (lay, value)  # per argument: the same tensor may be passed to several
            kwargs[lay.param] = value
        for param, axis in binding.sizes:
            kwargs[param] = setting_value(axis, sizes, self.dtype, self.device)
        if binding.takes_dtype:
            kwargs["dtype"] = self.dtype
        result = binding.fn(**kwargs)
        results = tuple(result) if binding.returns_tuple else (result,)
        total = 0
        for lay, value in zip(binding.outputs, results, strict=True):
            if lay.name is None or lay.name not in cotangents or not isinstance(value, torch.Tensor):
                continue
            if not value.is_floating_point():
                continue
            cot = _to_layout(lay, cotangents[lay.name], len(batch), sizes, value.dtype, value.device)
            total = total + (value * cot).sum()
        params = list(leaves)
        if not params:  # only integer inputs (token ids) and the module's own parameters: nothing to compare
            return {}
        if not isinstance(total, torch.Tensor) or not total.requires_grad:  # nothing depends on the inputs
            grads = [None] * len(params)
        else:
            grads = torch.autograd.grad(total, [leaves[k][1] for k in params], allow_unused=True)
        out: dict[str, np.ndarray] = {}
        for k, g in zip(params, grads, strict=True):
            lay, value = leaves[k]
            g = torch.zeros_like(value) if g is None else g
            d = lay.from_impl(g, len(batch) if lay.batched else 0, sizes)
            out[lay.name] = out[lay.name] + d if lay.name in out else d  # f(x, x, x): ∂/∂H sums the three
        return out


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
            kwargs = {k: _init_value(k, v, sizes) for k, v in self.init.items()}
            try:
                mod = self.module(**kwargs)
            except Exception as exc:  # a setup problem, the user's to fix: never a verdict
                call = f"{self.name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
                raise BindingError(
                    f"cannot build the module: {call} raised {type(exc).__name__}: {exc}; check --init, "
                    "or tie the sizes the module ties (--derive, e.g. d_e=M*d_k)"
                ) from exc
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
            n = int(sp.sympify(count).subs(size_subs(sizes)))
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
                if tuple(value.shape) != tuple(tensor.shape):
                    raise ShapeMismatch(
                        f"{self.name}: the mapping {path} = {m.text} gives shape {list(value.shape)}, the "
                        f"module's {path} has shape {list(tensor.shape)}",
                        check="shape",
                    )
                tensor.copy_(torch.from_numpy(value).to(dtype=tensor.dtype, device=tensor.device))
        return dataclasses.replace(self.binding, fn=mod)


def _has_param(mod: torch.nn.Module, path: str) -> bool:
    try:
        mod.get_parameter(path)
        return True
    except AttributeError:
        return False


def _init_value(key: str, value, sizes):
    if isinstance(value, str):
        try:
            expr = sp.sympify(value, locals={k: sp.Symbol(k) for k in sizes})
        except (sp.SympifyError, TypeError, SyntaxError):
            return value
        if expr.free_symbols and all(str(s) in sizes for s in expr.free_symbols):
            return int(expr.subs({sp.Symbol(k): v for k, v in sizes.items()}))
        if expr.free_symbols:
            unknown = ", ".join(sorted(str(s) for s in expr.free_symbols if str(s) not in sizes))
            raise AuditError(f"init {key}={value!r}: {unknown} is not an axis here ({', '.join(sizes)})")
    return value


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
) -> BoundTarget:
    """Bind ``obj`` (a function, an nn.Module class or instance) to ``eq``; BindingError when it cannot."""
    is_module = isinstance(obj, torch.nn.Module) or (
        inspect.isclass(obj) and issubclass(obj, torch.nn.Module)
    )
    if is_module:
        forward = obj.forward
        if inspect.isclass(obj) and init is None:
            raise BindingError(f"{name} is an nn.Module class: say how to build it (init=, --init k=axis)")
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


def target_batches(target: BoundTarget) -> tuple[tuple[int, ...], ...]:
    counts = [
        lay.target_batch for lay in target.binding.args if isinstance(lay, PatternLayout) and lay.batched
    ]
    fixed = [c for c in counts if c is not None]
    if fixed and min(fixed) == 0:
        return ((),)
    return ((), (2,))
