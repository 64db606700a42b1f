"""The global steps' all-to-all hops: mailboxes (actors owning the receivers)
deliver what objects (today's one object per piece, the reference) deliver,
on a real local Ray; a lost mailbox re-runs the step; the whole job's output
is the same either way."""

from __future__ import annotations

import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from dedupe_at_scale.cli import find_known_error
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.io.mailbox import LOCK, MailboxDiskError, lock_is_free
from dedupe_at_scale.job.pipeline import run_job
from dedupe_at_scale.steps.exchange import (
    AUTO_MAX_OBJECTS,
    Exchange,
    ExchangeLost,
    Outbox,
    mailbox_count,
    mailbox_counts,
    receive,
    run_with_mailboxes,
    store_budget,
)
from dedupe_at_scale.steps.tasks import as_returns, call, split, takes_pieces

pytestmark = [pytest.mark.timeout(300)]


@ray.remote
def _send(seed: int, n_dst: int, out: Outbox):
    """Rows with random destinations; some destinations get nothing."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 40))
    dest = rng.choice(max(1, n_dst // 2), n) * 2  # odd destinations stay empty
    table = pa.table({"src": np.full(n, seed), "row": np.arange(n), "dest": dest})
    return as_returns(out.send(split(table, dest, n_dst)))


@ray.remote
def _receive(pieces):
    return receive(pieces)


def _hop_result(
    mailboxes: int, n_src: int, n_dst: int, memory_limit: int | None = None
) -> list[pa.Table]:
    exchange = Exchange(mailboxes, memory_limit)
    try:
        hop = exchange.hop(n_dst)
        sent = [call(_send, hop.returns, s, n_dst, hop.outbox(s)) for s in range(n_src)]
        return ray.get([_receive.remote(inbox) for inbox in hop.inboxes(sent)])
    finally:
        exchange.close()


@pytest.mark.parametrize("n_src,n_dst", [(1, 1), (5, 1), (1, 6), (9, 7)])
def test_mailboxes_deliver_what_objects_deliver(ray_cluster, n_src, n_dst):
    reference = _hop_result(0, n_src, n_dst)
    # The node's share of the store (every piece in memory), none (every
    # piece in a file), and a few hundred bytes (some of each).
    for mailboxes, limit in [(1, None), (3, None), (8, None), (3, 0), (3, 600)]:
        got = _hop_result(mailboxes, n_src, n_dst, limit)
        assert len(got) == n_dst
        for d in range(n_dst):
            # Same rows in sender order, same columns even where nothing came.
            assert got[d].schema == reference[d].schema
            assert got[d].to_pylist() == reference[d].to_pylist(), (mailboxes, limit, d)
    assert sum(t.num_rows for t in reference) > 0 or n_src == 1


def _packed(pieces: list[pa.Table], dests: range) -> tuple[pa.Table, np.ndarray]:
    """The reference for Split.packed, as senders packed before it: the
    pieces for `dests` concatenated, a table a piece, and their row counts."""
    mine = [pieces[d] for d in dests]
    counts = np.array([piece.num_rows for piece in mine], np.int64)
    return pa.concat_tables(mine or [pieces[0].slice(0, 0)]).combine_chunks(), counts


def _adversarial_splits():
    """(table, destinations, n): empty, one destination for every row, more
    mailboxes than destinations, a table of several chunks, unsorted."""
    rng = np.random.default_rng(7)
    rows = pa.table({"row": np.arange(500), "key": rng.integers(0, 1 << 60, 500, np.uint64)})
    chunked = pa.concat_tables([rows.slice(0, 3), rows.slice(3, 0), rows.slice(3, 497)])
    yield rows.slice(0, 0), np.zeros(0, np.int64), 5
    yield rows, np.full(500, 3), 7
    yield rows, np.zeros(500, np.int64), 1
    yield chunked, rng.integers(0, 11, 500), 11
    yield rows, rng.integers(0, 3, 500) * 4, 13  # most destinations get nothing
    yield rows.slice(0, 2), np.array([1, 0]), 2


@pytest.mark.parametrize("boxes", [1, 2, 3, 8, 20])
def test_split_packs_each_mailbox_as_its_pieces_concatenated(boxes):
    """Split.packed makes no table a piece; it must equal concatenating the
    pieces a mailbox owns (_packed, the reference)."""
    for table, dest, n in _adversarial_splits():
        pieces = split(table, dest, n)
        packs = pieces.packed(boxes)
        assert len(packs) == boxes
        for b, (packed, counts) in enumerate(packs):
            want, want_counts = _packed(list(pieces), range(b, n, boxes))
            assert packed.schema == want.schema
            assert packed.to_pylist() == want.to_pylist(), (n, boxes, b)
            assert counts.tolist() == want_counts.tolist(), (n, boxes, b)
        # The pieces themselves: each destination's rows, in row order.
        for d in range(n):
            assert pieces[d].column("row").to_pylist() == [
                r for r, to in zip(table.column("row").to_pylist(), dest) if to == d
            ]


def test_split_refuses_a_destination_outside_the_hop():
    table = pa.table({"row": [0, 1]})
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        split(table, np.array([0, 2]), 2)
    with pytest.raises(ValueError, match="destinations for 2 rows"):
        split(table, np.array([0]), 2)


def test_a_retried_senders_put_replaces_its_first(ray_cluster):
    """A sender run again (lineage) puts the same pieces again: receivers
    get them once, and the mailbox holds their bytes once."""
    exchange = Exchange(1)
    box = exchange.mailboxes[0]
    try:
        hop = exchange.hop(2)
        sent = [call(_send, hop.returns, s, 2, hop.outbox(s)) for s in range(3)]
        inboxes = hop.inboxes(sent)
        held = ray.get(box.stats.remote())["held"]
        first = ray.get(_receive.remote(inboxes[0]))
        assert 1 in first.column("src").to_pylist()  # the sender run again sent rows here
        again = call(_send, hop.returns, 1, 2, hop.outbox(1))
        ray.get(again)
        assert ray.get(box.stats.remote())["held"] == held
        assert ray.get(_receive.remote(inboxes[0])).to_pylist() == first.to_pylist()
    finally:
        exchange.close()


def test_a_released_hop_refuses_to_be_read(ray_cluster):
    exchange = Exchange(2)
    try:
        hop = exchange.hop(3)
        sent = [call(_send, hop.returns, s, 3, hop.outbox(s)) for s in range(4)]
        inboxes = hop.inboxes(sent)
        assert ray.get(_receive.remote(inboxes[0])).num_rows > 0
        hop.release()
        # A receiver rebuilt from lineage after release must fail, not read nothing.
        with pytest.raises(ExchangeLost):
            ray.get(_receive.remote(inboxes[0]))
    finally:
        exchange.close()


def test_pieces_past_the_memory_limit_go_to_files_until_released(ray_cluster):
    exchange = Exchange(1, memory_limit=600)
    box = exchange.mailboxes[0]
    try:
        hops = [exchange.hop(4) for _ in range(2)]
        for hop in hops:
            sent = [call(_send, hop.returns, s, 4, hop.outbox(s)) for s in range(6)]
            hop.inboxes(sent)
        stats = ray.get(box.stats.remote())
        assert 0 < stats["held"] <= 600 and stats["files"] > 0
        on_disk = set(os.listdir(stats["dir"]))
        assert any(name.startswith("hop0-") for name in on_disk)
        hops[0].release()
        left = set(os.listdir(stats["dir"]))
        assert left and not any(name.startswith("hop0-") for name in left)
    finally:
        exchange.close()
    assert not os.path.exists(stats["dir"])  # close() removed the rest


@ray.remote
def _send_ten_rows(out: Outbox):
    return as_returns(out.send(split(pa.table({"row": np.arange(10)}), np.zeros(10), 1)))


def _folder_written(exchange: Exchange) -> str:
    """Sends ten rows through a mailbox holding nothing in memory: its folder."""
    hop = exchange.hop(1)
    ray.get(call(_send_ten_rows, hop.returns, hop.outbox(0)))
    return ray.get(exchange.mailboxes[0].stats.remote())["dir"]


def test_a_new_mailbox_removes_the_folders_of_dead_ones(ray_cluster, tmp_path):
    """A mailbox killed without close() leaves its files behind; the next
    mailbox to write files there removes them, never a live mailbox's."""
    exchanges = [Exchange(1, memory_limit=0, folder=str(tmp_path)) for _ in range(3)]
    try:
        alive = _folder_written(exchanges[0])
        dead = _folder_written(exchanges[1])
        ray.kill(exchanges[1].mailboxes[0])  # its process ends, its lock with it
        deadline = time.time() + 60
        while not lock_is_free(os.path.join(dead, LOCK)) and time.time() < deadline:
            time.sleep(0.2)
        assert os.path.exists(dead)
        new = _folder_written(exchanges[2])
        assert not os.path.exists(dead)
        assert os.path.exists(alive) and os.path.exists(new) and new != alive
    finally:
        for exchange in exchanges:
            exchange.close()
    assert os.listdir(tmp_path) == []


