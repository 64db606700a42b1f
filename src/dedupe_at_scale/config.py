"""Typed job configuration, loaded from YAML and validated strictly.

Every section is a pydantic model in strict mode; an unknown key or a value
of the wrong type is a `ConfigError` that names the dotted key
(``quality.gopher_quality.min_words``) in one line. Defaults make a sensible
run with no config file at all.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from dedupe_at_scale import columns, formats
from dedupe_at_scale.sections import ConfigError, Section, View

__all__ = ["ConfigError", "JobConfig", "Section", "View", "config_from_dict", "load_config"]


# Scripts written without spaces between words: whitespace "words" are whole
# sentences there, so word-count based rules do not apply to them.
UNSEGMENTED_LANGUAGES = ["zh", "ja", "th", "lo", "km", "my", "bo", "dz", "yue", "wuu"]

SPEC_ENV_PREFIX = "env:"

GOPHER_STOP_WORDS = {"en": ["the", "be", "to", "of", "and", "that", "have", "with"]}


class InputConfig(Section):
    # Where the shards are (dir, file, glob, s3://...); --input overrides it.
    uri: str | None = None
    text_column: str = "text"
    # When the column is absent, ids are generated as "<relative path>#<row>".
    id_column: str = "id"
    # What a document with null text, invalid UTF-8 or an id seen before does:
    # stop the job with an error naming the file and row, or go to rejected/
    # with stage "input" and the problem as its rule.
    on_invalid_document: Literal["error", "quarantine"] = "error"
    # What a file that cannot be used does (not Parquet, truncated, empty,
    # corrupt pages, no text column, text of a non-string type): stop the job
    # naming the file, or send its documents to rejected/ with the reason.
    on_invalid_file: Literal["error", "quarantine"] = "error"
    # Upper bound on rows per read task; files are split at row-group borders.
    rows_per_task: int = 20_000
    # Files with fewer rows are read whole, several to a task, up to this
    # many rows (or 256 files): a task per tiny file costs more than its work.
    min_rows_per_task: int = 200
    # Null or empty ids: "require" makes them invalid documents (see
    # on_invalid_document, rule null_id); "generate" fills them with
    # "<relative path>#<row>" (the id column is then string in every file).
    id_policy: Literal["require", "generate"] = "require"
    # Column -> pyarrow type name ("string", "int64", "double", ...): pins a
    # column's type where shards disagree; every other column is unified by
    # the rules in io/schema.py.
    # (The YAML key is `schema`; the attribute is pinned_types, as a pydantic
    # model has a `schema` method of its own.)
    pinned_types: dict[str, str] | None = Field(None, alias="schema")
    # What a row is: pre-training text (one column, text_column), or a
    # post-training example whose parts are columns named by `fields`
    # (formats.py lists each format's fields and their default columns).
    format: Literal["text", "instruction", "chat", "preference", "reward"] = "text"
    # Field -> input column, e.g. {prompt: question, response: answer};
    # for chat also the message struct's keys, e.g. {role: from, content: value}.
    fields: dict[str, str] = Field(default_factory=dict)
    # An input column named like one the job writes (language, n_tokens,
    # q_*, split, ...): "rename" keeps it as input_<name> (the manifest's
    # input_schema.renamed_columns lists them); "error" stops the job.
    on_column_clash: Literal["rename", "error"] = "rename"
    # "hive": key=value directories below the input root (lang=en/, as Hive,
    # Spark and Ray Data write them) become string columns of their files'
    # rows, where a file lacks that column; "none": paths are only paths.
    partitioning: Literal["hive", "none"] = "hive"

    @property
    def document_column(self) -> str:
        """The column the stages read as a row's text: text_column, or for
        post-training formats the rendered conversation (an internal column)."""
        return self.text_column if self.format == "text" else columns.TEXT


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


class ConsistencyConfig(Section):
    """Contradictions among rows whose prompts dedup clustered together
    (preference and reward data; steps/consistency.py)."""

    enabled: bool = True
    # report: list conflicts in conflicts/ and drop nothing for them;
    # drop_all: reject every row of a conflict; keep_majority: reject the
    # rows that disagree with the majority (all of them on a tie).
    action: Literal["report", "drop_all", "keep_majority"] = "report"
    # Reward rows for one (prompt, response) whose scores differ by more.
    max_score_gap: float = 1.0


class LangIdConfig(Section):
    enabled: bool = True
    # Path to a fastText language-ID model; null means the bundled lid.176.ftz.
    model: str | None = None
    # ISO codes to keep; null keeps every language.
    languages: list[str] | None = None
    min_score: float = 0.65
    # Only the first characters are classified (bounds time on huge documents).
    max_chars: int = 2_000  # as accurate as 20,000 on real text, far faster (README)
    # Post-training rows: the text whose language is `language` (auto: the
    # response); the prompt's is recorded as prompt_language either way.
    text: View = "auto"
    # Post-training rows: reject a row whose response language is not its
    # prompt's (rule langid_mismatch; both labels at least min_score).
    require_same_language: bool = False


class GopherQualityConfig(Section):
    enabled: bool = True
    min_words: int | None = 50
    max_words: int | None = 100_000
    min_mean_word_length: float | None = 3.0
    max_mean_word_length: float | None = 10.0
    max_hash_to_word_ratio: float | None = 0.1
    max_ellipsis_to_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    # The stop-word rule applies only to languages listed here.
    stop_words: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in GOPHER_STOP_WORDS.items()}
    )


class GopherRepetitionConfig(Section):
    enabled: bool = True
    max_duplicate_lines_fraction: float | None = 0.3
    max_duplicate_paragraphs_fraction: float | None = 0.3
    max_duplicate_line_chars_fraction: float | None = 0.2
    max_duplicate_paragraph_chars_fraction: float | None = 0.2
    # n -> max fraction of characters in the most frequent n-gram.
    top_ngram_max_chars_fraction: dict[int, float] = Field(
        default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16}
    )
    # n -> max fraction of characters in n-grams that occur more than once.
    duplicate_ngram_max_chars_fraction: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )


class C4Config(Section):
    enabled: bool = True
    drop_lorem_ipsum: bool = True
    drop_curly_brace: bool = True
    # Line filters: a line failing one is removed before sentences are counted.
    remove_lines_without_terminal_punctuation: bool = True
    remove_javascript_lines: bool = True
    remove_policy_lines: bool = True
    min_words_per_line: int | None = 3
    max_word_length: int | None = 1000
    min_sentences: int | None = 5
    # True replaces the text of kept documents by the lines C4 keeps (the
    # original C4 cleaning); false only filters and leaves text untouched.
    clean_text: bool = False


class FineWebConfig(Section):
    enabled: bool = True
    min_line_punctuation_ratio: float | None = 0.12
    short_line_length: int = 30
    max_short_line_ratio: float | None = 0.67
    max_duplicate_line_chars_ratio: float | None = 0.01
    max_newline_to_word_ratio: float | None = 0.3


class QualityConfig(Section):
    enabled: bool = True
    # Languages whose whitespace tokens are not words (word rules skip them).
    unsegmented_languages: list[str] = Field(default_factory=lambda: list(UNSEGMENTED_LANGUAGES))
    # Add one float column per measured rule value ("q_<rule>") to kept documents.
    emit_signals: bool = True
    # A fastText model from `dedupe-at-scale train-quality`: adds quality_score
    # (P(high quality)) and rejects documents scoring below min_score.
    model: str | None = None
    min_score: float = 0.5
    # Post-training rows: the text the rules and the model read (auto: the response).
    text: View = "auto"
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    c4: C4Config = Field(default_factory=C4Config)
    fineweb: FineWebConfig = Field(default_factory=FineWebConfig)


class DedupConfig(Section):
    enabled: bool = True
    exact: bool = True  # identical normalized text
    near: bool = True  # MinHash-LSH
    threshold: float = 0.8  # Jaccard similarity of shingle sets
    ngram_size: int = 5  # word n-grams
    char_ngram_size: int = 5  # character n-grams for quality.unsegmented_languages
    num_perm: int = 128
    # Bands x rows; null chooses them from threshold and num_perm by band_selection.
    bands: int | None = None
    rows: int | None = None
    # "recall": steepest S-curve finding pairs at threshold + 0.05 with
    # probability >= 0.99 (verification removes the extra candidates);
    # "balanced": datasketch's equal false-positive / false-negative weights.
    band_selection: Literal["recall", "balanced"] = "recall"
    # Keep a candidate pair only if its signatures agree on at least
    # verify_threshold of their values (null: the threshold).
    verify: bool = True
    verify_threshold: float | None = None
    # Buckets with more distinct texts get star + neighbour pairs, not all pairs.
    all_pairs_limit: int = 32
    # Which document of a duplicate cluster survives: columns in priority
    # order, "-" for descending; columns absent from the data are skipped.
    keep: list[str] = Field(default_factory=lambda: ["-quality_score", "id"])
    unicode_normalization: Literal["none", "NFC", "NFKC", "NFD", "NFKD"] = "none"
    seed: int = 1
    # Post-training rows: what makes two rows duplicates. auto: the prompt
    # (instruction, chat, preference: a repeated prompt biases the model even
    # with different answers), prompt+response for reward data.
    key: Literal["auto", "prompt", "prompt+response", "conversation"] = "auto"
    # false: find the clusters (duplicates/, and splits keep them whole) but
    # keep every member.
    remove: bool = True
    # Hash partitions of the global steps; null: one per 100,000 input documents
    # (steps/base.py, partition_count).
    partitions: int | None = None
    # How the all-to-all hops move their pieces (steps/exchange.py): objects
    # (one Ray object per sender and receiver), mailboxes (actors own the
    # receivers; the driver holds one ref per task), auto: mailboxes once a
    # hop would pass more than 20,000 objects. The output is the same.
    exchange: Literal["auto", "objects", "mailboxes"] = "auto"

    def min_agreement(self) -> float:
        """Signature agreement a candidate pair needs to become an edge."""
        return self.verify_threshold if self.verify_threshold is not None else self.threshold


class EvalSourceConfig(Section):
    """One eval set: a Parquet or JSONL file (or directory of them), local or
    any fsspec URL; `fields` are joined into each item's text."""

    name: str = ""
    uri: str = ""
    fields: list[str] = Field(default_factory=lambda: ["question"])
    id_field: str | None = None  # null: the row number


