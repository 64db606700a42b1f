"""report.html in a real headless browser (Debian's Chromium driven by
Playwright): it loads from a file with no network and no console errors, has
every plot, and the numbers it shows equal the manifest's; the `report`
command rebuilds the same page from a local or an s3:// output."""

from __future__ import annotations

import ast
import json
import math
import re
import shutil
from pathlib import Path

import pytest

from conftest import open_report, plot_data
from dedupe_at_scale.cli import main
from test_job import write_config


@pytest.fixture(scope="module")
def output(ray_cluster, sample_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    spec = {
        "mixture": {
            "enabled": True, "group_column": "source", "unit": "tokens",
            "weights": {"web": 0.4, "news": 0.3, "forum": 0.2, "encyclopedia": 0.1},
        },
        "output": {"rejected_text": True, "subsets": [0.25, 0.5, 1.0],
                   "splits": {"train": 0.9, "validation": 0.05, "test": 0.05}},
    }  # fmt: skip
    config = write_config(root / "job.yaml", spec)
    out = root / "out"
    args = ["run", "--input", str(sample_dir), "--output", str(out), "--config", str(config)]
    assert main(args) == 0
    return out


def is_power_of_ten(label: str) -> bool:
    """A tick label such as 1, 10, 1k, 100k, 0.1% or 10.0% (plotly's
    formats) that reads as a power of ten, not a minor tick's 2 or 5."""
    text = label.replace(",", "").replace("\u2212", "-")
    scale = {"k": 1e3, "M": 1e6, "G": 1e9, "%": 1e-2}.get(text[-1:], 1.0)
    try:
        value = float(text.rstrip("kMG%")) * scale
    except ValueError:
        return False
    return value > 0 and abs(math.log10(value) - round(math.log10(value))) < 1e-9


def test_report_loads_with_every_plot_and_the_manifest_numbers(output, browser):
    manifest = json.loads((output / "manifest.json").read_text())
    profile = json.loads((output / "report.json").read_text())
    page, errors, requests = open_report(browser, output / "report.html")
    assert errors == []
    assert all(url.startswith("file://") for url in requests), requests

    expected = ["plot-funnel", "plot-funnel-tokens", "plot-rules", "plot-languages",
                "plot-length_chars", "plot-n_tokens", "plot-clusters", "plot-mixture",
                "plot-subsets", "plot-splits"]  # fmt: skip
    signals = [n for n in profile["histograms"] if n.startswith("q_")]
    assert len(signals) >= 10
    expected += [f"plot-{n}" for n in signals]
    for div in expected:
        rendered = page.evaluate(
            "id => { const d = document.getElementById(id);"
            " return !!d && d.classList.contains('js-plotly-plot')"
            " && d.querySelectorAll('svg.main-svg').length > 0; }",
            div,
        )
        assert rendered, f"{div} is missing or did not render"

    stages = [(n, s) for n, s in manifest["counts"]["stages"].items() if s["enabled"]]
    funnel = plot_data(page, "plot-funnel")[0]
    assert funnel["y"] == ["read"] + [n for n, _ in stages]
    assert funnel["x"] == [manifest["counts"]["input"]] + [s["kept"] for _, s in stages]
    tokens = plot_data(page, "plot-funnel-tokens")[0]
    assert tokens["x"] == [manifest["tokens"]["input"]] + [s["tokens_kept"] for _, s in stages]

    rules = plot_data(page, "plot-rules")[0]
    shown = dict(zip(rules["y"], rules["x"]))
    assert shown == {
        f"{stage}/{rule}": n
        for stage, by_rule in manifest["counts"]["rules"].items()
        for rule, n in by_rule.items()
    }
    kept, rejected = plot_data(page, "plot-languages")
    languages = manifest["counts"]["languages"]
    assert dict(zip(kept["x"], kept["y"])) == {k: v["kept"] for k, v in languages.items()}
    assert dict(zip(rejected["x"], rejected["y"])) == {
        k: v["rejected"] for k, v in languages.items()
    }

    target, achieved = plot_data(page, "plot-mixture")
    groups = manifest["mixture"]["groups"]
    assert dict(zip(achieved["x"], achieved["y"])) == {
        g: v["achieved_share"] for g, v in groups.items()
    }
    assert dict(zip(target["x"], target["y"])) == {g: v["target_share"] for g, v in groups.items()}

    clusters = plot_data(page, "plot-clusters")[0]
    sizes = manifest["dedup"]["cluster_sizes"]
    assert dict(zip(clusters["x"], clusters["y"])) == {int(k): v for k, v in sizes.items()}
    assert sum(int(k) * v for k, v in sizes.items()) == manifest["dedup"]["documents_in_clusters"]

    # Histograms: each bin that holds data, then the last one repeated (the
    # step's end); all values in one bin: one bar, not a flat line.
    assert sum(profile["histograms"]["length_chars"]["kept"]) == manifest["counts"]["kept"]
    single = 0
    for name in ["length_chars", "n_tokens", *signals]:
        kept_hist, rejected_hist = plot_data(page, f"plot-{name}")[:2]
        for trace, part in ((kept_hist, "kept"), (rejected_hist, "rejected")):
            counts = profile["histograms"][name][part]
            assert trace["name"] == part
            if trace["type"] == "bar":
                assert len(trace["x"]) == 1 and trace["x"][0].startswith("all in [")
                assert trace["y"] == [sum(counts)], (name, part)
                single += part == "kept"
            else:
                assert len(trace["x"]) >= 3 and trace["y"][-1] == trace["y"][-2], (name, part)
                assert sum(trace["y"][:-1]) == sum(counts), (name, part)
    assert single > 0  # the sample has signals whose every value falls in one bin
    # tokens.count: kept (the default): few rejected rows have a count, and the plot says so.
    title = page.evaluate("() => document.getElementById('plot-n_tokens').layout.title.text")
    assert title.endswith("(of the rows a per-document stage rejected, 1 in 8)"), title

    # Every plot with axes names them; a log axis labels powers of ten only.
    for div in expected:
        if div.startswith("plot-funnel"):
            continue
        axes = page.evaluate(
            "id => { const l = document.getElementById(id)._fullLayout;"
            " return [l.xaxis, l.yaxis].map(a => ({title: a.title.text, type: a.type,"
            " ticks: (a._vals || []).filter(v => v.text).map(v => v.text)})); }",
            div,
        )
        for axis in axes:
            assert axis["title"], f"{div}: an axis without a title"
            if axis["type"] == "log":
                labels = [re.sub(r"<[^>]+>", "", t) for t in axis["ticks"]]
                assert labels and all(is_power_of_ten(t) for t in labels), (div, labels)

    for key in ["counts.input", "counts.kept", "counts.rejected", "tokens.input", "tokens.written"]:
        cell = page.locator(f'tr[data-key="{key}"] td.n').inner_text()
        value = manifest
        for part in key.split("."):
            value = value[part]
        assert int(cell.replace(",", "")) == value, key

    samples = page.locator("#samples tr").count() - 1
    assert samples == len(profile["samples"]) > 0
    page.close()


def test_report_command_rebuilds_the_same_page(output, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(output, copy)
    (copy / "report.html").unlink()
    assert main(["report", str(copy)]) == 0
    assert (copy / "report.html").read_bytes() == (output / "report.html").read_bytes()
    assert str(copy / "report.html") in capsys.readouterr().out


@pytest.mark.parametrize("run", ["output", "web_output"])
def test_every_plot_is_what_plotly_makes_of_it(run, request, monkeypatch):
    """The report writes its plots as plain JSON (job/figures.py),
    not through plotly's figure objects, which validate every update. The
    reference: plotly's Figure, given each plot's traces and layout, accepts
    every property and gives back the same JSON (plotly writes numeric
    arrays in base64, decoded here)."""
    import plotly.graph_objects as go
    import plotly.io as pio

    from dedupe_at_scale.job import report_html

    out = request.getfixturevalue(run)
    drawn = []
    real_plot = report_html.plot_html
    monkeypatch.setattr(report_html, "plot_html", lambda i, f: drawn.append(f) or real_plot(i, f))
    manifest = json.loads((out / "manifest.json").read_text())
    profile = json.loads((out / "report.json").read_text())
    assert report_html.build_report(manifest, profile) == (out / "report.html").read_text()
    assert len(drawn) >= 20
    for figure in drawn:
        ours = json.loads(
            pio.to_json({"data": figure.data, "layout": figure.layout}, validate=False)
        )
        theirs = go.Figure(data=figure.data, layout=figure.layout).to_plotly_json()
        assert ours == decoded(json.loads(pio.to_json(theirs, validate=False)))


def decoded(value):
    """JSON with plotly's base64 arrays ({dtype, bdata}) as lists."""
    import base64

    import numpy as np

    if isinstance(value, dict) and set(value) == {"dtype", "bdata"}:
        return np.frombuffer(base64.b64decode(value["bdata"]), value["dtype"]).tolist()
    if isinstance(value, dict):
        return {k: decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decoded(v) for v in value]
    return value


def test_report_command_on_s3(output, s3_server, tmp_path):
    s3 = s3_server.client()
    s3.create_bucket(Bucket="report-out")
    for path in sorted(output.rglob("*")):
        if path.is_file() and path.name != "report.html":
            s3.upload_file(str(path), "report-out", f"run/{path.relative_to(output)}")
    config = write_config(tmp_path / "c.yaml", {"storage": s3_server.storage()})
    assert main(["report", "s3://report-out/run", "--config", str(config)]) == 0
    body = s3.get_object(Bucket="report-out", Key="run/report.html")["Body"].read()
    assert body == (output / "report.html").read_bytes()


def test_report_command_names_a_missing_output(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing")]) != 0
    assert "manifest.json" in capsys.readouterr().err


@pytest.fixture(scope="module")
def web_output(ray_cluster, tmp_path_factory) -> Path:
    """A web-style run: URL lists, boilerplate, decontamination."""
    from dedupe_at_scale.sample import generate_sample
    from dedupe_at_scale.sample.compliance import plant

    root = tmp_path_factory.mktemp("web-report")
    generate_sample(root / "in", docs=3000, shards=4, seed=3)
    plant(root / "in", root / "evals", seed=3)
    spec = {
        "input": {"url_column": "url"},
        "url_filter": {"ut1": [str(Path(__file__).parents[1] / "jobs" / "url-lists" / "ut1")]},
        "boilerplate": {"enabled": True},
        "decontaminate": {"enabled": True,
                          "sources": [{"name": "quiz", "uri": str(root / "evals" / "quiz.parquet")}]},
        "output": {"rejected_text": True},
    }  # fmt: skip
    config = write_config(root / "job.yaml", spec)
    out = root / "out"
    args = ["run", "--input", str(root / "in"), "--output", str(out), "--config", str(config)]
    assert main(args) == 0
    return out


def table_rows(page, anchor: str) -> list[list[str]]:
    return page.evaluate(
        "id => [...document.querySelectorAll('#' + id + ' tr')].slice(1)"
        ".map(r => [...r.cells].map(c => c.innerText))",
        anchor,
    )


def test_the_web_steps_show_their_top_entries_in_the_report(web_output, browser):
    """The URL filter's reasons, the boilerplate lines and the eval items hit,
    each a table equal to the manifest (or report.json); every plot renders."""
    manifest = json.loads((web_output / "manifest.json").read_text())
    profile = json.loads((web_output / "report.json").read_text())
    page, errors, requests = open_report(browser, web_output / "report.html")
    assert errors == [] and all(url.startswith("file://") for url in requests), requests
    unrendered = page.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')]"
        ".filter(d => !d.querySelector('svg.main-svg')).map(d => d.id)"
    )
    assert unrendered == []
    ids = page.evaluate("() => [...document.querySelectorAll('main [id]')].map(e => e.id)")
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)

    reasons = profile["reasons"]["url_filter"]
    assert reasons and table_rows(page, "reasons-url_filter") == [
        [reason, f"{n:,}"] for reason, n in reasons.items()
    ]
    assert sum(reasons.values()) == manifest["counts"]["rules"]["url_filter"]["url_domain"] + (
        manifest["counts"]["rules"]["url_filter"].get("url_address", 0)
    )
    boilerplate = manifest["boilerplate"]
    assert boilerplate["top"] and table_rows(page, "boilerplate") == [
        [t["text"], f"{t['documents']:,}"] for t in boilerplate["top"]
    ]
    # A contaminated sample shows its first eval match marked: the passage the
    # reason quotes (its first 13-gram, up to 120 characters) starts it.
    contaminated = page.locator("#samples tr", has_text="contaminated")
    assert contaminated.count() >= 1
    for k in range(contaminated.count()):
        row = contaminated.nth(k)
        reason = row.locator("td").nth(3).inner_text()
        quoted = ast.literal_eval(re.search(r"first: (.*)$", reason).group(1))
        assert row.locator("mark").inner_text().startswith(quoted)
    top_items = manifest["decontaminate"]["sources"]["quiz"]["top_items"]
    assert top_items and table_rows(page, "contamination") == [
        ["quiz", t["item_id"], f"{t['documents']:,}"] for t in top_items
    ]
    page.close()


def test_duplicate_pairs_show_the_kept_member_beside_a_removed_one(web_output, browser):
    import pyarrow.parquet as pq

    profile = json.loads((web_output / "report.json").read_text())
    pairs = profile["duplicate_pairs"]
    assert len(pairs) == 6
    cluster_of = {
        r["id"]: r["cluster_id"]
        for r in pq.read_table(web_output / "duplicates").to_pylist()
        if not r["kept"]
    }
    for pair in pairs:
        assert cluster_of[pair["removed"]["id"]] == pair["kept"]["id"]
        assert pair["removed"]["rule"] in ("exact_duplicate", "near_duplicate")
    page, errors, _ = open_report(browser, web_output / "report.html")
    assert errors == []
    assert page.locator("#pairs tr").count() - 1 == len(pairs)
    assert page.locator("#pairs mark").count() >= len(pairs)  # every pair shares a passage
    page.close()


def test_a_rejected_row_s_text_is_not_staged_and_its_length_still_plotted():
    """Staging drops the text of rows rejected while annotated (output.rejected_text
    off) and keeps their length: the report's block profile is what it was."""
    import pyarrow as pa

    from dedupe_at_scale import columns as col
    from dedupe_at_scale.config import config_from_dict
    from dedupe_at_scale.job.annotate import without_rejected_text
    from dedupe_at_scale.job.profile import LENGTH, ReportSpec, block_profile

    cfg = config_from_dict({})
    texts = ["short", "日本語のテキスト" * 40, "", "emoji 🙂" * 900, None, "a" * 20_000, "ok " * 70]
    stages = [None, "quality", "langid", "quality", "quality", None, "langid"]
    table = pa.table({
        "id": [f"d{i}" for i in range(len(texts))], "text": pa.array(texts, pa.large_string()),
        col.STAGE: pa.array(stages, pa.string()), col.RULE: [s and "rule" for s in stages],
        col.VALUE: pa.nulls(len(texts), pa.float64()), col.REASON: [s and "why" for s in stages],
    })  # fmt: skip
    staged = without_rejected_text(table, "text")

    assert staged.column("text").to_pylist() == [
        t if s is None else None for t, s in zip(texts, stages)
    ]
    spec = ReportSpec.of(cfg)
    assert block_profile(staged, cfg, spec) == block_profile(table, cfg, spec)
    assert sum(block_profile(staged, cfg, spec)["histograms"][LENGTH]["rejected"]) == 4
    kept = table.filter(pa.array([s is None for s in stages]))  # a block with none rejected
    assert without_rejected_text(kept, "text").column("text").equals(kept.column("text"))
    assert block_profile(without_rejected_text(kept, "text"), cfg, spec) == block_profile(
        kept, cfg, spec
    )
