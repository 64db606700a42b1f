"""A real multilingual corpus built from text this machine's packages install,
for the benchmarks beside the generator's sentences:

  man       manual pages (/usr/share/man: English and the translated trees),
            roff markup stripped: long documents, option tables, code
  catalogs  gettext catalogs (/usr/share/locale/*/LC_MESSAGES/*.mo): one
            catalog's translations as one document; 100+ languages, CJK,
            short menu strings and placeholders
  docs      /usr/share/doc: copyright files, changelogs, READMEs, NEWS; the
            licence texts repeat across packages, as boilerplate does on the web
  python    Python's documentation topics (pydoc_data) and the standard
            library's source files: code and reStructuredText

The same machine gives the same corpus (sorted listings, a seeded draw); what
another machine has installed gives another one, so a benchmark compares
both sides on the corpus of its own run.

    .venv/bin/python benchmarks/real_text.py --mb 50     # prints what it built
    .venv/bin/python benchmarks/real_text.py --mb 20 --output real-input   # Parquet
"""

from __future__ import annotations

import argparse
import gettext
import gzip
import random
import re
import sys
import sysconfig
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MAN = Path("/usr/share/man")
LOCALE = Path("/usr/share/locale")
DOC = Path("/usr/share/doc")
MAX_CHARS = 200_000  # a longer file is cut (a few changelogs run to megabytes)
MIN_CHARS = 200

ROFF_ESCAPES = [
    (re.compile(r"\\f(?:\[[^\]]*\]|\(..|.)"), ""),  # font changes
    (re.compile(r"\\\((?:aq|cq)"), "'"),
    (re.compile(r"\\\((?:lq|rq|dq)"), '"'),
    (re.compile(r"\\\((?:em|en)"), "-"),
    (re.compile(r"\\\(bu"), "*"),
    (re.compile(r"\\\(..|\\\[[^\]]*\]"), ""),  # other named characters
    (re.compile(r"\\[-e]"), lambda m: "-" if m.group() == "\\-" else "\\"),
    (re.compile(r"\\[&|^%:]"), ""),
    (re.compile(r"\\s[-+]?\d"), ""),
]
ROFF_TEXT_MACROS = re.compile(r"^\.(?:SH|SS|B|I|BI|BR|IB|IR|RB|RI|SM|SB|TH|Nm|Nd|Sh|Ss|It)\s+(.*)$")


def roff_to_text(source: str) -> str:
    """Man page text without its markup: macro lines that carry text keep it,
    the others (paragraph breaks, indents, comments) go."""
    lines = []
    for line in source.splitlines():
        if line.startswith(('.\\"', "'\\\"", '.\\"')):
            continue
        if line.startswith((".", "'")):
            match = ROFF_TEXT_MACROS.match(line)
            if not match:
                if line[1:3] in ("PP", "LP", "P", "TP", "IP", "sp", "br"):
                    lines.append("")
                continue
            line = match.group(1).replace('"', "")
        for pattern, replacement in ROFF_ESCAPES:
            line = pattern.sub(replacement, line)
        lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _read(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")


def _shuffled(paths: list[Path], rng: random.Random) -> list[Path]:
    paths = sorted(paths)
    rng.shuffle(paths)
    return paths


def man_documents(rng: random.Random) -> Iterator[str]:
    for path in _shuffled(list(MAN.glob("**/*.gz")), rng):
        if path.is_file() and not path.is_symlink():
            try:
                yield roff_to_text(_read(path))
            except (OSError, EOFError, gzip.BadGzipFile):
                continue


def catalog_documents(rng: random.Random) -> Iterator[str]:
    for path in _shuffled(list(LOCALE.glob("*/LC_MESSAGES/*.mo")), rng):
        try:
            with path.open("rb") as handle:
                catalog = gettext.GNUTranslations(handle)._catalog
        except (OSError, ValueError, LookupError):
            continue
        strings = [v for k, v in catalog.items() if isinstance(v, str) and k and v and v != k]
        yield "\n".join(strings)


def doc_documents(rng: random.Random) -> Iterator[str]:
    for path in _shuffled(list(DOC.glob("*/*")), rng):
        if path.is_file() and not path.is_symlink() and path.suffix in ("", ".gz", ".md", ".txt"):
            try:
                yield _read(path)
            except (OSError, EOFError, gzip.BadGzipFile):
                continue


def python_documents(rng: random.Random) -> Iterator[str]:
    import pydoc_data.topics

    topics = [text for _, text in sorted(pydoc_data.topics.topics.items())]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in [*stdlib.glob("*.py"), *stdlib.glob("*/*.py")] if "test" not in p.parts]
    items: list[str | Path] = [*topics, *sorted(files)]
    rng.shuffle(items)
    for item in items:
        yield item if isinstance(item, str) else item.read_text(encoding="utf-8", errors="replace")


