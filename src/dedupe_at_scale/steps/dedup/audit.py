"""`dedupe-at-scale audit OUT --sample N`: how many of the near duplicates a
run removed really were, from a sample: each sampled removed document and
its kept member are read back (the kept one from data/, the removed one
from rejected/'s text or, through its lineage, from the input), their exact
Jaccard similarity computed on the shingles the dedup hashed, and the share
at or above dedup.threshold given with a 95% Wilson interval."""

from __future__ import annotations

import dataclasses
import math
import posixpath
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedupe_at_scale.io.fanout import in_threads
from dedupe_at_scale.io.finished import open_output
from dedupe_at_scale.io.storage import StorageError, resolve
from dedupe_at_scale.stages.minhash import normalize, sparse_spaces

if TYPE_CHECKING:
    from dedupe_at_scale.io.finished import FinishedOutput
    from dedupe_at_scale.io.storage import Location, StorageConfig

Z95 = 1.959964
NEAR = "near_duplicate"  # rejected/'s rule for a removed near duplicate


@dataclass(frozen=True)
class Pair:
    removed: str
    kept: str
    estimated: float | None  # duplicates/' MinHash estimate
    exact: float


def shingle_set(text: str, n_words: int, n_chars: int, char_mode: bool, form: str | None) -> set:
    """The shingles the MinHash kernel hashes (stages/minhash.py): word
    n-grams of the normalized text, or character n-grams (spaces skipped)
    for scripts without spaces; fewer tokens than n: one shingle of all."""
    normalized = normalize(pa.array([text], pa.string()), form)[0].as_py()
    tokens = [c for c in normalized if not c.isspace()] if char_mode else normalized.split()
    n = n_chars if char_mode else n_words
    if not tokens:
        return set()
    if len(tokens) < n:
        return {tuple(tokens)}
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def wilson(successes: int, n: int) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def audit(
    uri: str, sample: int = 200, seed: int = 0, storage: StorageConfig | None = None,
    finder: Callable[[FinishedOutput], Any] | None = None,
) -> str:  # fmt: skip
    """`finder`: makes the output's shard lookup (job/id_index.shard_finder,
    which the CLI passes); None reads every shard for the sampled ids."""
    out = open_output(uri, storage)
    if finder is not None:
        out = dataclasses.replace(out, locate=finder(out))
    location, manifest, shards = out.location, out.manifest, out.shards
    cfg = manifest["config"]
    if cfg["input"]["format"] != "text":
        raise StorageError(f"{uri}: audit covers pre-training text rows (input.format: text)")
    chosen, removed = sample_near(location, shards.get("rejected", []), sample, seed)
    threshold = cfg["dedup"]["threshold"]
    if not removed:
        return f"{uri}: no near duplicates were removed; nothing to audit"
    pairs = _pairs(out, sorted(chosen, key=lambda r: r["id"]), storage)
    above = sum(p.exact >= threshold for p in pairs)
    low, high = wilson(above, len(pairs))
    exact = np.array([p.exact for p in pairs])
    est = [(p.estimated, p.exact) for p in pairs if p.estimated is not None]
    lines = [
        f"Audit of {uri}: {len(pairs)} of {removed} removed near duplicates, each against "
        f"its kept member (seed {seed})",
        f"  exact Jaccard >= {threshold:g} (dedup.threshold): {above} of {len(pairs)} = "
        f"{above / len(pairs):.1%} (95% interval {low:.1%} to {high:.1%})",
        f"  exact Jaccard: min {exact.min():.3f}, median {np.median(exact):.3f}, "
        f"max {exact.max():.3f}",
    ]
    if est:
        error = np.abs(np.array([e for e, _ in est]) - np.array([x for _, x in est]))
        lines.append(f"  MinHash estimate vs exact: mean absolute error {error.mean():.3f}")
    below = sorted((p for p in pairs if p.exact < threshold), key=lambda p: p.exact)
    lines += [f"  below: {p.removed} vs {p.kept}: exact {p.exact:.3f}"
              + (f", estimated {p.estimated:.3f}" if p.estimated is not None else "")
              for p in below[:10]]  # fmt: skip
    return "\n".join(lines)


