"""Post-training formats: field mapping, format rules, views and consistency,
without Ray (the end-to-end runs are in test_formats_job.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import write_table
from dedupe_at_scale import columns as col
from dedupe_at_scale.config import ConfigError, config_from_dict
from dedupe_at_scale.io.inputs import InputError, discover_inputs
from dedupe_at_scale.io.rows import prepare_table
from dedupe_at_scale.io.schema import unify_input_schema
from dedupe_at_scale.io.storage import resolve
from dedupe_at_scale.sample.posttraining import FORMATS, PLANTED_RULES, generate_posttraining
from dedupe_at_scale.stages.annotate import Annotator
from dedupe_at_scale.steps.consistency import resolve as resolve_conflicts

ROOT = Path(__file__).resolve().parents[1]
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
ANSWER = (
    "The bridge was rebuilt in stone after the flood of 1841, and it still carries the main road "
    "across the river today."
)


def job_config(fmt: str, **overrides) -> object:
    data = yaml.safe_load((ROOT / "jobs" / f"{fmt}.yaml").read_text())
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return config_from_dict(data)


def annotate_dir(path: Path, cfg) -> pa.Table:
    """Every file of `path` read as the job reads it and annotated."""
    location = resolve(str(path), cfg.storage)
    files = discover_inputs(location, cfg.input)
    schema = unify_input_schema(files, cfg.input)
    annotator = Annotator(cfg)
    tables = []
    for f in files:
        table = prepare_table(pq.read_table(f.path), f, 0, cfg.input, schema=schema)
        tables.append(annotator(table))
    return pa.concat_tables(tables)


def rejected_rules(table: pa.Table) -> dict[str, tuple[str, str]]:
    ids = table.column("id").to_pylist()
    stages, rules = table.column(col.STAGE).to_pylist(), table.column(col.RULE).to_pylist()
    return {i: (s, r) for i, s, r in zip(ids, stages, rules) if s is not None}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_planted_format_error_is_rejected_with_its_rule(tmp_path, fmt):
    generate_posttraining(tmp_path, fmt, docs=1500, shards=2, seed=3)
    table = annotate_dir(tmp_path, job_config(fmt))
    truth = dict(zip(table.column("id").to_pylist(), table.column("gt_rule").to_pylist()))
    found = rejected_rules(table)
    planted = {i: rule for i, rule in truth.items() if rule is not None}
    assert set(Counter(planted.values())) == set(PLANTED_RULES[fmt])
    assert {i: found.get(i) for i in planted} == {i: ("format", r) for i, r in planted.items()}
    # Nothing else is rejected by the format stage (or by any other stage here).
    assert set(found) == set(planted)
    # The views are gone, the conversation stays internal.
    assert not [n for n in table.column_names if n.startswith(col.VIEW_PREFIX)]
    assert col.TEXT in table.column_names


def chat_rows(conversations: list[list[dict]]) -> dict:
    return {
        "id": [f"c{i}" for i in range(len(conversations))],
        "messages": pa.array(conversations, pa.list_(MESSAGE)),
    }


def annotate_rows(tmp_path: Path, columns: dict, cfg) -> pa.Table:
    write_table(tmp_path / "in" / "rows.parquet", columns)
    return annotate_dir(tmp_path / "in", cfg)


def turn(role: str, content: str | None) -> dict:
    return {"role": role, "content": content}


def test_chat_structure_rules_and_tool_turns(tmp_path):
    question = "Which bridge in the old town was rebuilt after the flood?"
    good = [turn("user", question), turn("assistant", ANSWER)]
    tool_call = [
        turn("system", "You are a helpful assistant."),
        turn("user", question),
        turn("assistant", None),  # a tool call: no text of its own
        turn("tool", '{"result": "[INST] raw tool output"}'),
        turn("assistant", ANSWER),
    ]
    cases = {
        "c0": (good, None),
        "c1": (tool_call, None),  # tool text is not read by the rules
        "c2": ([turn("assistant", ANSWER)], "not_alternating"),
        "c3": ([*good, turn("user", question)], "no_final_assistant"),
        "c4": (
            [turn("user", question), turn("user", question), turn("assistant", ANSWER)],
            "not_alternating",
        ),  # fmt: skip
        "c5": (
            [turn("user", question), turn("system", "x"), turn("assistant", ANSWER)],
            "not_alternating",
        ),  # fmt: skip
        "c6": (
            [turn("user", question), turn("tool", "x"), turn("assistant", ANSWER)],
            "not_alternating",
        ),  # fmt: skip
        "c7": ([turn("user", question), turn("Narrator", ANSWER)], "unknown_role"),
        "c8": ([turn("user", ""), turn("assistant", ANSWER)], "empty_turn"),
        "c9": ([turn("user", question), turn("assistant", None)], "empty_turn"),
        "c10": ([], "empty_chat"),
        "c11": (
            [turn("user", question), turn("assistant", ANSWER + " <|im_end|>")],
            "template_tokens",
        ),  # fmt: skip
        "c12": ([turn("user", question), turn("assistant", "Assistant: " + ANSWER)], "role_prefix"),
    }
    cfg = job_config("chat", input={"fields": {}})
    table = annotate_rows(tmp_path, chat_rows([c for c, _ in cases.values()]), cfg)
    found = rejected_rules(table)
    assert {i: found.get(i, (None, None))[1] for i in cases} == {
        i: r for i, (_, r) in cases.items()
    }
    # The rendered conversation holds user and assistant text only.
    text = dict(zip(table.column("id").to_pylist(), table.column(col.TEXT).to_pylist()))
    assert text["c1"] == question + "\n\n" + ANSWER


def test_truncation_near_misses(tmp_path):
    question = "Please describe the old bridge of the town in a few words."
    responses = {
        "short answer without a full stop": ("Paris", None),
        "ends with a number": ("The bridge was finished in the year " + "1841", None),
        "ends with a closing quote": ('He said the bridge was "rebuilt in stone."', None),
        "ends with an emoji": ("The bridge is still standing after all these years 🙂", None),
        "ends mid-sentence": (ANSWER[:-30].rstrip(), "truncated_response"),
        "ends with a comma": (ANSWER[:-1] + " and the rail line,", "truncated_response"),
        "open code block": (
            "Here is the code you asked for:\n```python\nprint('x')",
            "truncated_response",
        ),
        "closed code block": ("Here is the code you asked for:\n```python\nprint('x')\n```", None),
    }
    # Only the format rules: langid and the web rules would judge these short texts.
    cfg = job_config(
        "instruction", input={"fields": {}}, langid={"enabled": False}, quality={"enabled": False}
    )
    columns = {
        "id": list(responses),
        "prompt": [question] * len(responses),
        "response": [r for r, _ in responses.values()],
    }
    found = rejected_rules(annotate_rows(tmp_path, columns, cfg))
    assert {k: found.get(k, (None, None))[1] for k in responses} == {
        k: rule for k, (_, rule) in responses.items()
    }


def test_preference_with_message_lists_and_normalized_equality(tmp_path):
    question = "Which bridge in the old town was rebuilt after the flood?"
    other = "Nobody knows which bridge it was, and the records of the town were lost long ago."
    chosen = [[turn("user", question), turn("assistant", ANSWER)]] * 3
    rejected = [
        [turn("user", question), turn("assistant", other)],
        [turn("user", question), turn("assistant", ANSWER.upper().replace(",", " ;  "))],
        None,
    ]
    columns = {
        "id": ["p0", "p1", "p2"],
        "prompt": [question] * 3,
        "chosen": pa.array(chosen, pa.list_(MESSAGE)),
        "rejected": pa.array(rejected, pa.list_(MESSAGE)),
    }
    table = annotate_rows(tmp_path, columns, job_config("preference"))
    found = rejected_rules(table)
    assert found == {
        "p1": ("format", "chosen_equals_rejected"),
        "p2": ("format", "missing_rejected"),
    }
    keys = table.column(col.RESPONSE_KEY).to_pylist()
    assert keys[0] == keys[1] == keys[2]  # the chosen response is the last assistant turn


def test_language_of_prompt_and_response(tmp_path):
    question = "Which bridge in the old town was rebuilt after the flood of the river?"
    german = (
        "Die alte Brücke wurde nach dem Hochwasser aus Stein neu gebaut, und sie trägt bis heute "
        "die Hauptstraße über den Fluss."
    )
    columns = {"id": ["same", "mixed"], "prompt": [question] * 2, "response": [ANSWER, german]}
    cfg = job_config("reward", langid={"require_same_language": True})
    columns["score"] = [5.0, 5.0]
    table = annotate_rows(tmp_path, columns, cfg)
    assert table.column(col.PROMPT_LANGUAGE).to_pylist() == ["en", "en"]
    assert table.column(col.LANGUAGE).to_pylist() == ["en", "de"]
    assert rejected_rules(table) == {"mixed": ("langid", "langid_mismatch")}
    # Off by default: both rows are kept.
    assert rejected_rules(annotate_rows(tmp_path / "b", columns, job_config("reward"))) == {}


def test_wrong_field_mapping_names_the_field_and_the_columns(tmp_path):
    write_table(tmp_path / "in" / "a.parquet", {"question": ["q"], "answer": ["a"]})
    cfg = config_from_dict({"input": {"format": "instruction", "fields": {"prompt": "question"}}})
    with pytest.raises(InputError) as err:
        discover_inputs(resolve(str(tmp_path / "in"), cfg.storage), cfg.input)
    message = str(err.value)
    assert "a.parquet" in message and "'response'" in message
    assert "no column 'response'" in message and "columns: question, answer" in message

    write_table(
        tmp_path / "chat" / "a.parquet",
        {"messages": pa.array([[{"from": "human", "value": "hi"}]])},
    )
    cfg = config_from_dict({"input": {"format": "chat"}})
    with pytest.raises(InputError, match=r"without a 'role' key \(keys: from, value"):
        discover_inputs(resolve(str(tmp_path / "chat"), cfg.storage), cfg.input)

    write_table(
        tmp_path / "score" / "a.parquet", {"prompt": ["q"], "response": ["a"], "score": [[1]]}
    )
    cfg = config_from_dict({"input": {"format": "reward"}})
    with pytest.raises(
        InputError,
        match=r"column 'score' \(field 'score'\) has type list<element: int64>, expected a number",
    ):
        discover_inputs(resolve(str(tmp_path / "score"), cfg.storage), cfg.input)

    with pytest.raises(
        ConfigError, match=r"'input.fields' names field 'question'.*fields: prompt, response"
    ):
        config_from_dict({"input": {"format": "instruction", "fields": {"question": "q"}}})
    with pytest.raises(ConfigError, match="'dedup.key' chooses a part of post-training rows"):
        config_from_dict({"dedup": {"key": "prompt"}})
    with pytest.raises(ConfigError, match="'quality.c4.clean_text'"):
        config_from_dict({"input": {"format": "chat"}, "quality": {"c4": {"clean_text": True}}})


# Consistency, on cluster members as dedup's keep task sees them ----------------------


def members(rows: list[tuple[int, str, int, float]], fmt: str) -> pa.Table:
    """(label, id, response key, rejected key or score) per row, sorted as the keep task sorts."""
    second = col.REJECTED_KEY if fmt == "preference" else col.SCORE
    kind = pa.uint64() if fmt == "preference" else pa.float64()
    return pa.table(
        {
            "label": pa.array([r[0] for r in rows], pa.int64()),
            "id": [r[1] for r in rows],
            col.RESPONSE_KEY: pa.array([r[2] for r in rows], pa.uint64()),
            second: pa.array([r[3] for r in rows], kind),
        }
    )


def consistency_config(fmt: str, action: str):
    return config_from_dict({"input": {"format": fmt}, "consistency": {"action": action}})


PREFERENCE_ROWS = [
    # cluster 1: A>B twice, B>A once, and an unrelated pair C>D
    (1, "a", 10, 20), (1, "b", 10, 20), (1, "c", 20, 10), (1, "d", 30, 40),
    # cluster 2: A>B and B>A, a tie
    (2, "e", 10, 20), (2, "f", 20, 10),
    # cluster 3: the same judgement twice, no conflict
    (3, "g", 50, 60), (3, "h", 50, 60),
    # one row alone
    (4, "i", 20, 10),
]  # fmt: skip


@pytest.mark.parametrize(
    "action, dropped",
    [
        ("report", set()),
        ("drop_all", {"a", "b", "c", "e", "f"}),
        ("keep_majority", {"c", "e", "f"}),
    ],
)
def test_preference_conflicts(action, dropped):
    table = members(PREFERENCE_ROWS, "preference")
    result = resolve_conflicts(table, consistency_config("preference", action))
    ids = table.column("id").to_pylist()
    assert {ids[i] for i in np.flatnonzero(result.excluded)} == dropped
    conflicts = result.table.to_pylist()
    assert [(c["cluster_id"], sorted(c["ids"])) for c in conflicts] == [
        ("a", ["a", "b", "c"]), ("e", ["e", "f"])
    ]  # fmt: skip
    assert set().union(*(c["dropped_ids"] for c in conflicts)) == dropped
    assert result.rule == "preference_conflict"


@pytest.mark.parametrize(
    "action, dropped",
    [
        ("report", set()),
        ("drop_all", {"a", "b", "c", "f", "g"}),
        ("keep_majority", {"c", "f", "g"}),
    ],
)
def test_score_conflicts(action, dropped):
    rows = [
        # one response scored 7, 8 and 2: 7 and 8 agree (gap 1), 2 does not
        (1, "a", 10, 7.0), (1, "b", 10, 8.0), (1, "c", 10, 2.0),
        # another response in the same cluster, scored once: no conflict
        (1, "d", 11, 1.0),
        # 5 and 6: within the gap
        (2, "e", 10, 5.0), (2, "x", 10, 6.0),
        # 3 and 9: a tie, no majority
        (3, "f", 12, 3.0), (3, "g", 12, 9.0),
    ]  # fmt: skip
    table = members(rows, "reward")
    result = resolve_conflicts(table, consistency_config("reward", action))
    ids = table.column("id").to_pylist()
    assert {ids[i] for i in np.flatnonzero(result.excluded)} == dropped
    assert [sorted(c["ids"]) for c in result.table.to_pylist()] == [["a", "b", "c"], ["f", "g"]]
    assert result.rule == "score_conflict"
