"""What grows with the number of input files: the job on 100, 1,000 and
10,000 files on a local S3 server (moto) reached through a loopback proxy
that adds --latency-ms to every request (benchmarks/s3_proxy.py), each size
run without and with the latency.

Prints, per run: wall seconds per phase (the manifest's), the requests the
driver made in each phase and those its Ray workers made, and, per size,
the wall time the latency added per file. The driver's requests are told
from the workers' by the process that owns the connection; phases are
placed in time backwards from the driver's write of manifest.json, with the
manifest's own phase durations.

Targets (issue 23): the latency adds under 5 ms per file on 2 cores, and
the driver's requests per phase stay flat as the files grow (listing aside).

    .venv/bin/python benchmarks/scale.py --files 100,1000
    .venv/bin/python benchmarks/scale.py                   # 100, 1,000, 10,000
    .venv/bin/python benchmarks/scale.py --files 1000 --config jobs/boilerplate.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from common import kernels_compiled  # noqa: E402
from dedupe_at_scale.sample import generate_sample  # noqa: E402
from s3_proxy import LatencyProxy, Request  # noqa: E402

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "scale-bench",
    "AWS_SECRET_ACCESS_KEY": "scale-bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def start_moto() -> tuple[subprocess.Popen, int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return server, port
        except OSError:
            if time.time() > deadline:
                raise SystemExit("moto server did not start") from None
            time.sleep(0.1)


def s3_client(port: int):
    import boto3

    return boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="scale-bench", aws_secret_access_key="scale-bench",
    )  # fmt: skip


def upload_files(client, files: int, docs_per_file: int, prefix: str, work: Path) -> None:
    """`files` Parquet files of `docs_per_file` generated documents each."""
    docs = files * docs_per_file
    generate_sample(work / prefix, docs=docs, shards=1, seed=files)
    table = pq.read_table(work / prefix)
    pieces = []
    for k in range(files):
        sink = pa.BufferOutputStream()
        pq.write_table(table.slice(k * docs_per_file, docs_per_file), sink)
        pieces.append((f"{prefix}/part-{k:06d}.parquet", sink.getvalue().to_pybytes()))

    def put(item: tuple[str, bytes]) -> None:
        client.put_object(Bucket="scale-in", Key=item[0], Body=item[1])

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(put, pieces))


def run_job(
    proxy: LatencyProxy, client, prefix: str, work: Path, extra: dict | None = None
) -> tuple[float, dict, list[Request], int]:
    """The job on the prefix's files through the proxy; `extra`: more of the
    job's config (e.g. steps turned on)."""
    config = work / f"{prefix}.yaml"
    settings = {**(extra or {}), "storage": {"endpoint_url": proxy.endpoint}}
    config.write_text(yaml.safe_dump(settings))
    kernels_compiled()
    proxy.reset()
    started = time.time()
    job = subprocess.Popen(
        [sys.executable, "-m", "dedupe_at_scale.cli", "run", "--input", f"s3://scale-in/{prefix}",
         "--output", f"s3://scale-out/{prefix}", "--config", str(config), "--num-cpus", "2",
         "--quiet", "--overwrite"],
        env={**os.environ, **CREDENTIALS}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    proxy.driver_pid = job.pid
    _, stderr = job.communicate()
    wall = time.time() - started
    if job.returncode != 0:
        raise SystemExit(f"job on {prefix} failed:\n{stderr[-3000:]}")
    manifest = json.loads(
        client.get_object(Bucket="scale-out", Key=f"{prefix}/manifest.json")["Body"].read()
    )
    return wall, manifest, proxy.reset(), job.pid


def phases_of(
    manifest: dict, requests: list[Request], driver: int
) -> list[tuple[str, float, float]]:
    """(phase, start, end) in wall-clock time, backwards from the driver's
    PUT of manifest.json (the end of publishing, near enough)."""
    written = [r.at for r in requests if r.pid == driver and r.method == "PUT"
               and r.path.split("?")[0].endswith("/manifest.json")]  # fmt: skip
    end = written[-1] if written else max(r.at for r in requests)
    timings = {k: v for k, v in manifest["timings"]["wall_seconds"].items() if k != "total"}
    spans = []
    for name in reversed(list(timings)):
        spans.append((name, end - timings[name], end))
        end -= timings[name]
    spans.reverse()
    first, *rest = spans
    return [
        (first[0], float("-inf"), first[2]),
        *rest[:-1],
        (rest[-1][0], rest[-1][1], float("inf")),
    ]


def report(
    files: int, latency_ms: float, wall: float, manifest: dict, requests, driver: int
) -> None:
    spans = phases_of(manifest, requests, driver)
    by_phase: Counter = Counter()
    workers = 0
    for r in requests:
        if r.pid != driver:
            workers += 1
            continue
        phase = next((name for name, start, end in spans if start <= r.at < end), spans[-1][0])
        by_phase[phase] += 1
    seconds = manifest["timings"]["wall_seconds"]
    cells = "  ".join(f"{name} {seconds[name]:.1f}s/{by_phase[name]}" for name, _, _ in spans)
    print(f"{files:>6} files {latency_ms:>3.0f} ms  wall {wall:6.1f} s  driver requests "
          f"{sum(by_phase.values()):>6}  workers {workers:>6}  | {cells}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", default="100,1000,10000")
    parser.add_argument("--docs-per-file", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument(
        "--config", type=Path, help="a job config (YAML) to run instead of the default job"
    )
    args = parser.parse_args()
    extra = yaml.safe_load(args.config.read_text()) if args.config else None
    sizes = [int(n) for n in args.files.split(",")]
    server, port = start_moto()
    proxy = LatencyProxy(port).start()
    try:
        client = s3_client(port)
        for bucket in ("scale-in", "scale-out"):
            client.create_bucket(Bucket=bucket)
        print(f"{'':>6} phase columns: wall seconds / driver requests in that phase "
              f"({args.docs_per_file} documents a file)")  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for files in sizes:
                upload_files(client, files, args.docs_per_file, f"f{files}", work)
                walls = {}
                for latency_ms in (0.0, args.latency_ms):
                    proxy.latency = latency_ms / 1000
                    wall, manifest, requests, driver = run_job(
                        proxy, client, f"f{files}", work, extra
                    )
                    walls[latency_ms] = wall
                    report(files, latency_ms, wall, manifest, requests, driver)
                added = (walls[args.latency_ms] - walls[0.0]) / files * 1000
                print(f"{files:>6} files: {args.latency_ms:g} ms per request added "
                      f"{added:.1f} ms of wall time per file (target < 5)")  # fmt: skip
    finally:
        proxy.stop()
        server.terminate()


if __name__ == "__main__":
    main()
