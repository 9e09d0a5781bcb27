"""The tutorial's concept figures, computed by lmspec itself so that they cannot disagree with the spec.

Every number drawn comes from the exact oracle of the equation the figure illustrates (verify.oracle: the
spec's ``_entry`` meaning, compiled at the example's sizes), except the attention weights of GPT-2, which
come from impl's GPT-2 recomputed in NumPy on small seeded weights (``_gpt2``; the tests hold them to impl's
own). Nothing here imports torch. Each builder states its example and its sizes.
"""

from collections.abc import Callable, Iterable, Mapping

import numpy as np

from ..oracle import Oracle, concrete_shape
from ._svg import Bars, Figure, Heat, Scale, panels_figure
from ._unrolled import unrolled

SEED = 17
#: The vocabulary of the sampling figures (v = 7) and its logits z.
WORDS = ("the", "cat", "sat", "on", "mat", "dog", "ran")
LOGITS = (2.0, 1.0, 0.5, -1.0, 0.2, 3.0, -0.5)
TEMPERATURES = (0.5, 1.0, 2.0)
K_TOP = 3
#: The padding example: four real tokens, then two pads (right padding).
KEEP = (1, 1, 1, 1, 0, 0)


def oracle(eq_id: str, example: Mapping[str, object], sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
    """The exact oracle of ``eq_id`` on ``example`` (spec layout) at ``sizes``."""
    from ... import spec

    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in example.items()}
    return Oracle(spec.get(eq_id))(arrays, dict(sizes))


def _positions(n: int) -> list[str]:
    return [str(i) for i in range(1, n + 1)]


def _sizes_text(sizes: Mapping[str, int]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in sizes.items())


# --- masks ------------------------------------------------------------------------------------------------
def causal_mask() -> list[Figure]:
    sizes = {"n": 6}
    S = oracle("attention.causal_mask", {}, sizes)["S"]
    ticks = _positions(sizes["n"])
    mask = Scale("mask", 0.0, 0.0, "S_{ij}")
    panel = Heat(S, "S", "query token i", "key token j", ticks, ticks, mask, "S", numbers=True)
    caption = (
        "The causal mask S (n × n, entries 0 or −∞) of attention.causal_mask: S_ij = 0 where j ≤ i "
        "(token i attends to itself and the tokens before it), −∞ where j > i; the softmax turns −∞ into "
        f"weight 0. Computed by the exact oracle at {_sizes_text(sizes)}."
    )
    subtitle = "S_{ij} = 0 if j ≤ i, −∞ if j > i   (n = 6)"
    return [panels_figure("causal_mask", "Causal mask", subtitle, caption, [panel], sizes=sizes)]


