"""The n-gram kernel (stages/quality/ngrams.py) against the per-document
reference (text.top_ngram_chars / duplicated_ngram_chars), ties included."""

from __future__ import annotations

import random

import pyarrow.parquet as pq
import pytest

from dedupe_at_scale import text as textlib
from dedupe_at_scale.stages.quality.ngrams import ngram_chars

TOP, DUP = (2, 3, 4), (5, 6, 7, 8, 9, 10)


def reference(words: list[str]) -> tuple[list[int], list[int]]:
    top = [textlib.top_ngram_chars(words, n) for n in TOP]
    dup = [textlib.duplicated_ngram_chars(words, n) for n in DUP]
    return top, dup


def word_lists(seed: int) -> list[list[str]]:
    """Small vocabularies make many repeats and many ties between n-grams."""
    rng = random.Random(seed)
    lists: list[list[str]] = [[], ["x"], ["a", "a"], ["a"] * 12, ["ab", "a", "b"] * 5]
    for vocabulary in (["a", "b"], ["x", "y", "zz", "w"], ["é", "日本", "😀", "a\u0301"]):
        lists += [[rng.choice(vocabulary) for _ in range(rng.randrange(0, 40))] for _ in range(400)]
    # Boundary lengths: exactly n words, n + 1 words.
    lists += [["p", "q"] * k for k in range(1, 12)]
    return lists


def test_kernel_equals_the_reference_on_repetitive_word_lists():
    lists = word_lists(seed=1)
    top, dup = ngram_chars(lists, TOP, DUP)
    for i, words in enumerate(lists):
        assert (top[i].tolist(), dup[i].tolist()) == reference(words), words


@pytest.mark.parametrize(
    ("top_ns", "dup_ns"),
    [((1, 3, 7), (2, 4, 5, 9)), ((5, 6), (5, 6)), ((12,), ()), ((), (3,)), ((2, 3, 4), (3, 11))],
)
def test_every_choice_of_n_equals_the_reference(top_ns, dup_ns):
    # Each n looks only where the n before it repeated: gaps between the n's,
    # an n that is both a top and a duplicate n, and n's past a document's
    # length must not change a count.
    lists = word_lists(seed=2)
    top, dup = ngram_chars(lists, top_ns, dup_ns)
    for i, words in enumerate(lists):
        expected_top = [textlib.top_ngram_chars(words, n) for n in top_ns]
        expected_dup = [textlib.duplicated_ngram_chars(words, n) for n in dup_ns]
        assert (top[i].tolist(), dup[i].tolist()) == (expected_top, expected_dup), words


def test_n_gram_sizes_out_of_order_are_refused():
    with pytest.raises(ValueError, match="must ascend"):
        ngram_chars([["a", "b", "a", "b"]], (3, 2), ())


def test_kernel_equals_the_reference_on_the_sample(sample_dir):
    texts = pq.read_table(sample_dir, columns=["text"]).column("text").to_pylist()
    lists = [" ".join(textlib.words(t)).lower().split(" ") if t.strip() else [] for t in texts]
    top, dup = ngram_chars(lists, TOP, DUP)
    for i, words in enumerate(lists):
        assert (top[i].tolist(), dup[i].tolist()) == reference(words)


def test_the_python_mixer_equals_the_kernel_on_edge_values():
    # hash_word (stop words, plain Python) must hash as the numba kernel does.
    import numpy as np

    from dedupe_at_scale.kernels.hashing import MASK64, mix, mix_int

    values = [0, 1, 2**31, 2**32 - 1, 2**63, MASK64, 0x9E3779B97F4A7C15]
    values += [int(v) for v in np.random.default_rng(0).integers(0, 2**63, 200, dtype=np.int64)]
    assert [mix_int(v) for v in values] == [int(mix(np.uint64(v))) for v in values]
