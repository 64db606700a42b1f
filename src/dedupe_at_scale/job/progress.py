"""The job's own progress on the terminal, in place of Ray Data's bars (one
per operator, hundreds of lines on a demo run): a line when each phase ends,
and while annotation runs (the long phase) the read units staged so far with
the rate and the time left, counted by the tasks themselves."""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager, suppress
from typing import IO, TYPE_CHECKING

import ray

if TYPE_CHECKING:
    from collections.abc import Iterator

REDRAW_SECONDS = 0.5  # on a terminal: the bar is redrawn in place
LINE_SECONDS = 15.0  # elsewhere (a log file, CI): a new line this often
BAR_WIDTH = 24


@ray.remote(num_cpus=0)
class UnitCounter:
    """Units staged and their documents, told by the annotation tasks."""

    def __init__(self) -> None:
        self.units = self.documents = 0

    def add(self, documents: int) -> None:
        self.units += 1
        self.documents += documents

    def read(self) -> tuple[int, int]:
        return self.units, self.documents


class Progress:
    """What a run shows while it runs. Phases are timed by the pipeline;
    `units` is the annotate phase's bar, fed by a UnitCounter."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def phase_done(self, name: str, seconds: float) -> None:
        self._line(f"{name}: done in {seconds:.1f} s")

    @contextmanager
    def units(self, total: int, documents: int) -> Iterator[UnitCounter]:
        """A counter for the tasks to tell, shown until the block ends."""
        counter = UnitCounter.remote()
        started, stop = time.time(), threading.Event()

        def show() -> None:
            every = REDRAW_SECONDS if self.tty else LINE_SECONDS
            while not stop.wait(every):
                try:
                    self._bar(*ray.get(counter.read.remote()), total, documents, started)
                except Exception:  # the bar is a courtesy: the run decides, not it
                    return

        shower = threading.Thread(target=show, daemon=True, name="progress")
        shower.start()
        finished = False
        try:
            yield counter
            finished = True
        finally:
            stop.set()
            shower.join()
            if finished:  # after a failure the error is the last word
                self._bar(*ray.get(counter.read.remote()), total, documents, started, last=True)
            with suppress(Exception):  # Ray may be going down with the run
                ray.kill(counter)

    def _bar(self, units: int, docs: int, total: int, documents: int, started: float,
             last: bool = False) -> None:  # fmt: skip
        elapsed = max(time.time() - started, 1e-9)
        done = units / total if total else 1.0
        filled = round(BAR_WIDTH * done)
        rate = docs / elapsed
        left = (documents - docs) / rate if rate and not last else None
        text = (
            f"annotate [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {units}/{total} read units, "
            f"{docs:,} documents, {rate:,.0f} docs/s"
            + (f", about {left:.0f} s left" if left is not None else "")
        )
        if self.tty and not last:
            self.stream.write("\r" + text.ljust(100))
            self.stream.flush()
        else:
            self._line(text)

    def _line(self, text: str) -> None:
        self.stream.write(("\r" if self.tty else "") + text.ljust(100 if self.tty else 0) + "\n")
        self.stream.flush()