class DecontaminateConfig(Section):
    """Benchmark decontamination: word n-grams of eval items found in documents
    (stages/decontaminate.py)."""

    enabled: bool = False
    sources: list[EvalSourceConfig] = Field(default_factory=list)
    ngram_size: int = 13  # GPT-3 (Brown et al. 2020, appendix C)
    # Contaminated: at least min_matches distinct eval n-grams, or (when set)
    # at least this share of one eval item's n-grams.
    min_matches: int = 1
    min_item_share: float | None = None
    # N-grams in more eval items than this are boilerplate ("which of the
    # following"): ignored, and counted.
    max_item_frequency: int = 10
    # Items shorter than ngram_size words are matched whole; shorter than this, ignored.
    min_item_words: int = 4
    # drop: to rejected/; cut: remove each match plus cut_margin characters on
    # both sides, keep pieces of at least min_piece_chars, drop the document
    # if more than max_pieces remain or none does (text rows only).
    action: Literal["drop", "cut"] = "drop"
    cut_margin: int = 200
    min_piece_chars: int = 200
    max_pieces: int = 10
    # Post-training rows: the part searched (auto: the conversation).
    text: View = "auto"


PII_TYPES = ("email", "ipv4", "ipv6", "phone", "credit_card", "iban", "secret")