def sample_near(
    location: Location, paths: list[str], sample: int, seed: int
) -> tuple[list[dict], int]:
    """`random.Random(seed).sample` of rejected/'s near-duplicate rows (id,
    rule, reason) in shard order, and how many there are: the rule column
    is counted shard by shard, and only shards holding a drawn row are read
    again, so memory holds one shard's columns, never every removed row."""

    def near(path: str, columns: list[str]) -> pa.Table:
        with location.fs.open(path, "rb") as handle:
            table = pq.ParquetFile(handle).read(columns=columns)
        return table.filter(pc.equal(table.column("rule"), NEAR))

    counts = in_threads(lambda path: near(path, ["rule"]).num_rows, paths)
    starts = np.cumsum([0, *counts])
    # The positions random.sample would pick from the rows in one list.
    drawn = random.Random(seed).sample(range(int(starts[-1])), min(sample, int(starts[-1])))
    by_shard: dict[int, list[int]] = defaultdict(list)
    for position in drawn:
        shard = int(np.searchsorted(starts, position, side="right")) - 1
        by_shard[shard].append(position - int(starts[shard]))

    def take(item: tuple[int, list[int]]) -> dict[int, dict]:
        shard, rows = item
        table = near(paths[shard], ["id", "rule", "reason"]).take(rows)
        return {int(starts[shard]) + row: r for row, r in zip(rows, table.to_pylist())}

    found = {k: v for part in in_threads(take, list(by_shard.items())) for k, v in part.items()}
    return [found[position] for position in drawn], int(starts[-1])


def _pairs(out: FinishedOutput, chosen: list[dict], storage: StorageConfig | None) -> list[Pair]:
    manifest = out.manifest
    cfg = manifest["config"]
    id_column, text = cfg["input"]["id_column"], cfg["input"]["text_column"]
    removed_ids = {r["id"] for r in chosen}
    kept_ids = {r["reason"] for r in chosen}  # a near duplicate's reason is its kept member
    kept = {str(r[id_column]): r
            for r in out.find("data", id_column, kept_ids, [id_column, text, "language"])}  # fmt: skip
    removed_rows = {r["id"]: r for r in out.find("rejected", "id", removed_ids)}
    removed_text = _removed_texts(manifest, removed_rows, text, storage)
    estimates = {r["id"]: r.get("similarity") for r in out.find("duplicates", "id", removed_ids)}
    dedup, form = cfg["dedup"], cfg["dedup"]["unicode_normalization"]
    unsegmented = set(cfg["quality"]["unsegmented_languages"])
    pairs = []
    for row in chosen:
        keeper = kept[row["reason"]]
        a, b = removed_text[row["id"]], keeper[text]
        if keeper.get("language") is not None and cfg["langid"]["enabled"]:
            char_mode = keeper["language"] in unsegmented
        else:
            char_mode = bool(sparse_spaces(pa.array([b]))[0])
        sets = [shingle_set(t, dedup["ngram_size"], dedup["char_ngram_size"], char_mode,
                            None if form == "none" else form) for t in (a, b)]  # fmt: skip
        pairs.append(Pair(row["id"], row["reason"], estimates.get(row["id"]), jaccard(*sets)))
    return pairs


def _removed_texts(
    manifest: dict, rows: dict[str, dict], text: str, storage: StorageConfig | None
) -> dict[str, str]:
    """From rejected/'s text where it was kept (output.rejected_text), else
    from the input row its lineage names."""
    if all(r.get("text") is not None for r in rows.values()):
        return {i: r["text"] for i, r in rows.items()}
    if any(r.get("source_file") is None for r in rows.values()):
        raise StorageError("the removed documents' text is neither in rejected/ "
                           "(output.rejected_text) nor reachable by lineage (output.lineage)")  # fmt: skip
    source = resolve(manifest["input"]["uri"], storage)
    wanted: dict[str, dict[int, str]] = defaultdict(dict)
    for doc, r in rows.items():
        wanted[r["source_file"]][r["source_row"]] = doc

    def read(item: tuple[str, dict[int, str]]) -> dict[str, str]:
        relpath, by_row = item
        path = posixpath.join(source.path, relpath)
        with source.fs.open(path, "rb") as handle:
            texts = pq.ParquetFile(handle).read(columns=[text]).column(0)
            return {doc: texts[row].as_py() for row, doc in by_row.items()}

    out: dict[str, str] = {}
    for part in in_threads(read, list(wanted.items())):
        out |= part
    return out
