"""`tokens` section: `n_tokens` per document, counted with a real tokenizer
(the shipped default, or `tokens.tokenizer`: your model's tokenizer.json).
By default (`count: kept`) the rows no per-document stage rejected are
counted, and a sample of the others from which the manifest estimates their
tokens (stages/tokens/estimate.py); `count: all` counts every row. The count
is the text's own tokens, without the special tokens a model adds per
document (add_special_tokens=False)."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale import columns as col
from dedupe_at_scale.report_parts import Distribution
from dedupe_at_scale.sections import ConfigError
from dedupe_at_scale.stages.base import Batch, Files, Stage, StageResult, take_rows
from dedupe_at_scale.stages.minhash import string_hashes
from dedupe_at_scale.stages.tokens.classes import regex_classes
from dedupe_at_scale.stages.tokens.counter import TokenCounter, pretokenizer
from dedupe_at_scale.stages.tokens.default import DEFAULT_TOKENIZER
from dedupe_at_scale.stages.tokens.estimate import REJECTED_SAMPLE

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

log = logging.getLogger(__name__)

SAMPLE_SEED = 11
RESOURCE = "tokenizer"  # its name among the annotation's shared resources
N_TOKENS = "n_tokens"


@dataclass(frozen=True)
class TokenizerResource:
    """What the driver read and checked at planning, shipped to the workers."""

    source: str  # where it came from, for messages and the manifest
    json: str
    classes: np.ndarray | None  # the regex classes, when the fast path applies
    slow_because: str | None = None  # why it is counted with encode_batch

    @property
    def digest(self) -> str:
        """Its content, for the run's fingerprint (a file changed at the same
        path is another tokenizer)."""
        return hashlib.sha256(self.json.encode()).hexdigest()


def tokenizer_resource(source: str, text: str) -> TokenizerResource:
    """A checked tokenizer.json; ConfigError naming `source` if it is not one."""
    from tokenizers import Tokenizer

    try:
        Tokenizer.from_str(text)
        spec = json.loads(text)
    except Exception as exc:
        raise ConfigError(
            f"tokens.tokenizer: {source} is not a Hugging Face tokenizer.json: {exc}"
        ) from exc
    _, problem = pretokenizer(spec)
    return TokenizerResource(source, text, regex_classes() if problem is None else None, problem)


class TokensStage(Stage):
    name = "tokens"
    needs = (RESOURCE,)

    @staticmethod
    def prepare(cfg: JobConfig, files: Files) -> dict[str, Any]:
        """The tokenizer file (tokens.tokenizer, local or any URI the job
        reads; the shipped one by default), read and checked before Ray starts."""
        source = cfg.tokens.tokenizer or str(DEFAULT_TOKENIZER)
        try:
            text = files.read_text(source)
        except OSError as exc:
            raise ConfigError(f"tokens.tokenizer: {exc}") from exc
        resource = tokenizer_resource(source, text)
        if resource.slow_because is not None:
            log.warning(
                "tokens: %s is counted with encode_batch (slower): %s",
                source,
                resource.slow_because,
            )
        return {RESOURCE: resource}

    @staticmethod
    def summary(section: dict[str, Any]) -> list[str]:
        share = 100 * section["kept"] / (section["input"] or 1)
        written = section["written"] != section["kept"]
        extra = f"; {section['written']:,} written with the mixture's copies" if written else ""
        lines = [
            f"Tokens ({section['tokenizer']} tokenizer): kept {section['kept']:,} of {section['input']:,} "
            f"({share:.1f}%){extra}."
        ]
        if section.get("counted") == "kept":
            estimated = section["estimated"]
            lines.append(
                f"  Rows rejected by per-document stages: {estimated['sampled']} counted, the "
                f"other {estimated['from_bytes']:,} bytes estimated at {estimated['tokens']:,} "
                "tokens (tokens.count: kept)."
            )
        return lines

    def __init__(self, cfg: JobConfig, resources: dict[str, Any]):
        super().__init__(cfg)
        resource = resources.get(RESOURCE)
        if resource is None:  # run without a planned job (tests, notebooks): local files only
            path = cfg.tokens.tokenizer or str(DEFAULT_TOKENIZER)
            resource = tokenizer_resource(path, open(path, encoding="utf-8").read())
        self.counter = TokenCounter(resource.json, resource.classes)
        self.count_all = cfg.tokens.count == "all"

    def warm_up(self) -> None:
        self.counter.count(pa.array(["Warm up the kernel."], pa.string()))

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.tokens.enabled

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        fields = [pa.field(N_TOKENS, pa.int64())]
        if cfg.tokens.count == "kept":
            fields += [
                pa.field(n, pa.int64())
                for n in (col.TOKENS_COUNTED_BYTES, col.TOKENS_UNCOUNTED_BYTES)
            ]
        return fields

    @staticmethod
    def distributions(cfg: JobConfig) -> list[Distribution]:
        title = "Tokens per document"
        if cfg.tokens.count == "kept":  # rejected rows: only a sample has a count
            title += f" (of the rows a per-document stage rejected, 1 in {REJECTED_SAMPLE})"
        return [Distribution(N_TOKENS, N_TOKENS, title, unit="tokens")]

    @staticmethod
    def trace_note(rows: list[dict[str, Any]]) -> str:
        return "" if rows[0].get(N_TOKENS) is None else f", {rows[0][N_TOKENS]} tokens each"

    def __call__(self, batch: Batch) -> StageResult:
        text = batch.text_array()
        if self.count_all:
            return StageResult(columns={N_TOKENS: pa.array(self.counter.count(text))})
        # The kept rows, and one rejected row in REJECTED_SAMPLE (by its
        # text's hash, so whatever the blocks and workers) for the estimate.
        active = batch.active()
        counted = np.ones(batch.num_rows, bool)
        if len(active) < batch.num_rows:  # hashing costs as much as a tenth of counting
            counted = string_hashes(text, seed=SAMPLE_SEED) % REJECTED_SAMPLE == 0
            counted[active] = True
        rows = np.flatnonzero(counted)
        tokens = np.zeros(batch.num_rows, np.int64)
        if len(rows):
            tokens[rows] = self.counter.count(take_rows(text, rows))
        size = pc.fill_null(pc.binary_length(text), 0).to_numpy(zero_copy_only=False)
        size = size.astype(np.int64)
        return StageResult(
            columns={
                N_TOKENS: pa.array(tokens, mask=~counted),
                col.TOKENS_COUNTED_BYTES: pa.array(np.where(counted, size, 0)),
                col.TOKENS_UNCOUNTED_BYTES: pa.array(np.where(counted, 0, size)),
            }
        )
