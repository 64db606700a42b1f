"""The two contracts: a new per-document stage is one module plus one
registry line, and so is a new global step; their rejections reach
rejected/, the manifest's counts and the summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import GOOD_EN, open_report, plot_data, write_table
from dedupe_at_scale.job.report import summarize
from dedupe_at_scale.job.trace import trace
from toys.marker_stage import MARKER

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

TESTS = Path(__file__).parent


def run_with(
    kind: str, input_dir: Path, out: Path, config: dict | None = None, again: bool = False
) -> dict:
    """The job in its own process and Ray, the toy `kind` registered (run a
    second time over its own output with `again`, as --overwrite does)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, str(TESTS / "toys" / "run_job.py"), kind, str(input_dir), str(out),
         json.dumps(config or {}), *(["again"] if again else [])],
        capture_output=True, text=True, timeout=280, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "manifest.json").read_text())


LONGEST_TEXT = (
    GOOD_EN.replace("river", "river4") + " The end of the story came later, as it always does."
)


@contextmanager
def registered(registry: list, toy: type) -> Iterator[None]:
    """The toy registered in this process as in the job's: appended in place,
    as toys.register_stage and register_step do (the summary's and trace's
    modules hold the registry lists themselves), then removed."""
    registry.append(toy)
    try:
        yield
    finally:
        registry.remove(toy)


def corpus(tmp_path):
    texts = [GOOD_EN.replace("river", f"river{i}") for i in range(6)]
    texts[2] = texts[2].replace("museum", f"museum {MARKER}")
    texts[4] = LONGEST_TEXT
    ids = [f"d{i}" for i in range(6)]
    write_table(tmp_path / "in" / "a.parquet", {"id": ids[:3], "text": texts[:3]})
    write_table(tmp_path / "in" / "b.parquet", {"id": ids[3:], "text": texts[3:]})
    return tmp_path / "in"


def test_a_stage_is_one_module_and_one_registry_line(tmp_path, browser):
    """The toy's own config section reaches its workers: the word it rejects
    on is set in the job's config (a word of d3), not its default (d2's)."""
    out = tmp_path / "out"
    manifest = run_with("stage", corpus(tmp_path), out, {"marker": {"word": "river3"}})
    rejected = pq.read_table(out / "rejected").to_pylist()
    assert [(r["id"], r["stage"], r["rule"], r["reason"]) for r in rejected] == [
        ("d3", "marker", "marker_word", "marker_word: contains river3")
    ]
    assert manifest["config"]["marker"] == {"enabled": True, "word": "river3"}
    marker = manifest["counts"]["stages"]["marker"]
    assert {k: marker[k] for k in ("enabled", "in", "kept", "rejected")} == {
        "enabled": True, "in": 6, "kept": 5, "rejected": 1,
    }  # fmt: skip
    assert manifest["counts"]["rules"]["marker"] == {"marker_word": 1}
    assert "marker" in manifest["timings"]["stage_busy_seconds"]
    # Its construction is set-up, counted apart, as numba's own is.
    assert {"marker", "numba"} <= set(manifest["timings"]["stage_setup_seconds"])
    # Its counter, its own manifest section and summary line (the summary
    # as the job's process, where the toy is registered, renders it).
    assert manifest["marker"] == {"word": "river3", "documents_holding_it": 1}
    from dedupe_at_scale import stages
    from toys.marker_stage import MarkerStage

    with registered(stages.REGISTRY, MarkerStage):
        summary = summarize(manifest)
    assert "marker_word" in summary and "\nmarker " in summary
    assert "\nMarker: 1 documents held 'river3'.\n" in summary
    page, errors, _ = open_report(browser, out / "report.html")
    assert not errors, errors
    assert plot_data(page, "plot-marker")[0]["x"] == ["river3"]
    # Its declared histogram: every document, one rejected with a hit.
    hits = json.loads((out / "report.json").read_text())["histograms"]["marker_hits"]
    assert (sum(hits["kept"]), sum(hits["rejected"])) == (5, 1)
    title = page.evaluate("() => document.getElementById('plot-marker_hits').layout.title.text")
    assert title == "Marker: hits per document"
    assert "river3" not in "".join(pq.read_table(out / "data").column("text").to_pylist())


