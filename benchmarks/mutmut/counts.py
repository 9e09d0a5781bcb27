"""Per-file figures of a mutmut 3 run: which functions mutmut could mutate, and what became of its mutants.

mutmut 3 mutates only the bodies of undecorated functions and methods (a lone ``@staticmethod`` or
``@classmethod`` excepted): a decorated function is skipped with everything in it, because its trampoline
would have to be put under the decorator. impl/'s equations are ``@implements(...)`` + ``@checked``, so this
script says, per file, how many functions mutmut skips for that reason and how many mutants it made.

    python benchmarks/mutmut/counts.py [--root .] [--json FILE]

Reads ``mutants/**/*.py.meta`` (written by ``mutmut run``; results are null until a mutant has run) and the
original sources under ``--root``. Prints a Markdown table.
"""

import argparse
import ast
import json
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

#: What each recorded exit code means, from mutmut itself (null: not run yet).
STATUSES = sorted(set(status_by_exit_code.values()))


def is_skipped_by_mutmut(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """mutmut 3 skips a decorated function, unless its only decorator is staticmethod or classmethod."""
    if not fn.decorator_list:
        return False
    if len(fn.decorator_list) == 1:
        only = fn.decorator_list[0]
        if isinstance(only, ast.Name) and only.id in ("staticmethod", "classmethod"):
            return False
    return True


def functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Top-level functions and methods of top-level classes: the units mutmut 3 puts trampolines on."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append(node)
        elif isinstance(node, ast.ClassDef):
            found.extend(n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))
    return found


def file_figures(root: Path, name: str) -> dict:
    source, meta = root / name, root / "mutants" / (name + ".meta")
    fns = functions(ast.parse(source.read_text("utf-8")))
    skipped = [f for f in fns if is_skipped_by_mutmut(f)]
    codes = json.loads(meta.read_text("utf-8"))["exit_code_by_key"] if meta.exists() else {}
    statuses = Counter(status_by_exit_code[code] for code in codes.values())
    mutated_functions = {key.rsplit("__mutmut_", 1)[0] for key in codes}
    return {
        "file": name,
        "functions": len(fns),
        "decorated_skipped": len(skipped),
        "functions_with_mutants": len(mutated_functions),
        "mutants": len(codes),
        **{status: statuses.get(status, 0) for status in STATUSES},
    }


def function_kind(mutant: str) -> str:
    """What kind of function a mutant is in: mutmut names a method ``xǁClassǁmethod__mutmut_N`` and a module
    function ``x_function__mutmut_N``."""
    name = mutant.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[-1]
    if "ǁ" not in name:
        return "module-level function (undecorated helper)"
    method = name.rsplit("ǁ", 1)[-1]
    if method in ("__init__", "forward", "spec_params"):
        return f"method {method}"
    return "other method"


def kinds(root: Path, files: list[str]) -> dict[str, Counter]:
    """Mutant statuses per kind of function, over ``files``."""
    found: dict[str, Counter] = {}
    for name in files:
        meta = root / "mutants" / (name + ".meta")
        if not meta.exists():
            continue
        for key, code in json.loads(meta.read_text("utf-8"))["exit_code_by_key"].items():
            kind = f"{name.split('/')[0]}/: {function_kind(key)}"
            found.setdefault(kind, Counter())[status_by_exit_code[code]] += 1
    return found


def score(row: dict) -> float | None:
    """killed / (mutants − skipped − not checked): a timeout counts as not killed here (mutmut's own badge
    counts it as killed; both are reported in docs/mutmut.md)."""
    ran = row["mutants"] - row["skipped"] - row["not checked"]
    return row["killed"] / ran if ran else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="a stage's directory, holding lmspec/ and mutants/")
    parser.add_argument("--json", help="also write the figures as JSON to this file")
    parser.add_argument("files", nargs="*", help="files (default: lmspec/spec/ops.py, lmspec/impl/*.py)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    impl_files = sorted(p.relative_to(root).as_posix() for p in root.glob("lmspec/impl/*.py"))
    files = args.files or ["lmspec/spec/ops.py", *impl_files]
    rows = [file_figures(root, f) for f in files]
    total = {"file": "total"} | {k: sum(r[k] for r in rows) for k in rows[0] if k != "file"}
    rows.append(total)
    cols = [
        "functions",
        "decorated_skipped",
        "functions_with_mutants",
        "mutants",
        "killed",
        "survived",
        "timeout",
        "suspicious",
        "no tests",
        "not checked",
    ]
    print("| file | " + " | ".join(c.replace("_", " ") for c in cols) + " | score |")
    print("|---|" + "---:|" * (len(cols) + 1))
    for r in rows:
        s = score(r)
        shown = "" if s is None else f"{s:.1%}"
        print(f"| {r['file']} | " + " | ".join(str(r[c]) for c in cols) + f" | {shown} |")
    print()
    print("| kind of function | mutants | killed | survived | timeout | no tests | not checked |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, c in sorted(kinds(root, files).items()):
        counts = [c[k] for k in ("killed", "survived", "timeout", "no tests", "not checked")]
        print(f"| {kind} | {sum(c.values())} | " + " | ".join(map(str, counts)) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
