"""`format` section: checks of post-training rows, and the texts the later
stages read (views: prompt, response, prompt+response; the conversation is
the row's text).

A row fails its first problem, in this order: its shape (formats.py:
missing parts, unknown roles, turns out of order, a score that is not a
number), a score out of range, chosen equal to rejected, leftover template
tokens, a role label opening the response, a response cut mid-sentence, and
prompt or response lengths in words. Vectorized with Arrow compute except
the shape, which is one Python pass over the rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from dedupe_at_scale import columns as col
from dedupe_at_scale.formats import ROLE_KINDS, Extractor, Parts, stage_views
from dedupe_at_scale.sections import Require, Section
from dedupe_at_scale.stages.base import Batch, Stage, StageResult, rejections
from dedupe_at_scale.stages.minhash import normalize, string_hashes

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

ROLE_PREFIX = r"(?i)^\s*(?:#+\s*)?(?:assistant|gpt|bot|ai|response)\s*:"
CODE_FENCE = "```"


class FormatConfig(Section):
    """Checks of post-training rows (input.format other than text); each
    failing row goes to rejected/ with stage "format" and the rule's name."""

    enabled: bool = True
    # Role names as the data spells them -> user / assistant / system / tool.
    roles: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "user": ["user", "human", "prompter"],
            "assistant": ["assistant", "gpt", "bot", "model"],
            "system": ["system"],
            "tool": ["tool", "function", "ipython"],
        }
    )
    # Chat-template and prompt-format tokens a model should never learn as text.
    template_tokens: list[str] = Field(
        default_factory=lambda: [
            "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>",
            "<|start_header_id|>", "<|end_header_id|>", "<|begin_of_text|>",
            "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "<s>", "</s>",
            "### Instruction:", "### Response:", "### Input:",
        ]
    )  # fmt: skip
    # A response that opens with a role label ("Assistant:", "### Response:").
    role_prefix: bool = True
    # A response that ends mid-sentence: its last character is a letter or a
    # comma, and it has at least truncated_min_words words (short answers
    # such as "Paris" are exempt).
    truncated_response: bool = True
    truncated_min_words: int = 8
    min_prompt_words: int | None = 1
    max_prompt_words: int | None = 4_000
    min_response_words: int | None = 1
    max_response_words: int | None = 8_000
    # Reward rows: scores outside [min_score, max_score] are rejected.
    min_score: float | None = None
    max_score: float | None = None

    def check(self, job: JobConfig, require: Require) -> None:
        require(self.truncated_min_words >= 0, "format.truncated_min_words", "must be >= 0")
        if self.min_score is not None and self.max_score is not None:
            require(
                self.min_score <= self.max_score, "format.min_score", "must be <= format.max_score"
            )
        seen: dict[str, str] = {}
        for kind, names in self.roles.items():
            require(
                kind in ROLE_KINDS, f"format.roles.{kind}",
                f"is not a role kind (kinds: {', '.join(ROLE_KINDS)})",
            )  # fmt: skip
            for name in names:
                require(
                    name not in seen, f"format.roles.{kind}",
                    f"repeats role name '{name}' (also under {seen.get(name)})",
                )  # fmt: skip
                seen[name] = kind


