"""Side effects only: one module per outside system."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _bound_activities(obj: object) -> list[Callable[..., Any]]:
    found = []
    for name in dir(type(obj)):
        attr = getattr(type(obj), name, None)
        if callable(attr) and hasattr(attr, "__temporal_activity_definition"):
            found.append(getattr(obj, name))
    return found


def all_activities() -> list[Callable[..., Any]]:
    """Every activity the worker registers, bound to one instance per class."""
    from activities.adapters import AdapterActivities
    from activities.alerts import AlertActivities
    from activities.audit import AuditActivities
    from activities.config_files import ConfigFileActivities
    from activities.extensions import ExtensionActivities
    from activities.fleet import FleetActivities
    from activities.plans import PlanActivities
    from activities.session_routing import SessionRoutingActivities
    from activities.sessions import SessionActivities

    instances: list[object] = [SessionActivities(), SessionRoutingActivities(), ConfigFileActivities(), FleetActivities(), ExtensionActivities(),
                                 AdapterActivities(), AuditActivities(), AlertActivities(), PlanActivities()]
    return [fn for obj in instances for fn in _bound_activities(obj)]
