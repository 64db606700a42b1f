"""Screenshots of report.html for the worked examples in docs/: each example's
commands run as its page shows them, from a temporary folder holding a copy
of this checkout's jobs/, and its report is saved at 1400 px wide to
docs/img/report-<example>.png (the top of the page), with one more image per
section of the report that is the example's own (docs/img/report-<example>-<section>.png).
Debian's Chromium drives it through Playwright, as in the report's test.

    .venv/bin/python docs/screenshots.py              # every example
    .venv/bin/python docs/screenshots.py url-filter   # one
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "img"
JOBS = ROOT / "jobs"
CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1400, 1000

# example: (generate arguments, run arguments, the report sections that are its own)
EXAMPLES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "demo": (
        ["--docs", "6000", "--shards", "8"],
        ["--config", "jobs/demo.yaml"],
        ["rules", "languages", "pairs"],
    ),
    "url-filter": ([], ["--config", "jobs/url-filter.yaml"], ["reasons-url_filter"]),
    "compliance": (
        ["--docs", "6000", "--evals", "evals"],
        ["--config", "jobs/compliance.yaml"],
        ["contamination"],
    ),
    "mixture": (
        ["--docs", "6000", "--shards", "8"],
        ["--config", "jobs/mixture.yaml"],
        ["mixture"],
    ),
    "scaling": (
        ["--docs", "6000", "--shards", "8"],
        ["--config", "jobs/scaling.yaml"],
        ["subsets", "splits"],
    ),
    "chat": (
        ["--format", "chat", "--docs", "20000", "--shards", "8"],
        ["--config", "jobs/chat.yaml"],
        ["duplicates"],
    ),
}


def cli(*args: str, cwd: Path) -> None:
    command = [sys.executable, "-m", "dedupe_at_scale.cli", *args]
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)


def shoot(browser, report: Path, name: str, sections: list[str]) -> list[Path]:
    page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    made = [IMAGES / f"report-{name}.png"]
    page.screenshot(path=str(made[0]))
    page.add_style_tag(content="nav{position:static}")  # not drawn over each section
    for section in sections:
        path = IMAGES / f"report-{name}-{section.replace('_', '-')}.png"
        page.locator(f"#{section}").screenshot(path=str(path))
        made.append(path)
    page.close()
    return made


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("examples", nargs="*", help=f"any of {', '.join(EXAMPLES)} (default: all)")
    names = parser.parse_args().examples or list(EXAMPLES)
    unknown = [n for n in names if n not in EXAMPLES]
    if unknown:
        parser.error(f"no example {unknown[0]!r}")
    from playwright.sync_api import sync_playwright

    IMAGES.mkdir(exist_ok=True)
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for name in names:
            generate, run, sections = EXAMPLES[name]
            folder = Path(tmp) / name
            shutil.copytree(JOBS, folder / "jobs")
            cli("generate", *generate, "--output", "in", cwd=folder)
            cli("run", "--input", "in", "--output", "out", "--quiet", *run, cwd=folder)
            for path in shoot(browser, folder / "out" / "report.html", name, sections):
                print(path.relative_to(ROOT))
        browser.close()


if __name__ == "__main__":
    main()
