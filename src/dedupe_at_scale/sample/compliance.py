"""Eval items and PII planted into the built-in sample, for decontamination
and PII examples and benchmarks (`generate --evals DIR`).

Eval items are questions in words of a made-up vocabulary, so that only the
planted copies can match. A share of the documents gets an item appended,
verbatim, lower-cased, re-punctuated or inside a sentence; another share gets
PII (e-mail, phone, IP, card, IBAN, an AWS key). The columns `gt_eval_item`
and `gt_pii` record what was planted."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

PII_PLANTS = {
    "email": "Write to {name}.{n}@mail-{n}.de for the details.",
    "phone": "Call the office on +49 30 {n}{n}{n}7 after nine.",
    "ipv4": "The admin panel is reachable at 10.{n}.3.{n} inside the network.",
    "credit_card": "I paid with card 4111 1111 1111 1111 last week.",
    "iban": "Please transfer it to DE89 3704 0044 0532 0130 00 by Friday.",
    "secret": "The key AKIAIOSFODNN7EXAMPLE was committed by mistake.",
}


def eval_questions(count: int, rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocabulary = ["".join(rng.choices(letters, k=rng.randint(3, 9))) for _ in range(20_000)]
    return [
        " ".join(rng.choices(vocabulary, k=rng.randint(12, 40))).capitalize() + "?"
        for _ in range(count)
    ]


def _disguise(rng: random.Random, question: str) -> str:
    kind = rng.randrange(4)
    if kind == 1:
        return question.lower()
    if kind == 2:
        return question.upper().replace(" ", " , ")
    if kind == 3:
        return f"Yesterday someone asked: {question} Nobody could answer."
    return question


def plant(
    sample_dir: str | Path, evals_dir: str | Path, items: int = 1000,
    eval_share: float = 0.01, pii_share: float = 0.02, seed: int = 0,
) -> None:  # fmt: skip
    """Write evals_dir/quiz.parquet and plant its items and PII into the
    sample's shards (rewritten in place, with the ground-truth columns)."""
    rng = random.Random(seed)
    questions = eval_questions(items, rng)
    Path(evals_dir).mkdir(parents=True, exist_ok=True)
    ids = [f"quiz-{i:05d}" for i in range(items)]
    pq.write_table(
        pa.table({"id": ids, "question": questions, "choices": [["yes", "no"]] * items}),
        Path(evals_dir) / "quiz.parquet",
    )
    for path in sorted(Path(sample_dir).glob("*.parquet")):
        table = pq.read_table(path)
        texts = table.column("text").to_pylist()
        eval_truth: list[str | None] = [None] * len(texts)
        pii_truth: list[str | None] = [None] * len(texts)
        for i in range(len(texts)):
            if rng.random() < eval_share:
                k = rng.randrange(items)
                texts[i] += "\n\n" + _disguise(rng, questions[k])
                eval_truth[i] = ids[k]
            elif rng.random() < pii_share:
                kind = rng.choice(list(PII_PLANTS))
                texts[i] += "\n" + PII_PLANTS[kind].format(name="anna", n=rng.randint(10, 99))
                pii_truth[i] = kind
        table = table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts))
        table = table.append_column("gt_eval_item", pa.array(eval_truth, pa.string()))
        table = table.append_column("gt_pii", pa.array(pii_truth, pa.string()))
        pq.write_table(table, path, row_group_size=500, compression="zstd")
