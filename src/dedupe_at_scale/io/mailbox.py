"""The exchange's mailbox actor (steps/exchange.py), apart from the steps so
that its process imports Ray and Arrow only: importing anything under
steps/ imports every step, 2 s more of CPU for each mailbox started."""

from __future__ import annotations

import fcntl
import glob
import logging
import os
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import ray

# What a node's mailboxes together hold in memory, as a share of its object
# store: a sender's pieces arrive through the store, and held pieces pin it
# (Arrow reads them without a copy). Past it, pieces go to a file on the
# node's disk: at 5M documents dedup's verify hop is 15.6 GB against a 7 GB
# store, which Ray then spilled and restored object by object.
STORE_SHARE = 0.25
MAILBOXES_PER_NODE = 2
PREFIX = "dds-mailbox-"
# Held locked (flock) by the mailbox that owns the folder, for its lifetime:
# the kernel drops the lock when that process dies, however it dies.
LOCK = ".owner"
MAKING = ".dds-mailbox-making-"

log = logging.getLogger(__name__)


class ExchangeLost(RuntimeError):
    """A hop's pieces are gone: its mailbox died or was already released."""


class MailboxDiskError(RuntimeError):
    """A mailbox could not write the pieces past its memory to its node's disk."""


@dataclass(frozen=True)
class OnDisk:
    """A put's rows in a mailbox's file (Arrow IPC, one file a put)."""

    path: str

    def read(self) -> pa.Table:
        """The rows, memory-mapped: slices of them are read without a copy."""
        with pa.ipc.open_file(pa.memory_map(self.path)) as reader:
            return reader.read_all()


@dataclass(frozen=True)
class Put:
    """What one sender put for a hop: its destinations' pieces one after
    another (`rows`, in memory or in a file), the i-th destination's at rows
    starts[i] to starts[i + 1]. Kept whole: cutting it into a table a piece
    here cost more than all else a piece costs (docs/scaling.md)."""

    rows: pa.Table | OnDisk
    starts: np.ndarray


@dataclass(frozen=True)
class Senders:
    """A hop's puts in sender order, and where each destination's rows
    start in each (a row a sender), made at the hop's first take."""

    rows: list[pa.Table]  # memory-mapped where a put is in a file
    first: np.ndarray  # destinations x senders: where its rows start
    count: np.ndarray  # destinations x senders: how many


