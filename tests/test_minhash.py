"""MinHash signatures against exact Jaccard and against datasketch, no Ray."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from datasketch import MinHash, MinHashLSH
from datasketch.lsh import _optimal_param

from dedupe_at_scale.kernels.minhash import agreement_kernel
from dedupe_at_scale.stages.minhash import (
    EMPTY,
    MinHashParams,
    band_keys,
    candidate_probability,
    choose_bands,
    estimated_jaccard,
    normalize,
    signatures,
    sparse_spaces,
)

PARAMS = MinHashParams()  # 128 permutations, word 5-grams, 16 x 8 bands


def shingles(text: str, n: int = 5) -> set[str]:
    words = text.split()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)} or {" ".join(words)}


def jaccard(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


def sign(texts: list[str], char_mode: bool = False) -> tuple[np.ndarray, np.ndarray]:
    normalized = normalize(pa.array(texts, pa.string()))
    return signatures(normalized, np.full(len(texts), char_mode), PARAMS)


def pair_with_overlap(rng: random.Random, words: int, changed: int) -> tuple[str, str]:
    vocab = [f"w{i}" for i in range(5000)]
    a = [rng.choice(vocab) for _ in range(words)]
    b = list(a)
    for i in rng.sample(range(words), changed):
        b[i] = rng.choice(vocab)
    return " ".join(a), " ".join(b)


def test_estimates_track_exact_jaccard():
    rng = random.Random(0)
    errors = []
    for changed in [0, 1, 2, 4, 8, 16, 30, 60]:
        for _ in range(5):
            a, b = pair_with_overlap(rng, 300, changed)
            sigs, _ = sign([a, b])
            errors.append(estimated_jaccard(sigs[0], sigs[1]) - jaccard(a, b))
    errors = np.abs(errors)
    # Standard error at 128 permutations is at most 0.044.
    assert errors.mean() < 0.035
    assert errors.max() < 0.15


def test_agrees_with_datasketch_minhash_on_the_same_shingles():
    rng = random.Random(1)
    ours, theirs, exact = [], [], []
    for changed in [1, 3, 6, 12, 25, 50]:
        for _ in range(4):
            a, b = pair_with_overlap(rng, 250, changed)
            sigs, _ = sign([a, b])
            ours.append(estimated_jaccard(sigs[0], sigs[1]))
            m = [MinHash(num_perm=128, seed=7), MinHash(num_perm=128, seed=7)]
            for mh, text in zip(m, (a, b)):
                mh.update_batch([s.encode() for s in shingles(text)])
            theirs.append(m[0].jaccard(m[1]))
            exact.append(jaccard(a, b))
    ours, theirs, exact = map(np.array, (ours, theirs, exact))
    assert np.abs(ours - theirs).mean() < 0.05
    assert np.corrcoef(ours, exact)[0, 1] > 0.98
    assert np.corrcoef(theirs, exact)[0, 1] > 0.98


def test_lsh_candidates_agree_with_datasketch_minhashlsh():
    rng = random.Random(2)
    bands, rows = choose_bands(0.8, 128)
    lsh = MinHashLSH(num_perm=128, params=(bands, rows))
    queries, truth = [], []
    for k, changed in enumerate([0, 1, 2, 3, 5, 8, 15, 30, 60, 120] * 4):
        a, b = pair_with_overlap(rng, 200, changed)
        mh = MinHash(num_perm=128, seed=3)
        mh.update_batch([s.encode() for s in shingles(a)])
        lsh.insert(f"a{k}", mh)
        queries.append((k, a, b))
        truth.append(jaccard(a, b))
    agree = 0
    for (k, a, b), j in zip(queries, truth):
        mh = MinHash(num_perm=128, seed=3)
        mh.update_batch([s.encode() for s in shingles(b)])
        theirs = f"a{k}" in lsh.query(mh)
        sigs, _ = sign([a, b])
        keys = band_keys(sigs, bands, rows)
        ours = bool((keys[0] == keys[1]).any())
        agree += ours == theirs
        if j >= 0.9:
            assert ours and theirs, j
        if j <= 0.4:
            assert not ours and not theirs, j
    assert agree / len(queries) >= 0.9


def test_balanced_band_choice_matches_datasketch():
    for threshold, num_perm in [(0.8, 128), (0.8, 112), (0.7, 64), (0.9, 96)]:
        assert choose_bands(threshold, num_perm, "balanced") == _optimal_param(
            threshold, num_perm, 0.5, 0.5
        )


def test_default_s_curve():
    bands, rows = choose_bands(0.8, 128)
    assert (bands, rows) == (16, 8)
    assert candidate_probability(0.85, bands, rows) >= 0.99
    assert candidate_probability(0.5, bands, rows) < 0.07


def test_short_documents_do_not_collide_with_each_other():
    sigs, _ = sign(["red apples", "green pears", "red apples", ""])
    assert estimated_jaccard(sigs[0], sigs[2]) == 1.0
    assert estimated_jaccard(sigs[0], sigs[1]) < 0.1
    assert (sigs[3] == EMPTY).all()


def test_chinese_is_shingled_by_characters():
    a = "我们的邻居是一位历史老师她出版了一本关于山谷徒步路线的指南书籍内容非常丰富"
    b = a.replace("丰富", "有趣")
    c = "今天的天气非常好我们一起去公园散步然后在湖边吃了午饭大家都很开心"
    sigs, _ = sign([a, b, c], char_mode=True)
    assert estimated_jaccard(sigs[0], sigs[1]) > 0.7
    assert estimated_jaccard(sigs[0], sigs[2]) < 0.1
    words, _ = sign([a, b], char_mode=False)  # one "word" each: no overlap at all
    assert estimated_jaccard(words[0], words[1]) < 0.1


def test_exact_hash_ignores_case_punctuation_and_spacing():
    _, exact = sign(["Hello, World!  Again", "hello world again", "hello world agai"])
    assert (exact[0] == exact[1]).all()
    assert not (exact[0] == exact[2]).all()


def test_band_keys_separate_bands():
    sigs = np.zeros((1, 128), dtype=np.uint32)
    keys = band_keys(sigs, 16, 8)
    assert len(set(keys[0].tolist())) == 16  # equal values in different bands never meet


@pytest.mark.parametrize("n", [0, 1])
def test_empty_inputs(n):
    sigs, exact = sign(["x y z"] * n)
    assert sigs.shape == (n, 128) and exact.shape == (n, 2)


def test_sparse_spaces_spots_unsegmented_scripts():
    texts = pa.array(
        ["我们的邻居是一位历史老师。她出版了一本指南。", "a normal english sentence here", ""]
    )
    assert sparse_spaces(texts).tolist() == [True, False, True]


def sparse_spaces_reference(texts: pa.Array, max_ratio: float = 0.05) -> np.ndarray:
    """sparse_spaces as Arrow's compute functions say it (two passes)."""
    spaces = pc.count_substring(texts, " ").to_numpy(zero_copy_only=False)
    length = pc.utf8_length(texts).to_numpy(zero_copy_only=False)
    return spaces < max_ratio * np.maximum(length, 1)


