"""Planning: everything checked and decided before the job's Ray work starts
(config, output, every input footer, the read units, what an interrupted run
left that can be kept), and what the stages share, prepared on the driver."""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dedupe_at_scale import __version__
from dedupe_at_scale.io.inputs import (
    FOOTERS_IN_TASKS,
    InputError,
    InputFile,
    ReadUnit,
    inspect_files,
    plan_units,
)
from dedupe_at_scale.io.lease import Lease
from dedupe_at_scale.io.output import OutputLayout, Resume
from dedupe_at_scale.io.schema import InputSchema, unify_input_schema
from dedupe_at_scale.io.storage import (
    Location,
    StorageError,
    describe_error,
    list_input_files,
    overlaps,
    probe,
    resolve,
)
from dedupe_at_scale.job.write import (
    added_columns,
)
from dedupe_at_scale.sections import ConfigError
from dedupe_at_scale.stages import enabled_stages
from dedupe_at_scale.steps import published_by_steps

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.io.storage import StorageConfig

log = logging.getLogger(__name__)


@dataclass
class JobPlan:
    """Everything checked before Ray starts: config, output, input footers."""

    input_uri: str
    output_uri: str
    cfg: JobConfig
    source: Location
    layout: OutputLayout
    files: list[InputFile]
    units: list[ReadUnit]
    planning_seconds: float
    resume: Resume = "none"
    input_schema: InputSchema | None = None
    lease: Lease | None = None  # held from planning until execute() ends
    # Built for the stages before Ray starts (the decontamination index).
    shared: dict[str, Any] = field(default_factory=dict)
    prepare_seconds: float = 0.0
    # Paths under the input that are not read (not Parquet, _temporary/, ...), with why.
    skipped: dict[str, str] = field(default_factory=dict)


def plan_job(
    input_uri: str, output_uri: str, cfg: JobConfig, overwrite: bool = False,
    connect: Callable[[], None] | None = None,
) -> JobPlan:  # fmt: skip
    """Check the output and every input footer; needs no Ray. Decides what an
    earlier, interrupted run of the same job left that can be kept. With
    more than FOOTERS_IN_TASKS input files, `connect` (joining Ray) is
    called first, so that the footers are read in Ray tasks."""
    started = time.time()
    source = resolve(input_uri, cfg.storage)
    output = resolve(output_uri, cfg.storage)
    if overlaps(source, output):
        raise StorageError(
            f"output {output_uri} overlaps the input {input_uri}: the job would read its own "
            "output or clear its input; choose an output outside the input"
        )
    layout = OutputLayout(output, published_by_steps())
    probe(output, cfg.storage.first_answer_seconds)
    on_storage(output_uri, lambda: layout.check(overwrite))
    probe(source, cfg.storage.first_answer_seconds)
    listing = list_input_files(source)
    if connect is not None and len(listing.files) > FOOTERS_IN_TASKS:
        connect()
    files = inspect_files(source, listing, cfg.input)
    input_schema = unify_input_schema(files, cfg.input, added_columns(cfg))
    units = plan_units(files, cfg.input.rows_per_task, cfg.input.min_rows_per_task)
    prepare_started = time.time()
    shared = prepare(cfg)
    prepare_seconds = round(time.time() - prepare_started, 3)
    # One writer per output: taken before anything under it changes.
    lease = Lease(output, layout.lease, cfg.output.lease_timeout_seconds)
    on_storage(output_uri, lease.acquire)
    try:
        resume = on_storage(
            output_uri,
            lambda: layout.prepare(
                overwrite, fingerprint(input_uri, output_uri, cfg, files, shared)
            ),
        )
    except BaseException:
        lease.release()
        raise
    return JobPlan(
        input_uri, output_uri, cfg, source, layout, files, units, time.time() - started, resume,
        input_schema, lease, shared, prepare_seconds, listing.skipped,
    )  # fmt: skip


def fingerprint(
    input_uri: str, output_uri: str, cfg: JobConfig, files: list[InputFile],
    shared: dict[str, Any] | None = None,
) -> str:  # fmt: skip
    """What a resumed run must share with the interrupted one: also the
    content of what the stages read from files (a tokenizer, a block list:
    a file changed at the same path counts otherwise), by their digests."""
    key = {
        "input": input_uri,
        "output": output_uri,
        "config": cfg.to_dict(),
        "files": [(f.relpath, f.size_bytes, f.num_rows, f.problem) for f in files],
        "version": __version__,
        "resources": {k: v.digest for k, v in (shared or {}).items() if hasattr(v, "digest")},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def on_storage(uri: str, action: Callable[[], Any]) -> Any:
    """Run a storage action; a failure names the URI (botocore and aiohttp
    errors are not OSErrors)."""
    try:
        return action()
    except (StorageError, InputError, ConfigError):
        raise
    except Exception as exc:
        raise StorageError(f"cannot use output {uri}: {describe_error(exc)}") from exc


class StorageFiles:
    """The job's storage as the stages' prepare() reads it."""

    def __init__(self, storage: StorageConfig):
        self.storage = storage

    def read_text(self, uri: str) -> str:
        data = self.read_bytes(uri)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise OSError(f"cannot read {uri}: {exc}") from exc

    def read_bytes(self, uri: str) -> bytes:
        try:
            location = resolve(uri, self.storage)
            with location.fs.open(location.path, "rb") as handle:
                return handle.read()
        except Exception as exc:
            raise OSError(f"cannot read {uri}: {describe_error(exc)}") from exc

    def find(self, uri: str) -> list[str] | None:
        try:
            location = resolve(uri, self.storage)
            if location.fs.isdir(location.path):
                found = location.fs.find(location.path)
            elif location.fs.isfile(location.path):
                found = [location.path]
            else:
                return None
        except Exception as exc:
            raise OSError(f"cannot list {uri}: {describe_error(exc)}") from exc
        return sorted(location.display(p) for p in found)

    def list_dir(self, uri: str) -> list[str]:
        try:
            location = resolve(uri, self.storage)
            found = location.fs.ls(location.path, detail=False)
        except Exception as exc:
            raise OSError(f"cannot list {uri}: {describe_error(exc)}") from exc
        return [posixpath.basename(str(p).rstrip("/")) for p in found]


def prepare(cfg: JobConfig) -> dict[str, Any]:
    """What the stages share, built once on the driver by each enabled
    stage's prepare() (the checked tokenizer, the URL filter's lists, the
    decontamination index)."""
    shared: dict[str, Any] = {}
    files = StorageFiles(cfg.storage)
    for stage in enabled_stages(cfg):
        shared.update(stage.prepare(cfg, files))
    return shared
