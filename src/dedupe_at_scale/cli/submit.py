"""`dedupe-at-scale submit`: run the job on a Ray cluster through the Ray Jobs API.

The spec is validated here first. The job's runtime environment ships this
package's code (py_modules) and the spec's text (an environment variable; a
working_dir was seen deleted under a running job's driver), so the cluster
runs exactly the code and config of this checkout; the cluster's image
provides the dependencies (the repo's Dockerfile, or `--pip` for a quick try).

Everything in a runtime environment is readable by anyone who can read the
Jobs API or the dashboard, so no credential may go there. Refused: secrets
in `storage.options`, a `--env` name that looks like a credential, and any
value of the parsed spec, of a `--env` variable, of the URIs or of `--pip`
that holds a password in a URL (`https://user:pw@host`) or a credential of a
shape the PII stage knows (AWS keys, GitHub, Slack, Google and Stripe
tokens, private keys, JWTs). The spec ships parsed and normalized, never as
the file's text, so its comments stay behind. Jobs get credentials the way
the cluster's nodes do (instance role, IRSA, the nodes' environment).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from dedupe_at_scale.config import SPEC_ENV_PREFIX, ConfigError, JobConfig, job_uris, load_config
from dedupe_at_scale.io.storage import is_secret_name, protocol_of, secret_options
from dedupe_at_scale.stages.pii.detectors import DETECTORS

SPEC_VARIABLE = "DDS_JOB_SPEC"
PASSWORD_IN_URL = re.compile(r"://([^/@\s:]+):[^/@\s]+@")
CREDENTIAL_SHAPES = [d.regex for d in DETECTORS if d.kind == "secret"]


class SubmitError(RuntimeError):
    """The Jobs API cannot be reached or refused the job."""


def submit_job(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    input_uri, output_uri = (cluster_uri(u) for u in job_uris(cfg, args.input, args.output))
    refuse_secrets(cfg, args.env, [input_uri, output_uri, *args.pip])
    missing = [name for name in args.env if name not in os.environ]
    if missing:
        raise ConfigError(f"--env {missing[0]}: not set in this environment")

    spec = shipped_spec(cfg) if args.config else ""  # none: the defaults, as with `run`
    runtime_env = build_runtime_env(spec, args.env, args.pip)
    entrypoint = build_entrypoint(input_uri, output_uri, args.overwrite)
    client = _client(args.address)
    try:
        job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
    except Exception as exc:
        raise SubmitError(f"{args.address} refused the job: {exc}") from exc

    print(f"submitted {job_id} to {args.address}: {input_uri} -> {output_uri}", flush=True)
    if not args.wait:
        print(f"follow it with: ray job logs --address {args.address} --follow {job_id}")
        return 0
    asyncio.run(_stream_logs(client, job_id))
    info = client.get_job_info(job_id)
    status = str(getattr(info.status, "value", info.status))
    print(f"job {job_id}: {status}" + (f" ({info.message})" if info.message else ""))
    return 0 if status == "SUCCEEDED" else 1


def refuse_secrets(cfg: JobConfig, env_names: list[str], urls: list[str]) -> None:
    """A submitted job's spec, environment variables, entrypoint and pip list
    are part of what the Jobs API and the dashboard show to anyone who can
    reach them."""
    exposed = secret_options(cfg.storage.options) + [
        f"--env {name}" for name in env_names if is_secret_name(name)
    ]
    values = [(f"--env {name}", os.environ.get(name, "")) for name in env_names]
    values += [("", url) for url in urls] + list(_strings(cfg.to_dict()))
    for where, value in values:
        exposed += [f"{what}{' in ' + where if where else ''}" for what in _credentials_in(value)]
    if exposed:
        raise ConfigError(
            f"{', '.join(dict.fromkeys(exposed))}: a credential would be readable by anyone "
            "with access to the cluster's Jobs API or dashboard (a job's spec and --env values "
            "are part of its runtime environment); give the cluster its own credentials "
            "instead (instance role, IRSA, or AWS_* variables in the nodes' environment; "
            "see cluster/README.md)"
        )


def _credentials_in(value: str) -> list[str]:
    """What in one value would expose a credential, said without it."""
    found = [f"the password in {_hide_password(value)}"] if PASSWORD_IN_URL.search(value) else []
    for shape in CREDENTIAL_SHAPES:
        match = shape.search(value)
        if match:
            found.append(f"a credential ({match.group()[:4]}...)")
    return found


def _strings(tree: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in the parsed spec, with its dotted key."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _strings(value, f"{path}[{i}]")
    elif isinstance(tree, str):
        yield path, tree


def shipped_spec(cfg: JobConfig) -> str:
    """The parsed, normalized spec as YAML: every key with its value, and
    none of the file's comments (they could hold anything)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def _hide_password(url: str) -> str:
    return PASSWORD_IN_URL.sub(r"://\1:***@", url)


def cluster_uri(uri: str) -> str:
    """Local paths made absolute: the job's working directory on the cluster
    is a temporary copy, so relative paths would land there."""
    if protocol_of(uri) in ("file", "local") and "://" not in uri:
        return os.path.abspath(uri)
    return uri


def package_dir() -> str:
    """This checkout's dedupe_at_scale package, for a runtime env's py_modules."""
    return str(Path(__file__).resolve().parents[1])


def build_runtime_env(spec: str, env_names: list[str], pip: list[str]) -> dict:
    env_vars = {name: os.environ[name] for name in env_names}
    env_vars.update({SPEC_VARIABLE: spec, "RAY_DATA_DISABLE_PROGRESS_BARS": "1"})
    runtime_env: dict = {"py_modules": [package_dir()], "env_vars": env_vars}
    if pip:
        runtime_env["pip"] = list(pip)
    return runtime_env


def build_entrypoint(input_uri: str, output_uri: str, overwrite: bool) -> str:
    command = [
        "python", "-m", "dedupe_at_scale.cli", "run", "--address", "auto",
        "--config", SPEC_ENV_PREFIX + SPEC_VARIABLE, "--input", input_uri, "--output", output_uri, "--quiet",
    ]  # fmt: skip
    return shlex.join(command + (["--overwrite"] if overwrite else []))


def _client(address: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as exc:
        raise SubmitError(
            f"cannot reach the Ray Jobs API at {address}: {exc} "
            "(the dashboard address, http://HOST:8265; needs ray[default] on the head)"
        ) from exc


async def _stream_logs(client, job_id: str) -> None:
    async for lines in client.tail_job_logs(job_id):
        sys.stdout.write(lines)
        sys.stdout.flush()
