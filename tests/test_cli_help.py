"""What `--help` and `--version` tell a newcomer: every option of every
subcommand says what it does, and shows its default where it has one."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from dedupe_at_scale import __version__
from dedupe_at_scale.cli import build_parser


def subcommands() -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_option_says_what_it_does_and_its_default(name):
    parser = subcommands()[name]
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        shown = action.default not in (None, []) and action.default is not False
        if shown and action.option_strings:
            assert f"(default: {action.default})" in " ".join(text.split()) or (
                "default" in action.help
            ), f"{name} {action.option_strings[0]}: default not shown"


def test_version():
    result = subprocess.run(
        [sys.executable, "-m", "dedupe_at_scale.cli", "--version"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0
    assert result.stdout.strip() == f"dedupe-at-scale {__version__}"
