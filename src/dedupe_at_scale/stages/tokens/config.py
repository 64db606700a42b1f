"""The `tokens` config section: which tokenizer the tokens stage (this
package) counts with."""

from __future__ import annotations

from dedupe_at_scale.sections import Section, SpecPath


class TokensConfig(Section):
    """Token counts (stages/tokens/): n_tokens per document, per stage and per
    group in the manifest; a mixture unit."""

    enabled: bool = True
    # A Hugging Face tokenizer.json (local path or URI): your model's, for
    # budgets. null: the small tokenizer shipped in the package.
    tokenizer: SpecPath | None = None