def test_a_stage_s_own_config_section_is_checked_like_the_others(monkeypatch):
    """Registered, the toy's section is a key of the config with its defaults,
    its unknown keys, wrong types and own checks named like any other's."""
    from dedupe_at_scale import stages
    from dedupe_at_scale.config import ConfigError, config_from_dict
    from toys.marker_stage import MarkerStage

    with pytest.raises(ConfigError, match="unknown key 'marker'"):
        config_from_dict({"marker": {"word": "x"}})
    monkeypatch.setattr(stages, "REGISTRY", [*stages.REGISTRY, MarkerStage])
    assert config_from_dict({}).marker.word == MARKER
    assert config_from_dict({"marker": None}).marker.enabled
    errors = {
        "unknown key 'marker.wordz' (allowed in marker: enabled, word)": {"wordz": "x"},
        "'marker.enabled' must be true or false, got str 'yes'": {"enabled": "yes"},
        "'marker.word' must not be empty": {"word": " "},
    }
    for message, section in errors.items():
        with pytest.raises(ConfigError) as caught:
            config_from_dict({"marker": section})
        assert str(caught.value) == f"config: {message}"


def test_a_global_step_is_one_module_and_one_registry_line(tmp_path, browser):
    """The toy step's own config section reaches it, its directory is
    published (and is the job's own when the job runs again over it), and
    its manifest section, summary line and report plot show up."""
    out = tmp_path / "out"
    manifest = run_with("step", corpus(tmp_path), out, {"longest": {"min_chars": 10}}, again=True)
    rejected = pq.read_table(out / "rejected").to_pylist()
    assert [(r["id"], r["stage"], r["rule"]) for r in rejected] == [
        ("d4", "longest", "longest_in_language")
    ]
    data = pq.read_table(out / "data")
    assert sorted(data.column("id").to_pylist()) == ["d0", "d1", "d2", "d3", "d5"]
    assert set(pc.unique(data.column("language")).to_pylist()) == {"en"}
    chars = len(LONGEST_TEXT)
    published = pq.read_table(out / "longest").to_pylist()
    assert published == [{"id": "d4", "language": "en", "chars": chars}]
    assert manifest["config"]["longest"] == {"enabled": True, "min_chars": 10}
    assert manifest["longest"] == {"dropped": 1, "chars": {"en": chars}}
    assert sum(s["rows"] for s in manifest["output"]["longest"]) == 1
    assert manifest["counts"]["stages"]["longest"]["rejected"] == 1
    from dedupe_at_scale import steps
    from toys.longest_step import DropLongest

    with registered(steps.REGISTRY, DropLongest):
        summary = summarize(manifest)
        traced = trace(str(out), "d4")
    assert "longest_in_language" in summary and "\nLongest: 1 dropped (see longest/).\n" in summary
    assert "    longest        rejected: longest_in_language" in traced
    assert traced.endswith(f"\n  longest: dropped, {chars} characters"), traced
    page, errors, _ = open_report(browser, out / "report.html")
    assert not errors, errors
    assert plot_data(page, "plot-longest")[0]["y"] == [chars]


def test_a_step_s_own_config_section_is_checked_like_the_others(monkeypatch):
    from dedupe_at_scale import steps
    from dedupe_at_scale.config import ConfigError, config_from_dict
    from toys.longest_step import DropLongest

    with pytest.raises(ConfigError, match="unknown key 'longest'"):
        config_from_dict({"longest": {}})
    monkeypatch.setattr(steps, "REGISTRY", [*steps.REGISTRY, DropLongest])
    for message, section in {
        "unknown key 'longest.max_chars' (allowed in longest: enabled, min_chars)": {
            "max_chars": 1
        },
        "'longest.min_chars' must be 0 or more": {"min_chars": -1},
    }.items():
        with pytest.raises(ConfigError) as caught:
            config_from_dict({"longest": section})
        assert str(caught.value) == f"config: {message}"


def test_the_docs_show_the_toy_stage_as_it_is():
    page = (TESTS.parent / "docs" / "architecture.md").read_text()
    section = page.split("## Adding a stage", 1)[1]
    shown = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert shown == (TESTS / "toys" / "marker_stage.py").read_text()
