"""Language identification with fastText's lid.176 model (176 languages).

The compressed model (lid.176.ftz, CC BY-SA 3.0, see models/NOTICE.md) ships
inside this package, so it is on disk after install and nothing is downloaded.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from dedupe_at_scale import columns as col
from dedupe_at_scale.formats import stage_views
from dedupe_at_scale.kernels.codepoints import single_line_prefixes, unicode_tables
from dedupe_at_scale.report_parts import shown_number
from dedupe_at_scale.sections import Require, Section, SpecPath, View, check_view
from dedupe_at_scale.stages.base import (
    Batch,
    Stage,
    StageResult,
    rejections,
    scatter,
    string_buffers,
)
from dedupe_at_scale.text import single_line

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

LABEL_PREFIX = "__label__"


class LangIdConfig(Section):
    enabled: bool = True
    # Path to a fastText language-ID model; null means the bundled lid.176.ftz.
    model: SpecPath | None = None
    # ISO codes to keep; null keeps every language.
    languages: list[str] | None = None
    min_score: float = 0.65
    # Only the first characters are classified (bounds time on huge documents).
    max_chars: int = 2_000  # as accurate as 20,000 on real text, far faster (docs/langid.md)
    # Post-training rows: the text whose language is `language` (auto: the
    # response); the prompt's is recorded as prompt_language either way.
    text: View = "auto"
    # Post-training rows: reject a row whose response language is not its
    # prompt's (rule langid_mismatch; both labels at least min_score).
    require_same_language: bool = False

    def check(self, job: JobConfig, require: Require) -> None:
        check_view(job, require, "langid.text", self.text)
        require(0.0 <= self.min_score <= 1.0, "langid.min_score", "must be within [0, 1]")
        require(self.max_chars > 0, "langid.max_chars", "must be positive")


class ModelError(RuntimeError):
    """A model file is missing or cannot be loaded."""


def bundled_lid_model_path() -> Path:
    return Path(str(resources.files("dedupe_at_scale") / "models" / "lid.176.ftz"))


@functools.lru_cache(maxsize=4)
def load_fasttext_model(path: str):
    """Load a fastText model once per process (Ray reuses worker processes)."""
    import fasttext

    if not Path(path).is_file():
        raise ModelError(f"fastText model not found: {path}")
    try:
        return fasttext.load_model(path)
    except Exception as exc:  # fasttext raises ValueError or RuntimeError
        raise ModelError(f"cannot load fastText model {path}: {exc}") from exc


class LanguageIdentifier:
    """Predicts (ISO code, score) for texts with a fastText language-ID model."""

    def __init__(self, model_path: str | None = None, max_chars: int = 2_000):
        self.model_path = model_path or str(bundled_lid_model_path())
        self.max_chars = max_chars
        self.model = load_fasttext_model(self.model_path)

    def predict(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
        # fastText wants one line per text and, with numpy 2, a list input.
        return self.predict_lines([single_line(t[: self.max_chars]) for t in texts])

    def predict_rows(self, texts: pa.Array, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
        """`predict` of texts[rows], the lines made by a kernel over the Arrow
        buffers: no Python string of a whole document, only of its line."""
        data, offsets = string_buffers(texts)
        rows = np.asarray(rows, np.int64)
        room = np.minimum(offsets[rows + 1] - offsets[rows], 4 * self.max_chars)
        out = np.empty(int(room.sum()), np.uint8)
        ends = np.empty(len(rows) + 1, np.int64)
        single_line_prefixes(data, offsets, rows, self.max_chars, unicode_tables()[0], out, ends)
        lines = pa.LargeStringArray.from_buffers(
            len(rows), pa.py_buffer(ends), pa.py_buffer(out[: ends[-1]])
        )
        return self.predict_lines(lines.to_pylist())

    def predict_lines(self, lines: list[str]) -> tuple[list[str], np.ndarray]:
        if not lines:
            return [], np.zeros(0, dtype=np.float32)
        labels, scores = self.model.predict(lines, k=1)
        languages = [label[0].removeprefix(LABEL_PREFIX) if label else "" for label in labels]
        return languages, np.array([s[0] if len(s) else 0.0 for s in scores], dtype=np.float32)


class LanguageIdStage(Stage):
    """`langid` section: language and score of every kept document; rejects
    low confidence first (a low-confidence label is no reason to name), then
    languages outside `langid.languages`."""

    name = stage = "langid"
    columns_when_off = True

    def __init__(self, cfg: JobConfig):
        super().__init__(cfg)
        section = cfg.langid
        self.identifier = LanguageIdentifier(section.model, section.max_chars)
        self.min_score = section.min_score
        self.allowed = frozenset(section.languages) if section.languages else None
        post_training = cfg.input.format != "text"
        self.view = stage_views(cfg)["langid"]
        self.prompt_language = post_training
        self.same_language = post_training and section.require_same_language

    def warm_up(self) -> None:
        self.identifier.predict_rows(pa.array(["Warm up the kernel."]), np.zeros(1, np.int64))

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.langid.enabled

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        fields = [pa.field(col.LANGUAGE, pa.string()), pa.field(col.LANGUAGE_SCORE, pa.float32())]
        if cfg.input.format != "text":  # post-training rows: the prompt's language too
            fields += [
                pa.field(col.PROMPT_LANGUAGE, pa.string()),
                pa.field(col.PROMPT_LANGUAGE_SCORE, pa.float32()),
            ]
        return fields

    @staticmethod
    def trace_detail(row: dict[str, Any]) -> str:
        if row.get(col.LANGUAGE) is None:
            return ""
        return f": {row[col.LANGUAGE]} ({shown_number(row[col.LANGUAGE_SCORE])})"

    def __call__(self, batch: Batch) -> StageResult:
        active = batch.active()
        languages, scores = self.identifier.predict_rows(batch.text_array(self.view), active)
        n = batch.num_rows
        columns = {
            col.LANGUAGE: scatter(n, active, languages, pa.string()),
            col.LANGUAGE_SCORE: scatter(n, active, scores.tolist(), pa.float32()),
        }
        if self.prompt_language:
            prompt_languages, prompt_scores = self.identifier.predict_rows(
                batch.text_array("prompt"), active
            )
            columns[col.PROMPT_LANGUAGE] = scatter(n, active, prompt_languages, pa.string())
            columns[col.PROMPT_LANGUAGE_SCORE] = scatter(
                n, active, prompt_scores.tolist(), pa.float32()
            )
        else:
            prompt_languages, prompt_scores = languages, scores
        rows, rules, values, reasons = [], [], [], []
        for i, language, score, prompt_language, prompt_score in zip(
            active.tolist(), languages, scores.tolist(), prompt_languages, prompt_scores.tolist()
        ):
            if score < self.min_score:
                reason = f"langid_min_score: {language} {score:.3f} < {self.min_score:g}"
                rule = "langid_min_score"
            elif self.allowed is not None and language not in self.allowed:
                allowed = ", ".join(sorted(self.allowed))
                reason = f"langid_language: {language} (score {score:.3f}) not in [{allowed}]"
                rule = "langid_language"
            elif (
                self.same_language
                and language != prompt_language
                and prompt_score >= self.min_score
            ):
                reason = f"langid_mismatch: response {language}, prompt {prompt_language}"
                rule = "langid_mismatch"
            else:
                continue
            rows.append(i)
            rules.append(rule)
            values.append(score)
            reasons.append(reason)
        return StageResult(
            columns=columns,
            rejected=rejections(n, rows, rules, values, reasons),
        )
