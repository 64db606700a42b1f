"""Building blocks of the quality rules: a document view, a rule, a rule group.

A rule group measures a few signals of a document (sharing its tokenization)
and owns named rules, each a bound on one signal. The first rule that fails
rejects the document, and its name and measured value become the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from dedupe_at_scale import text as textlib


class Doc:
    """Lazily computed views of one document, shared by all rule groups."""

    def __init__(self, text: str, language: str | None, unsegmented: frozenset[str]):
        self.text = text
        self.language = language
        # Whitespace-separated words are meaningless for scripts such as Chinese.
        self.segmented = language not in unsegmented

    @cached_property
    def words(self) -> list[str]:
        return textlib.words(self.text)

    @cached_property
    def lower_words(self) -> list[str]:
        # One C-level lower() over the joined words; words hold no spaces.
        return " ".join(self.words).lower().split(" ") if self.words else []

    @cached_property
    def lines(self) -> list[str]:
        return textlib.lines(self.text)


@dataclass(frozen=True)
class Rule:
    name: str
    signal: str
    bound: Literal["min", "max"]
    threshold: float

    def fails(self, value: float) -> bool:
        return value < self.threshold if self.bound == "min" else value > self.threshold

    def reason(self, value: float) -> str:
        op = "<" if self.bound == "min" else ">"
        return f"{self.name}: {_fmt(value)} {op} {_fmt(self.threshold)}"


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def bounded_rules(*specs: tuple[str, str, str, float | None]) -> list[Rule]:
    """Rules from (name, signal, bound, threshold) specs; a None threshold
    switches that rule off."""
    return [Rule(n, s, b, float(t)) for n, s, b, t in specs if t is not None]  # type: ignore[arg-type]


class RuleGroup:
    """A named set of rules over signals measured together."""

    name: str = ""
    rules: list[Rule]

    def measure(self, doc: Doc) -> dict[str, float]:
        """Signals of `doc`; a signal left out means its rules do not apply."""
        raise NotImplementedError

    def clean(self, doc: Doc) -> str | None:
        """Text to keep instead of the original, or None to leave it as is."""
        return None


def safe_ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0
