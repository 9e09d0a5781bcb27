"""``lmspec params MODEL``: a model's number of trainable parameters from the tutorial's closed forms.

MODEL is a preset (GPT-2 small to XL, BERT base and large, ViT-B/16 and ViT-L/16), whose sizes ``--set``
may change, or a count of the catalogue (``embedding``, ``positional``, ``mha``, ``mha[no_bias]``, ``ffn``,
``layer_norm``, ``block``, ``stack``, ``segment``, ``pooler``, ``params.gpt2``, ``bert_backbone``,
``mlm_head``, ``bert``, and ``vit``), whose sizes all come from ``--set``. The output is the symbolic formula,
one row per term (what it counts, its formula, its value) and the total; ``--json`` prints the same as one
JSON object.
"""

import json
import re
import sys
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from ._common import UsageError, console

if TYPE_CHECKING:  # pragma: no cover
    import sympy as sp


def _counts() -> list[str]:
    from ... import spec

    names = [eq.id.split(".", 1)[1] for eq in spec.families()["params"]]
    return [*names, "mha[no_bias]", "vit"]


def _breakdown(name: str):
    """The count called ``name`` (``mha``, ``params.mha``, ``mha[no_bias]``, ``vit``), or None."""
    from ... import spec
    from ...spec import SpecError
    from ...spec.params import vit_count

    if name == "vit":
        return vit_count()
    full = name if name.startswith("params.") else f"params.{name}"
    try:
        eq = spec.get(full)
    except SpecError:
        return None
    return getattr(eq, "breakdown", None)


def resolve(model: str):
    """``(title, count, preset sizes)`` for a preset or a count; a usage error names the choices."""
    from ...spec.presets import PRESETS

    if model in PRESETS:
        preset = PRESETS[model]
        return preset.title, _breakdown(preset.count), dict(preset.sizes)
    breakdown = _breakdown(model)
    if breakdown is None:
        raise UsageError(
            f"unknown model {model!r}: choose a preset ({', '.join(PRESETS)}) or a count "
            f"({', '.join(_counts())}) with its sizes from --set"
        )
    return breakdown.title, breakdown, {}


_SET = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([0-9][0-9_]*)\s*$")


def parse_sets(items: list[str], axes: tuple[str, ...], name: str) -> dict[str, int]:
    """``["d_e=768", "M=12"]`` → sizes; each axis must be one of the count's, each size a positive integer."""
    from ...spec.axes import GLOSSARY

    sizes: dict[str, int] = {}
    for item in items:
        match = _SET.match(item)
        if match is None:
            raise UsageError(
                f"malformed --set {item!r}: expected AXIS=SIZE with a positive integer, e.g. d_e=768"
            )
        key, value = match.group(1), int(match.group(2))
        if key not in GLOSSARY:
            raise UsageError(
                f"unknown axis {key!r} in --set {item!r}: the axes of {name} are {', '.join(axes)}"
            )
        if key not in axes:
            raise UsageError(f"{name} has no axis {key!r} (its axes are {', '.join(axes)})")
        if value <= 0:
            raise UsageError(f"--set {item!r}: sizes are positive integers")
        sizes[key] = value
    return sizes


_ZETA = re.compile(r"^\s*(zeta|ζ)\s*=\s*(\S*)\s*$")


def _zeta(items: list[str]) -> tuple[list[str], int | None]:
    """``--set zeta=0`` (or ``ζ=0``): the tutorial's bias switch ζ ∈ {0, 1}, apart from the sizes."""
    rest, zeta = [], None
    for item in items:
        match = _ZETA.match(item)
        if match is None:
            rest.append(item)
        elif match.group(2) not in ("0", "1"):
            found = match.group(2)
            raise UsageError(f"--set {item!r}: ζ switches the biases, 0 (none) or 1 (all), found {found!r}")
        else:
            zeta = int(match.group(2))
    return rest, zeta


