"""The suite across seeds, shards and worker processes: the same units, the same results, in plan order."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jaxtyping import Float
from torch import Tensor

from lmspec import impl, spec
from lmspec.impl import _registry as registry
from lmspec.impl._registry import implemented_variants
from lmspec.verify.mutate.sandbox import shadow_tree
from lmspec.verify.parallel import parse_shard, plan_units, planned_equations, run_suite, run_units
from lmspec.verify.runner import PROFILES

QUICK = PROFILES["quick"]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "expected"), [("1/1", (1, 1)), ("2/4", (2, 4)), ("4/4", (4, 4))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "2", "a/b", "1/2/3", "-1/2", ""])
def test_parse_shard_rejects_what_is_not_i_over_n(text):
    with pytest.raises(ValueError, match=r"--shard takes i/n with 1 ≤ i ≤ n \(e.g. 2/4\), found"):
        parse_shard(text)


def test_units_run_seed_by_seed_in_catalogue_order():
    units = plan_units(["norm.layer_norm", "activation.relu"], QUICK, [5, 6])
    per_seed = len(units) // 2
    assert [u.seed for u in units] == [5] * per_seed + [6] * per_seed
    assert units[:per_seed] == [u.__class__(5, u.equation, u.check) for u in units[per_seed:]]
    order = ["norm.layer_norm", "norm.layer_norm[eps]", "activation.relu"]  # each base, then its variants
    first = [u.equation for u in units[:per_seed]]
    assert first == sorted(first, key=order.index)
    assert {u.equation for u in units} == set(order)
    assert units[0].check == "impl=oracle"


def test_shards_partition_the_run():
    everything = plan_units(["attention"], QUICK, [0, 1])
    shards = [plan_units(["attention"], QUICK, [0, 1], (i, 3)) for i in (1, 2, 3)]
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    merged = [u for s in shards for u in s]
    assert len(merged) == len(set(merged)) == len(everything)
    assert set(merged) == set(everything)
    assert shards[1] == everything[1::3]  # every third unit from the second, in plan order


def test_two_jobs_give_the_serial_results_in_plan_order():
    selection = ["norm.layer_norm", "activation.gelu_tanh", "attention.softmax_rows"]
    serial = run_suite(selection, "quick", seeds=[3, 4], jobs=1)
    parallel = run_suite(selection, "quick", seeds=[3, 4], jobs=2)
    assert [r.as_json() for r in parallel] == [r.as_json() for r in serial]
    assert {r.seed for r in serial} == {3, 4} and all(r.passed for r in serial)


def test_fail_fast_stops_at_the_first_failure(monkeypatch):
    @registry.checked
    def relu(X: Float[Tensor, "*batch n d_e"]) -> Float[Tensor, "*batch n d_e"]:
        return X  # wrong: the identity, so impl=oracle fails on the first negative entry

    units = plan_units(["activation.relu", "norm.layer_norm"], QUICK, [0])
    monkeypatch.setitem(registry._IMPLEMENTATIONS, "activation.relu", relu)
    results = run_units(units, QUICK, jobs=1, fail_fast=True)
    assert len(results) == 1 and not results[0].passed
    assert (results[0].equation, results[0].check) == ("activation.relu", "impl=oracle")
    assert len(run_units(units, QUICK, jobs=1)) == len(units)  # without it, every unit runs


def _shadowed_impl(tmp_path: Path, family: str, old: str, new: str) -> dict:
    """An environment whose PYTHONPATH puts an lmspec with one edit in impl/ before the installed one."""
    sources = {p.stem: p.read_text() for p in (REPO / "impl").glob("*.py")}
    assert sources[family].count(old) == 1, f"{old!r} is not once in impl/{family}.py"
    sources[family] = sources[family].replace(old, new)
    shadow_tree(tmp_path, sources)
    return {**os.environ, "PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1"}


def _lmspec(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-c", "import sys; from lmspec.verify.cli import main; sys.exit(main())", *args],
        capture_output=True, text=True, timeout=600, env=env, cwd=cwd,
    )  # fmt: skip


def test_cli_fail_fast_with_two_jobs_stops_early_and_exits_1(tmp_path):
    population = "((H - mu) ** 2).mean(dim=-1, keepdim=True)"
    bessel = "((H - mu) ** 2).sum(dim=-1, keepdim=True) / (H.shape[-1] - 1)"  # wrong: sample variance
    env = _shadowed_impl(tmp_path, "norm", population, bessel)
    report = tmp_path / "r.json"
    args = ["verify", "norm", "activation", "-p", "quick", "-j", "2", "--fail-fast", "--json", str(report)]
    res = _lmspec(*args, env=env, cwd=tmp_path)  # not the repository: `-c` puts the cwd first on sys.path
    assert res.returncode == 1, res.stdout + res.stderr
    assert "not run (--fail-fast)" in res.stdout
    doc = json.loads(report.read_text())
    failed = [r for r in doc["results"] if r["status"] == "fail"]
    assert failed and failed[0]["equation"].startswith("norm.layer_norm")
    assert doc["summary"]["checks"] < len(plan_units(["norm", "activation"], QUICK, [0]))


def test_cli_seeds_and_shards_make_one_report(tmp_path):
    full, one, two = (tmp_path / f"{name}.json" for name in ("full", "one", "two"))
    base = ["verify", "attention.softmax_rows", "-p", "quick", "--seed", "2", "--seeds", "3"]
    res = _lmspec(*base, "--json", str(full))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "seeds 2–4" in res.stdout
    doc = json.loads(full.read_text())
    assert doc["seeds"] == [2, 3, 4] and doc["shard"] is None
    assert [r["seed"] for r in doc["results"]] == sorted(r["seed"] for r in doc["results"])
    for part, path in (("1/2", one), ("2/2", two)):
        assert _lmspec(*base, "--shard", part, "--json", str(path)).returncode == 0
    halves = [json.loads(p.read_text()) for p in (one, two)]
    assert [h["shard"] for h in halves] == [[1, 2], [2, 2]]
    merged = sorted(
        (r for h in halves for r in h["results"]), key=lambda r: doc["results"].index(r)
    )  # every result of the full run, once
    assert merged == doc["results"]


def test_a_family_plans_the_variants_impl_declares():
    assert [eq.id for eq in planned_equations(["norm"])] == ["norm.layer_norm", "norm.layer_norm[eps]"]
    # a variant named on its own is run on its own; a base named twice is run once
    assert [eq.id for eq in planned_equations(["norm.layer_norm[eps]"])] == ["norm.layer_norm[eps]"]
    assert len(planned_equations(["norm", "norm.layer_norm"])) == 2


def test_every_declared_variant_exists_in_the_spec():
    declared = implemented_variants()
    assert {"norm.layer_norm", "ffnn.context", "transformer.stack", "gpt2.forward"} <= set(declared)
    for eq_id, names in declared.items():
        base = spec.get(eq_id)
        for name in names:
            assert base.variant(name).variant_of == eq_id


def test_a_variant_selected_by_keyword_reaches_impl(monkeypatch):
    """ffnn.context[start_token] is impl's context with start=0 (slots before the first token hold the
    embedding of token 0): with the option it passes, without it the same function fails the variant."""
    assert all(r.passed for r in run_suite(["ffnn.context[start_token]"], "quick"))
    fn = impl.implementation("ffnn.context")
    monkeypatch.setattr(fn, "__lmspec_variants__", {"start_token": {}})
    failed = [r for r in run_suite(["ffnn.context[start_token]"], "quick") if not r.passed]
    assert failed and failed[0].check == "impl=oracle"


@pytest.mark.hypothesis_local_constants  # it checks the runner's own swap: conftest's is off
def test_a_seed_gives_the_same_examples_whatever_was_imported_before(tmp_path):
    """Hypothesis draws constants from the local modules in sys.modules; importing one (a user's file, an
    adapter, another family in a worker) must not change the examples a seed gives."""
    import importlib.util
    import sys

    from lmspec.verify.audit.auditor import audit

    def run():
        report = audit(impl.implementation("lm.softmax"), profile="quick", seed=3, diagnose=False)
        return [(c.name, c.max_abs, c.examples) for c in report.checks]

    before = run()
    path = tmp_path / "user_constants.py"
    path.write_text("A = (137, -151, 89, 173, -97, 61, 0.4375, -2.90625)\n")
    module_spec = importlib.util.spec_from_file_location("user_constants", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["user_constants"] = module
    module_spec.loader.exec_module(module)
    try:
        assert run() == before
    finally:
        del sys.modules["user_constants"]


@pytest.mark.hypothesis_local_constants  # it checks the runner's own swap: conftest's is off
def test_hypothesis_is_patched_only_while_lmspec_runs_a_check():
    """The runner's swap of Hypothesis's private hook for local constants (and its cache of constants) lasts
    while a check runs, a failing one too, and never outlives it: importing the runner, a check, an audit or
    a verify run leave a user's own Hypothesis tests in the same process with Hypothesis's own."""
    from hypothesis import strategies as st
    from hypothesis.internal.conjecture import providers

    from lmspec.verify import runner
    from lmspec.verify.audit.auditor import audit

    def hypothesis_own() -> bool:
        hook = providers._get_local_constants
        return (hook.__module__, hook.__qualname__) == (providers.__name__, "_get_local_constants")

    assert hypothesis_own()  # the runner is imported: nothing is patched yet
    original = providers._get_local_constants, providers.CONSTANTS_CACHE
    seen = []

    def probe(data, record, fail=False):
        seen.append((providers._get_local_constants, providers.CONSTANTS_CACHE))
        if data.draw(st.integers(0, 3)) >= 0 and fail:
            raise AssertionError("wrong on purpose")

    eq = spec.get("activation.relu")
    assert runner.run_check(runner.Check(eq, "probe", "impl", probe), QUICK, 0).passed
    failing = runner.Check(eq, "probe", "impl", lambda data, record: probe(data, record, fail=True))
    assert not runner.run_check(failing, QUICK, 0).passed
    assert seen and all(len(hook()) == 0 and cache is not original[1] for hook, cache in seen)
    assert all(hook is not original[0] for hook, _ in seen)
    assert (providers._get_local_constants, providers.CONSTANTS_CACHE) == original

    assert all(r.passed for r in runner.verify([eq], "quick"))
    assert audit(impl.implementation("activation.relu"), profile="quick", diagnose=False).verdict == "pass"
    assert hypothesis_own() and (providers._get_local_constants, providers.CONSTANTS_CACHE) == original
    with runner.examples_from_strategies_only(), runner.examples_from_strategies_only():  # nests
        assert not hypothesis_own()
    assert (providers._get_local_constants, providers.CONSTANTS_CACHE) == original
