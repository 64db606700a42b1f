"""PII detectors: a pattern per shape, a check of each match in its context
(Luhn, IBAN mod-97, octet ranges, the allow-list), and `find_pii`, the
reference: every detector's pattern over the whole text with Python's `re`,
then overlapping matches resolved (leftmost, then longest, then detector
order). The engine (engine.py) must find exactly what this finds.

Each detector also has a `candidate`: a Hyperscan pattern that matches
wherever `pattern` does (a superset: no look-arounds, no lazy repeats), used
to pick the documents and detectors that need the reference at all.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dedupe_at_scale.stages.pii.config import PiiConfig


@dataclass(frozen=True)
class Detector:
    kind: str  # the PII type (config.PII_TYPES)
    pattern: str  # the reference, Python re
    candidate: str  # Hyperscan, a superset of `pattern`
    check: Callable[[str, re.Match, PiiConfig], bool] | None = None

    @cached_property
    def regex(self) -> re.Pattern:
        return re.compile(self.pattern)


@dataclass(frozen=True)
class Found:
    kind: str
    start: int
    end: int


def _email(text: str, m: re.Match, cfg: PiiConfig) -> bool:
    local, _, domain = m.group().rpartition("@")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    domain = domain.lower()
    return not any(domain == d or domain.endswith("." + d) for d in cfg.allow_email_domains)


VERSION_WORDS = re.compile(r"(?<![A-Za-z])(?:version|release|ver\.?|v)\s*$", re.IGNORECASE)


def _ipv4(text: str, m: re.Match, cfg: PiiConfig) -> bool:
    octets = m.group().split(".")
    if any(int(o) > 255 or (len(o) > 1 and o[0] == "0") for o in octets):
        return False
    if VERSION_WORDS.search(text[max(0, m.start() - 12) : m.start()]):
        return False  # "version 1.2.3.4", "v1.2.3.4"
    return not _allowed_ip(m.group(), cfg)


def _ipv6(text: str, m: re.Match, cfg: PiiConfig) -> bool:
    value = m.group()
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    groups = [g for g in value.split(":") if g]
    # "::1", "a::b" and the like are too short to tell from code ("std::map" is no match).
    return len(groups) >= 3 and not _allowed_ip(value, cfg)


def _allowed_ip(value: str, cfg: PiiConfig) -> bool:
    address = ipaddress.ip_address(value)
    return any(address in ipaddress.ip_network(n, strict=False) for n in cfg.allow_networks)


DATE = re.compile(r"^(?:19|20)[0-9]{2}[ ./\-][01]?[0-9][ ./\-][0-3]?[0-9]$")


def _phone(text: str, m: re.Match, cfg: PiiConfig) -> bool:
    digits = re.sub(r"[^0-9]", "", m.group())
    if not 8 <= len(digits) <= 15:
        return False
    return DATE.match(m.group().lstrip("+").strip()) is None


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


CARD_PREFIXES = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[0689]|6011|65|64[4-9]|35|62)")


def _card(text: str, m: re.Match, cfg: PiiConfig) -> bool:
    value = m.group()
    separators = set(re.sub(r"[0-9]", "", value))
    digits = re.sub(r"[^0-9]", "", value)
    return (
        len(separators) <= 1
        and 13 <= len(digits) <= 19
        and CARD_PREFIXES.match(digits) is not None
        and luhn(digits)
    )


IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22,
    "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18,
    "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26,
    "AE": 23, "SA": 24, "IL": 23, "BR": 29, "UA": 29, "RS": 22, "BA": 20, "ME": 22, "MK": 19,
}  # fmt: skip


def iban_valid(value: str) -> bool:
    compact = value.replace(" ", "")
    if IBAN_LENGTHS.get(compact[:2], -1) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _iban(text: str, m: re.Match, cfg: PiiConfig) -> bool:
    return iban_valid(m.group())


KEY = r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
DETECTORS: tuple[Detector, ...] = (
    Detector("secret", KEY + r"[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----", KEY),
    Detector("secret", KEY + r"[A-Za-z0-9+/=\s]{32,}", KEY),  # a block cut short
    Detector(
        "secret",
        r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Z0-9])",
        r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}",
    ),  # fmt: skip
    Detector(
        "secret",
        r"(?<![A-Za-z0-9_])(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}(?![A-Za-z0-9_])",
        r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}",
    ),  # fmt: skip
    Detector("secret", r"github_pat_[A-Za-z0-9_]{60,90}", r"github_pat_[A-Za-z0-9_]{60}"),
    Detector("secret", r"xox[baprs]-[A-Za-z0-9\-]{10,72}", r"xox[baprs]-[A-Za-z0-9\-]{10}"),
    Detector("secret", r"AIza[0-9A-Za-z_\-]{35}", r"AIza[0-9A-Za-z_\-]{35}"),
    Detector("secret", r"(?:sk|rk)_live_[0-9A-Za-z]{24,99}", r"(?:sk|rk)_live_[0-9A-Za-z]{24}"),
    Detector(
        "secret",
        r"eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",
        r"eyJ[A-Za-z0-9_\-]{10}[A-Za-z0-9_\-]*\.eyJ[A-Za-z0-9_\-]{10}[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]{10}",
    ),  # fmt: skip
    Detector(
        "email",
        r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}",
        r"[A-Za-z0-9._%+\-]@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2}",
        _email,
    ),  # fmt: skip
    Detector(
        "iban",
        r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])",
        r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2}",
        _iban,
    ),  # fmt: skip
    Detector(
        "credit_card",
        r"(?<![0-9])(?:[0-9][ \-]?){12,18}[0-9](?![0-9])",
        r"(?:[0-9][ \-]?){12}[0-9]",
        _card,
    ),  # fmt: skip
    Detector(
        "ipv6",
        r"(?<![0-9A-Za-z:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Za-z:])",
        r"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:",
        _ipv6,
    ),  # fmt: skip
    Detector(
        "ipv4",
        r"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?!\.?[0-9])",
        r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]",
        _ipv4,
    ),  # fmt: skip
    Detector(
        "phone",
        r"(?<![0-9A-Za-z+])\+[1-9][0-9]{0,2}(?:[ .\-]?\(?[0-9]{1,5}\)?){2,6}(?![0-9])",
        r"\+[1-9]",
        _phone,
    ),  # fmt: skip
    Detector(
        "phone",
        r"(?<![0-9])\(?[2-9][0-9]{2}\)?[ .\-][0-9]{3}[ .\-][0-9]{4}(?![0-9])",
        r"[0-9]{3}[ .\-][0-9]{4}",
        _phone,
    ),  # fmt: skip
)


def active_detectors(cfg: PiiConfig) -> list[Detector]:
    return [d for d in DETECTORS if d.kind in cfg.detect]


def find_pii(text: str, cfg: PiiConfig, detectors: list[Detector] | None = None) -> list[Found]:
    """Every PII match of `text` by the reference method (module docstring)."""
    allowed = set(cfg.allow_values)
    found: list[tuple[int, int, int, str]] = []
    for d in detectors if detectors is not None else active_detectors(cfg):
        for m in d.regex.finditer(text):
            if m.group() in allowed or (d.check is not None and not d.check(text, m, cfg)):
                continue
            found.append((m.start(), -(m.end() - m.start()), _priority(d), m.group()))
    return resolve_overlaps(found)


def _priority(d: Detector) -> int:
    return DETECTORS.index(d)


def resolve_overlaps(found: list[tuple[int, int, int, str]]) -> list[Found]:
    """Leftmost first, then longest, then detector order; overlaps dropped."""
    kept: list[Found] = []
    end = -1
    for start, negative_length, priority, _ in sorted(found):
        if start >= end:
            kept.append(Found(DETECTORS[priority].kind, start, start - negative_length))
            end = start - negative_length
    return kept
