"""The streaming stages over one Arrow batch: language ID, then quality rules.

No Ray here: `Annotator` is a plain callable over a `pyarrow.Table`, so it is
unit-testable and the pipeline decides how to run it. A document rejected by
one stage skips the later ones; its stage, rule, value and reason are recorded
in the internal columns (see columns.py).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa

from dedupe_at_scale import columns as col
from dedupe_at_scale.config import JobConfig
from dedupe_at_scale.stages.langid import LanguageIdentifier
from dedupe_at_scale.stages.minhash import normalize, params_for, signatures, sparse_spaces
from dedupe_at_scale.stages.quality import QualityFilter
from dedupe_at_scale.stages.quality_model import QualityScorer


class Annotator:
    def __init__(self, cfg: JobConfig):
        self.cfg = cfg
        self.text_column = cfg.input.text_column
        lang_cfg = cfg.langid
        self.langid = (
            LanguageIdentifier(lang_cfg.model, lang_cfg.max_chars) if lang_cfg.enabled else None
        )
        self.allowed = frozenset(lang_cfg.languages) if lang_cfg.languages else None
        self.quality = QualityFilter(cfg.quality) if cfg.quality.enabled else None
        self.scorer = (
            QualityScorer(cfg.quality.model) if cfg.quality.enabled and cfg.quality.model else None
        )
        self.signal_names = (
            self.quality.signal_names if self.quality and cfg.quality.emit_signals else []
        )
        self.minhash = params_for(cfg.dedup) if cfg.dedup.enabled else None
        self.unsegmented = frozenset(cfg.quality.unsegmented_languages)

    def __call__(self, table: pa.Table) -> pa.Table:
        batch = _Batch(table, self.text_column)
        if self.langid is not None:
            started = time.perf_counter()
            self._identify_languages(batch)
            batch.seconds["langid"] = time.perf_counter() - started
        if self.quality is not None:
            started = time.perf_counter()
            self._apply_quality(batch)
            batch.seconds["quality"] = time.perf_counter() - started
        if self.minhash is not None:
            started = time.perf_counter()
            self._sign(batch)
            batch.seconds["minhash"] = time.perf_counter() - started
        return batch.to_table(self.signal_names)

    def _sign(self, batch: _Batch) -> None:
        """Exact hash and MinHash signature of every document still kept."""
        n = batch.table.num_rows
        batch.exact = np.zeros((n, 2), dtype=np.uint64)
        batch.sigs = np.zeros((n, self.minhash.num_perm), dtype=np.uint32)
        active = np.array(batch.active(), dtype=np.int64)
        if len(active) == 0:
            return
        texts = batch.text_array().take(pa.array(active))
        form = self.cfg.dedup.unicode_normalization
        normalized = normalize(texts, None if form == "none" else form)
        char_mode = np.array([batch.languages[i] in self.unsegmented for i in active], dtype=bool)
        if self.langid is None:
            # No language known: judge the script by how rarely spaces occur.
            char_mode |= sparse_spaces(texts)
        sigs, exact = signatures(normalized, char_mode, self.minhash)
        batch.sigs[active] = sigs
        batch.exact[active] = exact

    def _identify_languages(self, batch: _Batch) -> None:
        active = batch.active()
        languages, scores = self.langid.predict([batch.texts[i] for i in active])
        min_score = self.cfg.langid.min_score
        for i, language, score in zip(active, languages, scores.tolist()):
            batch.languages[i], batch.scores[i] = language, score
            # Confidence first: a low-confidence label is no reason to name.
            if score < min_score:
                reason = f"langid_min_score: {language} {score:.3f} < {min_score:g}"
                batch.reject(i, "langid", "langid_min_score", score, reason)
            elif self.allowed is not None and language not in self.allowed:
                allowed = ", ".join(sorted(self.allowed))
                reason = f"langid_language: {language} (score {score:.3f}) not in [{allowed}]"
                batch.reject(i, "langid", "langid_language", score, reason)

    def _apply_quality(self, batch: _Batch) -> None:
        for i in batch.active():
            verdict = self.quality.evaluate(batch.texts[i], batch.languages[i])
            if not verdict.kept:
                batch.reject(i, "quality", verdict.rule.name, verdict.value, verdict.reason)
                continue
            batch.signals[i] = verdict.signals
            if verdict.text is not None:
                batch.texts[i] = verdict.text
                batch.text_changed = True
        if self.scorer is not None:
            active = batch.active()
            scores = self.scorer.score([batch.texts[i] for i in active])
            min_score = self.cfg.quality.min_score
            batch.quality_scores = [None] * len(batch.stage)
            for i, score in zip(active, scores.tolist()):
                batch.quality_scores[i] = score
                if score < min_score:
                    reason = f"quality_classifier: {score:.4g} < {min_score:g}"
                    batch.reject(i, "quality", "quality_classifier", score, reason)


class _Batch:
    """Mutable per-row view of a table while the stages run."""

    def __init__(self, table: pa.Table, text_column: str):
        self.table = table
        self.text_column = text_column
        n = table.num_rows
        self._texts: list[str] | None = None
        self.stage: list[str | None] = table.column(col.STAGE).to_pylist()
        self.rule: list[str | None] = table.column(col.RULE).to_pylist()
        self.value: list[float | None] = table.column(col.VALUE).to_pylist()
        self.reason: list[str | None] = table.column(col.REASON).to_pylist()
        self.languages: list[str | None] = [None] * n
        self.scores: list[float | None] = [None] * n
        self.signals: list[dict[str, float] | None] = [None] * n
        self.seconds: dict[str, float] = {}
        self.text_changed = False
        self.quality_scores: list[float | None] | None = None
        self.exact: np.ndarray | None = None
        self.sigs: np.ndarray | None = None

    @property
    def texts(self) -> list[str]:
        # Python strings only for the stages that need them (language ID, rules).
        if self._texts is None:
            self._texts = self.table.column(self.text_column).to_pylist()
        return self._texts

    def text_array(self) -> pa.Array:
        if self.text_changed:
            return pa.array(self.texts, pa.string())
        return self.table.column(self.text_column).combine_chunks()

    def active(self) -> list[int]:
        return [i for i, s in enumerate(self.stage) if s is None]

    def reject(self, i: int, stage: str, rule: str, value: float | None, reason: str) -> None:
        self.stage[i], self.rule[i], self.value[i], self.reason[i] = stage, rule, value, reason

    def to_table(self, signal_names: list[str]) -> pa.Table:
        t = self.table
        n = t.num_rows
        if self.text_changed:
            index = t.schema.get_field_index(self.text_column)
            t = t.set_column(index, self.text_column, pa.array(self.texts, pa.string()))
        for name, values, kind in (
            (col.STAGE, self.stage, pa.string()),
            (col.RULE, self.rule, pa.string()),
            (col.VALUE, self.value, pa.float64()),
            (col.REASON, self.reason, pa.string()),
        ):
            t = t.set_column(t.schema.get_field_index(name), name, pa.array(values, kind))
        t = t.append_column(col.LANGUAGE, pa.array(self.languages, pa.string()))
        t = t.append_column(col.LANGUAGE_SCORE, pa.array(self.scores, pa.float32()))
        if self.quality_scores is not None:
            t = t.append_column(col.QUALITY_SCORE, pa.array(self.quality_scores, pa.float32()))
        for name in signal_names:
            values = [s.get(name) if s is not None else None for s in self.signals]
            t = t.append_column(col.SIGNAL_PREFIX + name, pa.array(values, pa.float32()))
        if self.sigs is not None:
            t = t.append_column(col.EXACT_HI, pa.array(self.exact[:, 0]))
            t = t.append_column(col.EXACT_LO, pa.array(self.exact[:, 1]))
            flat = pa.array(self.sigs.reshape(-1), pa.uint32())
            t = t.append_column(
                col.MINHASH, pa.FixedSizeListArray.from_arrays(flat, self.sigs.shape[1])
            )
        for stage in ("langid", "quality", "minhash"):
            share = self.seconds.get(stage, 0.0) / n if n else 0.0
            t = t.append_column(col.SECONDS_PREFIX + stage, pa.array(np.full(n, share)))
        return t


_ANNOTATORS: dict[str, Annotator] = {}


def annotate_batch(table: pa.Table, cfg: JobConfig) -> pa.Table:
    """Entry point for Ray tasks. Ray reuses worker processes, so keeping the
    Annotator in the process loads each model once per worker, not per batch."""
    key = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    annotator = _ANNOTATORS.get(key)
    if annotator is None:
        _ANNOTATORS.clear()
        annotator = _ANNOTATORS[key] = Annotator(cfg)
    return annotator(table)
