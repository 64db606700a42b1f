"""The raw counts behind every quality signal, for a whole batch, in one
native pass per document over the Arrow string buffers.

Each document's UTF-8 bytes are decoded once into code points. Words (as
`text.words` finds them), lines, Gopher's unstripped lines, paragraphs and
C4's kept lines and sentences are found by scanning those, with Python's own
character classes (\\w, isspace, the letters of [^\\W\\d_], isalnum) and
lower-casing read from per-code-point tables built from the running Python
(`unicode_tables`). Repeated lines and paragraphs are found through a hash
table per document, comparing code points on a hash match; word n-grams go
through `ngrams.doc_ngram_chars`. No Python object is made per document.

The kernel only counts. Each rule group turns counts into its signals
(`RuleGroup.measure_batch`, next to its per-document `measure`, which stays
the reference; tests/test_quality_measure.py holds them equal).

Python lower-cases two characters differently from a per-character table:
U+0130 becomes two characters and a capital sigma depends on its neighbours.
A word holding one is lowered as str.lower does by `codepoints.lower_word`
(Greek and Turkish text used to go to the per-document path, 100 times
slower).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale.kernels.codepoints import (
    IS_ALNUM,
    IS_ALPHA,
    IS_BULLET,
    IS_CJK_END,
    IS_CLOSER,
    IS_COMPLEX,
    IS_JOINER,
    IS_SENTENCE_END,
    IS_SPACE,
    IS_TERMINAL,
    IS_WORD,
    SEED,
    decode,
    ends_with_ellipsis,
    hash_word,
    lower_word,
    strip,
    unicode_tables,
)  # fmt: skip
from dedupe_at_scale.kernels.hashing import FNV_PRIME, mix
from dedupe_at_scale.stages.base import read_only, string_buffers
from dedupe_at_scale.stages.quality.ngrams import (
    ascending,
    doc_ngram_chars,
    new_tables,
    table_size,
)

if TYPE_CHECKING:
    from dedupe_at_scale.stages.quality.config import C4Config

# Columns of Counts.table, in order.
COUNTS = (
    # word_chars: as the text has them; lowered_word_chars: as lower() makes them.
    "chars", "words", "word_chars", "lowered_word_chars", "alpha_words", "stop_words",
    "hashes", "ellipses",
    "newlines", "curly_braces", "lorem_ipsum",
    # text.lines: stripped, non-empty lines split at "\n".
    "lines", "bullet_lines", "ellipsis_lines", "terminal_lines", "short_lines",
    "duplicate_lines", "duplicate_line_chars",
    # Gopher's lines: the same lines unstripped.
    "raw_lines", "duplicate_raw_lines", "duplicate_raw_line_chars",
    "paragraphs", "duplicate_paragraphs", "duplicate_paragraph_chars",
    "c4_sentences",
)  # fmt: skip
_C = {name: i for i, name in enumerate(COUNTS)}
# The same column numbers as constants, for the kernel.
(
    CHARS, WORDS, WORD_CHARS, LOWERED_WORD_CHARS, ALPHA_WORDS, STOP_WORDS, HASHES, ELLIPSES,
    NEWLINES, CURLY_BRACES,
    LOREM_IPSUM, LINES, BULLET_LINES, ELLIPSIS_LINES, TERMINAL_LINES, SHORT_LINES,
    DUPLICATE_LINES, DUPLICATE_LINE_CHARS, RAW_LINES, DUPLICATE_RAW_LINES,
    DUPLICATE_RAW_LINE_CHARS, PARAGRAPHS, DUPLICATE_PARAGRAPHS, DUPLICATE_PARAGRAPH_CHARS,
    C4_SENTENCES,
) = range(len(COUNTS))  # fmt: skip
# Positions in Measurer.settings.
(
    SHORT_LINE_LENGTH, DROP_UNPUNCTUATED, DROP_JAVASCRIPT, DROP_POLICY, MIN_WORDS_PER_LINE,
    MAX_WORD_LENGTH,
) = range(6)  # fmt: skip
_POLY = np.uint64(0x100000001B3)  # FNV-1's prime: odd, so no bit is lost


class Counts:
    """The kernel's counts for a batch: `table` (docs x COUNTS), n-gram
    characters `top` / `duplicate` (docs x n, in the order given), and the
    per-document masks the groups need."""

    def __init__(self, table, top, duplicate, top_ns, dup_ns, segmented, has_stop_words):
        self.table, self.top, self.duplicate = table, top, duplicate
        self.top_ns, self.dup_ns = list(top_ns), list(dup_ns)
        self.segmented, self.has_stop_words = segmented, has_stop_words

    def __getitem__(self, name: str) -> np.ndarray:
        return self.table[:, _C[name]]


class Measurer:
    """Holds the kernel's settings, from the rule groups' config sections."""

    def __init__(
        self,
        stop_words: Mapping[str, frozenset[str]],
        top_ns: Sequence[int],
        dup_ns: Sequence[int],
        short_line_length: int,
        c4: C4Config,
        c4_phrases: Sequence[str],
    ):
        self.flags, self.lower = unicode_tables()
        self.languages = sorted(lang for lang, words in stop_words.items() if words)
        self.stop_keys, self.stop_used, self.stop_offsets = _stop_word_sets(
            [[hash_word(w) for w in stop_words[lang]] for lang in self.languages]
        )
        self.top_ns, self.dup_ns = ascending(top_ns), ascending(dup_ns)
        none = -1
        self.settings = np.array(
            [
                short_line_length,
                bool(c4.remove_lines_without_terminal_punctuation),
                bool(c4.remove_javascript_lines),
                bool(c4.remove_policy_lines),
                none if c4.min_words_per_line is None else c4.min_words_per_line,
                none if c4.max_word_length is None else c4.max_word_length,
            ],
            np.int64,
        )
        # Row 0: "lorem ipsum" (in the whole text), row 1: "javascript", then
        # the policy phrases (in C4's lines), all matched lower-cased.
        phrases = list(c4_phrases)
        assert all(p.isascii() and p == p.lower() for p in phrases), phrases
        # `low` keeps İ, whose lower() is "i" + U+0307: no match can differ
        # from one in lower()'s text unless a phrase ends in "i".
        assert not any(p.endswith("i") for p in phrases), phrases
        self.phrase_lengths = np.array([len(p) for p in phrases], np.int64)
        self.phrases = np.full((len(phrases), max(map(len, phrases))), -1, np.int32)
        for i, phrase in enumerate(phrases):
            self.phrases[i, : len(phrase)] = [ord(c) for c in phrase]
        # Each occurrence lies inside one stripped line (see _phrases_at).
        assert all(len(p) >= 2 and p == p.strip() and "\n" not in p for p in phrases), phrases
        asked_in_lines = [False, bool(c4.remove_javascript_lines)]
        asked_in_lines += [bool(c4.remove_policy_lines)] * (len(phrases) - 2)
        self.line_phrases = sum(1 << i for i, asked in enumerate(asked_in_lines) if asked)
        self.first_pairs = np.zeros(128 * 128, np.int64)
        for i, phrase in enumerate(phrases):
            self.first_pairs[ord(phrase[0]) * 128 + ord(phrase[1])] |= 1 << i

    def count(
        self, texts: pa.Array, languages: pa.Array, segmented: np.ndarray,
        rows: np.ndarray | None = None,
    ) -> Counts:  # fmt: skip
        """The counts of texts[rows] (every text when None); `languages` and
        `segmented` are those rows'. The kernel reads the rows in place: a
        take of the active rows copied their text (3% of the stage)."""
        data, offsets = string_buffers(texts)
        if rows is None:
            starts, ends = offsets[:-1], offsets[1:]
        else:  # read-only like the slices: one compiled kernel, not two
            starts, ends = read_only(offsets[rows]), read_only(offsets[rows + 1])
        n = len(starts)
        stop_index = (
            pc.fill_null(
                pc.index_in(languages, value_set=pa.array(self.languages, pa.string())), -1
            )
            .to_numpy(zero_copy_only=False)
            .astype(np.int64)
        )
        table = np.zeros((n, len(COUNTS)), np.int64)
        top = np.zeros((n, len(self.top_ns)), np.int64)
        dup = np.zeros((n, len(self.dup_ns)), np.int64)
        _kernel(
            data, starts, ends, segmented.astype(np.bool_), stop_index, self.stop_keys,
            self.stop_used, self.stop_offsets, self.flags, self.lower, self.settings, self.phrases,
            self.phrase_lengths, self.first_pairs, self.line_phrases, self.top_ns, self.dup_ns,
            table, top, dup,
        )  # fmt: skip
        return Counts(table, top, dup, self.top_ns, self.dup_ns, segmented, stop_index >= 0)


def _stop_word_sets(hashed: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each language's stop-word hashes as an open-addressing set (a slot per
    key and its `used` flag; language i's slots are offsets[i]:offsets[i + 1],
    a power of two, at most a sixteenth full): one probe a word, where a
    binary search over the sorted hashes mispredicted a branch at every step.
    Most words are not stop words, and so sparse a set ends most of their
    probes at the first slot, empty (half full, probing was 0.26 s of the
    kernel's 4.2 on the real text; now 0.06)."""
    keys, used, offsets = [], [], [0]
    for hashes in hashed:
        size = 1
        while size < 16 * len(hashes):
            size *= 2
        table, flags = np.zeros(size, np.uint64), np.zeros(size, np.bool_)
        for h in set(hashes):
            slot = h & (size - 1)
            while flags[slot]:
                slot = (slot + 1) & (size - 1)
            table[slot], flags[slot] = h, True
        keys.append(table)
        used.append(flags)
        offsets.append(offsets[-1] + size)
    return (
        np.concatenate(keys + [np.zeros(0, np.uint64)]),
        np.concatenate(used + [np.zeros(0, np.bool_)]),
        np.array(offsets, np.int64),
    )


