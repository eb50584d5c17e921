"""Compare the live sessions of two stores without holding either in memory.

The source is streamed batch by batch and each batch is looked up in the
target by id; then the target is streamed and looked up in the source to find
sessions it has that the source has not.  Sessions that expire before the
*horizon* (now plus a margin) are left out on both sides, so a session that
expires while the comparison runs cannot make it flap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from pydantic import BaseModel

from deployment.sessions.digest import SetDigest
from deployment.sessions.record import Record, is_expired
from deployment.sessions.stores.base import SessionStore

LISTED_IDS = 100  # ids listed per kind of difference; the counts are always complete


class VerifyReport(BaseModel):
    """Whether both stores hold the same live sessions, and which ids differ."""

    ok: bool
    horizon: float
    source_live: int
    target_live: int
    matched: int
    missing_count: int
    extra_count: int
    mismatched_count: int
    missing: list[str] = []
    extra: list[str] = []
    mismatched: list[str] = []
    source_digest: str
    target_digest: str
    method: str = "compare"  # "digest": the target's set digest equalled the copy's, read once


def digest_report(held: SetDigest) -> VerifyReport:
    """The report of a target whose set digest equals the digest of what the copy read and wrote."""
    return VerifyReport(
        ok=True, horizon=time.time(), source_live=held.count, target_live=held.count, matched=held.count,
        missing_count=0, extra_count=0, mismatched_count=0, source_digest=str(held), target_digest=str(held),
        method="digest",
    )  # fmt: skip


async def compare_stores(
    source: SessionStore,
    target: SessionStore,
    *,
    margin_seconds: float = 30.0,
    batch_size: int = 500,
    tolerate_extra: bool = False,
    settle_s: float | None = None,
    on_batch: Callable[[int], Awaitable[None] | None] | None = None,
) -> VerifyReport:
    """Compare live sessions of ``source`` and ``target`` record by record.

    ``tolerate_extra`` accepts sessions only the target has (a migration into
    a store that already held other sessions).  ``settle_s`` is for stores
    under live dual writes: an id that differs is read again from both sides
    after that pause, so a write landing between the two reads is not taken
    for a difference.  ``on_batch`` is called with
    the number of records examined so far, for progress and heartbeats.
    """
    horizon = time.time() + margin_seconds
    src_digest, tgt_digest = SetDigest(), SetDigest()
    missing: list[str] = []
    mismatched: list[str] = []
    extra: list[str] = []
    counts = {"missing": 0, "mismatched": 0, "extra": 0, "target_live": 0}
    examined = 0

    async def progress() -> None:
        if on_batch is not None:
            res = on_batch(examined)
            if res is not None:
                await res

    async for batch in source.iter_records(batch_size):
        live = {r["id"]: r for r in batch if not is_expired(r, horizon)}
        held = await target.read_many(list(live))
        if settle_s is not None:
            live, held = await _settle(source, target, live, held, horizon, settle_s)
        for sid, rec in live.items():
            d_src = src_digest.add(rec)
            other = held.get(sid)
            if other is None or is_expired(other, horizon):
                counts["missing"] += 1
                _note(missing, sid)
            elif tgt_digest.add(other) != d_src:
                counts["mismatched"] += 1
                _note(mismatched, sid)
        examined += len(batch)
        await progress()

    async for batch in target.iter_records(batch_size):
        live = [r for r in batch if not is_expired(r, horizon)]
        counts["target_live"] += len(live)
        known = await source.read_many([r["id"] for r in live])
        for rec in live:
            mate = known.get(rec["id"])
            if mate is None or is_expired(mate, horizon):
                counts["extra"] += 1
                _note(extra, rec["id"])
        examined += len(batch)
        await progress()

    ok = counts["missing"] == 0 and counts["mismatched"] == 0 and (tolerate_extra or counts["extra"] == 0)
    return VerifyReport(
        ok=ok,
        horizon=horizon,
        source_live=src_digest.count,
        target_live=counts["target_live"],
        matched=src_digest.count - counts["missing"] - counts["mismatched"],
        missing_count=counts["missing"],
        extra_count=counts["extra"],
        mismatched_count=counts["mismatched"],
        missing=sorted(missing),
        extra=sorted(extra),
        mismatched=sorted(mismatched),
        source_digest=str(src_digest),
        target_digest=str(tgt_digest),
    )


async def _settle(
    source: SessionStore, target: SessionStore, live: dict[str, Record], held: dict[str, Record], horizon: float, pause: float
) -> tuple[dict[str, Record], dict[str, Record]]:
    """Re-read ids that differ, once, after a pause: live writes reach both stores within it."""
    differing = [sid for sid, rec in live.items() if held.get(sid) != rec]
    if not differing:
        return live, held
    await asyncio.sleep(pause)
    again_src = await source.read_many(differing)
    again_tgt = await target.read_many(differing)
    live = {**live, **{sid: r for sid, r in again_src.items()}}
    for sid in differing:
        if sid not in again_src or is_expired(again_src[sid], horizon):
            live.pop(sid, None)  # deleted or expired meanwhile: no longer a live session to compare
    held = {**held, **again_tgt}
    return live, held


def _note(ids: list[str], sid: str) -> None:
    if len(ids) < LISTED_IDS:
        ids.append(sid)
