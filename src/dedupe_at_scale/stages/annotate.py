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
from dedupe_at_scale.kernels.hashing import set_numba_up
from dedupe_at_scale.stages import REGISTRY
from dedupe_at_scale.stages.base import Batch, Stage, StageResult

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

NUMBA = "numba"  # numba's own set-up, in the set-up seconds


class Annotator:
    def __init__(self, cfg: JobConfig, resources: dict[str, Any] | None = None):
        self.cfg = cfg
        # In registry order: a running stage (models load here, once per worker
        # process), or the null columns a disabled stage keeps in the schema.
        self.steps: list[Stage | list[pa.Field]] = []
        # Seconds of one-time set-up, by stage (and numba's own), reported
        # with the first batch: apart from busy seconds, which are the work.
        self.setup: dict[str, float] = {}
        for stage in REGISTRY:
            if not stage.enabled(cfg):
                if stage.columns_when_off:
                    self.steps.append(stage.fields(cfg))
                continue
            started = time.perf_counter()
            if stage.needs:
                shared = resources or {}
                self.steps.append(stage(cfg, {k: shared[k] for k in stage.needs if k in shared}))
            else:
                self.steps.append(stage(cfg))
            self.setup[stage.name] = time.perf_counter() - started
        warming = [s for s in self.steps if isinstance(s, Stage) and _warms_up(s)]
        if warming:  # the first stage to call a kernel would pay numba's own set-up
            started = time.perf_counter()
            set_numba_up()
            self.setup[NUMBA] = time.perf_counter() - started
        for stage in warming:
            started = time.perf_counter()
            stage.warm_up()
            self.setup[stage.name] += time.perf_counter() - started
        self.setup_pending = True

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
        # Every batch has the set-up columns (one schema); the first holds the seconds.
        setup = {name: s if self.setup_pending else 0.0 for name, s in self.setup.items()}
        self.setup_pending = False
        table = _with_seconds(batch.table.drop_columns(views), seconds, col.SECONDS_PREFIX)
        return _with_seconds(table, setup, col.SETUP_PREFIX)


def _warms_up(stage: Stage) -> bool:
    return type(stage).warm_up is not Stage.warm_up


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


def _with_seconds(table: pa.Table, seconds: dict[str, float], prefix: str) -> pa.Table:
    n = table.num_rows
    for name, busy in seconds.items():
        share = busy / n if n else 0.0
        table = table.append_column(prefix + name, pa.array(np.full(n, share)))
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
