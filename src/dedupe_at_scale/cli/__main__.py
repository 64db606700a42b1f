"""`python -m dedupe_at_scale.cli` (how submitted jobs start)."""

from dedupe_at_scale.cli import console

console()
