"""The distribution as a user gets it (issue 12): what the wheel and the sdist hold, a wheel that installs
into a fresh venv beside PyPI's unrelated ``spec`` and ``verify``, a user project with its own ``spec/`` and
``verify.py`` that runs pytest with lmspec installed, dependency ranges that the pinned versions satisfy, and
a Makefile that sets up a fresh machine.

The wheel and the sdist are built once, from a copy of the working tree, with the build backend already in
this environment (``python -m build --no-isolation``: no download). The fresh venv gets the wheel with
``--no-deps`` and PyPI's ``spec==1.4.1`` and ``verify==1.1.1`` (the only downloads); lmspec's own
dependencies (torch …) are made visible there through a ``.pth`` file that names this environment's
site-packages. Directories added by a ``.pth`` file have their own ``.pth`` files ignored, so the editable
install of the checkout stays inactive there: the tests check that ``lmspec`` is the wheel's.
"""

import configparser
import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
VERSION = re.search(r'^__version__ = "([^"]+)"$', (ROOT / "lmspec/_version.py").read_text(), re.M)[1]
#: PyPI's packages that own the bare names lmspec's folders have: both must keep working beside lmspec.
NEIGHBOURS = ("spec==1.4.1", "verify==1.1.1")
#: Not copied into the tree the distributions are built from: environments, caches, outputs.
NOT_SOURCE = (".venv", ".git", "build", "dist", "mutants", "artifacts", "*.egg-info", "__pycache__",
              ".hypothesis", ".pytest_cache", ".ruff_cache", ".mypy_cache")  # fmt: skip
#: What lmspec's programs find of the caller's environment: none of the variables that would change what
#: Python imports or which pytest plugins load.
ENV = {k: v for k, v in os.environ.items()
       if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTEST_ADDOPTS",
                    "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}  # fmt: skip


def run(cmd: list, cwd: Path | None = None, timeout: int = 600, env: dict | None = None):
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=timeout
    )


def ok(proc: subprocess.CompletedProcess) -> str:
    """stdout of a command that must succeed; its whole output in the failure message otherwise."""
    assert proc.returncode == 0, f"{' '.join(proc.args)} exited {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc.stdout


# --- the wheel and the sdist --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def dists(tmp_path_factory) -> dict[str, Path]:
    """The sdist built from a copy of the tree, and the wheel built from that sdist (as ``python -m build``
    does: a file missing from the sdist is missing from the wheel)."""
    tmp = tmp_path_factory.mktemp("dist")
    shutil.copytree(ROOT, tmp / "src", ignore=shutil.ignore_patterns(*NOT_SOURCE))
    ok(run([sys.executable, "-m", "build", "--no-isolation", "--outdir", tmp / "out", tmp / "src"]))
    (wheel,) = (tmp / "out").glob("*.whl")
    (sdist,) = (tmp / "out").glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def _module_paths() -> dict[str, str]:
    """Each module of the source folders, by the path the wheel gives it (package-dir mapping)."""
    out = {}
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    for package, folder in setuptools["package-dir"].items():
        for path in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in path.parts:
                rel = path.relative_to(ROOT / folder).as_posix()
                out[f"{package.replace('.', '/')}/{rel}"] = str(path.relative_to(ROOT))
    return out


def test_the_wheel_installs_lmspec_and_nothing_else(dists):
    names = zipfile.ZipFile(dists["wheel"]).namelist()
    info = f"lmspec-{VERSION}.dist-info"
    assert {n.split("/")[0] for n in names} == {"lmspec", info}, sorted({n.split("/")[0] for n in names})
    assert dists["wheel"].name == f"lmspec-{VERSION}-py3-none-any.whl"
    assert "lmspec/py.typed" in names
    missing = {wheel: src for wheel, src in _module_paths().items() if wheel not in names}
    assert not missing, f"source modules absent from the wheel (wheel path: source): {missing}"
    assert "lmspec/spec/__init__.py" in names and "lmspec/verify/cli/__init__.py" in names
    assert f"{info}/licenses/LICENSE" in names


