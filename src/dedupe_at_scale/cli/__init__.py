"""Command line: `dedupe-at-scale run | generate | report | trace | audit | submit | train-quality
| compile`."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Sequence
from typing import Any

from dedupe_at_scale import __version__
from dedupe_at_scale.cli import interrupts
from dedupe_at_scale.cli.interrupts import GATE
from dedupe_at_scale.cli.ray_cluster import (
    CONNECT_TIMEOUT,
    ClusterError,
    check_reachable,
    connect,
    refuse_ray_client,
    stop_own_ray,
)
from dedupe_at_scale.cli.submit import SubmitError
from dedupe_at_scale.config import ConfigError, JobConfig, job_uris, load_config
from dedupe_at_scale.io.inputs import InputError
from dedupe_at_scale.io.mailbox import MailboxDiskError
from dedupe_at_scale.io.storage import StorageError
from dedupe_at_scale.job.accounting import AccountingError
from dedupe_at_scale.stages.base import ResourceError
from dedupe_at_scale.stages.langid import ModelError


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what the user should know about the output."""


# OutputExistsError is a StorageError.
KNOWN_ERRORS = (
    ConfigError, InputError, StorageError, ModelError, ResourceError, AccountingError, SubmitError,
    ClusterError, MailboxDiskError,
)  # fmt: skip


