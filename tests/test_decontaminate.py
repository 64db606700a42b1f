"""Decontamination without Ray: the n-gram index and matcher against a plain
Python reference, the rules (short items, boilerplate, shares), cutting,
and reading eval sets."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedupe_at_scale.config import StorageConfig, config_from_dict
from dedupe_at_scale.job.plan import StorageFiles
from dedupe_at_scale.stages.decontaminate import EvalItem, build_index, cut, find_hits
from dedupe_at_scale.stages.decontaminate.evalsets import EvalSetError, read_eval_items

QUESTION = (
    "Which of the following best describes the main function of the mitochondria in a "
    "eukaryotic cell during aerobic respiration?"
)
GSM = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?"
)


def settings(**values):
    return config_from_dict({"decontaminate": values}).decontaminate


# The reference: words as Python's re and str.lower see them, n-grams as tuples.


def ref_words(text: str) -> list[tuple[str, int, int]]:
    """Runs of letters and digits ([^\\W_]), lower-cased one character at a
    time (as the kernel's table does), with their spans."""
    out = []
    for m in re.finditer(r"[^\W_]+", text):
        word = "".join(c.lower() if len(c.lower()) == 1 else c for c in m.group())
        out.append((word, m.start(), m.end()))
    return out


def ref_hits(texts: list[str], items: list[EvalItem], cfg) -> dict[int, tuple[str, str, int, list]]:
    n = cfg.ngram_size
    grams: dict[tuple, set[int]] = {}
    for i, item in enumerate(items):
        for text in item.texts:  # n-grams never span two fields
            words = [w for w, _, _ in ref_words(text)]
            keys = (
                {tuple(words[j : j + n]) for j in range(len(words) - n + 1)}
                if len(words) >= n
                else ({tuple(words)} if len(words) >= cfg.min_item_words else set())
            )
            for key in keys:
                grams.setdefault(key, set()).add(i)
    grams = {k: v for k, v in grams.items() if len(v) <= cfg.max_item_frequency}
    per_item_total: dict[int, int] = {}
    for holders in grams.values():
        for i in holders:
            per_item_total[i] = per_item_total.get(i, 0) + 1
    lengths = sorted({len(k) for k in grams})
    hits = {}
    for row, text in enumerate(texts):
        words = ref_words(text)
        matched, spans = set(), []
        for j in range(len(words)):
            for k in lengths:
                key = tuple(w for w, _, _ in words[j : j + k])
                if len(key) == k and key in grams:
                    matched.add(key)
                    spans.append((words[j][1], words[j + k - 1][2]))
        if not matched:
            continue
        per_item: dict[int, int] = {}
        for key in matched:
            for i in grams[key]:
                per_item[i] = per_item.get(i, 0) + 1
        best = min(per_item, key=lambda i: (-per_item[i], i))
        share = max(c / per_item_total[i] for i, c in per_item.items())
        if len(matched) >= cfg.min_matches or (
            cfg.min_item_share is not None and share >= cfg.min_item_share
        ):
            hits[row] = (items[best].source, items[best].item_id, len(matched), sorted(spans))
    return hits


def kernel_hits(texts: list[str], items: list[EvalItem], cfg) -> dict[int, tuple]:
    index = build_index(items, cfg)
    found = find_hits(pa.array(texts, pa.string()), np.arange(len(texts)), index, cfg)
    return {r: (h.source, h.item_id, h.matches, sorted(h.spans)) for r, h in found.items()}


ITEMS = [
    EvalItem("mmlu", "q1", [QUESTION, "A. energy\nB. storage"]),
    # 7 words: matched whole, even with its choices in another field
    EvalItem("mmlu", "q2", ["What is the capital of Burkina Faso?", "Ouagadougou\nBamako"]),
    EvalItem("mmlu", "q3", ["Define osmosis."]),  # too short: ignored
    EvalItem("gsm8k", "g1", [GSM, "72"]),
]


def test_planted_contamination_in_every_disguise():
    texts = [
        "Unrelated text about rivers and bridges in the old town. " * 5,  # clean
        QUESTION,  # exact
        "Quiz: " + QUESTION.upper() + " Answer: energy.",  # upper-cased
        QUESTION.replace(" ", " ,  ").replace("?", "!!"),  # re-punctuated
        "A long preface about cells. " * 40
        + QUESTION.lower()
        + " A long epilogue. " * 40,  # inside
        "Trivia night: what is the capital of burkina-faso? everyone knew.",  # short item, whole
        "What is the capital of Burkina? Nobody knew the answer to that one.",  # part of it: no
        "Define osmosis. It is a process.",  # too short an item: never matched
        GSM.replace("48", "49"),  # one number changed: most n-grams survive
    ]
    cfg = settings(enabled=False)
    expected = ref_hits(texts, ITEMS, cfg)
    assert set(expected) == {1, 2, 3, 4, 5, 8}
    assert kernel_hits(texts, ITEMS, cfg) == expected
    assert expected[5][:3] == ("mmlu", "q2", 1)
    assert expected[8][:2] == ("gsm8k", "g1")


def test_same_as_the_reference_on_hostile_text():
    rng = random.Random(4)
    pieces = [
        QUESTION, GSM, "What is the capital of Burkina Faso?", "ﬁne Straße İstanbul ΣΊΣΥΦΟΣ", "中文的句子没有空格。",
        "العربية نص قصير", "emoji 🙂🙂 and\u200bzero width", "\x00\x01 control", "x" * 300, "A_B__C", "1,000,000",
        "Ⅻ ½ ² numbers", "\r\n\r\n", "  ", "ǅungla Ǆ",
    ]  # fmt: skip
    texts = []
    for _ in range(400):
        picks = [rng.choice(pieces) for _ in range(rng.randint(0, 6))]
        text = rng.choice([" ", "", "\n", " - "]).join(picks)
        if rng.random() < 0.3 and len(text) > 10:  # cut a word in two
            at = rng.randrange(len(text))
            text = text[:at] + rng.choice(["", " ", "_"]) + text[at:]
        texts.append(text)
    items = [
        *ITEMS,
        EvalItem(
            "x",
            "cjk",
            ["中文的句子没有空格 和 更多 词语 在 这里 作为 测试 项目 的 内容 一 二 三 四"],
        ),
    ]
    for cfg in (
        settings(),
        settings(ngram_size=5, min_item_words=2),
        settings(min_matches=3, min_item_share=0.5),
    ):
        assert kernel_hits(texts, items, cfg) == ref_hits(texts, items, cfg)


def test_boilerplate_ngrams_are_ignored_and_counted():
    template = "Answer the question below by choosing one of the options given in the list: "
    items = [
        EvalItem("arc", f"i{k}", [template + f"what colour is fruit number {k}"]) for k in range(20)
    ]
    cfg = settings(max_item_frequency=10)
    index = build_index(items, cfg)
    assert index.summary["frequent_ngrams_ignored"] > 0
    text = "Intro. " + template + "and then some unrelated words follow here."
    assert find_hits(pa.array([text]), np.arange(1), index, cfg) == {}
    both = [text + " " + items[3].texts[0]]
    assert kernel_hits(both, items, cfg) == ref_hits(both, items, cfg)
    assert kernel_hits(both, items, cfg)[0][1] == "i3"


def test_share_of_one_item():
    cfg = settings(min_matches=5, min_item_share=0.9)
    words = QUESTION.split()
    half = " ".join(words[: len(words) // 2 + 6])
    assert kernel_hits([half], ITEMS, cfg) == {}  # a few n-grams, under both bounds
    assert set(kernel_hits([QUESTION], ITEMS, cfg)) == {0}


def test_cut_removes_matches_with_their_margin():
    cfg = settings(action="cut", cut_margin=10, min_piece_chars=20, max_pieces=2)
    before, after = "B" * 60 + " ", " " + "A" * 60
    text = before + QUESTION + after
    (hit,) = kernel_hits([text], ITEMS, cfg).values()
    pieces = cut(text, hit[3], cfg)
    # The match runs from the question's first word to its last; "? " and 8 more go with it.
    assert pieces == ["B" * 51, "A" * 52]
    # Too many pieces, or none long enough: nothing is kept.
    many = (" " + "C" * 60 + " ").join([QUESTION] * 4)
    (hit,) = kernel_hits([many], ITEMS, cfg).values()
    assert len(cut(many, hit[3], cfg)) == 3


def test_eval_sets_from_parquet_and_jsonl(tmp_path):
    pq.write_table(
        pa.table(
            {"qid": ["a", "b"], "question": ["Q one", "Q two"], "choices": [["x", "y"], None]}
        ),
        tmp_path / "mmlu.parquet",
    )
    (tmp_path / "gsm").mkdir()
    (tmp_path / "gsm" / "test.jsonl").write_text(
        json.dumps({"question": "How many?", "answer": 4}) + "\n"
    )
    cfg = settings(
        sources=[
            {"name": "mmlu", "uri": str(tmp_path / "mmlu.parquet"), "fields": ["question", "choices"], "id_field": "qid"},
            {"name": "gsm8k", "uri": str(tmp_path / "gsm"), "fields": ["question", "answer"]},
        ]
    )  # fmt: skip
    items = read_eval_items(cfg, StorageFiles(StorageConfig()))
    assert [(i.source, i.item_id, i.texts) for i in items] == [
        ("mmlu", "a", ["Q one", "x\ny"]), ("mmlu", "b", ["Q two", ""]),
        ("gsm8k", "test.jsonl#0", ["How many?", "4"]),
    ]  # fmt: skip
    bad = settings(
        sources=[{"name": "mmlu", "uri": str(tmp_path / "mmlu.parquet"), "fields": ["prompt"]}]
    )
    with pytest.raises(
        EvalSetError,
        match=r"mmlu: .*mmlu.parquet has no field 'prompt' \(fields: qid, question, choices",
    ):
        read_eval_items(bad, StorageFiles(StorageConfig()))
    missing = settings(sources=[{"name": "arc", "uri": str(tmp_path / "nope.parquet")}])
    with pytest.raises(EvalSetError, match="arc: .*nope.parquet not found"):
        read_eval_items(missing, StorageFiles(StorageConfig()))
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    broken = settings(sources=[{"name": "arc", "uri": str(tmp_path / "broken.parquet")}])
    with pytest.raises(EvalSetError, match="arc: .*broken.parquet cannot be read"):
        read_eval_items(broken, StorageFiles(StorageConfig()))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no eval set here")
    empty = settings(sources=[{"name": "arc", "uri": str(tmp_path / "empty")}])
    with pytest.raises(EvalSetError, match="arc: no Parquet or JSONL files at .*empty"):
        read_eval_items(empty, StorageFiles(StorageConfig()))


def test_the_stage_prepares_its_index_and_its_digest_follows_the_eval_set(tmp_path):
    """The index is built by the stage's own prepare() from the job's files;
    a changed eval set at the same URI changes its digest (and so the run's
    fingerprint: a resumed run does not keep annotation made with the old one)."""
    from dedupe_at_scale.stages.decontaminate import RESOURCE, DecontaminateStage

    path = tmp_path / "quiz.jsonl"
    path.write_text(json.dumps({"question": QUESTION}) + "\n")
    cfg = config_from_dict(
        {"decontaminate": {"enabled": True, "sources": [{"name": "quiz", "uri": str(path)}]}}
    )
    first = DecontaminateStage.prepare(cfg, StorageFiles(cfg.storage))[RESOURCE]
    again = DecontaminateStage.prepare(cfg, StorageFiles(cfg.storage))[RESOURCE]
    assert first.summary["sources"]["quiz"]["items"] == 1
    assert first.digest == again.digest
    path.write_text(json.dumps({"question": QUESTION + " Name the year."}) + "\n")
    changed = DecontaminateStage.prepare(cfg, StorageFiles(cfg.storage))[RESOURCE]
    assert changed.digest != first.digest
