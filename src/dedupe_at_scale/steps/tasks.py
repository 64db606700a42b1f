"""Pieces shared by the global steps' Ray tasks: submitting a task with
several named returns, splitting a table into hash partitions (exchange.py
moves the pieces)."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

# Times one of the global steps' Ray tasks is re-run when its worker process
# dies (killed, OOM, node lost); errors raised by our code are not retried, as
# they would repeat. Ray Data's own tasks (read, annotate, write) keep Ray
# Data's default: retried on worker death without limit.
TASK_RETRIES = 4


@dataclass(frozen=True)
class Pieces:
    """A receiver's pieces of a hop, as object refs. `call` hands them to
    the task as top-level arguments, so that Ray starts the task once they
    exist: a task waiting inside ray.get gives its CPU back, and Ray starts
    another worker process (seconds of imports and model loads) for the next
    task in line. The task is wrapped by `takes_pieces`."""

    refs: tuple


@dataclass(frozen=True)
class _Spread:
    start: int
    count: int


@dataclass(frozen=True)
class _SpreadHeader:
    arguments: int  # how many arguments come before the pieces


def call(fn, n: int, *args) -> list:
    """Submit a remote function with `n` returns; always a list of refs.
    Pieces arguments travel as top-level refs (the task takes_pieces)."""
    head: list = []
    refs: list = []
    for arg in args:
        if isinstance(arg, Pieces):
            head.append(_Spread(len(refs), len(arg.refs)))
            refs.extend(arg.refs)
        else:
            head.append(arg)
    if any(isinstance(a, _Spread) for a in head):
        args = (_SpreadHeader(len(head)), *head, *refs)
    out = fn.options(num_returns=n).remote(*args)
    return [out] if n == 1 else list(out)


def takes_pieces(fn):
    """For a task given Pieces through `call`: each Pieces argument arrives
    as the list of its values (Ray resolved them before the task started)."""

    @functools.wraps(fn)
    def task(*args):
        if args and isinstance(args[0], _SpreadHeader):
            head, values = args[1 : 1 + args[0].arguments], args[1 + args[0].arguments :]
            args = tuple(
                list(values[a.start : a.start + a.count]) if isinstance(a, _Spread) else a
                for a in head
            )
        return fn(*args)

    del task.__wrapped__  # Ray checks arguments against the signature: (*args) here
    return task


def as_returns(pieces: list) -> Any:
    """A task's pieces as its returns (Ray wants one value when n is 1)."""
    return pieces[0] if len(pieces) == 1 else tuple(pieces)


def split(table: pa.Table, dest: np.ndarray, n: int) -> Split:
    """Rows of `table` split by destination index (0 to n - 1), each piece
    in row order."""
    return Split(table, dest, n)


class Split(Sequence):
    """A sender's rows by destination: piece i holds the rows for
    destination i, in row order. The objects exchange sends each piece as a
    table of its own; the mailboxes take `packed`, which makes one table a
    mailbox and none a piece. At G x G pieces a hop, a table a piece cost
    more than the rows in it (benchmarks/exchange.py)."""

    def __init__(self, table: pa.Table, dest: np.ndarray, n: int):
        dest = np.asarray(dest, np.int64)
        if len(dest) != table.num_rows:
            raise ValueError(f"{len(dest)} destinations for {table.num_rows} rows")
        if len(dest) and (dest.min() < 0 or dest.max() >= n):
            raise ValueError(f"destinations must be in [0, {n}): {dest.min()} to {dest.max()}")
        self.table, self.dest, self.n = table, dest, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):  # type: ignore[override]
        return self._pieces[i]

    def __iter__(self) -> Iterator[pa.Table]:
        return iter(self._pieces)

    @functools.cached_property
    def _pieces(self) -> list[pa.Table]:
        if self.n == 1:
            return [self.table]
        order = np.argsort(self.dest, kind="stable")
        bounds = np.searchsorted(self.dest[order], np.arange(self.n + 1))
        sorted_table = self.table.take(pa.array(order))
        return [sorted_table.slice(bounds[i], bounds[i + 1] - bounds[i]) for i in range(self.n)]

    def packed(self, boxes: int) -> list[tuple[pa.Table, np.ndarray]]:
        """Per mailbox b of `boxes` (owning destinations b, b + boxes, ...):
        the rows of its destinations, one destination after another, as one
        table, and each destination's row count. The same as concatenating
        the pieces of its destinations (tests/test_exchange.py holds the
        reference)."""
        owner = self.dest % boxes
        counts = np.bincount(self.dest, minlength=self.n)
        # By mailbox, then destination, then row: a stable sort on one key.
        owned = -(-self.n // boxes)  # destinations a mailbox owns, at most
        order = np.argsort(owner * owned + self.dest // boxes, kind="stable")
        ends = np.cumsum(np.bincount(owner, minlength=boxes))
        # A table a mailbox, not slices of one: a slice may be sent with the
        # buffers of the whole.
        return [
            (self.table.take(pa.array(order[end - count : end])).combine_chunks(), counts[b::boxes])
            for b, (count, end) in enumerate(zip(np.diff(ends, prepend=0), ends))
        ]


@dataclass(frozen=True)
class Returns:
    """The named returns of a task that has many, in order: (name, None) is
    one value, (name, n) a list of n values. The task packs its values by
    name, the caller unpacks the refs by name."""

    parts: tuple[tuple[str, int | None], ...]

    @property
    def count(self) -> int:
        return sum(1 if n is None else n for _, n in self.parts)

    def pack(self, **values: Any) -> Any:
        flat: list = []
        for name, n in self.parts:
            if n is not None and len(values[name]) != n:
                raise ValueError(f"{name}: {len(values[name])} values, declared {n}")
            flat += [values[name]] if n is None else list(values[name])
        return as_returns(flat)

    def unpack(self, refs: list) -> dict[str, Any]:
        out, at = {}, 0
        for name, n in self.parts:
            out[name] = refs[at] if n is None else refs[at : at + (n or 0)]
            at += 1 if n is None else n
        return out


def submit(fn, returns: Returns, *args) -> dict[str, Any]:
    """Submit a remote function and name its returns."""
    return returns.unpack(call(fn, returns.count, *args))


def sum_by_key(parts: list[dict[Any, Any]]) -> dict[Any, Any]:
    """Per key, the sum of the parts' values (numbers or numpy arrays); a
    fold for io/fanout.fold_refs. Sums of whole numbers (units, counts) are
    exact in float64 in any order."""
    total: dict[Any, Any] = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total
