"""``python -m lmspec``: the ``lmspec`` command line."""

import sys

from lmspec.verify.cli import main

sys.exit(main())