def padding_mask() -> list[Figure]:
    """The padding mask alone, and combined with the causal mask (S = S_causal + S_pad, the additive masks'
    sum) with the weights it gives, ``softmax_rows(Z + S)`` for seeded scores Z."""
    n = len(KEEP)
    sizes = {"n": n}
    S_pad = oracle("attention.padding_mask", {"keep": KEEP}, sizes)["S"]
    S_causal = oracle("attention.causal_mask", {}, sizes)["S"]
    S = S_causal + S_pad
    Z = np.round(np.random.default_rng(SEED).normal(size=(n, n)), 2)
    W = oracle("attention.softmax_rows", {"Z": Z + S}, sizes)["Y"]
    ticks = [f"{j}" if KEEP[j - 1] else f"{j} (pad)" for j in range(1, n + 1)]
    keys = [str(j) if KEEP[j - 1] else f"{j}·" for j in range(1, n + 1)]
    mask = Scale("mask", 0.0, 0.0, "S_{ij}")
    prob = Scale("sequential", 0.0, 1.0, "weight softmax(Z + S)_{ij}")
    rows, cols = "query token i", "key token j (· = pad)"
    pad = Heat(S_pad, "S_{pad}", rows, cols, ticks, keys, mask, "S_pad", True)
    cs = Heat(S_causal, "S_{causal}", rows, cols, ticks, keys, mask, "S_causal", True)
    both = Heat(S, "S = S_{causal} + S_{pad}", rows, cols, ticks, keys, mask, "S", True)
    weights = Heat(W, "softmax(Z + S)", rows, cols, ticks, keys, prob, "weights", True, digits=2)
    kappa = "κ = (" + ", ".join(map(str, KEEP)) + ")"
    padding = panels_figure(
        "padding_mask",
        "Padding mask",
        f"S_{{ij}} = −∞ where key j is padding (κ_j = 0), 0 otherwise   ({kappa}, n = {n})",
        f"The padding mask of attention.padding_mask for {kappa}: every query row masks the padded keys "
        f"(columns 5 and 6). Computed by the exact oracle at {_sizes_text(sizes)}.",
        [pad],
        sizes=sizes,
    )
    combined = panels_figure(
        "combined_mask",
        "Causal and padding masks combined",
        f"S = S_{{causal}} + S_{{pad}}, and the attention weights it gives   ({kappa}, n = {n}, Z seeded)",
        "Additive masks add: S = S_causal + S_pad (attention.causal_mask plus attention.padding_mask, each "
        "by its exact oracle) is −∞ above the diagonal and in the padded columns. The last panel is "
        "attention.softmax_rows's oracle of Z + S for scores Z ~ N(0, 1) (seed 17, rounded to 0.01): each "
        f"row sums to 1 over the keys it may see. {_sizes_text(sizes)}.",
        [cs, pad, both, weights],
        sizes=sizes,
    )
    return [padding, combined]


# --- the gate ---------------------------------------------------------------------------------------------
def gate() -> list[Figure]:
    sizes = {"d_h": 8}
    a = np.linspace(-4.0, 4.0, sizes["d_h"])
    u = np.round(np.random.default_rng(SEED).normal(1.0, 1.0, size=sizes["d_h"]), 2)
    out = oracle("rnn.gate", {"a": a, "u": u}, sizes)
    m, u_tilde = out["m"], out["u_tilde"]
    rows = [str(i) for i in range(1, sizes["d_h"] + 1)]
    signed = Scale.fit("diverging", [a, u, u_tilde], "a, u, ũ = u ⊙ m")
    unit = Scale("sequential", 0.0, 1.0, "m = σ(a) ∈ (0, 1)")

    def strip(x, title, key, scale):
        return Heat(x[:, None], title, "entry (d_h = 8)", "", rows, [""], scale, key, True, cell=44)

    panels = [
        strip(a, "a", "a", signed),
        strip(m, "m = σ(a)", "m", unit),
        strip(u, "u", "u", signed),
        strip(u_tilde, "ũ = u ⊙ m", "u_tilde", signed),
    ]
    caption = (
        "The gate of rnn.gate: m = σ(a) is a semi-binary mask (near 0 for a ≪ 0: block; near 1 for a ≫ 0: "
        "let through), and ũ = u ⊙ m keeps that fraction of each entry of u. a runs from −4 to 4; "
        f"u ~ N(1, 1) (seed 17, rounded). Computed by the exact oracle at {_sizes_text(sizes)} (the "
        "tutorial's d)."
    )
    fig = panels_figure(
        "gate", "Gate: a semi-binary mask", "m = σ(a),  ũ = u ⊙ m   (d_h = 8)", caption, panels, sizes=sizes
    )
    return [fig]


