"""Activities that steer live session routing during a zero-downtime move.

They write the routing control record in the source store, wait for every
live fleet instance to acknowledge it, and clean up after the switch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import as_application_errors
from deployment.sessions.record import TOMBSTONE, is_expired
from deployment.sessions.router import RoutingState, read_routing, routing_acks, write_routing
from deployment.sessions.stores import open_store
from deployment.sessions.stores.base import SessionStore
from workflows.session_models import AckInput, AckResult, RoutingInput, RoutingStateResult, StoresInput, TargetInput


class SessionRoutingActivities:
    """Routing control; ``store_factory`` opens a store from its URL."""

    def __init__(self, store_factory: Callable[..., SessionStore] = open_store) -> None:
        self._store_factory = store_factory

    @asynccontextmanager
    async def _open(self, url: str) -> AsyncIterator[SessionStore]:
        store = self._store_factory(url)
        await store.open()
        try:
            yield store
        finally:
            await store.close()

    @activity.defn(name="get_session_routing")
    async def get_session_routing(self, source: str) -> RoutingStateResult:
        """The routing state the source store holds now."""
        with as_application_errors(unreachable_is_transient=True):
            async with self._open(source) as store:
                state = await read_routing(store)
                return RoutingStateResult(mode=state.mode, epoch=state.epoch, target=state.target, migration_id=state.migration_id)

    @activity.defn(name="set_session_routing")
    async def set_session_routing(self, params: RoutingInput) -> None:
        """Publish a routing mode; instances follow it at their next refresh."""
        with as_application_errors(unreachable_is_transient=True):
            async with self._open(params.source) as store:
                await write_routing(store, RoutingState(params.mode, params.epoch, params.target, params.migration_id))
        activity.logger.info("Routing of %s set to %s (epoch %d)", params.source, params.mode, params.epoch)

    @activity.defn(name="wait_for_routing_acks")
    async def wait_for_routing_acks(self, params: AckInput) -> AckResult:
        """Wait until every instance seen in the last ``fresh_seconds`` follows ``epoch``.

        Fails (not retried) after ``timeout_seconds``, naming the instances that lag.
        """
        deadline = time.monotonic() + params.timeout_seconds
        with as_application_errors(unreachable_is_transient=True):
            async with self._open(params.source) as store:
                while True:
                    acks = await routing_acks(store, params.fresh_seconds)
                    lagging = sorted(i for i, a in acks.items() if int(a.get("epoch", 0)) < params.epoch)
                    if not lagging:
                        return AckResult(instances=sorted(acks))
                    if time.monotonic() > deadline:
                        raise ApplicationError(
                            f"instances {', '.join(lagging)} did not acknowledge routing epoch {params.epoch} "
                            f"within {params.timeout_seconds:.0f} s",
                            type="RoutingNotAcknowledged",
                            non_retryable=True,
                        )
                    activity.heartbeat(lagging)
                    await asyncio.sleep(0.1)

    @activity.defn(name="purge_session_tombstones")
    async def purge_session_tombstones(self, params: TargetInput) -> int:
        """After the switch, drop the tombstones dual writes left in the target."""
        with as_application_errors(unreachable_is_transient=True):
            async with self._open(params.target) as store:
                purged = 0
                async for batch in store.iter_records():
                    stones = [r["id"] for r in batch if r.get(TOMBSTONE)]
                    if stones:
                        await store.delete_many(stones)
                        purged += len(stones)
                    activity.heartbeat(purged)
                return purged

    @activity.defn(name="mirror_session_deletes")
    async def mirror_session_deletes(self, params: StoresInput) -> int:
        """Delete from ``target`` the live sessions ``source`` no longer has (copying back after a switch)."""
        with as_application_errors(unreachable_is_transient=True):
            async with self._open(params.source) as source, self._open(params.target) as target:
                removed = 0
                now = time.time()
                async for batch in target.iter_records(params.batch_size):
                    ids = [r["id"] for r in batch if not is_expired(r, now)]
                    present = await source.read_many(ids)
                    gone = [i for i in ids if i not in present or is_expired(present[i], now)]
                    if gone:
                        await target.journal_record(params.migration_id, await target.read_many(gone))
                        await target.delete_many(gone)
                        removed += len(gone)
                    activity.heartbeat(removed)
                return removed