@numba.njit(cache=True, inline="always")
def _in_set(keys, used, start, end, h):
    mask = np.uint64(end - start - 1)
    slot = start + np.int64(h & mask)
    while used[slot]:
        if keys[slot] == h:
            return True
        slot = start + np.int64((np.uint64(slot - start) + np.uint64(1)) & mask)
    return False


@numba.njit(cache=True, inline="always")
def _range_hash(cps, a, b):
    """A hash of cps[a:b]; only a first test, equal elements are confirmed by
    comparing code points. Four polynomial hashes, each over every fourth
    code point, so that four multiplies run at once instead of one chain
    (a line or paragraph is hashed at about a cycle per code point)."""
    h0 = h1 = h2 = h3 = np.uint64(b - a)
    i = a
    while i + 4 <= b:
        h0 = h0 * _POLY + np.uint64(cps[i])
        h1 = h1 * _POLY + np.uint64(cps[i + 1])
        h2 = h2 * _POLY + np.uint64(cps[i + 2])
        h3 = h3 * _POLY + np.uint64(cps[i + 3])
        i += 4
    while i < b:
        h0 = h0 * _POLY + np.uint64(cps[i])
        i += 1
    return mix(((h0 * _POLY + h1) * _POLY + h2) * _POLY + h3)


@numba.njit(cache=True)
def _duplicates(cps, starts, ends, hashes, m, tables, stamp):
    """(elements equal to an earlier one, their characters), as
    text.duplicated_elements counts them."""
    keys, index, stamps = tables[0], tables[1], tables[3]
    size = table_size(m)
    mask = np.uint64(size - 1)
    count = chars = 0
    for e in range(m):
        a, b = starts[e], ends[e]
        h = hashes[e]
        slot = np.int64(h & mask)
        found = False
        while stamps[slot] == stamp:
            if keys[slot] == h:
                o = index[slot]
                oa, ob = starts[o], ends[o]
                if ob - oa == b - a:
                    k = 0
                    while k < b - a and cps[oa + k] == cps[a + k]:
                        k += 1
                    if k == b - a:
                        found = True
                        break
            slot = (slot + 1) & (size - 1)
        if found:
            count += 1
            chars += b - a
        else:
            stamps[slot], keys[slot], index[slot] = stamp, h, e
    return count, chars


