"""Per-document stages, in the order they run. Each takes an Arrow batch and
its config section and returns new columns and rejections (stages/base.py has
the contract). A new stage is one module here plus one line in REGISTRY."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from dedupe_at_scale.stages.decontaminate import DecontaminateStage
from dedupe_at_scale.stages.format import FormatStage
from dedupe_at_scale.stages.langid import LanguageIdStage
from dedupe_at_scale.stages.lineage import LineageStage
from dedupe_at_scale.stages.minhash import MinHashStage
from dedupe_at_scale.stages.pii import PiiStage
from dedupe_at_scale.stages.quality import QualityRulesStage
from dedupe_at_scale.stages.quality_model import QualityModelStage
from dedupe_at_scale.stages.tokens import TokensStage
from dedupe_at_scale.stages.url_filter import UrlFilterStage

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.stages.base import Stage

REGISTRY: list[type[Stage]] = [
    LineageStage,
    FormatStage,
    UrlFilterStage,
    LanguageIdStage,
    QualityRulesStage,
    QualityModelStage,
    DecontaminateStage,
    PiiStage,
    TokensStage,
    MinHashStage,
]


def enabled_stages(cfg: JobConfig) -> list[type[Stage]]:
    return [stage for stage in REGISTRY if stage.enabled(cfg)]


def rejecting_stages(cfg: JobConfig) -> dict[str, bool]:
    """Stage names that reject documents, in order, and whether any stage
    reporting under that name is on."""
    names: dict[str, bool] = {}
    for stage in REGISTRY:
        if stage.stage is not None:
            names[stage.stage] = names.get(stage.stage, False) or stage.enabled(cfg)
    return names


def field_stages(cfg: JobConfig) -> list[type[Stage]]:
    """The stages whose columns the output has under `cfg`: those that are on,
    and those whose columns stay when off."""
    return [stage for stage in REGISTRY if stage.enabled(cfg) or stage.columns_when_off]


def annotated_fields(cfg: JobConfig) -> list[pa.Field]:
    """The columns the stages add under `cfg`, in order, without running them."""
    return [f for stage in field_stages(cfg) for f in stage.fields(cfg)]
