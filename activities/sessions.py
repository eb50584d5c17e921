"""Activities of the session migration: every read and write of session stores.

Data moves directly from store to store inside these activities; what they
return (and heartbeat) is cursors, counts and digests only.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from activities.errors import as_application_errors
from deployment.sessions.digest import SetDigest, bytes_digest, record_digest
from deployment.sessions.partition import WHOLE
from deployment.sessions.record import Record, is_expired, session_problem
from deployment.errors import StoreMissing
from deployment.sessions.stores import open_store
from deployment.sessions.stores.base import SessionStore
from deployment.sessions.verify import VerifyReport, compare_stores, digest_report
from workflows.session_models import (
    BackupPoint,
    CopyCursor,
    CopyInput,
    InspectResult,
    PartitionPlan,
    StoresInput,
    TargetInput,
    UndoResult,
    VerifyInput,
)

CONFLICT_SAMPLE = 20
LISTED_CORRUPT = 100  # corrupt ids listed in a result; the count is always complete


class SessionActivities:
    """Session-store activities; ``store_factory`` opens a store from its URL."""

    def __init__(self, store_factory: Callable[..., SessionStore] = open_store) -> None:
        self._store_factory = store_factory

    @asynccontextmanager
    async def _open(self, url: str, create: bool = True) -> AsyncIterator[SessionStore]:
        store = self._store_factory(url, create=create)
        await store.open()
        try:
            yield store
        finally:
            await store.close()

    @activity.defn(name="inspect_session_stores")
    async def inspect_session_stores(self, params: StoresInput) -> InspectResult:
        """Validate both ends: readable source, reachable target, no id collision, quota."""
        with as_application_errors():
            async with self._open(params.source, create=False) as source:
                try:
                    async with self._open(params.target, create=False) as target:
                        return await _inspect(params, source, target, present=True)
                except StoreMissing:  # a new target: nothing to collide with; created at the backup point
                    return await _inspect(params, source, self._store_factory(params.target), present=False)

    @activity.defn(name="plan_session_partitions")
    async def plan_session_partitions(self, params: StoresInput) -> PartitionPlan:
        """Split the source's key space into up to ``parallelism`` partitions for a parallel copy.

        An append-only (JSONL) target takes one writer, so it gets one partition.
        """
        with as_application_errors(unreachable_is_transient=True):
            async with self._open(params.source, create=False) as source:
                count = 1 if self._store_factory(params.target).scheme == "jsonl" else params.parallelism
                return PartitionPlan(partitions=await source.plan_partitions(count))

    @activity.defn(name="record_backup_point")
    async def record_backup_point(self, params: TargetInput) -> BackupPoint:
        """Digest the target as found, before the first write."""
        with as_application_errors(unreachable_is_transient=True):
            async with self._open(params.target) as target:
                digest = SetDigest()
                async for batch in target.iter_records():
                    for rec in batch:
                        digest.add(rec)
                    activity.heartbeat(digest.count)
                return BackupPoint(target_count=digest.count, target_digest=str(digest))

    @activity.defn(name="copy_session_batches")
    async def copy_session_batches(self, params: CopyInput) -> CopyCursor:
        """Copy batches for up to ``slice_seconds``, heartbeating the cursor after each.

        On a retry it resumes from the last heartbeated cursor, and an
        append-only target is first cut back to that cursor's checkpoint, so a
        crash costs at most the batches since the last heartbeat.
        """
        details = activity.info().heartbeat_details
        cursor = params.cursor
        if details:  # a retry: continue from the last batch the failed attempt heartbeated
            cursor = CopyCursor.model_validate(details[0])
            cursor.resumes += 1
            activity.logger.info("Resuming copy after batch %d (%d sessions copied)", cursor.batches, cursor.copied)
        digest = SetDigest.parse(cursor.digest)
        impact = metrics.ProcessImpact()
        fleet = metrics.FleetImpact(params.fleet if params.partition.index == 0 and not params.dry_run else None)
        with as_application_errors(unreachable_is_transient=True):
            # A dry run never opens the target: opening creates a missing one.
            writes = nullcontext() if params.dry_run else self._open(params.target)
            async with self._open(params.source, create=False) as source, writes as target, fleet:
                if not params.dry_run:
                    await target.restore_checkpoint(cursor.target_checkpoint)
                deadline = time.monotonic() + params.slice_seconds  # from here: opening the stores is not copying
                first = True
                while not cursor.finished and (first or time.monotonic() < deadline):  # at least one batch a slice
                    first = False
                    if params.fail_after_batches is not None and cursor.batches >= params.fail_after_batches:
                        raise ApplicationError(
                            f"injected failure after {cursor.batches} batches", type="InjectedFailure", non_retryable=True
                        )
                    started = time.monotonic()
                    limit = _batch_limit(params)
                    pairs, next_cursor = await source.scan_encoded(params.partition, cursor.source_cursor, limit)
                    now = time.time()
                    batch, corrupt = _decode(pairs, source.display, params.on_corrupt)
                    # canonical bytes as the source holds them: hashed and written as they are, never re-encoded
                    kept = [(r, b) for r, b in batch if not is_expired(r, now)]
                    live, encoded = [r for r, _ in kept], [b for _, b in kept]
                    if live and not params.dry_run:
                        await target.write_journaled(
                            params.migration_id, live, only_newer=params.only_newer, encoded=encoded,
                            known_absent=params.known_absent,
                        )  # fmt: skip
                        if target.reads_own_writes and params.read_back:
                            await _verify_batch(target, live)
                    for blob in encoded:
                        digest.add_digest(bytes_digest(blob))
                    cursor = CopyCursor(
                        source_cursor=next_cursor,
                        target_checkpoint=None if params.dry_run else await target.checkpoint(),
                        scanned=cursor.scanned + len(batch),
                        copied=cursor.copied + len(live),
                        skipped_expired=cursor.skipped_expired + len(batch) - len(live),
                        corrupt=cursor.corrupt + len(corrupt),
                        corrupt_ids=(cursor.corrupt_ids + corrupt)[:LISTED_CORRUPT],
                        batches=cursor.batches + 1,
                        digest=str(digest),
                        finished=next_cursor is None,
                        resumes=cursor.resumes,
                        batch_size=limit,
                        **impact.sample(cursor),
                        **fleet.sample(cursor),
                    )
                    activity.heartbeat(cursor)
                    metrics.record_batch(params.migration_id, time.monotonic() - started, len(live), len(batch) - len(live), params.dry_run)
                    await _keep_rate(params, cursor, len(pairs), started)
                return cursor

    @activity.defn(name="finalize_session_target")
    async def finalize_session_target(self, params: TargetInput) -> None:
        """Publish what was written (an append-only target renames its partial file)."""
        with as_application_errors(unreachable_is_transient=True):
            async with self._open(params.target) as target:
                await target.finalize()

    @activity.defn(name="verify_session_stores")
    async def verify_session_stores(self, params: VerifyInput) -> VerifyReport:
        """Compare the live sessions of both stores by record digest.

        With ``copied_digest`` (the copy's digest of what it wrote into a
        target that was empty) the target is read once and its set digest
        compared; only when that differs are both stores compared record by
        record, to name the ids that differ.
        """
        with as_application_errors(unreachable_is_transient=True):
            async with self._open(params.source, create=False) as source, self._open(params.target) as target:
                if params.copied_digest is not None:
                    held = await _digest_store(target, params.batch_size)
                    if str(held) == params.copied_digest:
                        return digest_report(held)
                    activity.logger.warning(
                        "Target digest %s differs from the copy's %s: comparing record by record", held, params.copied_digest
                    )
                return await compare_stores(
                    source,
                    target,
                    margin_seconds=params.margin_seconds,
                    batch_size=params.batch_size,
                    tolerate_extra=params.tolerate_extra,
                    settle_s=params.settle_seconds,
                    on_batch=activity.heartbeat,
                )

    @activity.defn(name="undo_session_copy")
    async def undo_session_copy(self, params: TargetInput) -> UndoResult:
        """Compensation: put every session the migration touched back as it was found.

        Idempotent: after a crash it runs again from the journal, which it drops
        only once every id is verified back to its prior state.
        """
        with as_application_errors(unreachable_is_transient=True):
            async with self._open(params.target) as target:
                if params.require_journal and params.migration_id not in await target.journal_ids():
                    raise ApplicationError(
                        f"{target.display} holds no journal of migration {params.migration_id}: "
                        "it was rolled back already, or never wrote there",
                        type="NothingToRollBack",
                        non_retryable=True,
                    )
                restored = await target.undo(params.migration_id)
                metrics.rollbacks.add(1, {"migration_id": params.migration_id})
                return UndoResult(restored=restored)


def _batch_limit(params: CopyInput) -> int:
    """The batch size, smaller under a rate limit so that one batch takes at most a second of it."""
    if params.rate_per_s is None:
        return params.batch_size
    return max(1, min(params.batch_size, int(params.rate_per_s)))


async def _keep_rate(params: CopyInput, cursor: CopyCursor, read: int, started: float) -> None:
    """Under a rate limit, wait until ``read`` sessions are within it, heartbeating; else just yield."""
    if params.rate_per_s is None:
        await asyncio.sleep(0)
        return
    until = started + read / params.rate_per_s
    while (left := until - time.monotonic()) > 0:
        await asyncio.sleep(min(left, 1.0))
        activity.heartbeat(cursor)


def _decode(pairs: list[tuple[str, bytes]], where: str, on_corrupt: str) -> tuple[list[tuple[Record, bytes]], list[str]]:
    """Decode a scanned batch; a record that does not decode, or lacks what a session needs, is corrupt.

    ``on_corrupt="stop"`` raises naming the first one; ``"skip"`` leaves them
    out and returns their ids, to be counted and listed.
    """
    decoded: list[tuple[Record, bytes]] = []
    corrupt: list[str] = []
    for sid, blob in pairs:
        try:
            rec = json.loads(blob)
            problem = session_problem(rec, sid)
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            problem = f"not valid JSON ({exc})"
        except RecursionError:
            problem = "JSON nested too deeply"
        if problem is None:
            decoded.append((rec, blob))
        elif on_corrupt == "skip":
            corrupt.append(sid)
        else:
            raise ApplicationError(
                f"session {sid!r} in {where} is corrupt: {problem}; nothing was skipped. Repair or delete it, "
                "or migrate with --on-corrupt skip to skip such sessions (they are counted and listed)",
                type="CorruptRecord",
                non_retryable=True,
            )
    return decoded, corrupt


async def _digest_store(store: SessionStore, batch_size: int) -> SetDigest:
    """The set digest of every record a store holds, expired ones included."""
    digest, cursor = SetDigest(), None
    while True:
        pairs, cursor = await store.scan_encoded(WHOLE, cursor, batch_size)
        for _, blob in pairs:
            digest.add_digest(bytes_digest(blob))
        activity.heartbeat(digest.count)
        if cursor is None:
            return digest


async def _inspect(params: StoresInput, source: SessionStore, target: SessionStore, present: bool) -> InspectResult:
    """Check that the source's live sessions fit in the target without colliding.

    An empty (or new) target has nothing to collide with: the source is only
    counted, unless a quota makes the live count matter.  Otherwise the whole
    source is read and each live id looked up in the target.  ``present`` is
    False for a target that does not exist yet (not opened: only its settings are used).
    """
    target_count = await target.count() if present else 0
    if target_count == 0:
        total = await source.count()
        if target.quota is None or total <= target.quota:
            return InspectResult(source_total=total, target_count=0, conflicts=0, target_quota=target.quota)
    now = time.time()
    total = expired = conflicts = 0
    sample: list[str] = []
    async for batch in source.iter_records(params.batch_size):
        total += len(batch)
        live = [r["id"] for r in batch if not is_expired(r, now)]
        expired += len(batch) - len(live)
        if present:
            clash = list(await target.read_many(live))
            conflicts += len(clash)
            sample += clash[: CONFLICT_SAMPLE - len(sample)]
        activity.heartbeat(total)
    result = InspectResult(
        source_total=total,
        source_live=total - expired,
        source_expired=expired,
        target_count=target_count,
        conflicts=conflicts,
        conflict_sample=sorted(sample),
        target_quota=target.quota,
    )
    _check_compatible(params, target, result)
    return result


async def _verify_batch(target: SessionStore, written: list[dict]) -> None:
    """Read a written batch back and compare every record digest.

    A record the target holds at a higher revision was written by live
    traffic after the batch was read (zero-downtime mode): that is not a
    difference.
    """
    held = await target.read_many([r["id"] for r in written])

    def differs(rec: dict) -> bool:
        other = held.get(rec["id"])
        if other is None:
            return True
        if int(other.get("rev", 0)) > int(rec.get("rev", 0)):
            return False
        return record_digest(other) != record_digest(rec)

    wrong = [r["id"] for r in written if differs(r)]
    if wrong:
        raise ApplicationError(
            f"batch verification failed: {len(wrong)} session(s) read back differently: {', '.join(wrong[:20])}",
            type="BatchMismatch",
        )


def _check_compatible(params: StoresInput, target: SessionStore, found: InspectResult) -> None:
    if found.conflicts and not params.overwrite:
        raise ApplicationError(
            f"target {target.display} already holds {found.conflicts} session(s) with ids the source has "
            f"(e.g. {', '.join(found.conflict_sample[:5])}); pass overwrite to replace them, or choose an empty target",
            type="TargetNotCompatible",
            non_retryable=True,
        )
    if target.scheme == "jsonl" and found.target_count:
        raise ApplicationError(
            f"target {target.display} is a non-empty snapshot; a JSONL target must be new or empty",
            type="TargetNotCompatible",
            non_retryable=True,
        )
    after = found.target_count + (found.source_live or found.source_total) - found.conflicts
    if found.target_quota is not None and after > found.target_quota:
        raise ApplicationError(
            f"target {target.display} would hold {after} sessions, over its quota of {found.target_quota}; "
            "raise it with ?max_sessions=N in the target URL",
            type="QuotaExceeded",
            non_retryable=True,
        )

