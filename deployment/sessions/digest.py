"""Digests that let two stores be compared without moving their data.

A record digest is a 128-bit BLAKE2b of its canonical bytes.  A set digest is
the count and the sum of record digests modulo 2**128: independent of order,
so a store can be digested in any scan order and in any partition, and two
partial digests combine by addition.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from deployment.sessions.record import Record, canonical_bytes

_MOD = 1 << 128


def record_digest(rec: Record) -> int:
    """The 128-bit digest of one record's canonical bytes."""
    return bytes_digest(canonical_bytes(rec))


def bytes_digest(canonical: bytes) -> int:
    """The 128-bit digest of a record already encoded by ``canonical_bytes``."""
    return int.from_bytes(hashlib.blake2b(canonical, digest_size=16).digest(), "big")


@dataclass
class SetDigest:
    """An order-independent digest of a multiset of records."""

    count: int = 0
    total: int = 0

    def add(self, rec: Record) -> int:
        """Fold one record in and return its own digest."""
        d = record_digest(rec)
        self.add_digest(d)
        return d

    def add_digest(self, d: int) -> None:
        """Fold in an already computed record digest."""
        self.count += 1
        self.total = (self.total + d) % _MOD

    def merge(self, other: "SetDigest") -> "SetDigest":
        """The digest of the union of two disjoint sets."""
        return SetDigest(self.count + other.count, (self.total + other.total) % _MOD)

    def __str__(self) -> str:
        return f"{self.count}:{self.total:032x}"

    @classmethod
    def parse(cls, text: str) -> "SetDigest":
        """Read back the ``count:hex`` form produced by ``str()``."""
        count, total = text.split(":")
        return cls(int(count), int(total, 16))
