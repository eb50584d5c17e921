"""The ``http`` driver: any deployment exposing the reference fleet's admin endpoints.

With ``SNAKEPIT_ADMIN_TOKEN`` set, every request carries ``Authorization: Bearer <token>``.

Errors come back typed: a ``{"error": {"type", "instance", "cause"}}`` body
becomes the same :mod:`deployment.pool.errors` class the front raised.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp

from deployment.fleet.base import FleetDriver, FleetHealth, FleetTraffic, InstanceInfo
from deployment.errors import MigrateError
from deployment.pool.errors import FleetUnreachable, from_payload
from deployment.pool.front import ADMIN_TOKEN_ENV
from deployment.sessions.stores.base import redact_url

# How long an admin call may take beyond the wait it asks the fleet for.
SLACK = 15.0


class HttpFleet(FleetDriver):
    """A fleet reached over HTTP at ``url`` (admin under ``admin_prefix``)."""

    kind = "http"

    def __init__(self, url: str, *, admin_prefix: str = "/admin", headers: dict[str, str] | None = None) -> None:
        self.url = url.rstrip("/")
        self.admin = self.url + "/" + admin_prefix.strip("/")
        self.headers = dict(headers or {})
        token = os.environ.get(ADMIN_TOKEN_ENV)
        if token and "Authorization" not in self.headers:
            self.headers["Authorization"] = f"Bearer {token}"
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(self, method: str, url: str, body: dict[str, Any] | None = None,
                       wait: float = 0.0) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self.headers)
        try:
            async with self._session.request(method, url, json=body,
                                             timeout=aiohttp.ClientTimeout(total=wait + SLACK)) as resp:
                payload = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise FleetUnreachable(f"fleet at {redact_url(self.url)} did not answer {method} {url[len(self.url):]}: "
                                   f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        if status >= 400:
            raise from_payload(payload, status)
        return payload

    async def list_instances(self) -> list[InstanceInfo]:
        payload = await self._request("GET", f"{self.admin}/instances")
        return [InstanceInfo.model_validate(i) for i in payload["instances"]]

    async def health(self) -> FleetHealth:
        return FleetHealth.model_validate(await self._request("GET", f"{self.url}/health"))

    async def traffic(self) -> FleetTraffic | None:
        """``GET /health/traffic``; None for a deployment that does not serve it (any 4xx)."""
        try:
            return FleetTraffic.model_validate(await self._request("GET", f"{self.url}/health/traffic"))
        except MigrateError as exc:
            if isinstance(exc, FleetUnreachable):
                raise
            return None

    async def drain(self, instance_id: str) -> InstanceInfo:
        return InstanceInfo.model_validate(await self._request("POST", f"{self.admin}/instances/{instance_id}/drain"))

    async def wait_idle(self, instance_id: str, timeout: float) -> InstanceInfo:
        payload = await self._request("POST", f"{self.admin}/instances/{instance_id}/wait-idle",
                                      {"timeout": timeout}, wait=timeout)
        return InstanceInfo.model_validate(payload)

    async def restart(self, instance_id: str, config: dict[str, Any], timeout: float | None = None,
                      settle: float = 0.0) -> InstanceInfo:
        body: dict[str, Any] = {"config": config, "settle": settle}
        if timeout is not None:
            body["timeout"] = timeout
        payload = await self._request("POST", f"{self.admin}/instances/{instance_id}/restart", body,
                                      wait=(timeout or 60.0) + settle)
        return InstanceInfo.model_validate(payload)

    async def undrain(self, instance_id: str) -> InstanceInfo:
        return InstanceInfo.model_validate(await self._request("POST", f"{self.admin}/instances/{instance_id}/undrain"))

    async def instance_config(self, instance_id: str) -> dict[str, Any]:
        return (await self._request("GET", f"{self.admin}/instances/{instance_id}/config"))["config"]

    async def set_migration(self, migration_id: str, phase: str) -> None:
        await self._request("PUT", f"{self.admin}/migration", {"id": migration_id, "phase": phase})

    async def clear_migration(self) -> None:
        await self._request("DELETE", f"{self.admin}/migration")

    async def shutdown(self) -> None:
        """Ask the fleet to stop (the reference fleet's ``/admin/shutdown``)."""
        await self._request("POST", f"{self.admin}/shutdown")
