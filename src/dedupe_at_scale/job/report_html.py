"""report.html: one self-contained page (Plotly's JavaScript inlined, no
network, no server) built from manifest.json and report.json (job/profile.py)
alone, so `dedupe-at-scale report OUT/` can rebuild it from any output.

Each plot is a div with a stable id (plot-funnel, plot-rules, ...) whose
data are the manifest's numbers, which the browser test reads back."""

from __future__ import annotations

import html
import json
import math
import posixpath
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.offline

from dedupe_at_scale.io.output import MANIFEST
from dedupe_at_scale.io.storage import Location, StorageError, read_json, resolve, write_text
from dedupe_at_scale.job.figures import Figure, plot_html, trace
from dedupe_at_scale.job.report import unit_sections
from dedupe_at_scale.job.report_texts import pairs_section, samples_section

if TYPE_CHECKING:
    from dedupe_at_scale.io.storage import StorageConfig
    from dedupe_at_scale.report_parts import ReportBars

HTML, DATA = "report.html", "report.json"
KEPT, REJECTED = "#2a9d8f", "#e76f51"
MAX_BARS = 40
FUNNEL_TEXT = "%{value:,}<br>%{percentInitial:.1%}"

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222}
header{background:#264653;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;opacity:.85;font-size:13px}
nav{padding:8px 32px;background:#f1f3f5;font-size:13px;position:sticky;top:0;z-index:2}
nav a{margin-right:14px;color:#264653}
main{padding:0 32px 48px;max-width:1200px}
section{margin-top:28px} h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ddd;padding:4px 8px}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}
.plot{height:380px} .note{color:#666;font-size:13px}
pre{white-space:pre-wrap;background:#f8f9fa;padding:6px;font-size:12px;max-height:180px;overflow:auto}
table.pairs td{vertical-align:top;width:45%} table.pairs td:first-child{width:10%}
mark{background:#ffe08a}
"""


# A log axis's dtick of 1: a tick and label at each power of ten only.
DECADES = 1


def build_report(manifest: dict[str, Any], profile: dict[str, Any]) -> str:
    page = _Page()
    _overview(page, manifest)
    _funnel(page, manifest)
    _rules(page, manifest)
    _languages(page, manifest)
    _distributions(page, profile)
    _unit_sections(page, manifest)
    _top_reasons(page, profile)
    for shown in profile.get("pairs", []):  # declared by steps (report_parts.ReportPairs)
        if profile.get(shown["key"]):
            page.section(shown["anchor"], shown["title"], pairs_section(profile[shown["key"]]))
    page.section("samples", "Rejected samples", samples_section(manifest, profile))
    return page.render(manifest)


class _Page:
    def __init__(self) -> None:
        self.sections: list[tuple[str, str, str]] = []  # (anchor, title, html)

    def section(self, anchor: str, title: str, body: str) -> None:
        self.sections.append((anchor, title, body))

    def render(self, manifest: dict[str, Any]) -> str:
        nav = "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t, _ in self.sections)
        body = "".join(
            f'<section id="{a}"><h2>{html.escape(t)}</h2>{b}</section>' for a, t, b in self.sections
        )
        title = f"dedupe-at-scale report: {manifest['output']['uri']}"
        started = manifest.get("started_at", "")
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
            f"<script>{plotly.offline.get_plotlyjs()}</script></head><body>"
            f"<header><h1>{html.escape(title)}</h1><p>input {html.escape(manifest['input']['uri'])}"
            f" · started {html.escape(started)}</p></header>"
            f"<nav>{nav}</nav><main>{body}</main></body></html>"
        )


def _table(headers: list[str], rows: list[list[Any]], keys: list[str | None] | None = None) -> str:
    """A table; a row with a key carries data-key (the manifest path of its number)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    lines = []
    for i, row in enumerate(rows):
        key = keys[i] if keys else None
        attr = f' data-key="{html.escape(key)}"' if key else ""
        cells = "".join(
            f'<td class="n">{v:,}</td>' if isinstance(v, (int, float)) and not isinstance(v, bool)
            else f"<td>{html.escape(str(v))}</td>"
            for v in row
        )  # fmt: skip
        lines.append(f"<tr{attr}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(lines)}</table>"


def _overview(page: _Page, m: dict[str, Any]) -> None:
    counts = m["counts"]
    rows: list[list[Any]] = [
        ["documents in", counts["input"]],
        ["documents kept", counts["kept"]],
        ["documents rejected", counts["rejected"]],
        ["rows written to data/", sum(s["rows"] for s in m["output"]["data"])],
        ["data/ shards", len(m["output"]["data"])],
    ]
    keys: list[str | None] = ["counts.input", "counts.kept", "counts.rejected", None, None]
    tokens = m.get("tokens", {})
    if tokens.get("enabled"):
        for part in ("input", "kept", "rejected", "written"):
            rows.append([f"tokens {part}", tokens[part]])
            keys.append(f"tokens.{part}")
        if tokens.get("counted") == "kept":
            rows.append(["of which estimated from bytes", tokens["estimated"]["tokens"]])
            keys.append("tokens.estimated.tokens")
    wall = m["timings"]["wall_seconds"].get("total")
    if wall is not None:
        rows.append(["wall seconds", round(wall, 1)])
        keys.append(None)
    page.section("overview", "Overview", _table(["", "value"], rows, keys))


def _funnel(page: _Page, m: dict[str, Any]) -> None:
    stages = [(n, s) for n, s in m["counts"]["stages"].items() if s["enabled"]]
    plots = []
    # "read": every input document; "input": after whole files quarantined.
    names = ["read"] + [n for n, _ in stages]
    docs = [m["counts"]["input"]] + [s["kept"] for _, s in stages]
    figure = Figure(
        trace("funnel", y=names, x=docs, texttemplate=FUNNEL_TEXT, marker={"color": KEPT})
    )
    figure.update_layout(title="Documents kept after each stage")
    plots.append(plot_html("plot-funnel", figure))
    if m.get("tokens", {}).get("enabled"):
        tokens = [m["tokens"]["input"]] + [s["tokens_kept"] for _, s in stages]
        figure = Figure(
            trace(
                "funnel", y=names, x=tokens, texttemplate=FUNNEL_TEXT, marker={"color": "#457b9d"}
            )
        )
        figure.update_layout(title="Tokens kept after each stage")
        plots.append(plot_html("plot-funnel-tokens", figure))
    page.section("funnel", "Funnel", f"<div class='grid'>{''.join(plots)}</div>")


def _rules(page: _Page, m: dict[str, Any]) -> None:
    rows = sorted(
        ((f"{stage}/{rule}", n) for stage, rules in m["counts"]["rules"].items()
         for rule, n in rules.items()),
        key=lambda r: -r[1],
    )[:MAX_BARS]  # fmt: skip
    if not rows:
        page.section("rules", "Rejections by rule", "<p class='note'>Nothing was rejected.</p>")
        return
    figure = Figure(trace("bar", y=[r for r, _ in rows][::-1], x=[n for _, n in rows][::-1],
                            orientation="h", marker={"color": REJECTED}))  # fmt: skip
    figure.update_layout(title="Documents rejected, by stage/rule", height=max(380, 22 * len(rows)))
    figure.update_xaxes(title="documents")
    figure.update_yaxes(title="stage/rule")
    page.section("rules", "Rejections by rule", plot_html("plot-rules", figure))


def _languages(page: _Page, m: dict[str, Any]) -> None:
    langs = list(m["counts"]["languages"].items())[:MAX_BARS]
    names = [lang for lang, _ in langs]
    figure = Figure(
        trace("bar", name="kept", x=names, y=[c["kept"] for _, c in langs],
               marker={"color": KEPT}),
        trace("bar", name="rejected", x=names, y=[c["rejected"] for _, c in langs],
               marker={"color": REJECTED}),
    )  # fmt: skip
    figure.update_layout(barmode="stack", title="Documents per language")
    figure.update_xaxes(title="language")
    figure.update_yaxes(title="documents")
    page.section("languages", "Languages", plot_html("plot-languages", figure))


def _distributions(page: _Page, profile: dict[str, Any]) -> None:
    edges = np.asarray(profile.get("edges", []))
    hists = profile.get("histograms", {})
    marks = profile.get("thresholds", {})
    plots = []
    # How each is drawn, as its stage or step declared it (report_parts.Distribution);
    # a report.json from before the declarations: by name.
    plain = [{"name": n, "title": n, "unit": "value", "log_counts": False} for n in hists]
    for shown in profile.get("distributions", plain):
        name = shown["name"]
        figure = _histogram_figure(
            edges, hists[name], marks.get(name, []), log_counts=shown["log_counts"]
        )
        figure.update_layout(title=shown["title"])
        figure.update_xaxes(title=shown["unit"])
        plots.append(plot_html(f"plot-{name}", figure))
    body = "<p class='note'>Kept against rejected (by any stage); dashed lines mark the rule thresholds.</p>"
    page.section(
        "distributions", "Distributions", body + f"<div class='grid'>{''.join(plots)}</div>"
    )


def _histogram_figure(
    edges: np.ndarray, parts: dict[str, list[int]], marks: list[dict], log_counts: bool
) -> Figure:
    """Step lines of the bins that hold data: x is each bin's left edge, then
    the last bin's right edge (its count repeated, so the step is drawn)."""
    counts = {k: np.asarray(v) for k, v in parts.items()}
    total = sum(counts.values())
    nonzero = np.flatnonzero(total)
    figure = Figure()
    if len(nonzero) == 0:
        return figure
    lo, hi = nonzero[0], nonzero[-1] + 1
    top = int(total[lo:hi].max())
    figure.update_yaxes(title="documents", **_count_axis("log" if log_counts else "linear", top))
    if hi - lo == 1:  # every value in one bin: a flat line would read as an even spread
        where = f"all in [{edges[lo]:g}, {edges[hi]:g})"
        for part, color in (("kept", KEPT), ("rejected", REJECTED)):
            if part in counts:
                figure.data.append(trace("bar", x=[where], y=[int(counts[part][lo])],
                                          name=part, marker={"color": color}))  # fmt: skip
        figure.update_layout(barmode="stack", legend={"orientation": "h", "y": -0.25})
        figure.update_xaxes(type="category")
        figure.update_yaxes(**_count_axis("linear", top))  # one bar: log would show no tick
        return figure
    logarithmic = edges[hi] > 1.0 + 1e-9  # counts and lengths, not ratios
    x = edges[lo : hi + 1].copy()
    if logarithmic and x[0] <= 0:
        x[0] = edges[1] / 2  # the [0, 0.02) bin, placed where a log axis can show it
    for part, color in (("kept", KEPT), ("rejected", REJECTED)):
        if part in counts:
            y = counts[part][lo:hi].tolist()
            figure.data.append(trace("scatter", x=x, y=y + y[-1:], name=part, mode="lines",
                                      line={"shape": "hv", "color": color}))  # fmt: skip
    # Thresholds as traces in data coordinates (a shape on a log axis would
    # need log10 positions); one outside the data's range is left out.
    for mark in marks:
        t = mark["threshold"]
        if edges[lo] <= t <= edges[hi] and (t > 0 or not logarithmic):
            figure.data.append(trace(
                "scatter", x=[t, t], y=[0, top], mode="lines",
                name=f"{mark['rule']} ({mark['bound']} {t:g})",
                line={"dash": "dash", "color": "#333", "width": 1},
            ))  # fmt: skip
    if logarithmic:  # labels at powers of ten only (a minor tick's "5" reads as 5),
        # over whole decades, so a range within one decade still has labels
        span = [math.floor(math.log10(x[0])), math.ceil(math.log10(x[-1]))]
        figure.update_xaxes(type="log", dtick=DECADES, range=span)
    else:  # ratios: the bins' own range, not past it
        figure.update_xaxes(type="linear", range=[float(edges[lo]), float(edges[hi])])
    # The same two buttons in the same order on every plot; the current one lit.
    scales = [
        {"label": f"{s} counts", "method": "relayout",
         "args": [{f"yaxis.{k}": v for k, v in _count_axis(s, top).items()}]}
        for s in ("linear", "log")
    ]  # fmt: skip
    figure.update_layout(
        legend={"orientation": "h", "y": -0.25},
        updatemenus=[{"type": "buttons", "direction": "right", "buttons": scales,
                      "active": 1 if log_counts else 0,
                      "x": 1, "xanchor": "right", "y": 1.15, "showactive": True}],
    )  # fmt: skip
    return figure


def _count_axis(scale: str, top: int) -> dict[str, Any]:
    """A count axis up to `top`, linear or log. On log: labels at powers of
    ten only, over whole decades from 1, so that counts within one decade
    still get a label at each end. (None and autorange give plotly back its
    own ticks and range when a button turns it linear.)"""
    if scale == "linear":
        return {"type": "linear", "dtick": None, "autorange": True}
    decades = math.ceil(math.log10(max(top, 1) * 1.05))
    return {"type": "log", "dtick": DECADES, "autorange": False, "range": [-0.05, decades + 0.05]}


def _top_reasons(page: _Page, profile: dict[str, Any]) -> None:
    """The most frequent reasons of stages whose reasons name list entries."""
    for stage, counts in profile.get("reasons", {}).items():
        rows = [[reason, n] for reason, n in counts.items()]
        body = (
            "<p class='note'>The most frequent reasons (each names the entry and its list); "
            "counted per block, up to 1,000 distinct reasons a block.</p>"
        )
        table = _table(["reason", "documents"], rows)
        page.section(f"reasons-{stage}", f"Most frequent {stage} reasons", body + table)


def _unit_sections(page: _Page, manifest: dict[str, Any]) -> None:
    """The sections stages and steps declare from their manifest sections
    (report_sections, report_parts.py): a note, a table, plots, warnings."""
    for unit, section in unit_sections(manifest):
        for part in unit.report_sections(section):
            body = f"<p class='note'>{html.escape(part.note)}</p>" if part.note else ""
            if part.table is not None:
                body += _table(*part.table)
            plots = [plot_html(bars.div_id, _bars(bars)) for bars in part.plots]
            body += plots[0] if len(plots) == 1 else f"<div class='grid'>{''.join(plots)}</div>"
            body += "".join(f"<p class='note'>⚠ {html.escape(w)}</p>" for w in part.warnings)
            page.section(part.anchor, part.title, body)


COLOURS = {"kept": KEPT, "muted": "#adb5bd", "accent": "#6d597a"}


def _bars(spec: ReportBars) -> Figure:
    figure = Figure(*(
        trace("bar", name=name, x=x, y=y, marker={"color": COLOURS[c]} if c else None)
        for name, x, y, c in spec.bars
    ))  # fmt: skip
    figure.update_layout(barmode=spec.barmode, title=spec.title)
    figure.update_xaxes(title=spec.x_title, type="category" if spec.x_category else None)
    figure.update_yaxes(title=spec.y_title, tickformat=spec.y_format or None)
    if spec.log_y:
        figure.update_yaxes(type="log", dtick=DECADES)
    return figure


def rebuild_report(uri: str, storage: StorageConfig | None = None) -> str:
    """Build OUT/report.html again from OUT/manifest.json and OUT/report.json
    (local or any fsspec URL); the URI of the page written."""
    location = resolve(uri, storage)
    manifest_path = location.join(MANIFEST)
    try:
        manifest = read_json(location, manifest_path)
    except FileNotFoundError as exc:
        raise StorageError(
            f"{location.display(manifest_path)}: no manifest.json, so {uri} is not a "
            "complete output of dedupe-at-scale"
        ) from exc
    try:
        profile = read_json(location, location.join(DATA))
    except FileNotFoundError:
        profile = {}  # output.report was off: the page has no distributions
    write_text(location, location.join(HTML), build_report(manifest, profile))
    return location.display(location.join(HTML))


def write_report(
    location: Location, root: str, manifest: dict[str, Any], profile: dict[str, Any]
) -> list[str]:
    """report.json (the histograms, compact) and report.html under `root`;
    their paths relative to it."""
    write_text(location, posixpath.join(root, DATA), json.dumps(profile, separators=(",", ":")))
    write_text(location, posixpath.join(root, HTML), build_report(manifest, profile))
    return [DATA, HTML]