SOURCES: dict[str, Callable[[random.Random], Iterator[str]]] = {
    "man": man_documents,
    "catalogs": catalog_documents,
    "docs": doc_documents,
    "python": python_documents,
}


def real_corpus(mb: float = 50, seed: int = 0) -> list[tuple[str, str]]:
    """(source, text) documents, about `mb` MB of UTF-8: a document from each
    source in turn (a seeded draw of its files) while it has any."""
    rng = random.Random(seed)
    pools = {
        name: documents(random.Random(f"{seed}-{name}")) for name, documents in SOURCES.items()
    }
    budget, size = mb * 1e6, 0.0
    taken: list[tuple[str, str]] = []
    while size < budget and pools:
        for name, pool in list(pools.items()):
            text = next((t for t in pool if len(t) >= MIN_CHARS), None)
            if text is None:
                del pools[name]
                continue
            text = text[:MAX_CHARS]
            taken.append((name, text))
            size += len(text.encode("utf-8"))
            if size >= budget:
                break
    rng.shuffle(taken)
    return taken


def real_texts(mb: float = 50, seed: int = 0) -> list[str]:
    return [text for _, text in real_corpus(mb, seed)]


def write_real_corpus(root: Path, mb: float = 50, shards: int = 8, seed: int = 0) -> int:
    """The corpus as Parquet shards (id, text, source) for a job; returns
    the number of documents."""
    corpus = real_corpus(mb, seed)
    root.mkdir(parents=True, exist_ok=True)
    for k in range(shards):
        part = corpus[k::shards]
        table = pa.table(
            {
                "id": [f"real-{k}-{i}" for i in range(len(part))],
                "text": [text for _, text in part],
                "source": [name for name, _ in part],
            }
        )
        pq.write_table(table, root / f"part-{k:04d}.parquet")
    return len(corpus)


def describe(corpus: list[tuple[str, str]]) -> str:
    sizes = Counter()
    counts = Counter()
    for name, text in corpus:
        sizes[name] += len(text.encode("utf-8"))
        counts[name] += 1
    total = sum(sizes.values())
    lines = [f"real text: {len(corpus):,} documents, {total / 1e6:.1f} MB "
             f"(mean {total / max(1, len(corpus)) / 1e3:.1f} KB)"]  # fmt: skip
    for name in SOURCES:
        if counts[name]:
            lines.append(f"  {name:<9} {counts[name]:>6,} documents {sizes[name] / 1e6:7.1f} MB")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=float, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="write it here as Parquet shards, for a job")
    parser.add_argument("--shards", type=int, default=8, help="with --output")
    args = parser.parse_args()
    if args.output:
        docs = write_real_corpus(Path(args.output), args.mb, args.shards, args.seed)
        print(f"wrote {docs:,} documents in {args.shards} shards to {args.output}")
        return
    print(describe(real_corpus(args.mb, args.seed)))


if __name__ == "__main__":
    sys.exit(main())
