"""`python -m rpops`: the same as the `rpops` command."""

import sys

from rpops.core.cli import main

sys.exit(main())
