"""Token counts: the fast counter equals the tokenizer's own encode_batch on
hostile text (every code point, contractions, whitespace runs, added tokens),
other tokenizers take the reference path, and the job reports tokens per
stage, per group and as a mixture unit."""

from __future__ import annotations

import json
import random

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer, normalizers

from dedupe_at_scale.cli import main
from dedupe_at_scale.config import ConfigError, StorageConfig, config_from_dict
from dedupe_at_scale.kernels.codepoints import utf8_size
from dedupe_at_scale.sample import bank, clean_document
from dedupe_at_scale.stages.tokens.classes import probe, regex_classes
from dedupe_at_scale.stages.tokens.counter import TokenCounter, ascii_invariant, reference_counts
from dedupe_at_scale.stages.tokens.default import DEFAULT_TOKENIZER
from dedupe_at_scale.stages.tokens.pretokens import (
    CL100K,
    GPT2,
    LETTER,
    gpt2_pieces,
    next_piece,
    next_piece_cl100k,
)
from test_job import write_config

DEFAULT = DEFAULT_TOKENIZER.read_text()
EVERY_CODE_POINT = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
HOSTILE = [
    "", " ", "  x", "a  b", "a   b", "\n\nx", "x\n", " \n x", "\t x", "x ",
    "it's we'll I'D 're 'x ' '' 's", " 's", "!'s", "x'S", "don't ' ll",
    "  \t\n  ", "\r\n\r\n", "1234 5six 7.8 ½ ⅔ ٣٤ ๕", "日本語のテキスト。中文，标点", "e\u0301t\u00e9 naïve",
    "😀😀 x😀 👩‍👩‍👧", "\u3000\u3000a", "\u0085x\u00a0y", "a\u2028b\u2029", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ",
    "\x00\x01\x1c\x1d\x1e\x1f", "x" * 5000, " " * 300 + "y", "!!! ??? ...", "<|endoftext|>",
]  # fmt: skip


def sample_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    languages = sorted(bank.BANK)
    return [clean_document(rng, rng.choice(languages)) for _ in range(n)]


def shuffled_hostile(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    slices = [EVERY_CODE_POINT[i : i + 2000] for i in range(0, len(EVERY_CODE_POINT), 2000)]
    pool = HOSTILE + slices
    return [
        "".join(rng.choice(pool) + rng.choice(["", " ", "\n", "'s "]) for _ in range(6))
        for _ in range(n)
    ]


def assert_counts_equal(counter: TokenCounter, texts: list[str]) -> None:
    got = counter.count(pa.array(texts))
    want = reference_counts(counter.tokenizer, texts)
    wrong = np.flatnonzero(got != want)
    assert not len(wrong), [(texts[i][:60], got[i], want[i]) for i in wrong[:5]]


def test_default_tokenizer_is_counted_natively_and_exactly():
    counter = TokenCounter(DEFAULT, regex_classes())
    assert counter.fast
    slices = [EVERY_CODE_POINT[i : i + 3000] for i in range(0, len(EVERY_CODE_POINT), 3000)]
    assert_counts_equal(counter, HOSTILE + slices)
    assert_counts_equal(counter, shuffled_hostile(500))
    texts = sample_texts(2000)
    assert_counts_equal(counter, texts)  # cold cache
    assert_counts_equal(counter, texts)  # every piece now cached


# Meta-Llama-3's pre-tokenizer pattern (GPT-4's cl100k), as its tokenizer.json has it.
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_HOSTILE = [
    "\n\n  hello", "  \n  x", "x!!\n\n y", ".\n hello", "\t\tword", "\u00a0word",
    "12345678 1 22 333 4444 55555", "'S 'T 'Re 'VE 'Ll 'lL 'ſ 'D 'M 'rE 'Ve 'K",
    " \r\n\t\r x", "(hello) [x] {y} \"q\"", "?!\r\r\nz", "   123", " !x", "  !x", "!\n\n",
    "'s'S'ss", "\r", "\n", " \n", "a\n\n\n", "x \u2028 y", "٣٤٥٦٧ ⅔⅔⅔⅔",
]  # fmt: skip
# Every kind of line break (those in [\r\n] and the other \s ones) between
# every class of neighbour: letters of several scripts, digits, blanks,
# punctuation, a contraction, nothing.
LINE_BREAKS = ["\r", "\n", "\r\n", "\n\r", "\r\r", "\x0b", "\x0c", "\x85", "\u2028", "\u2029"]
NEIGHBOURS = ["", "a", "Z", "é", "中", "7", "٣", " ", "\t", "\u00a0", "!", ".", "'s", "'X"]
LINE_BREAK_MATRIX = [
    "".join(f"{left}{brk}{right}" for right in NEIGHBOURS) + "|" + "".join(
        f"{left}{brk}{right}x" for right in NEIGHBOURS)
    for brk in LINE_BREAKS for left in NEIGHBOURS
]  # fmt: skip
LLAMA3_HOSTILE += LINE_BREAK_MATRIX + [
    f"{left}{brk}{right}" for brk in LINE_BREAKS for left in NEIGHBOURS for right in NEIGHBOURS
]


def llama3_style(digits: str = "{1,3}", ignore_merges: bool = True) -> str:
    """The default tokenizer's BPE behind Llama 3's pre-tokenizer (a Split by
    its pattern, then ByteLevel without regex; Llama 3 also ignores merges)."""
    from tokenizers import Regex, pre_tokenizers

    tokenizer = Tokenizer.from_str(DEFAULT)
    pattern = LLAMA3_PATTERN.replace("{1,3}", digits)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])  # fmt: skip
    spec = json.loads(tokenizer.to_str())
    spec["model"]["ignore_merges"] = ignore_merges
    return json.dumps(spec)


