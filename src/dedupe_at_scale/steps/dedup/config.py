"""The `dedup` config section: exact and near-duplicate removal (MinHash-LSH
signatures from stages/minhash.py, the global step in this package)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from dedupe_at_scale.sections import Require, Section, check_view

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig


class DedupConfig(Section):
    enabled: bool = True
    exact: bool = True  # identical normalized text
    near: bool = True  # MinHash-LSH
    threshold: float = 0.8  # Jaccard similarity of shingle sets
    ngram_size: int = 5  # word n-grams
    char_ngram_size: int = 5  # character n-grams for quality.unsegmented_languages
    num_perm: int = 128
    # Bands x rows; null chooses them from threshold and num_perm by band_selection.
    bands: int | None = None
    rows: int | None = None
    # "recall": steepest S-curve finding pairs at threshold + 0.05 with
    # probability >= 0.99 (verification removes the extra candidates);
    # "balanced": datasketch's equal false-positive / false-negative weights.
    band_selection: Literal["recall", "balanced"] = "recall"
    # Keep a candidate pair only if its signatures agree on at least
    # verify_threshold of their values (null: the threshold).
    verify: bool = True
    verify_threshold: float | None = None
    # Buckets with more distinct texts get star + neighbour pairs, not all pairs.
    all_pairs_limit: int = 32
    # Which document of a duplicate cluster survives: columns in priority
    # order, "-" for descending; columns absent from the data are skipped.
    keep: list[str] = Field(default_factory=lambda: ["-quality_score", "id"])
    unicode_normalization: Literal["none", "NFC", "NFKC", "NFD", "NFKD"] = "none"
    seed: int = 1
    # Post-training rows: what makes two rows duplicates. auto: the prompt
    # (instruction, chat, preference: a repeated prompt biases the model even
    # with different answers), prompt+response for reward data.
    key: Literal["auto", "prompt", "prompt+response", "conversation"] = "auto"
    # false: find the clusters (duplicates/, and splits keep them whole) but
    # keep every member.
    remove: bool = True
    # Hash partitions of the global steps; null: one per 100,000 input documents
    # (steps/base.py, partition_count).
    partitions: int | None = None
    # How the all-to-all hops move their pieces (steps/exchange.py): objects
    # (one Ray object per sender and receiver), mailboxes (actors own the
    # receivers; the driver holds one ref per task), auto: mailboxes once a
    # hop would pass more than 20,000 objects, and from verify's hop on when
    # it could carry more than the object store. The output is the same.
    exchange: Literal["auto", "objects", "mailboxes"] = "auto"

    def min_agreement(self) -> float:
        """Signature agreement a candidate pair needs to become an edge."""
        return self.verify_threshold if self.verify_threshold is not None else self.threshold

    def check(self, job: JobConfig, require: Require) -> None:
        check_view(job, require, "dedup.key", self.key)
        require(0.0 < self.threshold <= 1.0, "dedup.threshold", "must be within (0, 1]")
        require(self.ngram_size >= 1, "dedup.ngram_size", "must be >= 1")
        require(self.char_ngram_size >= 1, "dedup.char_ngram_size", "must be >= 1")
        require(1 <= self.num_perm <= 1024, "dedup.num_perm", "must be within [1, 1024]")
        bands, rows = self.bands, self.rows
        require((bands is None) == (rows is None), "dedup.bands", "and dedup.rows go together")
        if bands is not None and rows is not None:
            require(bands >= 1 and rows >= 1, "dedup.bands", "and dedup.rows must be >= 1")
            require(
                bands * rows <= self.num_perm, "dedup.bands", "x dedup.rows must be <= num_perm"
            )
        if self.verify_threshold is not None:
            require(
                0.0 < self.verify_threshold <= 1.0,
                "dedup.verify_threshold",
                "must be within (0, 1]",
            )
        require(self.all_pairs_limit >= 2, "dedup.all_pairs_limit", "must be >= 2")
        require(bool(self.keep), "dedup.keep", "must name at least one column")
        if self.partitions is not None:
            require(self.partitions >= 1, "dedup.partitions", "must be >= 1")
