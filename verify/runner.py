"""The verifier suite: each equation checked three ways plus its properties, under Hypothesis.

For every equation:

- ``impl=oracle``       the implementation against the exact oracle, at small sizes;
- ``generated=oracle``  the code generated from the SymPy against the oracle, at small sizes;
- ``impl=generated``    the implementation against the generated code, at larger sizes;
- ``property:<name>``   each invariant the equation declares, on the implementation;
- ``impl[fast]=…``, ``property[fast]:<name>``  the same for every other implementation impl/ registers for the
  equation (``@implements(id, name="fast")``: a fast path beside the readable one).

All comparisons are in float64 under the tolerance policy of verify.compare. A failure is shrunk by
Hypothesis and reported with its (shrunk) counterexample.
"""

import gc
import random
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace

import hypothesis.core as _hypothesis_core
import numpy as np
import torch
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import seed as hseed
from hypothesis import strategies as st
from hypothesis.errors import UnsatisfiedAssumption
from hypothesis.internal import entropy as _hypothesis_entropy
from hypothesis.internal.conjecture import providers as _hypothesis_providers
from hypothesis.internal.conjecture.providers import HypothesisProvider as _HypothesisProvider

from ..spec import Equation
from ._errors import Mismatch
from .compare import POLICY, Comparison, Tolerance, assert_close
from .properties import properties_of
from .strategies import Example, drawn_examples, keep_vectors, size_tuples
from .targets import GeneratedTarget, ImplTarget, OracleTarget, Target

# Hypothesis (6.170) mixes into its draws "local constants" collected from every module in sys.modules that
# is not installed (spec/, impl/, verify/, a user's audited file): a seed's examples would then depend on what
# happens to be imported — a worker process, a shard, an audit after another. The verifier's examples come
# from its own strategies only: while lmspec runs a check (run_check), and only then, Hypothesis sees no
# local constants, and a cache of its own holds the constants it draws from. Anyone else's Hypothesis tests
# in the same process keep Hypothesis's own. (This swaps a private hook of Hypothesis 6: tests/verify/
# test_parallel.py checks that a seed's examples do not change when a module is imported, and that the hook
# is restored.)
_NO_LOCAL_CONSTANTS = _hypothesis_providers.Constants()
_OWN_CONSTANTS_CACHE = type(_hypothesis_providers.CONSTANTS_CACHE)(1024)


def _no_local_constants() -> "_hypothesis_providers.Constants":
    return _NO_LOCAL_CONSTANTS


@contextmanager
def examples_from_strategies_only() -> Iterator[None]:
    """Run a block with Hypothesis drawing from lmspec's strategies and its global constants only, never from
    the constants of the modules that happen to be imported; on the way out, Hypothesis's own hook and cache
    are back. Nesting is fine."""
    saved = _hypothesis_providers._get_local_constants, _hypothesis_providers.CONSTANTS_CACHE
    _hypothesis_providers._get_local_constants = _no_local_constants
    _hypothesis_providers.CONSTANTS_CACHE = _OWN_CONSTANTS_CACHE
    try:
        yield
    finally:
        _hypothesis_providers._get_local_constants, _hypothesis_providers.CONSTANTS_CACHE = saved


# Hypothesis runs every example inside ``deterministic_PRNG()``: it saves the state of every PRNG registered
# with it (the ``random`` module's, NumPy's global one), seeds each to 0, runs the example and restores them.
# Saving and restoring NumPy's state costs about 0.3 ms an example (some 2 s of a warm verifier run). The code
# under test sees the same thing if the states are saved once per check and each example only re-seeds
# them: every example still starts from PRNGs seeded to 0, and after the check they are as they were.
@contextmanager
def _reseeded() -> Iterator[None]:
    """What each example runs in while ``prngs_saved_once`` holds: every registered PRNG seeded to 0, as
    Hypothesis's ``deterministic_PRNG()`` seeds them, without saving their states again."""
    state, _ = _hypothesis_entropy._seeded_state(0)
    for ref in list(_hypothesis_entropy.RANDOMS_TO_MANAGE.data.values()):
        r = ref()
        if r is None:  # garbage-collected
            continue
        if type(r) is random.Random:
            r.setstate(state)
        else:
            r.seed(0)
    yield


