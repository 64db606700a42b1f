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
    """A piece in a mailbox's file: the file's record batches [first, end)."""

    path: str
    first: int
    end: int

    def read(self) -> pa.Table:
        with pa.ipc.open_file(pa.memory_map(self.path)) as reader:
            batches = [reader.get_batch(i) for i in range(self.first, self.end)]
            return pa.Table.from_batches(batches, reader.schema)


@ray.remote(num_cpus=0, max_restarts=0)
class Mailbox:
    """One mailbox: the pieces of the destinations it owns, per hop, until
    the hop is released; up to `memory_limit` bytes of them in memory (None:
    STORE_SHARE of its node's object store), the rest in files under
    `folder` (None: the node's temporary directory)."""

    def __init__(self, memory_limit: int | None = None, folder: str | None = None) -> None:
        self.pieces: dict[tuple[int, int], dict[int, pa.Table | OnDisk]] = defaultdict(dict)
        self.schemas: dict[int, pa.Schema] = {}
        self.released: set[int] = set()
        self.limit = _node_share() if memory_limit is None else memory_limit
        self.held = 0  # bytes of the pieces in memory
        self.folder = folder
        self.dir: str | None = None
        self.lock: int | None = None  # the open, locked LOCK file in self.dir
        self.files: dict[int, list[str]] = defaultdict(list)  # per hop

    def put(self, hop: int, src: int, dests: range, packed: pa.Table, counts: np.ndarray) -> int:
        """A sender's pieces for the destinations `dests`, one after another
        in `packed`, `counts[i]` rows for dests[i] (Outbox.send)."""
        if hop in self.released:
            raise ExchangeLost(f"hop {hop} was released before sender {src} finished")
        self.schemas.setdefault(hop, packed.schema)
        starts = np.concatenate([[0], np.cumsum(counts)])
        pieces = {
            dest: packed.slice(start, count)
            for dest, start, count in zip(dests, starts.tolist(), counts.tolist())
            if count
        }
        size = sum(piece.nbytes for piece in pieces.values())
        kept = (
            self._to_disk(hop, src, packed.schema, pieces)
            if self.held + size > self.limit
            else pieces
        )
        for dest, piece in kept.items():
            self._forget(self.pieces[hop, dest].get(src))  # a retried sender's own piece
            self.pieces[hop, dest][src] = piece
            if isinstance(piece, pa.Table):
                self.held += piece.nbytes
        return int(counts.sum())

    def take(self, hop: int, dest: int) -> list[pa.Table]:
        """The destination's pieces in sender order, as one table: one to
        serialize, not one a sender."""
        if hop in self.released:
            raise ExchangeLost(f"hop {hop} was released before receiver {dest} read it")
        by_src = self.pieces.get((hop, dest), {})
        tables = [_table(by_src[s]) for s in sorted(by_src)]
        if not tables:
            return [self.schemas[hop].empty_table()]
        return [pa.concat_tables(tables).combine_chunks()]

    def release(self, hop: int) -> None:
        self.released.add(hop)
        for key in [k for k in self.pieces if k[0] == hop]:
            for piece in self.pieces.pop(key).values():
                self._forget(piece)
        for path in self.files.pop(hop, []):
            os.unlink(path)

    def stats(self) -> dict[str, int | str | None]:
        """Bytes held in memory, files on disk and their folder."""
        files = sum(len(paths) for paths in self.files.values())
        return {"held": self.held, "files": files, "dir": self.dir}

    def close(self) -> None:
        """Remove the mailbox's files (before the exchange kills it)."""
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            os.close(self.lock)
            self.dir = self.lock = None

    def _to_disk(
        self, hop: int, src: int, schema: pa.Schema, pieces: dict[int, pa.Table]
    ) -> dict[int, OnDisk]:
        """One Arrow IPC file of the put's pieces, each a run of its batches."""
        where, count = {}, 0
        try:
            if self.dir is None:
                self.dir, self.lock = _own_folder(self.folder)
            path = os.path.join(self.dir, f"hop{hop}-src{src}-{len(self.files[hop])}.arrow")
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
                for dest, piece in pieces.items():
                    batches = piece.to_batches()
                    for batch in batches:
                        writer.write_batch(batch)
                    where[dest] = OnDisk(path, count, count + len(batches))
                    count += len(batches)
            self.files[hop].append(path)
        except OSError as exc:
            size = sum(piece.nbytes for piece in pieces.values())
            raise MailboxDiskError(
                f"a mailbox on node {ray.util.get_node_ip_address()} could not write "
                f"{size:,} bytes of an exchange past its memory ({self.limit:,} bytes) to "
                f"{self.dir or self.folder or tempfile.gettempdir()}: "
                f"{exc.strerror or exc}; free space there, or give Ray's workers a TMPDIR on "
                "a larger disk"
            ) from None
        return where

    def _forget(self, piece: pa.Table | OnDisk | None) -> None:
        if isinstance(piece, pa.Table):
            self.held -= piece.nbytes


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


def _table(piece: pa.Table | OnDisk) -> pa.Table:
    return piece.read() if isinstance(piece, OnDisk) else piece


def _node_share() -> int:
    """STORE_SHARE of this node's object store, split among its mailboxes."""
    node = ray.get_runtime_context().get_node_id()
    store = next(
        (n["Resources"].get("object_store_memory", 0) for n in ray.nodes() if n["NodeID"] == node),
        0,
    )
    return int(store * STORE_SHARE / MAILBOXES_PER_NODE)
