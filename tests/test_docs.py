"""The README and docs/ pages: every command they show is one the tools
accept (the job's CLI parses it; a benchmark script exists and takes each
flag; a make target exists), and every relative link leads to a file."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dedupe_at_scale.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_STARTS = ("dedupe-at-scale ", ".venv/bin/dedupe-at-scale ", ".venv/bin/python ", "make ")


def shown_commands(page: Path) -> list[str]:
    """Commands in the page's code blocks: "$ "-prompted lines, and in shell
    blocks the lines that start like one; continued lines joined."""
    commands, in_block, shell, pending = [], False, False, ""
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_block, shell = not in_block, line.strip() in ("```bash", "```sh")
            continue
        if not in_block:
            continue
        if pending:
            pending += " " + line.strip()
        elif line.startswith("$ "):
            pending = line[2:].strip()
        elif shell and line.startswith(COMMAND_STARTS):
            pending = line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        if pending:
            commands.append(re.sub(r"\s+#\s.*$", "", pending).strip())
            pending = ""
    return commands


def all_commands() -> list[tuple[str, str]]:
    return [
        (page.relative_to(ROOT).as_posix(), command)
        for page in PAGES
        for command in shown_commands(page)
        if command.startswith(COMMAND_STARTS) and "[--" not in command  # synopses
    ]


def test_the_pages_show_commands():
    pages = {page for page, _ in all_commands()}
    assert len(all_commands()) >= 30 and {"README.md", "docs/performance.md"} <= pages


@pytest.mark.parametrize("page, command", all_commands())
def test_every_shown_command_is_accepted(page, command):
    argv = shlex.split(command.split(" | ")[0].split(" > ")[0])
    program, args = argv[0], argv[1:]
    if program.endswith("dedupe-at-scale"):
        build_parser().parse_args(args)  # exits (SystemExit 2) on an unknown option
    elif program == ".venv/bin/python":
        script = ROOT / args[0]
        assert script.is_file(), f"{page}: {args[0]} does not exist"
        source = script.read_text()
        for flag in (a.split("=")[0] for a in args[1:] if a.startswith("--")):
            assert f'"{flag}"' in source, f"{page}: {args[0]} has no option {flag}"
    else:
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
        assert args[0] in targets, f"{page}: make has no target {args[0]}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.name}: link to {target} leads nowhere"