@numba.njit(cache=True)
def _sentences(cps, a, b, flags, in_sentence, count):
    """C4's sentence count over one kept line (lines are joined by "\\n"):
    a sentence ends after a sentence end, closers, then space or the line's
    end, or right after a CJK full stop; a part counts if it holds a letter
    or digit (text.sentences)."""
    for k in range(a, b):
        f = flags[cps[k]]
        if f & IS_ALNUM:
            in_sentence = True
        if f & IS_SENTENCE_END:
            ends = (f & IS_CJK_END) != 0
            if not ends:
                j = k + 1
                while j < b and flags[cps[j]] & IS_CLOSER:
                    j += 1
                ends = j == b or (flags[cps[j]] & IS_SPACE) != 0
            if ends:
                if in_sentence:
                    count += 1
                in_sentence = False
    return in_sentence, count


@numba.njit(cache=True)
def _phrases_at(low, n, phrases, lengths, first_pairs, at, which):
    """Every occurrence of a phrase in low[:n], in text order: its start in
    `at`, its phrase number in `which`; returns how many. A position is
    looked at only when its first two characters begin a phrase."""
    found = 0
    for i in range(n - 1):
        c0, c1 = low[i], low[i + 1]
        if c0 >= 128 or c1 >= 128:
            continue
        bits = first_pairs[c0 * 128 + c1]
        p = 0
        while bits:
            if bits & 1 and n - i >= lengths[p]:
                k = 2
                while k < lengths[p] and low[i + k] == phrases[p, k]:
                    k += 1
                if k == lengths[p]:
                    at[found], which[found] = i, p
                    found += 1
            bits >>= 1
            p += 1
    return found


