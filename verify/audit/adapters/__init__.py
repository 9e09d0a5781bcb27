"""Built-in audit targets: torch.nn / torch.nn.functional and Hugging Face transformers.

Each built-in is a factory for a callable written in the spec's glossary names and annotated with jaxtyping,
exactly like impl/: it takes spec-layout tensors (``H: Float[Tensor, "*batch n d_e"]``, ``W_Q: Float[Tensor,
"M d_e d_k"]`` …), builds the third-party module with those weights (on the inputs' device and dtype), calls
it the way its users do, and returns the result. The audit binds it like any other implementation, so
everything the verifier checks applies to it.

``mapping`` writes down how the spec's symbols reach the third-party object (the docs' table is made from
it); ``derive`` ties axes the third-party code cannot keep apart (HF attention has d_e = M·d_k:
``{"d_e": "M*d_k"}``); ``sizes`` fixes axes; ``pins`` are inputs the target fixes itself
(``is_causal=True`` fixes S to the causal mask); ``constants`` are scalar parameters it fixes (``eps``),
used when the audit tries the ``eps`` variants.

One module per library and model family registers its built-ins, in the order ``lmspec audit --list``
shows them: torch_attention (F.scaled_dot_product_attention, nn.MultiheadAttention), torch_transformer
(nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.LayerNorm), torch_recurrent (nn.RNN, nn.LSTM,
nn.GRU), torch_lm (nn.Embedding, F.cross_entropy), hf_gpt2, hf_bert and hf_vit (Hugging Face transformers);
_torch and _hf hold what each library's modules share, _registry the registry itself.
"""

import importlib

from ._registry import BUILTINS as BUILTINS
from ._registry import Builtin as Builtin
from ._registry import builtin as builtin
from ._registry import causal_pin as causal_pin
from ._registry import no_mask_pin as no_mask_pin

#: Modules that register built-ins, imported on first use (transformers is slow to import), in the order
#: their built-ins are listed.
MODULES = (
    ".torch_attention",
    ".torch_transformer",
    ".torch_recurrent",
    ".torch_lm",
    ".torch_cells",
    ".torch_encoder",
    ".torch_optim",
    ".hf_gpt2",
    ".hf_bert",
    ".hf_vit",
    ".hf_lm",
    ".hf_patchtst",
)

_LOADED = False


def builtins() -> dict[str, Builtin]:
    """Every built-in target, by name (importing the registering modules on first use), in the order of
    MODULES and, within a module, of registration — whichever module some other code imported first."""
    global _LOADED
    if not _LOADED:
        for module in MODULES:
            importlib.import_module(module, __package__)
        _LOADED = True
    rank = {f"{__package__}{module}": i for i, module in enumerate(MODULES)}
    ordered = sorted(BUILTINS.values(), key=lambda b: rank.get(b.make.__module__, len(rank)))
    return {b.name: b for b in ordered}


def mapping_markdown() -> str:
    """The built-ins' parameter mappings as Markdown (docs/audit.md holds this text; a test keeps it so)."""
    lines = []
    for group, title in (("torch", "torch"), ("hf", "Hugging Face transformers")):
        lines.append(f"### {title}\n")
        for b in builtins().values():
            if b.group != group:
                continue
            lines.append(f"#### `{b.name}` → `{b.equation}`\n")
            lines.append(b.description.strip() + "\n")
            extras = []
            if b.constants:
                extras.append("constants: " + ", ".join(f"{k} = {v:g}" for k, v in b.constants.items()))
            if b.pins:
                extras.append("fixes: " + ", ".join(b.pins))
            if b.derive:
                extras.append("ties sizes: " + ", ".join(f"{k} = {v}" for k, v in b.derive.items()))
            if b.sizes:
                extras.append("fixes sizes: " + ", ".join(f"{k} = {v}" for k, v in b.sizes.items()))
            if b.precision:
                extras.append(f"compared at {b.precision}'s tolerance: {b.precision_reason}")
            if b.no_gradient:
                extras.append(f"gradient not checked: {b.no_gradient}")
            if extras:
                lines.append("; ".join(extras) + ".\n")
            lines.append("| spec | target |\n|---|---|")
            for spec_name, where in b.mapping:
                lines.append(f"| `{spec_name}` | {where.replace('|', '∣')} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


__all__ = [
    "BUILTINS",
    "MODULES",
    "Builtin",
    "builtin",
    "builtins",
    "causal_pin",
    "mapping_markdown",
    "no_mask_pin",
]
