"""The ``lmspec`` command line: ``main`` runs it (the console script, ``python -m lmspec``)."""

from .app import main as main
