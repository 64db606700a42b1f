"""What a stage or step puts in report.html from its own manifest section
(`report_sections(section)`): sections of a note, a table, bar charts and
warnings, as plain data; job/report_html.py draws them. A unit's plots and
tables live with its module, as its summary lines do."""

from __future__ import annotations

from typing import Any, NamedTuple


class ReportBars(NamedTuple):
    """A bar chart. Each bar set is (name, x, y, colour), the colour a role:
    "kept", "muted", "accent", or None for the palette's next."""

    div_id: str  # the plot's id in the page (the browser test finds it by it)
    title: str
    bars: list[tuple[str | None, list[Any], list[Any], str | None]]
    x_title: str
    y_title: str
    barmode: str = "group"  # or "stack"
    log_y: bool = False  # labelled at powers of ten only
    y_format: str = ""  # a d3 tick format, such as ".0%"
    x_category: bool = False  # x values are names, even when they read as numbers


class ReportSection(NamedTuple):
    anchor: str  # the section's id in the page
    title: str
    note: str = ""  # a line above: what it shows
    table: tuple[list[str], list[list[Any]]] | None = None  # (headers, rows)
    plots: tuple[ReportBars, ...] = ()
    warnings: tuple[str, ...] = ()