@contextmanager
def prngs_saved_once() -> Iterator[None]:
    """Run a block of Hypothesis tests with the registered PRNGs' states saved (and seeded) once on the way
    in and restored once on the way out, each example re-seeding them (``_reseeded``) instead of saving and
    restoring them itself. Nesting is fine; Hypothesis's own ``deterministic_PRNG`` is back afterwards."""
    saved = _hypothesis_core.deterministic_PRNG
    with saved():  # registers Hypothesis's global Random, saves every state, seeds it; restores at the end
        _hypothesis_core.deterministic_PRNG = _reseeded
        try:
            yield
        finally:
            _hypothesis_core.deterministic_PRNG = saved


# Hypothesis draws a block of bytes one byte at a time (``HypothesisProvider.draw_bytes``: a ``many()`` loop
# calling ``Random.randbytes(1)`` per byte), some 2.5 µs a byte; a verifier example is one block of up to a
# few hundred bytes, drawn afresh for every example. For a block of fixed size the loop draws no choice of
# its own, and each byte is the top 8 bits of the next 32-bit output of the Mersenne Twister
# (``getrandbits(8)``); ``getrandbits(32 * n)`` returns the next n outputs at once, little-endian, so
# every fourth byte of it is the same n bytes, and the generator ends in the same state. The examples are
# the same, byte for byte (tests/verify/test_strategies.py holds the two to each other).
_DRAW_BYTES = _HypothesisProvider.draw_bytes


def _draw_bytes_at_once(
    self, min_size: int = 0, max_size: int = _hypothesis_providers.COLLECTION_DEFAULT_MAX_SIZE
) -> bytes:
    """``HypothesisProvider.draw_bytes``, a fixed-size block drawn in one call of the generator."""
    if min_size != max_size or type(self._random) is not random.Random:
        return _DRAW_BYTES(self, min_size, max_size)
    constant = self._maybe_draw_constant("bytes", {"min_size": min_size, "max_size": max_size})
    if constant is not None:  # as Hypothesis does first: now and then a constant instead of random bytes
        return constant
    return self._random.getrandbits(32 * min_size).to_bytes(4 * min_size, "little")[3::4]


@contextmanager
def bytes_drawn_at_once() -> Iterator[None]:
    """Run a block with Hypothesis drawing each fixed-size block of bytes in one call of its generator
    (``_draw_bytes_at_once``: the same bytes); Hypothesis's own ``draw_bytes`` is back afterwards."""
    saved = _HypothesisProvider.draw_bytes
    _HypothesisProvider.draw_bytes = _draw_bytes_at_once
    try:
        yield
    finally:
        _HypothesisProvider.draw_bytes = saved


@dataclass(frozen=True)
class Profile:
    """How hard to look: size tuples for the oracle and the larger checks, examples per check."""

    name: str
    oracle_sizes: int
    large_sizes: int
    examples: int
    property_examples: int
    shrink_examples: int  # shrink candidates tried after the first failure; then the smallest found stands


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", 2, 2, 4, 3, 40),
    "default": Profile("default", 3, 3, 12, 8, 100),
    "thorough": Profile("thorough", 6, 6, 60, 40, 500),
}


@dataclass
class CheckResult:
    equation: str
    check: str
    target: str
    passed: bool
    examples: int
    seconds: float
    message: str = ""
    counterexample: dict = field(default_factory=dict)
    max_abs: float | None = None
    max_rel: float | None = None
    example: Example | None = field(default=None, repr=False, compare=False)  # the failing one, raw
    seed: int = 0

    @property
    def status(self) -> str:
        return "pass" if self.passed else "fail"

    def as_json(self) -> dict:
        out = asdict(self)
        out.pop("seconds")  # the same seed gives the same report, byte for byte
        out.pop("example")
        out["status"] = self.status
        return out


