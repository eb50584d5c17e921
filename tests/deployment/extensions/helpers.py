"""What the extension tests share: session stores filled with known records, and temporary installed packages."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

from deployment.sessions.record import Record, canonical_bytes
from deployment.sessions.snapshot import generate_sessions
from deployment.sessions.stores import open_store


async def fill(url: str, count: int, expired_fraction: float = 0.05, seed: int = 11) -> list[Record]:
    """Write ``count`` generated sessions into a store; return them."""
    recs = list(generate_sessions(count, now=time.time(), expired_fraction=expired_fraction, seed=seed))
    async with open_store(url) as store:
        await store.write_many(recs)
    return recs


async def store_bytes(url: str) -> dict[str, bytes]:
    """Every record of a store by id, as canonical bytes."""
    async with open_store(url) as store:
        return {r["id"]: canonical_bytes(r) async for batch in store.iter_records() for r in batch}


EXTENSION_SOURCE = '''
"""A tiny extension of a temporary package: counts live sessions into a metadata key."""
from pydantic import BaseModel
from deployment.extensions import Applied, MigrationExtension, Plan, Progress, RolledBack, Verification


class Params(BaseModel):
    label: str


class Tagger(MigrationExtension):
    name = "{name}"
    version = "{version}"
    Params = Params

    async def validate(self, params, ctx):
        return []

    async def plan(self, params, ctx):
        return Plan(summary=f"tag with {{params.label}}", total=3, to_change=3)

    async def apply(self, params, ctx, resume, report):
        start = resume.done if resume else 0
        for i in range(start, 3):
            ctx.audit("tag", item=i, label=params.label)
            await report(Progress(done=i + 1, changed=i + 1, checkpoint={{"i": i + 1}}))
        return Applied(done=3, changed=3)

    async def verify(self, params, ctx):
        return Verification(ok=True, checked=3)

    async def rollback(self, params, ctx):
        return RolledBack(restored=0)
'''


def install_package(root: Path, dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """A package 'installed' into ``root`` (to put on sys.path): modules plus a .dist-info with entry points."""
    root.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[snakepit_migrate.migrations]\n{lines}")
    return root
