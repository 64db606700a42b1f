"""Names of the columns the job adds while it runs, and the one way global
steps mark documents as rejected in them.

Internal columns carry a prefix no input is expected to use, and are dropped
before documents are written to data/.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

INTERNAL_PREFIX = "__dds_"
FILE = "__dds_file"  # input file, relative to the input root
ROW = "__dds_row"  # row index within that file
STAGE = "__dds_stage"  # stage that rejected the document; null while kept
RULE = "__dds_rule"
VALUE = "__dds_value"
REASON = "__dds_reason"
SECONDS_PREFIX = "__dds_seconds_"  # per-row share of a stage's busy time
# Per-row share of a worker process's one-time set-up (numba, a stage's
# tables and kernels), on its first batch; summed like busy seconds.
SETUP_PREFIX = SECONDS_PREFIX + "setup_"
UID = "__dds_uid"  # global document number: read unit << 32 | row in unit
EXACT_HI = "__dds_exact_hi"  # 128-bit hash of the normalized token sequence
EXACT_LO = "__dds_exact_lo"
MINHASH = "__dds_minhash"  # fixed-size list of uint32
# Post-training rows (formats.py): the rendered conversation the stages read
# as text, the views (dropped after annotation), and what consistency compares.
TEXT = "__dds_text"
VIEW_PREFIX = "__dds_view_"
RESPONSE_KEY = "__dds_response_key"  # hash of the normalized (chosen) response
REJECTED_KEY = "__dds_rejected_key"  # preference: of the rejected response
SCORE = "__dds_score"  # reward: the score as float64
# Decontamination: the eval set and item a contaminated document matched best.
CONTAMINATION_SOURCE = "__dds_contamination_source"
CONTAMINATION_ITEM = "__dds_contamination_item"
CONTAMINATION_MATCHES = "__dds_contamination_matches"
# ... and its first matching passage in the text (code points [start, end);
# text rows only), for the report's samples.
CONTAMINATION_SPAN = "__dds_contamination_span"
# Dedup: the kept member's id of the row's duplicate cluster (null outside any).
CLUSTER = "__dds_cluster"
SIMILARITY = "__dds_similarity"  # dedup: MinHash similarity to the kept member
# The text length (code points) of a row rejected while annotated, whose
# text is not staged (output.rejected_text off): the report's length plot.
REJECTED_CHARS = "__dds_rejected_chars"
# Per-row counters, __dds_count_<name>: summed over the output on the driver
# and reported in their stage's manifest section (pii's counts, say).
COUNT_PREFIX = "__dds_count_"
# tokens.count: kept: the text bytes of the rows counted and of those not
# counted, from which the manifest estimates the latter's tokens.
TOKENS_COUNTED_BYTES = COUNT_PREFIX + "tokens_counted_bytes"
TOKENS_UNCOUNTED_BYTES = COUNT_PREFIX + "tokens_uncounted_bytes"

LANGUAGE = "language"
DOMAIN = "domain"  # the registrable domain of a document's URL (url_filter)
LANGUAGE_SCORE = "language_score"
PROMPT_LANGUAGE = "prompt_language"
PROMPT_LANGUAGE_SCORE = "prompt_language_score"
SIGNAL_PREFIX = "q_"
QUALITY_SCORE = "quality_score"


def kept_rows(table: pa.Table) -> pa.Table:
    """The rows no stage has rejected (so far)."""
    return table.filter(pc.is_null(table.column(STAGE)))


def decided_rows(table: pa.Table, decisions: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `table`, its position in `decisions` (sorted by uid)
    and whether a decision exists for it. `decisions` must not be empty."""
    uids = table.column(UID).to_numpy()
    decided = decisions.column(UID).to_numpy()
    pos = np.minimum(np.searchsorted(decided, uids), len(decided) - 1)
    return pos, decided[pos] == uids


def mark_rejected(
    table: pa.Table,
    rows: np.ndarray,
    stage: str,
    rule: pa.Array,
    reason: pa.Array,
    value: pa.Array | None = None,
) -> pa.Table:
    """Set stage, rule, reason and value (null if not given) on the rows where
    `rows` is true; the arrays are full-length, other rows stay as they are."""
    mask = pa.array(rows)
    updates = {
        STAGE: pa.array([stage] * table.num_rows, pa.string()),
        RULE: rule,
        VALUE: value if value is not None else pa.nulls(table.num_rows, pa.float64()),
        REASON: reason,
    }
    for name, new in updates.items():
        index = table.schema.get_field_index(name)
        if index >= 0:
            merged = pc.if_else(mask, new, table.column(name).combine_chunks())
            table = table.set_column(index, name, merged)
    return table
