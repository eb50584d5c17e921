"""Re-keying sessions: the example extension, and the template for writing one.

Two kinds of re-keying, one store at a time:

* rename a metadata key in every live session of a store (``from_key`` →
  ``to_key``), in any store but a JSONL snapshot;
* move every live session of a Redis store to a new key prefix
  (``to_prefix``), keeping each key's expiry to the millisecond.

Every write goes through the store's journal under the run id, so
``rollback`` is the store's own ``undo`` (exact prior bytes back, verified),
and ``verify`` checks each journaled session against its prior: renamed and
otherwise byte for byte the same, or moved and byte for byte the same.
Reads never refresh ``last_accessed``. Sessions that live traffic changes
while the re-key runs may be reported by ``verify`` (and put back to the
journaled prior by ``rollback``): run it while the store is quiet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deployment.extensions.base import (
    Applied,
    ExtensionContext,
    MigrationExtension,
    Plan,
    Progress,
    RolledBack,
    Report,
    Verification,
)
from deployment.sessions.record import Record, is_expired
from deployment.sessions.stores import open_store, redact_url
from deployment.sessions.stores.base import SessionStore
from deployment.sessions.stores.redis import DEFAULT_PREFIX

SAMPLE = 20


class RekeyParams(BaseModel):
    """Either ``from_key`` and ``to_key`` (rename a metadata key) or ``to_prefix`` (move Redis keys)."""

    model_config = ConfigDict(extra="forbid")

    store: str = Field(description="the session store URL, e.g. sqlite:///var/lib/snakepit/sessions.db or redis://host:6379/0")
    from_key: str | None = Field(None, min_length=1, description="metadata key to rename")
    to_key: str | None = Field(None, min_length=1, description="its new name")
    to_prefix: str | None = Field(None, min_length=1, description="Redis only: the new key prefix of every session")
    batch_size: int = Field(200, ge=1, le=5000, description="sessions read and written at a time")
    max_per_second: float | None = Field(None, gt=0, description="at most this many sessions a second")
    overwrite: bool = Field(False, description="replace a value already held under to_key / a key already under to_prefix")

    @model_validator(mode="after")
    def _one_kind(self) -> "RekeyParams":
        rename = self.from_key is not None or self.to_key is not None
        if rename and self.to_prefix is not None:
            raise ValueError("give either from_key and to_key (rename a metadata key) or to_prefix (move Redis keys), not both")
        if not rename and self.to_prefix is None:
            raise ValueError("give from_key and to_key to rename a metadata key, or to_prefix to move Redis keys")
        if rename and not (self.from_key and self.to_key):
            raise ValueError("renaming a metadata key needs both from_key and to_key")
        if rename and self.from_key == self.to_key:
            raise ValueError(f"from_key and to_key are both {self.from_key!r}: nothing to rename")
        return self


def _meta(rec: Record) -> dict:
    meta = rec.get("metadata")
    return meta if isinstance(meta, dict) else {}


def renamed(rec: Record, from_key: str, to_key: str) -> Record | None:
    """The record with metadata ``from_key`` renamed ``to_key``, or None when it has no ``from_key``."""
    meta = _meta(rec)
    if from_key not in meta:
        return None
    new_meta = {k: v for k, v in meta.items() if k != from_key}
    new_meta[to_key] = meta[from_key]
    return {**rec, "metadata": new_meta}


def with_prefix(url: str, prefix: str) -> str:
    """A Redis store URL with its ``?prefix=`` option set to ``prefix``."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "prefix"] + [("prefix", prefix)]
    return urlunsplit(parts._replace(query=urlencode(query)))


