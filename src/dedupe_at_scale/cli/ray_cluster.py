"""Joining or starting Ray for `run`: the address checked first (TCP, then
an HTTP/2 greeting, as Ray's GCS is a gRPC server), the Ray this process
started stopped at exit, and Ray's console noise kept off the user's screen."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from dedupe_at_scale.config import ConfigError


class ClusterError(RuntimeError):
    """The Ray cluster named by --address cannot be joined."""


CONNECT_TIMEOUT = 30.0  # seconds to reach a cluster's address (--connect-timeout)


_started_ray = False  # whether this process's connect() started (or joined) Ray


def stop_own_ray() -> None:
    """Stop the local Ray this command started (the command closes its
    interrupts.GATE first: Ray's shutdown, interrupted, prints a traceback
    after the run's last line)."""
    global _started_ray
    if not _started_ray:
        return
    import ray

    with stderr_silenced():
        ray.shutdown()
    _started_ray = False


@contextmanager
def stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null while Ray's processes exit. A Ctrl-C
    in a terminal reaches them too (the whole foreground group); as they stop
    first, this process's gRPC channels log the servers' GOAWAY to fd 2, after
    the command's last line (seen once in CI, 2026-12-07). Put back
    afterwards, also when the shutdown raises, so that a traceback shows."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def refuse_ray_client(address: str | None) -> None:
    """Ray Data's executor needs a core worker in the driver process, which a
    Ray Client (ray://) driver lacks: it fails mid-run (ray-project/ray#42739)."""
    if address and address.startswith("ray://"):
        raise ConfigError(
            f"--address {address}: Ray Data does not run over Ray Client (ray://). Submit the "
            "job through the Jobs API instead (dedupe-at-scale submit --address "
            "http://HEAD:8265 ...), or run it on a node of the cluster with --address auto"
        )


def check_reachable(address: str | None, timeout: float = CONNECT_TIMEOUT) -> None:
    """A HOST:PORT address accepts a connection within `timeout` seconds
    ('auto' and a local Ray are Ray's to find)."""
    if not address or address in ("auto", "local") or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--address {address}: expected HOST:PORT (the GCS port, 6379 by "
                          "default), 'auto' or 'local'")  # fmt: skip
    try:
        conn = socket.create_connection((host, int(port)), timeout=timeout)
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ClusterError(
            f"cannot reach the Ray cluster at {address} ({why} within {timeout:g} s): is it "
            "running (`ray status --address` on a node), and is that its GCS address and port? "
            "Nothing was written"
        ) from exc
    with conn:
        problem = None if _tls_ray() else _not_grpc(conn, timeout)
    if problem:
        raise ClusterError(
            f"{address} accepts connections but is not a Ray cluster's GCS ({problem} within "
            f"{timeout:g} s): is that the GCS port (6379 by default), not the dashboard's "
            "(8265) or another service's? Nothing was written"
        )


# An HTTP/2 client's first bytes, then an empty SETTINGS frame (RFC 9113 3.4):
# Ray's GCS is a gRPC server, which answers with a SETTINGS frame of its own.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


HTTP2_SETTINGS = 4


def _not_grpc(conn: socket.socket, timeout: float) -> str | None:
    """Why the server on `conn` is not an HTTP/2 (gRPC) server, or None.
    Ray itself would retry such an address for minutes."""
    try:
        conn.settimeout(timeout)
        conn.sendall(HTTP2_PREFACE)
        head = b""
        while len(head) < 9:  # a frame header: length (3), type, flags, stream (4)
            chunk = conn.recv(9 - len(head))
            if not chunk:
                return "it closed the connection"
            head += chunk
    except TimeoutError:
        return "no answer to an HTTP/2 greeting"
    except OSError as exc:
        return exc.strerror or str(exc)
    if head[3] != HTTP2_SETTINGS:
        return f"it answered {head[:9]!r}, not HTTP/2"
    return None


def _tls_ray() -> bool:
    """Ray with TLS (RAY_USE_TLS) speaks TLS first: no plain greeting to check."""
    return os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true")


def connect(address: str | None, num_cpus: int | None) -> None:
    """Join `address`, or start a local Ray with `num_cpus` (all cores by default)."""
    import ray

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")  # the job's own instead
    global _started_ray
    if ray.is_initialized():
        return
    _started_ray = True
    if address and address != "local":
        try:
            ray.init(address=address, logging_level="WARNING")
        except ConnectionError as exc:  # 'auto' with no cluster on this node
            raise ClusterError(f"cannot join the Ray cluster at {address}: {exc}") from exc
    else:
        # Ray warns on every new local cluster that it turned on token
        # authentication, its default (RAY_AUTH_MODE unset), which we keep.
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
            logging.ERROR
        )
        _start_local_ray(num_cpus)
    # The job shows its own progress (job/progress.py), unless --quiet: Ray
    # Data's bars (one per operator and pass) and notices stay off either way.
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.data.DataContext.get_current().print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # It would say that its bars are off, which is the job's doing.
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    # Said whenever a pass starts while the job's own tasks hold every CPU
    # (e.g. with --num-cpus 1); the pass waits for them, it does not hang.
    logging.getLogger("ray.data.dataset").addFilter(_NoIdleCpuWarning())
    keep_task_tracebacks_off_the_console()


LOCAL_START_TRIES = 3
# A task's return under max_direct_call_object_size (100 KB by default) is
# kept in its owner's process: every piece of the global steps' hops then
# sat in the driver's heap until the hop was released (at 2M documents the
# id check's hop alone added 188 MiB to the driver, growing with the
# corpus). Past 8 KB a return goes to the object store of the node that
# made it; acks and counts stay inline. `ray start --head` takes the same as
# --system-config (cluster/).
RAY_SYSTEM_CONFIG = {"max_direct_call_object_size": 8 * 1024}


def _start_local_ray(num_cpus: int | None) -> None:
    """Always a new Ray, never one that `ray start` left running. Ray gives a
    new node 30 s (fixed in its code) to register; on a loaded machine the
    raylet can miss that, and a second start then succeeds."""
    import ray

    for attempt in range(1, LOCAL_START_TRIES + 1):
        try:
            ray.init(
                address="local", num_cpus=num_cpus, include_dashboard=False,
                logging_level="WARNING", _system_config=RAY_SYSTEM_CONFIG,
            )  # fmt: skip
            return
        except Exception as exc:
            if "timed out during startup" not in str(exc) or attempt == LOCAL_START_TRIES:
                raise
            _stop_own_children()
            ray.shutdown()
            logging.getLogger(__name__).warning(
                "the local Ray did not start in time (try %d of %d); starting it again",
                attempt, LOCAL_START_TRIES,
            )  # fmt: skip


def _stop_own_children() -> None:
    """What a failed start left running (its GCS, raylet and reaper): Ray
    drops the half-made node, so its processes are found as our children.
    The CLI starts no other process before Ray."""
    import psutil  # installed with Ray

    children = psutil.Process().children(recursive=True)
    for child in children:
        with suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(children, timeout=10)


class _NoIdleCpuWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "does not have any available CPUs" not in record.getMessage()


class _NoErrorRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


def keep_task_tracebacks_off_the_console() -> None:
    """Ray Data logs a failed task's tracebacks (several screens) to the
    console and to its log file; the CLI reports the error itself in one
    line naming that file, so the console handler drops error records."""
    for handler in logging.getLogger("ray.data").handlers:
        if type(handler).__name__ == "PlainRayHandler":
            handler.addFilter(_NoErrorRecords())