@dataclass(frozen=True)
class Check:
    equation: Equation
    name: str
    target_name: str
    run: Callable[[object, dict], Comparison | None]  # (hypothesis data, record) -> comparison


class _Spent(BaseException):
    """The shrink budget is spent: abort Hypothesis (a BaseException passes through its engine, as
    KeyboardInterrupt does); the smallest failure recorded so far is what the report gives. Letting the
    remaining candidates pass instead costs Hypothesis's shrinker thousands of cheap but not free calls."""


def _describe(example: Example) -> dict:
    arrays = {}
    for k, v in example.arrays.items():
        arr = np.asarray(v)
        arrays[k] = arr.tolist() if arr.size <= 64 else f"array of shape {list(arr.shape)}"
    return {"sizes": example.sizes, "batch": list(example.batch), "arrays": arrays}


@dataclass(frozen=True)
class Setting:
    """How examples are drawn for a target: the audit fixes what the target itself fixes.

    ``pins`` give inputs or parameters a value the target uses whatever it is passed (a causal mask for
    ``is_causal=True``, ε = 10⁻⁵): a value, or a function of the sizes giving the per-example value.
    ``sizes`` and ``derive`` fix or tie axes (see ``size_tuples``); ``batches`` are the leading batch
    shapes the target accepts; ``tol`` the tolerance of its dtype.
    """

    pins: Mapping[str, object] = field(default_factory=dict)
    sizes: Mapping[str, int] = field(default_factory=dict)
    derive: Mapping[str, str] = field(default_factory=dict)
    batches: tuple[tuple[int, ...], ...] = ((), (2,))
    tol: Tolerance = POLICY["float64"]
    exclude: Callable[[Example], bool] | None = None  # examples outside the domain being checked
    #: additive masks the target takes per key (a padding mask): drawn as attention.padding_mask of a keep
    #: vector κ, per example and per batch element, instead of any n×n mask
    padding: tuple[str, ...] = ()
    #: of those, the ones the target takes as lengths (a count of real keys per sequence): right padding only
    lengths: tuple[str, ...] = ()
    #: a change every drawn example undergoes (the last position never predicted, for a target that shifts
    #: its labels inside), after pins and padding
    transform: Callable[[Example], Example] | None = None
    #: the reference's outputs as the target reports them, ``expect(reference, example)`` (one value pooled
    #: over the batch); None for the reference's outputs as they are
    expect: Callable[[Callable, Example], dict] | None = None

    def expected(self, reference, ex: Example) -> dict:
        """The reference's outputs on ``ex``, as the target gives them."""
        if self.expect is None:
            return reference(ex.arrays, ex.sizes)
        return self.expect(reference, ex)

    def pinned(self, eq: Equation, ex: Example) -> Example:
        if not self.pins:
            return ex
        arrays = dict(ex.arrays)
        for name, value in self.pins.items():
            if name not in arrays:
                continue
            value = np.asarray(value(ex.sizes) if callable(value) else value, dtype=np.float64)
            per_example = any(d.ascii == name for d in eq.inputs)
            shape = (*ex.batch, *value.shape) if per_example else value.shape
            if value.ndim == 0:  # a constant for every entry (S = 0: no mask): the drawn array's shape
                shape = np.shape(arrays[name])
            arrays[name] = np.broadcast_to(value, shape).copy()
        return Example(ex.sizes, ex.batch, arrays)

    def padded(self, data, ex: Example) -> Example:
        """``ex`` with each per-key mask redrawn as the padding mask of a drawn keep vector."""
        if not self.padding:
            return ex
        arrays = dict(ex.arrays)
        for name in self.padding:
            if name in arrays:
                *_, n_q, n_k = np.shape(arrays[name])
                right = name in self.lengths
                keep = data.draw(keep_vectors(ex.batch, n_k, right), label=f"keep vector of {name}")
                arrays[name] = padding_mask(keep, n_q)
        return Example(ex.sizes, ex.batch, arrays)


