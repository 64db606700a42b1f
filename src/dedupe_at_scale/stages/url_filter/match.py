"""The url_filter's verdict on a URL: `reference_verdict` is the plain
per-URL version (the tests hold the stage to it); `Matcher` gives the same
verdicts faster, deciding each host once per batch and finding banned
substrings with one Aho-Corasick pass instead of a test per entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dedupe_at_scale.stages.url_filter.parse import (
    address_prefixes,
    host_suffixes,
    parse,
    registrable_domain,
)

if TYPE_CHECKING:
    from dedupe_at_scale.stages.url_filter.lists import UrlLists
    from dedupe_at_scale.stages.url_filter.parse import ParsedUrl


@dataclass(frozen=True)
class Verdict:
    rule: str
    value: float | None
    reason: str


MISSING = Verdict("url_missing", None, "url_missing: no URL, or not one")


def _domain_verdict(host: str, lists: UrlLists) -> Verdict | None | bool:
    """True: allowed (no list applies); a Verdict: blocked; None: neither."""
    for suffix in host_suffixes(host):
        if suffix in lists.allow_domains:
            return True
    for suffix in host_suffixes(host):
        source = lists.block_domains.get(suffix)
        if source is not None:
            return Verdict("url_domain", None, f"url_domain: {suffix} ({source})")
    return None


def _address_and_word_verdict(
    url: ParsedUrl, lists: UrlLists, substrings: list[str]
) -> Verdict | None:
    for prefix in address_prefixes(url.address):
        source = lists.block_urls.get(prefix)
        if source is not None:
            return Verdict("url_address", None, f"url_address: {prefix} ({source})")
    words = url.words()
    for word in words:
        source = lists.banned_words.get(word)
        if source is not None:
            return Verdict("url_word", None, f"url_word: {word} ({source})")
    soft = sorted(set(words) & lists.soft_banned_words.keys())
    if len(soft) >= lists.soft_threshold:
        shown = ", ".join(soft[:5]) + (", ..." if len(soft) > 5 else "")
        return Verdict(
            "url_soft_words", float(len(soft)),
            f"url_soft_words: {len(soft)} soft-banned words ({shown}), limit "
            f"{lists.soft_threshold}",
        )  # fmt: skip
    if substrings:
        first = min(substrings)
        return Verdict(
            "url_substring", None, f"url_substring: {first} ({lists.banned_substrings[first]})"
        )
    return None


def reference_verdict(url: str | None, lists: UrlLists) -> Verdict | None:
    """Allow-lists first, then domain, address, word, soft words, substring."""
    parsed = parse(url)
    if parsed is None:
        return MISSING if lists.reject_missing else None
    domain = _domain_verdict(parsed.host, lists)
    if domain is True:
        return None
    if domain is not None:
        return domain
    squashed = parsed.squashed()
    found = [entry for entry in lists.banned_substrings if entry in squashed]
    return _address_and_word_verdict(parsed, lists, found)


class Matcher:
    """Verdicts and domains for a batch of URLs, equal to the reference's."""

    def __init__(self, lists: UrlLists):
        self.lists = lists
        self.automaton = None
        if lists.banned_substrings:
            import ahocorasick  # pyahocorasick

            self.automaton = ahocorasick.Automaton()
            for entry in lists.banned_substrings:
                self.automaton.add_word(entry, entry)
            self.automaton.make_automaton()
        self.has_url_checks = bool(
            lists.block_urls or lists.banned_words or lists.soft_banned_words or self.automaton
        )

    def __call__(self, urls: list[str | None]) -> tuple[list[str | None], list[Verdict | None]]:
        """Each URL's registrable domain (None: no URL) and verdict."""
        hosts: dict[str, tuple[str, Verdict | None | bool]] = {}
        domains: list[str | None] = []
        verdicts: list[Verdict | None] = []
        for url in urls:
            parsed = parse(url)
            if parsed is None:
                domains.append(None)
                verdicts.append(MISSING if self.lists.reject_missing else None)
                continue
            known = hosts.get(parsed.host)
            if known is None:
                known = hosts[parsed.host] = (
                    registrable_domain(parsed.host),
                    _domain_verdict(parsed.host, self.lists),
                )
            domain, verdict = known
            domains.append(domain)
            if verdict is not None:  # allowed (True), or blocked by its domain
                verdicts.append(None if verdict is True else verdict)
            elif self.has_url_checks:
                found = []
                if self.automaton is not None:
                    found = [entry for _, entry in self.automaton.iter(parsed.squashed())]
                verdicts.append(_address_and_word_verdict(parsed, self.lists, found))
            else:
                verdicts.append(None)
        return domains, verdicts
