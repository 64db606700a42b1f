"""The trainable fastText quality classifier: training, scoring, in the job."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedupe_at_scale.cli.train_quality import train_quality_model
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.sample import bad_document, clean_document
from dedupe_at_scale.stages.langid import ModelError
from dedupe_at_scale.stages.quality_model import QualityScorer

SMALL = {"dim": 16, "bucket": 20_000, "epoch": 10}


def training_sets(root):
    rng = random.Random(0)
    positives = [clean_document(rng, rng.choice(["en", "de", "fr"])) for _ in range(600)]
    kinds = ["spam", "boilerplate", "gibberish"]
    negatives = [bad_document(rng, rng.choice(kinds), "en") for _ in range(600)]
    (root / "pos").mkdir()
    (root / "neg").mkdir()
    pq.write_table(pa.table({"body": positives}), root / "pos" / "a.parquet")
    pq.write_table(pa.table({"body": negatives}), root / "neg" / "a.parquet")
    return str(root / "pos"), str(root / "neg")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small model trained on separable generated data."""
    root = tmp_path_factory.mktemp("train")
    path = root / "model.bin"
    report = train_quality_model(*training_sets(root), path, text_column="body", **SMALL)
    return path, report


def test_training_reaches_high_held_out_f1(model):
    path, report = model
    assert report.holdout_docs == 120 and report.train_docs == 1080
    assert report.f1 >= 0.95, report
    assert path.stat().st_size < 10_000_000


def test_scores_order_good_above_bad(model):
    rng = random.Random(9)
    scorer = QualityScorer(str(model[0]))
    good = scorer.score([clean_document(rng, "en") for _ in range(20)])
    bad = scorer.score([bad_document(rng, "spam", "en") for _ in range(20)])
    assert good.min() > 0.5 > bad.max()
    assert scorer.score([]).shape == (0,)


def test_missing_or_corrupt_model(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        QualityScorer(str(tmp_path / "missing.bin"))
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="corrupt.bin"):
        QualityScorer(str(corrupt))


def test_one_set_only_is_refused(tmp_path):
    (tmp_path / "pos").mkdir()
    (tmp_path / "neg").mkdir()
    pq.write_table(pa.table({"text": ["some text"]}), tmp_path / "pos" / "a.parquet")
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp_path / "neg" / "a.parquet")
    with pytest.raises(ValueError, match="both"):
        train_quality_model(
            str(tmp_path / "pos"), str(tmp_path / "neg"), tmp_path / "m.bin", **SMALL
        )


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_job_scores_and_filters_with_the_model(ray_cluster, model, sample_dir, tmp_path):
    from dedupe_at_scale.job.pipeline import run_job

    cfg = config_from_dict(
        {"quality": {"model": str(model[0]), "min_score": 0.5}, "output": {"rejected_text": True}}
    )
    single = str(sample_dir / "shard-0000[0-2].parquet")
    result = run_job(single, str(tmp_path / "out"), cfg)
    data = pq.read_table(tmp_path / "out" / "data")
    scores = data.column("quality_score").to_pylist()
    assert all(s is not None and s >= 0.5 for s in scores)
    # The job's score of a document is the model's, whatever batch it was in.
    direct = QualityScorer(str(model[0])).score(data.column("text").to_pylist()[:50])
    assert direct.tolist() == pytest.approx(scores[:50], abs=1e-6)
    counts = result.manifest["counts"]
    assert counts["input"] == counts["kept"] + counts["rejected"]
    assert result.manifest["dedup"]["keep_effective"] == ["-quality_score", "id"]
    # Documents the rules let through and the model scored low are rejected
    # by the classifier, with its score as the value.
    rejected = pq.read_table(tmp_path / "out" / "rejected").to_pylist()
    by_model = [r for r in rejected if r["rule"] == "quality_classifier"]
    assert by_model and {r["stage"] for r in by_model} == {"quality"}
    assert counts["rules"]["quality"]["quality_classifier"] == len(by_model)
    own = QualityScorer(str(model[0])).score([r["text"] for r in by_model])
    assert own.tolist() == pytest.approx([r["value"] for r in by_model], abs=1e-6)
    assert all(r["value"] < 0.5 for r in by_model)
    assert all(r["reason"].startswith("quality_classifier: ") for r in by_model)


def test_training_does_not_depend_on_what_the_process_freed_before(tmp_path):
    """fastText's training reads memory it never wrote: in a process that had
    freed large blocks it trained a broken model or stopped on NaN. Training
    runs in a fresh process, so the same data gives the same model."""
    sets = training_sets(tmp_path)
    reports, scores = [], []
    for k in range(2):
        everything = "".join(map(chr, range(0x110000)))  # large blocks, then freed
        lowered = [c.lower() for c in everything]
        del everything, lowered
        path = tmp_path / f"model-{k}.bin"
        reports.append(train_quality_model(*sets, path, text_column="body", **SMALL))
        scorer = QualityScorer(str(path))
        scores.append(scorer.score(["The river runs through the old town.", "BUY NOW!!!"]))
    assert reports[0].f1 == reports[1].f1 >= 0.95
    assert list(scores[0]) == list(scores[1])
