"""The url_filter's batch matcher against the plain per-URL version
(match.reference_verdict: parse, then every list checked in turn, each
banned substring tested with `in`), one core, on real URLs: every http(s)
address found in the real-text corpus (benchmarks/real_text.py: manual
pages, /usr/share/doc, Python's docs and sources), drawn with repeats to
--urls, as a crawl revisits its sites.

Lists as a web pipeline holds them, made up here (no list is downloaded):
--domains blocked domains (a tenth of the corpus's own hosts among them,
so that lists hit), 2,000 blocked addresses, 300 banned words, 300
soft-banned words and 300 banned substrings (short letter runs, which
hit often), and 100 allowed domains. Both must give the same verdicts and
domains; the output says so.

    .venv/bin/python benchmarks/url_filter_speed.py             # 200,000 URLs
    .venv/bin/python benchmarks/url_filter_speed.py --urls 1000000 --domains 1000000
"""

from __future__ import annotations

import argparse
import random
import re
import string
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from dedupe_at_scale.stages.url_filter.lists import UrlLists  # noqa: E402
from dedupe_at_scale.stages.url_filter.match import Matcher, reference_verdict  # noqa: E402
from dedupe_at_scale.stages.url_filter.parse import parse, registrable_domain  # noqa: E402
from real_text import real_texts  # noqa: E402

URL = re.compile(r"https?://[^\s<>\"'()\[\]{}\\]+")
BATCH = 2_000  # URLs per call, as in an annotation task


def corpus_urls(mb: float) -> list[str]:
    found = sorted({m.rstrip(".,;:") for t in real_texts(mb) for m in URL.findall(t)})
    return [u for u in found if parse(u) is not None]


def made_up_lists(urls: list[str], domains: int, rng: random.Random) -> UrlLists:
    def word(n: int) -> str:
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))

    hosts = sorted({parse(u).host for u in urls})
    blocked = {h: "own-hosts" for h in rng.sample(hosts, len(hosts) // 10)}
    while len(blocked) < domains:
        blocked[f"{word(8)}.{rng.choice(['com', 'net', 'org', 'de', 'co.uk'])}"] = "made-up"
    addresses = {parse(u).address: "addresses" for u in rng.sample(urls, min(1000, len(urls)))}
    while len(addresses) < 2000:
        addresses[f"{word(6)}.com/{word(5)}"] = "addresses"
    return UrlLists(
        block_domains=blocked, block_urls=addresses,
        banned_words={word(rng.randint(4, 9)): "words" for _ in range(300)},
        soft_banned_words={word(rng.randint(3, 6)): "soft" for _ in range(300)},
        banned_substrings={word(rng.randint(4, 6)): "substrings" for _ in range(300)},
        allow_domains={h: "allow" for h in rng.sample(hosts, min(100, len(hosts)))},
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--urls", type=int, default=200_000)
    parser.add_argument("--domains", type=int, default=100_000, help="blocked domains")
    parser.add_argument("--real-mb", type=float, default=50, help="MB of real text to mine")
    args = parser.parse_args()
    rng = random.Random(0)
    distinct = corpus_urls(args.real_mb)
    urls = [rng.choice(distinct) for _ in range(args.urls)]
    lists = made_up_lists(distinct, args.domains, rng)
    hosts = len({parse(u).host for u in distinct})
    print(f"{len(urls):,} URLs drawn from {len(distinct):,} distinct ones on {hosts:,} hosts "
          f"(real text, {args.real_mb:g} MB); {len(lists.block_domains):,} blocked domains, one core")  # fmt: skip

    matcher = Matcher(lists)
    started = time.perf_counter()
    fast_domains, fast = [], []
    for at in range(0, len(urls), BATCH):
        domains, verdicts = matcher(urls[at : at + BATCH])
        fast_domains += domains
        fast += verdicts
    fast_s = time.perf_counter() - started
    started = time.perf_counter()
    reference = [reference_verdict(u, lists) for u in urls]
    reference_domains = [registrable_domain(p.host) if (p := parse(u)) else None for u in urls]
    reference_s = time.perf_counter() - started
    blocked = sum(v is not None for v in fast)
    same = fast == reference and fast_domains == reference_domains
    print(f"  per-URL reference : {reference_s:7.2f} s {len(urls) / reference_s:10,.0f} URLs/s")
    print(f"  batch matcher     : {fast_s:7.2f} s {len(urls) / fast_s:10,.0f} URLs/s   "
          f"{reference_s / fast_s:.1f}x; blocked {blocked:,}; same verdicts and domains: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
