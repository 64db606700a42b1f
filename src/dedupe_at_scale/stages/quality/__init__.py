"""Heuristic quality filtering: Gopher quality and repetition, C4, FineWeb."""

from __future__ import annotations

from dataclasses import dataclass, field

from dedupe_at_scale.config import QualityConfig
from dedupe_at_scale.stages.quality.base import Doc, Rule, RuleGroup
from dedupe_at_scale.stages.quality.c4 import C4
from dedupe_at_scale.stages.quality.fineweb import FineWeb
from dedupe_at_scale.stages.quality.gopher import GopherQuality, GopherRepetition

__all__ = ["QualityFilter", "Verdict", "Rule", "RuleGroup", "Doc"]


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
