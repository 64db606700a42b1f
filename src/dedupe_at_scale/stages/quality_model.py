"""A supervised fastText quality classifier: training and scoring.

The DCLM recipe: high-quality reference text as positives, raw crawl text as
negatives, word bigrams. The score of a document is the model's probability of
the positive label.
"""

from __future__ import annotations

import multiprocessing
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dedupe_at_scale import columns as col
from dedupe_at_scale.formats import stage_views
from dedupe_at_scale.io.storage import list_input_files, resolve
from dedupe_at_scale.stages.base import Batch, Stage, StageResult, rejections, scatter
from dedupe_at_scale.stages.langid import load_fasttext_model
from dedupe_at_scale.text import single_line

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

POSITIVE = "__label__hq"
NEGATIVE = "__label__lq"


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


def positive_probability(model, texts: list[str]) -> np.ndarray:
    """P(high quality) per text, whatever order fastText returns labels in."""
    if not texts:
        return np.zeros(0, dtype=np.float32)
    labels, probs = model.predict([single_line(t) for t in texts], k=2)
    out = np.empty(len(texts), dtype=np.float32)
    for i, (names, values) in enumerate(zip(labels, probs)):
        score = dict(zip(names, values))
        out[i] = score.get(POSITIVE, 1.0 - score.get(NEGATIVE, 1.0))
    return out


class QualityScorer:
    """Scores texts with a trained model, loaded once per worker process."""

    def __init__(self, path: str):
        self.model = load_fasttext_model(path)

    def score(self, texts: list[str]) -> np.ndarray:
        return positive_probability(self.model, texts)


class QualityModelStage(Stage):
    """`quality.model`: P(high quality) of every kept document as
    quality_score; documents below `quality.min_score` are rejected."""

    name = "quality_model"
    stage = "quality"

    def __init__(self, cfg: JobConfig):
        super().__init__(cfg)
        self.scorer = QualityScorer(cfg.quality.model)
        self.min_score = cfg.quality.min_score
        self.view = stage_views(cfg)["quality"]

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.quality.enabled and cfg.quality.model is not None

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        return [pa.field(col.QUALITY_SCORE, pa.float32())]

    def __call__(self, batch: Batch) -> StageResult:
        active = batch.active()
        scores = self.scorer.score(batch.texts(active, self.view)).tolist()
        low = [(i, s) for i, s in zip(active.tolist(), scores) if s < self.min_score]
        n = batch.num_rows
        return StageResult(
            columns={col.QUALITY_SCORE: scatter(n, active, scores, pa.float32())},
            rejected=rejections(
                n,
                [i for i, _ in low],
                ["quality_classifier"] * len(low),
                [s for _, s in low],
                [f"quality_classifier: {s:.4g} < {self.min_score:g}" for _, s in low],
            ),
        )