class PiiConfig(Section):
    """Personal data and secrets (stages/pii/): detected in one pass of a
    compiled multi-pattern engine, then checked (Luhn, IBAN checksum, ...)."""

    enabled: bool = False
    detect: list[str] = Field(default_factory=lambda: list(PII_TYPES))
    # Per type: redact (a typed placeholder), drop (rejected/, rule
    # pii_<type>) or count; types not listed are redacted.
    actions: dict[str, Literal["redact", "drop", "count"]] = Field(default_factory=dict)
    placeholders: dict[str, str] = Field(
        default_factory=lambda: {
            "email": "<EMAIL>", "ipv4": "<IP_ADDRESS>", "ipv6": "<IP_ADDRESS>",
            "phone": "<PHONE>", "credit_card": "<CREDIT_CARD>", "iban": "<IBAN>",
            "secret": "<SECRET>",
        }
    )  # fmt: skip
    # Never PII: these e-mail domains (and their subdomains), IP networks
    # (the documentation ranges by default) and exact values.
    allow_email_domains: list[str] = Field(
        default_factory=lambda: ["example.com", "example.org", "example.net"]
    )
    allow_networks: list[str] = Field(
        default_factory=lambda: [
            "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32",
        ]
    )  # fmt: skip
    allow_values: list[str] = Field(default_factory=list)
    # A document with more hits than this per 1,000 words is a list of
    # contacts: dropped (rule pii_density). Null: never.
    max_hits_per_1000_words: float | None = 20.0


