"""impl/'s call graph: which functions the verifier reaches (from the ``@implements`` functions,
transitively), which equations reach a function, and which families a module feeds.

Sites are looked for only in the code the verifier reaches: the functions registered with ``@implements``
and every impl function they reference, transitively (``reachable``). Module classes and helpers outside
that graph (``GPT2.generate``, ``LSTMCell.from_torch``, ``mlm_mask``) are held by tests/impl, not by
``lmspec verify``, so a mutant there says nothing about the verifier.
"""

import ast
from pathlib import Path

from ._base import _is_call
from .sandbox import package_dir

# --- impl/: reachability and the families a module feeds -----------------------------------------


def impl_dir() -> Path:
    """impl/'s directory, found without importing it (importing impl imports torch)."""
    return package_dir("impl")


def module_sources(root: Path) -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(root.glob("*.py"))}


def _sibling(node: ast.ImportFrom) -> str:
    """The impl/ module that ``from .M import …`` (inside impl/) or ``from lmspec.impl.M import …`` names;
    '' for any other import."""
    if node.level == 1 and node.module:
        return node.module.split(".")[0]
    if node.level == 0 and node.module and node.module.startswith("lmspec.impl."):
        return node.module.split(".")[2]
    return ""


def _graph(sources: dict[str, str]):
    """The module-level definitions of impl/ and the registered roots: (defs, imports, roots), roots being
    ``(module, function, equation id)`` of every ``@implements("id")`` function."""
    defs: dict[str, dict[str, ast.AST]] = {}
    imports: dict[str, dict[str, tuple[str, str]]] = {}
    roots: list[tuple[str, str, str]] = []
    for mod, src in sources.items():
        tree = ast.parse(src)
        defs[mod], imports[mod] = {}, {}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                defs[mod][node.name] = node
                for d in node.decorator_list:
                    if _is_call(d, "implements") and d.args and isinstance(d.args[0], ast.Constant):
                        roots.append((mod, node.name, str(d.args[0].value)))
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name) and node.value is not None:
                        defs[mod][t.id] = node.value
            elif isinstance(node, ast.ImportFrom) and _sibling(node):
                for alias in node.names:
                    imports[mod][alias.asname or alias.name] = (_sibling(node), alias.name)
    return defs, imports, roots


def _reach(defs, imports, start: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Every (module, name) that ``start`` names, transitively (functions and module-level values)."""
    seen: set[tuple[str, str]] = set()
    todo = list(start)
    while todo:
        mod, name = todo.pop()
        if (mod, name) in seen or name not in defs.get(mod, {}):
            continue
        seen.add((mod, name))
        for n in ast.walk(defs[mod][name]):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                if n.id in defs[mod]:
                    todo.append((mod, n.id))
                elif n.id in imports[mod]:
                    todo.append(imports[mod][n.id])
    return {(m, n) for m, n in seen if isinstance(defs[m][n], ast.FunctionDef)}


def reachable(sources: dict[str, str]) -> dict[str, set[str]]:
    """Per module, the names of its module-level functions that the verifier reaches: those decorated with
    ``@implements`` and, transitively, every impl function (or module-level value's function) they name."""
    defs, imports, roots = _graph(sources)
    out: dict[str, set[str]] = {mod: set() for mod in sources}
    for mod, name in _reach(defs, imports, [(m, f) for m, f, _ in roots]):
        out[mod].add(name)
    return out


_REACH_CACHE: dict[int, list[tuple[str, set[tuple[str, str]]]]] = {}


def _reach_table(sources: dict[str, str]) -> list[tuple[str, set[tuple[str, str]]]]:
    """(equation id, the functions its registered function reaches) for every root; cached per sources."""
    key = hash(tuple(sorted(sources.items())))
    if key not in _REACH_CACHE:
        defs, imports, roots = _graph(sources)
        _REACH_CACHE[key] = [(eq, _reach(defs, imports, [(m, f)])) for m, f, eq in roots]
    return _REACH_CACHE[key]


def equations_reaching(module: str, function: str, sources: dict[str, str]) -> list[str]:
    """The equation ids whose registered function reaches ``module.function``: those of the module's own
    family first, then the others in the registry's family order."""
    hits = list(dict.fromkeys(eq for eq, reached in _reach_table(sources) if (module, function) in reached))
    order = family_order(sources)
    rank = {fam: i for i, fam in enumerate(order)}
    return sorted(hits, key=lambda eq: (eq.split(".")[0] != module, rank.get(eq.split(".")[0], len(order))))


def family_order(sources: dict[str, str]) -> list[str]:
    """The families in the registry's order (impl/_registry.py's FAMILIES)."""
    tree = ast.parse(sources.get("_registry", ""))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "FAMILIES" for t in node.targets
        ):
            return [e.value for e in node.value.elts]  # type: ignore[attr-defined]
    return sorted(m for m in sources if not m.startswith("_"))


def families_for(module: str, sources: dict[str, str]) -> list[str]:
    """The family of ``module`` first, then every family whose impl module imports it, transitively; for a
    module that is no family's (impl/fast.py), the families of the equations it implements and those that
    import it."""
    key = (module, hash(tuple(sorted(sources.items()))))
    if key not in _FAMILY_CACHE:
        _FAMILY_CACHE[key] = _families_for(module, sources)
    return list(_FAMILY_CACHE[key])


_FAMILY_CACHE: dict[tuple[str, int], list[str]] = {}


def _families_for(module: str, sources: dict[str, str]) -> list[str]:
    importers: dict[str, set[str]] = {m: set() for m in sources}
    for mod, src in sources.items():
        for node in ast.parse(src).body:
            if isinstance(node, ast.ImportFrom) and _sibling(node):
                dep = _sibling(node)
                if dep in importers:
                    importers[dep].add(mod)
    seen, todo = {module}, [module]
    while todo:
        for m in importers.get(todo.pop(), ()):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    order = family_order(sources)
    if module not in order:  # a module of other implementations (impl/fast.py): the families it implements
        seen |= {eq.split(".")[0] for mod, _, eq in _graph(sources)[2] if mod == module}
    rest = [f for f in order if f in seen and f != module]
    return [module, *rest] if module in order else rest