def contraction_probes() -> list[str]:
    """Every letter after an apostrophe, alone and before e and l: which of
    them the pattern's case-insensitive contractions take."""
    letters = [chr(c) for c in np.flatnonzero(regex_classes() == LETTER)]
    probes = [f"'{c}x" for c in letters] + [f"'{c}{e}x" for c in letters for e in "eElL"]
    return ["\n".join(probes[i : i + 4000]) for i in range(0, len(probes), 4000)]


def native_pieces(text: str, pattern: int, digits: int) -> list[tuple[int, int]]:
    cps = np.array([ord(c) for c in text], np.int32)
    classes, spans, i = regex_classes(), [], 0
    while i < len(cps):
        if pattern == GPT2:
            end = next_piece(cps, classes, i, len(cps))
        else:
            end = next_piece_cl100k(cps, classes, i, len(cps), digits)
        spans.append((i, int(end)))
        i = int(end)
    return spans


def one_pass_pieces(text: str) -> list[tuple[int, int]]:
    """gpt2_pieces' spans, in code points."""
    cps = np.array([ord(c) for c in text], np.int32)
    keys, ends = np.empty(len(cps), np.uint64), np.empty(len(cps), np.int64)
    count = gpt2_pieces(cps, len(cps), regex_classes(), 0, keys, ends)
    at_byte, offset = {0: 0}, 0  # byte offset -> code point offset
    for i, c in enumerate(text):
        offset += len(c.encode())
        at_byte[offset] = i + 1
    bounds = [0] + [at_byte[int(e)] for e in ends[:count]]
    return list(zip(bounds, bounds[1:]))


@numba.njit
def _mismatches(alphabet, length, classes):
    """Strings of `length` over `alphabet` (every one) on which gpt2_pieces
    and next_piece cut differently (as byte offsets)."""
    m = len(alphabet)
    cps = np.empty(length, np.int32)
    keys, ends = np.empty(length, np.uint64), np.empty(length, np.int64)
    want = np.empty(length, np.int64)
    bad = 0
    for code in range(m**length):
        x = code
        for p in range(length):
            cps[p] = alphabet[x % m]
            x //= m
        count = gpt2_pieces(cps, length, classes, 0, keys, ends)
        i = pieces = offset = 0
        while i < length:
            end = next_piece(cps, classes, i, length)
            for p in range(i, end):
                offset += utf8_size(cps[p])
            want[pieces] = offset
            i, pieces = end, pieces + 1
        bad += count != pieces or not np.array_equal(ends[:count], want[:pieces])
    return bad


