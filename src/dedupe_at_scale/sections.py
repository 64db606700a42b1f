"""The base of every config section, and the error a bad config raises.

A section is a pydantic model in strict mode, declared beside the code it
configures; config.py assembles them into the job's config. This module
imports nothing of the package, so any module may declare a section.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo, model_validator


class ConfigError(ValueError):
    """The job config is invalid; the message names the offending key."""


class Section(BaseModel):
    """A config section. Strict: `true` is not "yes", 2 is not 2.5 nor "2"
    (an integer is a number, though); an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_subsections(cls, data: Any) -> Any:
        """A subsection left empty in YAML (`quality:` with its keys
        commented out) is null: it means the defaults."""
        if not isinstance(data, dict):
            return data
        sections = {
            name
            for name, info in cls.model_fields.items()
            if isinstance(info.annotation, type) and issubclass(info.annotation, Section)
        }
        return {k: {} if v is None and k in sections else v for k, v in data.items()}

    def check(self, job: Any, require: Require) -> None:
        """Rules the types cannot say (ranges, keys that go together, other
        sections' settings), each as `require(ok, "dotted.key", "must ...")`;
        `job` is the whole config."""


# require(ok, key, message): a ConfigError "'key' message" unless ok.
Require = Callable[[bool, str, str], None]


def check_view(job: Any, require: Require, key: str, value: str) -> None:
    """A section's choice of a part of post-training rows (langid.text,
    dedup.key, ...) means nothing for text rows."""
    require(
        value == "auto" or job.input.format != "text", key,
        "chooses a part of post-training rows; text rows have only their text "
        "(set input.format, or leave it at auto)",
    )  # fmt: skip


# Which text of a post-training row a stage reads (formats.py renders them);
# "auto" picks the section's default, and text rows only have their text.
View = Literal["auto", "prompt", "response", "prompt+response", "conversation"]


def _relative_to_spec(value: str | None, info: ValidationInfo) -> str | None:
    """A relative local path in a spec file means a path beside the spec, so
    a spec works from any directory (config.load_config gives its folder)."""
    spec_dir = (info.context or {}).get("spec_dir")
    if not value or spec_dir is None or "://" in value or os.path.isabs(value):
        return value
    return os.path.normpath(os.path.join(spec_dir, value))


# A path or URI field of a section: relative local paths are resolved against
# the spec file's folder (not the directory the command runs in).
SpecPath = Annotated[str, AfterValidator(_relative_to_spec)]
