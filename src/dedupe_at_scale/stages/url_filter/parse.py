"""What a URL is to the url_filter: its host, its registrable domain (the
public suffix list, private suffixes included, so b.blogspot.com is a site
of its own), its address for address lists, and its words."""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_WORD = re.compile(r"[^\W_]+")
# A scheme without // whose rest is not a port (host:8080/x is a host).
_OTHER_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?![0-9]*(/|$))")


@dataclass(frozen=True)
class ParsedUrl:
    host: str  # lower-case, no port, no trailing dot; IDNA (punycode) where it encodes
    rest: str  # path and query, lower-case

    @property
    def address(self) -> str:
        """Host without www. and path, no trailing slash: what address lists hold."""
        return (self.host.removeprefix("www.") + self.rest).rstrip("/")

    def words(self) -> list[str]:
        """Runs of letters and digits of the host and path, in order."""
        return _WORD.findall(self.host + self.rest)

    def squashed(self) -> str:
        """Host and path with everything but letters and digits removed."""
        return "".join(_WORD.findall(self.host + self.rest))


def parse(url: str | None) -> ParsedUrl | None:
    """None for a null, empty or unparseable URL, or one of a scheme
    without a host (mailto:). A URL without a scheme (example.com/page) is
    read as http."""
    text = (url or "").strip()
    if not text:
        return None
    if "://" not in text:
        scheme = _OTHER_SCHEME.match(text)
        if scheme is not None:  # mailto:, javascript:, ...: no host to judge
            return None
        text = "http://" + text.removeprefix("//")
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:  # a bad IPv6 literal
        return None
    host = (host or "").rstrip(".")
    if not host:
        return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            pass  # kept as written, lower-cased
    rest = parts.path + ("?" + parts.query if parts.query else "")
    return ParsedUrl(host, rest.lower())


def address_of(entry: str) -> str:
    """A list entry as an address ("" when it is none)."""
    parsed = parse(entry)
    return parsed.address if parsed is not None else ""


def host_suffixes(host: str) -> list[str]:
    """The host and each parent domain, most specific first."""
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def address_prefixes(address: str) -> list[str]:
    """The address and each shorter one at a / of its path, longest first."""
    out = [address]
    at = address.rfind("/")
    while at > 0:
        address = address[:at]
        out.append(address)
        at = address.rfind("/")
    return out


@functools.lru_cache(maxsize=1)
def _suffix_list():
    from publicsuffixlist import PublicSuffixList  # the list ships in the package

    return PublicSuffixList()


def registrable_domain(host: str) -> str:
    """The domain a site is registered under (example.co.uk for
    www.example.co.uk); an IP address or a bare name is itself."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    return _suffix_list().privatesuffix(host) or host
