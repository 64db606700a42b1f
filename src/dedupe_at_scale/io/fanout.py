"""Per-file storage work in Ray tasks, not on the driver.

Reading a footer, a small JSON file or moving a shard is a few requests per
file; on the driver, one file after another (or 16 threads at a time), that
grows with the files: 10,000 files x 3 requests x 20 ms is 10 minutes. Here
each task takes a run of consecutive files and works through them with
threads, so the driver submits files / CHUNK tasks and makes no storage
request of its own. Without a Ray connection (tools, tests of io/ alone) the
same work runs in local threads.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import ray
from ray.exceptions import RayTaskError

if TYPE_CHECKING:
    from dedupe_at_scale.io.storage import Location

T = TypeVar("T")
U = TypeVar("U")
CHUNK = 128  # files per task
FAN_IN = 32  # parts a fold task folds
THREADS = 16  # requests in flight per task
TASK_CPUS = 0.25  # waiting on storage, mostly
# A task over one small file on an object store waits on its requests (tens
# of ms each) longer than it computes: with many such files, each task takes
# TASK_CPUS, so that more requests are in flight than there are cores. Not
# for a few files, nor on local disk: every phase that runs more tasks than
# cores starts that many more workers (seconds each), which only many
# waiting files repay.
SMALL_FILE_BYTES = 8 << 20
MANY_FILES = 32


def map_files(
    location: Location, paths: Sequence[U], fn: Callable[[Location, U], T],
    chunk: int = CHUNK, in_tasks: bool = True,
) -> list[T]:  # fmt: skip
    """`fn(location, path)` for every path (or what stands for one, e.g. a
    path and its size), in order; in tasks when Ray is up and `in_tasks`. An
    error `fn` raises in a task is raised here as itself."""
    if not paths:
        return []
    if not (in_tasks and ray.is_initialized()):
        return _run(location, paths, fn)
    runs = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    parts = _get([_task.remote(location, run, fn) for run in runs])
    return [result for part in parts for result in part]


def fold_files(
    location: Location, paths: Sequence[U], fn: Callable[[Location, U], T],
    fold: Callable[[list[T]], T], chunk: int = CHUNK, fan_in: int = FAN_IN,
) -> T:  # fmt: skip
    """fold([fn(location, path) for path in paths]) where `fold` takes its
    own results as parts (fold([fold(a), fold(b)]) == fold(a + b)): tasks
    fold runs of files, then tasks fold those, fan_in at a time, and the
    driver folds the last fan_in or fewer. What the driver holds is a few
    folded parts, however many files there are. Runs stay in path order."""
    if not (paths and ray.is_initialized()):
        return fold(_run(location, paths, fn))
    runs = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    return fold_refs([_fold_task.remote(location, run, fn, fold) for run in runs], fold, fan_in)


def fold_refs(refs: list[ray.ObjectRef], fold: Callable[[list[T]], T], fan_in: int = FAN_IN) -> T:
    """fold(ray.get(refs)), `fold` as for fold_files: tasks fold runs of
    fan_in results, in order, until the driver gets fan_in or fewer."""
    while len(refs) > fan_in:
        refs = [_refold.remote(fold, *refs[i : i + fan_in]) for i in range(0, len(refs), fan_in)]
    return fold(_get(refs))


def _get(refs: list[ray.ObjectRef]) -> list[Any]:
    """The tasks' results; an error a task raised is raised here as itself."""
    try:
        return ray.get(refs)
    except RayTaskError as error:
        if isinstance(error.cause, Exception):
            raise error.cause from error
        raise


def file_task_cpus(location: Location, sizes: Collection[int]) -> float:
    """CPUs for a task that reads (or writes) one of these files: TASK_CPUS
    for many small files on remote storage, a whole core otherwise."""
    small = bool(sizes) and sum(sizes) / len(sizes) < SMALL_FILE_BYTES
    if small and len(sizes) >= MANY_FILES and not location.is_local:
        return TASK_CPUS
    return 1.0


def in_threads(fn: Callable[[U], T], items: Sequence[U]) -> list[T]:
    """`fn(item)` for every item, THREADS at a time, results in order; the
    first error is raised as itself. Inside a task, for its files' requests."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(THREADS, len(items))) as pool:
        return list(pool.map(fn, items))


def _run(location: Location, paths: Sequence[Any], fn: Callable[[Location, Any], Any]) -> list[Any]:
    return in_threads(lambda path: fn(location, path), paths)


@ray.remote(num_cpus=TASK_CPUS, max_retries=4)
def _task(
    location: Location, paths: Sequence[Any], fn: Callable[[Location, Any], Any]
) -> list[Any]:
    location.refresh()  # listings cached in the pickled filesystem are stale here
    return _run(location, paths, fn)


# Folding parses and merges every file it reads (JSON, mostly): a core's work.
@ray.remote(max_retries=4)
def _fold_task(
    location: Location, paths: Sequence[Any], fn: Callable[[Location, Any], Any],
    fold: Callable[[list[Any]], Any],
) -> Any:  # fmt: skip
    location.refresh()
    return fold(_run(location, paths, fn))


@ray.remote(max_retries=4)
def _refold(fold: Callable[[list[Any]], Any], *parts: Any) -> Any:
    return fold(list(parts))
