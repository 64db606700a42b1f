"""`tokens.count: all` against `tokens.count: kept` on the whole default job,
on real text and on generated text: the tokens stage's busy seconds and share
of the job's, and, per rejecting stage, the tokens it removed as counted
(all) against as estimated from bytes (kept), with the error.

    .venv/bin/python benchmarks/token_estimate.py                 # 50 MB real, 100,000 generated
    .venv/bin/python benchmarks/token_estimate.py --real-mb 100 --docs 0 --workers 2

Both runs of a corpus must write the same data/ (same n_tokens on every
kept row): the benchmark checks it from the manifests' kept tokens.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import run_job  # noqa: E402
from dedupe_at_scale.sample import generate_sample  # noqa: E402
from real_text import write_real_corpus  # noqa: E402

MODES = ("all", "kept")


def compare(name: str, input_dir: Path, work: Path, workers: int) -> None:
    manifests = {}
    walls = {}
    for mode in MODES:
        walls[mode], manifests[mode] = run_job(
            input_dir, work / f"{name}-{mode}", workers, {"tokens": {"count": mode}}
        )
    exact, estimated = manifests["all"], manifests["kept"]
    assert exact["tokens"]["kept"] == estimated["tokens"]["kept"], "kept rows counted differently"
    print(f"\n{name}: {exact['counts']['input']:,} documents, {workers} workers")
    print(f"{'tokens.count':<14}{'wall s':>8}{'busy s':>8}{'tokens s':>10}{'share':>8}")
    for mode in MODES:
        busy = manifests[mode]["timings"]["stage_busy_seconds"]
        total = sum(busy.values())
        print(f"{mode:<14}{walls[mode]:>8.1f}{total:>8.2f}{busy['tokens']:>10.2f}"
              f"{busy['tokens'] / total:>8.1%}")  # fmt: skip
    print(f"{'stage':<14}{'docs':>8}{'counted':>14}{'estimated':>14}{'error':>8}")
    rows = [("input tokens", exact["counts"]["input"], exact["tokens"]["input"],
             estimated["tokens"]["input"])]  # fmt: skip
    for stage, counts in exact["counts"]["stages"].items():
        if counts["rejected"]:
            guess = estimated["counts"]["stages"][stage]["tokens_rejected"]
            rows.append((stage, counts["rejected"], counts["tokens_rejected"], guess))
    for label, docs, counted, guess in rows:
        error = (guess - counted) / counted if counted else 0.0
        print(f"{label:<14}{docs:>8,}{counted:>14,}{guess:>14,}{error:>+8.1%}")
    section = estimated["tokens"]["estimated"]
    share = section["tokens"] / estimated["tokens"]["input"]
    print(f"estimated: {share:.1%} of the input tokens, from {section['from_bytes']:,} bytes "
          f"({section['sampled']} rejected rows counted: {section['tokens_per_byte_rejected']} "
          "tokens per byte)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-mb", type=float, default=50, help="0: no real-text run")
    parser.add_argument("--docs", type=int, default=100_000, help="0: no generated run")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="token-estimate-") as tmp:
        work = Path(tmp)
        if args.real_mb:
            write_real_corpus(work / "real", args.real_mb)
            compare("real text", work / "real", work, args.workers)
        if args.docs:
            generate_sample(work / "generated", docs=args.docs, shards=8, seed=1)
            compare("generated", work / "generated", work, args.workers)


if __name__ == "__main__":
    main()
