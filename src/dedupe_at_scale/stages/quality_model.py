"""A supervised fastText quality classifier, scoring (training: cli/train_quality.py).

The DCLM recipe: high-quality reference text as positives, raw crawl text as
negatives, word bigrams. The score of a document is the model's probability of
the positive label.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from dedupe_at_scale import columns as col
from dedupe_at_scale.formats import stage_views
from dedupe_at_scale.report_parts import Distribution
from dedupe_at_scale.stages.base import Batch, Stage, StageResult, rejections, scatter
from dedupe_at_scale.stages.langid import load_fasttext_model
from dedupe_at_scale.text import single_line

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

POSITIVE = "__label__hq"
NEGATIVE = "__label__lq"
RULE = "quality_classifier"


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

    @staticmethod
    def distributions(cfg: JobConfig) -> list[Distribution]:
        mark = {"rule": RULE, "bound": "min", "threshold": cfg.quality.min_score}
        return [Distribution(col.QUALITY_SCORE, col.QUALITY_SCORE, col.QUALITY_SCORE,
                             marks=(mark,))]  # fmt: skip

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
                [RULE] * len(low),
                [s for _, s in low],
                [f"{RULE}: {s:.4g} < {self.min_score:g}" for _, s in low],
            ),
        )
