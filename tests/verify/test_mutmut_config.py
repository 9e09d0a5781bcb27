"""The mutmut configuration (pyproject.toml's [tool.mutmut], docs/mutmut.md) names real paths of the stage
layout (the lmspec package laid out as installed, benchmarks/mutmut/run.py), its test selection collects
tests, and the way mutmut loads mutated code — that copy first on sys.path, the tests run from it — really
makes the tests run the copy: a broken copy fails them.
"""

import fnmatch
import importlib.util
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run_module():
    """benchmarks/mutmut/run.py, imported from its folder (it imports its sibling counts.py)."""
    folder = ROOT / "benchmarks" / "mutmut"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location("mutmut_run", folder / "run.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


@pytest.fixture(scope="module")
def stage(tmp_path_factory) -> Path:
    """A stage's directory as run.py lays it out."""
    where = tmp_path_factory.mktemp("stage")
    _run_module().lay_out(where)
    return where


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["mutmut"]


def _mutated_files(cfg: dict, root: Path) -> list[str]:
    files = []
    for source in cfg["source_paths"]:
        files += [p.relative_to(root).as_posix() for p in sorted((root / source).rglob("*.py"))]
    return [f for f in files if any(fnmatch.fnmatch(f, pattern) for pattern in cfg["only_mutate"])]


def test_the_paths_it_names_exist_and_it_mutates_spec_ops_and_impl(stage):
    cfg = _config()
    for key in ("source_paths", "also_copy"):
        for path in cfg[key]:
            assert (stage / path).exists(), f"[tool.mutmut] {key}: {path} is not in the stage layout"
    for path in cfg["pytest_add_cli_args_test_selection"]:
        assert (stage / path).exists(), f"[tool.mutmut] test selection: {path} does not exist"
    mutated = _mutated_files(cfg, stage)
    impl_files = sorted(f"lmspec/impl/{p.name}" for p in (ROOT / "impl").glob("*.py"))
    assert sorted(mutated) == sorted(["lmspec/spec/ops.py", *impl_files])
    # the tests import lmspec.verify too: it is copied beside the mutated packages, so it sees the mutants
    assert "lmspec/verify/" in cfg["also_copy"] and "lmspec/__init__.py" in cfg["also_copy"]


def test_the_test_selection_collects_tests():
    cfg = _config()
    args = [*cfg["pytest_add_cli_args_test_selection"], *cfg["pytest_add_cli_args"]]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    for path in cfg["pytest_add_cli_args_test_selection"]:
        assert any(line.startswith(path.rstrip("/")) for line in collected), f"no test collected from {path}"
    assert len(collected) > 300


# Run as mutmut runs its tests: in-process pytest from inside the copy, the copy first on sys.path.
_PROBE = """
import sys
from pathlib import Path
sys.path.insert(0, str(Path.cwd()))
import lmspec.impl.norm, lmspec.spec.ops, lmspec.verify
for module in (lmspec.impl.norm, lmspec.spec.ops, lmspec.verify):
    assert Path(module.__file__).resolve().is_relative_to(Path.cwd().resolve()), module.__file__
import pytest
sys.exit(pytest.main(["--rootdir=.", "-x", "-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
"""


def test_a_broken_copy_makes_the_tests_fail(tmp_path):
    _run_module().lay_out(tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    norm = tmp_path / "lmspec" / "impl" / "norm.py"
    source = norm.read_text("utf-8")
    right = "var = ((H - mu) ** 2).mean(dim=-1, keepdim=True)"
    assert right in source
    norm.write_text(source.replace(right, "var = ((H - mu) ** 2).sum(dim=-1, keepdim=True)"), "utf-8")

    done = subprocess.run(
        [sys.executable, "-c", _PROBE, "tests/impl/test_norm.py::test_hand_values"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-3000:]
    assert "1 failed" in out and "assert out.tolist() ==" in out, out[-3000:]

    norm.write_text(source, "utf-8")  # the same copy, unbroken: the test passes
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, "tests/impl/test_norm.py::test_hand_values"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
