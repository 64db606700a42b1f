"""Busy seconds per stage on the same documents: an earlier commit against
this working tree, back to back on one machine.

    .venv/bin/python benchmarks/stage_busy.py --before fcacf0e --real-mb 280

Writes the real-text corpus (benchmarks/real_text.py) once as Parquet
shards, checks the `--before` commit out in a temporary git worktree, and
runs two jobs with each tree, alternating: the default job, and the
dedup-only job (language ID and quality off, so that MinHash and tokens see
every document). Each run is `dedupe-at-scale run` on a fresh local Ray of
--workers CPUs; the earlier commit's runs import its package from the
worktree (PYTHONPATH), with this virtualenv's libraries. The first run of
each tree compiles its kernels and is left out. Prints, per job and stage,
the median over --repeats of the manifest's busy seconds (summed over
workers, set-up apart), the ratio before / now, and whether `data/` came out
the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import run_job  # noqa: E402
from real_text import write_real_corpus  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
JOBS = {
    "default": None,
    "dedup-only": {"langid": {"enabled": False}, "quality": {"enabled": False}},
}


def data_digest(output: Path) -> str:
    """One digest of every data/ shard's bytes, in name order."""
    digest = hashlib.sha256()
    for shard in sorted((output / "data").rglob("*.parquet")):
        digest.update(shard.read_bytes())
    return digest.hexdigest()


def stage_seconds(manifest: dict, setup: bool = False) -> dict[str, float]:
    """The manifest's busy seconds per stage and the job's total; with
    `setup`, the stages' one-time set-up too, summed."""
    timings = manifest["timings"]
    seconds = dict(timings["stage_busy_seconds"])
    if setup:
        seconds["set-up"] = sum(timings["stage_setup_seconds"].values())
    return {**seconds, "job total": timings["wall_seconds"]["total"]}


def worktree(commit: str, where: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(where), commit],
        check=True,
        capture_output=True,
    )
    return where


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="the earlier commit")
    parser.add_argument("--real-mb", type=float, default=280)
    parser.add_argument("--shards", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dds-stage-busy-") as tmp:
        root = Path(tmp)
        docs = write_real_corpus(root / "input", args.real_mb, shards=args.shards)
        before = worktree(args.before, root / "before")
        try:
            envs = {
                args.before: {**os.environ, "PYTHONPATH": str(before / "src")},
                "now": {**os.environ, "PYTHONPATH": str(REPO / "src")},
            }
            print(f"{docs:,} documents (real text, {args.real_mb:g} MB, {args.shards} shards), "
                  f"{args.workers} workers; busy seconds per stage, median of {args.repeats}")  # fmt: skip
            busy: dict = {}  # (job, stage) -> tree -> seconds per run
            digests: dict = {}  # (job, tree) -> data/ digests
            output = root / "output"
            for repeat in range(args.repeats + 1):
                for job, spec in JOBS.items():
                    for tree, env in envs.items():
                        _, manifest = run_job(root / "input", output, args.workers, spec, env)
                        if repeat:  # the first run of each tree compiles its kernels
                            for stage, value in stage_seconds(manifest).items():
                                busy.setdefault((job, stage), {}).setdefault(tree, []).append(value)
                        digests.setdefault((job, tree), set()).add(data_digest(output))
                        shutil.rmtree(output)
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)],
                check=False,
                capture_output=True,
            )
    print(f"{'job':<11} {'stage':<10} {args.before:>10} {'now':>8} {'before/now':>11}")
    for (job, stage), trees in busy.items():
        old, new = (statistics.median(trees.get(t, [0.0])) for t in envs)
        ratio = f"{old / new:.2f}x" if new > 0.05 else "-"
        print(f"{job:<11} {stage:<10} {old:>10.2f} {new:>8.2f} {ratio:>11}")
    for job in JOBS:
        same = len(digests[(job, args.before)] | digests[(job, "now")]) == 1
        print(f"{job}: data/ the same bytes in every run of both trees: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    sys.exit(main())