# --- positions --------------------------------------------------------------------------------------------
def sinusoidal() -> list[Figure]:
    sizes = {"d_e": 24, "n_max": 40}
    Lam = oracle("positional.sinusoidal", {}, sizes)["Lambda"]
    scale = Scale("diverging", -1.0, 1.0, "Λ_{k,t}")
    panel = Heat(
        Lam,
        "Λ, d_e × n_{max}",
        "row k of Λ (sin on even, cos on odd)",
        "position t (column of Λ, from 0)",
        [str(i) for i in range(sizes["d_e"])],
        [str(t) for t in range(sizes["n_max"])],
        scale,
        "Lambda",
        cell=12,
    )
    caption = (
        "The sinusoidal positional encoding of positional.sinusoidal: Λ_(2i,t) = sin(t / 10000^(2i/d_e)), "
        "Λ_(2i+1,t) = cos(t / 10000^(2i/d_e)); one column per position, the frequency falling down the rows. "
        f"Computed by the exact oracle at {_sizes_text(sizes)}."
    )
    fig = panels_figure(
        "sinusoidal",
        "Sinusoidal positional encoding",
        "Λ_{2i,t} = sin(t/10000^{2i/d_e}),  Λ_{2i+1,t} = cos(t/10000^{2i/d_e})   (d_e = 24, n_{max} = 40)",
        caption,
        [panel],
        sizes=sizes,
    )
    return [fig]


# --- sampling ---------------------------------------------------------------------------------------------
def temperature() -> list[Figure]:
    v = len(WORDS)
    sizes = {"v": v}
    z = np.array(LOGITS)
    panels = [Bars(z, "logits z", "token", "z", WORDS, "z", -1.5, 3.5, colour="#57606a")]
    for tau in TEMPERATURES:
        p = oracle("lm.temperature", {"z": z, "tau": tau}, sizes)["p_tau"]
        panels.append(Bars(p, f"p_τ, τ = {tau:g}", "token", "p_τ", WORDS, f"tau={tau:g}", 0.0, 1.0))
    caption = (
        "Softmax with temperature (lm.temperature): p_τ = softmax(z / τ). τ < 1 sharpens the distribution "
        "towards the argmax, τ > 1 flattens it towards uniform. Computed by the exact oracle at "
        f"{_sizes_text(sizes)}, τ ∈ {{{', '.join(f'{t:g}' for t in TEMPERATURES)}}}."
    )
    fig = panels_figure(
        "temperature",
        "Softmax with temperature",
        f"p_τ = softmax(z / τ)   (v = {v})",
        caption,
        panels,
        swatches=[("#57606a", "logit z_j"), ("#2171b5", "probability")],
        sizes=sizes,
    )
    return [fig]


def top_k() -> list[Figure]:
    v = len(WORDS)
    sizes = {"v": v, "k_top": K_TOP}
    z = np.array(LOGITS)
    out = oracle("lm.top_k", {"z": z}, sizes)
    z_top, p = out["z_top"], out["p_top"]
    kept = list(np.isfinite(z_top))
    p_full = oracle("lm.temperature", {"z": z, "tau": 1.0}, {"v": v})["p_tau"]
    panels = [
        Bars(z, "logits z", "token", "z", WORDS, "z", -1.5, 3.5, kept=kept, colour="#57606a"),
        Bars(z_top, "z̃ = top-k(z)", "token", "z̃", WORDS, "z_top", -1.5, 3.5, colour="#57606a"),
        Bars(p_full, "softmax(z)", "token", "p", WORDS, "p", 0.0, 1.0),
        Bars(p, f"p_k = softmax(z̃), k = {K_TOP}", "token", "p_k", WORDS, "p_top", 0.0, 1.0),
    ]
    caption = (
        f"Top-k filtering (lm.top_k), k = {K_TOP}: the k largest logits are kept, the others set to −∞, and "
        "the softmax renormalises over the survivors. Computed by the exact oracle at "
        f"{_sizes_text(sizes)}; softmax(z) for comparison is lm.temperature's oracle at τ = 1."
    )
    fig = panels_figure(
        "top_k",
        "Top-k filtering",
        f"z̃_j = z_j if z_j is among the k largest, else −∞;  p_k = softmax(z̃)   (v = {v}, k = {K_TOP})",
        caption,
        panels,
        swatches=[("#57606a", "kept logit"), ("#afb8c1", "filtered logit"), ("#2171b5", "probability")],
        sizes=sizes,
    )
    return [fig]


