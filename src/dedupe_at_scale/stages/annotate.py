"""Runs the registered per-document stages over one Arrow batch.

No Ray here: `Annotator` is a plain callable over a `pyarrow.Table`, so it is
unit-testable and the pipeline decides how to run it. A document rejected by
one stage skips the later ones; its stage, rule, value and reason are recorded
in the internal columns (see columns.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from dedupe_at_scale import columns as col
from dedupe_at_scale.stages import REGISTRY
from dedupe_at_scale.stages.base import Batch, Stage, StageResult

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig


class Annotator:
    def __init__(self, cfg: JobConfig, resources: dict[str, Any] | None = None):
        self.cfg = cfg
        # In registry order: a running stage (models load here, once per worker
        # process), or the null columns a disabled stage keeps in the schema.
        self.steps: list[Stage | list[pa.Field]] = []
        for stage in REGISTRY:
            if stage.enabled(cfg) and stage.needs:
                shared = resources or {}
                self.steps.append(stage(cfg, {k: shared[k] for k in stage.needs if k in shared}))
            elif stage.enabled(cfg):
                self.steps.append(stage(cfg))
            elif stage.columns_when_off:
                self.steps.append(stage.fields(cfg))

    def __call__(self, table: pa.Table) -> pa.Table:
        inp = self.cfg.input
        batch = Batch(table, inp.document_column, post_training=inp.format != "text")
        seconds: dict[str, float] = {}
        for step in self.steps:
            if isinstance(step, list):
                nulls = {f.name: pa.nulls(batch.num_rows, f.type) for f in step}
                _merge(batch, None, StageResult(columns=nulls))
                continue
            started = time.perf_counter()
            _merge(batch, step, step(batch))
            seconds[step.name] = time.perf_counter() - started
        views = [n for n in batch.table.column_names if n.startswith(col.VIEW_PREFIX)]
        return _with_seconds(batch.table.drop_columns(views), seconds)


def _merge(batch: Batch, stage: Stage | None, result: StageResult) -> None:
    table = batch.table
    if result.text is not None:
        index = table.schema.get_field_index(batch.text_column)
        table = table.set_column(index, batch.text_column, result.text)
    for name, values in result.columns.items():
        table = table.append_column(name, values)
    if result.rejected is not None and stage is not None:
        r = result.rejected
        table = col.mark_rejected(table, r.mask, stage.stage, r.rule, r.reason, r.value)
    batch.update(table, text_changed=result.text is not None)


def _with_seconds(table: pa.Table, seconds: dict[str, float]) -> pa.Table:
    n = table.num_rows
    for name, busy in seconds.items():
        share = busy / n if n else 0.0
        table = table.append_column(col.SECONDS_PREFIX + name, pa.array(np.full(n, share)))
    return table


_ANNOTATORS: dict[str, Annotator] = {}


def annotate_batch(
    table: pa.Table, cfg: JobConfig, resources: Callable[[], dict[str, Any]] | None = None
) -> pa.Table:
    """Entry point for Ray tasks. Ray reuses worker processes, so keeping the
    Annotator in the process loads each model once per worker, not per batch;
    `resources` fetches the shared ones, on the first batch only (its
    `token` tells one run's from another's)."""
    key = json.dumps(cfg.to_dict(), sort_keys=True, default=str) + getattr(resources, "token", "")
    annotator = _ANNOTATORS.get(key)
    if annotator is None:
        _ANNOTATORS.clear()
        shared = resources() if resources is not None else None
        annotator = _ANNOTATORS[key] = Annotator(cfg, shared)
    return annotator(table)
