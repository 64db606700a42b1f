"""The `pii` config section: what the pii stage (this package) detects and
what it does with each type it finds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from dedupe_at_scale.sections import Require, Section

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig


PII_TYPES = ("email", "ipv4", "ipv6", "phone", "credit_card", "iban", "secret")


class PiiConfig(Section):
    """Personal data and secrets (stages/pii/): detected in one pass of a
    compiled multi-pattern engine, then checked (Luhn, IBAN checksum, ...)."""

    enabled: bool = False
    detect: list[str] = Field(default_factory=lambda: list(PII_TYPES))
    # Per type: redact (a typed placeholder), drop (rejected/, rule
    # pii_<type>) or count; types not listed are redacted.
    actions: dict[str, Literal["redact", "drop", "count"]] = Field(default_factory=dict)
    placeholders: dict[str, str] = Field(
        default_factory=lambda: {
            "email": "<EMAIL>", "ipv4": "<IP_ADDRESS>", "ipv6": "<IP_ADDRESS>",
            "phone": "<PHONE>", "credit_card": "<CREDIT_CARD>", "iban": "<IBAN>",
            "secret": "<SECRET>",
        }
    )  # fmt: skip
    # Never PII: these e-mail domains (and their subdomains), IP networks
    # (the documentation ranges by default) and exact values.
    allow_email_domains: list[str] = Field(
        default_factory=lambda: ["example.com", "example.org", "example.net"]
    )
    allow_networks: list[str] = Field(
        default_factory=lambda: [
            "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32",
        ]
    )  # fmt: skip
    allow_values: list[str] = Field(default_factory=list)
    # A document with more hits than this per 1,000 words is a list of
    # contacts: dropped (rule pii_density). Null: never.
    max_hits_per_1000_words: float | None = 20.0

    def check(self, job: JobConfig, require: Require) -> None:
        types = ", ".join(PII_TYPES)
        for name in self.detect:
            require(name in PII_TYPES, "pii.detect", f"has '{name}' (types: {types})")
        for name in [*self.actions, *self.placeholders]:
            require(name in PII_TYPES, f"pii.actions.{name}", f"is not a type ({types})")
        if self.enabled and job.input.format != "text":
            redacting = [t for t in self.detect if self.actions.get(t, "redact") == "redact"]
            require(
                not redacting, "pii.actions",
                f"redact ({', '.join(redacting)}) rewrites text in place, which post-training "
                "rows cannot take yet; set drop or count for each detected type",
            )  # fmt: skip
        if self.max_hits_per_1000_words is not None:
            require(
                self.max_hits_per_1000_words > 0, "pii.max_hits_per_1000_words", "must be positive"
            )
