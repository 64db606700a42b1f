"""The `url_filter` config section: the block and allow lists the url_filter
stage (this package) reads. The stage runs where `input.url_column` names
the column holding each document's URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from dedupe_at_scale.sections import Require, Section, SpecPath

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig


class UrlFilterConfig(Section):
    """Lists are files (local paths or any URI the job reads), one entry a
    line; blank lines and lines starting with # are skipped."""

    enabled: bool = True
    # Blocked domains: an entry blocks itself and its subdomains.
    block_domains: list[SpecPath] = Field(default_factory=list)
    # Blocked addresses (host and path, scheme and www. ignored): an entry
    # blocks itself and the paths below it.
    block_urls: list[SpecPath] = Field(default_factory=list)
    # UT1 blacklist directories: a folder per category holding `domains`
    # and `urls` files (read as the two lists above, named ut1/<category>).
    ut1: list[SpecPath] = Field(default_factory=list)
    # The UT1 categories used; null: every category found.
    ut1_categories: list[str] | None = None
    # Words that block a URL holding one as a whole token of its host or
    # path (tokens: runs of letters and digits, lower-cased).
    banned_words: list[SpecPath] = Field(default_factory=list)
    # Words that block a URL holding at least soft_threshold of them.
    soft_banned_words: list[SpecPath] = Field(default_factory=list)
    soft_threshold: int = 2  # FineWeb's soft_word_threshold
    # Substrings that block a URL holding one once it is lower-cased with
    # everything but letters and digits removed (FineWeb's banned subwords).
    banned_substrings: list[SpecPath] = Field(default_factory=list)
    # Allowed domains (and their subdomains): never blocked by any list.
    allow_domains: list[SpecPath] = Field(default_factory=list)
    # A document whose URL is null, empty or not a URL: kept (domain null)
    # or rejected (rule url_missing).
    on_missing_url: Literal["keep", "reject"] = "keep"

    def check(self, job: JobConfig, require: Require) -> None:
        require(self.soft_threshold >= 1, "url_filter.soft_threshold", "must be at least 1")
        require(
            not self.enabled or job.input.url_column is not None or not self.has_lists,
            "url_filter", "has lists but input.url_column is not set: name the column "
            "holding each document's URL",
        )  # fmt: skip

    @property
    def has_lists(self) -> bool:
        return any(
            (self.block_domains, self.block_urls, self.ut1, self.banned_words,
             self.soft_banned_words, self.banned_substrings)
        )  # fmt: skip
