"""Targets: the oracle, the generated code and an implementation, behind one calling convention.

A target takes an example in spec layout (``{ascii name: array}``, per-example inputs with optional leading
batch axes) and the sizes, and returns the outputs in spec layout. Checks and properties are written once
against this convention and apply to every target.
"""

from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np
import torch

from ..spec import Equation
from .binding import ImplBinding, bind
from .codegen import compiled, size_arguments
from .oracle import Oracle, _batch_shape

Example = Mapping[str, np.ndarray]


class Target:
    """Something that computes an equation: ``target(example, sizes) -> {output: array}``."""

    name = "target"

    def __init__(self, eq: Equation) -> None:
        self.eq = eq

    def __call__(self, example: Example, sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
        raise NotImplementedError


class OracleTarget(Target):
    def __init__(self, eq: Equation, precision: str = "float64") -> None:
        super().__init__(eq)
        self.oracle = Oracle(eq)
        self.precision = precision
        self.name = "oracle" if precision == "float64" else f"oracle[{precision}]"

    def __call__(self, example: Example, sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
        return self.oracle(example, sizes, self.precision)


class GeneratedTarget(Target):
    """The PyTorch code generated from the SymPy, run in float64."""

    name = "generated"

    def __init__(self, eq: Equation, dtype: torch.dtype = torch.float64) -> None:
        super().__init__(eq)
        self.fn = compiled(eq)
        self.dtype = dtype
        self._size_arguments = tuple(size_arguments(eq))  # read from the equation once, not per call

    def tensors(self, example: Example, grad: Callable[[str], bool] = lambda name: False):
        """The generated function's tensor arguments from a spec-layout example, and the leaves that
        require grad (those for which ``grad(name)`` holds)."""
        args, leaves = [], {}
        for d in (*self.eq.inputs, *self.eq.params):
            t = torch.as_tensor(np.asarray(example[d.ascii], dtype=np.float64)).to(self.dtype)
            if grad(d.ascii):
                t = t.clone().requires_grad_(True)
                leaves[d.ascii] = t
            if d.is_scalar:  # scalars are 1×1 in SymPy
                t = t.unsqueeze(-1).unsqueeze(-1)
            args.append(t.unsqueeze(-1) if d.is_vector else t)  # vectors are columns in SymPy
        return args, leaves

    def run(self, args: list, sizes: Mapping[str, int]) -> dict[str, torch.Tensor]:
        """The outputs as tensors in spec layout."""
        outs = self.fn(*args, *(int(sizes[a]) for a in self._size_arguments))
        result = {}
        for o, t in zip(self.eq.outputs, outs, strict=True):
            t = t.squeeze(-1) if o.is_vector else t
            result[o.ascii] = t.squeeze(-1).squeeze(-1) if o.is_scalar else t
        return result

    def __call__(self, example: Example, sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
        args, _ = self.tensors(example)
        return {k: t.detach().to(torch.float64).numpy() for k, t in self.run(args, sizes).items()}


#: The bindings of impl/'s registered functions, by (equation, function): binding reads a signature and
#: annotations and matches them with SymPy, and a verifier run binds every implementation twice (planning
#: the checks, then running them). A function registered in another's place is another key, bound anew.
_REGISTERED: dict[tuple[Equation, Callable], ImplBinding] = {}


def _registered_binding(fn: Callable, eq: Equation) -> ImplBinding:
    binding = _REGISTERED.get((eq, fn))
    if binding is None:
        binding = _REGISTERED[(eq, fn)] = bind(fn, eq)
    return binding


class ImplTarget(Target):
    """An implementation bound through its jaxtyping annotations: ``fn``, or impl/'s registered one — the
    default, readable one, or the one registered under ``implementation`` (``"fast"``)."""

    def __init__(
        self,
        eq: Equation,
        fn: Callable | None = None,
        *,
        dtype: torch.dtype = torch.float64,
        device: str = "cpu",
        name: str = "impl",
        implementation: str | None = None,
    ) -> None:
        super().__init__(eq)
        options: dict[str, object] = {}
        if fn is None:
            from .. import impl
            from ..impl._registry import DEFAULT, variant_options

            which = implementation or DEFAULT
            fn = impl.implementation(eq.variant_of or eq.id, which)
            if eq.variant_of:
                variant = eq.id.split("[", 1)[1].rstrip("]")
                options = variant_options(eq.variant_of, variant, which) or {}
            binding = _registered_binding(fn, eq)
        else:
            binding = bind(fn, eq)
        self.binding: ImplBinding = replace(binding, options=options)
        self.dtype = dtype
        self.device = device
        self.name = name
        #: the shapes, dtypes and sizes at which impl/'s annotations have held (see __call__), each with its
        #: number of batch axes
        self._typechecked: dict[tuple, int] = {}

    def __call__(self, example: Example, sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
        """The outputs on ``example``. impl/'s jaxtyping annotations are checked the first time the target
        meets a combination of shapes, dtypes and sizes: they speak of those, never of values, so a
        second check at the same shapes could not fail, and it cost most of the call on the verifier's small
        tensors. The example's shapes are checked against the sizes (``_batch_shape``) at that first meeting
        too, for the same reason."""
        from ..impl._registry import runtime_checks, runtime_checks_enabled

        signature = (
            tuple((k, np.shape(v), np.asarray(v).dtype.str) for k, v in example.items()),
            tuple(sorted((k, int(v)) for k, v in sizes.items())),
        )
        batch_ndim = self._typechecked.get(signature)
        if batch_ndim is not None or not runtime_checks_enabled():
            if batch_ndim is None:
                batch_ndim = len(_batch_shape(self.eq, example, sizes))
            with runtime_checks(False):
                return self.binding.call(example, sizes, batch_ndim, self.dtype, self.device)
        batch_ndim = len(_batch_shape(self.eq, example, sizes))
        out = self.binding.call(example, sizes, batch_ndim, self.dtype, self.device)
        self._typechecked[signature] = batch_ndim
        return out
