"""Run mutmut 3 over spec/ops.py and impl/, one stage per source file, each against the tests written for it.

    OMP_NUM_THREADS=1 python benchmarks/mutmut/run.py [--jobs 2] [--all] [--fresh] [STAGE ...]

A stage mutates one file and runs one selection of tests (mutmut then narrows it, per mutated function, to
the tests that call that function):

- ``ops``: spec/ops.py against tests/spec/test_ops.py, test_ops_nn.py and test_printing.py, and
  tests/verify/test_codegen.py and test_oracle.py (the operators' meaning, LaTeX, code and oracle);
- ``impl.F``: impl/F.py against tests/impl/test_F.py.

Why stages and not one ``mutmut run`` over everything: the tests that call a function are not only the
tests written for it (spec/ops.py is called by every verifier test in tests/impl/, layer norm by every
model's tests), and mutmut runs them all for each mutant — 76 000 s of tests in the worst case for the
3165 mutants; the default stages below take about 50 minutes on two processes of a loaded 2-core machine.

Each stage runs in its own directory, ``build/mutmut/STAGE/`` (build/ is ignored by git and ruff), holding the
lmspec package laid out as installed (``lmspec/spec``, ``lmspec/impl``, ``lmspec/verify``), tests/ and a
pyproject.toml whose ``[tool.mutmut]`` section is the repository's
with ``only_mutate`` and the test selection of the stage. ``mutmut run`` there writes ``mutants/``; a stage
that is run again resumes where it stopped (``--fresh`` starts it over). Without STAGE arguments the default
stages run (``--all``: every impl/ file). The per-file table is printed at the end and written to
``build/mutmut/summary.md`` and ``summary.json`` (every stage run so far); the survivors are listed in
``build/mutmut/STAGE/survivors.txt``.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import counts

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "build" / "mutmut"

#: The stages run by default, in this order: the operators, then impl/'s core equations (attention, layer
#: norm, positional encodings, activations, the LM output) and the models built on them.
DEFAULT = [
    "ops",
    "impl.attention",
    "impl.norm",
    "impl.positional",
    "impl.activation",
    "impl.lm",
    "impl.transformer",
    "impl.gpt2",
]


def stages_all() -> list[str]:
    families = sorted(p.stem for p in (ROOT / "impl").glob("*.py") if not p.stem.startswith("_"))
    return ["ops", *(f"impl.{f}" for f in families if (ROOT / "tests" / "impl" / f"test_{f}.py").exists())]


def stage_config(stage: str) -> tuple[str, list[str]]:
    """The file a stage mutates and its test selection."""
    if stage == "ops":
        return "lmspec/spec/ops.py", [
            "tests/spec/test_ops.py",
            "tests/spec/test_ops_nn.py",
            "tests/spec/test_printing.py",  # the operators' LaTeX
            "tests/verify/test_codegen.py",  # their generated PyTorch
            "tests/verify/test_oracle.py",  # their explicit entries
        ]
    family = stage.removeprefix("impl.")
    if stage == family or not (ROOT / "impl" / f"{family}.py").exists():
        raise SystemExit(f"run.py: error: unknown stage {stage!r} (ops, or impl.F for a file impl/F.py)")
    return f"lmspec/impl/{family}.py", [f"tests/impl/test_{family}.py"]


def toml_value(value) -> str:
    return json.dumps(value, ensure_ascii=False)  # strings and lists of strings: JSON is valid TOML


def prepare(stage: str, fresh: bool) -> tuple[Path, str]:
    """The stage's directory, with its copy of the repository and its pyproject.toml."""
    source, tests = stage_config(stage)
    where = WORK / stage
    if fresh and where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    base = tomllib.loads(text)["tool"]["mutmut"]
    config = base | {"only_mutate": [source], "pytest_add_cli_args_test_selection": tests}
    head = text[: text.index("[tool.mutmut]")]
    section = "[tool.mutmut]\n" + "".join(f"{key} = {toml_value(value)}\n" for key, value in config.items())
    if not (where / "mutants").exists():  # a stage that has started keeps its copy: mutmut resumes on it
        lay_out(where)
        (where / "pyproject.toml").write_text(head + section, "utf-8")
    return where, source


