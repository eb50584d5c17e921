"""The one interface a migration uses to control a running fleet.

Steps of a rolling restart map one to one onto it: ``drain`` →
``wait_idle`` → ``restart`` (with a config, which also waits until the
instance is healthy, or raises :class:`InstanceStartFailed` and leaves the old
process serving) → ``undrain``.  ``instance_config`` returns what an instance
runs now, so a caller can roll it back.  Drivers are cheap to build from a
spec string (:func:`deployment.fleet.open_fleet`), so a Temporal activity can
open one per call; every argument and result is JSON-shaped (pydantic).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel


class InstanceInfo(BaseModel):
    """One instance as a fleet reports it."""

    id: str
    state: str  # serving | draining | restarting | down
    config_version: str | None = None
    adapter: str | None = None
    in_flight: int = 0
    # What the instance reports of its session access, e.g. {"mode": "direct", "store": ...};
    # a SessionRouter reports the routing mode it has acknowledged here.
    sessions: dict[str, Any] | None = None


class MigrationMark(BaseModel):
    """The migration a fleet reports in its health: its id and current phase."""

    id: str
    phase: str


class FleetTraffic(BaseModel):
    """``/health/traffic``: what the fleet's clients saw over its last ``window_s`` seconds (latencies None without calls)."""

    window_s: float
    requests: int = 0
    errors: int = 0
    rps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    total_requests: int = 0
    total_errors: int = 0


class FleetHealth(BaseModel):
    """The fleet's ``/health``: ok | degraded | migrating, the instances, the migration."""

    status: str
    instances: list[InstanceInfo]
    migration: MigrationMark | None = None


class FleetDriver(ABC):
    """Control of one fleet: list, drain, wait idle, restart with a config, undrain, health."""

    kind: str = ""

    async def __aenter__(self) -> FleetDriver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Release connections."""

    @abstractmethod
    async def list_instances(self) -> list[InstanceInfo]:
        """Every instance and its state."""

    @abstractmethod
    async def health(self) -> FleetHealth:
        """The fleet's health as its clients see it."""

    async def traffic(self) -> FleetTraffic | None:
        """Recent requests, errors and latency as the fleet's clients saw them; None when the fleet does not report them."""
        return None

    @abstractmethod
    async def drain(self, instance_id: str) -> InstanceInfo:
        """Stop sending new requests to the instance."""

    @abstractmethod
    async def wait_idle(self, instance_id: str, timeout: float) -> InstanceInfo:
        """Wait until the instance has no request in flight; DrainTimeout after ``timeout`` s."""

    @abstractmethod
    async def restart(self, instance_id: str, config: dict[str, Any], timeout: float | None = None,
                      settle: float = 0.0) -> InstanceInfo:
        """Restart the instance on ``config`` and wait until healthy, then ``settle`` seconds more
        of staying healthy; InstanceStartFailed (old config still serving) otherwise."""

    @abstractmethod
    async def undrain(self, instance_id: str) -> InstanceInfo:
        """Send requests to the instance again."""

    @abstractmethod
    async def instance_config(self, instance_id: str) -> dict[str, Any]:
        """The config the instance runs now (for rolling back)."""

    async def set_migration(self, migration_id: str, phase: str) -> None:
        """Report a migration and its phase in the fleet's health (no-op where unsupported)."""

    async def clear_migration(self) -> None:
        """Stop reporting a migration (no-op where unsupported)."""
