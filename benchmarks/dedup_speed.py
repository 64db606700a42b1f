"""Wall time of the dedup-only job (language ID and quality rules off) on a
local Ray against the single-process datasketch MinHashLSH scripts
(baselines.py: plain, and with candidate verification), on the same data in
one run: generated documents, or real ones (real_text.py: long, multilingual,
code and tables) with --real-mb. The job runs three times: once starting its
own local Ray, as `make demo` does, then twice sent to a Ray that is already
running (one node of the same cores, cluster/local/start.sh), as jobs sent to a
cluster meet it: the first of those starts Ray's worker processes and loads
the stages, the second finds them up.

    .venv/bin/python benchmarks/dedup_speed.py --docs 200000
    .venv/bin/python benchmarks/dedup_speed.py --real-mb 280   # all of it here: 28,606 documents
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from baselines import datasketch_dedup, datasketch_s_curve, job_s_curve  # noqa: E402
from common import running_local_ray  # noqa: E402
from dedup_quality import run_job  # noqa: E402
from dedupe_at_scale.sample import generate_sample  # noqa: E402
from real_text import write_real_corpus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=32)
    parser.add_argument(
        "--real-mb", type=float, default=0, help="MB of real text instead of generated (--docs)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        input_dir = Path(tmp) / "in"
        if args.real_mb:
            args.docs = write_real_corpus(input_dir, args.real_mb, args.shards)
            corpus = f"real text, {args.real_mb:g} MB"
        else:
            generate_sample(input_dir, docs=args.docs, shards=args.shards, seed=4)
            corpus = "generated"
        cpus = os.cpu_count() or 1
        job_wall, job, sampler = run_job(input_dir, Path(tmp) / "out")
        with running_local_ray(cpus) as address:
            sent = [run_job(input_dir, Path(tmp) / f"sent{i}", "--address", address)
                    for i in (1, 2)]  # fmt: skip
        plain_wall, plain = datasketch_dedup(input_dir, verify=False)
        verified_wall, verified = datasketch_dedup(input_dir, verify=True)
    print(f"{args.docs} documents ({corpus}), {os.cpu_count()} cores")
    print(f"{'method':52} {'wall s':>8} {'docs/s':>9} {'removed':>8}")
    jobs = [
        (f"dedupe-at-scale job, starting a local Ray ({cpus} CPUs)", job_wall, job),
        ("  the same, sent to a running Ray, first job", sent[0][0], sent[0][1]),
        ("  the same, sent to a running Ray, next job", sent[1][0], sent[1][1]),
    ]
    for name, wall, result in jobs + [
        ("datasketch MinHashLSH, 1 process, plain", plain_wall, plain),
        ("datasketch MinHashLSH, 1 process, verified", verified_wall, verified),
    ]:
        removed = sum(1 for d in result["clusters"] if d not in result["kept"])
        print(f"{name:52} {wall:8.1f} {args.docs / wall:9.0f} {removed:8d}")
    print(f"S-curves: job {job_s_curve()}; both scripts {datasketch_s_curve()}")
    for name, wall, result in jobs:
        same = result == job
        print(f"speed-up, {name.strip()}: {plain_wall / wall:.1f}x over the plain script, "
              f"{verified_wall / wall:.1f}x over the verified one"
              + ("" if same else " (NOT the same duplicates as the first job)"))  # fmt: skip
    print("(wall time of the CLI command; the first job's includes starting Ray)")
    print(f"job peak memory, starting its own Ray: {sampler.summary()}")


if __name__ == "__main__":
    main()