def lay_out(where: Path) -> None:
    """The lmspec package as the wheel installs it (``lmspec/`` holding spec/, impl/ and verify/, mapped by
    pyproject.toml's package-dir), and tests/, copied into ``where``: mutmut mutates ``lmspec/…`` files and
    the tests import ``lmspec.…`` from that copy, first on sys.path."""
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"][
        "package-dir"
    ]
    for target in ("lmspec", "tests"):
        if (where / target).exists():
            shutil.rmtree(where / target)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / package_dir["lmspec"], where / "lmspec", ignore=ignore)
    for package, folder in package_dir.items():
        if package != "lmspec":
            shutil.copytree(ROOT / folder, where / package.replace(".", "/"), ignore=ignore)
    shutil.copytree(ROOT / "tests", where / "tests", ignore=ignore)


def run_stage(stage: str, jobs: int, fresh: bool) -> None:
    where, source = prepare(stage, fresh)
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    mutmut = Path(sys.executable).with_name("mutmut")
    command = [str(mutmut), "run", "--max-children", str(jobs)]
    print(f"== {stage}: mutmut run over {source} in {where.relative_to(ROOT)}", flush=True)
    start = time.perf_counter()
    with open(where / "mutmut.log", "a", encoding="utf-8") as log:
        done = subprocess.run(command, cwd=where, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - start
    results = subprocess.run(
        [str(mutmut), "results"], cwd=where, env=env, capture_output=True, text=True, check=False
    )
    (where / "survivors.txt").write_text(results.stdout, "utf-8")
    (where / "run.json").write_text(json.dumps({"wall_s": round(wall, 1), "exit": done.returncode}) + "\n")
    log = (where / "mutmut.log").relative_to(ROOT)
    print(f"   exit {done.returncode}, {wall:.0f} s; log: {log}", flush=True)


def stage_row(stage: str) -> dict:
    where, (source, _) = WORK / stage, stage_config(stage)
    run = json.loads((where / "run.json").read_text()) if (where / "run.json").exists() else {"wall_s": 0}
    return counts.file_figures(where, source) | {"stage": stage} | run


def table(rows: list[dict]) -> str:
    cols = ["mutants", "killed", "survived", "timeout", "suspicious", "no tests", "segfault", "not checked"]
    lines = [
        "| stage | file | " + " | ".join(cols) + " | score | wall (s) |",
        "|---|---|" + "---:|" * (len(cols) + 2),
    ]
    total = {c: sum(r[c] for r in rows) for c in [*cols, "skipped", "wall_s"]}
    for r in [*rows, total | {"stage": "total", "file": ""}]:
        s = counts.score(r)
        shown = "" if s is None else f"{s:.1%}"
        figures = " | ".join(str(r[c]) for c in cols)
        lines.append(f"| {r['stage']} | {r['file']} | {figures} | {shown} | {round(r['wall_s'], 1)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="*", help="ops, impl.F (default: the default stages)")
    parser.add_argument("--jobs", type=int, default=2, help="mutmut --max-children (default 2)")
    parser.add_argument("--all", action="store_true", help="spec/ops.py and every impl/ file with tests")
    parser.add_argument("--fresh", action="store_true", help="start each stage over (delete its directory)")
    args = parser.parse_args(argv)
    stages = args.stages or (stages_all() if args.all else DEFAULT)
    for stage in stages:
        stage_config(stage)  # unknown stages fail before anything runs
    for stage in stages:
        run_stage(stage, args.jobs, args.fresh)
    # the summary covers every stage run so far, in the order of --all
    rows = [stage_row(stage) for stage in stages_all() if (WORK / stage / "mutants").exists()]
    (WORK / "summary.json").write_text(json.dumps(rows, indent=2) + "\n", "utf-8")
    (WORK / "summary.md").write_text(table(rows) + "\n", "utf-8")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
