"""Rows of every staged file to hash partitions, then one reduce per
partition: the hop of the global steps that need only that (boilerplate's
units, the mixture's per-domain caps).

The staged files are read in groups (base.group_count per partition count, as
the ids step and dedup read them), so a hop passes groups x partitions
pieces, not files x partitions objects; past AUTO_MAX_OBJECTS pieces
(`dedup.exchange: auto`) they go through mailboxes (steps/exchange.py), and
the driver holds one ref per group and per partition. Groups are runs of
consecutive files, each sent in file order, so a reducer sees its rows in
the same order as when each file sent its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import ray

from dedupe_at_scale.io.fanout import in_threads
from dedupe_at_scale.steps.base import StagedGroup, group_count, group_files
from dedupe_at_scale.steps.exchange import (
    Exchange,
    Outbox,
    mailbox_count,
    receive,
    run_with_mailboxes,
)
from dedupe_at_scale.steps.tasks import TASK_RETRIES, as_returns, call, split, takes_pieces

if TYPE_CHECKING:
    from dedupe_at_scale.steps.base import StagedView

# rows(staged file, *rows_args) -> (its rows, a uint64 key per row)
Rows = Callable[..., tuple[pa.Table, np.ndarray]]


def reduce_by_partition(
    view: StagedView, name: str, rows: Rows, rows_args: tuple, reduce: Callable[..., Any],
    reduce_args: tuple = (),
) -> list[ray.ObjectRef]:  # fmt: skip
    """Per partition (a row's key % view.partitions), the ref of
    reduce(that partition's rows, *reduce_args); `name` names the step in
    the log when a lost mailbox makes it run again."""
    parts = view.partitions
    groups = group_files(view.files, group_count(parts))
    boxes = mailbox_count(view.cfg.dedup.exchange, len(groups) * parts, max(len(groups), parts))
    return run_with_mailboxes(
        name, boxes, lambda ex: _hop(ex, groups, parts, rows, rows_args, reduce, reduce_args)
    )


def _hop(
    ex: Exchange, groups: list[StagedGroup], parts: int, rows: Rows, rows_args: tuple,
    reduce: Callable[..., Any], reduce_args: tuple,
) -> list[ray.ObjectRef]:  # fmt: skip
    hop = ex.hop(parts)
    sent = [
        call(_send, hop.returns, group, parts, rows, rows_args, hop.outbox(g))
        for g, group in enumerate(groups)
    ]
    inboxes = hop.inboxes(sent)
    reduced = [call(_reduce, 2, reduce, reduce_args, inboxes[p]) for p in range(parts)]
    # Wait here, inside run_with_mailboxes: a lost mailbox fails a reducer.
    ray.get([done for _, done in reduced])
    hop.release()
    return [result for result, _ in reduced]


@ray.remote(max_retries=TASK_RETRIES)
def _send(group: StagedGroup, parts: int, rows: Rows, rows_args: tuple, out: Outbox) -> Any:
    made = in_threads(lambda f: rows(f, *rows_args), group.files)
    table = pa.concat_tables([t for t, _ in made])
    keys = np.concatenate([k for _, k in made]).astype(np.uint64)
    return as_returns(out.send(split(table, (keys % np.uint64(parts)).astype(np.int64), parts)))


@ray.remote(max_retries=TASK_RETRIES)
@takes_pieces
def _reduce(reduce: Callable[..., Any], reduce_args: tuple, pieces: Any) -> tuple[Any, bool]:
    return reduce(receive(pieces), *reduce_args), True
