from pathlib import Path

import fasttext
import numpy as np
import pyarrow as pa
import pytest

from dedupe_at_scale.config import JobConfig
from dedupe_at_scale.io.inputs import InputFile
from dedupe_at_scale.io.rows import prepare_table
from dedupe_at_scale.stages.annotate import Annotator
from dedupe_at_scale.stages.langid import LanguageIdentifier, ModelError, bundled_lid_model_path

SENTENCES = {
    "en": "The weather in the mountains changed quickly, so we returned to the village early.",
    "de": "Das Wetter in den Bergen änderte sich schnell, deshalb kehrten wir früh ins Dorf zurück.",
    "fr": "Le temps a changé rapidement dans les montagnes, alors nous sommes rentrés tôt au village.",
    "es": "El tiempo cambió rápidamente en las montañas, así que volvimos pronto al pueblo.",
    "zh": "山里的天气变化很快，所以我们很早就回到了村子。",
    "ru": "Погода в горах быстро изменилась, поэтому мы рано вернулись в деревню.",
}


def test_bundled_model_ships_with_licence_notice():
    path = bundled_lid_model_path()
    assert path.stat().st_size == 938_013
    notice = (path.parent / "NOTICE.md").read_text()
    assert "CC BY-SA 3.0" in notice or "Attribution-Share-Alike 3.0" in notice


def test_full_fasttext_is_installed():
    # A predict-only build (fasttext-predict) would break training.
    assert hasattr(fasttext, "train_supervised")


def test_identifies_languages_with_high_confidence():
    lid = LanguageIdentifier()
    languages, scores = lid.predict(list(SENTENCES.values()))
    assert languages == list(SENTENCES)
    assert (scores > 0.65).all()


def test_newlines_and_empty_text_are_handled():
    lid = LanguageIdentifier()
    languages, scores = lid.predict(["first line\nsecond line of English text here", ""])
    assert languages[0] == "en" and len(scores) == 2


def test_missing_or_corrupt_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        LanguageIdentifier(str(tmp_path / "nope.bin"))
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(b"not a model at all")
    with pytest.raises(ModelError, match="corrupt.bin"):
        LanguageIdentifier(str(corrupt))


def annotate_table(texts, **langid) -> pa.Table:
    cfg = JobConfig()
    cfg.quality.enabled = False
    for key, value in langid.items():
        setattr(cfg.langid, key, value)
    table = pa.table({"id": [str(i) for i in range(len(texts))], "text": texts})
    f = InputFile("f", "f", "f", len(texts), 1, (len(texts),), True)
    return Annotator(cfg)(prepare_table(table, f, 0, cfg.input))


def annotate(texts, **langid):
    return annotate_table(texts, **langid).to_pylist()


def test_allowed_languages_and_min_score():
    gibberish = "xq zvk plmt qwrd bnnz kkt vprq zzt mmkp"
    rows = annotate([SENTENCES["en"], SENTENCES["de"], gibberish], languages=["en", "fr"])
    assert [r["language"] for r in rows[:2]] == ["en", "de"]
    assert rows[0]["__dds_stage"] is None
    assert rows[1]["__dds_rule"] == "langid_language"
    assert "de" in rows[1]["__dds_reason"]
    assert rows[2]["__dds_rule"] == "langid_min_score"  # confidence is checked first
    all_langs = annotate([gibberish])
    assert all_langs[0]["__dds_rule"] == "langid_min_score"
    assert all_langs[0]["__dds_value"] < 0.65


def test_language_score_column_is_float32_and_present_for_kept():
    table = annotate_table([SENTENCES["fr"], SENTENCES["de"]])
    assert table.schema.field("language_score").type == pa.float32()
    assert table.schema.field("language").type == pa.string()
    rows = table.to_pylist()
    assert [r["language"] for r in rows] == ["fr", "de"]
    assert all(r["language_score"] > 0.9 for r in rows)
    _, scores = LanguageIdentifier().predict([SENTENCES["fr"]])
    assert scores.dtype == np.float32


def test_model_path_from_config(tmp_path):
    copy = Path(tmp_path / "lid.ftz")
    copy.write_bytes(bundled_lid_model_path().read_bytes())
    rows = annotate([SENTENCES["es"]], model=str(copy))
    assert rows[0]["language"] == "es"
