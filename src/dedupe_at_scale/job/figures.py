"""Plots as the JSON Plotly.js reads (traces and a layout), built as plain
dicts: plotly's own figure objects validate every property on every update,
2 s for the 36 plots of a small report, about all of its time.
tests/test_report.py holds each plot to what plotly's Figure makes of it."""

from __future__ import annotations

import functools
from typing import Any

import plotly.io as pio

TEMPLATE = "plotly_white"


class Figure:
    """A plot's traces and layout, updated as plotly's Figure is."""

    def __init__(self, *traces: dict[str, Any]) -> None:
        self.data = list(traces)
        self.layout: dict[str, Any] = {}

    def update_layout(self, title: str | None = None, **props: Any) -> None:
        _update(self.layout, title, props)

    def update_xaxes(self, title: str | None = None, **props: Any) -> None:
        _update(self.layout.setdefault("xaxis", {}), title, props)

    def update_yaxes(self, title: str | None = None, **props: Any) -> None:
        _update(self.layout.setdefault("yaxis", {}), title, props)


def _update(into: dict[str, Any], title: str | None, props: dict[str, Any]) -> None:
    """As plotly's update: a title is {"text": ...}, and None unsets a property."""
    if title is not None:
        props["title"] = {"text": title}
    for key, value in props.items():
        if value is None:
            into.pop(key, None)
        else:
            into[key] = value


def trace(kind: str, **props: Any) -> dict[str, Any]:
    return {"type": kind, **{k: v for k, v in props.items() if v is not None}}


def plot_html(div_id: str, figure: Figure) -> str:
    """The plot as a div of the page (Plotly.js inlined once by the page)."""
    figure.update_layout(margin={"l": 60, "r": 20, "t": 50, "b": 50}, template=_template())
    return pio.to_html(
        {"data": figure.data, "layout": figure.layout}, validate=False, full_html=False,
        include_plotlyjs=False, div_id=div_id, default_height="380px",
        config={"displaylogo": False, "responsive": True},
    )  # fmt: skip


@functools.cache
def _template() -> dict[str, Any]:
    return pio.templates[TEMPLATE].to_plotly_json()