DEFAULT_SETTING = Setting()

_PADDING_MASK: list[GeneratedTarget] = []


def padding_mask(keep: np.ndarray, n_queries: int) -> np.ndarray:
    """S = S^pad(κ) by the spec's own equation (attention.padding_mask, through the code generated from its
    SymPy), for each batch element of ``keep`` (batch…, n_k), with ``n_queries`` rows: every row of a
    padding mask is the same, so the first n_queries rows of the n_k × n_k mask are those of any shape."""
    from .. import spec

    if not _PADDING_MASK:
        _PADDING_MASK.append(GeneratedTarget(spec.get("attention.padding_mask")))
    keep = np.asarray(keep, dtype=np.float64)
    *batch, n_k = keep.shape
    sizes = {"n": n_k}
    S = _PADDING_MASK[0]({"keep": keep}, sizes)["S"]
    return np.broadcast_to(S[..., :1, :], (*batch, n_queries, n_k)).copy()


def _draw(
    data,
    eq: Equation,
    pool: list[dict],
    record: dict,
    setting: Setting = DEFAULT_SETTING,
    strategy: st.SearchStrategy[Example] | None = None,
) -> Example:
    """An example of ``eq`` at one of the sizes of ``pool``, drawn under ``setting`` and recorded.
    ``strategy`` is ``drawn_examples(eq, pool, setting.batches)`` when the caller has it (its cache key,
    built from the pool's sizes, cost a tenth of a millisecond an example)."""
    if strategy is None:
        strategy = drawn_examples(eq, pool, setting.batches)
    ex = data.draw(strategy, label="example")  # sizes, batch, values
    ex = setting.padded(data, setting.pinned(eq, ex))
    if setting.transform is not None:
        ex = setting.transform(ex)
    if setting.exclude is not None and setting.exclude(ex):
        reject()
    record["example"] = ex
    gate = record.get("gate")
    if gate is not None:
        gate(ex)
    return ex


def checks_for(
    eq: Equation,
    profile: Profile,
    seed: int,
    target: Target | None = None,
    setting: Setting = DEFAULT_SETTING,
) -> list[Check]:
    """The checks of one equation against ``target`` (impl/ by default), drawn under ``setting``."""
    small = size_tuples(eq, profile.oracle_sizes, seed, "small", fixed=setting.sizes, derive=setting.derive)
    large = size_tuples(eq, profile.large_sizes, seed, "large", fixed=setting.sizes, derive=setting.derive)
    oracle = OracleTarget(eq)
    generated = GeneratedTarget(eq)
    tol = setting.tol
    subject: Target | None = target
    bind_error: Exception | None = None
    unimplemented = target is None and not _implements_variant(eq)
    if unimplemented:  # a variant impl/ does not implement: its properties are held on the generated code
        subject = generated
    elif subject is None:
        try:
            subject = ImplTarget(eq)
        except Exception as exc:  # noqa: BLE001 - reported as a failed check
            bind_error = exc

    pools = {"small": small, "large": large}
    examples = {scale: drawn_examples(eq, sizes, setting.batches) for scale, sizes in pools.items()}  # once

    def compare_run(check: str, got: Target, want: Target, scale: str):
        def run(data, record: dict) -> Comparison:
            if got is None:
                raise Mismatch(f"cannot bind the implementation: {bind_error}", check="binding")
            ex = _draw(data, eq, pools[scale], record, setting, examples[scale])
            actual = got(ex.arrays, ex.sizes)
            return assert_close(
                actual,
                {k: v for k, v in setting.expected(want, ex).items() if k in actual or not _partial(got)},
                tol,
                check=check,
                who=got.name,
                reference=want.name,
            )

        return run

    out = [
        Check(
            eq, "generated=oracle", "generated", compare_run("generated=oracle", generated, oracle, "small")
        )
    ]
    if not unimplemented:
        out.insert(0, Check(eq, "impl=oracle", "impl", compare_run("impl=oracle", subject, oracle, "small")))
        out.append(
            Check(eq, "impl=generated", "impl", compare_run("impl=generated", subject, generated, "large"))
        )
    for prop, options in properties_of(eq):

        def run(data, record: dict, prop=prop, options=options) -> None:
            if subject is None:
                raise Mismatch(f"cannot bind the implementation: {bind_error}", check="binding")
            ex = _draw(data, eq, small, record, setting, examples["small"])
            prop.check(eq, subject, ex, data, options, tol)

        out.append(Check(eq, f"property:{prop.name}", subject.name if unimplemented else "impl", run))
    if target is None and not unimplemented:  # impl/'s other implementations (a fast path): the same checks
        out += named_implementation_checks(eq, profile, seed, setting)
    return out


