"""Model presets: the sizes of published configurations, each with the parameter count that describes it.

``lmspec params gpt2`` counts GPT-2 small at these sizes, and the rendered catalogue evaluates its parameter
counts at them. Pure data: a preset names its count by id (``params.gpt2``, ``params.bert``, or ``vit``, the
sum spec.params.vit_count builds), and its sizes by the glossary's axis names.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """A published model: which count describes it and its sizes."""

    title: str
    count: str
    sizes: dict[str, int]


_GPT2 = {"v": 50257, "n_max": 1024, "d_k": 64, "d_v": 64}
_BERT = {"v": 30522, "n_max": 512, "d_k": 64, "d_v": 64}
_VIT = {"P": 16, "C_i": 3, "H_i": 224, "W_i": 224, "n_c": 1000, "d_k": 64, "d_v": 64}


def _widths(d_e: int, M: int, L: int) -> dict[str, int]:
    return {"d_e": d_e, "M": M, "L": L, "d_f": 4 * d_e}


#: The presets: the sizes of the published configurations (Radford et al. 2019; Devlin et al. 2019;
#: Dosovitskiy et al. 2021, 224×224 images in 16×16 patches, an ImageNet-1k head).
PRESETS: dict[str, Preset] = {
    "gpt2": Preset("GPT-2 small", "params.gpt2", {**_GPT2, **_widths(768, 12, 12)}),
    "gpt2-medium": Preset("GPT-2 medium", "params.gpt2", {**_GPT2, **_widths(1024, 16, 24)}),
    "gpt2-large": Preset("GPT-2 large", "params.gpt2", {**_GPT2, **_widths(1280, 20, 36)}),
    "gpt2-xl": Preset("GPT-2 XL", "params.gpt2", {**_GPT2, **_widths(1600, 25, 48)}),
    "bert-base": Preset("BERT-base, uncased", "params.bert", {**_BERT, **_widths(768, 12, 12)}),
    "bert-large": Preset("BERT-large, uncased", "params.bert", {**_BERT, **_widths(1024, 16, 24)}),
    "vit-base": Preset("ViT-B/16 classifier", "vit", {**_VIT, **_widths(768, 12, 12)}),
    "vit-large": Preset("ViT-L/16 classifier", "vit", {**_VIT, **_widths(1024, 16, 24)}),
}
