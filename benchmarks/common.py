"""Shared by the benchmarks: run the CLI as a separate process and sample the
peak memory of its driver and of Ray's worker processes."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

SPILL_GLOB = "/tmp/ray/session_latest/ray_spilled_objects_*"


def _spilled_bytes() -> int:
    """Bytes in Ray's spill directories of the newest local session now."""
    total = 0
    for directory in glob.glob(SPILL_GLOB):
        try:
            total += sum(e.stat().st_size for e in os.scandir(directory) if e.is_file())
        except OSError:
            continue
    return total


class MemorySampler(threading.Thread):
    """Peak RSS of the job's driver process and of all Ray worker processes on
    this machine (run benchmarks on an otherwise idle machine), and a series
    of (time, driver, workers, spilled bytes) samples for per-phase peaks."""

    def __init__(self, driver_pid: int):
        super().__init__(daemon=True)
        self.driver_pid = driver_pid
        self.driver_peak = self.workers_peak = 0
        self.samples: list[tuple[float, int, int, int]] = []
        self.stop = threading.Event()

    def peaks_between(self, start: float, end: float) -> tuple[int, int, int]:
        """Peak driver RSS, workers' RSS and spilled bytes sampled in [start, end]."""
        inside = [s for s in self.samples if start <= s[0] <= end] or [(0.0, 0, 0, 0)]
        return tuple(max(s[i] for s in inside) for i in (1, 2, 3))  # type: ignore[return-value]

    def run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self.stop.is_set():
            driver = 0
            workers = 0
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
                except (OSError, ValueError):
                    continue
                if int(pid) == self.driver_pid:
                    driver = rss
                elif b"ray::" in cmd or b"default_worker.py" in cmd:
                    workers += rss
            self.driver_peak = max(self.driver_peak, driver)
            self.workers_peak = max(self.workers_peak, workers)
            self.samples.append((time.time(), driver, workers, _spilled_bytes()))
            time.sleep(0.2)

    def summary(self) -> str:
        return (
            f"driver {self.driver_peak / 2**20:.0f} MiB, "
            f"Ray workers (sum) {self.workers_peak / 2**20:.0f} MiB"
        )


_COMPILE_KEYS = ("PYTHONPATH", "NUMBA_CACHE_DIR", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")
_COMPILED: set[tuple[str, ...]] = set()


def kernels_compiled(env: dict[str, str] | None = None) -> None:
    """`dedupe-at-scale compile` once per source tree (PYTHONPATH), before
    its first timed job: after an edit of a kernel's file, or in a fresh
    worktree, numba's cache misses, and the first job's workers compiled
    the kernels inside its time (36.0 s against 20.2 s the next run, on
    dedup_speed.py --real-mb 280). A tree older than the command is left
    as it is. Once per cache as well: numba's (NUMBA_CACHE_DIR) and the
    CPU it compiles for (NUMBA_CPU_NAME, NUMBA_CPU_FEATURES)."""
    env_now = env if env is not None else os.environ
    key = tuple(env_now.get(k, "") for k in _COMPILE_KEYS)
    if key in _COMPILED:
        return
    _COMPILED.add(key)
    done = subprocess.run(
        [sys.executable, "-m", "dedupe_at_scale.cli", "compile"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0 and "invalid choice: 'compile'" not in done.stderr:
        raise SystemExit(f"dedupe-at-scale compile failed:\n{done.stderr[-3000:]}")


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[float, MemorySampler]:
    """`dedupe-at-scale ARGS` in a new process (in `env`, else this one's):
    (wall seconds, memory peaks). A run's kernels are compiled first, untimed."""
    if args[:1] == ("run",):
        kernels_compiled(env)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dedupe_at_scale.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    sampler = MemorySampler(proc.pid)
    sampler.start()
    code = proc.wait()
    sampler.stop.set()
    if code != 0:
        raise SystemExit(f"dedupe-at-scale {' '.join(args)} failed with exit code {code}")
    return time.perf_counter() - started, sampler


CLUSTER_SCRIPTS = Path(__file__).resolve().parent.parent / "cluster" / "local"


@contextmanager
def running_local_ray(cpus: int) -> Iterator[str]:
    """A Ray that is already running when the job starts, as on a cluster that
    jobs are sent to: one node of `cpus` CPUs on this machine
    (cluster/local/start.sh), with Ray's local defaults for memory (70%) and
    object store (30%). Yields its address for `run --address`."""
    total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "RAY": str(bin_dir / "ray"), "PYTHON": sys.executable}
    with tempfile.TemporaryDirectory() as state:
        subprocess.run(
            ["bash", str(CLUSTER_SCRIPTS / "start.sh"), "--workers", "0", "--cpus", str(cpus),
             "--memory", f"{total_gb * 0.7:.1f}", "--object-store", f"{total_gb * 0.3:.1f}",
             "--state", state],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        temp_dir = Path(state, "temp_dir").read_text().strip()
        try:
            yield Path(state, "address").read_text().strip()
        finally:
            subprocess.run(["bash", str(CLUSTER_SCRIPTS / "stop.sh"), "--state", state],
                           env=env, check=False, stdout=subprocess.DEVNULL)  # fmt: skip
            shutil.rmtree(temp_dir, ignore_errors=True)


# One driver, one local Ray (started as the CLI starts it), the default job
# run `runs` times on the same input: prints each run's manifest total.
_AGAIN = """
import json, shutil, sys
from dedupe_at_scale.cli.ray_cluster import connect
from dedupe_at_scale.config import JobConfig
from dedupe_at_scale.job.pipeline import run_job
source, output, workers, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
connect(None, workers)
totals = []
for _ in range(runs):
    shutil.rmtree(output, ignore_errors=True)
    result = run_job(source, output, JobConfig())
    totals.append(result.manifest["timings"]["wall_seconds"]["total"])
print(json.dumps(totals))
"""


def job_totals_in_one_driver(input_dir: Path, output: Path, workers: int, runs: int = 2) -> list:
    """The default job `runs` times in one driver on one local Ray: the
    manifest's total of each. From the second on, Ray's worker processes
    exist and hold their models (the state every task after a worker's first
    is in): what a job's fixed costs are is the first minus the second."""
    args = [str(input_dir), str(output), str(workers), str(runs)]
    kernels_compiled()
    done = subprocess.run([sys.executable, "-c", _AGAIN, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the job twice in one driver failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_job(
    input_dir: Path,
    output: Path,
    workers: int,
    spec: dict | None = None,
    env: dict[str, str] | None = None,
) -> tuple[float, dict]:
    """`dedupe-at-scale run` on a local Ray of `workers` CPUs, with `spec` as
    its job config (written beside the output) when given, in `env` when
    given: (wall seconds, the manifest)."""
    config: list[str] = []
    if spec is not None:
        path = output.parent / f"{output.name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        config = ["--config", str(path)]
    wall, _ = run_cli(
        "run", "--input", str(input_dir), "--output", str(output), *config,
        "--num-cpus", str(workers), "--overwrite", "--quiet", env=env,
    )  # fmt: skip
    return wall, json.loads((output / "manifest.json").read_text())