@ray.remote(num_cpus=0, max_restarts=0)
class Mailbox:
    """One mailbox: the pieces of the destinations it owns, per hop, until
    the hop is released; up to `memory_limit` bytes of them in memory (None:
    STORE_SHARE of its node's object store), the rest in files under
    `folder` (None: the node's temporary directory)."""

    def __init__(self, memory_limit: int | None = None, folder: str | None = None) -> None:
        self.puts: dict[int, dict[int, Put]] = defaultdict(dict)  # hop -> sender -> put
        self.dests: dict[int, range] = {}  # the destinations it owns, per hop
        self.senders: dict[int, Senders] = {}  # per hop, made at its first take
        self.schemas: dict[int, pa.Schema] = {}
        self.released: set[int] = set()
        self.limit = _node_share() if memory_limit is None else memory_limit
        self.held = 0  # bytes of the puts in memory
        self.folder = folder
        self.dir: str | None = None
        self.lock: int | None = None  # the open, locked LOCK file in self.dir
        self.files: dict[int, list[str]] = defaultdict(list)  # per hop

    def put(self, hop: int, src: int, dests: range, packed: pa.Table, counts: np.ndarray) -> int:
        """A sender's pieces for the destinations `dests`, one after another
        in `packed`, `counts[i]` rows for dests[i] (Outbox.send)."""
        if hop in self.released:
            raise ExchangeLost(f"hop {hop} was released before sender {src} finished")
        if self.dests.setdefault(hop, dests) != dests:
            raise ValueError(f"hop {hop}: sender {src} put {dests}, others {self.dests[hop]}")
        self.schemas.setdefault(hop, packed.schema)
        self._forget(self.puts[hop].pop(src, None))  # a retried sender's own put
        self.senders.pop(hop, None)
        if packed.num_rows:
            size = packed.nbytes
            rows = self._to_disk(hop, src, packed) if self.held + size > self.limit else packed
            if isinstance(rows, pa.Table):
                self.held += size
            self.puts[hop][src] = Put(rows, np.concatenate([[0], np.cumsum(counts)]))
        return int(counts.sum())

    def take(self, hop: int, dest: int) -> list[pa.Table]:
        """The destination's pieces in sender order, as one table: one to
        serialize, not one a sender."""
        if hop in self.released:
            raise ExchangeLost(f"hop {hop} was released before receiver {dest} read it")
        senders = self._senders(hop)
        tables = []
        if senders.rows and dest in self.dests[hop]:
            at = self.dests[hop].index(dest)
            some = np.flatnonzero(senders.count[at])
            starts, counts = senders.first[at, some].tolist(), senders.count[at, some].tolist()
            for i, start, n in zip(some.tolist(), starts, counts):
                tables.append(senders.rows[i].slice(start, n))
        if not tables:
            return [self.schemas[hop].empty_table()]
        return [pa.concat_tables(tables).combine_chunks()]

    def release(self, hop: int) -> None:
        self.released.add(hop)
        for put in self.puts.pop(hop, {}).values():
            self._forget(put)
        self.senders.pop(hop, None)
        for path in self.files.pop(hop, []):
            os.unlink(path)

    def stats(self) -> dict[str, int | str | None]:
        """Bytes held in memory, files on disk and their folder."""
        files = sum(len(paths) for paths in self.files.values())
        return {"held": self.held, "files": files, "dir": self.dir}

    def close(self) -> None:
        """Remove the mailbox's files (before the exchange kills it)."""
        self.senders.clear()  # their files' memory maps
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            os.close(self.lock)
            self.dir = self.lock = None

    def _to_disk(self, hop: int, src: int, packed: pa.Table) -> OnDisk:
        """The put's rows as one Arrow IPC file."""
        try:
            if self.dir is None:
                self.dir, self.lock = _own_folder(self.folder)
            path = os.path.join(self.dir, f"hop{hop}-src{src}-{len(self.files[hop])}.arrow")
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, packed.schema) as writer:
                writer.write_table(packed)
            self.files[hop].append(path)
        except OSError as exc:
            raise MailboxDiskError(
                f"a mailbox on node {ray.util.get_node_ip_address()} could not write "
                f"{packed.nbytes:,} bytes of an exchange past its memory ({self.limit:,} bytes) "
                f"to {self.dir or self.folder or tempfile.gettempdir()}: "
                f"{exc.strerror or exc}; free space there, or give Ray's workers a TMPDIR on "
                "a larger disk"
            ) from None
        return OnDisk(path)

    def _senders(self, hop: int) -> Senders:
        if hop not in self.senders:
            puts = [put for _, put in sorted(self.puts.get(hop, {}).items())]
            starts = (
                np.stack([put.starts for put in puts]).T if puts else np.zeros((1, 0), np.int64)
            )
            self.senders[hop] = Senders(
                [p.rows if isinstance(p.rows, pa.Table) else p.rows.read() for p in puts],
                np.ascontiguousarray(starts[:-1]),
                np.ascontiguousarray(np.diff(starts, axis=0)),
            )
        return self.senders[hop]

    def _forget(self, put: Put | None) -> None:
        if put is not None and isinstance(put.rows, pa.Table):
            self.held -= put.rows.nbytes


def lock_is_free(path: str) -> bool:
    """Whether no live process holds the mailbox lock file at `path` (False
    when it cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:  # its mailbox is alive
        return False
    finally:
        os.close(fd)  # drops the lock taken, if any


def _own_folder(parent: str | None) -> tuple[str, int]:
    """A new folder for this mailbox's files, locked as its own, after
    removing the folders of mailboxes that died without close() (their lock
    is free): a step run again after a lost mailbox needs that disk again."""
    parent = parent or tempfile.gettempdir()
    for stale in glob.glob(os.path.join(parent, PREFIX + "*", LOCK)):
        if not lock_is_free(stale):
            continue
        log.warning("removing %s, left by a mailbox that died", os.path.dirname(stale))
        shutil.rmtree(os.path.dirname(stale), ignore_errors=True)
    # Made under a name the sweep does not match, and renamed once locked:
    # no other mailbox can see it unlocked.
    making = tempfile.mkdtemp(prefix=MAKING, dir=parent)
    fd = os.open(os.path.join(making, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    folder = os.path.join(parent, PREFIX + os.path.basename(making)[len(MAKING) :])
    os.rename(making, folder)
    return folder, fd


def _node_share() -> int:
    """STORE_SHARE of this node's object store, split among its mailboxes."""
    node = ray.get_runtime_context().get_node_id()
    store = next(
        (n["Resources"].get("object_store_memory", 0) for n in ray.nodes() if n["NodeID"] == node),
        0,
    )
    return int(store * STORE_SHARE / MAILBOXES_PER_NODE)
