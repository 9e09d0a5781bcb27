"""The plan of the house (DESIGN.md §1), read from the code: one import package, arrows one way, no circles.

The graph is built from the source's own ``import`` statements, those inside functions included (an import
deferred into a function still ties two modules together), with relative imports resolved. Its nodes are the
modules of the ``lmspec`` package, mapped from the repository's folders as the wheel maps them.
"""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]

#: verify/'s wings: each stands on the core (the flat modules and properties/), never the other way round.
WINGS = ("audit", "mutate", "bench", "cli", "figures")
#: Which wings a wing may stand on: the command line fronts them all; the others stand on the core only.
WING_MAY_IMPORT = {
    "cli": {"audit", "mutate", "bench", "figures"},
    "audit": set(),
    "mutate": set(),
    "bench": set(),
    "figures": set(),
}
HEAVY = ("torch", "sympy", "numpy", "hypothesis", "matplotlib", "jaxtyping", "beartype", "transformers")


def _modules() -> dict[str, Path]:
    """Every module of the lmspec package, by dotted name, from the folders pyproject.toml maps."""
    out = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("").parts
            parts = package.split(".") + list(rel)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(here: str, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = here.split(".") if _is_package(here) else here.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([target] if target else [])])


def _imports(name: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the module, at any depth of its code."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(name, node.level, node.module)
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.append((sub if sub in MODULES else module, node.lineno))
    return found


def _graph() -> dict[str, dict[str, int]]:
    """lmspec module -> {lmspec module it imports: line}."""
    graph: dict[str, dict[str, int]] = {}
    for name in MODULES:
        edges = {}
        for target, line in _imports(name):
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target.startswith("lmspec") and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


GRAPH = _graph()


def _where(a: str, b: str) -> str:
    return f"{MODULES[a].relative_to(ROOT)}:{GRAPH[a][b]} imports {b}"


def test_the_package_map_covers_every_folder_and_the_wheel_lists_every_package():
    """Each folder holding an __init__.py under spec/, impl/, verify/ and lmspec/ is a listed package."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {n for n in MODULES if _is_package(n)}
    assert found == listed, (
        f"packages not listed: {sorted(found - listed)}; listed, absent: {sorted(listed - found)}"
    )
    for path in (ROOT / d for d in ("spec", "impl", "verify")):
        strays = [p for p in path.rglob("*.py") if not (p.parent / "__init__.py").exists()]
        assert not strays, f"modules outside any package: {strays}"


def test_no_module_imports_bare_spec_impl_or_verify():
    """Inside the package, lmspec's own code is reached by relative imports (or lmspec.…), never by the bare
    names that PyPI's unrelated ``spec`` and ``verify`` packages own."""
    bad = [
        f"{MODULES[n].relative_to(ROOT)}:{line} imports {t}"
        for n in MODULES
        for t, line in _imports(n)
        if t.split(".")[0] in ("spec", "impl", "verify")
    ]
    assert not bad, "\n".join(bad)


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_circle():
    """The check below can fail: a three-module circle and a self-contained pair are found, a chain is not."""
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"e": 1}, "e": {"d": 1}, "f": {"a": 1}}
    assert sorted(_cycles(graph)) == [["a", "b", "c"], ["d", "e"]]
    assert _cycles({"a": {"b": 1}, "b": {}, "c": {"a": 1}}) == []


def test_no_import_circles():
    cycles = _cycles(GRAPH)
    lines = []
    for comp in cycles:
        members = set(comp)
        lines.append("circle: " + ", ".join(comp))
        lines += [f"  {_where(a, b)}" for a in comp for b in GRAPH[a] if b in members]
    assert not cycles, "\n".join(lines)


def _part(name: str) -> str:
    """spec, impl, or verify (core), verify.<wing>, or face."""
    parts = name.split(".")
    if len(parts) < 2:
        return "face"
    if parts[1] == "verify" and len(parts) > 2 and parts[2] in WINGS:
        return f"verify.{parts[2]}"
    if parts[1] == "verify" and len(parts) > 2 and parts[2] in ("pytest_plugin", "__main__"):
        return "face"
    return parts[1]


def test_arrows_point_one_way():
    """spec and impl never import each other or the verifier; the verifier's core never imports a wing; a
    wing imports another only where the plan says so; nothing but a face imports the lmspec face."""
    bad = []
    for a, edges in GRAPH.items():
        pa = _part(a)
        for b in edges:
            pb = _part(b)
            if (pa == "spec" and pb != "spec") or (pa == "impl" and pb != "impl"):
                bad.append(_where(a, b))
            elif pa == "verify" and pb.startswith("verify.") and a != "lmspec.verify":
                bad.append(_where(a, b) + " (the core imports a wing)")
            elif pa.startswith("verify.") and pb.startswith("verify.") and pa != pb:
                if pb.removeprefix("verify.") not in WING_MAY_IMPORT[pa.removeprefix("verify.")]:
                    bad.append(_where(a, b) + " (a wing imports another)")
            elif pb == "face" and b == "lmspec" and pa != "face":
                bad.append(_where(a, b) + " (the package face)")
    assert not bad, "\n".join(bad)


def test_spec_renders_and_prints_from_below():
    """spec's renderers stand on the catalogue; nothing in spec below them imports them."""
    bad = [
        _where(a, b)
        for a, edges in GRAPH.items()
        for b in edges
        if b.startswith("lmspec.spec.render")
        and not a.startswith("lmspec.spec.render")
        and _part(a) == "spec"
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("part, banned", [("spec", ("torch", "numpy")), ("impl", ("sympy",))])
def test_spec_never_imports_torch_and_impl_never_imports_sympy(part, banned):
    bad = [
        f"{MODULES[n].relative_to(ROOT)}:{line} imports {t}"
        for n in MODULES
        if _part(n) == part
        for t, line in _imports(n)
        if t.split(".")[0] in banned
    ]
    assert not bad, "\n".join(bad)


def test_the_faces_import_nothing_heavy():
    """``import lmspec`` and ``import lmspec.verify`` (what the command line and the pytest plugin load
    first) leave torch, SymPy, NumPy and Hypothesis unloaded; the first use of a name loads what it needs."""
    code = (
        "import sys, lmspec, lmspec.verify, lmspec.verify.pytest_plugin\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        "lmspec.get('attention.softmax_rows')\n"
        "print('sympy' in sys.modules, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["[]", "True False"]
