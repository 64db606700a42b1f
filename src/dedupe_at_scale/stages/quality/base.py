"""Building blocks of the quality rules: a document view, a rule, a rule group.

A rule group measures a few signals of a document (sharing its tokenization)
and owns named rules, each a bound on one signal. The first rule that fails
rejects the document, and its name and measured value become the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Literal

import numpy as np

from dedupe_at_scale import text as textlib

if TYPE_CHECKING:
    from dedupe_at_scale.stages.quality.measure import Counts


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


@dataclass(frozen=True)
class RuleSpec:
    """One rule, declared once: its name, the signal it bounds, min or max,
    and the field of the group's config section that holds its threshold.

    The field decides how many rules the spec makes: a number is one rule
    (None switches it off); true / false is one rule with threshold 0 (the
    signal must stay 0) or none; a mapping {n: threshold} is one rule per n,
    with "{n}" in name and signal replaced by n (n-gram families)."""

    name: str
    signal: str
    bound: Literal["min", "max"]
    field: str

    def rules(self, cfg: object) -> list[Rule]:
        value = getattr(cfg, self.field)
        if value is None or value is False:
            return []
        if value is True:
            return [Rule(self.name, self.signal, self.bound, 0.0)]
        if isinstance(value, dict):
            return [
                Rule(self.name.format(n=n), self.signal.format(n=n), self.bound, float(t))
                for n, t in sorted(value.items())
            ]
        return [Rule(self.name, self.signal, self.bound, float(value))]

    def signals(self, cfg: object) -> list[str]:
        """Every signal this spec can bound under `cfg`, on or off."""
        value = getattr(cfg, self.field)
        if isinstance(value, dict):
            return [self.signal.format(n=n) for n in value]
        return [self.signal]


class RuleGroup:
    """A named set of rules over signals measured together. A subclass
    declares RULES (its RuleSpecs, in the order they are checked) and
    SETTINGS (the fields of its config section that are not thresholds)."""

    name: str = ""
    RULES: tuple[RuleSpec, ...] = ()
    SETTINGS: tuple[str, ...] = ("enabled",)

    def __init__(self, cfg: object):
        self.cfg = cfg
        fields = set(type(cfg).model_fields)  # type: ignore[attr-defined]
        unknown = [spec.field for spec in self.RULES if spec.field not in fields]
        if unknown:  # a typo must not silently switch a rule off
            raise TypeError(f"{self.name}: rules name unknown config fields {unknown}")
        self.rules: list[Rule] = [rule for spec in self.RULES for rule in spec.rules(cfg)]

    def measure(self, doc: Doc) -> dict[str, float]:
        """Signals of `doc`; a signal left out means its rules do not apply.
        The reference: plain Python, one document at a time."""
        raise NotImplementedError

    def measure_batch(self, counts: Counts) -> dict[str, np.ndarray]:
        """The same signals for a batch, from the kernel's counts (float64,
        NaN where `measure` leaves the signal out). The job's path."""
        raise NotImplementedError

    @property
    def cleans(self) -> bool:
        """Whether `clean` may replace texts (then the engine calls it)."""
        return False

    def clean(self, doc: Doc) -> str | None:
        """Text to keep instead of the original, or None to leave it as is."""
        return None


def safe_ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def ratios(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """safe_ratio, element-wise (the same float64 division)."""
    num = np.asarray(numerator, np.float64)
    den = np.asarray(denominator, np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def only(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` where `mask` holds, NaN (not measured) elsewhere."""
    return np.where(mask, np.asarray(values, np.float64), np.nan)
