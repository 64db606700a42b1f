"""manifest.json: what ran, on what, and where every input document went."""

from __future__ import annotations

import platform
import time
from collections import Counter, defaultdict
from importlib import metadata
from typing import TYPE_CHECKING, Any

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.storage import redact
from dedupe_at_scale.job.accounting import EXTRA_COPY_TOKENS, STAT_KEYS
from dedupe_at_scale.job.block_parts import fold_rows
from dedupe_at_scale.stages import REGISTRY as STAGE_REGISTRY
from dedupe_at_scale.stages import rejecting_stages
from dedupe_at_scale.stages.tokens.estimate import TokenEstimate
from dedupe_at_scale.steps import REGISTRY as STEP_REGISTRY

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.io.inputs import InputFile
    from dedupe_at_scale.job.phase_times import PhaseTimes

FORMAT = "dedupe-at-scale/manifest/v1"
PACKAGES = [
    "dedupe-at-scale",
    "ray",
    "pyarrow",
    "numpy",
    "fasttext",
    "datasketch",
    "fsspec",
    "s3fs",
    "pyyaml",
    "numba",
    "hyperscan",
]


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def stage_order(cfg: JobConfig) -> dict[str, bool]:
    """Stage names as rejected/ and the manifest show them, in pipeline order,
    with whether each is on: input, the per-document stages that reject, then
    the global steps (both from their registries)."""
    order = {"input": True, **rejecting_stages(cfg)}
    for step in STEP_REGISTRY:
        if step.stage is not None:
            order[step.stage] = order.get(step.stage, False) or step.enabled(cfg)
    return order


def stage_counts(
    cfg: JobConfig, total: int, rejected_by_stage: Counter, tokens: dict[str, Any] | None = None
) -> dict[str, dict]:
    """in / kept / rejected per stage, in pipeline order; in tokens too when
    they were counted (`tokens`: token_counts' section)."""
    counts, remaining = {}, total
    tokens_left = tokens["input"] if tokens is not None else 0
    for stage, enabled in stage_order(cfg).items():
        rejected = rejected_by_stage.get(stage, 0)
        counts[stage] = {
            "enabled": enabled,
            "in": remaining,
            "kept": remaining - rejected,
            "rejected": rejected,
        }
        remaining -= rejected
        if tokens is not None:
            removed = sum(tokens["rules"].get(stage, {}).values())
            counts[stage].update(
                tokens_in=tokens_left, tokens_kept=tokens_left - removed, tokens_rejected=removed
            )
            tokens_left -= removed
    return counts


def token_counts(stats: list[dict[str, Any]], counted: str = "all") -> dict[str, Any]:
    """Tokens in, kept, rejected (by stage and rule) and written (with the
    mixture's extra copies), and per language. With `counted` "kept", the
    tokens of rows a per-document stage rejected are estimated (TokenEstimate),
    once per (stage, rule, language): the same however the rows were folded."""
    stats = fold_rows(stats, STAT_KEYS)
    by_rule: dict[str, Counter] = defaultdict(Counter)
    languages: dict[str, Counter] = defaultdict(Counter)
    kept = extra = 0
    estimate = TokenEstimate(stats)
    for row in stats:
        tokens = estimate.tokens_of(row)
        stage = row[col.STAGE]
        if stage:
            by_rule[stage][row[col.RULE]] += tokens
        else:
            kept += tokens
        extra += int(row.get(EXTRA_COPY_TOKENS, 0))
        languages[row[col.LANGUAGE] or "unknown"]["rejected" if stage else "kept"] += tokens
    rejected = sum(sum(r.values()) for r in by_rule.values())
    estimated = {"counted": "kept", "estimated": estimate.section()} if counted == "kept" else {}
    return {
        **estimated,
        "input": kept + rejected,
        "kept": kept,
        "rejected": rejected,
        "written": kept + extra,
        "rules": {s: dict(r.most_common()) for s, r in by_rule.items()},
        "languages": {
            lang: {"kept": c["kept"], "rejected": c["rejected"]}
            for lang, c in sorted(languages.items(), key=lambda kv: -sum(kv[1].values()))
        },
    }