@pytest.mark.parametrize("max_ratio", [0.05, 0.0, 0.2, 1.0])
def test_sparse_spaces_equal_arrows_count(max_ratio):
    """The one-pass kernel decides as count_substring / utf8_length do: on
    every code point, whitespace that is not U+0020, nulls, a slice."""
    texts = pa.array(hostile_texts() + [None, "a b", "  ", "日本 語"], pa.string())
    for array in (texts, texts.slice(7, 300), pa.array([], pa.string())):
        got = sparse_spaces(array, max_ratio)
        assert got.dtype == np.bool_
        assert got.tolist() == sparse_spaces_reference(array, max_ratio).tolist()
    assert 0 < sparse_spaces(texts).sum() < len(texts)


EVERY_CODE_POINT = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
HOSTILE = [
    "", " ", "\t\n\x0b\x0c\r", "İstanbul ıi İI ǅ ǆ Σίσυφος ΣΑΣ ß ẞ ﬁ", "Ⱥ ⱥ Ȿ", "½ ⅔ ٣٤ ๕ ⑴ ①",
    "e\u0301t\u00e9 naïve café", "日本語のテキスト。中文，标点", "😀😀 x😀 👩‍👩‍👧 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "a\u00a0b\u3000c\u2028d\u2029e\u0085f\u200bg", "x" * 5000, "word-word_word.word,word", "-- ..",
    "C++ / C# ; std::vector<int> x = {1, 2};", "\x00\x01\x1c\x1d\x1e\x1f", "ＦＵＬＬ ｗｉｄｔｈ",
]  # fmt: skip