def _implements_variant(eq: Equation) -> bool:
    """Whether impl/'s readable implementation computes ``eq``: a base equation, or a variant its
    ``@implements(…, variants=…)`` declares (the others are the tutorial's forms with an option changed,
    which the generated code computes: ``checks_for`` holds their properties on it)."""
    from ..impl._registry import variant_options

    return eq.variant_of is None or variant_options(eq.variant_of, eq.variant_name) is not None


def named_implementation_checks(
    eq: Equation, profile: Profile, seed: int, setting: Setting = DEFAULT_SETTING
) -> list[Check]:
    """The checks of impl/'s other implementations of ``eq`` (``@implements(id, name="fast")``), each held
    to the spec as the default one is: ``impl[fast]=oracle``, ``impl[fast]=generated`` and
    ``property[fast]:<name>`` for every property (``generated=oracle`` does not involve an implementation and
    runs once). A variant is checked on the implementations that declare it."""
    from ..impl._registry import DEFAULT, implementations_of, variant_options

    base, variant = eq.variant_of or eq.id, eq.variant_name
    out: list[Check] = []
    for name in implementations_of(base):
        if name == DEFAULT or (variant is not None and variant_options(base, variant, name) is None):
            continue
        label = f"impl[{name}]"
        try:
            subject = ImplTarget(eq, name=label, implementation=name)
        except Exception as exc:  # noqa: BLE001 - reported as a failed check

            def unbound(data, record: dict, exc=exc, label=label) -> None:
                raise Mismatch(f"cannot bind the implementation {label}: {exc}", check="binding")

            out.append(Check(eq, f"{label}=oracle", label, unbound))
            continue
        for check in checks_for(eq, profile, seed, subject, setting):
            if check.name.startswith("impl="):  # impl=oracle, impl=generated
                out.append(replace(check, name=label + check.name[4:], target_name=label))
            elif check.name.startswith("property:"):
                renamed = f"property[{name}]:{check.name.removeprefix('property:')}"
                out.append(replace(check, name=renamed, target_name=label))
    return out


def _partial(target: Target) -> bool:
    """Whether the target computes only some of the equation's outputs (an audited function may)."""
    return getattr(target, "partial_outputs", False)


