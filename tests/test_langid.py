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


def hostile_texts() -> list[str]:
    """Every whitespace character Python knows, runs of them at the ends and
    inside, multi-byte characters on the max_chars boundary, empty texts."""
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    pieces = [*spaces, "a", "é", "中", "😀", "word", "\u200b", "\x00", "\ufeff", "  \n\n "]
    rng = np.random.default_rng(4)
    texts = ["", " ", "\n\t", "".join(spaces), "x" * 50, "中" * 49 + " a", "😀" * 60]
    texts += ["".join(rng.choice(pieces, rng.integers(1, 120))) for _ in range(400)]
    return texts


@pytest.mark.parametrize("max_chars", [1, 7, 48, 2_000])
def test_the_line_kernel_makes_the_reference_lines(max_chars):
    """predict_rows' lines are single_line(text[:max_chars]), row for row, on
    a sliced array and for rows out of order."""
    from dedupe_at_scale.kernels.codepoints import single_line_prefixes, unicode_tables
    from dedupe_at_scale.stages.base import string_buffers
    from dedupe_at_scale.text import single_line

    texts = hostile_texts()
    array = pa.array(["skipped"] + texts, pa.string()).slice(1)
    rows = np.random.default_rng(max_chars).permutation(len(texts))[: len(texts) - 5]
    data, offsets = string_buffers(array)
    out = np.empty(len(data) + 1, np.uint8)
    ends = np.empty(len(rows) + 1, np.int64)
    single_line_prefixes(data, offsets, rows, max_chars, unicode_tables()[0], out, ends)
    got = pa.LargeStringArray.from_buffers(
        len(rows), pa.py_buffer(ends), pa.py_buffer(out[: ends[-1]])
    ).to_pylist()
    assert got == [single_line(texts[r][:max_chars]) for r in rows]


def test_predict_rows_equals_predict():
    identifier = LanguageIdentifier(max_chars=300)
    texts = hostile_texts()[:100] + ["Der Hund läuft schnell über die Straße.\n\nJa."] * 3
    rows = np.arange(len(texts))[::-1]
    languages, scores = identifier.predict_rows(pa.array(texts), rows)
    want_languages, want_scores = identifier.predict([texts[r] for r in rows])
    assert languages == want_languages
    assert scores.tolist() == want_scores.tolist()
