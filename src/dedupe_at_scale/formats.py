"""Post-training row shapes: which input columns make a row, and the texts
the stages read from it.

  instruction  prompt, response (+ optional input and system columns)
  chat         messages: a list of {role, content} structs (OpenAI / ShareGPT)
  preference   prompt, chosen, rejected
  reward       prompt, response, score

prompt, response, chosen and rejected may each be a string or a message list;
a message list's response is its last assistant turn, its prompt its user
turns. `extract` turns an Arrow table into per-row parts and the first
structural problem of each row (missing part, unknown role, turns out of
order); the content rules live in stages/format.py. Pure Python and Arrow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:  # config imports this module for its checks
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.io.inputs import InputConfig

ROLE_KINDS = ("user", "assistant", "system", "tool")
USER, ASSISTANT, SYSTEM, TOOL, UNKNOWN = 0, 1, 2, 3, -1
TURN_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "text" (string or message list), "string", "messages", "score"
    required: bool = True


FIELDS: dict[str, tuple[Field, ...]] = {
    "instruction": (
        Field("prompt", "text"),
        Field("response", "text"),
        Field("input", "string", required=False),
        Field("system", "string", required=False),
    ),
    "chat": (Field("messages", "messages"),),
    "preference": (Field("prompt", "text"), Field("chosen", "text"), Field("rejected", "text")),
    "reward": (Field("prompt", "text"), Field("response", "text"), Field("score", "score")),
}
# Keys of a message struct, mappable like columns (ShareGPT: from / value).
MESSAGE_KEYS = ("role", "content")
STRING_TYPES = (pa.string(), pa.large_string(), pa.string_view())


def mapping_problem(cfg: InputConfig) -> str | None:
    """A field name the format does not have, as a sentence; None if fine."""
    allowed = [f.name for f in FIELDS[cfg.format]] + list(MESSAGE_KEYS)
    unknown = [name for name in cfg.fields if name not in allowed]
    if unknown:
        return (
            f"names field '{unknown[0]}', which {cfg.format} rows do not have "
            f"(fields: {', '.join(allowed)})"
        )
    return None


def column_of(cfg: InputConfig, name: str) -> str:
    return cfg.fields.get(name, name)


def present_fields(cfg: InputConfig, names: list[str]) -> list[Field]:
    """The format's fields this file provides: the required ones, and the
    optional ones that are mapped or whose default column exists."""
    return [
        f for f in FIELDS[cfg.format]
        if f.required or f.name in cfg.fields or column_of(cfg, f.name) in names
    ]  # fmt: skip


def schema_problem(schema: pa.Schema, cfg: InputConfig) -> tuple[str, str] | None:
    """(rule, message) when a file's columns do not fit the field mapping."""
    names = schema.names
    columns = ", ".join(names) or "none"
    for f in present_fields(cfg, names):
        column = column_of(cfg, f.name)
        if column not in names:
            return "missing_field", (
                f"no column '{column}' for the {cfg.format} field '{f.name}' (columns: {columns}; "
                f"map it with input.fields, e.g. {{{f.name}: <column>}})"
            )
        kind = _value_type(schema.field(column).type)
        problem = _type_problem(f, kind, cfg)
        if problem:
            return "field_type", f"column '{column}' (field '{f.name}') {problem}"
    return None


def _value_type(kind: pa.DataType) -> pa.DataType:
    return kind.value_type if pa.types.is_dictionary(kind) else kind


def _is_messages(kind: pa.DataType, cfg: InputConfig) -> str | None:
    """None if `kind` is a list of {role, content} structs, else why not."""
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        return f"has type {kind}, expected a list of {{role, content}} structs"
    item = kind.value_type
    if not pa.types.is_struct(item):
        return f"holds {item}, expected {{role, content}} structs"
    keys = [item.field(i).name for i in range(item.num_fields)]
    for key in MESSAGE_KEYS:
        name = column_of(cfg, key)
        if name not in keys:
            return (
                f"has messages without a '{name}' key (keys: {', '.join(keys)}; "
                f"map it with input.fields, e.g. {{{key}: <key>}})"
            )
        if _value_type(item.field(name).type) not in STRING_TYPES:
            return f"has message key '{name}' of type {item.field(name).type}, expected string"
    return None


def _type_problem(f: Field, kind: pa.DataType, cfg: InputConfig) -> str | None:
    if f.kind == "messages":
        return _is_messages(kind, cfg)
    if f.kind == "score":
        ok = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
        return None if ok or kind in STRING_TYPES else f"has type {kind}, expected a number"
    if kind in STRING_TYPES:
        return None
    if f.kind == "text" and _is_messages(kind, cfg) is None:
        return None
    expected = "a string or a list of {role, content} structs" if f.kind == "text" else "a string"
    return f"has type {kind}, expected {expected}"