def run_check(check: Check, profile: Profile, seed: int) -> CheckResult:
    """Run one check under Hypothesis; a failure is shrunk and reported with its counterexample."""
    n_examples = profile.property_examples if check.name.startswith("property") else profile.examples
    state: dict = {"count": 0, "worst": None, "failure": None, "shrunk": None}

    def gate(example: Example) -> None:
        """Count shrink candidates after the first failure; past the budget, stop the search."""
        if state["shrunk"] is None:
            return
        state["shrunk"] += 1
        if state["shrunk"] > profile.shrink_examples:
            raise _Spent()

    @settings(
        max_examples=n_examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        report_multiple_bugs=False,
        print_blob=False,
    )
    @hseed(seed)
    @given(st.data())
    def test(data) -> None:
        record: dict = {"gate": gate}
        try:
            result = check.run(data, record)
            state["count"] += 1
        except UnsatisfiedAssumption:  # an example outside the checked domain (Setting.exclude)
            raise
        except Exception as exc:  # a mismatch, or the target crashed on an input the spec accepts
            state["failure"] = (exc, record.get("example"))
            if state["shrunk"] is None:  # the first failing example counts (never "examples 0" beside
                state["shrunk"] = 0  # a failure); the shrinking that follows does not
                state["count"] += 1
            raise
        if result is not None and (state["worst"] is None or result.max_abs > state["worst"].max_abs):
            state["worst"] = result

    # No example database (database=None), so no key: without one, Hypothesis would digest the test's
    # source (inspect.getsource and a tokenizer run) for every check, about 4 ms each
    test._hypothesis_internal_database_key = None
    start = time.perf_counter()
    eq_id = check.equation.id
    try:
        with examples_from_strategies_only(), prngs_saved_once(), bytes_drawn_at_once():
            test()
    except (Exception, _Spent):  # noqa: BLE001 - every failure becomes a result
        exc, example = state["failure"] or (None, None)
        if exc is None:
            message = traceback.format_exc(limit=1).strip().splitlines()[-1]
        elif isinstance(exc, Mismatch):
            message = str(exc)
        else:
            message = f"{check.target_name} raised {type(exc).__name__}: {_first_line(exc)}"
        details = getattr(exc, "details", {}) or {}
        return CheckResult(
            eq_id,
            check.name,
            check.target_name,
            False,
            state["count"],
            time.perf_counter() - start,
            message,
            _describe(example) if example is not None else {},
            details.get("max_abs"),
            details.get("max_rel"),
            example,
            seed,
        )
    worst = state["worst"]
    return CheckResult(
        eq_id,
        check.name,
        check.target_name,
        True,
        state["count"],
        time.perf_counter() - start,
        max_abs=worst.max_abs if worst else None,
        max_rel=worst.max_rel if worst else None,
        seed=seed,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def plan(equations: Iterable[Equation], profile: str | Profile = "default", seed: int = 0) -> list[Check]:
    """Every check of ``equations`` against impl/, in catalogue order."""
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    return [check for eq in equations for check in checks_for(eq, prof, seed)]


def verify(
    equations: Iterable[Equation],
    profile: str | Profile = "default",
    seed: int = 0,
    on_result: Callable[[CheckResult], None] | None = None,
    on_start: Callable[[Check], None] | None = None,
) -> list[CheckResult]:
    """Run every check of ``equations``; ``on_start`` and ``on_result`` are called around each."""
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    return run(plan(equations, prof, seed), prof, seed, on_result, on_start)


def run(
    checks: Iterable[Check],
    profile: Profile,
    seed: int,
    on_result: Callable[[CheckResult], None] | None = None,
    on_start: Callable[[Check], None] | None = None,
) -> list[CheckResult]:
    """Run planned checks in order, on one torch thread (``one_thread``)."""
    results = []
    with one_thread():
        for check in checks:
            if on_start:
                on_start(check)
            results.append(run_check(check, profile, seed))
            if on_result:
                on_result(results[-1])
    return results


@contextmanager
def one_thread() -> Iterator[None]:
    """Run a block on one torch thread: the checks' tensors are tiny, and thread start-up costs more than it
    saves, many times over on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """Run a block of checks with what exists at its start (the catalogue, SymPy's caches, compiled oracles:
    millions of objects that live as long as the process) left out of the garbage collector's scans
    (``gc.freeze``), and young objects collected less often: each check allocates many short-lived
    tensors and Hypothesis records, and full collections over the long-lived heap cost about a tenth of a
    verifier run. Nothing is leaked: the objects are unfrozen at the end, and cycles are still collected."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 10_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
