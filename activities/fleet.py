"""Activities of the rolling restart: every call to a running fleet.

Each opens the fleet's driver from its spec string, does one step, and is
idempotent, so Temporal may retry any of them: draining a drained instance or
restarting one already on the target config does nothing.  Steps that wait
heartbeat while they do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import as_application_errors
from activities.runs import activity_result, completed_run, nothing_to_undo
from deployment.fleet import FleetDriver, InstanceInfo, open_fleet
from deployment.pool.config import parse_pool_config, read_config_file
from deployment.pool.errors import DrainTimeout, InstanceError
from workflows.fleet_models import (
    FleetConfig,
    FleetInput,
    FleetSnapshot,
    InstanceInput,
    InstanceSnapshot,
    InstanceStatus,
    LoadConfigInput,
    MarkInput,
    RestartInput,
    RestartUndo,
    WaitHealthyInput,
    WaitCursor,
    WaitIdleInput,
)

T = TypeVar("T")

HEALTHY_STATES = ("serving", "draining")  # up and answering; draining only means no new traffic
POLL_S = 0.25
HEARTBEAT_S = 1.0


class FleetActivities:
    """Fleet activities; ``fleet_factory`` builds a driver from a fleet spec string."""

    def __init__(self, fleet_factory: Callable[[str], FleetDriver] = open_fleet) -> None:
        self._fleet_factory = fleet_factory

    @asynccontextmanager
    async def _open(self, spec: str) -> AsyncIterator[FleetDriver]:
        driver = self._fleet_factory(spec)
        try:
            yield driver
        finally:
            await driver.close()

    @activity.defn(name="load_fleet_config")
    async def load_fleet_config(self, params: LoadConfigInput) -> FleetConfig:
        """Read the new config once (file or inline) and check the fleet could load it."""
        with as_application_errors():
            raw = read_config_file(params.config_path) if params.config_path is not None else params.config
            spec = parse_pool_config(raw or {}, params.pool)
            return FleetConfig(config=spec.raw, config_version=spec.version, adapter=spec.adapter)

    @activity.defn(name="list_fleet_instances")
    async def list_fleet_instances(self, params: FleetInput) -> FleetSnapshot:
        """Every instance, the config each runs now, and the migration the fleet reports.

        A fleet that does not answer here is a wrong address: permanent, not retried.
        """
        with as_application_errors():
            async with self._open(params.fleet) as fleet:
                health = await fleet.health()
                found = []
                for inst in await fleet.list_instances():
                    found.append(InstanceSnapshot(**inst.model_dump(), config=await fleet.instance_config(inst.id)))
                    activity.heartbeat(inst.id)
                return FleetSnapshot(instances=found, migration=health.migration)

    @activity.defn(name="load_restart_undo")
    async def load_restart_undo(self, migration_id: str) -> RestartUndo:
        """What the completed rolling restart ``migration_id`` changed: the instances it restarted as its history
        recorded them before (``list_fleet_instances``: each one's config), and the version it left them on."""
        result, events = await completed_run(migration_id, "RollingRestart")
        if result.get("status") != "completed":
            raise nothing_to_undo(f"rolling restart {migration_id} is {result.get('status')}: it left nothing to undo")
        found = await activity_result(events, "list_fleet_instances")
        if found is None:
            raise nothing_to_undo(f"rolling restart {migration_id} recorded no fleet snapshot in its history")
        by_id = {i.id: i for i in FleetSnapshot.model_validate(found).instances}
        restarted = [o["id"] for o in result.get("instances", []) if o.get("outcome") == "restarted"]
        missing = [i for i in restarted if i not in by_id or by_id[i].config is None or by_id[i].config_version is None]
        if missing:
            raise nothing_to_undo(f"rolling restart {migration_id} recorded no previous config of {', '.join(missing)}")
        return RestartUndo(instances=[by_id[i] for i in restarted], config_version=result.get("config_version"))

    @activity.defn(name="drain_instance")
    async def drain_instance(self, params: InstanceInput) -> InstanceStatus:
        """Stop sending new requests to the instance (draining a drained one does nothing)."""
        with as_application_errors(unreachable_is_transient=True):
            async with self._open(params.fleet) as fleet:
                return _status(await fleet.drain(params.instance_id))

    @activity.defn(name="wait_instance_idle")
    async def wait_instance_idle(self, params: WaitIdleInput) -> InstanceStatus:
        """Wait until the instance has no request in flight, heartbeating; DrainTimeout after ``timeout_s``.

        A retry keeps the first attempt's deadline (heartbeated), so a worker crash does not extend the wait.
        """
        deadline = _deadline(params.timeout_s)
        with as_application_errors(unreachable_is_transient=True):
            async with self._open(params.fleet) as fleet:
                while True:
                    step = max(0.0, min(HEARTBEAT_S, deadline - time.time()))
                    try:
                        return _status(await fleet.wait_idle(params.instance_id, step))
                    except DrainTimeout as exc:
                        if time.time() >= deadline:
                            raise DrainTimeout(params.instance_id, f"requests still in flight after "
                                                                   f"{params.timeout_s:g}s of draining") from exc
                    activity.heartbeat(WaitCursor(deadline=deadline, state="busy"))

    @activity.defn(name="restart_instance")
    async def restart_instance(self, params: RestartInput) -> InstanceStatus:
        """Restart the instance onto the config and wait until it is healthy and has settled.

        An instance found healthy on ``config_version`` already is left alone
        (a retry after a restart that succeeded); one found restarting (a retry
        while the earlier attempt's restart still runs) is waited for first. On
        failure the fleet keeps the old process serving and InstanceStartFailed
        names the cause.
        """
        deadline = _deadline(params.timeout_s + params.settle_s)
        with as_application_errors(unreachable_is_transient=True):
            async with self._open(params.fleet) as fleet:
                now = await _find(fleet, params.instance_id)
                while now.state == "restarting" and time.time() < deadline:
                    activity.heartbeat(WaitCursor(deadline=deadline, state=now.state))
                    await asyncio.sleep(POLL_S)
                    now = await _find(fleet, params.instance_id)
                if now.config_version == params.config_version and now.state in HEALTHY_STATES:
                    return _status(now, skipped=True)
                restarted = await _heartbeating(
                    fleet.restart(params.instance_id, params.config, params.timeout_s, params.settle_s),
                    WaitCursor(deadline=deadline, state="restarting"),
                )
                return _status(restarted)

    @activity.defn(name="wait_instance_healthy")
    async def wait_instance_healthy(self, params: WaitHealthyInput) -> InstanceStatus:
        """Wait until the fleet reports the instance up on ``config_version`` for ``settle_s`` in a row.

        Raises InstanceUnhealthy (naming the instance and what the fleet
        reported) if that does not happen within ``timeout_s``, or at once if
        the instance, once up, drops out within ``settle_s``: a process that
        dies soon after it started is a failed release, not a slow one. A retry keeps the first
        attempt's deadline (heartbeated).
        """
        deadline = _deadline(params.timeout_s)
        healthy_since: float | None = None
        with as_application_errors(unreachable_is_transient=True):
            async with self._open(params.fleet) as fleet:
                while True:
                    now = await _find(fleet, params.instance_id)
                    up = now.state in HEALTHY_STATES and now.config_version == params.config_version
                    if not up and healthy_since is not None:
                        raise ApplicationError(
                            f"instance {params.instance_id}: went {now.state} "
                            f"{time.monotonic() - healthy_since:.1f}s after it came up on config "
                            f"{params.config_version}",
                            type="InstanceUnhealthy",
                            non_retryable=True,
                        )
                    if up and healthy_since is None:
                        healthy_since = time.monotonic()
                    if healthy_since is not None and time.monotonic() - healthy_since >= params.settle_s:
                        return _status(now)
                    if time.time() >= deadline:
                        raise ApplicationError(
                            f"instance {params.instance_id}: not healthy on config {params.config_version} within "
                            f"{params.timeout_s:g}s (the fleet reports it {now.state} on config {now.config_version})",
                            type="InstanceUnhealthy",
                            non_retryable=True,
                        )
                    activity.heartbeat(WaitCursor(deadline=deadline, state=now.state))
                    await asyncio.sleep(POLL_S)

    @activity.defn(name="undrain_instance")
    async def undrain_instance(self, params: InstanceInput) -> InstanceStatus:
        """Send requests to the instance again (undraining a serving one does nothing)."""
        with as_application_errors(unreachable_is_transient=True):
            async with self._open(params.fleet) as fleet:
                return _status(await fleet.undrain(params.instance_id))

    @activity.defn(name="set_fleet_migration")
    async def set_fleet_migration(self, params: MarkInput) -> None:
        """Report the migration and its phase in the fleet's health, or clear it (``phase`` None)."""
        with as_application_errors(unreachable_is_transient=True):
            async with self._open(params.fleet) as fleet:
                if params.phase is None:
                    await fleet.clear_migration()
                else:
                    await fleet.set_migration(params.migration_id, params.phase)


def _deadline(timeout_s: float) -> float:
    """When a wait ends (epoch seconds): the heartbeated deadline of an earlier attempt, else ``timeout_s`` from now."""
    details = activity.info().heartbeat_details
    if details:
        try:
            return WaitCursor.model_validate(details[0]).deadline
        except ValueError:
            pass
    return time.time() + timeout_s


async def _find(fleet: FleetDriver, instance_id: str) -> InstanceInfo:
    for inst in await fleet.list_instances():
        if inst.id == instance_id:
            return inst
    raise InstanceError(instance_id, "the fleet no longer lists this instance")


def _status(inst: InstanceInfo, skipped: bool = False) -> InstanceStatus:
    return InstanceStatus(id=inst.id, state=inst.state, config_version=inst.config_version, skipped=skipped)


async def _heartbeating(step: Awaitable[T], detail: WaitCursor) -> T:
    """Await one long driver call, heartbeating every second meanwhile."""
    task = asyncio.ensure_future(step)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_S)
            if done:
                return task.result()
            activity.heartbeat(detail)
    finally:
        task.cancel()