def stage_views(cfg: JobConfig) -> dict[str, str]:
    """The part each stage reads ("auto" resolved): langid's `language`,
    the quality rules' and model's text, dedup's key, what decontamination
    searches. For text rows every view is the text (stages.base.Batch)."""
    dedup = "prompt+response" if cfg.input.format == "reward" else "prompt"
    chosen = {
        "langid": cfg.langid.text, "quality": cfg.quality.text, "dedup": cfg.dedup.key,
        "decontaminate": cfg.decontaminate.text,
    }  # fmt: skip
    defaults = {
        "langid": "response", "quality": "response", "dedup": dedup,
        "decontaminate": "conversation",
    }  # fmt: skip
    return {k: defaults[k] if v == "auto" else v for k, v in chosen.items()}


@dataclass
class Parts:
    """One batch's rows as texts (None where a part is missing)."""

    prompt: list[str | None]
    response: list[str | None]  # preference: the chosen response
    conversation: list[str]  # every user and assistant text, in order
    rejected: list[str | None] | None = None  # preference: the rejected response
    score: list[float | None] | None = None  # reward
    problems: list[tuple[str, str] | None] = field(default_factory=list)

    def view(self, name: str) -> list[str]:
        if name == "prompt":
            return [p or "" for p in self.prompt]
        if name == "response":
            return [r or "" for r in self.response]
        if name == "prompt+response":
            return [
                (p or "") + TURN_SEPARATOR + (r or "") for p, r in zip(self.prompt, self.response)
            ]
        return self.conversation


class RoleTable:
    """Role names as the data spells them -> role kind codes."""

    def __init__(self, roles: dict[str, list[str]]):
        code = {"user": USER, "assistant": ASSISTANT, "system": SYSTEM, "tool": TOOL}
        self.codes = {name: code[kind] for kind, names in roles.items() for name in names}

    def code(self, name: Any) -> int:
        return self.codes.get(name, UNKNOWN) if isinstance(name, str) else UNKNOWN


@dataclass
class Messages:
    """A message-list column flattened: turn i of row r is offsets[r] + i."""

    offsets: np.ndarray
    valid: np.ndarray
    roles: list[Any]
    contents: list[Any]

    @classmethod
    def of(cls, array: pa.Array, cfg: InputConfig) -> Messages:
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        valid = ~array.is_null().to_numpy(zero_copy_only=False)
        lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        flat = pc.list_flatten(array)  # skips the values behind null lists
        roles = _as_strings(flat.field(column_of(cfg, "role"))).to_pylist()
        contents = _as_strings(flat.field(column_of(cfg, "content"))).to_pylist()
        return cls(offsets, valid, roles, contents)


