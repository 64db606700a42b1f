"""The url_filter's lists, read once on the driver: entries normalized as
the URLs they are matched against are, each with the list it came from (a
file's name, or ut1/<category>) for the reason a rejection gives."""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dedupe_at_scale.stages.url_filter.parse import address_of

if TYPE_CHECKING:
    from dedupe_at_scale.stages.url_filter.config import UrlFilterConfig


@dataclass
class UrlLists:
    """Entry -> the list it came from (the first list to name it)."""

    block_domains: dict[str, str] = field(default_factory=dict)
    block_urls: dict[str, str] = field(default_factory=dict)
    banned_words: dict[str, str] = field(default_factory=dict)
    soft_banned_words: dict[str, str] = field(default_factory=dict)
    banned_substrings: dict[str, str] = field(default_factory=dict)
    allow_domains: dict[str, str] = field(default_factory=dict)
    soft_threshold: int = 2
    reject_missing: bool = False

    @property
    def digest(self) -> str:
        """What a resumed run must share with the interrupted one (a list
        file changed at the same path counts)."""
        return hashlib.sha256(repr(sorted(vars(self).items())).encode()).hexdigest()


def entries(text: str) -> list[str]:
    """A list file's entries: stripped, lower-cased; blanks and # comments skipped."""
    lines = (line.strip().lower() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def domain_entry(entry: str) -> str:
    """A domain as written in block lists (`*.x.com`, `.x.com`, `x.com.`)."""
    return entry.removeprefix("*.").strip(".")


def substring_entry(entry: str) -> str:
    return "".join(c for c in entry if c.isalnum())


def read_lists(
    cfg: UrlFilterConfig,
    read_text: Callable[[str], str],
    list_dir: Callable[[str], list[str]],
) -> UrlLists:
    """The section's lists; `read_text(uri)` reads a file, `list_dir(uri)`
    names the entries of a folder (the job's storage, given by the caller)."""
    lists = UrlLists(
        soft_threshold=cfg.soft_threshold, reject_missing=cfg.on_missing_url == "reject"
    )

    def add(target: dict[str, str], uri: str, label: str, norm: Callable[[str], str]) -> None:
        for entry in entries(read_text(uri)):
            key = norm(entry)
            if key:
                target.setdefault(key, label)

    for kind, norm in (
        ("block_domains", domain_entry), ("block_urls", address_of),
        ("banned_words", str.strip), ("soft_banned_words", str.strip),
        ("banned_substrings", substring_entry), ("allow_domains", domain_entry),
    ):  # fmt: skip
        for uri in getattr(cfg, kind):
            add(getattr(lists, kind), uri, posixpath.basename(uri.rstrip("/")), norm)
    wanted = set(cfg.ut1_categories) if cfg.ut1_categories is not None else None
    for root in cfg.ut1:
        for category in sorted(list_dir(root)):
            if wanted is not None and category not in wanted:
                continue
            files = set(list_dir(posixpath.join(root, category)))
            label = f"ut1/{category}"
            if "domains" in files:
                add(
                    lists.block_domains,
                    posixpath.join(root, category, "domains"),
                    label,
                    domain_entry,
                )
            if "urls" in files:
                add(lists.block_urls, posixpath.join(root, category, "urls"), label, address_of)
    return lists
