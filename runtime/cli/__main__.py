"""`python -m runtime.cli` runs the `checked-rl` command."""

import sys

from runtime.cli import main

sys.exit(main())