def test_one_pass_pieces_equal_next_piece_on_every_short_string():
    """Every string of up to 5 code points over apostrophes, the contractions'
    letters, other letters, a digit, blanks, other whitespace, a symbol and
    non-ASCII letters: gpt2_pieces cuts as the leftmost-match scan does."""
    alphabet = np.array([ord(c) for c in "'strevlmdaS1 \t\n-é中"], np.int32)
    for length in range(1, 6):
        assert _mismatches(alphabet, length, regex_classes()) == 0, length


@pytest.mark.parametrize(
    "pattern, digits",
    [(GPT2, 0), (CL100K, 3), (CL100K, 1)],
    ids=["gpt2", "llama3", "llama3-1digit"],
)
def test_pieces_are_the_library_regex_pieces(pattern, digits):
    """Piece by piece, not only in total: a wrong cut can leave a count
    unchanged on one vocabulary and change it on another."""
    from tokenizers import Regex, pre_tokenizers

    if pattern == GPT2:
        split = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        regex = LLAMA3_PATTERN.replace("{1,3}", "{1,3}" if digits == 3 else "")
        split = pre_tokenizers.Split(Regex(regex), behavior="isolated")
    slices = [EVERY_CODE_POINT[i : i + 20000] for i in range(0, len(EVERY_CODE_POINT), 20000)]
    texts = HOSTILE + LLAMA3_HOSTILE + contraction_probes() + slices + shuffled_hostile(100)
    for text in texts:
        want = [span for _, span in split.pre_tokenize_str(text)]
        got = native_pieces(text, pattern, digits)
        if pattern == GPT2 and got == want:
            got = one_pass_pieces(text)
        if got != want:
            at = next(k for k, (g, w) in enumerate(zip(got + [None], want + [None])) if g != w)
            start = (got[at] or want[at])[0]
            pytest.fail(f"{text[max(0, start - 5) : start + 10]!r}: {got[at]} != {want[at]}")


@pytest.mark.parametrize("digits, ignore_merges", [("{1,3}", True), ("", False)])
def test_llama3_pre_tokenizer_is_counted_natively_and_exactly(digits, ignore_merges):
    counter = TokenCounter(llama3_style(digits, ignore_merges), regex_classes())
    assert counter.fast
    slices = [EVERY_CODE_POINT[i : i + 3000] for i in range(0, len(EVERY_CODE_POINT), 3000)]
    assert_counts_equal(counter, HOSTILE + LLAMA3_HOSTILE + slices)
    assert_counts_equal(counter, contraction_probes())
    assert_counts_equal(counter, shuffled_hostile(500))
    assert_counts_equal(counter, sample_texts(1000))


def test_other_split_patterns_take_the_reference_path():
    spec = json.loads(llama3_style())
    spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] += "|x"
    counter = TokenCounter(json.dumps(spec), regex_classes())
    assert not counter.fast and "Llama 3" in counter.problem
    assert_counts_equal(counter, LLAMA3_HOSTILE)


def test_nulls_count_zero_and_chunked_arrays_work():
    counter = TokenCounter(DEFAULT, regex_classes())
    chunked = pa.chunked_array([["a b", None], ["c"]])
    assert counter.count(chunked).tolist() == [2, 0, 1]


def test_the_code_point_table_is_what_the_library_says():
    """The shipped (or cached) table equals a fresh probe of the installed
    tokenizers; Python's unicodedata would differ on about 9,000 letters."""
    assert np.array_equal(regex_classes(), probe())


def test_added_tokens_take_the_reference_path():
    tokenizer = Tokenizer.from_str(DEFAULT)
    tokenizer.add_special_tokens(["<|endoftext|>"])
    tokenizer.add_tokens(["hello world"])
    counter = TokenCounter(tokenizer.to_str(), regex_classes())
    assert counter.fast
    texts = ["a <|endoftext|> b", "say hello world twice: hello world", "plain text"]
    assert_counts_equal(counter, texts + shuffled_hostile(50))
    assert counter.count(pa.array(["<|endoftext|>"])).tolist() == [1]