# --- GPT-2 attention --------------------------------------------------------------------------------------
def gpt2_attention() -> list[Figure]:
    from ._gpt2 import SENTENCE, SIZES, STD, attention_weights, parameters, tokens

    per_block = attention_weights(parameters(), tokens())
    sizes = {name: SIZES[name] for name in ("v", "n", "d_e", "M", "d_k", "L", "d_f")}
    scale = Scale("sequential", 0.0, 1.0, "weight (row i sums to 1)")
    figs, rows, cols, heads = [], "query token i", "key token j", SIZES["M"]
    for l, W in enumerate(per_block, start=1):
        panels = [
            Heat(
                W[m], f"head m = {m + 1}", rows, cols, SENTENCE, SENTENCE, scale, f"head{m + 1}", True, 34, 2
            )
            for m in range(heads)
        ]
        figs.append(
            panels_figure(
                f"gpt2_attention_block{l}",
                f"GPT-2 attention weights, block {l}, per head",
                f"softmax(Q_m K_mᵀ / √d_k + S), m = 1..M   (block {l} of L = {SIZES['L']}, "
                f"M = {SIZES['M']}, n = {SIZES['n']})",
                f"The attention weights of impl's GPT-2 (impl/gpt2.py) in block {l}, one panel per head: row "
                "i is query token i, column j key token j; the causal mask leaves the upper triangle at 0 "
                f"and every row sums to 1. Random weights N(0, {STD}²) drawn by NumPy, seed 17, float64; "
                f"{_sizes_text(sizes)}.",
                panels,
                per_row=4,
                sizes=sizes,
            )
        )
    return figs


# --- recurrences ------------------------------------------------------------------------------------------
def _draw(eq_id: str, sizes: Mapping[str, int], seed: int, scale: float) -> dict[str, np.ndarray]:
    """A seeded example of ``eq_id`` at ``sizes``: inputs N(0, 1), parameters N(0, scale²)."""
    from ... import spec

    eq = spec.get(eq_id)
    rng = np.random.default_rng(seed)
    out = {d.ascii: rng.normal(size=concrete_shape(d, sizes)) for d in eq.inputs}
    out.update({d.ascii: scale * rng.normal(size=concrete_shape(d, sizes)) for d in eq.params})
    return out


def rnn_unrolled() -> list[Figure]:
    sizes = {"d_e": 3, "d_h": 5, "n": 6}
    example = _draw("rnn.elman_step[sequence]", sizes, SEED, 0.8)
    H = oracle("rnn.elman_step[sequence]", example, sizes)["H"]
    caption = (
        "The Elman recurrence unrolled over t = 1..n from h_0 = 0: h_t = tanh(W_x x_t + W_h h_{t−1} + b_h). "
        "Each strip is a vector, one cell per entry; the h_t are rnn.elman_step[sequence]'s exact oracle on "
        f"seeded inputs x_t ~ N(0, 1) and parameters ~ N(0, 0.8²), seed 17; {_sizes_text(sizes)}."
    )
    return [
        unrolled(
            "rnn_unrolled",
            "RNN unrolled over time",
            "h_t = tanh(W_x x_t + W_h h_{t−1} + b_h),  h_0 = 0   (d_e = 3, d_h = 5, n = 6)",
            caption,
            example["X"],
            {"h": H},
            "RNN",
            sizes,
        )
    ]


