"""A worker process's one-time set-up (constructing the stages, their
kernels' first call, numba's own set-up) is counted apart from the stages'
busy seconds, with the first batch only, so that busy seconds are the work."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale import columns as col
from dedupe_at_scale.config import JobConfig
from dedupe_at_scale.io.inputs import InputFile
from dedupe_at_scale.io.rows import prepare_table
from dedupe_at_scale.stages.annotate import NUMBA, Annotator
from dedupe_at_scale.stages.quality import measure

TEXTS = ["The river runs through the old town, past the mill.", "Der Fluss fließt.", ""]


def seconds(table: pa.Table, prefix: str) -> dict[str, float]:
    return {
        n.removeprefix(prefix): pc.sum(table[n]).as_py()
        for n in table.column_names
        if n.startswith(prefix)
        and not (prefix == col.SECONDS_PREFIX and n.startswith(col.SETUP_PREFIX))
    }


def test_set_up_is_counted_once_and_apart_from_the_busy_seconds():
    cfg = JobConfig()  # language ID, quality rules, tokens and MinHash run
    table = pa.table({"id": ["a", "b", "c"], "text": TEXTS})
    rows = prepare_table(table, InputFile("f", "f", "f", 3, 1, (3,), True), 0, cfg.input)
    annotator = Annotator(cfg)
    # The quality kernel's tables were built, and it ran, before any batch.
    quality = next(s for s in annotator.steps if getattr(s, "name", "") == "quality")
    assert "measurer" in vars(quality.filter) and measure._kernel.signatures
    first, second = annotator(rows), annotator(rows)
    assert first.schema == second.schema  # one schema for every staged file
    setup = seconds(first, col.SETUP_PREFIX)
    assert {NUMBA, "langid", "quality", "tokens", "minhash"} <= set(setup)
    assert all(value > 0 for value in setup.values()), setup
    assert set(seconds(second, col.SETUP_PREFIX).values()) == {0.0}
    busy = seconds(first, col.SECONDS_PREFIX)
    assert NUMBA not in busy and {"langid", "quality", "tokens", "minhash"} <= set(busy)


def test_a_batch_combines_its_text_once_and_again_after_the_text_changes():
    """Every stage reads the batch's text as one array; a column of several
    chunks is combined once per batch, and a stage that rewrites the text
    (PII redaction, C4 cleaning) makes the next stage see the new text."""
    from dedupe_at_scale.stages.base import Batch

    chunked = pa.chunked_array([["a b", "c"], ["d"]], pa.string())
    batch = Batch(pa.table({"text": chunked}), "text")
    first = batch.text_array()
    assert first.to_pylist() == ["a b", "c", "d"] and batch.text_array() is first
    batch.update(batch.table.append_column("x", pa.array([1, 2, 3])), text_changed=False)
    assert batch.text_array() is first
    rewritten = batch.table.set_column(0, "text", pa.array(["A", "B", "C"]))
    batch.update(rewritten, text_changed=True)
    assert batch.text_array().to_pylist() == ["A", "B", "C"]