def test_a_mailbox_that_cannot_write_its_files_says_where_in_one_line(ray_cluster, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    exchange = Exchange(1, memory_limit=0, folder=str(not_a_folder))
    try:
        hop = exchange.hop(2)
        with pytest.raises(Exception) as raised:
            ray.get(call(_send, hop.returns, 3, 2, hop.outbox(0)))
    finally:
        exchange.close()
    error = find_known_error(raised.value)
    assert isinstance(error, MailboxDiskError)
    message = str(error)
    assert "\n" not in message and str(not_a_folder) in message
    assert "could not write" in message and "TMPDIR" in message


def test_a_lost_mailbox_runs_the_step_again(ray_cluster):
    attempts = []

    def body(exchange: Exchange) -> list[list]:
        attempts.append(exchange)
        hop = exchange.hop(5)
        sent = [call(_send, hop.returns, s, 5, hop.outbox(s)) for s in range(6)]
        inboxes = hop.inboxes(sent)
        if len(attempts) == 1:
            ray.kill(exchange.mailboxes[1])  # as if its node died
        tables = ray.get([_receive.remote(inbox) for inbox in inboxes])
        return [t.to_pylist() for t in tables]

    got = run_with_mailboxes("test", 2, body)
    assert len(attempts) == 2
    assert got == [t.to_pylist() for t in _hop_result(0, 6, 5)]


def test_auto_takes_mailboxes_only_for_large_hops(ray_cluster):
    assert mailbox_count("auto", AUTO_MAX_OBJECTS, 100) == 0
    assert mailbox_count("auto", AUTO_MAX_OBJECTS + 1, 100) == 2  # one node here
    assert mailbox_count("mailboxes", 4, 1) == 1
    assert mailbox_count("objects", 10**9, 10**5) == 0
    # auto that began with objects keeps a pool for a hop too large for the store.
    assert mailbox_counts("auto", AUTO_MAX_OBJECTS, 100) == (0, 2)
    assert mailbox_counts("auto", AUTO_MAX_OBJECTS + 1, 100) == (2, 0)
    assert mailbox_counts("objects", 10**9, 10**5) == (0, 0)
    assert mailbox_counts("mailboxes", 4, 1) == (1, 0)


def test_a_hop_too_large_for_the_store_starts_the_mailboxes(ray_cluster):
    """auto began with objects: a hop that may carry more than the store's
    budget gets the on-demand mailboxes, so do the hops after it, the hops
    before keep their objects, and each delivers what objects deliver."""
    budget = int(store_budget())
    assert budget > 0
    exchange = Exchange(0, on_demand=2)
    try:
        small = exchange.hop(5, most_bytes=budget)
        assert small.mailboxes is None and exchange.mailboxes is None
        large = exchange.hop(5, most_bytes=budget + 1)
        later = exchange.hop(5)
        assert len(large.mailboxes) == 2 and later.mailboxes is large.mailboxes
        expected = [t.to_pylist() for t in _hop_result(0, 4, 5)]
        for hop in (small, large):
            sent = [call(_send, hop.returns, s, 5, hop.outbox(s)) for s in range(4)]
            got = ray.get([_receive.remote(inbox) for inbox in hop.inboxes(sent)])
            assert [t.to_pylist() for t in got] == expected
    finally:
        exchange.close()
    never = Exchange(0)  # on_demand 0: objects whatever the size
    assert never.hop(5, most_bytes=10**18).mailboxes is None


OUTPUTS = ("data", "rejected", "duplicates")


def test_the_job_writes_the_same_output_with_mailboxes(
    ray_cluster, sample_dir, tmp_path, monkeypatch
):
    """The built-in sample (exact and near duplicates in several languages,
    repeated ids quarantined) with forced partitions: every output table and
    the manifest's counts equal the objects run's, with mailboxes for every
    hop and with auto starting them for verify's hop (a budget of 0 bytes)."""
    single = tmp_path / "single.parquet"
    table = pq.read_table(sample_dir)
    # Repeat some ids so that the ids step has decisions to move too.
    ids = table.column("id").to_pylist()
    ids[1::97] = ids[0::97][: len(ids[1::97])]
    table = table.set_column(table.schema.get_field_index("id"), "id", pa.array(ids))
    pq.write_table(table, single, row_group_size=250)
    monkeypatch.setattr("dedupe_at_scale.steps.exchange.AUTO_STORE_SHARE", 0.0)
    results = {}
    for exchange, used in [
        ("objects", "objects"),
        ("mailboxes", "mailboxes"),
        ("auto", "objects, mailboxes from verify"),
    ]:
        cfg = config_from_dict(
            {
                "input": {"rows_per_task": 250, "on_invalid_document": "quarantine"},
                "dedup": {"partitions": 5, "exchange": exchange},
            }
        )
        out = tmp_path / exchange
        result = run_job(str(single), str(out), cfg)
        assert result.manifest["dedup"]["exchange"] == used
        results[exchange] = (
            {name: pq.read_table(out / name) for name in OUTPUTS if (out / name).exists()},
            result.manifest["counts"],
        )
    tables, counts = results.pop("objects")
    assert counts["stages"]["dedup"]["rejected"] > 150
    assert counts["stages"]["input"]["rejected"] > 0  # repeated ids
    for other, other_counts in results.values():
        assert other_counts == counts
        assert other.keys() == tables.keys()
        for name in tables:
            assert other[name].equals(tables[name]), name


@ray.remote
def _send_late(seconds: float, out: Outbox):
    import time

    time.sleep(seconds)
    return as_returns(out.send(split(pa.table({"sent_at": [time.time()]}), np.zeros(1), 1)))


@ray.remote
@takes_pieces
def _receive_at(pieces):
    import time

    started = time.time()
    return started, receive(pieces).column("sent_at")[0].as_py()


def test_a_receiver_starts_once_its_pieces_exist(ray_cluster):
    """Pieces reach a task as top-level arguments, so Ray schedules it after
    its senders: a receiver started early would wait in ray.get without its
    CPU, and Ray would start another worker process for the next task."""
    exchange = Exchange(0)
    hop = exchange.hop(1)
    sent = [call(_send_late, hop.returns, 2.0, hop.outbox(0))]
    (pieces,) = hop.inboxes(sent)
    started, sent_at = ray.get(call(_receive_at, 1, pieces)[0])
    assert started >= sent_at
