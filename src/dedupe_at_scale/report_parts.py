"""What a stage or step puts in report.html from its own manifest section
(`report_sections(section)`): sections of a note, a table, bar charts and
warnings, as plain data; job/report_html.py draws them. A unit's plots and
tables live with its module, as its summary lines do. What it measures per
block for report.json is declared here too: histograms (`distributions`)
and texts side by side (`pairs`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
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


class Distribution(NamedTuple):
    """A per-document value the report draws as a histogram, kept against
    rejected, counted per staged block while the output is written
    (job/profile.py). A stage or step declares its own (`distributions`)."""

    name: str  # its key in report.json; the plot's id is plot-<name>
    column: str  # the staged column that holds it; "": the document's length in characters
    title: str
    unit: str = "value"  # the x axis title
    log_counts: bool = False  # a log count axis, which shows the rejected tails
    marks: tuple[dict[str, Any], ...] = ()  # thresholds drawn: rule, bound, threshold


class ReportPairs(NamedTuple):
    """Texts shown side by side (e.g. dedup's duplicate pairs): `rows(block,
    cfg)` takes a few rows of each staged block, `merge(rows)` picks the
    pairs of the run from them, saved in report.json under `key`. `fold(rows)`
    keeps of many blocks' rows those `merge` could pick, so that blocks are
    merged in tasks: merge(fold(a) + fold(b)) == merge(a + b)."""

    key: str
    anchor: str
    title: str
    rows: Callable[[Any, Any], list[dict[str, Any]]]
    merge: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
    fold: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


SAMPLE_CHARS = 600  # of a text the report shows


def shown_number(value: Any) -> str:
    """A value as the summary and `trace` print it: floats to 4 digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def sample_key(value: Any) -> str:
    """A stable hash of a value: the report's samples are those whose id
    hashes lowest, so the same whatever the blocks and workers."""
    return hashlib.blake2b(str(value).encode(), digest_size=8).hexdigest()
