"""Toy stages and steps that prove the contracts (tests/test_contracts.py).

Registering one is what a developer does in the source: one line appended to
stages.REGISTRY or steps.REGISTRY. The tests do it in a separate job process
and, through Ray's worker setup hook, in every worker of its own local Ray."""

from __future__ import annotations


def register_stage() -> None:
    from dedupe_at_scale import stages
    from toys.marker_stage import MarkerStage

    if MarkerStage not in stages.REGISTRY:
        stages.REGISTRY.append(MarkerStage)


def register_step() -> None:
    from dedupe_at_scale import steps
    from toys.longest_step import DropLongest

    if DropLongest not in steps.REGISTRY:
        steps.REGISTRY.append(DropLongest)
