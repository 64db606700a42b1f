"""Global steps, in the order they run. Each reads the staged columns it
needs, decides over all documents with Ray tasks and returns a decision
applier (steps/base.py has the contract). A new step is one module here plus
one line in REGISTRY."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dedupe_at_scale.steps.boilerplate import Boilerplate
from dedupe_at_scale.steps.consistency import Consistency
from dedupe_at_scale.steps.contamination import Contamination
from dedupe_at_scale.steps.dedup import Dedup
from dedupe_at_scale.steps.ids import IdCheck
from dedupe_at_scale.steps.mixture import Mixture
from dedupe_at_scale.steps.splits import Splits
from dedupe_at_scale.steps.subsets import Subsets

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.steps.base import ClusterCheck, GlobalStep

REGISTRY: list[type[GlobalStep]] = [
    Contamination,
    IdCheck,
    Boilerplate,
    Dedup,
    Consistency,
    Mixture,
    Splits,
    Subsets,
]


def cluster_checks(cfg: JobConfig) -> tuple[type[ClusterCheck], ...]:
    """What dedup's keep task checks in each cluster under `cfg`."""
    return tuple(
        s.cluster_check for s in REGISTRY if s.cluster_check and s.cluster_check.applies(cfg)
    )


def published_by_steps() -> tuple[str, ...]:
    """The directories the registered steps may publish (GlobalStep.publishes)."""
    return tuple(name for step in REGISTRY for name in step.publishes)
