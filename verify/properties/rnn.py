"""Properties of the recurrent language models (family rnn; the lstm, gru and ffnn equations declare some).

- ``unrolls_to_sequence``: a step applied token by token from a zero state, its new state fed back, gives
  the step's unrolled form (a ``sequence`` variant of the spec, evaluated by the exact oracle);
- ``causal_in_tokens``: the output at position t ignores the tokens after t (from t on, with ``lag`` 1);
- ``gates_in_unit_interval``: gates lie in [0, 1], and strictly inside where the pre-activations are
  moderate (float64 rounds σ(a) to exactly 1 for a > 36.7, so the strict bound is checked with every real
  array of the example scaled by 1/8);
- ``lies_between``: a value lies entry-wise between two bounds (numbers, inputs or outputs);
- ``count_equals_model_numel``: a closed-form parameter count equals sum(p.numel()) of the impl/ model
  built at the same sizes.

Each works through the ``target(arrays, sizes)`` convention, so it applies to any implementation.
"""

import importlib
import inspect

import numpy as np
import torch
from hypothesis import strategies as st

from ... import spec
from ...spec import Kind
from ..oracle import concrete_shape
from ..strategies import reals, tensors
from ..targets import OracleTarget
from ._base import _agree, _axis, _between, _first_bad, _value, _violation, _with, prop

#: Length of the sequences the unrolling property runs: two steps, so the state is fed back once (the
#: oracle of the sequence is compiled per length and size tuple, seconds for the LSTM).
UNROLL_LENGTH = 2
#: The factor that keeps pre-activations moderate for the strict gate bound.
TEMPER = 1 / 8


# --- recurrences ----------------------------------------------------------------------------------------
@prop(
    "unrolls_to_sequence",
    "the step applied token by token from a zero state, its state fed back, equals the unrolled sequence",
)
def _unrolls(eq, target, example, data, options, tol):
    sequence = spec.get(options["sequence"])
    ((step_in, seq_in),) = options["input"].items()
    length = UNROLL_LENGTH
    sizes = {**example.sizes, "n": length}
    batch = example.batch
    X = data.draw(reals((*batch, *concrete_shape(sequence.declared(seq_in), sizes))), label=seq_in)
    state = {
        prev: np.zeros((*batch, *concrete_shape(eq.declared(prev), example.sizes)))
        for prev in options["state"]
    }
    steps: dict[str, list[np.ndarray]] = {out: [] for out in options["outputs"]}
    for position in range(length):
        result = target(_with(example, **{step_in: X[..., position]}, **state), example.sizes)
        state = {prev: result[new] for prev, new in options["state"].items()}
        for out in steps:
            steps[out].append(result[out])
    arrays = {d.ascii: example.arrays[d.ascii] for d in sequence.params}
    want = OracleTarget(sequence)({seq_in: X, **arrays}, sizes)
    for out, seq_out in options["outputs"].items():
        _agree(
            "unrolls_to_sequence",
            target,
            np.stack(steps[out], axis=-1),
            want[seq_out],
            f"{out} over {length} token(s), each step fed the previous state, differs from {seq_out} of "
            f"{sequence.id}",
            tol,
        )


@prop("causal_in_tokens", "the output at position t ignores the tokens after t (lag 1: from t on)")
def _causal(eq, target, example, data, options, tol):
    tokens: dict[str, int] = options["tokens"]
    lag = int(options.get("lag", 0))
    n = example.sizes["n"]
    i = data.draw(st.integers(0, max(n - 2 + lag, 0)), label="position i")  # some token is changed if n > 1
    moved = dict(example.arrays)
    for name, ax in tokens.items():
        arr = example.arrays[name]
        axis = _axis(eq, name, ax, example.batch)
        noise = data.draw(
            tensors(eq.declared(name).entry_kind, arr.shape, example.sizes), label=f"new {name}"
        )
        later = (np.arange(arr.shape[axis]) > i - lag).reshape(
            [-1 if k == axis else 1 for k in range(arr.ndim)]
        )
        moved[name] = np.where(later, noise, arr)
    before = target(example.arrays, example.sizes)
    after = target(moved, example.sizes)
    first = "after" if lag == 0 else "from"
    at = i if lag == 0 else i - lag + 1
    for out, ax in options["outputs"].items():
        axis = _axis(eq, out, ax, example.batch)
        _agree(
            "causal_in_tokens",
            target,
            np.take(after[out], range(i + 1), axis=axis),
            np.take(before[out], range(i + 1), axis=axis),
            f"changing the tokens {first} position {at} changed {out} at a position ≤ {i}",
            tol,
        )


# --- ranges ---------------------------------------------------------------------------------------------
@prop("gates_in_unit_interval", "gates lie in [0, 1], strictly inside for moderate pre-activations")
def _gates(eq, target, example, data, options, tol):
    tempered = {
        k: (a * TEMPER if eq.declared(k).entry_kind is Kind.REAL else a) for k, a in example.arrays.items()
    }
    for arrays, strict in ((example.arrays, False), (tempered, True)):
        result = target(arrays, example.sizes)
        for g in options["gates"]:
            y = result[g]
            bad = ~((y > 0) & (y < 1)) if strict else ~((y >= 0) & (y <= 1))
            if bad.any():
                where = _first_bad(bad)
                scope = " with every real array scaled by 1/8" if strict else ""
                bound = "(0, 1)" if strict else "[0, 1]"
                raise _violation(
                    "gates_in_unit_interval",
                    target,
                    f"{g} entry {where} is {y[tuple(where)]:.6g}, outside {bound}{scope}",
                )


@prop("lies_between", "the value lies entry-wise between two bounds (numbers, inputs or outputs)")
def _lies_between(eq, target, example, data, options, tol):
    result = target(example.arrays, example.sizes)
    value = result[options["value"]]
    low, high = (_value(options[k], result, example) for k in ("low", "high"))
    _between("lies_between", target, value, low, high, options["value"], tol)


# --- parameter counts -----------------------------------------------------------------------------------
@prop(
    "count_equals_model_numel",
    "the closed-form count equals the number of parameters of the impl/ model built at the same sizes",
)
def _count(eq, target, example, data, options, tol):
    module, _, name = options["model"].partition(":")  # impl.F:Class, a model of lmspec's impl/
    cls = getattr(importlib.import_module(f"...{module}", __package__), name)
    kwargs = {k: int(example.sizes[k]) for k in inspect.signature(cls).parameters if k in example.sizes}
    kwargs.update(options.get("options", {}))
    with torch.random.fork_rng(devices=[]):  # initialisation leaves the global random stream alone
        model = cls(**kwargs)
    want = sum(p.numel() for p in model.parameters())
    got = float(target(example.arrays, example.sizes)[eq.outputs[0].ascii])
    if got != want:
        shown = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        raise _violation(
            "count_equals_model_numel",
            target,
            f"{got:.0f} parameters, but {options['model']}({shown}) holds {want}",
            {"max_abs": abs(got - want), "max_rel": abs(got - want) / max(want, 1)},
        )
