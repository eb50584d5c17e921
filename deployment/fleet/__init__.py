"""Control of running fleets: one interface, drivers ``local``, ``http`` and ``command``.

A fleet is named by a spec string so that workflows can pass it around:

* ``http://host:port`` or ``https://...``: any deployment with the admin endpoints;
* ``local:http://127.0.0.1:port``: the reference fleet (``snakepit-migrate pool start``);
* ``command:/path/hooks.toml``: operator shell hooks per step (see :mod:`deployment.fleet.command`).
"""

from __future__ import annotations

from deployment.errors import BadInput
from deployment.fleet.base import FleetDriver, FleetHealth, InstanceInfo, MigrationMark


def open_fleet(spec: str) -> FleetDriver:
    """The driver for a fleet spec string; raises BadInput for one no driver reads."""
    if spec.startswith("local:"):
        from deployment.fleet.local import LocalFleet

        return LocalFleet(spec[len("local:"):])
    if spec.startswith(("http://", "https://")):
        from deployment.fleet.http import HttpFleet

        return HttpFleet(spec)
    if spec.startswith("command:"):
        from deployment.fleet.command import CommandFleet

        return CommandFleet.from_file(spec[len("command:"):])
    raise BadInput(f"unknown fleet {spec!r}",
                   hint="use http://host:port, local:http://127.0.0.1:port or command:/path/hooks.toml")


__all__ = ["FleetDriver", "FleetHealth", "InstanceInfo", "MigrationMark", "open_fleet"]
