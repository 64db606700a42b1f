"""`python -m dedupe_at_scale.cli` (how submitted jobs start)."""

import sys

from dedupe_at_scale.cli import main

sys.exit(main())