class _ShowDefaults(argparse.HelpFormatter):
    """Help that ends with the default where there is one to show and the
    text does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, []) and action.default is not False
        if not shown or action.default == argparse.SUPPRESS or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dedupe-at-scale",
        description="Curate LLM training data on Ray Data: language ID, quality rules, "
        "deduplication and mixtures over sharded Parquet.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # Every subcommand's --help shows the defaults.
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser = functools.partial(sub.add_parser, formatter_class=_ShowDefaults)

    run = sub.add_parser("run", help="run the curation job")
    run.add_argument(
        "--input", help="directory, file or glob of Parquet shards (default: input.uri)"
    )
    run.add_argument("--output", help="output directory (default: output.uri)")
    run.add_argument("--config", help="YAML job config (defaults apply without one)")
    run.add_argument(
        "--address",
        help="Ray cluster to join from one of its nodes ('auto' or HOST:PORT); default starts "
        "a local Ray. From elsewhere use `submit` (Ray Data does not run over Ray Client, ray://)",
    )
    run.add_argument(
        "--connect-timeout", type=float, default=CONNECT_TIMEOUT, metavar="SECONDS",
        help="give up on an --address that does not answer within this time",
    )  # fmt: skip
    run.add_argument("--num-cpus", type=int, help="CPUs for a local Ray (default: all cores)")
    run.add_argument("--overwrite", action="store_true", help="replace a complete output")
    run.add_argument(
        "--quiet", action="store_true", help="no progress output (the summary is still printed)"
    )

    train = sub.add_parser(
        "train-quality", help="train a fastText quality classifier (positives vs negatives)"
    )
    train.add_argument("--positive", required=True, help="Parquet of high-quality reference text")
    train.add_argument("--negative", required=True, help="Parquet of raw text")
    train.add_argument("--output", required=True, help="model file to write (.bin)")
    train.add_argument("--text-column", default="text", help="column holding the text")
    train.add_argument("--holdout", type=float, default=0.1, help="share held out for evaluation")
    train.add_argument("--epoch", type=int, default=5, help="passes over the training text")
    train.add_argument("--seed", type=int, default=0, help="seed of the holdout split")
    train.add_argument("--dim", type=int, default=64, help="vector size")
    train.add_argument("--bucket", type=int, default=500_000, help="hashed bigram buckets")

    submit = sub.add_parser(
        "submit", help="submit the job to a Ray cluster through the Ray Jobs API"
    )
    submit.add_argument(
        "--address", required=True, help="Jobs API (dashboard) address, http://HOST:8265"
    )
    submit.add_argument("--config", help="YAML job spec (jobs/*.yaml); defaults apply without one")
    submit.add_argument("--input", help="input URI (default: the spec's input.uri)")
    submit.add_argument("--output", help="output URI (default: the spec's output.uri)")
    submit.add_argument("--overwrite", action="store_true", help="replace a complete output")
    submit.add_argument("--wait", action="store_true", help="stream the logs until the job ends")
    submit.add_argument(
        "--env", action="append", default=[], metavar="NAME",
        help="forward this environment variable to the job (e.g. AWS_PROFILE, AWS_REGION); "
        "its value is readable through the Jobs API, so credential names are refused; repeatable",
    )  # fmt: skip
    submit.add_argument(
        "--pip", action="append", default=[], metavar="REQUIREMENT",
        help="also pip-install this on the cluster for the job (default: none; the "
        "cluster's image is expected to hold the dependencies)",
    )  # fmt: skip

    _on_output(sub, "report", "build OUT/report.html again from an output's manifest.json and "
               "report.json")  # fmt: skip
    trace = _on_output(sub, "trace", "one document's way through a finished run: source, "
                       "stages, duplicates, copies, split, subsets")  # fmt: skip
    trace.add_argument("id", help="the document's id (as in data/ or rejected/)")
    audit = _on_output(sub, "audit", "check a sample of the removed near duplicates against "
                       "their kept members: exact Jaccard similarity, share above "
                       "dedup.threshold")  # fmt: skip
    audit.add_argument("--sample", type=int, default=200, help="removed near duplicates to check")
    audit.add_argument("--seed", type=int, default=0, help="same seed, same sample")

    gen = sub.add_parser("generate", help="write the built-in multilingual sample corpus")
    gen.add_argument("--docs", type=int, default=6000, help="documents (or rows) to write")
    gen.add_argument("--shards", type=int, default=8, help="Parquet files to spread them over")
    gen.add_argument("--output", required=True, help="directory to write the shards to")
    gen.add_argument("--seed", type=int, default=0, help="same seed, same corpus")
    gen.add_argument(
        "--format", default="text",
        choices=["text", "instruction", "chat", "preference", "reward"],
        help="pre-training text (default) or a post-training sample with planted problems",
    )  # fmt: skip
    gen.add_argument(
        "--evals", metavar="DIR",
        help="also write an eval set to DIR/quiz.parquet and plant its items (1%% of the "
        "documents) and PII (2%%) into the text sample, recorded in gt_eval_item and gt_pii",
    )  # fmt: skip
    gen.add_argument(
        "--streaming", action="store_true",
        help="text of any size for scaling runs, written shard by shard on every core in "
        "bounded memory; unrelated documents share almost no shingles (docs/sample.md)",
    )  # fmt: skip
    sub.add_parser(
        "compile", help="compile the job's numba kernels into numba's cache, once after "
        "installing, so that a first job's workers do not each compile them",
    )  # fmt: skip
    return parser


def _on_output(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """A command that reads a finished output: its URI, and the config
    whose storage section opens it."""
    command = sub.add_parser(name, help=help_text)
    command.add_argument("output", help="the job's output directory or URI (s3://...)")
    command.add_argument("--config", help="YAML job config whose storage section opens the URI")
    return command


def console() -> None:
    """The process's entry point (the console script, `python -m`): main()
    with the Ctrl-C handler installed for good. main() puts back the handler
    it found when it returns; were that Python's own, a Ctrl-C landing before
    the interpreter exits would print a traceback after the last line."""
    interrupts.install()
    sys.exit(main())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    restore_interrupts = interrupts.install()
    try:
        if args.command == "generate":
            return _generate(args)
        if args.command == "train-quality":
            return _train_quality(args)
        if args.command == "report":
            return _report(args)
        if args.command == "trace":
            return _trace(args)
        if args.command == "audit":
            from dedupe_at_scale.job.id_index import shard_finder
            from dedupe_at_scale.steps.dedup.audit import audit

            storage = load_config(args.config).storage
            print(audit(args.output, args.sample, args.seed, storage, finder=shard_finder))
            return 0
        if args.command == "compile":
            from dedupe_at_scale.cli.compile_kernels import compile_kernels, describe

            print(describe(compile_kernels(JobConfig())))
            return 0
        if args.command == "submit":
            from dedupe_at_scale.cli.submit import submit_job

            return submit_job(args)
        return _run(args)
    except KeyboardInterrupt as interrupt:
        GATE.open = False
        if isinstance(interrupt, Interrupted):
            message = str(interrupt)
        elif args.command == "run":
            message = (
                "stopped (interrupted): nothing was published; run the same command again to "
                "resume (the read units already staged are kept)"
            )
        else:
            message = "stopped (interrupted)"
        print(message, file=sys.stderr)
        return 130
    except Exception as exc:  # report known problems plainly, re-raise bugs
        GATE.open = False
        known = find_known_error(exc)
        if known is None:
            raise
        # Ray Data appends its retry advice to a task's error on new lines.
        message = str(known).split("\n", 1)[0]
        print(f"error: {message}{_ray_log_hint(exc, known)}", file=sys.stderr)
        return 2 if isinstance(known, ConfigError) else 1
    finally:
        GATE.open = False  # first: a Ctrl-C from here on would only cut the teardown short
        stop_own_ray()
        restore_interrupts()


def _ray_log_hint(exc: BaseException, known: BaseException) -> str:
    """Where Ray's own account of a failed task went, when the error came
    out of one (its tracebacks are kept off the terminal)."""
    if known is exc:
        return ""
    try:
        from ray.data._internal.logging import get_log_directory

        directory = get_log_directory()
    except Exception:  # Ray never started
        return ""
    return f" [Ray's log: {directory}/ray-data.log]" if directory else ""


def _generate(args: argparse.Namespace) -> int:
    from dedupe_at_scale.sample import generate_sample

    if args.streaming:
        if args.format != "text" or args.evals:
            raise ConfigError("--streaming writes pre-training text only, without --evals")
        from dedupe_at_scale.sample.streaming import generate_streaming

        processes = os.cpu_count() or 1
        paths = generate_streaming(args.output, args.docs, args.shards, args.seed, processes)
    elif args.format == "text":
        paths = generate_sample(args.output, docs=args.docs, shards=args.shards, seed=args.seed)
        if args.evals:
            from dedupe_at_scale.sample.compliance import plant

            plant(args.output, args.evals, seed=args.seed)
            print(f"wrote 1000 eval items to {args.evals}/quiz.parquet; planted them and PII")
    else:
        from dedupe_at_scale.sample.posttraining import generate_posttraining

        paths = generate_posttraining(args.output, args.format, args.docs, args.shards, args.seed)
    what = "documents" if args.format == "text" else f"{args.format} rows"
    print(f"wrote {args.docs} {what} in {len(paths)} shards to {args.output}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from dedupe_at_scale.job.report_html import rebuild_report

    cfg = load_config(args.config)
    print(f"wrote {rebuild_report(args.output, cfg.storage)}")
    return 0


def _trace(args: argparse.Namespace) -> int:
    from dedupe_at_scale.job.trace import trace

    print(trace(args.output, args.id, load_config(args.config).storage))
    return 0


def _train_quality(args: argparse.Namespace) -> int:
    from dedupe_at_scale.cli.train_quality import train_quality_model

    report = train_quality_model(
        args.positive, args.negative, args.output, text_column=args.text_column,
        holdout=args.holdout, seed=args.seed, epoch=args.epoch, dim=args.dim, bucket=args.bucket,
    )  # fmt: skip
    print(report)
    print(f"model written to {args.output}; use it with quality.model in a job config")
    return 0


def _run(args: argparse.Namespace) -> int:
    from dedupe_at_scale.job.pipeline import execute
    from dedupe_at_scale.job.plan import plan_job
    from dedupe_at_scale.job.progress import Progress
    from dedupe_at_scale.job.report import summarize

    # Config, output and every input footer are checked before Ray starts,
    # unless the input has so many files that their footers are read in Ray tasks.
    refuse_ray_client(args.address)
    # Before anything is written to the output: Ray itself retries an address
    # nobody answers for minutes.
    check_reachable(args.address, args.connect_timeout)
    cfg = load_config(args.config)
    input_uri, output_uri = job_uris(cfg, args.input, args.output)
    join = functools.partial(connect, args.address, args.num_cpus)
    plan = plan_job(input_uri, output_uri, cfg, overwrite=args.overwrite, connect=join)
    try:
        join()
        result = execute(plan, None if args.quiet else Progress())
        GATE.open = False  # published: an interrupt now would only cut the summary short
    except KeyboardInterrupt:
        if plan.layout.published_by_this_run():  # only the tidying after was cut short
            raise Interrupted(f"stopped (interrupted) after publishing {output_uri}: the "
                              "output is complete") from None  # fmt: skip
        raise
    finally:
        if plan.lease is not None:
            plan.lease.release()  # also when Ray could not start
    print()
    print(summarize(result.manifest))
    return 0


def find_known_error(exc: BaseException) -> BaseException | None:
    """The first error of ours in an exception chain. Ray wraps a task's
    error in a RayTaskError that is also an instance of it (its text is the
    remote traceback): the original is its `cause`."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        cause = getattr(current, "cause", None)
        if isinstance(current, KNOWN_ERRORS) and not isinstance(cause, KNOWN_ERRORS):
            return current
        stack += [current.__cause__, current.__context__, cause]
    return None
