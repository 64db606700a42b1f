"""Every quality threshold in the config is one declared rule, and every rule's
signal is measured: a typo in a field or a signal name cannot switch a rule off
silently."""

from __future__ import annotations

import pytest

from conftest import GOOD_EN
from dedupe_at_scale.config import QualityConfig
from dedupe_at_scale.stages.quality import QualityFilter
from dedupe_at_scale.stages.quality.base import Doc, RuleGroup, RuleSpec
from dedupe_at_scale.stages.quality.c4 import C4
from dedupe_at_scale.stages.quality.fineweb import FineWeb
from dedupe_at_scale.stages.quality.gopher import GopherQuality, GopherRepetition

GROUPS = {
    "gopher_quality": GopherQuality,
    "gopher_repetition": GopherRepetition,
    "c4": C4,
    "fineweb": FineWeb,
}


def test_the_filter_runs_every_group_of_the_config():
    sections = set(QualityConfig.model_fields)
    assert set(GROUPS) <= sections
    names = {g.name for g in QualityFilter(QualityConfig()).groups}
    assert names == set(GROUPS)


@pytest.mark.parametrize("section", sorted(GROUPS))
def test_every_threshold_field_is_a_rule(section):
    group = GROUPS[section]
    cfg = getattr(QualityConfig(), section)
    fields = set(type(cfg).model_fields)
    declared = {spec.field for spec in group.RULES}
    assert declared | set(group.SETTINGS) == fields, "a config field is neither rule nor setting"
    assert not declared & set(group.SETTINGS)


@pytest.mark.parametrize("section", sorted(GROUPS))
def test_every_rule_signal_is_measured_and_every_signal_bounded(section):
    group = GROUPS[section](getattr(QualityConfig(), section))
    measured = set(group.measure(Doc(GOOD_EN, "en", frozenset())))
    bounded = {sig for spec in group.RULES for sig in spec.signals(group.cfg)}
    assert bounded == measured
    assert {rule.signal for rule in group.rules} <= measured


def test_a_rule_naming_an_unknown_field_fails_at_construction():
    class Typo(RuleGroup):
        name = "typo"
        RULES = (RuleSpec("gopher_min_words", "gopher_word_count", "min", "min_wrods"),)

    with pytest.raises(TypeError, match="min_wrods"):
        Typo(QualityConfig().gopher_quality)


def test_switched_off_thresholds_make_no_rule():
    cfg = QualityConfig()
    cfg.gopher_quality.min_words = None
    cfg.c4.drop_curly_brace = False
    assert "gopher_min_words" not in {r.name for r in GopherQuality(cfg.gopher_quality).rules}
    assert "c4_curly_brace" not in {r.name for r in C4(cfg.c4).rules}
    assert "c4_lorem_ipsum" in {r.name for r in C4(cfg.c4).rules}