class RekeySessions(MigrationExtension):
    """Rename a metadata key across a session store, or move Redis session keys to a new prefix."""

    name = "rekey-sessions"
    version = "1.0.0"
    Params = RekeyParams

    def resources(self, params: RekeyParams) -> list[str]:
        """The store it re-keys (a run on its own locks it)."""
        return [params.store]

    # -- validate and plan (read only) --------------------------------------
    async def validate(self, params: RekeyParams, ctx: ExtensionContext) -> list[str]:
        problems: list[str] = []
        async with open_store(params.store, create=False) as store:
            if store.scheme == "jsonl":
                return [f"{store.display} is a snapshot file: re-key a live store (sqlite, redis, postgresql), "
                        "or migrate the snapshot into one first"]  # fmt: skip
            if params.to_prefix is None:
                clash = await self._clashes(store, params)
                if clash and not params.overwrite:
                    problems.append(
                        f"{len(clash)} session(s) already have a metadata key {params.to_key!r} "
                        f"(e.g. {', '.join(clash[:5])}); pass \"overwrite\": true to replace its value, or choose another to_key"
                    )
                return problems
            if store.scheme != "redis":
                return [f"to_prefix moves Redis keys, but {store.display} is a {store.scheme} store; use from_key/to_key there"]
            old, new = store.prefix, params.to_prefix  # type: ignore[attr-defined]
            if old.startswith(new) or new.startswith(old):
                return [f"prefixes {old!r} and {new!r} overlap (one starts with the other), so the keys moved would be "
                        "scanned again; choose a prefix that does not start with the old one"]  # fmt: skip
            async with open_store(with_prefix(params.store, new)) as target:
                clash = await self._clashes(store, params, target)
            if clash and not params.overwrite:
                problems.append(
                    f"{len(clash)} session id(s) already exist under prefix {new!r} (e.g. {', '.join(clash[:5])}); "
                    "pass \"overwrite\": true to replace them, or choose an unused prefix"
                )
        return problems

    async def _clashes(self, store: SessionStore, params: RekeyParams, target: SessionStore | None = None) -> list[str]:
        """Live ids whose re-keyed form would overwrite something: a held to_key, or an id under the new prefix."""
        found: list[str] = []
        async for batch in store.iter_records(params.batch_size):
            live = [r for r in batch if not is_expired(r, time.time())]
            if target is not None:
                found += sorted(await target.read_many([r["id"] for r in live]))
            else:
                found += [r["id"] for r in live if params.from_key in _meta(r) and params.to_key in _meta(r)]
        return found

    async def plan(self, params: RekeyParams, ctx: ExtensionContext) -> Plan:
        total = live = to_change = 0
        async with open_store(params.store, create=False) as store:
            async for batch in store.iter_records(params.batch_size):
                now = time.time()
                alive = [r for r in batch if not is_expired(r, now)]
                total += len(batch)
                live += len(alive)
                to_change += len(alive) if params.to_prefix else sum(1 for r in alive if params.from_key in _meta(r))
            if params.to_prefix:
                target = redact_url(with_prefix(params.store, params.to_prefix))
                summary = f"move {to_change} live session(s) of {store.display} to prefix {params.to_prefix!r}"
                resources = [store.display, target]
            else:
                summary = f"rename metadata key {params.from_key!r} to {params.to_key!r} in {to_change} session(s) of {store.display}"
                resources = [store.display]
        return Plan(
            summary=summary, total=total, to_change=to_change, resources=resources,
            details={"live": live, "expired": total - live},
        )  # fmt: skip

    # -- apply ----------------------------------------------------------------
    async def apply(self, params: RekeyParams, ctx: ExtensionContext, resume: Progress | None, report: Report) -> Applied:
        point = resume.checkpoint if resume else {}
        if point.get("finished"):
            return Applied(done=resume.done, changed=resume.changed, message="finished before the resume")  # type: ignore[union-attr]
        cursor: str | None = point.get("cursor")
        done = resume.done if resume else 0
        changed = 0
        throttle = ctx.throttle.limited(params.max_per_second)
        async with AsyncExitStack() as stack:
            store = await stack.enter_async_context(open_store(params.store, create=False))
            target = None
            if params.to_prefix:
                target = await stack.enter_async_context(open_store(with_prefix(params.store, params.to_prefix)))
            if resume is not None:  # the journal counts each id once, also those a crashed attempt wrote after its checkpoint
                changed = await journal_count(target or store, ctx.run_id)
            while True:
                batch, cursor = await store.scan(cursor, params.batch_size)
                now = time.time()
                live = [r for r in batch if not is_expired(r, now)]
                if target is not None:
                    changed += await _move(ctx.run_id, live, store, target)
                else:
                    # A session renamed before a crash has no from_key any more: a redone batch skips it.
                    changes = [new for r in live if (new := renamed(r, params.from_key, params.to_key)) is not None]  # type: ignore[arg-type]
                    if changes:
                        changed += await store.write_journaled(ctx.run_id, changes)
                done += len(batch)
                await report(Progress(done=done, changed=changed, checkpoint={"cursor": cursor, "finished": cursor is None}))
                await throttle(len(batch))
                if cursor is None:
                    break
            changed = await journal_count(target or store, ctx.run_id)  # exact, also after a crash mid-batch
        ctx.audit("rekey.applied", store=redact_url(params.store), scanned=done, changed=changed)
        return Applied(done=done, changed=changed)

    # -- verify and rollback ------------------------------------------------
    async def verify(self, params: RekeyParams, ctx: ExtensionContext) -> Verification:
        problems: list[str] = []
        async with AsyncExitStack() as stack:
            store = await stack.enter_async_context(open_store(params.store, create=False))
            if params.to_prefix:
                target = await stack.enter_async_context(open_store(with_prefix(params.store, params.to_prefix)))
                left = await _live_ids(store)
                if left:
                    problems.append(f"{len(left)} live session(s) still under the old prefix: {', '.join(left[:SAMPLE])}")
            else:
                target = store
                left = await _live_ids(store, lambda r: params.from_key in _meta(r))
                if left:
                    problems.append(f"{len(left)} live session(s) still have key {params.from_key!r}: {', '.join(left[:SAMPLE])}")

            def expected(prior: Record) -> Record | None:
                return prior if params.to_prefix else renamed(prior, params.from_key, params.to_key)  # type: ignore[arg-type]

            # The journal (of the store the sessions were read from) holds each one as it was before this run.
            checked, wrong = await _compare_with_journal(store, target, ctx.run_id, expected, params.batch_size)
        if wrong:
            problems.append(f"{len(wrong)} session(s) not as the re-key wrote them (changed since, or written wrongly): "
                            + ", ".join(wrong[:SAMPLE]))  # fmt: skip
        return Verification(ok=not problems, checked=checked, problems=problems)

    async def rollback(self, params: RekeyParams, ctx: ExtensionContext) -> RolledBack:
        async with open_store(params.store, create=False) as store:
            if params.to_prefix is None:
                restored = await store.undo(ctx.run_id)
                return RolledBack(restored=restored, message=f"{restored} session(s) put back as they were")
            async with open_store(with_prefix(params.store, params.to_prefix)) as target:
                # The old prefix first: at no moment is a session in neither place.
                restored = await store.undo(ctx.run_id)
                removed = await target.undo(ctx.run_id)
        return RolledBack(
            restored=restored, message=f"{restored} session(s) back under the old prefix, {removed} key(s) under the new one undone"
        )


