"""Descent into a failing composite: which part of a block, stack or model differs.

When a module class whose binding lmspec inferred (audit.infer) fails a composite equation — a transformer
block, a stack — its parts are audited on their own against the equations the composite calls, with the same
parameter maps: the multi-head attention and the FFN (the equations a block calls, with the variant it calls:
``transformer.ffn[relu]`` in a post-LN ReLU block), each layer norm against ``norm.layer_norm`` (with ε where
the block has one), and a stack's first layer against the block equation (and so on down). A part is a
submodule of its own (``attn``, ``mlp``, ``ln_1``, ``h.0``); parameters held by the composite itself
(``c_fc`` directly on a block) make no part, and the report says so.

Each part gets the verdict an audit of it alone would give, and the variants it matches: "the FFN matches
transformer.ffn[gelu_tanh]'s variant gelu" names the difference; every part passing says it lies in how the
composite joins them (the residuals, where the norms sit).
"""

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import torch

from ... import spec
from ...spec import Equation, Kind
from ...spec.ops_nn import Call
from ..binding import BUILT_IN_MASKS
from ..strategies import size_tuples
from .infer import InferredModule, infer_forward
from .layout import mapped_sources
from .report import AuditReport


@dataclass
class PartReport:
    """A part of a composite audited on its own."""

    path: str  # the submodule ("attn", "h.0")
    equation: str  # what it was held to
    verdict: str
    matched: list[str]
    summary: str

    def as_json(self) -> dict:
        return asdict(self)


def _symbols(text: str) -> list[str]:
    return mapped_sources(text)


def _prefix(keys: list[str]) -> str:
    """The module path all ``keys`` (parameter paths) share, up to their owners' parent."""
    owners = [k.split(".")[:-1] for k in keys]
    common = []
    for parts in zip(*owners, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common)


def _callees(eq: Equation) -> list[str]:
    seen: list[str] = []
    for b in eq.bindings:
        for call in sorted(b.rhs.atoms(Call), key=lambda c: c.args[0].name):
            name = call.args[0].name
            if name not in seen:
                seen.append(name)
    return seen


def _parts(eq: Equation, inferred: InferredModule) -> list[tuple[str, str, dict[str, str]]]:
    """(submodule path, equation id, its parameter maps) for each part that is a submodule of its own."""
    out = []
    groups = [(c, {d.ascii for d in spec.get(c).params if not d.is_scalar}) for c in _callees(eq)]
    eps = "eps" in inferred.constants
    for index in ("_1", "_2", ""):
        norm = {f"alpha{index}", f"beta{index}"}
        if norm & {d.ascii for d in eq.params}:
            groups.append(("norm.layer_norm[eps]" if eps else "norm.layer_norm", norm))
    for callee, symbols in groups:
        keys = [k for k, text in inferred.params.items() if set(_symbols(text)) <= symbols]
        if not keys:
            continue
        prefix = _prefix(keys)
        if not prefix:
            out.append(("", callee, {}))  # held by the composite itself: no part to audit
            continue
        maps = {k[len(prefix) + 1 :]: _renamed(inferred.params[k], callee) for k in keys}
        out.append((prefix, callee, maps))
    return out


def _renamed(text: str, callee: str) -> str:
    """A composite's map in the part's own symbols: a block's alpha_1 is a layer norm's alpha."""
    if callee.startswith("norm.layer_norm"):
        for index in ("_1", "_2"):
            text = text.replace(f"alpha{index}", "alpha").replace(f"beta{index}", "beta")
    return text


def audit_parts(
    cls: type,
    eq: Equation,
    inferred: InferredModule,
    *,
    mask: str | None,
    audit: Callable[..., AuditReport],
    profile: str = "quick",
    seed: int = 0,
) -> tuple[list[PartReport], list[str]]:
    """The parts of a failing composite, each audited (by ``audit``, the auditor's own function) against the
    equation the composite calls for it, and the parts of a part that fails in turn (a stack's first layer,
    then its attention: ``h.0.attn``); and notes for the parts that are no submodule of their own."""
    from .targets import _home, init_value

    sizes = size_tuples(eq, 1, seed, "small", derive=inferred.derive)[0]
    home = _home(cls)  # an --init expression names what the module defining the class does (GPTConfig)
    parent = cls(**{k: init_value(k, v, sizes, home) for k, v in inferred.init.items()}).double().eval()
    return _descend(parent, eq, inferred, sizes, mask, audit, profile, seed)


