"""The mutmut configuration (pyproject.toml's [tool.mutmut], docs/mutmut.md) names real paths, its test
selection collects tests, and the way mutmut loads mutated code — a copy of the packages put first on
sys.path, the tests run from that copy — really makes the tests run the copy: a broken copy fails them.
"""

import fnmatch
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["mutmut"]


def _mutated_files(cfg: dict) -> list[str]:
    files = []
    for source in cfg["source_paths"]:
        files += [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / source).rglob("*.py"))]
    return [f for f in files if any(fnmatch.fnmatch(f, pattern) for pattern in cfg["only_mutate"])]


def test_the_paths_it_names_exist_and_it_mutates_spec_ops_and_impl():
    cfg = _config()
    for key in ("source_paths", "also_copy"):
        for path in cfg[key]:
            assert (ROOT / path).is_dir(), f"[tool.mutmut] {key}: {path} is not a directory"
    for path in cfg["pytest_add_cli_args_test_selection"]:
        assert (ROOT / path).exists(), f"[tool.mutmut] test selection: {path} does not exist"
    mutated = _mutated_files(cfg)
    impl_files = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "impl").glob("*.py"))
    assert sorted(mutated) == sorted(["spec/ops.py", *impl_files])
    # the tests import `verify` too: it is copied beside the mutated packages, so it sees the mutants
    assert "verify/" in cfg["also_copy"]


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
import impl.norm, spec.ops, verify
for module in (impl.norm, spec.ops, verify):
    assert Path(module.__file__).resolve().is_relative_to(Path.cwd().resolve()), module.__file__
import pytest
sys.exit(pytest.main(["--rootdir=.", "-x", "-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
"""


def test_a_broken_copy_makes_the_tests_fail(tmp_path):
    cfg = _config()
    for package in [*cfg["source_paths"], *cfg["also_copy"]]:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "tests" / "impl").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "tests")
    shutil.copy(ROOT / "tests" / "impl" / "test_norm.py", tmp_path / "tests" / "impl")
    norm = tmp_path / "impl" / "norm.py"
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