def build_manifest(
    *,
    cfg: JobConfig,
    input_uri: str,
    output_uri: str,
    files: list[InputFile],
    stats: list[dict[str, Any]],
    data_shards: list[dict[str, Any]],
    rejected_shards: list[dict[str, Any]],
    step_shards: dict[str, list[dict[str, Any]]],
    steps: dict[str, dict[str, Any]],
    times: PhaseTimes,
    started: float,
) -> dict[str, Any]:
    total = sum(f.entries for f in files)
    by_stage: Counter = Counter()
    by_rule: dict[str, dict[str, int]] = defaultdict(dict)
    languages: dict[str, Counter] = defaultdict(Counter)
    busy: Counter = Counter()
    setup: Counter = Counter()
    counters: Counter = Counter()
    for row in stats:
        stage, rule, language = row[col.STAGE], row[col.RULE], row[col.LANGUAGE] or "unknown"
        if stage:
            by_stage[stage] += row["count"]
            by_rule[stage][rule] = by_rule[stage].get(rule, 0) + row["count"]
        languages[language]["rejected" if stage else "kept"] += row["count"]
        for key, value in row.items():
            if key.startswith(col.SETUP_PREFIX):
                setup[key.removeprefix(col.SETUP_PREFIX)] += value
            elif key.startswith(col.SECONDS_PREFIX):
                busy[key.removeprefix(col.SECONDS_PREFIX)] += value
            elif key.startswith(col.COUNT_PREFIX):
                counters[key.removeprefix(col.COUNT_PREFIX)] += value
    kept = total - sum(by_stage.values())
    tokens = token_counts(stats, cfg.tokens.count) if cfg.tokens.enabled else None
    return {
        "format": FORMAT,
        "status": "complete",
        "started_at": _iso(started),
        "finished_at": _iso(time.time()),
        "input": {
            "uri": input_uri,
            "documents": total,
            "files": [_file_entry(f) for f in files],
            "quarantined_files": sum(1 for f in files if f.problem is not None),
            "repeated_ids": steps.get("ids", {}).get("repeated_ids", 0),
        },
        "output": {
            "uri": output_uri,
            "data": data_shards,
            "rejected": rejected_shards,
            **step_shards,
        },
        "counts": {
            "input": total,
            "kept": kept,
            "rejected": total - kept,
            "stages": stage_counts(cfg, total, by_stage, tokens),
            "rules": {
                stage: dict(sorted(rules.items(), key=lambda kv: -kv[1]))
                for stage, rules in by_rule.items()
            },
            "languages": {
                lang: {"kept": c["kept"], "rejected": c["rejected"]}
                for lang, c in sorted(languages.items(), key=lambda kv: -sum(kv[1].values()))
            },
        },
        # Files quarantined whole are not read, so their tokens are not counted.
        "tokens": (
            {"enabled": True, "tokenizer": cfg.tokens.tokenizer or "default", **tokens}
            if tokens is not None
            else {"enabled": False}
        ),
        # The stages' own sections (PiiStage.report, ...).
        **{
            stage.name: section
            for stage in STAGE_REGISTRY
            if (section := stage.report(cfg, counters, by_rule.get(stage.stage or "", {})))
            is not None
        },
        # Each global step's section; its idle report where it did not run.
        **{step.name: steps.get(step.name) or step.idle_report(cfg) for step in STEP_REGISTRY},
        "timings": {
            "wall_seconds": {k: round(v, 3) for k, v in times.wall.items()},
            # The driver process's CPU in each phase it times (job/phase_times.py).
            "driver_cpu_seconds": dict(times.driver_cpu),
            # Summed over all workers; stages overlap in time, so these are
            # busy seconds, not wall time.
            "stage_busy_seconds": {k: round(v, 3) for k, v in sorted(busy.items())},
            # Once per worker process, before its first batch: constructing
            # each stage (models, tables), its kernels' first call, and
            # numba's own set-up ("numba"); summed over the worker processes.
            "stage_setup_seconds": {k: round(v, 3) for k, v in sorted(setup.items())},
        },
        "config": _config(cfg),
        "versions": package_versions(),
    }


def _file_entry(f: InputFile) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": f.display, "rows": f.num_rows, "bytes": f.size_bytes}
    if f.problem is not None:
        entry["quarantined"] = {"rule": f.problem[0], "reason": f.problem[1]}
    return entry


def _config(cfg: JobConfig) -> dict[str, Any]:
    config = cfg.to_dict()
    config["storage"]["options"] = redact(config["storage"]["options"])
    return config


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
