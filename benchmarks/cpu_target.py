"""Busy seconds per stage with numba's kernels compiled for this machine's
CPU (numba's default) and for portable targets, on the same documents.

    .venv/bin/python benchmarks/cpu_target.py --real-mb 280

numba's cache is keyed by the CPU it compiled for (name and features), so an
image built on one CPU model compiles again on nodes of another. A portable
target (NUMBA_CPU_NAME=generic, or a named x86-64 level with no extra
features) would make one cache serve every node; this measures what the
kernels lose for it. Each target gets a cache of its own, filled by
`dedupe-at-scale compile` (untimed); then the default job and the dedup-only
job (language ID and quality off) run on the real-text corpus
(benchmarks/real_text.py), --repeats times, the targets alternating and each
repeat starting with the next. Prints the median of the manifest's busy
seconds per stage (summed over workers, set-up apart), each against the
host's, whether any run compiled a kernel (a file added to its cache), and
whether data/ came out the same bytes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import kernels_compiled, run_job  # noqa: E402
from real_text import write_real_corpus  # noqa: E402
from stage_busy import JOBS, data_digest, stage_seconds  # noqa: E402

TARGETS = {
    "host": {},
    "x86-64-v3": {"NUMBA_CPU_NAME": "x86-64-v3", "NUMBA_CPU_FEATURES": ""},  # AVX2
    "generic": {"NUMBA_CPU_NAME": "generic"},
}


def cache_files(cache: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(cache))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--real-mb", type=float, default=280)
    parser.add_argument("--shards", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dds-cpu-target-") as tmp:
        root = Path(tmp)
        docs = write_real_corpus(root / "input", args.real_mb, shards=args.shards)
        envs = {
            name: {**os.environ, "NUMBA_CACHE_DIR": str(root / f"cache-{name}"), **target}
            for name, target in TARGETS.items()
        }
        for env in envs.values():
            kernels_compiled(env)
        print(f"{docs:,} documents (real text, {args.real_mb:g} MB, {args.shards} shards), "
              f"{args.workers} workers; busy seconds per stage, median of {args.repeats}")  # fmt: skip
        busy: dict = {}  # (job, stage) -> target -> seconds per run
        compiled: dict = {}  # target -> cache files added by the runs
        digests: dict = {}  # job -> data/ digests
        output = root / "output"
        for repeat in range(args.repeats):
            # Each repeat starts with another target: this machine's speed
            # drifts within minutes, which a fixed order would charge to one.
            order = list(envs)[repeat % len(envs) :] + list(envs)[: repeat % len(envs)]
            for job, spec in JOBS.items():
                for name in order:
                    env = envs[name]
                    before = cache_files(Path(env["NUMBA_CACHE_DIR"]))
                    _, manifest = run_job(root / "input", output, args.workers, spec, env)
                    added = cache_files(Path(env["NUMBA_CACHE_DIR"])) - before
                    compiled[name] = compiled.get(name, 0) + added
                    for stage, value in stage_seconds(manifest, setup=True).items():
                        busy.setdefault((job, stage), {}).setdefault(name, []).append(value)
                    digests.setdefault(job, set()).add(data_digest(output))
                    shutil.rmtree(output)
    names = list(TARGETS)
    print(f"{'job':<11} {'stage':<10} " + " ".join(f"{n:>10}" for n in names)
          + "  " + " ".join(f"{n + '/host':>15}" for n in names[1:]))  # fmt: skip
    for (job, stage), by_target in busy.items():
        medians = [statistics.median(by_target[n]) for n in names]
        if max(medians) < 0.05:
            continue
        ratios = [f"{m / medians[0]:.2f}x" for m in medians[1:]]
        print(f"{job:<11} {stage:<10} " + " ".join(f"{m:>10.2f}" for m in medians)
              + "  " + " ".join(f"{r:>15}" for r in ratios))  # fmt: skip
    for name in names:
        print(
            f"{name}: files the runs added to its cache (kernels compiled in a job): {compiled[name]}"
        )
    for job in JOBS:
        same = len(digests[job]) == 1
        print(f"{job}: data/ the same bytes for every target: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    sys.exit(main())
