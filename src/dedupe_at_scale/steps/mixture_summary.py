"""The manifest's `mixture` section: what the mixture wrote per group
(mixture.achieved_rows, per block as the output is written) against the
targets of its plans."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dedupe_at_scale.report_parts import ReportBars, ReportSection
from dedupe_at_scale.summary_table import text_table

if TYPE_CHECKING:
    from dedupe_at_scale.steps.mixture import GroupPlan, MixtureConfig


def mixture_summary(cfg: MixtureConfig, plans: dict[str, GroupPlan], rows: list[dict]) -> dict:
    """Target against achieved shares per group, with a note where a group has
    too little data for its weight within max_repeats."""
    achieved: dict[str, dict[str, float]] = {}
    for row in rows:
        a = achieved.setdefault(row["group"], {"units": 0.0, "documents": 0, "copies": 0})
        for key in ("units", "documents", "copies", "tokens"):
            if key in row:
                a[key] = a.get(key, 0) + row[key]
    total_units = sum(a["units"] for a in achieved.values()) or 1.0
    weight_sum = sum(w for w in cfg.weights.values() if w > 0)
    groups, warnings = {}, []
    for group, group_plan in plans.items():
        a = achieved.get(group, {"units": 0.0, "documents": 0, "copies": 0})
        # Too little data: even max_repeats copies of everything miss the target.
        short = group_plan.target > group_plan.available * cfg.max_repeats * (1 + 1e-9)
        groups[group] = {
            "target_share": round(cfg.weights[group] / weight_sum, 6),
            "achieved_share": round(a["units"] / total_units, 6),
            "target_units": round(group_plan.target, 3),
            "available_units": round(group_plan.available, 3),
            "selected_units": round(a["units"], 3),
            "documents": a["documents"],
            "copies_written": a["copies"],
            "short_of_target": short,
        }
        if "tokens" in a:
            groups[group]["tokens_written"] = a["tokens"]
        if short:
            warnings.append(
                f"group {group!r}: {a['units']:.0f} of {group_plan.target:.0f} {cfg.unit} "
                f"({group_plan.available:.0f} available, at most {cfg.max_repeats} copies each)"
            )
    return {
        "enabled": True,
        "group_column": cfg.group_column,
        "unit": cfg.unit,
        "total_target": cfg.total,
        "total_written": round(sum(a["units"] for a in achieved.values()), 3),
        "groups": groups,
        "warnings": warnings,
    }


def summary_lines(section: dict[str, Any]) -> list[str]:
    """The mixture's lines in the end-of-run summary."""
    # Tokens per group too, when they were counted and are not the unit already.
    tokens = section["unit"] != "tokens" and any(
        "tokens_written" in v for v in section["groups"].values()
    )
    rows = [
        [g, f"{100 * v['target_share']:.1f}%", f"{100 * v['achieved_share']:.1f}%",
         f"{v['selected_units']:.0f}", v["copies_written"]]
        + ([f"{v.get('tokens_written', 0):,}"] if tokens else [])
        for g, v in section["groups"].items()
    ]  # fmt: skip
    headers = ["group", "target", "achieved", section["unit"], "rows written"]
    headers += ["tokens"] if tokens else []
    lines = [""]
    if rows:  # without weights the mixture only caps domains
        lines += [f"Mixture by {section['group_column']} (in {section['unit']})",
                  text_table(headers, rows)]  # fmt: skip
    lines += [f"WARNING: too little data for the target: {w}" for w in section["warnings"]]
    caps = section.get("domain_caps")
    if caps:
        n, names = caps["capped_domains"], list(caps["largest"])[:5]
        shown = ", ".join(names) + (", ..." if n > len(names) else "")
        lines.append(
            f"Domain caps: {n} value(s) of {caps['column']} held to "
            f"{caps['max_per_domain']:g} {caps['unit']}" + (f" ({shown})" if n else "")
        )
    return lines + [""]


def mixture_section(mix: dict[str, Any]) -> ReportSection:
    """report.html's mixture: target against achieved share per group."""
    groups = list(mix["groups"])
    bars = ReportBars(
        "plot-mixture", f"Mixture by {mix['group_column']} (share of {mix['unit']})",
        [("target", groups, [mix["groups"][g]["target_share"] for g in groups], "muted"),
         ("achieved", groups, [mix["groups"][g]["achieved_share"] for g in groups], "kept")],
        mix["group_column"], f"share of {mix['unit']}", y_format=".0%",
    )  # fmt: skip
    return ReportSection("mixture", "Mixture", plots=(bars,), warnings=tuple(mix["warnings"]))
