"""What the boilerplate step counts and cuts: a document's lines (or
paragraphs), each normalized (lower case, whitespace runs as one space,
trimmed; empty ones never count), hashed to 64 bits. `reference` is the
plain single-process version the tests hold the distributed step to."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale.stages.minhash import string_hashes

PARAGRAPH_BREAK = r"\n[ \t\r\f\v]*\n"


@dataclass(frozen=True)
class Units:
    """The units of a batch of texts, flattened: which row each is of, its
    text as written, and its hash (0 for an empty unit: never counted)."""

    row: np.ndarray
    text: pa.Array
    hash: np.ndarray


def split_units(texts: pa.Array, unit: str) -> Units:
    texts = pc.fill_null(texts, "")
    parts = (
        pc.split_pattern(texts, "\n") if unit == "line"
        else pc.split_pattern_regex(texts, PARAGRAPH_BREAK)
    )  # fmt: skip
    row = pc.list_parent_indices(parts).to_numpy()
    flat = pc.list_flatten(parts)
    normalized = normalized_units(flat)
    hashes = string_hashes(normalized)
    empty = pc.equal(pc.binary_length(normalized), 0).to_numpy(zero_copy_only=False)
    hashes[empty] = 0
    return Units(row, flat, hashes)


def joined(pieces: list[str], unit: str) -> str:
    return ("\n" if unit == "line" else "\n\n").join(pieces)


def normalized_units(units: pa.Array) -> pa.Array:
    """Lower case, whitespace runs as one space, trimmed (the reference
    uses this too: the step's logic, not Unicode's case tables, is what
    the tests compare)."""
    spaced = pc.replace_substring_regex(pc.utf8_lower(units), r"\s+", " ")
    return pc.utf8_trim_whitespace(spaced)


def reference(
    texts: list[str], unit: str, min_documents: int, keep_first: bool
) -> tuple[list[str], list[int]]:
    """In document order: each text without its boilerplate units (those
    whose normalized form occurs in at least min_documents documents; the
    first document holding one keeps it with keep_first), and how many units
    each lost."""
    split = [
        text.split("\n") if unit == "line" else re.split(PARAGRAPH_BREAK, text) for text in texts
    ]
    keys = [normalized_units(pa.array(pieces, pa.string())).to_pylist() for pieces in split]
    holders: dict[str, list[int]] = {}
    for doc, normalized in enumerate(keys):
        for key in set(normalized) - {""}:
            holders.setdefault(key, []).append(doc)
    out, lost = [], []
    for doc, pieces in enumerate(split):
        kept = []
        for piece, key in zip(pieces, keys[doc]):
            docs = holders.get(key, []) if key else []
            boiler = len(docs) >= min_documents and not (keep_first and docs[0] == doc)
            if not boiler:
                kept.append(piece)
        out.append(joined(kept, unit))
        lost.append(len(pieces) - len(kept))
    return out, lost
