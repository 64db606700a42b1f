"""Post-training rows against pre-training text on the same bytes: the chat
sample (ShareGPT-style message lists, 1 to 3 exchanges per row) through
jobs/chat.yaml, and the same rows' rendered conversations as a text column
through the same settings with input.format: text. Same workers, same
stages, same text bytes: the difference is what the formats add (reading
nested lists, the format checks, two language IDs per row, the prompt as the
dedup key).

    .venv/bin/python benchmarks/format_speed.py                 # 200,000 rows, 2 workers
    .venv/bin/python benchmarks/format_speed.py --rows 50000 --workers 4

Target (issue 14): chat per core >= half the text job's per core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from common import run_job  # noqa: E402
from dedupe_at_scale.sample.posttraining import generate_posttraining  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MB = 1e6


def conversation_texts(table: pa.Table) -> list[str]:
    """What the chat job reads as a row's text: user and assistant turns."""
    return [
        "\n\n".join(m["value"] for m in messages if m["from"] in ("human", "gpt") and m["value"])
        for messages in table.column("conversations").to_pylist()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        chat_dir, text_dir = root / "chat", root / "text"
        generate_posttraining(chat_dir, "chat", docs=args.rows, shards=args.shards, seed=0)
        text_dir.mkdir()
        total_bytes = 0
        for path in sorted(chat_dir.glob("*.parquet")):
            table = pq.read_table(path)
            texts = conversation_texts(table)
            total_bytes += sum(len(t.encode()) for t in texts)
            pq.write_table(
                pa.table({"id": table.column("id"), "text": pa.array(texts, pa.string())}),
                text_dir / path.name, row_group_size=1000, compression="zstd",
            )  # fmt: skip

        chat_spec = yaml.safe_load((ROOT / "jobs" / "chat.yaml").read_text())
        text_spec = {k: v for k, v in chat_spec.items() if k != "dedup"}
        text_spec["input"] = {"format": "text"}
        results = {}
        for name, input_dir, spec in (("text", text_dir, text_spec), ("chat", chat_dir, chat_spec)):
            results[name] = run_job(input_dir, root / f"out-{name}", args.workers, spec)

    mb = total_bytes / MB
    print(f"{args.rows} chat rows, {mb:.1f} MB of conversation text, {args.workers} workers")
    print(
        f"{'job':<6} {'wall s':>8} {'MB/s':>8} {'MB/s/core':>10} {'kept':>8}  busy seconds by stage"
    )
    per_core = {}
    for name, (wall, manifest) in results.items():
        per_core[name] = mb / wall / args.workers
        busy = manifest["timings"]["stage_busy_seconds"]
        stages = ", ".join(f"{k} {v:.1f}" for k, v in busy.items())
        print(
            f"{name:<6} {wall:>8.1f} {mb / wall:>8.2f} {per_core[name]:>10.2f} "
            f"{manifest['counts']['kept']:>8}  {stages}"
        )
    ratio = per_core["chat"] / per_core["text"]
    print(f"chat per core / text per core: {ratio:.2f} (target >= 0.50)")


if __name__ == "__main__":
    main()
