"""The curated list of equivalent mutants: mutants of impl/ that compute the same function as the original on
every input the spec allows, so that no check can (or should) kill them.

An entry is keyed by the file, the operator, the enclosing function and the original and mutated text of the
segment(s) (whitespace-insensitive), never by line number, so that it survives edits elsewhere in the file.
Each entry says *why* the two programs agree. A mutant listed here that is killed after all is reported as a
stale entry (``lmspec mutate`` says so), to be removed.

Policy: an entry is added only with an argument that holds for every input the spec admits (sizes, dtypes,
masks, batch axes), not because the checks happen to miss it; a survivor that computes a different function
gets a check instead (docs/mutation.md).
"""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Equivalent:
    file: str
    operator: str
    function: str
    original: str
    mutated: str
    reason: str


EQUIVALENT: tuple[Equivalent, ...] = (
    Equivalent(
        "ffnn.py",
        "label-shift",
        "sequence_nll",
        "n - shift",
        "(n - shift) + 1",
        "log_probs[..., : n − s + 1, :] instead of [..., : n − s, :] before .gather(-1, targets): gather "
        "returns the index's shape and reads input row t only where the index has a row t; targets has "
        "n − s rows, so the one extra row (present only when s ≥ 1) is never read.",
    ),
    Equivalent(
        "bert.py",
        "slice-off-by-one",
        "mlm_masking",
        "4",
        "5",
        "Pi[..., 3:5] instead of Pi[..., 3:4]: Π's last axis holds exactly the four outcomes (_outcome_rates "
        "builds it from 4-vectors), so a slice ending at 5 stops at 4 and takes the same column.",
    ),
    Equivalent(
        "vit.py",
        "slice-off-by-one",
        "head",
        "1",
        "2",
        "H[..., 0:2, :] instead of H[..., 0:1, :]: layer norm acts on each token (row) on its own, and only "
        "row 0 of the result is kept ([..., 0, :]), so the extra row 1 (when n ≥ 2) is normalised and "
        "discarded; with n = 1 the two slices are the same row.",
    ),
    Equivalent(
        "rnn.py",
        "slice-off-by-one",
        "unroll",
        "len(states)",
        "len(states) + 1",
        "out[: len(states) + 1] instead of out[: len(states)]: every step passed to unroll (elman_step, "
        "lstm.hidden, gru's _state_only) returns exactly len(states) results, so slicing one further "
        "keeps the same tuple.",
    ),
)


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text)


def reason_for(mutant) -> str | None:
    """The reason ``mutant`` is equivalent, if it is on the list."""
    for e in EQUIVALENT:
        if (
            e.file == mutant.file
            and e.operator == mutant.operator
            and e.function == mutant.function
            and _norm(e.original) == _norm(mutant.original)
            and _norm(e.mutated) == _norm(mutant.mutated)
        ):
            return e.reason
    return None
