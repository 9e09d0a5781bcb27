"""The axis glossary: one table of dimension symbols used everywhere.

The same names appear in SymPy shapes, in jaxtyping strings of impl/, in LaTeX and in error messages.
"""

from dataclasses import dataclass

import sympy as sp


@dataclass(frozen=True)
class Axis:
    """A named dimension: a positive-integer SymPy symbol with its LaTeX form and meaning."""

    name: str
    latex: str
    meaning: str

    @property
    def symbol(self) -> sp.Symbol:
        return sp.Symbol(self.name, integer=True, positive=True)


GLOSSARY: dict[str, Axis] = {
    a.name: a
    for a in (
        Axis("n", "n", "sequence length (tokens)"),
        Axis("n_max", "n_{\\max}", "maximum sequence length"),
        Axis("n_d", "n_{d}", "decoder sequence length (cross-attention queries)"),
        Axis("n_e", "n_{e}", "encoder sequence length (cross-attention keys and values)"),
        Axis("v", "v", "vocabulary size"),
        Axis("d_e", "d_{e}", "embedding / model width"),
        Axis("M", "M", "number of attention heads"),
        Axis("d_k", "d_{k}", "query / key width per head"),
        Axis("d_v", "d_{v}", "value width per head"),
        Axis("d_f", "d_{f}", "position-wise FFN inner width"),
        Axis("L", "L", "number of blocks"),
        Axis("d_h", "d_{h}", "recurrent / hidden width"),
        Axis("c", "c", "context window of a feed-forward LM"),
        Axis("P", "P", "patch size"),
        Axis("k_top", "k", "number of logits kept by top-k sampling"),
        Axis("n_c", "n_{c}", "number of classes of a classifier head"),
        Axis("d_x", "m", "number of variables of a time series (x_t ∈ ℝ^m)"),
        Axis("L_in", "L_{\\mathrm{in}}", "length of an input time series"),
        Axis("S_p", "S", "patch stride"),
        Axis("N_p", "N", "number of patches"),
        Axis("C_i", "C", "image channels"),
        Axis("H_i", "H_{\\mathrm{img}}", "image height"),
        Axis("W_i", "W_{\\mathrm{img}}", "image width"),
        Axis("N_h", "N_{h}", "rows of the patch grid of an image (H_img = P N_h)"),
        Axis("N_w", "N_{w}", "columns of the patch grid of an image (W_img = P N_w)"),
        Axis("d_p", "d_{p}", "length of a flattened patch (P²C for an image patch)"),
        Axis("d_theta", "d_{\\theta}", "entries of a parameter tensor θ (optimisers act entry by entry)"),
    )
}

n, n_max, n_d, n_e, v, d_e, M, d_k, d_v, d_f, L, d_h, c, P = (
    GLOSSARY[k].symbol
    for k in ("n", "n_max", "n_d", "n_e", "v", "d_e", "M", "d_k", "d_v", "d_f", "L", "d_h", "c", "P")
)

#: The head index of per-head parameter families, m = 1..M.
m = sp.Symbol("m", integer=True, positive=True)


def axis(name: str) -> sp.Symbol:
    """The glossary symbol called ``name``; a SpecError names the unknown axis and the known ones."""
    from ._errors import SpecError

    try:
        return GLOSSARY[name].symbol
    except KeyError:
        raise SpecError(f"unknown axis {name!r}: the glossary has {', '.join(GLOSSARY)}") from None


def axis_names(expr: sp.Expr) -> list[str]:
    """Names of the glossary axes that occur in a size expression, in glossary order."""
    names = {s.name for s in sp.sympify(expr).free_symbols}
    return [k for k in GLOSSARY if k in names]
