"""``python -m lmspec.verify``: the ``lmspec`` command line."""

import sys

from .cli import main

sys.exit(main())
