"""`python -m checked_rl.runtime.cli` runs the `checked-rl` command."""

import sys

from checked_rl.runtime.cli import main

sys.exit(main())
