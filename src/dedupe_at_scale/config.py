"""The job configuration: loaded from YAML, assembled from the sections
declared beside their code, and validated strictly.

Every section is a pydantic model in strict mode (sections.py); an unknown
key or a value of the wrong type is a `ConfigError` that names the dotted
key (``quality.gopher_quality.min_words``) in one line, and then each
section's own `check` runs. Defaults make a sensible run with no config file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field, ValidationError, model_validator

from dedupe_at_scale.io.inputs import InputConfig
from dedupe_at_scale.io.output import OutputConfig
from dedupe_at_scale.io.storage import StorageConfig
from dedupe_at_scale.sections import ConfigError, Section, View
from dedupe_at_scale.stages.decontaminate import DecontaminateConfig
from dedupe_at_scale.stages.format import FormatConfig
from dedupe_at_scale.stages.langid import LangIdConfig
from dedupe_at_scale.stages.pii.config import PiiConfig
from dedupe_at_scale.stages.quality.config import QualityConfig
from dedupe_at_scale.stages.tokens.config import TokensConfig
from dedupe_at_scale.steps.consistency import ConsistencyConfig
from dedupe_at_scale.steps.dedup.config import DedupConfig
from dedupe_at_scale.steps.mixture import MixtureConfig

__all__ = ["ConfigError", "JobConfig", "Section", "View", "config_from_dict", "load_config"]


SPEC_ENV_PREFIX = "env:"


class JobConfig(Section):
    """The whole job config: a field per section, in the order the job uses
    them. Each section is declared (with its checks) in the module it
    configures; the imports above say which. A registered stage or step may
    bring a section of its own (its `section` and `Config`): it is added
    after these, as cfg.<section>."""

    # Extra keys are the registered sections only: config_from_dict refuses others.
    model_config = ConfigDict(extra="allow", strict=True)

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

    @model_validator(mode="after")
    def _registered_sections(self) -> JobConfig:
        """Defaults for the registered sections the data did not name."""
        given = self.__pydantic_extra__ or {}
        for name, section in registered_sections().items():
            if name not in given:
                setattr(self, name, section())
        return self

    def sections(self) -> dict[str, Section]:
        """Every section by name: JobConfig's own, then the registered ones."""
        names = [*type(self).model_fields, *(self.__pydantic_extra__ or {})]
        return {name: getattr(self, name) for name in names}

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


def registered_sections() -> dict[str, type[Section]]:
    """Sections the registered stages and steps bring beyond JobConfig's own."""
    from dedupe_at_scale.stages import REGISTRY as STAGES
    from dedupe_at_scale.steps import REGISTRY as STEPS

    return {
        unit.section: unit.Config
        for unit in [*STAGES, *STEPS]
        if unit.section and unit.Config is not None and unit.section not in JobConfig.model_fields
    }


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
        return config_from_dict({})
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
    spec_dir = None if str(path).startswith(SPEC_ENV_PREFIX) else Path(path).resolve().parent
    return config_from_dict(data or {}, source=str(path), spec_dir=spec_dir)


def config_from_dict(
    data: Any, source: str = "config", spec_dir: str | Path | None = None
) -> JobConfig:
    """The job config from parsed YAML; relative local paths in it are
    resolved against `spec_dir` when given (the spec file's folder)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: 'top level' must be a mapping, got {_type_name(data)}")
    registered = registered_sections()
    known = [*JobConfig.model_fields, *registered]
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key '{unknown[0]}' (allowed in top level: "
            f"{', '.join(sorted(known))})"
        )
    data = dict(data)
    context = {"spec_dir": None if spec_dir is None else str(spec_dir)}
    try:
        for name, section in registered.items():
            try:
                data[name] = section.model_validate(
                    {} if data.get(name) is None else data[name], context=context
                )
            except ValidationError as exc:
                error = exc.errors()[0]
                raise _named({**error, "loc": (name, *error["loc"])}, source) from None
        config = JobConfig.model_validate(data, context=context)
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
        if section is JobConfig and part not in JobConfig.model_fields:
            section = registered_sections()[part]
        elif isinstance(part, str):
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

    for section in config.sections().values():
        section.check(config, require)
