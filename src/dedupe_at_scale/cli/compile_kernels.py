"""`dedupe-at-scale compile`: the job's numba kernels compiled once, into
numba's cache, before any job runs.

A kernel missing from the cache is compiled by every worker process that
calls it, at the same time: on a fresh install the first job's workers
each spent 14 s of CPU on it (2 cores, language ID, quality rules, tokens
and MinHash), once per core of every new node. After this command they
load the kernels in under a second. `make install` and the Dockerfile run
it; the cache is numba's (next to the installed modules, or
NUMBA_CACHE_DIR), keyed by the source files and the CPU, so a node with
another CPU compiles again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa

from dedupe_at_scale.stages.annotate import Annotator
from dedupe_at_scale.stages.decontaminate import RESOURCE, DecontaminateStage, EvalItem, build_index
from dedupe_at_scale.stages.minhash import params_for, string_hashes
from dedupe_at_scale.steps.dedup import lsh

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig


def compile_kernels(cfg: JobConfig) -> dict[str, float]:
    """Seconds spent per part: each running stage's set-up (its warm-up
    calls its kernels with the types a job passes), numba's own,
    decontamination's, the dedup step's kernels, and the string hash the
    global steps share."""
    seconds = dict(Annotator(cfg).setup)
    # Off by default, and its stage needs the eval sets' index: one of a line.
    item = EvalItem("warm-up", "0", ["one two three four five six seven eight nine ten"])
    parts: dict[str, Callable[[], object]] = {
        "decontaminate": lambda: DecontaminateStage(
            cfg, {RESOURCE: build_index([item], cfg.decontaminate)}
        ).warm_up(),
        "string hash": lambda: string_hashes(pa.array(["ids, mixture, caps"])),
    }
    if cfg.dedup.enabled:
        parts["dedup step"] = lambda: lsh.warm_up(params_for(cfg.dedup).num_perm)
    for name, warm_up in parts.items():
        started = time.perf_counter()
        warm_up()
        seconds[name] = time.perf_counter() - started
    return seconds


def describe(seconds: dict[str, float]) -> str:
    parts = ", ".join(f"{name} {s:.1f}s" for name, s in seconds.items() if s >= 0.05)
    return (
        f"Compiled the job's kernels into numba's cache in {sum(seconds.values()):.1f}s ({parts})."
    )
