"""``python -m lmspec``: the ``lmspec`` command line."""

import sys

from .verify.cli import main

sys.exit(main())
