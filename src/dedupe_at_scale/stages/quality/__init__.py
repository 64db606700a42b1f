"""Heuristic quality filtering: Gopher quality and repetition, C4, FineWeb."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from dedupe_at_scale import columns as col
from dedupe_at_scale.config import JobConfig, QualityConfig
from dedupe_at_scale.stages.base import Batch, Stage, StageResult, rejections, scatter
from dedupe_at_scale.stages.quality.base import Doc, Rule, RuleGroup
from dedupe_at_scale.stages.quality.c4 import C4
from dedupe_at_scale.stages.quality.fineweb import FineWeb
from dedupe_at_scale.stages.quality.gopher import GopherQuality, GopherRepetition

__all__ = ["QualityFilter", "QualityRulesStage", "Verdict", "Rule", "RuleGroup", "Doc"]


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


class QualityFilter:
    """Runs the enabled rule groups in order; the first failing rule rejects."""

    def __init__(self, cfg: QualityConfig):
        self.unsegmented = frozenset(cfg.unsegmented_languages)
        # FineWeb's published order: repetition, quality, C4, FineWeb.
        candidates: list[tuple[bool, RuleGroup]] = [
            (cfg.gopher_repetition.enabled, GopherRepetition(cfg.gopher_repetition)),
            (cfg.gopher_quality.enabled, GopherQuality(cfg.gopher_quality)),
            (cfg.c4.enabled, C4(cfg.c4)),
            (cfg.fineweb.enabled, FineWeb(cfg.fineweb)),
        ]
        self.groups = [group for enabled, group in candidates if enabled and group.rules]

    @property
    def signal_names(self) -> list[str]:
        names: dict[str, None] = {}
        for group in self.groups:
            for rule in group.rules:
                names[rule.signal] = None
        return list(names)

    def evaluate(self, text: str, language: str | None = None) -> Verdict:
        """One document, every signal measured on its own: the reference path."""
        return self._verdict(Doc(text, language, self.unsegmented))

    def evaluate_batch(self, texts: list[str], languages: list[str | None]) -> list[Verdict]:
        """Documents of one batch: the groups first measure what they can for
        all of them at once; the verdicts equal `evaluate`'s."""
        docs = [Doc(t, lang, self.unsegmented) for t, lang in zip(texts, languages)]
        for group in self.groups:
            group.prepare(docs)
        return [self._verdict(doc) for doc in docs]

    def _verdict(self, doc: Doc) -> Verdict:
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


class QualityRulesStage(Stage):
    """`quality` section: the rule groups over every kept document; the
    measured signals of kept documents become q_<signal> columns
    (quality.emit_signals), and C4 cleaning may replace the text."""

    name = stage = "quality"

    def __init__(self, cfg: JobConfig):
        super().__init__(cfg)
        self.filter = QualityFilter(cfg.quality)
        self.signal_names = self.filter.signal_names if cfg.quality.emit_signals else []

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.quality.enabled

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        if not cfg.quality.emit_signals:
            return []
        names = QualityFilter(cfg.quality).signal_names
        return [pa.field(col.SIGNAL_PREFIX + name, pa.float32()) for name in names]

    def __call__(self, batch: Batch) -> StageResult:
        active = batch.active().tolist()
        texts = batch.texts(active)
        languages = batch.column(col.LANGUAGE).to_pylist()
        rejected: list[tuple[int, Verdict]] = []
        kept: list[tuple[int, Verdict]] = []
        verdicts = self.filter.evaluate_batch(texts, [languages[i] for i in active])
        for i, verdict in zip(active, verdicts):
            (kept if verdict.kept else rejected).append((i, verdict))
        n = batch.num_rows
        columns = {
            col.SIGNAL_PREFIX + name: scatter(
                n, [i for i, _ in kept], [v.signals.get(name) for _, v in kept], pa.float32()
            )
            for name in self.signal_names
        }
        cleaned = [(i, v.text) for i, v in kept if v.text is not None]
        text = None
        if cleaned:
            new_texts = batch.texts(range(n))
            for i, t in cleaned:
                new_texts[i] = t
            text = pa.array(new_texts, pa.string())
        return StageResult(
            columns=columns,
            rejected=rejections(
                n,
                [i for i, _ in rejected],
                [v.rule.name for _, v in rejected],
                [v.value for _, v in rejected],
                [v.reason for _, v in rejected],
            ),
            text=text,
        )
