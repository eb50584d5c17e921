"""Partitions of a store's key space, so that parallel copies each read their own part.

A partition is either a range of ids (``low <= id < high``, an open end when
``None``), which SQL stores scan along their primary key, or one residue of a
stable hash of the id (``crc32(id) % count == index``), which key-value
stores filter their scan by.  Either way every id, including one written
while the copy runs, belongs to exactly one partition of a plan.
"""

from __future__ import annotations

import zlib

from pydantic import BaseModel


class Partition(BaseModel):
    """One part of a key space: an id range, or a hash residue when ``by_hash``."""

    index: int = 0
    count: int = 1
    by_hash: bool = False
    low: str | None = None
    high: str | None = None

    @property
    def whole(self) -> bool:
        """True for the one partition of a plan that does not split the key space."""
        return self.count == 1

    def holds(self, session_id: str) -> bool:
        """Whether ``session_id`` belongs to this partition."""
        if self.by_hash:
            return hash_residue(session_id.encode(), self.count) == self.index
        return (self.low is None or session_id >= self.low) and (self.high is None or session_id < self.high)


WHOLE = Partition()


def hash_residue(key: bytes, count: int) -> int:
    """The partition index of an id (as bytes) among ``count`` hash partitions; stable across processes."""
    return zlib.crc32(key) % count


def hash_plan(count: int) -> list[Partition]:
    """``count`` hash partitions covering every id."""
    if count <= 1:
        return [WHOLE]
    return [Partition(index=i, count=count, by_hash=True) for i in range(count)]


def range_plan(bounds: list[str]) -> list[Partition]:
    """Id-range partitions split at the sorted, distinct ``bounds``: ``len(bounds) + 1`` of them."""
    edges: list[str | None] = [None, *sorted(set(bounds)), None]
    count = len(edges) - 1
    if count == 1:
        return [WHOLE]
    return [Partition(index=i, count=count, low=edges[i], high=edges[i + 1]) for i in range(count)]