class TokensConfig(Section):
    """Token counts (stages/tokens/): n_tokens per document, per stage and per
    group in the manifest; a mixture unit."""

    enabled: bool = True
    # A Hugging Face tokenizer.json (local path or URI): your model's, for
    # budgets. null: the small tokenizer shipped in the package.
    tokenizer: str | None = None


class MixtureConfig(Section):
    enabled: bool = False
    # Column whose values are the groups (source, language, domain, ...).
    group_column: str = "source"
    # Target share per group (normalized to sum 1); groups not listed are dropped.
    weights: dict[str, float] = Field(default_factory=dict)
    # tokens: the n_tokens of the tokens section (which must be on).
    unit: Literal["documents", "bytes", "words", "tokens"] = "documents"
    # Output size in units; null: the largest mix possible without upsampling.
    total: float | None = None
    # How many times a document may appear when a group is upsampled (1: never).
    max_repeats: int = 1
    seed: int = 0


class OutputConfig(Section):
    # Where the output goes; --output overrides it.
    uri: str | None = None
    # Target rows per output shard; bytes_per_shard, when set, takes precedence
    # and is converted to rows from the average size of the documents.
    rows_per_shard: int = 100_000
    bytes_per_shard: int | None = None
    compression: Literal["zstd", "snappy", "gzip", "lz4", "none"] = "zstd"
    # Copy the text of dropped documents into rejected/ (off: ids and reasons only).
    rejected_text: bool = False
    # A run holds a lease on its output (_staging/lease.json), renewed every
    # 30 s; another run is refused while it holds it. A lease not renewed for
    # this long (or whose process is gone, on the same host) is taken over.
    lease_timeout_seconds: float = 300.0
    # Nested subsets for data-scaling runs (steps/subsets.py): fractions of
    # the output in the mixture's unit, e.g. [0.25, 0.5, 1.0] writes
    # subsets/25/, subsets/50/, subsets/100/.
    subsets: list[float] = Field(default_factory=list)
    # Held-out splits by a hash of the duplicate cluster (steps/splits.py),
    # e.g. {train: 0.98, validation: 0.01, test: 0.01}: splits/<name>/ and a
    # `split` column.
    splits: dict[str, float] = Field(default_factory=dict)
    # The seed of the subset and split draws.
    seed: int = 0
    # report.html beside the manifest (job/report_html.py).
    report: bool = True


class StorageConfig(Section):
    """How s3:// (and other fsspec) URIs are opened; credentials otherwise come
    from the usual AWS environment variables, profile or instance role."""

    # An S3-compatible endpoint (MinIO, Ceph, R2, a local test server); null: AWS.
    endpoint_url: str | None = None
    region: str | None = None
    # Unsigned requests, for public buckets.
    anonymous: bool = False
    # Passed as-is to the fsspec filesystem of every non-local URI
    # (s3fs: profile, key, secret, client_kwargs, config_kwargs, ...).
    options: dict[str, Any] = Field(default_factory=dict)
    # Seconds the first request to a remote store may wait for an answer:
    # botocore and s3fs each retry a read timeout, so an endpoint that accepts
    # connections and never answers would otherwise hold the job for minutes.
    first_answer_seconds: float = 30


