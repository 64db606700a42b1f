"""The tokenizer file of the `tokens` section, read and checked on the driver
at planning (local path or any fsspec URL), before Ray starts."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dedupe_at_scale.io.storage import describe_error, read_text, resolve
from dedupe_at_scale.sections import ConfigError
from dedupe_at_scale.stages.tokens import TokenizerResource, tokenizer_resource
from dedupe_at_scale.stages.tokens.default import DEFAULT_TOKENIZER

if TYPE_CHECKING:
    from dedupe_at_scale.io.storage import StorageConfig
    from dedupe_at_scale.stages.tokens.config import TokensConfig

log = logging.getLogger(__name__)


def load_tokenizer(cfg: TokensConfig, storage: StorageConfig) -> TokenizerResource:
    source = cfg.tokenizer or str(DEFAULT_TOKENIZER)
    try:
        location = resolve(source, storage)
        text = read_text(location, location.path)
    except Exception as exc:
        raise ConfigError(f"tokens.tokenizer: cannot read {source}: {describe_error(exc)}") from exc
    resource = tokenizer_resource(source, text)
    if resource.slow_because is not None:
        log.warning(
            "tokens: %s is counted with encode_batch (slower): %s", source, resource.slow_because
        )
    return resource
