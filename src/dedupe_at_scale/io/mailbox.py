"""The exchange's mailbox actor (steps/exchange.py), apart from the steps so
that its process imports Ray and Arrow only: importing anything under
steps/ imports every step, 2 s more of CPU for each mailbox started."""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa
import ray


class ExchangeLost(RuntimeError):
    """A hop's pieces are gone: its mailbox died or was already released."""


@ray.remote(num_cpus=0, max_restarts=0)
class Mailbox:
    """One mailbox: the pieces of the destinations it owns, per hop, until
    the hop is released."""

    def __init__(self) -> None:
        self.pieces: dict[tuple[int, int], dict[int, pa.Table]] = defaultdict(dict)
        self.schemas: dict[int, pa.Schema] = {}
        self.released: set[int] = set()

    def put(self, hop: int, src: int, schema: pa.Schema, pieces: dict[int, pa.Table]) -> int:
        if hop in self.released:
            raise ExchangeLost(f"hop {hop} was released before sender {src} finished")
        self.schemas.setdefault(hop, schema)
        for dest, piece in pieces.items():
            self.pieces[hop, dest][src] = piece  # a retried sender overwrites its own piece
        return len(pieces)

    def take(self, hop: int, dest: int) -> list[pa.Table]:
        if hop in self.released:
            raise ExchangeLost(f"hop {hop} was released before receiver {dest} read it")
        by_src = self.pieces.get((hop, dest), {})
        return [by_src[s] for s in sorted(by_src)] or [self.schemas[hop].empty_table()]

    def release(self, hop: int) -> None:
        self.released.add(hop)
        for key in [k for k in self.pieces if k[0] == hop]:
            del self.pieces[key]