@numba.njit(cache=True)
def _c4_keeps(cps, s, e, flags, segmented, settings, holds_phrase):
    """C4.kept_lines' test for one stripped line (`holds_phrase`: one of
    the phrases asked in lines)."""
    if settings[DROP_UNPUNCTUATED] and (
        not (flags[cps[e - 1]] & IS_TERMINAL) or ends_with_ellipsis(cps, s, e)
    ):
        return False
    if holds_phrase:
        return False
    min_words, max_length = settings[MIN_WORDS_PER_LINE], settings[MAX_WORD_LENGTH]
    # No word can be longer than max_length in a line that is not: skip that
    # test, and stop counting words at min_words.
    check_length = max_length >= 0 and e - s > max_length
    count_words = segmented and min_words >= 0
    if count_words or check_length:
        tokens, longest, k = 0, 0, s
        while k < e:  # str.split(): runs of non-space
            while k < e and flags[cps[k]] & IS_SPACE:
                k += 1
            if k == e:
                break
            start = k
            while k < e and not flags[cps[k]] & IS_SPACE:
                k += 1
            tokens += 1
            longest = max(longest, k - start)
            if not check_length and tokens >= min_words:
                break
        if count_words and tokens < min_words:
            return False
        if check_length and longest > max_length:
            return False
    return True


@numba.njit(cache=True)
def _fit(array, n):
    return array if array.shape[0] >= n else np.empty(max(n, 2 * array.shape[0]), array.dtype)


