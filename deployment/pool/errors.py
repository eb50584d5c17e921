"""Errors of the reference fleet and of the drivers that control fleets.

Each carries what a user needs: the instance it concerns and the cause.  The
front sends them as ``{"error": {"type", "message", "instance", "cause"}}``
and :func:`from_payload` turns that back into the same class on the driver
side, so a CLI verb or an activity sees one error whatever the transport.
"""

from __future__ import annotations

from typing import Any

from deployment.errors import BadInput, MigrateError


class PoolConfigError(BadInput):
    """A deployment config the fleet cannot load (file, syntax, keys)."""


class InstanceError(MigrateError):
    """Something went wrong with one instance; names the instance and the cause."""

    http_status = 500

    def __init__(self, instance: str, cause: str, *, hint: str | None = None) -> None:
        super().__init__(f"instance {instance}: {cause}", hint=hint)
        self.instance = instance
        self.cause = cause


class InstanceStartFailed(InstanceError, BadInput):
    """An instance did not come up on a config: unknown adapter, bad config, never healthy.

    The fleet keeps the instance's previous process serving on its old config.
    """

    http_status = 422


class UnknownInstance(InstanceError, BadInput):
    """No instance has this id."""

    http_status = 404


class DrainTimeout(InstanceError):
    """An instance still had requests in flight when the wait ran out."""

    http_status = 409


class FleetUnreachable(BadInput):
    """The fleet's front or admin endpoint did not answer."""


class FleetStartFailed(BadInput):
    """A fleet process exited before it served; the message carries its error output."""


class FleetLeftRunning(MigrateError):
    """A fleet that was stopped left processes behind (or exited with an error)."""


_BY_NAME: dict[str, type[InstanceError]] = {
    cls.__name__: cls for cls in (InstanceError, InstanceStartFailed, UnknownInstance, DrainTimeout)
}


def to_payload(exc: MigrateError) -> dict[str, Any]:
    """The JSON error body the front sends for ``exc``."""
    body: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, InstanceError):
        body.update(instance=exc.instance, cause=exc.cause)
    return {"error": body}


def from_payload(payload: Any, status: int) -> MigrateError:
    """The error a driver raises for an error body received from a front."""
    body = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(body, dict):
        return MigrateError(f"the fleet answered HTTP {status}: {payload!r}"[:500])
    cls = _BY_NAME.get(str(body.get("type")))
    if cls is not None and "instance" in body:
        return cls(str(body["instance"]), str(body.get("cause", "")))
    if body.get("type") == "PoolConfigError":
        return PoolConfigError(str(body.get("message", "")))
    message = f"the fleet answered HTTP {status}: {body.get('message') or body}"
    return BadInput(message) if 400 <= status < 500 else MigrateError(message)
