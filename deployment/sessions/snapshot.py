"""Realistic ETS-style session snapshots, for the demo, tests and benchmarks.

Upstream keeps sessions in an in-memory table with monotonic timestamps; an
export converts them to epoch seconds. This generator writes what such an
export looks like: mostly live sessions with worker affinity, programs and
stats, some already expired, a few from 0.4.x still carrying ``variables``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

from deployment.sessions.record import Record, canonical_bytes


def generate_sessions(count: int, *, now: float, expired_fraction: float = 0.1, seed: int = 7) -> Iterator[Record]:
    """``count`` canonical session records, reproducible for a given seed."""
    rng = random.Random(seed)
    workers = [f"pool_worker_{i}_{rng.randrange(16**6):06x}" for i in range(8)]
    for n in range(count):
        ttl = rng.choice([300, 900, 1800, 3600, 3600, 7200, 86400])
        expired = rng.random() < expired_fraction
        if expired:
            last = now - ttl - rng.uniform(1, 600)
        else:
            last = now - rng.uniform(0, ttl * 0.5)  # at least half its lifetime left: live for the whole run
        created = last - rng.uniform(0, 7200)
        programs = {
            f"prog_{rng.randrange(10**6):06d}": {
                "signature": rng.choice(["question -> answer", "context, question -> answer", "text -> summary"]),
                "demos": rng.randrange(5),
            }
            for _ in range(rng.randrange(3))
        }
        rec: Record = {
            "id": f"session_{n:07d}_{rng.randrange(16**8):08x}",
            "created_at": round(created, 6),
            "last_accessed": round(last, 6),
            "ttl": ttl,
            "last_worker_id": rng.choice(workers + [None]),
            "programs": programs,
            "metadata": {"user": f"user{rng.randrange(5000)}", "tier": rng.choice(["free", "pro", "enterprise"]), "lang": "é✓"},
            "stats": {"program_count": len(programs), "calls": rng.randrange(1000)},
        }
        if n % 97 == 0:  # a 0.4.x session: unknown fields are kept as they are
            rec["variables"] = {"temperature": 0.7}
            rec["variable_index"] = {"temperature": "var_1"}
        yield rec


def write_snapshot(path: Path, records: Iterator[Record]) -> int:
    """Write records as a JSONL snapshot (canonical lines); returns how many."""
    n = 0
    with path.open("wb") as fh:
        for rec in records:
            fh.write(canonical_bytes(rec) + b"\n")
            n += 1
    return n
