"""What decontamination adds to the annotation phase, on two corpora, each
run twice on the same workers, without and with decontamination:

  sample  the built-in sample with eval items planted into 1% of its
          documents; --items questions of a made-up vocabulary, so that only
          the planted copies can match: shows the cost, and recall
  real    real text (benchmarks/real_text.py); the eval items are --real-items
          sentences (13 to 60 words: at least one 13-gram) drawn from a tenth
          of it held out of the input, planted into 1% of the input; language
          ID and the quality rules are off in both runs, so that every
          document reaches the stage (the rules reject most man pages, code
          and catalogs): shows the cost on long real documents, and what else
          real text shares with real eval items (licence paragraphs, command
          descriptions, translated menu strings)

Prints the annotation busy seconds of both runs, the share decontamination
adds, the index's size (what each worker maps from Ray's object store), the
planted documents found and the other documents hit.

    .venv/bin/python benchmarks/decontaminate_speed.py                      # 200,000 documents, 50 MB real
    .venv/bin/python benchmarks/decontaminate_speed.py --docs 1000000 --items 100000

Target (issue 15): <= 15% added to the annotation phase's busy time.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))

from common import run_job  # noqa: E402
from dedupe_at_scale.sample import generate_sample  # noqa: E402
from dedupe_at_scale.sample.compliance import plant  # noqa: E402
from real_text import real_corpus  # noqa: E402

SENTENCE = re.compile(r"[^.!?\n]{40,400}[.!?]")


def plant_real(root: Path, mb: float, items: int, share: float, shards: int) -> set[str]:
    """Real-text input under root/in, with sentences of held-out documents
    as root/quiz.parquet, planted into `share` of the input: the ids planted."""
    rng = random.Random(0)
    corpus = [text for _, text in real_corpus(mb * 10 / 9, seed=1)]
    held_out, documents = corpus[::10], [t for i, t in enumerate(corpus) if i % 10]
    sentences = sorted({m.group().strip() for t in held_out for m in SENTENCE.finditer(t)
                        if 13 <= len(m.group().split()) <= 60})  # fmt: skip
    rng.shuffle(sentences)
    questions = sentences[:items]
    ids = [f"quiz-{i:05d}" for i in range(len(questions))]
    pq.write_table(pa.table({"id": ids, "question": questions}), root / "quiz.parquet")
    planted = set()
    texts, doc_ids = [], []
    for i, text in enumerate(documents):
        doc_ids.append(f"real-{i}")
        if rng.random() < share:
            text += "\n\n" + rng.choice(questions)
            planted.add(doc_ids[-1])
        texts.append(text)
    (root / "in").mkdir()
    for k in range(shards):
        table = pa.table({"id": doc_ids[k::shards], "text": texts[k::shards]})
        pq.write_table(table, root / "in" / f"part-{k:04d}.parquet")
    return planted


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=32)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--share", type=float, default=0.01, help="documents given an eval item")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--real-mb", type=float, default=50, help="MB of real text (0: skip)")
    parser.add_argument("--real-items", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.docs:
            return real_text_run(args)
        root = Path(tmp)
        started = time.perf_counter()
        generate_sample(root / "in", docs=args.docs, shards=args.shards, seed=0)
        # The sample's eval set and planting (generate --evals), PII left out.
        plant(root / "in", root, items=args.items, eval_share=args.share, pii_share=0.0)
        truth = pq.read_table(root / "in", columns=["id", "gt_eval_item"]).to_pylist()
        planted = {r["id"] for r in truth if r["gt_eval_item"] is not None}
        print(f"sample: generated {args.docs} documents ({len(planted)} with an eval item) and "
              f"{args.items} eval items in {time.perf_counter() - started:.0f} s")  # fmt: skip
        compare(root, planted, args.workers, args.items)
    real_text_run(args)


def real_text_run(args: argparse.Namespace) -> None:
    if not args.real_mb:
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        planted = plant_real(root, args.real_mb, args.real_items, args.share, args.shards)
        items = pq.read_metadata(root / "quiz.parquet").num_rows
        docs = sum(pq.read_metadata(p).num_rows for p in (root / "in").glob("*.parquet"))
        print(f"\nreal text: {docs} documents, {args.real_mb:g} MB ({len(planted)} with an "
              f"eval item); {items} eval items, sentences of held-out documents; language ID "
              "and quality rules off")  # fmt: skip
        off = {"langid": {"enabled": False}, "quality": {"enabled": False}}
        compare(root, planted, args.workers, items, off)


def compare(
    root: Path, planted: set[str], workers: int, items: int, base: dict | None = None
) -> None:
    """Run the job (`base`: the default one) on root/in without and with
    decontamination against root/quiz.parquet; print what it adds and what it found."""
    source = {"name": "quiz", "uri": str(root / "quiz.parquet"), "fields": ["question"],
              "id_field": "id"}  # fmt: skip
    plain: dict = dict(base or {})
    with_decon = {**plain, "decontaminate": {"enabled": True, "sources": [source]}}
    results = {}
    for name, spec in (("without", plain), ("with", with_decon)):
        results[name] = run_job(root / "in", root / f"out-{name}", workers, spec)
    hits = set(pq.read_table(root / "out-with" / "contamination").column("id").to_pylist())
    earlier = pq.read_table(root / "out-with" / "rejected", columns=["id", "stage"]).to_pylist()
    reached = planted - {r["id"] for r in earlier if r["stage"] != "decontaminate"}
    others = {r["id"] for r in earlier if r["stage"] != "decontaminate"}
    print(f"{'run':<8} {'wall s':>7} {'annotate s':>10} {'busy s':>8}  busy seconds by stage")
    busy = {}
    for name, (wall, manifest) in results.items():
        stages = manifest["timings"]["stage_busy_seconds"]
        busy[name] = sum(stages.values())
        annotate = manifest["timings"]["wall_seconds"]["annotate"]
        shown = ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
        print(f"{name:<8} {wall:>7.1f} {annotate:>10.1f} {busy[name]:>8.1f}  {shown}")
    manifest = results["with"][1]
    section = manifest["decontaminate"]
    added = manifest["timings"]["stage_busy_seconds"]["decontaminate"]
    print(
        f"decontamination adds {added:.1f} busy s to {busy['without']:.1f}: "
        f"{100 * added / busy['without']:.1f}% (target <= 15%)"
    )
    print(
        f"index: {section['ngrams']} {section['ngram_size']}-grams of {items} items, "
        f"{section['index_bytes'] / 2**20:.1f} MiB per worker (shared, zero-copy), built in "
        f"{manifest['timings']['wall_seconds'].get('prepare', 0):.1f} s on the driver"
    )
    print(
        f"planted documents that reached the stage: {len(reached)}; found {len(hits & reached)}; "
        f"other documents hit: {len(hits - planted)} (rejected earlier by other stages: "
        f"{len(others)})"
    )


if __name__ == "__main__":
    main()