def _as_strings(array: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array if pa.types.is_string(array.type) else array.cast(pa.string())


def _join(texts: list[str | None]) -> str:
    return TURN_SEPARATOR.join(t for t in texts if t)


def _blank(text: str | None) -> bool:
    return text is None or not text.strip()


class Extractor:
    """Parts of a batch of rows of one format (built once per worker)."""

    def __init__(self, cfg: JobConfig):
        self.input = cfg.input
        self.roles = RoleTable(cfg.format.roles)

    def __call__(self, table: pa.Table) -> Parts:
        fmt, n = self.input.format, table.num_rows
        if fmt == "chat":
            messages = Messages.of(table.column(column_of(self.input, "messages")), self.input)
            return self._chat(messages, n)
        present = {f.name for f in present_fields(self.input, table.column_names)}
        texts = {
            name: self._text_field(table, name)
            for name in ("prompt", "response", "chosen", "rejected")
            if name in present
        }
        prompt, prompt_problem = texts["prompt"]
        response_name = "chosen" if fmt == "preference" else "response"
        response, response_problem = texts[response_name]
        problems = [p or r for p, r in zip(prompt_problem, response_problem)]
        if fmt == "instruction" and "input" in present:
            extra = self._strings(table, "input")
            prompt = [
                p if _blank(x) else (p or "") + TURN_SEPARATOR + x for p, x in zip(prompt, extra)
            ]
        parts = Parts(prompt, response, [_join([p, r]) for p, r in zip(prompt, response)])
        if fmt == "preference":
            parts.rejected, rejected_problem = texts["rejected"]
            problems = [p or r for p, r in zip(problems, rejected_problem)]
        if fmt == "reward":
            parts.score, score_problem = self._scores(table)
            problems = [p or s for p, s in zip(problems, score_problem)]
        parts.problems = problems
        return parts

    def _strings(self, table: pa.Table, name: str) -> list[Any]:
        return _as_strings(table.column(column_of(self.input, name)).combine_chunks()).to_pylist()

    def _text_field(
        self, table: pa.Table, name: str
    ) -> tuple[list[str | None], list[tuple[str, str] | None]]:
        """A string field, or a message list's user turns (prompt) or last
        assistant turn (the others); a blank one is a missing_<name> problem."""
        column = table.column(column_of(self.input, name))
        if _is_messages(column.type, self.input) is None:
            messages = Messages.of(column, self.input)
            parts = self._chat(messages, table.num_rows)
            values = parts.prompt if name == "prompt" else parts.response
            # No messages at all: the field is missing, like a null string.
            problems = [None if p and p[0] == "empty_chat" else p for p in parts.problems]
        else:
            values = _as_strings(column.combine_chunks()).to_pylist()
            problems = [None] * len(values)
        missing = (f"missing_{name}", f"missing_{name}: the {name} is null or blank")
        problems = [p or (missing if _blank(v) else None) for p, v in zip(problems, values)]
        return values, problems

    def _scores(self, table: pa.Table) -> tuple[list[float | None], list[tuple[str, str] | None]]:
        raw = table.column(column_of(self.input, "score")).combine_chunks()
        if pa.types.is_dictionary(raw.type):
            raw = raw.dictionary_decode()
        values: list[float | None] = []
        problems: list[tuple[str, str] | None] = []
        for value in raw.to_pylist():
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = None
            if number is None or number != number:  # null, text or NaN
                values.append(None)
                problems.append(("score_not_number", f"score_not_number: {str(value)[:40]!r}"))
            else:
                values.append(number)
                problems.append(None)
        return values, problems

    def _chat(self, m: Messages, n: int) -> Parts:
        """Prompt (user turns before the last assistant turn), response (that
        turn), conversation, and each row's first structural problem."""
        prompts: list[str | None] = []
        responses: list[str | None] = []
        conversations: list[str] = []
        problems: list[tuple[str, str] | None] = []
        code = self.roles.code
        for r in range(n):
            lo, hi = int(m.offsets[r]), int(m.offsets[r + 1])
            kinds = [code(m.roles[i]) for i in range(lo, hi)]
            texts = m.contents[lo:hi]
            problem = None if m.valid[r] and hi > lo else ("empty_chat", "empty_chat: no messages")
            if problem is None:
                problem = _turn_problem(kinds, texts, m.roles[lo:hi])
            last = hi - lo - 1
            users = [t for k, t in zip(kinds[:last], texts[:last]) if k == USER]
            prompts.append(_join(users) or None)
            responses.append(texts[last] if kinds[-1:] == [ASSISTANT] else None)
            conversations.append(_join([t for k, t in zip(kinds, texts) if k in (USER, ASSISTANT)]))
            problems.append(problem)
        return Parts(prompts, responses, conversations, problems=problems)


def _turn_problem(kinds: list[int], texts: list[Any], names: list[Any]) -> tuple[str, str] | None:
    """System turns first, then user and assistant alternating from a user
    turn to a final assistant turn; tool turns answer an assistant turn."""
    for i, kind in enumerate(kinds):
        if kind == UNKNOWN:
            return "unknown_role", f"unknown_role: turn {i} has role {str(names[i])[:40]!r}"
    expected, previous = USER, None
    for i, kind in enumerate(kinds):
        if kind == SYSTEM:
            if previous not in (None, SYSTEM):
                return "not_alternating", f"not_alternating: system turn {i} after the first turn"
        elif kind == TOOL:
            if previous not in (ASSISTANT, TOOL):
                return (
                    "not_alternating",
                    f"not_alternating: tool turn {i} follows no assistant turn",
                )
            expected = ASSISTANT  # the assistant reads the tool's answer next
        elif kind != expected:
            want = "user" if expected == USER else "assistant"
            return "not_alternating", f"not_alternating: turn {i} should be a {want} turn"
        else:
            expected = ASSISTANT if kind == USER else USER
        if kind == USER and _blank(texts[i]):
            return "empty_turn", f"empty_turn: user turn {i} is blank"
        # An assistant turn may be blank only when it calls a tool (a tool turn follows).
        calls_tool = i + 1 < len(kinds) and kinds[i + 1] == TOOL
        if kind == ASSISTANT and _blank(texts[i]) and not calls_tool:
            return "empty_turn", f"empty_turn: assistant turn {i} is blank"
        previous = kind
    if previous != ASSISTANT:
        return "no_final_assistant", "no_final_assistant: the last turn is not an assistant turn"
    return None
