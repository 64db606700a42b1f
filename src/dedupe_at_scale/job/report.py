"""The end-of-run summary a person reads: stages, top reasons, languages."""

from __future__ import annotations

from typing import Any


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
        )

    return "\n".join([fmt(cells[0]), fmt(["-" * w for w in widths]), *map(fmt, cells[1:])])


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
        _table(stage_headers, stage_rows),
        "",
        "Top rejection reasons",
        _table(["rule", "stage", unit, "of input"], reason_rows) if reason_rows else "(none)",
        "",
        "Languages",
        _table(["language", "kept", "rejected"], language_rows),
        "",
        f"Kept {counts['kept']} of {counts['input']} {unit} "
        f"({100 * counts['kept'] / total:.1f}%) in {len(manifest['output']['data'])} shards "
        f"({data_rows} rows); {counts['rejected']} rejected.",
        *_input_lines(manifest),
        *_tokens_line(manifest),
        *_dedup_line(manifest),
        *_consistency_line(manifest),
        *_decontaminate_line(manifest),
        *_pii_line(manifest),
        *_mixture_lines(manifest),
        *_subset_lines(manifest),
        *_resumed_line(manifest),
        "Wall time: " + ", ".join(f"{k} {v:.1f}s" for k, v in wall.items()),
        f"Output: {manifest['output']['uri']} (manifest.json, "
        + ", ".join(f"{name}/" for name in _published(manifest))
        + (", report.html" if "report" in manifest["output"] else "")
        + ")",
    ]
    return "\n".join(parts)


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


def _tokens_line(manifest: dict[str, Any]) -> list[str]:
    t = manifest.get("tokens", {})
    if not t.get("enabled"):
        return []
    share = 100 * t["kept"] / (t["input"] or 1)
    written = (
        f"; {t['written']:,} written with the mixture's copies" if t["written"] != t["kept"] else ""
    )
    return [
        f"Tokens ({t['tokenizer']} tokenizer): kept {t['kept']:,} of {t['input']:,} "
        f"({share:.1f}%){written}."
    ]


def _resumed_line(manifest: dict) -> list[str]:
    """What an interrupted run of the same job had left that this one reused."""
    annotate = manifest.get("annotate") or {}
    reused, units = annotate.get("units_reused", 0), annotate.get("units", 0)
    if not reused:
        return []
    return [f"Resumed: {reused} of {units} read units were annotated by an interrupted run "
            "of this job and reused."]  # fmt: skip


def _dedup_line(manifest: dict[str, Any]) -> list[str]:
    d = manifest.get("dedup", {})
    if not d.get("enabled"):
        return []
    return [
        f"Dedup: {d['exact_duplicates_removed']} exact and {d['near_duplicates_removed']} near "
        f"duplicates removed in {d['clusters']} clusters (see duplicates/)."
    ]


def _published(manifest: dict[str, Any]) -> list[str]:
    """data/, rejected/ and the directories of the steps that ran."""
    listed = [k for k in manifest["output"] if k not in ("uri", "report")]
    ran = {"duplicates": "dedup", "conflicts": "consistency", "contamination": "decontaminate"}
    return [k for k in listed if manifest.get(ran.get(k, ""), {"enabled": True}).get("enabled")]


def _subset_lines(manifest: dict[str, Any]) -> list[str]:
    lines = []
    s = manifest.get("splits", {})
    if s.get("enabled"):
        parts = ", ".join(
            f"{name} {v['documents']} ({100 * v['achieved_share']:.1f}%)"
            for name, v in s["splits"].items()
        )
        lines.append(f"Splits by {s['key']}: {parts} (see splits/).")
    s = manifest.get("subsets", {})
    if s.get("enabled"):
        parts = ", ".join(
            f"{name}% {v['rows_written']} rows (mix within {v['max_share_deviation_points']:.2f} points)"
            for name, v in s["subsets"].items()
        )
        lines.append(f"Nested subsets of {s['drawn_from']} in {s['unit']}: {parts} (see subsets/).")
    return lines


def _consistency_line(manifest: dict[str, Any]) -> list[str]:
    c = manifest.get("consistency", {})
    if not c.get("enabled"):
        return []
    kinds = ", ".join(f"{k} {n}" for k, n in c["by_kind"].items()) or "none"
    return [
        f"Consistency: {c['conflicts']} conflicts ({kinds}) among {c['rows_in_conflicts']} rows; "
        f"action {c['action']}: {c['rows_dropped']} rows dropped (see conflicts/)."
    ]


def _decontaminate_line(manifest: dict[str, Any]) -> list[str]:
    d = manifest.get("decontaminate", {})
    if not d.get("enabled") or "sources" not in d:
        return []
    per_set = ", ".join(f"{name} {s['documents_hit']}" for name, s in d["sources"].items())
    return [
        f"Decontamination ({d['ngram_size']}-grams, action {d['action']}): "
        f"{d['documents_hit']} documents hit (by eval set: {per_set}); "
        f"{d['documents_dropped']} dropped "
        "(see contamination/)."
    ]


def _pii_line(manifest: dict[str, Any]) -> list[str]:
    p = manifest.get("pii", {})
    if not p.get("enabled"):
        return []
    hits = ", ".join(f"{k} {n}" for k, n in p["hits"].items() if n) or "none"
    dropped = sum(p["documents_dropped"].values())
    return [f"PII: {hits} found; {dropped} documents dropped."]


def _mixture_lines(manifest: dict[str, Any]) -> list[str]:
    m = manifest.get("mixture", {})
    if not m.get("enabled"):
        return []
    # Tokens per group too, when they were counted and are not the unit already.
    tokens = m["unit"] != "tokens" and any("tokens_written" in v for v in m["groups"].values())
    rows = [
        [g, f"{100 * v['target_share']:.1f}%", f"{100 * v['achieved_share']:.1f}%",
         f"{v['selected_units']:.0f}", v["copies_written"]]
        + ([f"{v.get('tokens_written', 0):,}"] if tokens else [])
        for g, v in m["groups"].items()
    ]  # fmt: skip
    headers = ["group", "target", "achieved", m["unit"], "rows written"]
    headers += ["tokens"] if tokens else []
    lines = ["", f"Mixture by {m['group_column']} (in {m['unit']})", _table(headers, rows)]
    lines += [f"WARNING: too little data for the target: {w}" for w in m["warnings"]]
    return lines + [""]
