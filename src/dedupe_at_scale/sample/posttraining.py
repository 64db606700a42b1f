"""Built-in post-training samples (instruction, chat, preference, reward)
with planted problems and their ground truth.

Each sample plants format errors (column `gt_rule`: the rule that must reject
the row), prompts repeated exactly, re-cased or with a sentence added, always
in another shard (`gt_repeat_of`: the original row's id), and, in preference
and reward data, conflicting labels (`gt_conflict`: the id of the conflict's
first row, on every row of the conflict). Rows are built from the sample's
text bank in seven languages; the prompt and response of a row share one.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dedupe_at_scale.sample import LANGUAGES, clean_document
from dedupe_at_scale.sample.bank import SENTENCE_JOINER

FORMATS = ("instruction", "chat", "preference", "reward")
# Planted format errors per format: rule -> share of rows.
PLANTED_RULES: dict[str, dict[str, float]] = {
    "instruction": {
        "missing_prompt": 0.01, "missing_response": 0.01, "template_tokens": 0.01,
        "role_prefix": 0.01, "truncated_response": 0.01,
    },
    "chat": {
        "empty_chat": 0.005, "not_alternating": 0.01, "no_final_assistant": 0.01,
        "unknown_role": 0.01, "empty_turn": 0.01, "template_tokens": 0.01,
    },
    "preference": {
        "chosen_equals_rejected": 0.01, "missing_rejected": 0.01, "template_tokens": 0.01,
    },
    "reward": {"score_not_number": 0.01, "score_out_of_range": 0.01, "template_tokens": 0.01},
}  # fmt: skip
REPEAT_SHARE = 0.06  # rows that repeat an earlier row's prompt
CONFLICT_SHARE = 0.04  # preference and reward: rows that contradict an earlier one
SCORE_RANGE = (1.0, 10.0)  # reward scores; the reward job spec checks this range
MAX_SCORE_GAP = 1.0  # the reward job spec's consistency.max_score_gap
TEMPLATE_LEAKS = ["<|im_end|>", "[INST]", "### Response:", "<|eot_id|>"]
SUFFIXES = [" Please keep it short.", " Thanks a lot!", " Answer in plain words."]


def _prompt(rng: random.Random, language: str) -> str:
    text = clean_document(rng, language, sentences=rng.randint(2, 3)).replace("\n\n", " ")
    if language == "en":
        head = rng.choice(
            ["Summarize this news item:", "Rewrite this in simpler words:", "Continue the story:"]
        )
        return f"{head} {text}"
    return text


def _response(rng: random.Random, language: str) -> str:
    return clean_document(rng, language, sentences=rng.randint(3, 6))


def _variant(rng: random.Random, prompt: str, language: str) -> str:
    """The same prompt as a person would repeat it: verbatim, re-cased, or
    with a short sentence added (a near duplicate; in spaced scripts only,
    where the added words change few of the prompt's shingles)."""
    kind = rng.randrange(2 if language in SENTENCE_JOINER else 3)
    if kind == 0:
        return prompt
    if kind == 1:  # upper case only in English: "ß".upper() is "SS", a different word
        return prompt.upper() if language == "en" and rng.random() < 0.5 else prompt.lower()
    return prompt + rng.choice(SUFFIXES)


def _truncate(text: str) -> str:
    words = text.split(" ")
    cut = " ".join(words[: max(10, len(words) // 2)]).rstrip(".!?,;:。 ")
    return cut + (" and" if cut[-1:].isdigit() else "")


class _Rows:
    """Builds one format's rows (a dict per row, the format's columns)."""

    def __init__(self, fmt: str, rng: random.Random):
        self.fmt, self.rng = fmt, rng

    def clean(self, language: str) -> dict:
        rng, fmt = self.rng, self.fmt
        prompt, response = _prompt(rng, language), _response(rng, language)
        if fmt == "instruction":
            return {"instruction": prompt, "output": response}
        if fmt == "chat":
            turns = [(prompt, response)]
            for _ in range(rng.choice([0, 0, 1, 2])):
                turns.append((_prompt(rng, language), _response(rng, language)))
            messages = [{"from": "system", "value": "You are a helpful assistant."}]
            for user, assistant in turns:
                messages += [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]
            return {"conversations": messages}
        if fmt == "preference":
            return {"prompt": prompt, "chosen": response, "rejected": _response(rng, language)}
        return {"prompt": prompt, "response": response, "score": float(rng.randint(1, 10))}

    def prompt_of(self, row: dict) -> str:
        if self.fmt == "instruction":
            return row["instruction"]
        if self.fmt == "chat":
            return row["conversations"][1]["value"]
        return row["prompt"]

    def with_prompt(self, row: dict, prompt: str) -> dict:
        row = {k: (list(v) if isinstance(v, list) else v) for k, v in row.items()}
        if self.fmt == "instruction":
            row["instruction"] = prompt
        elif self.fmt == "chat":
            row["conversations"][1] = {"from": "human", "value": prompt}
        else:
            row["prompt"] = prompt
        return row

    def broken(self, rule: str, language: str) -> dict:
        """A row that `rule` (and no earlier rule) must reject."""
        rng = self.rng
        if rule == "truncated_response":  # a rule that counts words: a spaced script
            language = "en"
        row = self.clean(language)
        if self.fmt == "instruction":
            if rule == "missing_prompt":
                row["instruction"] = None if rng.random() < 0.5 else "   "
            elif rule == "missing_response":
                row["output"] = "" if rng.random() < 0.5 else None
            elif rule == "template_tokens":
                row["output"] = row["output"] + " " + rng.choice(TEMPLATE_LEAKS)
            elif rule == "role_prefix":
                row["output"] = rng.choice(["Assistant: ", "Response: ", "GPT: "]) + row["output"]
            elif rule == "truncated_response":
                row["output"] = _truncate(row["output"])
        elif self.fmt == "chat":
            msgs = row["conversations"]
            if rule == "empty_chat":
                row["conversations"] = []
            elif rule == "not_alternating":
                msgs.insert(2, {"from": "human", "value": _prompt(rng, language)})
            elif rule == "no_final_assistant":
                msgs.append({"from": "human", "value": _prompt(rng, language)})
            elif rule == "unknown_role":
                msgs[-1] = {"from": "narrator", "value": msgs[-1]["value"]}
            elif rule == "empty_turn":
                msgs[-1] = {"from": "gpt", "value": " "}
            elif rule == "template_tokens":
                msgs[1] = {"from": "human", "value": "[INST] " + msgs[1]["value"] + " [/INST]"}
        elif self.fmt == "preference":
            if rule == "chosen_equals_rejected":
                row["rejected"] = row["chosen"].lower().replace(".", "!")
            elif rule == "missing_rejected":
                row["rejected"] = None
            elif rule == "template_tokens":
                row["rejected"] = row["rejected"] + "<|im_end|>"
        else:
            if rule == "score_not_number":
                row["score"] = None if rng.random() < 0.5 else float("nan")
            elif rule == "score_out_of_range":
                row["score"] = rng.choice([0.0, 11.0, 42.0, -3.0])
            elif rule == "template_tokens":
                row["response"] = "<|im_start|>assistant\n" + row["response"]
        return row


def generate_posttraining(
    output: str | Path, fmt: str, docs: int = 2000, shards: int = 4, seed: int = 0
) -> list[Path]:
    """Write `docs` rows of format `fmt` over `shards` Parquet files."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    if docs < 1 or shards < 1:
        raise ValueError("docs and shards must be positive")
    rng = random.Random(seed)
    build = _Rows(fmt, rng)
    plan = _plan(rng, fmt, docs)
    rows: list[dict] = []
    shard_of: list[int] = []
    originals: list[int] = []  # clean rows that repeats and conflicts may copy
    for i, kind in enumerate(plan):
        language = rng.choice(LANGUAGES)
        shard = rng.randrange(shards)
        truth = {"gt_rule": None, "gt_repeat_of": None, "gt_conflict": None}
        if kind in ("repeat", "conflict") and originals:
            j = originals.pop(rng.randrange(len(originals)))  # each original used once
            source = rows[j]
            row = build.with_prompt(
                source, _variant(rng, build.prompt_of(source), source["gt_language"])
            )
            if kind == "repeat":
                row.update(build.clean(source["gt_language"]) if fmt != "chat" else {})
                row = build.with_prompt(
                    row, _variant(rng, build.prompt_of(source), source["gt_language"])
                )
                if fmt == "reward":  # same prompt and response, scores that agree
                    row["response"] = source["response"]
                    row["score"] = _agreeing(rng, source["score"])
            else:
                _contradict(rng, row, source)
                source["gt_conflict"] = truth["gt_conflict"] = source["id"]
            truth["gt_repeat_of"] = source["id"]
            language = source["gt_language"]
            shard = (shard_of[j] + 1 + rng.randrange(shards - 1)) % shards if shards > 1 else 0
        elif kind in PLANTED_RULES[fmt]:
            row = build.broken(kind, language)
            truth["gt_rule"] = kind
        else:
            row = build.clean(language)
            originals.append(i)
        rows.append({**row, "id": f"{fmt}-{i:07d}", **truth, "gt_language": language})
        shard_of.append(shard)
    return _write(Path(output), fmt, rows, shard_of, shards, rng)


def _agreeing(rng: random.Random, score: float) -> float:
    low, high = SCORE_RANGE
    return min(high, max(low, score + rng.choice([-MAX_SCORE_GAP, 0.0, MAX_SCORE_GAP])))


def _contradict(rng: random.Random, row: dict, source: dict) -> None:
    if "chosen" in source:  # the same two responses, the other way round
        row["chosen"], row["rejected"] = source["rejected"], source["chosen"]
        return
    # The same response, a score further than the allowed gap from the source's.
    row["response"] = source["response"]
    low, high = SCORE_RANGE
    far = [
        s for s in range(int(low), int(high) + 1) if abs(s - source["score"]) > MAX_SCORE_GAP + 1
    ]
    row["score"] = float(rng.choice(far))


def _plan(rng: random.Random, fmt: str, docs: int) -> list[str]:
    planted = [
        rule for rule, share in PLANTED_RULES[fmt].items() for _ in range(round(docs * share))
    ]
    planted += ["repeat"] * round(docs * REPEAT_SHARE)
    if fmt in ("preference", "reward"):
        planted += ["conflict"] * round(docs * CONFLICT_SHARE)
    head = max(1, docs // 5)  # clean originals first, for repeats to copy
    rest = (planted + ["clean"] * docs)[: max(0, docs - head)]
    rng.shuffle(rest)
    return ["clean"] * (docs - len(rest)) + rest


def _schema(fmt: str) -> pa.Schema:
    message = pa.struct([("from", pa.string()), ("value", pa.string())])
    columns = {
        "instruction": [("instruction", pa.string()), ("output", pa.string())],
        "chat": [("conversations", pa.list_(message))],
        "preference": [("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())],
        "reward": [("prompt", pa.string()), ("response", pa.string()), ("score", pa.float64())],
    }[fmt]
    truth = [("gt_rule", pa.string()), ("gt_repeat_of", pa.string()), ("gt_conflict", pa.string())]
    return pa.schema([("id", pa.string()), *columns, *truth, ("gt_language", pa.string())])


def _write(
    output: Path, fmt: str, rows: list[dict], shard_of: list[int], shards: int, rng: random.Random
) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    schema = _schema(fmt)
    paths = []
    for shard in range(shards):
        members = [row for row, s in zip(rows, shard_of) if s == shard]
        rng.shuffle(members)
        path = output / f"{fmt}-{shard:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(members, schema=schema), path, row_group_size=1000,
                       compression="zstd")  # fmt: skip
        paths.append(path)
    return paths
