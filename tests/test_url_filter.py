"""The url_filter stage: block lists (plain files and the UT1 layout, local
and on the S3 server), allow-lists over blocks, banned and soft-banned URL
words, banned substrings; its batch matcher against the plain per-URL
reference on adversarial URLs; the job end to end on local Ray."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedupe_at_scale.config import ConfigError, config_from_dict
from dedupe_at_scale.job.pipeline import run_job
from dedupe_at_scale.job.plan import StorageFiles, plan_job
from dedupe_at_scale.sample import generate_sample
from dedupe_at_scale.stages.url_filter.config import UrlFilterConfig
from dedupe_at_scale.stages.url_filter.lists import read_lists
from dedupe_at_scale.stages.url_filter.match import Matcher, reference_verdict
from dedupe_at_scale.stages.url_filter.parse import registrable_domain

UT1 = {
    "gambling/domains": "# UT1 gambling\ncasino.example\n*.poker.example\n",
    "gambling/urls": "games.example/slots\n",
    "publicite/domains": "ads.example.net\n",
    "publicite/urls": "blog.example.org/ads\n",
    "adult/domains": "adult.example\n",  # a category the tests leave out
}
LISTS = {
    "domains.txt": "Bad.CO.uk.\n\n# a comment\n",
    "allow.txt": "good.casino.example\n",
    "words.txt": "porn\n",
    "soft.txt": "sexy\nhot\ngirls\n",
    "substrings.txt": "xxx\nCams\n",
}


def write_lists(root: Path) -> dict:
    for name, text in {**{f"ut1/{k}": v for k, v in UT1.items()}, **LISTS}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return section(str(root))


def section(root: str) -> dict:
    return {
        "ut1": [f"{root}/ut1"],
        "ut1_categories": ["gambling", "publicite"],
        "block_domains": [f"{root}/domains.txt"],
        "allow_domains": [f"{root}/allow.txt"],
        "banned_words": [f"{root}/words.txt"],
        "soft_banned_words": [f"{root}/soft.txt"],
        "banned_substrings": [f"{root}/substrings.txt"],
    }


# Each with the rule the reference gives it (None: kept).
URLS = {
    "https://www.casino.example/play": "url_domain",
    "http://Sub.Casino.Example:8080/x": "url_domain",
    "http://good.casino.example/x": None,  # the allow-list wins
    "https://good.casino.example/hot-sexy-xxx": None,  # over every list
    "eu.poker.example/table": "url_domain",
    "shop.bad.co.uk.": "url_domain",
    "https://games.example/slots/7?x=1": "url_address",
    "https://games.example/slotsmachine": None,  # not below the address
    "http://www.blog.example.org/ads/": "url_address",
    "http://adult.example/": None,  # category not chosen
    "http://news.example.com/porn-clip": "url_word",
    "http://news.example.com/pornography": None,  # not a whole word
    "http://shop.example.net/hot-girls": "url_soft_words",
    "http://shop.example.net/hot": None,
    "http://WWW.XXX.example.com": "url_substring",
    "https://webcams.example/": "url_substring",
    "https://example.com/a/b/c": None,
    "": None,
    None: None,
    "http://[::1": None,
    "https://Bücher.example.de/ä": None,
}


def test_the_lists_are_read_in_the_ut1_layout_with_their_names(tmp_path):
    cfg = UrlFilterConfig.model_validate(write_lists(tmp_path))
    lists = read_lists(cfg, *_local_files())
    assert lists.block_domains == {
        "casino.example": "ut1/gambling", "poker.example": "ut1/gambling",
        "ads.example.net": "ut1/publicite", "bad.co.uk": "domains.txt",
    }  # fmt: skip
    assert lists.block_urls == {
        "games.example/slots": "ut1/gambling", "blog.example.org/ads": "ut1/publicite"
    }  # fmt: skip
    assert lists.banned_substrings == {"xxx": "substrings.txt", "cams": "substrings.txt"}
    reasons = {url: reference_verdict(url, lists) for url in URLS}
    assert {url: v and v.rule for url, v in reasons.items()} == URLS
    assert reasons["https://www.casino.example/play"].reason == (
        "url_domain: casino.example (ut1/gambling)"
    )
    assert reasons["http://shop.example.net/hot-girls"].reason == (
        "url_soft_words: 2 soft-banned words (girls, hot), limit 2"
    )


def _local_files():
    files = StorageFiles(config_from_dict({}).storage)
    return files.read_text, files.list_dir


def adversarial_urls(rng: random.Random, n: int) -> list[str | None]:
    hosts = [
        "casino.example", "CASINO.example.", "x.poker.example", "poker.example", "bad.co.uk",
        "good.casino.example", "a.good.casino.example", "www.games.example", "blog.example.org",
        "news.example.com", "b.blogspot.com", "192.168.0.1", "[2001:db8::1]", "xn--bcher-kva.de",
        "Bücher.de", "localhost", "user:pw@casino.example", "xxx.example", "example.co.uk",
    ]  # fmt: skip
    words = ["porn", "pornography", "hot", "girls", "sexy", "slots", "ads", "cams", "x", "ä", "%20"]
    out: list[str | None] = [None, "", "   ", "http://", "://", "http://[::1", "mailto:a@b.c"]
    while len(out) < n:
        path = "/".join(rng.choice(words) for _ in range(rng.randrange(4)))
        sep = rng.choice(["-", "_", ".", "/", ""])
        url = (
            rng.choice(["", "http://", "https://", "//", "HTTPS://"])
            + rng.choice(hosts)
            + rng.choice(["", ":8080", ":"])
            + "/" * rng.randrange(2)
            + path.replace("/", sep if rng.random() < 0.3 else "/")
            + rng.choice(["", "?q=hot+girls", "#frag", "/"])
        )
        if rng.random() < 0.05:  # junk characters anywhere
            at = rng.randrange(len(url) + 1)
            url = url[:at] + rng.choice(["\x00", " ", "[", "%", "\u200b", "😀"]) + url[at:]
        out.append(url)
    return out


def test_the_batch_matcher_gives_the_reference_verdicts_and_domains(tmp_path):
    cfg = UrlFilterConfig.model_validate(write_lists(tmp_path))
    lists = read_lists(cfg, *_local_files())
    for reject_missing in (False, True):
        lists.reject_missing = reject_missing
        urls = adversarial_urls(random.Random(7), 5000)
        domains, verdicts = Matcher(lists)(urls)
        assert verdicts == [reference_verdict(u, lists) for u in urls]
        rules = {v.rule for v in verdicts if v is not None}
        assert rules >= {"url_domain", "url_address", "url_word", "url_soft_words",
                         "url_substring"}  # fmt: skip
        assert ("url_missing" in rules) == reject_missing
    # The domain: registrable, over the same parse.
    assert domains[:7] == [None] * 7
    assert registrable_domain("a.b.blogspot.com") == "b.blogspot.com"
    assert registrable_domain("www.example.co.uk") == "example.co.uk"


def test_off_it_says_nothing(tmp_path):
    # Without input.url_column: an off section, and no summary line.
    from dedupe_at_scale.job.report import _unit_lines
    from dedupe_at_scale.stages.url_filter import UrlFilterStage

    section = UrlFilterStage.report(config_from_dict({}), {}, {})
    assert section == {"enabled": False}
    assert not [line for line in _unit_lines({"url_filter": section}) if "URL" in line]


def test_lists_without_a_url_column_are_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="url_filter.*input.url_column"):
        config_from_dict({"url_filter": {"banned_words": [str(tmp_path / "w.txt")]}})


def test_a_list_that_cannot_be_read_names_it(tmp_path):
    cfg = config_from_dict({"input": {"url_column": "url"},
                            "url_filter": {"banned_words": [str(tmp_path / "nope.txt")]}})  # fmt: skip
    inp = with_urls(tmp_path, docs=20)
    with pytest.raises(ConfigError, match=r"url_filter: cannot read .*nope\.txt"):
        plan_job(str(inp), str(tmp_path / "out"), cfg)


@pytest.mark.parametrize(
    ("column", "problem"),
    [("link", "no input file has a column 'link'"), ("id", "column 'id' has type")],
)
def test_a_url_column_missing_or_not_text_is_a_config_error(tmp_path, column, problem):
    inp = with_urls(tmp_path, docs=20)
    if column == "id":  # ids as integers
        table = pq.read_table(next(inp.glob("*.parquet")))
        table = table.set_column(table.schema.get_field_index("id"), "id",
                                 pa.array(range(table.num_rows)))  # fmt: skip
        for path in inp.glob("*.parquet"):
            path.unlink()
        pq.write_table(table, inp / "part.parquet")
    cfg = config_from_dict({"input": {"url_column": column}})
    with pytest.raises(ConfigError, match=f"input.url_column: {problem}"):
        plan_job(str(inp), str(tmp_path / "out"), cfg)


def with_urls(tmp_path: Path, docs: int) -> Path:
    """The generated sample with its `url` column drawn from URLS, row by row."""
    raw, inp = tmp_path / "raw", tmp_path / "in"
    inp.mkdir()
    urls, at = list(URLS), 0
    for path in generate_sample(raw, docs=docs, shards=2, seed=3):
        table = pq.read_table(path)
        picked = [urls[(at + k) % len(urls)] for k in range(table.num_rows)]
        at += table.num_rows
        column = table.schema.get_field_index("url")  # the sample's own URLs replaced
        table = table.set_column(column, "url", pa.array(picked, pa.string()))
        pq.write_table(table, inp / path.name)
    return inp


@pytest.mark.ray
@pytest.mark.parametrize("where", ["local", "s3"])
def test_the_job_rejects_by_the_lists_and_writes_domains(ray_cluster, s3_server, tmp_path, where):
    root = write_lists(tmp_path / "lists")
    storage = {}
    if where == "s3":  # the lists on the S3 server, UT1 folders included
        s3_server.upload_dir(tmp_path / "lists", "corpus-in", "lists", pattern="*")
        root, storage = section("s3://corpus-in/lists"), s3_server.storage()
    inp = with_urls(tmp_path, docs=300)
    cfg = config_from_dict({"input": {"url_column": "url"}, "url_filter": root,
                            "storage": storage})  # fmt: skip
    out = tmp_path / "out"
    result = run_job(str(inp), str(out), cfg)

    lists = read_lists(UrlFilterConfig.model_validate(write_lists(tmp_path / "again")),
                       *_local_files())  # fmt: skip
    url_of = dict(zip(*pq.read_table(inp, columns=["id", "url"]).columns))
    url_of = {k.as_py(): v.as_py() for k, v in url_of.items()}
    rejected = pq.read_table(out / "rejected").to_pylist()
    kept = pq.read_table(out / "data").to_pylist()
    by_url = [r for r in rejected if r["stage"] == "url_filter"]
    assert by_url and {r["rule"] for r in by_url} == {v for v in URLS.values() if v}
    for row in by_url:
        assert row["reason"] == reference_verdict(url_of[row["id"]], lists).reason
    for row in rejected:  # the other stages judged only what the lists let through
        if row["stage"] != "url_filter":
            assert reference_verdict(url_of[row["id"]], lists) is None
    for row in kept:
        assert reference_verdict(row["url"], lists) is None
        parsed = row["url"] and Matcher(lists)([row["url"]])[0][0]
        assert row["domain"] == (parsed or None)
    assert any(r["domain"] == "casino.example" for r in kept)  # the allowed subdomain
    section_ = result.manifest["url_filter"]
    counted = {}
    for row in by_url:
        counted[row["rule"]] = counted.get(row["rule"], 0) + 1
    assert section_["rejected"] == {k: counted[k] for k in section_["rejected"]} == counted
    assert json.dumps(section_)  # plain data
    # The report's table of the most frequent reasons: the same counts.
    reasons: dict[str, int] = {}
    for row in by_url:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    profile = json.loads((out / "report.json").read_text())
    assert profile["reasons"]["url_filter"] == dict(
        sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    )
    assert "Most frequent url_filter reasons" in (out / "report.html").read_text()