NORMALIZERS = {
    "nfc": lambda: normalizers.NFC(),  # Qwen2's
    "nfkc": lambda: normalizers.NFKC(),
    "lowercase": lambda: normalizers.Lowercase(),
    "nfd-strip-accents": lambda: normalizers.Sequence(
        [normalizers.NFD(), normalizers.StripAccents()]
    ),
}


@pytest.mark.parametrize(
    "name, llama3",
    [("nfc", True), ("nfkc", False), ("lowercase", True), ("nfd-strip-accents", False)],
)
def test_normalizers_run_before_the_native_pre_tokenizer(name, llama3):
    tokenizer = Tokenizer.from_str(llama3_style() if llama3 else DEFAULT)
    tokenizer.normalizer = NORMALIZERS[name]()
    tokenizer.add_tokens(["hello world"])  # matched after normalizing: HELLO WORLD too
    counter = TokenCounter(tokenizer.to_str(), regex_classes())
    assert counter.fast
    slices = [EVERY_CODE_POINT[i : i + 3000] for i in range(0, len(EVERY_CODE_POINT), 3000)]
    shouting = ["say HELLO WORLD, Hello World", "ÉCOLE e\u0301cole ﬁne ① Ⅻ"]
    assert_counts_equal(counter, HOSTILE + LLAMA3_HOSTILE + shouting + slices)
    assert_counts_equal(counter, shuffled_hostile(200) + sample_texts(200))


def test_only_normalizers_that_keep_ascii_skip_ascii_texts():
    def spec(normalizer) -> dict:
        tokenizer = Tokenizer.from_str(DEFAULT)
        tokenizer.normalizer = normalizer
        return json.loads(tokenizer.to_str())["normalizer"]

    assert ascii_invariant(spec(normalizers.NFC()))
    assert ascii_invariant(
        spec(normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents()]))
    )
    assert not ascii_invariant(spec(normalizers.Lowercase()))
    assert not ascii_invariant(
        spec(normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()]))
    )
    assert not ascii_invariant(spec(normalizers.Replace("a", "b")))


def test_other_tokenizers_are_counted_by_the_library():
    from tokenizers import pre_tokenizers

    tokenizer = Tokenizer.from_str(DEFAULT)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    counter = TokenCounter(tokenizer.to_str(), regex_classes())
    assert not counter.fast and "Metaspace" in counter.problem
    assert_counts_equal(counter, HOSTILE + sample_texts(50))


