"""Heuristic quality filtering: Gopher quality and repetition, C4, FineWeb."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale import columns as col
from dedupe_at_scale.formats import stage_views
from dedupe_at_scale.report_parts import Distribution, shown_number
from dedupe_at_scale.stages.base import Batch, Stage, StageResult, rejections, take_rows
from dedupe_at_scale.stages.quality.base import Doc, Rule, RuleGroup
from dedupe_at_scale.stages.quality.c4 import C4, JAVASCRIPT, LOREM_IPSUM, POLICY_PHRASES
from dedupe_at_scale.stages.quality.fineweb import FineWeb
from dedupe_at_scale.stages.quality.gopher import GopherQuality, GopherRepetition
from dedupe_at_scale.stages.quality.measure import Measurer

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.stages.quality.config import QualityConfig

# The signals `trace` prints: the ones a reader checks first.
TRACED_SIGNALS = (
    "q_gopher_word_count", "q_gopher_mean_word_length", "q_gopher_alpha_words_ratio",
    "q_gopher_stop_words", "q_c4_sentences",
)  # fmt: skip

__all__ = [
    "BatchVerdicts", "QualityFilter", "QualityRulesStage", "Verdict", "Rule", "RuleGroup", "Doc",
]  # fmt: skip


@dataclass
class Verdict:
    """The outcome for one document: `rule` is None when it is kept."""

    rule: Rule | None = None
    value: float | None = None
    signals: dict[str, float] = field(default_factory=dict)
    text: str | None = None  # replacement text when a group cleans it

    @property
    def kept(self) -> bool:
        return self.rule is None

    @property
    def reason(self) -> str | None:
        return None if self.rule is None or self.value is None else self.rule.reason(self.value)


@dataclass
class BatchVerdicts:
    """The outcomes for a batch, as arrays: `rule` indexes `rules` (-1:
    kept), `value` is the failing rule's measured value, `signals` every
    signal measured (NaN where not), `texts` replacement texts by row."""

    rules: list[Rule]
    rule: np.ndarray
    value: np.ndarray
    signals: dict[str, np.ndarray]
    texts: dict[int, str]
    # The signals of the groups up to each rule's (a rejected verdict's signals).
    signals_until: list[list[str]]

    @property
    def kept(self) -> np.ndarray:
        return self.rule < 0

    def verdict(self, i: int) -> Verdict:
        """Row i as `QualityFilter.evaluate` gives it (for tests and checks)."""
        names = list(self.signals) if self.rule[i] < 0 else self.signals_until[self.rule[i]]
        signals = {n: float(self.signals[n][i]) for n in names if not np.isnan(self.signals[n][i])}
        if self.rule[i] < 0:
            return Verdict(signals=signals, text=self.texts.get(i))
        return Verdict(self.rules[self.rule[i]], float(self.value[i]), signals)


class QualityFilter:
    """Runs the enabled rule groups in order; the first failing rule rejects."""

    def __init__(self, cfg: QualityConfig):
        self.unsegmented = frozenset(cfg.unsegmented_languages)
        # FineWeb's published order: repetition, quality, C4, FineWeb.
        self.repetition = GopherRepetition(cfg.gopher_repetition)
        self.quality = GopherQuality(cfg.gopher_quality)
        self.c4 = C4(cfg.c4)
        self.fineweb = FineWeb(cfg.fineweb)
        candidates: list[tuple[bool, RuleGroup]] = [
            (cfg.gopher_repetition.enabled, self.repetition),
            (cfg.gopher_quality.enabled, self.quality),
            (cfg.c4.enabled, self.c4),
            (cfg.fineweb.enabled, self.fineweb),
        ]
        self.groups = [group for enabled, group in candidates if enabled and group.rules]

    @property
    def signal_names(self) -> list[str]:
        names: dict[str, None] = {}
        for group in self.groups:
            for rule in group.rules:
                names[rule.signal] = None
        return list(names)

    @cached_property
    def measurer(self) -> Measurer:
        return Measurer(
            stop_words=self.quality.stop_words,
            top_ns=[n for n, _ in self.repetition.top_ngrams],
            dup_ns=[n for n, _ in self.repetition.dup_ngrams],
            short_line_length=self.fineweb.cfg.short_line_length,
            c4=self.c4.cfg,
            c4_phrases=[LOREM_IPSUM, JAVASCRIPT, *POLICY_PHRASES],
        )

    def evaluate(self, text: str, language: str | None = None) -> Verdict:
        """One document, every signal measured in Python: the reference."""
        doc = Doc(text, language, self.unsegmented)
        verdict = Verdict()
        for group in self.groups:
            signals = group.measure(doc)
            verdict.signals.update(signals)
            for rule in group.rules:
                value = signals.get(rule.signal)
                if value is not None and rule.fails(value):
                    verdict.rule, verdict.value = rule, float(value)
                    return verdict
        for group in self.groups:
            cleaned = group.clean(doc)
            if cleaned is not None:
                verdict.text = cleaned
        return verdict

    def evaluate_batch(
        self, texts: pa.Array | list[str], languages: pa.Array | list[str | None],
        rows: np.ndarray | None = None,
    ) -> BatchVerdicts:  # fmt: skip
        """A batch, measured by the native kernel; the same verdicts as
        `evaluate` gives each document (tests/test_quality_measure.py).
        With `rows` (ascending positions), only those texts are measured, in
        place, and verdict i is that of rows[i]."""
        texts = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.string())
        languages = pa.array(languages, pa.string()) if isinstance(languages, list) else languages
        languages = languages.cast(pa.string())
        if rows is not None:
            languages = take_rows(languages, rows)
        unsegmented = pa.array(sorted(self.unsegmented), pa.string())
        segmented = ~pc.fill_null(pc.is_in(languages, value_set=unsegmented), False).to_numpy(
            zero_copy_only=False
        )
        counts = self.measurer.count(texts, languages, segmented, rows)
        n = len(languages)
        rules = [rule for group in self.groups for rule in group.rules]
        signals: dict[str, np.ndarray] = {}
        signals_until: list[list[str]] = []
        rule_at = np.full(n, -1, np.int64)
        value = np.full(n, np.nan)
        open_rows = np.ones(n, bool)
        for group in self.groups:
            signals.update(group.measure_batch(counts))
            for rule in group.rules:
                signals_until.append(list(signals))
                v = signals[rule.signal]
                with np.errstate(invalid="ignore"):  # NaN: not measured, never fails
                    failed = (v < rule.threshold) if rule.bound == "min" else (v > rule.threshold)
                failed &= open_rows
                rule_at[failed] = len(signals_until) - 1
                value[failed] = v[failed]
                open_rows &= ~failed
        result = BatchVerdicts(rules, rule_at, value, signals, {}, signals_until)
        if any(group.cleans for group in self.groups):
            self._clean(result, texts, languages, rows)
        return result

    def _clean(self, result: BatchVerdicts, texts, languages, rows) -> None:
        """Replacement texts of kept documents (C4's clean_text), in Python."""
        for i in np.flatnonzero(result.kept).tolist():
            text = texts[i if rows is None else int(rows[i])].as_py()
            doc = Doc(text, languages[i].as_py(), self.unsegmented)
            for group in self.groups:
                cleaned = group.clean(doc)
                if cleaned is not None:
                    result.texts[i] = cleaned


class QualityRulesStage(Stage):
    """`quality` section: the rule groups over every kept document; the
    measured signals of kept documents become q_<signal> columns
    (quality.emit_signals), and C4 cleaning may replace the text."""

    name = stage = "quality"

    def __init__(self, cfg: JobConfig):
        super().__init__(cfg)
        self.filter = QualityFilter(cfg.quality)
        self.signal_names = self.filter.signal_names if cfg.quality.emit_signals else []
        self.view = stage_views(cfg)["quality"]

    def warm_up(self) -> None:
        self.filter.evaluate_batch(["Warm up the kernel."], ["en"])

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.quality.enabled

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        if not cfg.quality.emit_signals:
            return []
        names = QualityFilter(cfg.quality).signal_names
        return [pa.field(col.SIGNAL_PREFIX + name, pa.float32()) for name in names]

    @staticmethod
    def distributions(cfg: JobConfig) -> list[Distribution]:
        if not cfg.quality.emit_signals:
            return []
        quality = QualityFilter(cfg.quality)
        marks: dict[str, list[dict[str, Any]]] = {}
        for group in quality.groups:
            for rule in group.rules:
                marks.setdefault(rule.signal, []).append(
                    {"rule": rule.name, "bound": rule.bound, "threshold": rule.threshold}
                )
        # A log count axis: the rejected tails past a threshold are few.
        return [
            Distribution(name, name, name, log_counts=True, marks=tuple(marks.get(signal, ())))
            for signal in sorted(quality.signal_names)
            for name in [col.SIGNAL_PREFIX + signal]
        ]

    @staticmethod
    def trace_detail(row: dict[str, Any]) -> str:
        """A few signals (all are in data/), and the classifier's score."""
        signals = {
            k: v for k, v in row.items() if k.startswith(col.SIGNAL_PREFIX) and v is not None
        }
        shown = [f"{k}={shown_number(signals[k])}" for k in TRACED_SIGNALS if k in signals]
        if row.get(col.QUALITY_SCORE) is not None:
            shown.insert(0, f"{col.QUALITY_SCORE}={shown_number(row[col.QUALITY_SCORE])}")
        return f": {', '.join(shown)} ({len(signals)} signals in data/)" if signals else ""

    def __call__(self, batch: Batch) -> StageResult:
        active = batch.active()
        n = batch.num_rows
        result = self.filter.evaluate_batch(
            batch.text_array(self.view), batch.languages(self.view)[0], active
        )
        columns = {}
        # Rejected rows keep the signals measured up to their failing rule
        # (as the reference has them): rejected/ never shows them, the
        # report's distributions do.
        unmeasured = {
            name: np.isin(result.rule, [r for r, names in enumerate(result.signals_until)
                                        if name not in names])
            for name in self.signal_names
        }  # fmt: skip
        for name in self.signal_names:
            values = np.full(n, np.nan)
            values[active] = np.where(unmeasured[name], np.nan, result.signals[name])
            columns[col.SIGNAL_PREFIX + name] = pa.array(
                values.astype(np.float32), mask=np.isnan(values)
            )
        text = None
        if result.texts:
            new_texts = batch.texts(range(n))
            for i, t in result.texts.items():
                new_texts[active[i]] = t
            text = pa.array(new_texts, pa.string())
        rejected = np.flatnonzero(~result.kept)
        rules = [result.rules[r] for r in result.rule[rejected].tolist()]
        values = result.value[rejected].tolist()
        return StageResult(
            columns=columns,
            rejected=rejections(
                n,
                active[rejected].tolist(),
                [rule.name for rule in rules],
                values,
                [rule.reason(v) for rule, v in zip(rules, values)],
            ),
            text=text,
        )
