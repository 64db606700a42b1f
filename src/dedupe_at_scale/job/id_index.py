"""index/: which shards of a finished output hold a document id, so that
`trace` reads the manifest, one index file and those shards, not every shard.

Built after the write pass, before the commit: tasks read the key columns of
every written shard (data/, rejected/, duplicates/, the selections), each
distinct key of a shard becomes one entry (key, directory, shard), and the
entries are hash-partitioned by key (the exchange of the global steps) into
index/part-<k>.parquet, sorted by key, so that a lookup reads one row group
of one file. The manifest's output.index says how many parts there are and
which columns were indexed; an output without it (output.index off, or
written before) is searched shard by shard as before.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from dedupe_at_scale.io.fanout import in_threads
from dedupe_at_scale.io.finished import find_rows
from dedupe_at_scale.stages.minhash import string_hashes
from dedupe_at_scale.steps.exchange import Outbox, mailbox_count, receive, run_with_mailboxes
from dedupe_at_scale.steps.tasks import TASK_RETRIES, as_returns, call, split, takes_pieces

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.io.finished import FinishedOutput
    from dedupe_at_scale.io.output import OutputLayout
    from dedupe_at_scale.io.storage import Location

INDEX = "index"
KEY, DIRECTORY, SHARD = "key", "directory", "shard"
# Columns whose values are looked up: the input's id column (data/ and the
# selections), `id` (rejected/, duplicates/) and duplicates/' cluster_id.
KEY_COLUMNS = ("id", "cluster_id")
HASH_SEED = 0x1D  # fixed: a part's keys are those hashing to it
ENTRIES_PER_PART = 2_000_000  # about 40 MB of ids a file
SHARDS_PER_TASK = 64
ROW_GROUP = 8_192  # a lookup reads one such group


def key_columns(cfg: JobConfig) -> list[str]:
    return list(dict.fromkeys((cfg.input.id_column, *KEY_COLUMNS)))


def part_of(keys: pa.Array, parts: int) -> np.ndarray:
    """The index file holding each key."""
    return (string_hashes(keys, HASH_SEED) % np.uint64(parts)).astype(np.int64)


def part_path(part: int) -> str:
    return posixpath.join(INDEX, f"part-{part:05d}.parquet")


def build_index(
    layout: OutputLayout, cfg: JobConfig, listed: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """Write index/ under the publish root for the shards `listed` (directory
    -> its shards as the manifest lists them); its manifest entry."""
    shards = [(d, s["path"]) for d, found in listed.items() for s in found if s["rows"]]
    columns = key_columns(cfg)
    # Entries are at most one per key column and row; most shards have one.
    entries = sum(s["rows"] for found in listed.values() for s in found)
    parts = max(1, -(-entries // ENTRIES_PER_PART))
    runs = [shards[i : i + SHARDS_PER_TASK] for i in range(0, len(shards), SHARDS_PER_TASK)]
    names = ray.put(pa.array([d for d, _ in shards])), ray.put(pa.array([p for _, p in shards]))
    boxes = mailbox_count(cfg.dedup.exchange, len(runs) * parts, max(len(runs), parts))

    def body(ex):
        hop = ex.hop(parts)
        first = np.cumsum([0] + [len(r) for r in runs])
        sent = [
            call(_scan_keys, hop.returns, layout.location, layout.publish_root, run,
                 int(first[i]), columns, parts, hop.outbox(i))
            for i, run in enumerate(runs)
        ]  # fmt: skip
        inboxes = hop.inboxes(sent)
        written = ray.get(
            [
                call(_write_part, 1, layout.location, layout.publish_root, p, *names,
                     inboxes[p])[0]
                for p in range(parts)
            ]
        )  # fmt: skip
        hop.release()
        return written

    written = run_with_mailboxes(INDEX, boxes, body) if shards else []
    return {
        "parts": parts if shards else 0,
        "columns": columns,
        "directories": sorted(listed),
        "files": written,
    }


@ray.remote(max_retries=TASK_RETRIES)
def _scan_keys(location: Location, root: str, run: list[tuple[str, str]], first: int,
               columns: list[str], parts: int, out: Outbox):  # fmt: skip
    """(key, shard number) for each distinct key of each shard of the run."""

    def one(shard: tuple[str, str]) -> pa.Array:
        with location.fs.open(posixpath.join(root, shard[1]), "rb") as handle:
            parquet = pq.ParquetFile(handle)
            present = [c for c in columns if c in parquet.schema_arrow.names]
            table = parquet.read(columns=present)
        keys = [pc.cast(table.column(c), pa.string()).combine_chunks() for c in present]
        return pc.unique(pc.drop_null(pa.concat_arrays(keys or [pa.array([], pa.string())])))

    found = in_threads(one, run)
    keys = pa.concat_arrays(found)
    numbers = np.repeat(np.arange(first, first + len(run)), [len(k) for k in found])
    table = pa.table({KEY: keys, SHARD: pa.array(numbers.astype(np.int32))})
    return as_returns(out.send(split(table, part_of(keys, parts), parts)))


@ray.remote(max_retries=TASK_RETRIES)
@takes_pieces
def _write_part(location: Location, root: str, part: int, directories: pa.Array,
                paths: pa.Array, pieces) -> dict[str, Any]:  # fmt: skip
    entries = receive(pieces).sort_by([(KEY, "ascending"), (SHARD, "ascending")])
    number = entries.column(SHARD).combine_chunks()
    table = pa.table(
        {
            KEY: entries.column(KEY),
            DIRECTORY: directories.take(number),
            SHARD: paths.take(number),
        }
    )
    path = part_path(part)
    target = posixpath.join(root, path)
    location.fs.makedirs(posixpath.dirname(target), exist_ok=True)
    pq.write_table(table, target, filesystem=location.arrow_fs, row_group_size=ROW_GROUP,
                   compression="zstd")  # fmt: skip
    return {"path": path, "rows": table.num_rows, "bytes": location.fs.size(target)}


def shard_finder(out: FinishedOutput):
    """For FinishedOutput.locate: the shards of a directory that hold any of
    some values of a column, from index/ (each part read once for all the
    values it holds); None where the index does not cover the column (the
    caller then reads every shard)."""
    index = out.manifest["output"].get(INDEX)
    if not index or not index["parts"]:
        return None
    seen: dict[str, dict[str, list[str]]] = {}

    def look_up(keys: list[str]) -> None:
        new = sorted({k for k in keys if k not in seen})
        by_part: dict[int, list[str]] = {}
        for key, part in zip(new, part_of(pa.array(new, pa.string()), index["parts"]).tolist()):
            by_part.setdefault(part, []).append(key)
            seen[key] = {}

        def read(item: tuple[int, list[str]]) -> list[dict]:
            return find_rows(out.location, [out.location.join(part_path(item[0]))], KEY, item[1])

        for rows in in_threads(read, list(by_part.items())):
            for row in rows:
                held = seen[row[KEY]].setdefault(row[DIRECTORY], [])
                held.append(out.location.join(row[SHARD]))

    def locate(name: str, column: str, values: Collection[str]) -> list[str] | None:
        if column not in index["columns"] or name not in index["directories"]:
            return None
        keys = [str(v) for v in values]
        look_up(keys)
        return sorted({p for k in keys for p in seen[k].get(name, [])})

    return locate