def test_the_wheel_declares_the_command_the_plugin_and_the_ranges(dists):
    wheel = zipfile.ZipFile(dists["wheel"])
    info = f"lmspec-{VERSION}.dist-info"
    entry = configparser.ConfigParser(delimiters=("=",))
    entry.read_string(wheel.read(f"{info}/entry_points.txt").decode())
    assert {s: dict(entry[s]) for s in entry.sections()} == {
        "console_scripts": {"lmspec": "lmspec.verify.cli:main"},
        "pytest11": {"lmspec": "lmspec.verify.pytest_plugin"},
    }
    meta = email.parser.Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
    assert meta["Name"] == "lmspec" and meta["Version"] == VERSION
    assert meta["License-Expression"] == "MIT" and meta.get_all("License-File") == ["LICENSE"]
    assert meta["Requires-Python"] == ">=3.11"
    assert "Typing :: Typed" in meta.get_all("Classifier")
    assert sorted(meta.get_all("Provides-Extra")) == sorted(PROJECT["optional-dependencies"])
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    pinned = [str(r) for r in requires if any(s.operator in ("==", "===") for s in r.specifier)]
    assert not pinned, f"pinned in the wheel's metadata: {pinned}"
    plain = {canonicalize_name(r.name): r.specifier for r in requires if r.marker is None}
    declared = [Requirement(d) for d in PROJECT["dependencies"]]
    assert plain == {canonicalize_name(r.name): r.specifier for r in declared}