class JobConfig(Section):
    input: InputConfig = Field(default_factory=InputConfig)
    format: FormatConfig = Field(default_factory=FormatConfig)
    langid: LangIdConfig = Field(default_factory=LangIdConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontaminate: DecontaminateConfig = Field(default_factory=DecontaminateConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    tokens: TokensConfig = Field(default_factory=TokensConfig)
    consistency: ConsistencyConfig = Field(default_factory=ConsistencyConfig)
    mixture: MixtureConfig = Field(default_factory=MixtureConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


def job_uris(cfg: JobConfig, input_uri: str | None, output_uri: str | None) -> tuple[str, str]:
    """Input and output from the command line, else from the job spec."""
    input_uri = input_uri or cfg.input.uri
    output_uri = output_uri or cfg.output.uri
    if not input_uri or not output_uri:
        missing = "--input (or input.uri)" if not input_uri else "--output (or output.uri)"
        raise ConfigError(f"no {missing} given")
    return input_uri, output_uri


def load_config(path: str | Path | None) -> JobConfig:
    """Read a YAML job config; ``None`` gives the defaults, ``env:NAME`` the
    YAML text held by an environment variable (how `submit` ships a spec)."""
    if path is None:
        return JobConfig()
    if str(path).startswith(SPEC_ENV_PREFIX):
        name = str(path)[len(SPEC_ENV_PREFIX) :]
        if name not in os.environ:
            raise ConfigError(f"config {path}: environment variable {name} is not set")
        text = os.environ[name]
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    return config_from_dict(data or {}, source=str(path))


def config_from_dict(data: Any, source: str = "config") -> JobConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: 'top level' must be a mapping, got {_type_name(data)}")
    try:
        config = JobConfig.model_validate(data)
    except ValidationError as exc:
        raise _named(exc.errors()[0], source) from None
    _check_semantics(config, source)
    return config


# pydantic's error types -> what the key must be, in the words of YAML.
EXPECTED = {
    "bool_type": "true or false",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _named(error: Any, source: str) -> ConfigError:
    """One pydantic error as a ConfigError naming the dotted key."""
    loc, value = error["loc"], error.get("input")
    if error["type"] == "extra_forbidden":
        parent = _dotted(loc[:-1])
        fields = _section_at(loc[:-1]).model_fields
        allowed = ", ".join(sorted(info.alias or name for name, info in fields.items()))
        return ConfigError(
            f"{source}: unknown key '{_dotted(loc)}' (allowed in {parent or 'top level'}: "
            f"{allowed})"
        )
    key = _dotted(loc)
    if error["type"] == "literal_error":
        choices = error["ctx"]["expected"].replace(" or ", ", ")
        return ConfigError(f"{source}: '{key}' must be one of {choices}, got {value!r}")
    if error["type"] in EXPECTED:
        expected = EXPECTED[error["type"]]
        return ConfigError(
            f"{source}: '{key}' must be {expected}, got {_type_name(value)} {value!r}"
        )
    return ConfigError(f"{source}: '{key}': {error['msg']} (got {value!r})")


def _dotted(loc: tuple[Any, ...]) -> str:
    """('langid', 'languages', 1) -> langid.languages[1]; a mapping's bad key
    (pydantic's '[key]') -> the mapping, then (key ...)."""
    if loc and loc[-1] == "[key]":
        return f"{_dotted(loc[:-2])} (key {loc[-2]!r})"
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    return key.lstrip(".")


def _section_at(loc: tuple[Any, ...]) -> type[Section]:
    """The section class at a path of field names and list indexes."""
    section: Any = JobConfig
    for part in loc:
        if isinstance(part, str):
            annotation = section.model_fields[part].annotation
            args = getattr(annotation, "__args__", ())
            section = args[0] if args else annotation  # list[EvalSourceConfig]
    return section


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_semantics(config: JobConfig, source: str) -> None:
    def require(ok: bool, key: str, message: str) -> None:
        if not ok:
            raise ConfigError(f"{source}: '{key}' {message}")

    require(config.input.rows_per_task > 0, "input.rows_per_task", "must be positive")
    _check_format(config, require)
    _check_decontaminate(config, require)
    _check_pii(config, require)
    require(0.0 <= config.langid.min_score <= 1.0, "langid.min_score", "must be within [0, 1]")
    require(config.langid.max_chars > 0, "langid.max_chars", "must be positive")
    require(0.0 <= config.quality.min_score <= 1.0, "quality.min_score", "must be within [0, 1]")
    require(config.storage.first_answer_seconds > 0, "storage.first_answer_seconds",
            "must be positive")  # fmt: skip
    require(config.output.rows_per_shard > 0, "output.rows_per_shard", "must be positive")
    if config.output.bytes_per_shard is not None:
        require(config.output.bytes_per_shard > 0, "output.bytes_per_shard", "must be positive")
    for n in config.quality.gopher_repetition.top_ngram_max_chars_fraction:
        require(n >= 1, "quality.gopher_repetition.top_ngram_max_chars_fraction", "n must be >= 1")
    for n in config.quality.gopher_repetition.duplicate_ngram_max_chars_fraction:
        require(
            n >= 1, "quality.gopher_repetition.duplicate_ngram_max_chars_fraction", "n must be >= 1"
        )
    d = config.dedup
    require(0.0 < d.threshold <= 1.0, "dedup.threshold", "must be within (0, 1]")
    require(d.ngram_size >= 1, "dedup.ngram_size", "must be >= 1")
    require(d.char_ngram_size >= 1, "dedup.char_ngram_size", "must be >= 1")
    require(1 <= d.num_perm <= 1024, "dedup.num_perm", "must be within [1, 1024]")
    require((d.bands is None) == (d.rows is None), "dedup.bands", "and dedup.rows go together")
    if d.bands is not None and d.rows is not None:
        require(d.bands >= 1 and d.rows >= 1, "dedup.bands", "and dedup.rows must be >= 1")
        require(d.bands * d.rows <= d.num_perm, "dedup.bands", "x dedup.rows must be <= num_perm")
    if d.verify_threshold is not None:
        require(0.0 < d.verify_threshold <= 1.0, "dedup.verify_threshold", "must be within (0, 1]")
    require(d.all_pairs_limit >= 2, "dedup.all_pairs_limit", "must be >= 2")
    require(bool(d.keep), "dedup.keep", "must name at least one column")
    if d.partitions is not None:
        require(d.partitions >= 1, "dedup.partitions", "must be >= 1")
    m = config.mixture
    if m.enabled:
        require(bool(m.weights), "mixture.weights", "must name at least one group")
        require(all(w >= 0 for w in m.weights.values()), "mixture.weights", "must be >= 0")
        require(sum(m.weights.values()) > 0, "mixture.weights", "must not all be 0")
    require(m.max_repeats >= 1, "mixture.max_repeats", "must be >= 1")
    if m.total is not None:
        require(m.total > 0, "mixture.total", "must be positive")
    require(
        m.unit != "tokens" or config.tokens.enabled, "mixture.unit",
        "is tokens, which needs the tokens section on (tokens.enabled: true)",
    )  # fmt: skip
    _check_partitions(config.output, require)


def _check_partitions(out: OutputConfig, require: Any) -> None:
    """output.subsets and output.splits."""
    fractions = out.subsets
    require(
        all(isinstance(f, (int, float)) and 0 < f <= 1 for f in fractions), "output.subsets",
        "must be fractions within (0, 1], such as [0.25, 0.5, 1.0]",
    )  # fmt: skip
    require(len(set(fractions)) == len(fractions), "output.subsets", "repeats a fraction")
    names = {subset_name(f) for f in fractions}
    require(len(names) == len(fractions), "output.subsets", "has two fractions of one percent")
    if out.splits:
        require(
            all(re.fullmatch(r"[A-Za-z0-9_-]+", n) for n in out.splits), "output.splits",
            "names must be letters, digits, - or _ (they become directories)",
        )  # fmt: skip
        require(all(v > 0 for v in out.splits.values()), "output.splits", "must be > 0")
        total = sum(out.splits.values())
        require(abs(total - 1) < 1e-9, "output.splits", f"must sum to 1 (they sum to {total:g})")


def subset_name(fraction: float) -> str:
    """Directory name of a subset: its percentage (25, 12.5)."""
    return f"{100 * fraction:g}"


def _check_format(config: JobConfig, require: Any) -> None:
    fmt = config.input.format
    post_training = fmt != "text"
    for key, value in (
        ("langid.text", config.langid.text),
        ("quality.text", config.quality.text),
        ("dedup.key", config.dedup.key),
    ):
        require(
            value == "auto" or post_training, key,
            "chooses a part of post-training rows; text rows have only their text "
            "(set input.format, or leave it at auto)",
        )  # fmt: skip
    if post_training:
        problem = formats.mapping_problem(config.input)
        require(problem is None, "input.fields", problem or "")
        require(
            not config.quality.c4.clean_text, "quality.c4.clean_text",
            "rewrites text in place, which post-training rows cannot take; set it false",
        )  # fmt: skip
    f = config.format
    require(f.truncated_min_words >= 0, "format.truncated_min_words", "must be >= 0")
    if f.min_score is not None and f.max_score is not None:
        require(f.min_score <= f.max_score, "format.min_score", "must be <= format.max_score")
    require(config.consistency.max_score_gap >= 0, "consistency.max_score_gap", "must be >= 0")
    seen: dict[str, str] = {}
    for kind, names in f.roles.items():
        require(
            kind in formats.ROLE_KINDS, f"format.roles.{kind}",
            f"is not a role kind (kinds: {', '.join(formats.ROLE_KINDS)})",
        )  # fmt: skip
        for name in names:
            require(
                name not in seen, f"format.roles.{kind}",
                f"repeats role name '{name}' (also under {seen.get(name)})",
            )  # fmt: skip
            seen[name] = kind


def _check_decontaminate(config: JobConfig, require: Any) -> None:
    d = config.decontaminate
    if config.input.format == "text":
        require(d.text == "auto", "decontaminate.text", "chooses a part of post-training rows")
    if not d.enabled:
        return
    require(bool(d.sources), "decontaminate.sources", "must list at least one eval set")
    names = [s.name for s in d.sources]
    for i, source in enumerate(d.sources):
        key = f"decontaminate.sources[{i}]"
        require(bool(source.name), f"{key}.name", "must be set")
        require(names.count(source.name) == 1, f"{key}.name", f"repeats '{source.name}'")
        require(bool(source.uri), f"{key}.uri", "must be set")
        require(bool(source.fields), f"{key}.fields", "must name at least one field")
    require(d.ngram_size >= 1, "decontaminate.ngram_size", "must be >= 1")
    require(d.min_matches >= 1, "decontaminate.min_matches", "must be >= 1")
    if d.min_item_share is not None:
        require(0 < d.min_item_share <= 1, "decontaminate.min_item_share", "must be within (0, 1]")
    require(d.max_item_frequency >= 1, "decontaminate.max_item_frequency", "must be >= 1")
    require(d.min_item_words >= 1, "decontaminate.min_item_words", "must be >= 1")
    require(d.cut_margin >= 0, "decontaminate.cut_margin", "must be >= 0")
    require(d.max_pieces >= 1, "decontaminate.max_pieces", "must be >= 1")
    require(
        d.action == "drop" or config.input.format == "text", "decontaminate.action",
        "cut rewrites text in place, which post-training rows cannot take; use drop",
    )  # fmt: skip


def _check_pii(config: JobConfig, require: Any) -> None:
    p = config.pii
    for name in p.detect:
        require(name in PII_TYPES, "pii.detect", f"has '{name}' (types: {', '.join(PII_TYPES)})")
    for name in [*p.actions, *p.placeholders]:
        require(name in PII_TYPES, f"pii.actions.{name}", f"is not a type ({', '.join(PII_TYPES)})")
    if p.enabled and config.input.format != "text":
        redacting = [t for t in p.detect if p.actions.get(t, "redact") == "redact"]
        require(
            not redacting, "pii.actions",
            f"redact ({', '.join(redacting)}) rewrites text in place, which post-training rows "
            "cannot take yet; set drop or count for each detected type",
        )  # fmt: skip
    if p.max_hits_per_1000_words is not None:
        require(p.max_hits_per_1000_words > 0, "pii.max_hits_per_1000_words", "must be positive")
