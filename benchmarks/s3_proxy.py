"""A loopback HTTP proxy in front of a local S3 server that adds a fixed
latency to every request and counts requests by the process that sent them
(the job's driver, or anyone else: its Ray workers).

Object stores answer in 10-50 ms; a local server in well under 1 ms. What
a job does once per file shows at scale as (files x requests x latency):
this proxy makes that visible on one machine.

    proxy = LatencyProxy(upstream_port, latency_s=0.020).start()
    ... point the job's storage.endpoint_url at proxy.endpoint ...
    proxy.driver_pid = job.pid  # its requests carry its pid, all others None
    proxy.requests  # [(time, pid, method, path), ...]
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    at: float
    pid: int | None
    method: str
    path: str


class LatencyProxy:
    def __init__(self, upstream_port: int, latency_s: float = 0.020):
        self.driver_pid: int | None = None  # whose requests count as the driver's
        self.upstream = ("127.0.0.1", upstream_port)
        self.latency = latency_s
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def start(self) -> LatencyProxy:
        self._server.listen(512)
        threading.Thread(target=self._accept, daemon=True, name="proxy").start()
        return self

    def stop(self) -> None:
        self._server.close()

    def reset(self) -> list[Request]:
        with self._lock:
            taken, self.requests = self.requests, []
        return taken

    def _accept(self) -> None:
        while True:
            try:
                client, address = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client, address[1]), daemon=True).start()

    def _serve(self, client: socket.socket, client_port: int) -> None:
        driver = self.driver_pid
        pid = driver if driver is not None and _owns(driver, client_port) else None
        upstream = socket.create_connection(self.upstream)
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        reader = client.makefile("rb")
        try:
            while True:
                head = _read_head(reader)
                if head is None:
                    break
                method, path, headers = _parse(head)
                time.sleep(self.latency)
                with self._lock:
                    self.requests.append(Request(time.time(), pid, method, path))
                upstream.sendall(head)
                _forward_body(reader, upstream, headers)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                try:
                    s.close()
                except OSError:
                    pass


def _owns(pid: int, client_port: int) -> bool:
    """Whether process `pid` holds the socket bound to 127.0.0.1:client_port:
    its inode from /proc/net/tcp, looked for among the process's open files
    (cheap enough to do for every new connection, unlike a scan of /proc)."""
    inode = None
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == client_port:
                inode = fields[9]
                break
    if inode is None:
        return False
    target = f"socket:[{inode}]"
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return True
            except OSError:
                continue
    except OSError:
        return False
    return False


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _read_head(reader) -> bytes | None:
    lines = []
    while True:
        line = reader.readline(65536)
        if not line:
            return None
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def _parse(head: bytes) -> tuple[str, str, dict[str, str]]:
    first, *rest = head.decode("latin-1").split("\r\n")
    method, path, _ = (first.split(" ", 2) + ["", ""])[:3]
    headers = {}
    for line in rest:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method, path, headers


def _forward_body(reader, upstream: socket.socket, headers: dict[str, str]) -> None:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = reader.readline(65536)
            upstream.sendall(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:  # trailers (a checksum), then an empty line
                while (line := reader.readline(65536)) not in (b"\r\n", b"\n", b""):
                    upstream.sendall(line)
                upstream.sendall(b"\r\n")
                return
            upstream.sendall(reader.read(size + 2))  # the chunk and its CRLF
    remaining = int(headers.get("content-length", "0") or 0)
    while remaining:
        data = reader.read(min(remaining, 65536))
        if not data:
            return
        upstream.sendall(data)
        remaining -= len(data)