def test_bad_tokenizer_files_name_the_file(tmp_path):
    from dedupe_at_scale.job.plan import StorageFiles
    from dedupe_at_scale.stages.tokens import TokensStage

    def prepare(path):
        cfg = config_from_dict({"tokens": {"tokenizer": str(path)}})
        return TokensStage.prepare(cfg, StorageFiles(StorageConfig()))

    with pytest.raises(ConfigError, match="tokens.tokenizer: cannot read .*missing.json"):
        prepare(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": 1}')
    with pytest.raises(ConfigError, match="bad.json is not a Hugging Face tokenizer.json"):
        prepare(bad)


def test_tokens_unit_needs_the_tokens_stage(tmp_path):
    from dedupe_at_scale.config import load_config

    spec = {
        "tokens": {"enabled": False},
        "mixture": {"enabled": True, "weights": {"web": 1}, "unit": "tokens"},
    }
    with pytest.raises(ConfigError, match="mixture.unit.*tokens.enabled"):
        load_config(write_config(tmp_path / "c.yaml", spec))


def test_job_counts_tokens_per_row_stage_and_group(ray_cluster, sample_dir, tmp_path):
    """n_tokens of every kept row is the tokenizer's own count; the manifest's
    tokens add up per stage and per rule, exactly with `count: all`; a tokens
    mixture hits its target."""
    total = 300_000
    spec = {
        "tokens": {"count": "all"},
        "mixture": {
            "enabled": True, "group_column": "source", "unit": "tokens", "total": total,
            "weights": {"web": 0.4, "news": 0.3, "forum": 0.2, "encyclopedia": 0.1},
            "max_repeats": 3,
        },
        "output": {"rejected_text": True},
    }  # fmt: skip
    config = write_config(tmp_path / "job.yaml", spec)
    out = tmp_path / "out"
    args = ["run", "--input", str(sample_dir), "--output", str(out), "--config", str(config)]
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    data = pq.read_table(out / "data")
    tokenizer = Tokenizer.from_str(DEFAULT)
    texts = data.column("text").to_pylist()
    assert data.column("n_tokens").to_pylist() == reference_counts(tokenizer, texts).tolist()

    tokens = manifest["tokens"]
    assert tokens["input"] == tokens["kept"] + tokens["rejected"]
    assert tokens["written"] == pc_sum(data, "n_tokens")
    stages = manifest["counts"]["stages"]
    assert stages["input"]["tokens_in"] == tokens["input"]
    assert list(stages.values())[-1]["tokens_kept"] == tokens["kept"]
    for name, stage in stages.items():
        assert stage["tokens_rejected"] == sum(tokens["rules"].get(name, {}).values())
    # Rejected rows' tokens equal a count of their text in rejected/.
    rejected = pq.read_table(out / "rejected")
    by_stage: dict[str, int] = {}
    for stage, n in zip(
        rejected.column("stage").to_pylist(),
        reference_counts(tokenizer, rejected.column("text").to_pylist()),
    ):
        by_stage[stage] = by_stage.get(stage, 0) + int(n)
    assert by_stage == {s: v["tokens_rejected"] for s, v in stages.items() if v["tokens_rejected"]}
    groups = manifest["mixture"]["groups"]
    assert abs(sum(g["tokens_written"] for g in groups.values()) - total) < 0.01 * total
    for group, g in groups.items():
        assert abs(g["achieved_share"] - g["target_share"]) < 0.01, group


def test_counting_only_kept_rows_estimates_the_rest_from_bytes(ray_cluster, sample_dir, tmp_path):
    """tokens.count: kept: data/ has the same exact counts; the manifest
    estimates the tokens of rows a per-document stage rejected from their
    bytes (close to their real count on the sample) and has the exact count
    of those a global step (dedup) removed."""
    from dedupe_at_scale.stages import REGISTRY

    spec = {"tokens": {"count": "kept"}, "output": {"rejected_text": True}}
    config = write_config(tmp_path / "job.yaml", spec)
    out = tmp_path / "out"
    args = ["run", "--input", str(sample_dir), "--output", str(out), "--config", str(config)]
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    tokenizer = Tokenizer.from_str(DEFAULT)
    data = pq.read_table(out / "data")
    texts = data.column("text").to_pylist()
    assert data.column("n_tokens").to_pylist() == reference_counts(tokenizer, texts).tolist()

    per_document = {stage.stage for stage in REGISTRY if stage.stage}
    rejected = pq.read_table(out / "rejected").to_pylist()
    early = [r for r in rejected if r["stage"] in per_document]
    late = [r for r in rejected if r["stage"] not in per_document]
    assert early and late, "the sample has rejections of both kinds"
    exact_late = reference_counts(tokenizer, [r["text"] for r in late])

    tokens = manifest["tokens"]
    assert tokens["counted"] == "kept"
    estimated = tokens["estimated"]
    # Most of the rejected rows' bytes were estimated; a sample was counted.
    early_bytes = sum(len((r["text"] or "").encode()) for r in early)
    assert 0.75 * early_bytes < estimated["from_bytes"] < early_bytes
    exact_early = int(reference_counts(tokenizer, [r["text"] or "" for r in early]).sum())
    stages = manifest["counts"]["stages"]
    early_tokens = sum(stages[s]["tokens_rejected"] for s in per_document if s in stages)
    assert abs(early_tokens - exact_early) < 0.1 * exact_early, (early_tokens, exact_early)
    assert tokens["input"] == tokens["kept"] + tokens["rejected"]
    late_tokens = sum(v["tokens_rejected"] for s, v in stages.items() if s not in per_document)
    assert late_tokens == int(exact_late.sum())  # counted, exactly
    assert tokens["rejected"] == early_tokens + late_tokens
    assert tokens["kept"] == pc_sum(data, "n_tokens")


def test_the_token_estimate_uses_the_sample_of_the_same_rule_then_stage():
    from dedupe_at_scale import columns as col
    from dedupe_at_scale.stages.tokens.estimate import TOKENS, TokenEstimate

    def row(stage, rule, tokens, counted, uncounted):
        return {col.STAGE: stage, col.RULE: rule, col.LANGUAGE: "en", TOKENS: tokens,
                col.TOKENS_COUNTED_BYTES: counted, col.TOKENS_UNCOUNTED_BYTES: uncounted}  # fmt: skip

    stats = [
        row("", "", 250, 1000, 0),  # kept rows: no guide to the rejected ones
        row("quality", "short", 30, 100, 700),  # 0.3 per byte
        row("quality", "symbols", 90, 100, 900),  # 0.9
        row("quality", "lines", 0, 0, 100),  # none sampled: the stage's 120/200
        row("langid", "low_score", 0, 0, 50),  # no stage sample: all rejected, 120/200
    ]
    estimate = TokenEstimate(stats)
    assert [estimate.tokens_of(r) for r in stats] == [250, 240, 900, 60, 30]
    assert estimate.section() == {"tokens": 1110, "from_bytes": 1750,
                                  "sampled": "1 in 8",
                                  "tokens_per_byte_rejected": 0.6}  # fmt: skip


def pc_sum(table: pa.Table, column: str) -> int:
    return int(sum(table.column(column).to_pylist()))


def test_a_changed_tokenizer_file_is_not_resumed(tmp_path):
    """A re-run resumes an interrupted one only with the same tokenizer
    content, not just the same path."""
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.job.plan import fingerprint
    from dedupe_at_scale.stages.tokens import RESOURCE, tokenizer_resource

    cfg = JobConfig()
    one = {RESOURCE: tokenizer_resource("t.json", DEFAULT)}
    other = Tokenizer.from_str(DEFAULT)
    other.add_tokens(["dedupe"])
    two = {RESOURCE: tokenizer_resource("t.json", other.to_str())}
    args = ("in", "out", cfg, [])
    assert fingerprint(*args, one) == fingerprint(*args, dict(one))
    assert fingerprint(*args, one) != fingerprint(*args, two)


def test_the_piece_cache_stops_at_half_full_and_counts_its_slots():
    from dedupe_at_scale.stages.tokens.pretokens import insert

    keys, values, filled = np.zeros(16, np.uint64), np.zeros(16, np.int64), np.zeros(1, np.int64)
    insert(keys, values, filled, np.array([3, 19, 3], np.uint64), np.array([1, 2, 9]))
    assert filled[0] == 2 and sorted(values[keys != 0]) == [1, 2]  # 19 probes past 3
    insert(keys, values, filled, np.arange(100, 120, dtype=np.uint64), np.arange(20))
    assert filled[0] == (keys != 0).sum() == 8


def test_distinct_finds_each_keys_first_occurrence():
    from dedupe_at_scale.stages.tokens.pretokens import distinct

    rng = np.random.default_rng(5)
    for n, pool in ((0, 1), (1, 1), (1000, 7), (5000, 4000), (300, 10**18)):
        keys = rng.integers(1, pool + 1, n, dtype=np.uint64) | np.uint64(1)
        first, inverse = distinct(keys)
        unique, want_first = np.unique(keys, return_index=True)
        assert np.array_equal(np.sort(first), np.sort(want_first))  # first occurrences
        assert np.array_equal(np.sort(keys[first]), unique)
        assert np.array_equal(keys[first][inverse], keys)
        assert np.all(np.diff(first) > 0)  # in the order the keys come