@numba.njit(cache=True)
def _kernel(
    data, doc_starts, doc_ends, segmented, stop_index, stop_keys, stop_used, stop_offsets, flags,
    lower, settings, phrases, lengths, first_pairs, line_phrases, top_ns, dup_ns, out, top_out, dup_out,
):  # fmt: skip
    # Unsigned: numba then indexes the per-code-point tables (flags[cps[i]],
    # lower[c]) without a test for a negative index, 8% of the kernel.
    cps = np.empty(1024, np.uint32)
    low = np.empty(1024, np.uint32)
    at = np.empty(1024, np.int64)
    newline_at = np.empty(1024, np.int64)
    raw_starts = np.empty(1024, np.int64)
    raw_ends = np.empty(1024, np.int64)
    which = np.empty(1024, np.int64)
    word_hash = np.empty(1024, np.uint64)
    word_cum = np.empty(1025, np.int64)
    starts = np.empty(1024, np.int64)
    ends = np.empty(1024, np.int64)
    hashes = np.empty(1024, np.uint64)
    tables = new_tables(1024)
    stamp = 0
    short_length = settings[SHORT_LINE_LENGTH]
    for d in range(len(doc_starts)):
        row = out[d]
        cps = _fit(cps, doc_ends[d] - doc_starts[d])
        low = _fit(low, doc_ends[d] - doc_starts[d])
        n = decode(data, doc_starts[d], doc_ends[d], cps)
        row[CHARS] = n
        # Characters, in the lowering pass: '#', '{', "\n" (and where each
        # is), '…' and '...' as str.count counts it (a run of k dots holds
        # k // 3: `dots` counts the run's dots modulo 3). The dots take a
        # branch: dots are rare, and a branch-free count chained a multiply
        # through every character (0.12 s of the kernel's 3.75 on real text).
        newline_at = _fit(newline_at, n + 1)
        newlines = n_hashes = ellipses = braces = dots = 0
        for i in range(n):
            c = cps[i]
            low[i] = lower[c]
            newline_at[newlines] = i
            newlines += np.int64(c == 10)
            n_hashes += np.int64(c == 35)
            braces += np.int64(c == 123)
            ellipses += np.int64(c == 0x2026)
            if c == 46:
                dots += 1
                if dots == 3:
                    ellipses += 1
                    dots = 0
            else:
                dots = 0
        seg = segmented[d]
        row[HASHES], row[ELLIPSES], row[NEWLINES], row[CURLY_BRACES] = (
            n_hashes,
            ellipses,
            newlines,
            braces,
        )
        at = _fit(at, n)
        which = _fit(which, n)
        found = _phrases_at(low, n, phrases, lengths, first_pairs, at, which)
        row[LOREM_IPSUM] = 0
        for k in range(found):
            if which[k] == 0:  # "lorem ipsum", anywhere in the text
                row[LOREM_IPSUM] = 1

        # Words: \w+ joined by ' ’ -, not only underscores (text.words).
        word_hash = _fit(word_hash, n // 2 + 1)
        word_cum = _fit(word_cum, n // 2 + 2)
        word_cum[0] = 0
        words = word_chars = alpha_words = stops = 0
        li = stop_index[d]
        stop_start = stop_offsets[li] if li >= 0 else 0
        stop_end = stop_offsets[li + 1] if li >= 0 else 0
        i = 0
        while i < n:
            if not flags[cps[i]] & IS_WORD:
                i += 1
                continue
            start, h, seen = i, SEED, 0
            while True:
                while i < n:
                    f = flags[cps[i]]
                    if not f & IS_WORD:
                        break
                    seen |= f
                    h = (h ^ np.uint64(low[i])) * FNV_PRIME
                    i += 1
                if i + 1 < n and flags[cps[i]] & IS_JOINER and flags[cps[i + 1]] & IS_WORD:
                    h = (h ^ np.uint64(low[i])) * FNV_PRIME
                    i += 1
                else:
                    break
            if seen & IS_ALNUM:  # not only underscores: [^\W_] is \w less "_"
                lowered = i - start
                if seen & IS_COMPLEX:  # İ, or a capital sigma: see lower_word
                    h, lowered = lower_word(cps, start, i, flags, lower)
                else:
                    h = mix(h)
                word_hash[words] = h
                word_chars += i - start
                word_cum[words + 1] = word_cum[words] + lowered
                words += 1
                if seen & IS_ALPHA:
                    alpha_words += 1
                if stop_end > stop_start and _in_set(stop_keys, stop_used, stop_start, stop_end, h):
                    stops += 1
        row[WORDS], row[WORD_CHARS], row[LOWERED_WORD_CHARS] = words, word_chars, word_cum[words]
        row[ALPHA_WORDS], row[STOP_WORDS] = alpha_words, stops

        # Lines split at "\n": stripped (text.lines) and as they are (Gopher).
        starts = _fit(starts, newlines + 1)
        raw_starts = _fit(raw_starts, newlines + 1)
        raw_ends = _fit(raw_ends, newlines + 1)
        ends = _fit(ends, newlines + 1)
        hashes = _fit(hashes, newlines + 1)
        need = table_size(max(words, newlines + 1))
        if tables[0].shape[0] < need:
            tables = new_tables(need)
        n_lines = bullets = ellipsis_lines = terminal = short = 0
        in_sentence, sentences = False, 0
        next_phrase = 0
        for line in range(newlines + 1):
            a = 0 if line == 0 else newline_at[line - 1] + 1
            b = n if line == newlines else newline_at[line]
            s, e = strip(cps, a, b, flags)
            if s < e:
                starts[n_lines], ends[n_lines] = s, e
                raw_starts[n_lines], raw_ends[n_lines] = a, b
                hashes[n_lines] = _range_hash(cps, s, e)
                n_lines += 1
                if flags[cps[s]] & IS_BULLET:
                    bullets += 1
                if ends_with_ellipsis(cps, s, e):
                    ellipsis_lines += 1
                if flags[cps[e - 1]] & IS_TERMINAL:
                    terminal += 1
                if e - s <= short_length:
                    short += 1
                holds = False  # an asked phrase starting in [s, e) ends there too
                while next_phrase < found and at[next_phrase] < s:
                    next_phrase += 1
                k = next_phrase
                while k < found and at[k] < e and not holds:
                    holds = (line_phrases >> which[k]) & 1 == 1
                    k += 1
                if _c4_keeps(cps, s, e, flags, seg, settings, holds):
                    in_sentence, sentences = _sentences(cps, s, e, flags, in_sentence, sentences)
        if in_sentence:
            sentences += 1
        (
            row[LINES],
            row[BULLET_LINES],
            row[ELLIPSIS_LINES],
            row[TERMINAL_LINES],
            row[SHORT_LINES],
        ) = (
            n_lines,
            bullets,
            ellipsis_lines,
            terminal,
            short,
        )
        row[C4_SENTENCES] = sentences
        stamp += 1
        row[DUPLICATE_LINES], row[DUPLICATE_LINE_CHARS] = _duplicates(
            cps, starts, ends, hashes, n_lines, tables, stamp
        )
        # The same lines unstripped: back to their "\n"s.
        for k in range(n_lines):
            s, e = raw_starts[k], raw_ends[k]
            if s != starts[k] or e != ends[k]:
                starts[k], ends[k] = s, e
                hashes[k] = _range_hash(cps, s, e)
        stamp += 1
        row[RAW_LINES] = n_lines
        row[DUPLICATE_RAW_LINES], row[DUPLICATE_RAW_LINE_CHARS] = _duplicates(
            cps, starts, ends, hashes, n_lines, tables, stamp
        )

        # Paragraphs: split at runs of two or more "\n", stripped.
        paragraphs, begin, k = 0, 0, 0
        while k <= newlines:
            j = k  # newline_at[k:j + 1] is a run of "\n"s; k == newlines: the end
            while j + 1 < newlines and newline_at[j + 1] == newline_at[j] + 1:
                j += 1
            if k == newlines or j > k:
                end = n if k == newlines else newline_at[k]
                s, e = strip(cps, begin, end, flags)
                if s < e:
                    starts[paragraphs], ends[paragraphs] = s, e
                    hashes[paragraphs] = _range_hash(cps, s, e)
                    paragraphs += 1
                begin = n if k == newlines else newline_at[j] + 1
            k = j + 1
        stamp += 1
        row[PARAGRAPHS] = paragraphs
        row[DUPLICATE_PARAGRAPHS], row[DUPLICATE_PARAGRAPH_CHARS] = _duplicates(
            cps, starts, ends, hashes, paragraphs, tables, stamp
        )

        # Word n-grams (Gopher repetition), for segmented text only.
        if seg:
            stamp = doc_ngram_chars(
                word_hash, word_cum, 0, words, top_ns, dup_ns, top_out[d], dup_out[d], tables,
                stamp,
            )  # fmt: skip
