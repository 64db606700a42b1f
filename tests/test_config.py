from pathlib import Path

import pytest

from dedupe_at_scale.config import ConfigError, JobConfig, config_from_dict, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_without_config():
    cfg = load_config(None)
    assert cfg == JobConfig()
    assert cfg.langid.min_score == 0.65
    assert cfg.quality.gopher_quality.min_words == 50
    assert cfg.quality.gopher_repetition.duplicate_ngram_max_chars_fraction[10] == 0.10


def test_annotated_example_lists_every_default():
    assert load_config(ROOT / "jobs" / "example.yaml") == JobConfig()


def test_every_shipped_job_config_is_valid():
    for path in (ROOT / "jobs").glob("*.yaml"):
        load_config(path)


@pytest.mark.parametrize(
    "data, key",
    [
        ({"langid": {"min_scor": 0.5}}, "langid.min_scor"),
        ({"bogus": {}}, "bogus"),
        ({"quality": {"c4": {"clean": True}}}, "quality.c4.clean"),
    ],
)
def test_unknown_key_is_named(data, key):
    with pytest.raises(ConfigError, match=f"unknown key '{key}'"):
        config_from_dict(data)


@pytest.mark.parametrize(
    "data, key",
    [
        ({"langid": {"min_score": "high"}}, "langid.min_score"),
        ({"langid": {"enabled": "yes"}}, "langid.enabled"),
        ({"langid": {"languages": "en"}}, "langid.languages"),
        ({"langid": {"languages": ["en", 3]}}, r"langid.languages\[1\]"),
        ({"output": {"rows_per_shard": 1.5}}, "output.rows_per_shard"),
        ({"output": {"compression": "brotli"}}, "output.compression"),
        ({"quality": {"gopher_quality": {"min_words": True}}}, "quality.gopher_quality.min_words"),
        ({"quality": "on"}, "quality"),
    ],
)
def test_wrong_type_is_named(data, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        config_from_dict(data)


def test_values_are_coerced_and_null_disables():
    cfg = config_from_dict(
        {
            "langid": {"languages": ["en", "de"], "min_score": 1},
            "quality": {
                "gopher_quality": {"min_words": None},
                "gopher_repetition": {"top_ngram_max_chars_fraction": {2: 0.3}},
            },
        }
    )
    assert cfg.langid.min_score == 1.0 and isinstance(cfg.langid.min_score, float)
    assert cfg.quality.gopher_quality.min_words is None
    assert cfg.quality.gopher_repetition.top_ngram_max_chars_fraction == {2: 0.3}


def test_semantic_checks():
    with pytest.raises(ConfigError, match="langid.min_score"):
        config_from_dict({"langid": {"min_score": 1.5}})
    with pytest.raises(ConfigError, match="output.rows_per_shard"):
        config_from_dict({"output": {"rows_per_shard": 0}})
    with pytest.raises(ConfigError, match="dedup.bands"):
        config_from_dict({"dedup": {"bands": 20}})  # rows missing
    with pytest.raises(ConfigError, match="dedup.bands"):
        config_from_dict({"dedup": {"bands": 20, "rows": 8, "num_perm": 128}})
    with pytest.raises(ConfigError, match="mixture.weights"):
        config_from_dict({"mixture": {"enabled": True}})


def test_yaml_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("langid: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(bad)
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    top = tmp_path / "list.yaml"
    top.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level"):
        load_config(top)


def test_relative_paths_in_a_spec_file_are_beside_the_spec(tmp_path, monkeypatch):
    """A spec works from any directory: its relative local paths are resolved
    against its own folder; absolute paths and URIs stay as written, and a
    config that is not a file (a dict, the shipped env: spec) is left alone."""
    spec = tmp_path / "jobs" / "job.yaml"
    spec.parent.mkdir()
    spec.write_text(
        "input: {uri: ../corpus}\noutput: {uri: /abs/out}\n"
        "langid: {model: models/lid.ftz}\nquality: {model: s3://bucket/q.bin}\n"
        "tokens: {tokenizer: ../tok/tokenizer.json}\n"
        "decontaminate: {enabled: true, sources: [{name: q, uri: evals/q.parquet}]}\n"
    )
    monkeypatch.chdir("/")
    cfg = load_config(spec)
    assert cfg.input.uri == str(tmp_path / "corpus")
    assert cfg.output.uri == "/abs/out"
    assert cfg.langid.model == str(tmp_path / "jobs" / "models" / "lid.ftz")
    assert cfg.quality.model == "s3://bucket/q.bin"
    assert cfg.tokens.tokenizer == str(tmp_path / "tok" / "tokenizer.json")
    assert cfg.decontaminate.sources[0].uri == str(tmp_path / "jobs" / "evals" / "q.parquet")
    assert config_from_dict({"input": {"uri": "../corpus"}}).input.uri == "../corpus"
    monkeypatch.setenv("SPEC", "input: {uri: corpus}\n")
    assert load_config("env:SPEC").input.uri == "corpus"


def test_the_shipped_specs_point_at_the_checkout_from_anywhere(monkeypatch):
    monkeypatch.chdir("/")
    assert load_config(ROOT / "jobs" / "local-sample.yaml").input.uri == str(ROOT / "demo-input")
    evals = load_config(ROOT / "jobs" / "compliance.yaml").decontaminate.sources[0].uri
    assert evals == str(ROOT / "evals" / "quiz.parquet")
