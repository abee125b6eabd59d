"""``python -m cnnbench`` is the ``cnnbench`` command."""

import sys

from cnnbench.cli import main

sys.exit(main())
