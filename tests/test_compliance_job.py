"""Decontamination and PII in the job on a local Ray: planted contamination
(exact, lower-cased, re-punctuated, inside a longer document) and planted PII,
the eval sets read from the S3-compatible server, drop and cut."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import GOOD_EN
from dedupe_at_scale.cli import main
from dedupe_at_scale.io.datasource import parquet_datasource
from dedupe_at_scale.io.output import file_counts
from dedupe_at_scale.job import write
from test_job import write_config

QUESTIONS = [
    f"In the year {1800 + k} the inventor of the steam powered loom in the district of Wexford "
    f"sold {k} machines to which trading company of the northern coast?"
    for k in range(30)
]
BRIDGE = (
    "The stone bridge by the market was rebuilt after the flood of 1841 and it still carries the "
    "main road across the river today."
)
PLANTED = {
    "exact": QUESTIONS[3],
    "lower": GOOD_EN + "\n\n" + QUESTIONS[4].lower(),
    "punctuated": GOOD_EN + "\n\n" + QUESTIONS[5].replace(" ", " , ").upper(),
    "inside": GOOD_EN + "\n\n" + "Our quiz: " + QUESTIONS[6] + " Nobody knew.\n\n" + GOOD_EN,
}
PII = {
    "mail": GOOD_EN + "\nWrite to anna.schmidt@firma-berlin.de or call +49 30 1234567.",
    "card": GOOD_EN + "\nPay with 4111 1111 1111 1111 before Friday.",
    "docs": GOOD_EN + "\nSee user@example.com and 192.0.2.15 in the manual.",
}
SECRETS = ["anna.schmidt@firma-berlin.de", "+49 30 1234567", "4111 1111 1111 1111"]


@pytest.fixture
def corpus(tmp_path) -> Path:
    texts = {
        **PLANTED,
        **PII,
        **{f"clean{i}": GOOD_EN.replace("river", f"river {i}") + f" {BRIDGE}" for i in range(6)},
    }
    table = pa.table({"id": list(texts), "text": list(texts.values())})
    (tmp_path / "in").mkdir()
    pq.write_table(table.slice(0, 7), tmp_path / "in" / "a.parquet")
    pq.write_table(table.slice(7), tmp_path / "in" / "b.parquet")
    return tmp_path


def job(
    tmp_path: Path, eval_uri: str, storage: dict | None = None, input_: dict | None = None,
    **decontaminate,
) -> Path:  # fmt: skip
    spec = {
        "input": input_ or {},
        "quality": {"enabled": False},
        "dedup": {"enabled": False},
        "decontaminate": {
            "enabled": True,
            "sources": [
                {"name": "loom", "uri": eval_uri, "fields": ["question"], "id_field": "qid"}
            ],
            **decontaminate,
        },
        "pii": {"enabled": True, "actions": {"credit_card": "drop"}},
        "storage": storage or {},
    }
    return write_config(tmp_path / "job.yaml", spec)


def eval_table() -> pa.Table:
    return pa.table({"qid": [f"q{k}" for k in range(len(QUESTIONS))], "question": QUESTIONS})


def test_drop_contaminated_and_redact_pii(ray_cluster, corpus, s3_server, capsys):
    pq.write_table(eval_table(), "corpus-in/evals/loom.parquet", filesystem=s3_server.arrow_fs())
    config = job(corpus, "s3://corpus-in/evals/loom.parquet", s3_server.storage())
    out = corpus / "out"
    assert (
        main(["run", "--input", str(corpus / "in"), "--output", str(out), "--config", str(config)])
        == 0
    )
    printed = capsys.readouterr()
    manifest = json.loads((out / "manifest.json").read_text())
    rejected = {r["id"]: r for r in pq.read_table(out / "rejected").to_pylist()}
    data = {r["id"]: r for r in pq.read_table(out / "data").to_pylist()}

    for name, k in zip(PLANTED, (3, 4, 5, 6)):
        r = rejected[name]
        assert (r["stage"], r["rule"]) == ("decontaminate", "contaminated")
        assert f"loom item q{k}," in r["reason"]
    contamination = pq.read_table(out / "contamination").to_pylist()
    assert sorted(
        (c["id"], c["eval_set"], c["item_id"], c["action"]) for c in contamination
    ) == sorted((name, "loom", f"q{k}", "dropped") for name, k in zip(PLANTED, (3, 4, 5, 6)))
    section = manifest["decontaminate"]
    assert section["documents_hit"] == 4 and section["documents_dropped"] == 4
    assert section["sources"]["loom"]["items"] == len(QUESTIONS)
    assert {i["item_id"] for i in section["sources"]["loom"]["top_items"]} == {
        "q3",
        "q4",
        "q5",
        "q6",
    }

    assert data["mail"]["text"].endswith("Write to <EMAIL> or call <PHONE>.")
    assert data["mail"]["pii_redacted"] == 2
    assert data["docs"]["text"] == PII["docs"]  # documentation addresses are allowed
    assert (rejected["card"]["stage"], rejected["card"]["rule"]) == ("pii", "pii_credit_card")
    assert manifest["pii"]["hits"]["email"] == 1 and manifest["pii"]["hits"]["credit_card"] == 1
    assert manifest["pii"]["documents_dropped"] == {"pii_credit_card": 1}
    # No detected value in the manifest, rejected/, or what the run printed.
    written = (out / "manifest.json").read_text() + json.dumps(list(rejected.values()))
    written += printed.out + printed.err
    for value in SECRETS:
        assert value not in written


def test_cut_keeps_the_rest_of_a_long_document(ray_cluster, corpus, monkeypatch):
    # The rows and bytes the contamination step's tasks return for its files
    # are what their footers and a listing say (file_counts, the reference).
    handed = []

    def checked(location, paths, columns=None, counts=None, rows_per_write=None):
        assert counts == file_counts(location, paths)
        handed.append(len(paths))
        return parquet_datasource(location, paths, columns, counts, rows_per_write)

    monkeypatch.setattr(write, "parquet_datasource", checked)
    pq.write_table(eval_table(), corpus / "loom.parquet")
    config = job(
        corpus, str(corpus / "loom.parquet"), input_={"min_rows_per_task": 1}, action="cut",
        cut_margin=5, min_piece_chars=100,
    )  # fmt: skip
    out = corpus / "out"
    assert (
        main(["run", "--input", str(corpus / "in"), "--output", str(out), "--config", str(config)])
        == 0
    )
    data = {r["id"]: r for r in pq.read_table(out / "data").to_pylist()}
    rejected = {r["id"]: r for r in pq.read_table(out / "rejected").to_pylist()}
    # The question alone leaves nothing: dropped; the others keep their prose.
    assert (
        rejected["exact"]["rule"] == "contaminated"
        and "cutting leaves 0 pieces" in rejected["exact"]["reason"]
    )
    # The match runs from the question's first word to its last ("coast"); 5
    # characters go on each side.
    prefix = GOOD_EN + "\n\n" + "Our quiz: "
    start, end = len(prefix), len(prefix) + len(QUESTIONS[6]) - 1
    text = PLANTED["inside"]
    assert data["inside"]["text"] == text[: start - 5].strip() + "\n\n" + text[end + 5 :].strip()
    assert data["lower"]["text"] == GOOD_EN[:-3]  # "\n\n" and "ow." were in the margin
    actions = {c["id"]: c["action"] for c in pq.read_table(out / "contamination").to_pylist()}
    assert actions == {"exact": "dropped", "lower": "cut", "punctuated": "cut", "inside": "cut"}
    assert handed == [2]  # contamination/: a file per staged file (one per input file)
