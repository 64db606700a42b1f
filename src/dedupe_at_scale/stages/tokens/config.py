"""The `tokens` config section: which tokenizer the tokens stage (this
package) counts with."""

from __future__ import annotations

from typing import Literal

from dedupe_at_scale.sections import Section, SpecPath


class TokensConfig(Section):
    """Token counts (stages/tokens/): n_tokens per document, per stage and per
    group in the manifest; a mixture unit."""

    enabled: bool = True
    # A Hugging Face tokenizer.json (local path or URI): your model's, for
    # budgets. null: the small tokenizer shipped in the package.
    tokenizer: SpecPath | None = None
    # kept: the rows no per-document stage rejected (the only ones that can
    # reach data/) and one rejected row in 8; the others' tokens are
    # estimated from their bytes (docs/tokens.md has the measured error).
    # all: every row, exactly (4x the counting time on real text, where most
    # is rejected: docs/tokens.md).
    count: Literal["kept", "all"] = "kept"
