"""Mutation testing of impl/: does the verifier notice when impl/'s code is changed?

``discover()`` finds the mutants of impl/ (18 operators written for tensor code, in the code the verifier
reaches); ``run_mutants()`` judges each through the verifier suite with the mutated impl/ in front. The face
is light: the operators work on source text (ast), the runner imports the verifier on first use.
"""

from ._base import Mutant as Mutant
from .operators import OPERATOR_NAMES as OPERATOR_NAMES
from .operators import OPERATORS as OPERATORS
from .operators import discover as discover
from .operators import operator as operator
from .operators import sites as sites
from .reach import module_sources as module_sources


def run_mutants(*args, **kwargs):
    """verify.mutate.run.run_mutants (imported here on first use: it loads the verifier)."""
    from .run import run_mutants as run

    return run(*args, **kwargs)