async def _move(run_id: str, live: list[Record], source: SessionStore, target: SessionStore) -> int:
    """Write to the new prefix, then remember and delete the old keys; both journaled under ``run_id``."""
    if not live:
        return 0
    await target.write_journaled(run_id, live)
    await source.journal_record(run_id, {r["id"]: r for r in live})
    await source.delete_many([r["id"] for r in live])
    return len(live)


async def _live_ids(store: SessionStore, keep: Callable[[Record], bool] = lambda r: True) -> list[str]:
    """Ids of the live sessions for which ``keep`` holds, sorted."""
    now = time.time()
    return sorted([r["id"] async for batch in store.iter_records() for r in batch if not is_expired(r, now) and keep(r)])


async def _compare_with_journal(
    journal: SessionStore, target: SessionStore, run_id: str, expected: Callable[[Record], Record | None], batch_size: int
) -> tuple[int, list[str]]:
    """Check every session the run journaled: the target holds ``expected(prior)``. Returns (checked, wrong ids).

    A session whose prior has expired since may be gone: that is not wrong.
    """
    cursor: str | None = None
    checked, wrong = 0, []
    while True:
        entries, cursor = await journal.journal_scan(run_id, cursor, batch_size)
        held = await target.read_many([sid for sid, _ in entries])
        now = time.time()
        for sid, prior in entries:
            checked += 1
            want = expected(prior) if prior is not None else None
            if held.get(sid) != want and not (prior is not None and is_expired(prior, now) and sid not in held):
                wrong.append(sid)
        if cursor is None:
            return checked, wrong


async def journal_count(store: SessionStore, run_id: str, batch_size: int = 1000) -> int:
    """How many ids the run's journal holds in ``store``."""
    cursor: str | None = None
    total = 0
    while True:
        entries, cursor = await store.journal_scan(run_id, cursor, batch_size)
        total += len(entries)
        if cursor is None:
            return total

