"""``python -m keypilot`` (used by torchrun) is the ``keypilot`` command."""

import sys

from keypilot.cli import main

sys.exit(main())