#: How deep the descent goes: a model's stack, the stack's first layer, the layer's attention.
_DEPTH = 3


def _descend(parent, eq, inferred, sizes, mask, audit, profile, seed, above="", depth=1, done=None):
    """The parts of ``parent`` (at path ``above``), audited; a failing composite part descended into, down
    to _DEPTH, each submodule audited once (a stack's norms are its first layer's too)."""
    reports, notes = [], []
    done = set() if done is None else done
    for path, callee, maps in _parts(eq, inferred):
        if not path:
            notes.append(f"{callee}: its parameters are the composite's own, no submodule to audit alone")
            continue
        concrete = path.replace("{l}", "0")
        sub = parent.get_submodule(concrete)
        while isinstance(sub, torch.nn.ModuleList | torch.nn.ModuleDict) and "." in concrete:
            concrete, last = concrete.rsplit(
                ".", 1
            )  # the Annotated Transformer's self_attn.linears: its owner
            maps = {f"{last}.{k}": v for k, v in maps.items()}
            sub = parent.get_submodule(concrete)
        where = f"{above}{concrete}"
        if where in done:
            continue
        done.add(where)
        part_eq = spec.get(callee)
        fixed = {a: v for a, v in sizes.items() if a in part_eq.axes and a != "n"}
        try:
            layout = _layout(sub, part_eq, fixed, mask)
            report = audit(
                sub, callee, layout=layout.layout, mask=layout.mask, params=maps, sizes=fixed,
                constants={k: v for k, v in inferred.constants.items()} or None, profile=profile, seed=seed,
                name=f"{where} ({type(sub).__name__})",
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a part that cannot be audited alone is said, not a verdict
            notes.append(f"{where} as {callee}: not audited alone ({exc})")
            continue
        reports.append(PartReport(where, callee, report.verdict, report.matched, report.summary))
        if report.verdict != "pass" and depth < _DEPTH and _callees(part_eq):  # a composite part: its parts
            inner, said = _descend(
                sub, part_eq, _as_inferred(inferred, maps, layout), sizes, mask, audit, profile, seed,
                above=f"{where}.", depth=depth + 1, done=done,
            )  # fmt: skip
            reports += inner
            notes += said
    return reports, notes


def _as_inferred(composite: InferredModule, maps: dict[str, str], layout) -> InferredModule:
    """A part's binding as an InferredModule (its maps, the composite's ties and constants), to descend."""
    return InferredModule({}, dict(composite.derive), dict(composite.constants), dict(maps), [], layout)


def _layout(sub: torch.nn.Module, eq: Equation, fixed: Mapping[str, int], mask: str | None):
    """The part's forward layout; the composite's built-in mask (causal, none) where the part takes S."""
    takes_s = any(d.entry_kind == Kind.ADDITIVE_MASK for d in eq.inputs)
    built_in = mask if mask in BUILT_IN_MASKS and takes_s else None
    return infer_forward(sub, eq, fixed=fixed, mask=built_in)


def verdict_sentence(parts: list[PartReport]) -> str:
    """One sentence on the parts: which differ and what they match, or that every one agrees."""
    differing = [p for p in parts if p.verdict != "pass"]
    if not parts:
        return ""
    if not differing:
        return (
            f"every part computes its equation ({', '.join(f'{p.path} as {p.equation}' for p in parts)}): "
            "the difference is in how the composite joins them (residuals, where the norms sit)"
        )
    said = []
    for p in differing:
        what = f"matches its variant {', '.join(p.matched)}" if p.matched else p.verdict
        said.append(f"{p.path} as {p.equation}: {what}")
    return "the part that differs: " + "; ".join(said)
