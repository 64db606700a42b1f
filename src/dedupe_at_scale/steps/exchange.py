"""The all-to-all hops of the global steps: n senders, each splitting its rows
into one piece per destination, and n receivers, each concatenating its
pieces in sender order.

Two ways to move the pieces, with the same result:

  objects   each piece is a Ray object the driver owns: senders x receivers
            objects per hop, rebuilt from lineage if a node is lost. The
            driver's memory grows with them (about 11 KB per object,
            benchmarks/objects.py): fine for a few thousand, not for the
            10^8 a billion documents would make.
  mailboxes a pool of mailbox actors (the shape of Ray Data's hash-shuffle
            aggregators) each owns every A-th destination; a sender puts its
            pieces into them from inside its task, one table a mailbox, and
            returns one small ack; a receiver takes its pieces from inside
            its task, as one table. The driver holds
            one ref per sender and per receiver. A mailbox holds its pieces
            until the hop is released, in memory up to a share of its node's
            object store and in a file on its node past it (io/mailbox.py);
            a lost mailbox fails the hop with
            ExchangeLost and the step runs again from its staged files (see
            run_with_mailboxes).

`auto` picks mailboxes for the whole step once a hop would pass more than
AUTO_MAX_OBJECTS pieces; a step that began with objects starts its mailboxes
for a hop whose bytes, known only once the step runs (dedup's verify hop,
from the candidate pairs), could be more than AUTO_STORE_SHARE of the
cluster's object store: objects that large would be spilled and restored.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow as pa
import ray
from ray.exceptions import RayActorError, RayTaskError

from dedupe_at_scale.io.mailbox import MAILBOXES_PER_NODE, ExchangeLost, Mailbox
from dedupe_at_scale.steps.tasks import Pieces, Split

log = logging.getLogger(__name__)

AUTO_MAX_OBJECTS = 20_000
# A hop's bytes are known only as a bound (dedup's verify: 16 bytes and a
# signature a candidate pair) that overstates them (signatures sent: 67-85%
# of the pairs from 1M to 5M generated documents), so a bound past the whole
# store is a hop of about Ray's spilling threshold (80%) or more. Below it
# objects are faster: at 2M (5.5 GB bound, 7.1 GB store) verify took 18.2 s
# with objects, 20.6 s with mailboxes (docs/scaling.md).
AUTO_STORE_SHARE = 1.0
MAILBOX_ATTEMPTS = 3
T = TypeVar("T")


@dataclass(frozen=True)
class Outbox:
    """What a sender task is given: `send(pieces)` is what the task returns
    for the hop (the pieces themselves, or one ack)."""

    mailboxes: tuple | None
    hop: int
    src: int

    def send(self, pieces: Split) -> list:
        """The sender's returns for the hop (`pieces` from tasks.split): its
        pieces, or one ack (rows sent)."""
        if self.mailboxes is None:
            return list(pieces)
        # One table a mailbox, its destinations' pieces one after another,
        # and their row counts: sent as tables of their own, a hop's small
        # pieces cost 0.26 core-ms each whatever their bytes, packed 0.03,
        # and 0.011 since no table is made a piece (benchmarks/exchange.py).
        boxes = self.mailboxes
        packs = pieces.packed(len(boxes))
        acks = [
            box.put.remote(self.hop, self.src, dests, packed, counts)
            for box, dests, (packed, counts) in zip(boxes, _owned(len(pieces), len(boxes)), packs)
        ]
        return [sum(ray.get(acks))]


def _owned(destinations: int, boxes: int) -> list[range]:
    """The destinations each mailbox owns: every `boxes`-th from its index
    (senders put there, Hop.inboxes sends receivers there)."""
    return [range(b, destinations, boxes) for b in range(boxes)]


@dataclass(frozen=True)
class Inbox:
    """What a receiver task is given; `receive` reads its pieces."""

    mailbox: Any
    hop: int
    dest: int

    def receive(self) -> list[pa.Table]:
        return ray.get(self.mailbox.take.remote(self.hop, self.dest))


def receive(pieces: Any) -> pa.Table:
    """A receiver's pieces concatenated in sender order: the tables (Pieces
    that tasks.call resolved), an Inbox, or Pieces not passed through call."""
    if isinstance(pieces, Inbox):
        tables = pieces.receive()
    elif isinstance(pieces, Pieces):
        tables = ray.get(list(pieces.refs))
    else:
        tables = list(pieces)
    return pa.concat_tables(tables)


class Hop:
    """One all-to-all hop as the driver sees it: hand `outbox(src)` to each
    sender (declaring `returns` values for it), then `inboxes(sent)` gives
    each receiver its argument."""

    def __init__(self, exchange: Exchange, n_dst: int):
        self.n_dst = n_dst
        self.id = next(exchange.hop_ids)
        # The pool as it was when the hop began: a later hop may start it.
        self.mailboxes = exchange.mailboxes

    @property
    def returns(self) -> int:
        """Values a sender returns for this hop."""
        return self.n_dst if self.mailboxes is None else 1

    def outbox(self, src: int) -> Outbox:
        return Outbox(self.mailboxes, self.id, src)

    def inboxes(self, sent: list[list]) -> list:
        """Per receiver: its Pieces (refs) or its Inbox. `sent` is each
        sender's returns for this hop; with mailboxes, waits for them."""
        boxes = self.mailboxes
        if boxes is None:
            return [Pieces(tuple(s[d] for s in sent)) for d in range(self.n_dst)]
        ray.get([s[0] for s in sent])
        inboxes: list = [None] * self.n_dst
        for box, dests in zip(boxes, _owned(self.n_dst, len(boxes))):
            for dest in dests:
                inboxes[dest] = Inbox(box, self.id, dest)
        return inboxes

    def release(self) -> None:
        """Drop the hop's pieces; only once its receivers have finished.
        Waits until every mailbox has dropped them, so that a receiver asking
        later (rebuilt from lineage) is refused, not served by a mailbox the
        release has not reached yet."""
        ray.get([box.release.remote(self.id) for box in self.mailboxes or ()])