def test_the_sdist_holds_the_tests_the_docs_and_what_make_test_needs(dists):
    with tarfile.open(dists["sdist"]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    wanted = ("LICENSE", "README.md", "pyproject.toml", "Makefile", "constraints.txt", ".ci/run",
              "MANIFEST.in", "lmspec/py.typed", "tests/conftest.py", "tests/test_packaging.py")  # fmt: skip
    for name in wanted:
        assert name in names, f"{name} is not in the sdist"
    for folder in ("tests", "docs", "benchmarks", "spec", "impl", "verify"):
        files = {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}  # fmt: skip
        assert files and files <= names, f"{folder}/ files not in the sdist: {sorted(files - names)}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


# --- a fresh venv beside PyPI's spec and verify -------------------------------------------------------------
@pytest.fixture(scope="session")
def fresh(tmp_path_factory, dists) -> Path:
    """A new venv holding PyPI's spec and verify, then the wheel (no dependencies), then a ``.pth`` file that
    makes this environment's site-packages (torch, SymPy …) importable after its own. Its ``bin``."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    ok(run([sys.executable, "-m", "venv", "--without-pip", venv]))
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet"]
    ok(run([*pip, *NEIGHBOURS]))  # first, as a user who has them would: lmspec must not overwrite them
    ok(run([*pip, "--no-deps", dists["wheel"]]))
    site = Path(ok(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])).strip())
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "_lmspec_test_deps.pth").write_text("".join(f"{p}\n" for p in ours))
    return venv / "bin"


IMPORTS = """
import base64, hashlib, importlib.metadata as md, importlib.util, json, sys
import lmspec, spec, verify
import lmspec.spec, lmspec.verify

def untouched(name):
    dist = md.distribution(name)
    changed = [str(f) for f in dist.files if f.hash and base64.urlsafe_b64encode(
        hashlib.new(f.hash.mode, f.locate().read_bytes()).digest()).rstrip(b"=").decode() != f.hash.value]
    return {"version": dist.version, "hashed": sum(1 for f in dist.files if f.hash), "changed": changed}

print(json.dumps({
    "files": {m: sys.modules[m].__file__
              for m in ("lmspec", "lmspec.spec", "lmspec.verify", "spec", "verify")},
    "version": lmspec.__version__,
    "dist": {n: untouched(n) for n in ("spec", "verify")},
    "bare_impl": importlib.util.find_spec("impl") is not None,
    "editable_finder": [m for m in sys.modules if m.startswith("__editable__")],
}))
"""


def test_lmspec_spec_and_verify_import_side_by_side(fresh):
    site = ok(run([fresh / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]))
    got = json.loads(ok(run([fresh / "python", "-c", IMPORTS], cwd=fresh)))  # not the checkout: no ./lmspec
    for module, path in got["files"].items():  # each from the fresh venv: lmspec is the wheel's
        assert path.startswith(site.strip()), f"{module} imported from {path}, outside the fresh venv"
    assert got["files"]["spec"].endswith("site-packages/spec/__init__.py")
    assert got["version"] == VERSION and got["editable_finder"] == [] and got["bare_impl"] is False
    # PyPI's files are the ones their RECORD lists, byte for byte: installing lmspec overwrote none
    assert got["dist"]["spec"]["version"] == "1.4.1" and got["dist"]["verify"]["version"] == "1.1.1"
    for name in ("spec", "verify"):
        assert got["dist"][name]["hashed"] > 1 and got["dist"][name]["changed"] == [], got["dist"][name]


def test_the_command_lists_and_verifies_there(fresh):
    out = ok(run([fresh / "lmspec", "list"], cwd=fresh))
    assert "attention.softmax_rows" in out and "gpt2.forward" in out
    out = ok(run([fresh / "lmspec", "verify", "attention.softmax_rows", "-p", "quick"], cwd=fresh))
    assert re.search(r"^(\d+) passed, 0 failed in ", out, re.M), out
    assert ok(run([fresh / "python", "-m", "lmspec", "--help"], cwd=fresh)).lstrip().startswith("Usage: ")


SCRATCH = {
    "pytest.ini": "[pytest]\n",
    "spec/__init__.py": 'WHO = "the project\'s own spec"\n',
    "verify.py": '''
        """The project's own verify module, holding a row softmax to audit."""
        import torch

        WHO = "the project's own verify"


        def softmax_rows(Z):
            return torch.softmax(Z, dim=-1).nan_to_num(0.0)
    ''',
    "test_project.py": """
        import spec
        import verify


        def test_its_own_modules_and_the_plugin(pytestconfig):
            assert spec.WHO == "the project's own spec" and verify.WHO == "the project's own verify"
            assert pytestconfig.pluginmanager.has_plugin("lmspec")


        def test_the_fixture_audits_its_code(lmspec_audit):
            report = lmspec_audit(verify.softmax_rows, "attention.softmax_rows", layout="Z=b n n -> b n n",
                                  profile="quick")
            assert report.verdict == "pass"
    """,
}


def test_a_project_with_its_own_spec_and_verify_runs_pytest(fresh, tmp_path):
    for name, text in SCRATCH.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text).lstrip())
    out = ok(run([fresh / "python", "-m", "pytest", "-p", "no:cacheprovider"], cwd=tmp_path))
    assert re.search(r"^plugins: .*\blmspec-" + re.escape(VERSION), out, re.M), out
    assert re.search(r"^=+ 2 passed in ", out, re.M), out


# --- dependencies: ranges, and the pinned versions inside them ---------------------------------------------
def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[A-Za-z0-9._-]+", name), f"constraints.txt: {line!r} is not name==v"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _declared() -> list[Requirement]:
    reqs = [Requirement(d) for d in PROJECT["dependencies"]]
    return reqs + [Requirement(d) for extra in PROJECT["optional-dependencies"].values() for d in extra]


def test_dependencies_are_ranges_from_the_tested_versions():
    """No ``==``: lmspec shares an environment. Each lower bound is the version tested (constraints.txt),
    up to its patch level, and the tested version lies inside the range."""
    pins = _pins()
    for req in _declared():
        ops = {s.operator: Version(s.version) for s in req.specifier}
        assert not {"==", "===", "~="} & set(ops), f"{req}: a range, please (>=, <)"
        assert ">=" in ops, f"{req}: no lower bound"
        pin = pins.get(canonicalize_name(req.name))
        assert pin is not None, f"{req.name} is declared but not pinned in constraints.txt"
        assert req.specifier.contains(pin, prereleases=True), f"{req.name}=={pin} is outside {req}"
        low = ops[">="]
        assert Version(f"{pin.major}.{pin.minor}") <= low <= pin, f"{req}: the lower bound is not {pin}"


def test_constraints_pin_the_whole_tested_environment():
    """Every distribution lmspec[dev, hf] needs, directly or not, is pinned, at the version installed here;
    no line for lmspec itself; torch at the CPU wheel's version."""
    import importlib.metadata as md

    pins = _pins()
    assert "lmspec" not in pins and pins["torch"] == Version("2.13.0")
    assert not re.search(r"^\s*-e\b", (ROOT / "constraints.txt").read_text(), re.M)
    seen, todo = set(), [(r, "") for r in _declared()]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        dist = md.distribution(name)
        assert name in pins, f"{name} (needed through lmspec's dependencies) is not pinned in constraints.txt"
        installed = Version(dist.version)
        assert Version(installed.public) == pins[name], (
            f"{name} {installed} is installed, constraints.txt pins {pins[name]}: "
            "pip install -c constraints.txt -e '.[dev]'"
        )
        for want in ("", *sorted(req.extras)):
            if (name, want) not in seen:
                seen.add((name, want))
                todo += [(Requirement(r), want) for r in dist.requires or []]


# --- the Makefile on a fresh machine ------------------------------------------------------------------------
def test_make_installs_torch_alone_then_the_pinned_rest():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    stamp = re.search(r"^\$\(STAMP\): (.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert stamp and set(stamp[1].split()) == {"pyproject.toml", "constraints.txt"}
    steps = [line.strip() for line in stamp[2].splitlines()]
    torch = next(i for i, s in enumerate(steps) if re.search(r"pip install .*torch==", s))
    assert re.fullmatch(r"\$\(PY\) -m pip install --quiet torch==([\d.]+)", steps[torch])
    assert Version(steps[torch].rpartition("==")[2]) == _pins()["torch"]
    rest = next(i for i, s in enumerate(steps) if "-c constraints.txt" in s)
    assert torch < rest and steps[rest].endswith("-c constraints.txt -e '.[dev]'")
    assert re.search(r"^test: lint os-deps\n", makefile, re.M)
    run_ci = (ROOT / ".ci/run").read_text(encoding="utf-8").strip().splitlines()
    assert run_ci[-1] == "make test"


@pytest.fixture
def bare_path(tmp_path) -> Path:
    """A PATH of only what the os-deps recipe calls beside the tools it looks for: env and id, a sudo that
    runs its command, and stand-ins for pdflatex and latexmk (so poppler, Chromium and Graphviz are
    missing)."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for tool in ("env", "id"):
        (bin_ / tool).symlink_to(shutil.which(tool))
    for name, body in (("sudo", '[ "$1" = -n ] && shift; exec "$@"'), ("pdflatex", "exit 0"),
                       ("latexmk", "exit 0")):  # fmt: skip
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(0o755)
    return bin_


def _os_deps(bin_: Path) -> subprocess.CompletedProcess:
    make = shutil.which("make")
    assert make, "make is not installed (the README's commands need it)"
    env = {**{k: v for k, v in ENV.items() if k != "DEBIAN_FRONTEND"}, "PATH": str(bin_)}
    return run([make, "--no-print-directory", "-f", ROOT / "Makefile", "os-deps"], cwd=bin_.parent, env=env)


def test_os_deps_installs_only_what_is_missing_through_apt_get(bare_path):
    log = bare_path.parent / "apt.log"
    (bare_path / "apt-get").write_text(f'#!/bin/sh\necho "$DEBIAN_FRONTEND $*" >> {log}\n')
    (bare_path / "apt-get").chmod(0o755)
    proc = _os_deps(bare_path)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().splitlines() == [
        " update -qq",
        "noninteractive install -y --no-install-recommends poppler-utils chromium graphviz librsvg2-bin -qq",
    ]
    installed = ("pdftoppm", "pdftotext", "pdfinfo", "pdffonts", "chromium", "dot", "rsvg-convert")
    for tool in installed:  # now "installed"
        (bare_path / tool).symlink_to(bare_path / "latexmk")
    log.unlink()
    proc = _os_deps(bare_path)
    assert proc.returncode == 0 and proc.stdout == proc.stderr == "" and not log.exists()


def test_os_deps_without_apt_get_prints_the_command_and_lets_the_tests_run(bare_path):
    proc = _os_deps(bare_path)
    assert proc.returncode == 0
    assert proc.stderr.splitlines() == [
        "make: the rendering tests need poppler-utils chromium graphviz librsvg2-bin; install them with:",
        "    sudo apt-get update && sudo apt-get install -y --no-install-recommends poppler-utils chromium "
        "graphviz librsvg2-bin",
    ]
