"""The BPE kernel (stages/tokens/bpe.py) counts each piece as the library's
own model does (`model.tokenize`), piece by piece: on every byte, every code
point, runs that make merge ties, pieces at and past the kernel's length
limit, random bytes, real text, repeated merges, and with Llama 3's
ignore_merges."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from tokenizers import Tokenizer, pre_tokenizers

from dedupe_at_scale.stages.tokens.bpe import MAX_PIECE_BYTES, bpe_tables, count_tokens
from dedupe_at_scale.stages.tokens.counter import BYTE_LEVEL
from test_tokens import DEFAULT, EVERY_CODE_POINT, HOSTILE, llama3_style, sample_texts

TO_BYTE = {c: b for b, c in BYTE_LEVEL.items()}


def library_counts(tokenizer: Tokenizer, pieces: list[bytes]) -> np.ndarray:
    mapped = ["".join(BYTE_LEVEL[b] for b in p) for p in pieces]
    return np.array([len(tokenizer.model.tokenize(m)) for m in mapped], np.int64)


def kernel_counts(spec: dict, pieces: list[bytes]) -> np.ndarray:
    tables = bpe_tables(spec["model"], BYTE_LEVEL)
    assert tables is not None
    lengths = np.array([len(p) for p in pieces], np.int64)
    ends = np.cumsum(lengths)
    data = np.frombuffer(b"".join(pieces), np.uint8)
    return count_tokens(tables, data, ends - lengths, ends)


def adversarial_pieces(seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    split = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    texts = (
        HOSTILE
        + sample_texts(300)
        + [EVERY_CODE_POINT[i : i + 3000] for i in range(0, len(EVERY_CODE_POINT), 3000)]
    )
    pieces = {bytes(TO_BYTE[c] for c in p) for t in texts for p, _ in split.pre_tokenize_str(t)}
    pieces |= {bytes([b]) for b in range(256)}  # every byte alone
    pieces |= {bytes([a, b]) for a in range(0, 256, 7) for b in range(256)}
    # Runs whose merges tie (aaaa...), and long pieces about the kernel's limit.
    pieces |= {b"a" * n for n in range(1, 70)} | {b" " * n for n in range(1, 40)}
    pieces |= {b"ab" * (MAX_PIECE_BYTES // 2), b"x" * (MAX_PIECE_BYTES - 1), b"x" * MAX_PIECE_BYTES}
    pieces |= {"日本語のテキスト".encode() * 120, b" the" * 900}
    pieces |= {bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60))) for _ in range(3000)}
    pieces |= {rng.choice(texts)[:400].encode() for _ in range(300)}  # unsplit text: many merges
    return sorted(pieces)


@pytest.mark.parametrize("spec", ["default", "llama3", "llama3-merges"])
def test_the_kernel_counts_each_piece_as_the_library_does(spec):
    text = {
        "default": DEFAULT,
        "llama3": llama3_style(ignore_merges=True),
        "llama3-merges": llama3_style(ignore_merges=False),
    }[spec]
    pieces = adversarial_pieces()
    got = kernel_counts(json.loads(text), pieces)
    want = library_counts(Tokenizer.from_str(text), pieces)
    within = np.array([len(p) <= MAX_PIECE_BYTES for p in pieces])
    assert (got[~within] == -1).all(), "a piece past the limit is left to the library"
    wrong = np.flatnonzero(within & (got != want))
    assert not len(wrong), [(pieces[i][:40], got[i], want[i]) for i in wrong[:5]]
    assert within.sum() > 9000 and (~within).any()


def tiny_bpe(merges: list[list[str]], **model: object) -> dict:
    vocab = {BYTE_LEVEL[b]: b for b in range(256)}
    for token in ("bc", "ab", "abc"):
        vocab[token] = len(vocab)
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": None, "post_processor": None, "decoder": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False,
                  "byte_fallback": False, "ignore_merges": False, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "vocab": vocab, "merges": merges, **model},
    }  # fmt: skip


@pytest.mark.parametrize(
    "merges",
    [
        [["b", "c"], ["a", "b"], ["b", "c"], ["ab", "c"]],  # b c repeated: its last rank counts
        [["b", "c"], ["a", "b"], ["ab", "c"]],
        ["a b", "b c", "ab c"],  # the older "a b" spelling
    ],
)
def test_merge_order_and_repeated_merges_follow_the_library(merges):
    spec = tiny_bpe(merges)
    pieces = [b"abc", b"abcabc", b"aabbcc", b"cba", b"bcab"]
    want = library_counts(Tokenizer.from_str(json.dumps(spec)), pieces)
    assert list(kernel_counts(spec, pieces)) == list(want)


def test_models_the_kernel_does_not_run_are_left_to_the_library():
    assert bpe_tables(tiny_bpe([], continuing_subword_prefix="##")["model"], BYTE_LEVEL) is None
    spec = tiny_bpe([])
    del spec["model"]["vocab"][BYTE_LEVEL[0]]  # a byte without a token
    assert bpe_tables(spec["model"], BYTE_LEVEL) is None