def hostile_texts(n: int = 400, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    slices = [EVERY_CODE_POINT[i : i + 700] for i in range(0, len(EVERY_CODE_POINT), 700)]
    words = "The River that runs through the OLD town shaped its people's lives".split()
    pool = HOSTILE + slices + [" ".join(rng.choices(words, k=12)) for _ in range(50)]
    made = ["".join(rng.choice(pool) + rng.choice(["", " ", "\n", ". "]) for _ in range(5))
            for _ in range(n)]  # fmt: skip
    return HOSTILE + slices + made


@pytest.mark.parametrize("unicode_form", [None, "NFKC"])
def test_one_pass_signatures_equal_the_normalized_reference(unicode_form):
    """text_signatures (one kernel over the raw texts) gives what normalize()
    then signatures() give, on every code point, in word and in char mode."""
    from dedupe_at_scale.stages.minhash import text_signatures, word_tables

    assert word_tables() is not None, "this Arrow lower-cases one code point to one"
    texts = pa.array(hostile_texts(), pa.string())
    for char_mode in (sparse_spaces(texts), np.zeros(len(texts), bool), np.ones(len(texts), bool)):
        want = signatures(normalize(texts, unicode_form), char_mode, PARAMS)
        got = text_signatures(texts, char_mode, PARAMS, unicode_form)
        wrong = np.flatnonzero((got[0] != want[0]).any(axis=1) | (got[1] != want[1]).any(axis=1))
        assert not len(wrong), [texts[int(i)].as_py()[:50] for i in wrong[:5]]
    large = pa.array(texts.to_pylist()[:50], pa.large_string())
    want = signatures(normalize(large, unicode_form), np.zeros(50, bool), PARAMS)
    got = text_signatures(large, np.zeros(50, bool), PARAMS, unicode_form)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def reference_word_signature(text: str, params: MinHashParams) -> np.ndarray:
    """A signature the slow, obvious way: each word 5-gram's hash (the kernel's
    token hash and combine), then every permutation (a * h + b mod 2^64, top 32
    bits) of every shingle in one numpy matrix, and its minimum per row."""
    from dedupe_at_scale.kernels.minhash import TOKEN_SEED, _combine, _fnv

    words = [np.frombuffer(w.encode(), np.uint8) for w in text.split()]
    hashes = np.array([_fnv(w, 0, len(w), TOKEN_SEED) for w in words], np.uint64)
    n = min(params.ngram_size, len(hashes))
    shingles = np.array(
        [_combine(hashes, i, i + n, np.uint64(3)) for i in range(len(hashes) - n + 1)], np.uint64
    )
    a, b = params.permutations()
    with np.errstate(over="ignore"):
        values = (a[:, None] * shingles[None, :] + b[:, None]) >> np.uint64(32)
    return values.astype(np.uint32).min(axis=1)


def test_signatures_are_the_minimum_over_every_shingle_and_permutation():
    rng = random.Random(3)
    vocab = ["a", "zz", "w0", "w1", "longer", "words", "x9", "q"] + [f"v{i}" for i in range(200)]
    # One word to thousands: fewer words than the shingle size, and shingles
    # whose products wrap around 2^64 in every permutation.
    texts = [" ".join(rng.choice(vocab) for _ in range(k)) for k in (1, 2, 4, 5, 6, 50, 3000)]
    texts += [" ".join(rng.choice(vocab) for _ in range(rng.randrange(1, 400))) for _ in range(40)]
    got, _ = sign(texts)
    for text, signature in zip(texts, got):
        assert np.array_equal(signature, reference_word_signature(text, PARAMS)), text[:60]


@pytest.mark.parametrize(("width", "threshold"), [(128, 0.75), (128, 0.8), (100, 0.8), (7, 3 / 7)])
def test_agreement_kernel_decides_as_numpy_does(width, threshold):
    """Verify's kernel against `(a == b).mean() >= threshold`, with pairs at
    every count of equal values, exactly at the bound included."""
    rng = np.random.default_rng(width)
    left = rng.integers(0, 2**32, (50, width), dtype=np.uint32)
    right = rng.integers(0, 2**32, (60, width), dtype=np.uint32)
    left_rows, right_rows = rng.integers(0, 50, 3000), rng.integers(0, 60, 3000)
    for i, (a, b) in enumerate(zip(left_rows, right_rows)):
        equal = rng.choice(width, i % (width + 1), replace=False)
        right[b, equal] = left[a, equal]
        want = (left[a] == right[b]).mean() >= threshold
        got = np.empty(1, np.bool_)
        agreement_kernel(left, left_rows[i : i + 1], right, right_rows[i : i + 1], threshold, got)
        assert got[0] == want
    out = np.empty(len(left_rows), np.bool_)
    agreement_kernel(left, left_rows, right, right_rows, threshold, out)
    assert (
        out.tolist() == ((left[left_rows] == right[right_rows]).mean(axis=1) >= threshold).tolist()
    )
    assert 0 < out.sum() < len(out)
