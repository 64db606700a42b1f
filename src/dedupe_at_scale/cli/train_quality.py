"""`train-quality`: a fastText quality classifier trained on positive and
negative Parquet (local or any fsspec URL) by the DCLM recipe, evaluated on a
held-out split; the quality stage scores with it (stages/quality_model.py)."""

from __future__ import annotations

import multiprocessing
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from dedupe_at_scale.io.storage import list_input_files, resolve
from dedupe_at_scale.stages.langid import load_fasttext_model
from dedupe_at_scale.stages.quality_model import NEGATIVE, POSITIVE, positive_probability
from dedupe_at_scale.text import single_line


@dataclass
class TrainReport:
    train_docs: int
    holdout_docs: int
    precision: float
    recall: float
    f1: float

    def __str__(self) -> str:
        return (
            f"trained on {self.train_docs} documents; held-out {self.holdout_docs}: "
            f"precision {self.precision:.3f}, recall {self.recall:.3f}, F1 {self.f1:.3f}"
        )


def read_texts(uri: str, text_column: str) -> list[str]:
    location = resolve(uri)
    texts: list[str] = []
    for path in list_input_files(location).files:
        with location.fs.open(path, "rb") as handle:
            table = pq.read_table(handle, columns=[text_column])
        texts += [t for t in table.column(text_column).to_pylist() if t]
    return texts


def _train(train_file: str, output: str, params: dict) -> None:
    import fasttext

    fasttext.train_supervised(input=train_file, **params).save_model(output)


def train_quality_model(
    positive_uri: str,
    negative_uri: str,
    output: str | Path,
    text_column: str = "text",
    holdout: float = 0.1,
    seed: int = 0,
    epoch: int = 5,
    dim: int = 64,
    bucket: int = 500_000,
) -> TrainReport:
    """Train, evaluate on a held-out split, save to `output`. The model holds
    `bucket` x `dim` float32 weights for its bigrams (the defaults: 128 MB)."""
    rng = random.Random(seed)
    examples = [(POSITIVE, t) for t in read_texts(positive_uri, text_column)]
    examples += [(NEGATIVE, t) for t in read_texts(negative_uri, text_column)]
    if len({label for label, _ in examples}) < 2:
        raise ValueError("training needs documents in both the positive and the negative set")
    rng.shuffle(examples)
    cut = max(1, int(len(examples) * holdout))
    test, train = examples[:cut], examples[cut:]
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("".join(f"{label} {single_line(text)}\n" for label, text in train))
        params = {"wordNgrams": 2, "epoch": epoch, "lr": 0.1, "minCount": 1, "thread": 1,
                  "seed": seed, "dim": dim, "bucket": bucket, "verbose": 0}  # fmt: skip
        # fastText's training reads memory it never wrote (run it under
        # MALLOC_PERTURB_ and the held-out F1 changes, or training stops with
        # "Encountered NaN"): after this process freed large blocks, the
        # same data trains a broken model. A fresh process gets zeroed pages.
        context = multiprocessing.get_context("spawn")
        with context.Pool(1) as pool:
            pool.apply(_train, (str(train_file), str(output), params))
    model = load_fasttext_model(str(output))
    scores = positive_probability(model, [t for _, t in test])
    predicted = scores >= 0.5
    actual = np.array([label == POSITIVE for label, _ in test])
    tp = int((predicted & actual).sum())
    precision = tp / max(int(predicted.sum()), 1)
    recall = tp / max(int(actual.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return TrainReport(len(train), len(test), precision, recall, f1)