def _without_biases(model: str) -> str:
    """The bias-free count of ``model`` (ζ = 0), or a usage error naming the counts that have one."""
    from ... import spec
    from ...spec.presets import PRESETS

    name = model.removeprefix("params.")
    if name in PRESETS or _breakdown(f"{name}[no_bias]") is None:
        counts = spec.families()["params"]
        having = [e.id.removeprefix("params.") for e in counts if "no_bias" in e.variant_names]
        raise UsageError(
            f"ζ = 0 (no biases) is a form of {', '.join(having)} in the tutorial's formulas; {model} counts "
            "its biases as its model has them"
        )
    return f"{name}[no_bias]"


def text(expr: "sp.Expr") -> str:
    """A formula as plain text in the tutorial's style: ``2 M d_e (d_k + d_v)``, ``d_e²``."""
    import sympy as sp

    out = sp.sstr(expr).replace("**2", "²")
    return out.replace("*", " ")


def report(model: str, sets: list[str]) -> dict:
    """The count of ``model`` at its sizes (preset, then ``--set``), as the JSON output shows it."""
    from ...spec.axes import GLOSSARY
    from ...spec.params import count_latex

    sets, zeta = _zeta(sets)
    if zeta == 0:  # the tutorial's bias switch: ζ = 0 is the count's bias-free variant
        model = _without_biases(model)
    title, breakdown, sizes = resolve(model)
    axes = breakdown.axes
    sizes.update(parse_sets(sets, axes, breakdown.name))
    missing = [a for a in axes if a not in sizes]
    if missing:
        example = " ".join(f"--set {a}=…" for a in missing)
        raise UsageError(f"{breakdown.name} needs a size for {', '.join(missing)} ({example})")
    if breakdown.name == "vit":
        for side in ("H_i", "W_i"):
            if sizes[side] % sizes["P"]:
                raise UsageError(
                    f"the image side {side}={sizes[side]} is not a multiple of the patch size P={sizes['P']}"
                )
    subs = {GLOSSARY[a].symbol: sizes[a] for a in axes}
    terms = [
        {"term": t.label, "formula": text(t.formula), "value": int(t.formula.subs(subs)), "part": t.part}
        for t in breakdown.terms
    ]
    return {
        "model": model,
        "title": title,
        "count": breakdown.name,
        "sizes": {a: sizes[a] for a in axes},
        "formula": text(breakdown.formula),
        "latex": f"{breakdown.tex} = {count_latex(breakdown.formula)}",
        "terms": terms,
        "total": breakdown.count(**sizes),
    }


def _short(n: int) -> str:
    for unit, scale in (("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return str(n)


def params_command(
    model: str = typer.Argument(..., help="A preset (gpt2, bert-base, vit-base, ...) or a count (mha, ...)."),
    set_: list[str] = typer.Option(
        None, "--set", "-s", help="A size, AXIS=SIZE (repeatable): d_e=768; or the bias switch zeta=0."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
) -> None:
    """Count a model's trainable parameters with the tutorial's closed-form formulas, term by term."""
    out = report(model, list(set_ or []))
    if as_json:
        sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
        return
    console.print(f"[bold]{out['title']}[/bold] — {out['count']}", highlight=False)
    console.print(f"N = {out['formula']}", highlight=False, markup=False)
    console.print(f"LaTeX: {out['latex']}", highlight=False, markup=False)
    console.print("sizes: " + ", ".join(f"{k}={v}" for k, v in out["sizes"].items()), highlight=False)
    table = Table(title=f"{out['count']} term by term")
    table.add_column("term")
    table.add_column("formula")
    table.add_column("value", justify="right")
    for t in out["terms"]:
        table.add_row(t["term"], t["formula"], f"{t['value']:,}")
    table.add_section()
    table.add_row("total N", "", f"{out['total']:,}")
    console.print(table)
    console.print(f"N = {out['total']:,} ({_short(out['total'])})", highlight=False)