class Exchange:
    """The hops of one step, sharing one pool of mailboxes (or none)."""

    def __init__(
        self,
        mailboxes: int,
        memory_limit: int | None = None,
        folder: str | None = None,
        on_demand: int = 0,
    ):
        """`memory_limit`: bytes a mailbox holds in memory before it writes
        pieces to files under `folder` on its node (None: io/mailbox.py's
        share of the store; the node's temporary directory). `on_demand`:
        with no mailboxes, how many to start for a hop too large for the
        object store (0: never)."""
        self.hop_ids = itertools.count()
        self.mailboxes: tuple | None = None
        self.on_demand, self.memory_limit, self.folder = on_demand, memory_limit, folder
        if mailboxes:
            self._start(mailboxes)

    def _start(self, mailboxes: int) -> None:
        box = Mailbox.options(scheduling_strategy="SPREAD")
        self.mailboxes = tuple(box.remote(self.memory_limit, self.folder) for _ in range(mailboxes))

    def hop(self, n_dst: int, most_bytes: int = 0) -> Hop:
        """A hop to `n_dst` receivers; `most_bytes`: what it can carry at most
        (an upper bound), past AUTO_STORE_SHARE of the cluster's object store
        the on-demand mailboxes start, for this hop and the step's later ones."""
        if self.mailboxes is None and self.on_demand and most_bytes > store_budget():
            log.info("a hop of up to %d bytes: starting %d mailboxes", most_bytes, self.on_demand)
            self._start(self.on_demand)
        return Hop(self, n_dst)

    def close(self) -> None:
        boxes = self.mailboxes or ()
        # Their files first; a mailbox already lost has none to remove here.
        for done in [box.close.remote() for box in boxes]:
            with contextlib.suppress(RayActorError):
                ray.get(done)
        for box in boxes:
            ray.kill(box)


def mailbox_count(mode: str, largest_hop: int, destinations: int) -> int:
    """Mailboxes for a step whose largest hop passes `largest_hop` pieces to
    at most `destinations` receivers: 0 means objects. Two per node, so that
    each holds a small share of a hop, at most one per destination."""
    if mode == "objects" or (mode == "auto" and largest_hop <= AUTO_MAX_OBJECTS):
        return 0
    return pool_size(destinations)


def mailbox_counts(mode: str, largest_hop: int, destinations: int) -> tuple[int, int]:
    """(mailboxes a step starts with, mailboxes it may start on demand):
    `auto` that began with objects keeps a pool ready for a hop too large
    for the object store (Exchange.hop)."""
    boxes = mailbox_count(mode, largest_hop, destinations)
    return boxes, pool_size(destinations) if mode == "auto" and not boxes else 0


def pool_size(destinations: int) -> int:
    """Two mailboxes per live node, at most one per destination."""
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return max(1, min(destinations, MAILBOXES_PER_NODE * nodes))


def store_budget() -> float:
    """Bytes a hop may carry as objects: AUTO_STORE_SHARE of the cluster's
    object store (all nodes)."""
    return AUTO_STORE_SHARE * ray.cluster_resources().get("object_store_memory", 0.0)


def _lost(error: BaseException) -> bool:
    """Whether a failure is a lost mailbox, however deep in task errors."""
    while True:
        if isinstance(error, (RayActorError, ExchangeLost)):
            return True
        cause = getattr(error, "cause", None)
        if not isinstance(error, RayTaskError) or cause is None or cause is error:
            return False
        error = cause


def run_with_mailboxes(
    name: str, mailboxes: int, body: Callable[[Exchange], T], on_demand: int = 0
) -> T:
    """Run a step's hops over a fresh Exchange; when a mailbox is lost (its
    node died), run the whole step again: its inputs are staged files, and
    its output does not depend on how often it ran."""
    for attempt in range(1, MAILBOX_ATTEMPTS + 1):
        exchange = Exchange(mailboxes, on_demand=on_demand)
        try:
            return body(exchange)
        except (RayTaskError, RayActorError, ExchangeLost) as error:
            if not _lost(error) or attempt == MAILBOX_ATTEMPTS:
                raise
            log.warning("%s: a mailbox was lost (%s); running the step again", name, error)
        finally:
            exchange.close()
    raise AssertionError("unreachable")