class FormatStage(Stage):
    name = stage = "format"

    def __init__(self, cfg: JobConfig):
        super().__init__(cfg)
        self.extract = Extractor(cfg)
        self.section = cfg.format
        self.kind = cfg.input.format
        # The conversation is the row's text itself, not a view column.
        self.views = (set(stage_views(cfg).values()) | {"prompt", "response"}) - {"conversation"}

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.input.format != "text"

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        fields = {
            "preference": [(col.RESPONSE_KEY, pa.uint64()), (col.REJECTED_KEY, pa.uint64())],
            "reward": [(col.RESPONSE_KEY, pa.uint64()), (col.SCORE, pa.float64())],
        }
        return [pa.field(name, kind) for name, kind in fields.get(cfg.input.format, [])]

    def __call__(self, batch: Batch) -> StageResult:
        parts = self.extract(batch.table)
        n = batch.num_rows
        columns = {col.VIEW_PREFIX + v: pa.array(parts.view(v), pa.string()) for v in self.views}
        response = columns[col.VIEW_PREFIX + "response"]
        if self.kind in ("preference", "reward"):
            columns[col.RESPONSE_KEY] = pa.array(text_key(response))
        if self.kind == "preference":
            rejected = pa.array([r or "" for r in parts.rejected], pa.string())
            columns[col.REJECTED_KEY] = pa.array(text_key(rejected))
        if self.kind == "reward":
            columns[col.SCORE] = pa.array(parts.score, pa.float64())
        conversation = pa.array(parts.conversation, pa.string())
        found = self._problems(batch, parts, columns, conversation) if self.section.enabled else []
        active = set(batch.active().tolist())
        found = [(i, rule, value, reason) for i, rule, value, reason in found if i in active]
        rows, rules, values, reasons = (list(x) for x in zip(*found)) if found else ([],) * 4
        return StageResult(
            columns=columns, rejected=rejections(n, rows, rules, values, reasons), text=conversation
        )

    def _problems(
        self, batch: Batch, parts: Parts, columns: dict[str, pa.Array], conversation: pa.Array
    ) -> list[tuple[int, str, float | None, str]]:
        """(row, rule, value, reason) of each row's first problem."""
        s = self.section
        prompt = columns[col.VIEW_PREFIX + "prompt"]
        response = columns[col.VIEW_PREFIX + "response"]
        checks: list[tuple[str, np.ndarray, np.ndarray | None]] = []  # rule, failing, value
        if self.kind == "reward":
            score = np.array([np.nan if v is None else v for v in parts.score], dtype=np.float64)
            low = s.min_score if s.min_score is not None else -np.inf
            high = s.max_score if s.max_score is not None else np.inf
            checks.append(("score_out_of_range", (score < low) | (score > high), score))
        if self.kind == "preference":
            same = _numpy(columns[col.RESPONSE_KEY]) == _numpy(columns[col.REJECTED_KEY])
            checks.append(("chosen_equals_rejected", same, None))
        texts = [conversation] + ([pa.array(parts.rejected, pa.string())] if parts.rejected else [])
        template = np.zeros(batch.num_rows, dtype=bool)
        for token in s.template_tokens:
            for text in texts:
                template |= _numpy(pc.match_substring(text, token), False)
        checks.append(("template_tokens", template, None))
        if s.role_prefix:
            checks.append(
                (
                    "role_prefix",
                    _numpy(pc.match_substring_regex(response, ROLE_PREFIX), False),
                    None,
                )
            )
        response_words = _numpy(pc.count_substring_regex(response, r"\S+"), 0).astype(np.float64)
        if s.truncated_response:
            checks.append(
                (
                    "truncated_response",
                    _truncated(response) & (response_words >= s.truncated_min_words),
                    response_words,
                )
            )
        prompt_words = _numpy(pc.count_substring_regex(prompt, r"\S+"), 0).astype(np.float64)
        for rule, words, low, high in (
            ("prompt_length", prompt_words, s.min_prompt_words, s.max_prompt_words),
            ("response_length", response_words, s.min_response_words, s.max_response_words),
        ):
            out = np.zeros(batch.num_rows, dtype=bool)
            if low is not None:
                out |= words < low
            if high is not None:
                out |= words > high
            checks.append((rule, out, words))
        found = []
        for i, problem in enumerate(parts.problems):
            if problem is not None:
                found.append((i, problem[0], None, problem[1]))
                continue
            for rule, failing, value in checks:
                if failing[i]:
                    v = None if value is None else float(value[i])
                    found.append((i, rule, v, self._reason(rule, i, v, texts)))
                    break
        return found

    def _reason(self, rule: str, i: int, value: float | None, texts: list[pa.Array]) -> str:
        s = self.section
        if rule == "template_tokens":
            row = [t[i].as_py() or "" for t in texts]
            token = next(tok for tok in s.template_tokens if any(tok in text for text in row))
            return f"template_tokens: {token!r} in the text"
        if rule == "score_out_of_range":
            return f"score_out_of_range: {value:g} not within [{s.min_score}, {s.max_score}]"
        if rule == "prompt_length":
            return f"prompt_length: {value:g} words, bounds [{s.min_prompt_words}, {s.max_prompt_words}]"
        if rule == "response_length":
            return f"response_length: {value:g} words, bounds [{s.min_response_words}, {s.max_response_words}]"
        if rule == "truncated_response":
            return f"truncated_response: ends mid-sentence after {value:g} words"
        if rule == "role_prefix":
            return "role_prefix: the response opens with a role label"
        return f"{rule}: the chosen and rejected responses are the same text"


def text_key(texts: pa.Array) -> np.ndarray:
    """64-bit hash of each text as dedup normalizes it (lower case, no
    punctuation) with whitespace runs made one space: equal for texts that
    differ only there."""
    spaced = pc.utf8_trim_whitespace(pc.replace_substring_regex(normalize(texts), r"\s+", " "))
    return string_hashes(spaced)


def _numpy(array: pa.Array, fill: object = None) -> np.ndarray:
    if fill is not None:
        array = pc.fill_null(array, fill)
    return array.to_numpy(zero_copy_only=False)


def _truncated(response: pa.Array) -> np.ndarray:
    """Ends with a letter or a comma, or inside an open code block."""
    trimmed = pc.utf8_rtrim_whitespace(response)
    last = pc.utf8_slice_codeunits(trimmed, -1)
    mid_sentence = pc.or_(pc.utf8_is_alpha(last), pc.equal(last, ","))
    open_fence = pc.equal(pc.bit_wise_and(pc.count_substring(trimmed, CODE_FENCE), 1), 1)
    return _numpy(pc.or_(mid_sentence, open_fence), False)