def _lstm_states(example: Mapping[str, np.ndarray], sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
    """``H`` and ``C`` (each d_h × n) of ``lstm.hidden[sequence]`` on ``example``: lstm.hidden's exact oracle,
    one step t at a time from h_0 = c_0 = 0, as the [sequence] variant unrolls it. One step's oracle compiles
    in a tenth of the time of the whole unrolled sequence's (SymPy expands n nested steps there); the tests
    hold the two equal, number for number."""
    X = example["X"]
    params = {k: v for k, v in example.items() if k != "X"}
    h = c = np.zeros(sizes["d_h"])
    H, C = [], []
    for t in range(X.shape[1]):
        out = oracle("lstm.hidden", {"x_t": X[:, t], "h_prev": h, "c_prev": c, **params}, sizes)
        h, c = out["h_t"], out["c_t"]
        H.append(h)
        C.append(c)
    return {"H": np.stack(H, axis=1), "C": np.stack(C, axis=1)}


def lstm_unrolled() -> list[Figure]:
    sizes = {"d_e": 3, "d_h": 4, "n": 6}
    example = _draw("lstm.hidden[sequence]", sizes, SEED, 0.8)
    out = _lstm_states(example, sizes)
    caption = (
        "The LSTM unrolled over t = 1..n from h_0 = c_0 = 0: each step takes x_t, h_{t−1} and c_{t−1} and "
        "emits h_t = o_t ⊙ tanh(c_t) and c_t = f_t ⊙ c_{t−1} + i_t ⊙ c̃_t. The states are "
        "lstm.hidden[sequence]'s exact oracle (lstm.hidden's, step by step) on seeded inputs x_t ~ N(0, 1) "
        f"and parameters ~ N(0, 0.8²), seed 17; {_sizes_text(sizes)}."
    )
    return [
        unrolled(
            "lstm_unrolled",
            "LSTM unrolled over time",
            "h_t = o_t ⊙ tanh(c_t),  c_t = f_t ⊙ c_{t−1} + i_t ⊙ c̃_t   (d_e = 3, d_h = 4, n = 6)",
            caption,
            example["X"],
            {"h": out["H"], "c": out["C"]},
            "LSTM",
            sizes,
        )
    ]


#: equation id -> the builder of its figures
CONCEPTS: dict[str, Callable[[], list[Figure]]] = {
    "attention.causal_mask": causal_mask,
    "attention.padding_mask": padding_mask,
    "rnn.gate": gate,
    "positional.sinusoidal": sinusoidal,
    "lm.temperature": temperature,
    "lm.top_k": top_k,
    "gpt2.forward": gpt2_attention,
    "rnn.elman_step": rnn_unrolled,
    "lstm.hidden": lstm_unrolled,
}


#: The builders whose oracles take longest to compile (0.5–1 s at their sizes; the others about 0.1 s),
#: started first when the figures are computed in several processes, so that the processes finish together.
SLOW = ("positional.sinusoidal", "attention.padding_mask")


def _check(wanted: list[str]) -> None:
    missing = [i for i in wanted if i not in CONCEPTS]
    if missing:
        have = ", ".join(CONCEPTS)
        raise KeyError(f"no concept figure for {', '.join(missing)}; there are figures for {have}")


def concept_figures(ids: Iterable[str] | None = None) -> dict[str, list[Figure]]:
    """The concept figures, keyed by the id of the equation each illustrates (all of them, or those of
    ``ids``). Raises KeyError naming the ids that have none."""
    wanted = list(CONCEPTS) if ids is None else list(ids)
    _check(wanted)
    return {i: CONCEPTS[i]() for i in wanted}


def concept_figures_ahead(
    ids: Iterable[str] | None = None, jobs: int = 1
) -> Callable[[], dict[str, list[Figure]]]:
    """Start computing ``concept_figures(ids)`` in ``jobs`` worker processes forked from this one (which has
    the spec and the oracle imported already) and return the function that waits for them. Nearly all the
    work is compiling the equations' oracles (SymPy, one core each), so a first ``lmspec render`` computes
    them beside its own work instead of before it. Where fork is not available, or ``jobs`` ≤ 1, the
    returned function computes them here. Call it before this process starts any thread (fork copies one)."""
    import multiprocessing

    wanted = list(CONCEPTS) if ids is None else list(ids)
    _check(wanted)
    if jobs <= 1 or len(wanted) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return lambda: concept_figures(wanted)
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(min(jobs, len(wanted)), mp_context=multiprocessing.get_context("fork"))
    first = [i for i in SLOW if i in wanted] + [i for i in wanted if i not in SLOW]
    futures = {i: pool.submit(CONCEPTS[i]) for i in first}

    def result() -> dict[str, list[Figure]]:
        try:
            return {i: futures[i].result() for i in wanted}
        except BrokenProcessPool:  # a worker died (killed, out of memory): compute here instead
            return concept_figures(wanted)
        finally:
            pool.shutdown(cancel_futures=True)

    return result
