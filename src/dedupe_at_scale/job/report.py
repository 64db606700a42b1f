"""The end-of-run summary a person reads: stages, top reasons, languages."""

from __future__ import annotations

from typing import Any

from dedupe_at_scale.stages import REGISTRY as STAGES
from dedupe_at_scale.steps import REGISTRY as STEPS
from dedupe_at_scale.summary_table import text_table


def summarize(manifest: dict[str, Any], top_reasons: int = 10, top_languages: int = 15) -> str:
    counts = manifest["counts"]
    total = counts["input"] or 1
    text_rows = manifest.get("config", {}).get("input", {}).get("format", "text") == "text"
    unit = "documents" if text_rows else "rows"
    tokens = manifest.get("tokens", {}).get("enabled", False)
    stage_rows = [
        [name, "on" if s["enabled"] else "off", s["in"], s["kept"], s["rejected"]]
        + ([f"{s['tokens_kept']:,}", f"{s['tokens_rejected']:,}"] if tokens else [])
        for name, s in counts["stages"].items()
    ]
    stage_headers = ["stage", "enabled", "in", "kept", "rejected"]
    stage_headers += ["tokens kept", "tokens rejected"] if tokens else []
    reasons = sorted(
        ((stage, rule, n) for stage, rules in counts["rules"].items() for rule, n in rules.items()),
        key=lambda r: -r[2],
    )
    reason_rows = [
        [rule, stage, n, f"{100 * n / total:.1f}%"] for stage, rule, n in reasons[:top_reasons]
    ]
    language_rows = [
        [lang, c["kept"], c["rejected"]]
        for lang, c in list(counts["languages"].items())[:top_languages]
    ]
    wall = manifest["timings"]["wall_seconds"]
    data_rows = sum(s["rows"] for s in manifest["output"]["data"])
    parts = [
        "Stages",
        text_table(stage_headers, stage_rows),
        "",
        "Top rejection reasons",
        text_table(["rule", "stage", unit, "of input"], reason_rows) if reason_rows else "(none)",
        "",
        "Languages",
        text_table(["language", "kept", "rejected"], language_rows),
        "",
        f"Kept {counts['kept']} of {counts['input']} {unit} "
        f"({100 * counts['kept'] / total:.1f}%) in {len(manifest['output']['data'])} shards "
        f"({data_rows} rows); {counts['rejected']} rejected.",
        *_input_lines(manifest),
        *_unit_lines(manifest),
        *_resumed_line(manifest),
        "Wall time: " + ", ".join(f"{k} {v:.1f}s" for k, v in wall.items()),
        f"Output: {manifest['output']['uri']} (manifest.json, "
        + ", ".join(f"{name}/" for name in _published(manifest))
        + (", report.html" if "report" in manifest["output"] else "")
        + ")",
    ]
    return "\n".join(parts)


def unit_sections(manifest: dict[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
    """Each stage and step with its own manifest section, in registry order;
    none whose section is absent or off. (A unit's name may also be a
    manifest key of another kind, such as "format", the manifest's version.)"""
    found = []
    for unit in [*STAGES, *STEPS]:
        section = manifest.get(unit.name)
        if isinstance(section, dict) and section and section.get("enabled", True):
            found.append((unit, section))
    return found


def _unit_lines(manifest: dict[str, Any]) -> list[str]:
    """What each stage and step says of its own section."""
    return [line for unit, section in unit_sections(manifest) for line in unit.summary(section)]


def _input_lines(manifest: dict[str, Any]) -> list[str]:
    lines = []
    skipped = manifest["input"].get("skipped", {})
    if skipped.get("count"):
        reasons = "; ".join(f"{n} {why}" for why, n in skipped["by_reason"].items())
        lines.append(
            f"Not read: {skipped['count']} paths under the input ({reasons}); "
            "see input.skipped in manifest.json."
        )
    renamed = manifest.get("input_schema", {}).get("renamed_columns")
    if renamed:
        pairs = ", ".join(f"{old} -> {new}" for old, new in renamed.items())
        lines.append(f"Input columns renamed (the job writes these names itself): {pairs}.")
    return lines


def _resumed_line(manifest: dict) -> list[str]:
    """What an interrupted run of the same job had left that this one reused."""
    annotate = manifest.get("annotate") or {}
    reused, units = annotate.get("units_reused", 0), annotate.get("units", 0)
    if not reused:
        return []
    return [f"Resumed: {reused} of {units} read units were annotated by an interrupted run "
            "of this job and reused."]  # fmt: skip


def _published(manifest: dict[str, Any]) -> list[str]:
    """data/, rejected/ and the directories of the steps that ran."""
    listed = [k for k in manifest["output"] if k not in ("uri", "report")]
    ran = {name: step.name for step in STEPS for name in step.publishes}
    return [k for k in listed if manifest.get(ran.get(k, ""), {"enabled": True}).get("enabled")]
