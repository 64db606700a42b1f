"""The write pass's per-staged-file parts (counts, step summaries, report
profile), folded in tasks, give the manifest and report what all the parts
read on the driver gave: the reference here is that straightforward read,
every part kept and concatenated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import EVERY_DIRECTORY
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.io.fanout import fold_files
from dedupe_at_scale.io.storage import read_json, resolve
from dedupe_at_scale.job import write
from dedupe_at_scale.job.accounting import STAT_KEYS
from dedupe_at_scale.job.block_parts import PROFILE, STATS, SUMMARY, PartFold, fold_rows
from dedupe_at_scale.job.manifest import token_counts
from dedupe_at_scale.job.pipeline import run_job
from dedupe_at_scale.job.profile import ReportSpec, merge_profiles

# Every kind of part: step summaries of the mixture, splits, subsets and
# boilerplate, rejected samples and duplicate pairs (rejected_text), and
# small read units, so that there are many parts to fold.
CONFIG = {
    **EVERY_DIRECTORY,
    "output": {**EVERY_DIRECTORY["output"], "rejected_text": True},
    "boilerplate": {"enabled": True, "min_documents": 2, "min_chars": 40},
    "input": {"rows_per_task": 400},
}


def all_parts(paths: list[str]) -> tuple[list[dict], dict[str, list[dict]]]:
    """The reference: every part read, their rows concatenated in file order."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    summaries: dict[str, list[dict]] = {}
    for part in parts:
        for name, rows in part[SUMMARY].items():
            summaries.setdefault(name, []).extend(rows)
    return [row for part in parts for row in part[STATS]], summaries


def totals(rows: list[dict], keys: tuple[str, ...]) -> dict[tuple, dict[str, float]]:
    """What a consumer sums: each other field per value of `keys`."""
    out: dict[tuple, dict[str, float]] = {}
    for row in rows:
        into = out.setdefault(tuple(row[k] for k in keys), {})
        for name, value in row.items():
            if name not in keys:
                into[name] = into.get(name, 0) + value
    return {k: {n: round(v, 6) for n, v in sums.items()} for k, sums in out.items()}


@pytest.fixture(scope="module")
def written_parts(ray_cluster, sample_dir, tmp_path_factory):
    """The parts a real run left in _staging/stats/, and the run's fold."""
    tmp = tmp_path_factory.mktemp("parts")
    kept, read = tmp / "parts", write._read_stats
    seen = {}

    def keep_parts(location, stats_dir, n_files, fold):
        shutil.copytree(stats_dir, kept)
        seen["fold"] = fold
        return read(location, stats_dir, n_files, fold)

    cfg = config_from_dict(CONFIG)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(write, "_read_stats", keep_parts)
        manifest = run_job(str(sample_dir), str(tmp / "out"), cfg).manifest
    paths = sorted(str(p) for p in kept.glob("block-*.json"))
    return paths, seen["fold"], cfg, manifest


@pytest.mark.parametrize("chunk,fan_in", [(1, 2), (3, 4), (128, 32)])
def test_folded_parts_give_the_manifest_and_report_of_all_parts(written_parts, chunk, fan_in):
    paths, fold, cfg, manifest = written_parts
    assert len(paths) >= 8
    stats, summaries = all_parts(paths)
    assert set(summaries) == {"mixture", "splits", "subsets", "boilerplate", PROFILE}
    folded = fold_files(resolve(str(Path(paths[0]).parent)), paths, read_json, fold, chunk, fan_in)

    # The manifest's counts and tokens.
    assert totals(folded[STATS], tuple(STAT_KEYS)) == totals(stats, tuple(STAT_KEYS))
    assert len(folded[STATS]) == len(totals(stats, tuple(STAT_KEYS)))
    for counted in ("all", "kept"):
        assert token_counts(folded[STATS], counted) == token_counts(stats, counted)
    section = {k: v for k, v in manifest["tokens"].items() if k not in ("enabled", "tokenizer")}
    assert section == token_counts(stats, cfg.tokens.count)

    # Each step's summary rows, one per key.
    for name, rows in summaries.items():
        if name == PROFILE:
            continue
        keys = fold.summary_keys[name]
        assert totals(folded[SUMMARY][name], keys) == totals(rows, keys), name
        assert len(folded[SUMMARY][name]) == len(totals(rows, keys)), name

    # report.json's data, samples and duplicate pairs included.
    spec = ReportSpec.of(cfg)
    reference = merge_profiles(summaries[PROFILE], spec)
    assert reference["samples"] and reference["duplicate_pairs"] and reference["histograms"]
    assert merge_profiles(folded[SUMMARY][PROFILE], spec) == reference
    assert len(folded[SUMMARY][PROFILE]) == 1


def test_fold_rows_sums_all_but_the_keys_and_keeps_first_seen_order():
    rows = [
        {"group": 2, "units": 1.5, "documents": 1},
        {"group": "2", "units": 1.0, "documents": 4},
        {"group": 2, "units": 0.25, "documents": 2, "tokens": 7},
        {"group": 0, "units": 0.0, "documents": 0},
    ]
    assert fold_rows(rows, ("group",)) == [
        {"group": 2, "units": 1.75, "documents": 3, "tokens": 7},
        {"group": "2", "units": 1.0, "documents": 4},
        {"group": 0, "units": 0.0, "documents": 0},
    ]
    no_keys = [{"units": 3, "bytes": 10}, {"units": 0, "bytes": 5}]
    assert fold_rows(no_keys, ()) == [{"units": 3, "bytes": 15}]
    assert fold_rows([], ("group",)) == []
    # A name that is not a key would be summed into "webnews": refused.
    with pytest.raises(TypeError, match="'group' = 'web' is not a number"):
        fold_rows([{"group": "web", "units": 1.0}, {"group": "news", "units": 2.0}], ())


def test_a_fold_of_folds_is_the_fold_of_all():
    """Parts that miss a summary, empty parts, repeated keys and samples
    that tie on their key: folded in any grouping, the same."""
    spec = ReportSpec((), (), (), ())
    fold = PartFold({"mixture": ("group",)}, spec)

    def part(i: int) -> dict:
        sample = {"stage": "quality", "rule": "r", "id": f"d{i}", "key": f"{i % 3}"}
        profile = {"histograms": {"h": {"kept": [i, 1]}}, "samples": [sample],
                   "reasons": {"url_filter": {f"x{i % 2}": 1}}, "pairs": {}}  # fmt: skip
        summary = {PROFILE: [profile]}
        if i % 2:
            summary["mixture"] = [{"group": i % 3, "units": 0.5, "documents": 1}]
        stats = [{"__dds_stage": "", "__dds_rule": "", "language": "en", "count": i}]
        return {STATS: stats if i % 4 else [], SUMMARY: summary}

    parts = [part(i) for i in range(11)]
    whole = fold(parts)
    for cut in (1, 4, 10):
        assert fold([fold(parts[:cut]), fold(parts[cut:])]) == whole
    assert fold([fold([p]) for p in parts]) == whole
    assert whole[STATS] == [{"__dds_stage": "", "__dds_rule": "", "language": "en", "count": 43}]
    profile = whole[SUMMARY][PROFILE][0]
    assert profile["histograms"] == {"h": {"kept": [55, 11]}}
    assert [s["id"] for s in profile["samples"]] == ["d0", "d3", "d6"]
    assert profile["reasons"] == {"url_filter": {"x0": 6, "x1": 5}}
