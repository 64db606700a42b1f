"""The boilerplate step in the job against a plain single-process Python
version, on the same documents, with the same output.

  plain  steps/boilerplate/units.reference: split each document into lines,
         count the documents holding each normalized line in a dict, then
         drop the lines held by at least min_documents documents (what a
         competent one-machine script does; the step's test reference)
  job    the job with only the boilerplate step on (language ID, quality,
         tokens and dedup off) on a local Ray of 1 and 2 CPUs: its
         boilerplate phase (the distributed count, the exchange by line
         hash, one decision file per staged file) and the whole run

On real text (benchmarks/real_text.py: manual pages, gettext catalogs,
/usr/share/doc, Python's docs and sources). The job's kept texts and its
rejections must equal the plain version's; the output says so.

    .venv/bin/python benchmarks/boilerplate_speed.py --real-mb 40
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))

from common import run_job  # noqa: E402
from dedupe_at_scale.config import JobConfig  # noqa: E402
from dedupe_at_scale.steps.boilerplate.units import reference  # noqa: E402
from real_text import write_real_corpus  # noqa: E402

ONLY_BOILERPLATE = {
    "langid": {"enabled": False}, "quality": {"enabled": False},
    "tokens": {"enabled": False}, "dedup": {"enabled": False},
    "boilerplate": {"enabled": True},
}  # fmt: skip


def plain(ids: list[str], texts: list[str]) -> tuple[float, dict[str, str], set[str]]:
    """(seconds, kept texts by id, rejected ids) of the reference."""
    section = JobConfig().boilerplate
    started = time.perf_counter()
    cleaned, lost = reference(texts, "line", section.min_documents, section.keep_first)
    seconds = time.perf_counter() - started
    rejected = {
        i for i, t, n in zip(ids, cleaned, lost) if n and len(t.strip()) < section.min_chars
    }
    return seconds, {i: t for i, t in zip(ids, cleaned) if i not in rejected}, rejected


def outcome(out: Path) -> tuple[dict[str, str], set[str]]:
    data = pq.read_table(out / "data", columns=["id", "text"]).to_pylist()
    rejected = pq.read_table(out / "rejected", columns=["id", "rule"]).to_pylist()
    return ({r["id"]: r["text"] for r in data},
            {r["id"] for r in rejected if r["rule"] == "boilerplate_too_short"})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--real-mb", type=float, default=40)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--workers", default="1,2", help="comma-separated CPU counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in"
        docs = write_real_corpus(source, args.real_mb, shards=args.shards)
        table = pq.read_table(source, columns=["id", "text"])
        ids, texts = table.column("id").to_pylist(), table.column("text").to_pylist()
        mb = sum(len(t.encode()) for t in texts) / 1e6
        seconds, kept, rejected = plain(ids, texts)
        print(f"real text: {docs:,} documents, {mb:.1f} MB, {args.shards} shards; "
              f"min_documents {JobConfig().boilerplate.min_documents}")  # fmt: skip
        changed = sum(1 for i, t in zip(ids, texts) if i in kept and kept[i] != t)
        print(f"plain (1 process)        : {seconds:6.2f} s  {mb / seconds:6.1f} MB/s  "
              f"({changed:,} documents changed, {len(rejected):,} rejected)")  # fmt: skip
        for workers in (int(w) for w in args.workers.split(",")):
            out = Path(tmp) / f"out-{workers}"
            wall, manifest = run_job(source, out, workers, ONLY_BOILERPLATE)
            phase = manifest["timings"]["wall_seconds"]["boilerplate"]
            same = outcome(out) == (kept, rejected)
            print(f"job, {workers} CPU{'s' if workers > 1 else ' '}  boilerplate : "
                  f"{phase:6.2f} s  {mb / phase:6.1f} MB/s  {seconds / phase:5.2f}x plain; "
                  f"whole run {wall:5.1f} s; same output: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
