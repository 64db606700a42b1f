"""Each phase's wall seconds, and the driver's own CPU seconds in it: its
process's, threads included (submitting tasks, gathering their results,
listing, reading footers). The driver's share is what must not grow with
the files or the partitions (docs/scaling.md); the wall time is what a user
waits for."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dedupe_at_scale.job.progress import Progress


class PhaseTimes:
    def __init__(self, **wall: float):
        self.wall: dict[str, float] = dict(wall)
        self.driver_cpu: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str, progress: Progress | None = None) -> Iterator[None]:
        """Time the block as phase `name` (also when it fails); the progress
        line only when it succeeds."""
        wall, cpu = time.time(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = round(time.time() - wall, 3)
            self.driver_cpu[name] = round(time.process_time() - cpu, 3)
        if progress is not None:
            progress.phase_done(name, self.wall[name])

    def drop(self, name: str) -> None:
        """A phase that turned out to have nothing to do."""
        self.wall.pop(name, None)
        self.driver_cpu.pop(name, None)
