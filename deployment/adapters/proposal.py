"""From an analysis report to a generic adapter configuration.

Each migratable tool becomes a ``tool_aliases`` entry (so callers keep their
tool names) and its module and function are admitted by exactly one
library's ``allowed_modules`` and ``function_filters``; nothing else is
admitted.  Tools that are not migratable are listed under ``custom_tools``
with their reasons: they stay on the custom adapter (a mixed configuration).
When they all belong to one BaseAdapter class, ``custom_adapter`` names it
and the generic adapter serves them through it.
"""

from __future__ import annotations

import sys
from typing import Any

from deployment.adapters.generic import DEFAULT_BLOCKED_FUNCTIONS
from deployment.adapters.model import BASE_ADAPTER, AnalysisReport, Tool

PIP_NAMES = {"sklearn": "scikit-learn", "PIL": "Pillow", "cv2": "opencv-python", "yaml": "PyYAML",
             "skimage": "scikit-image", "bs4": "beautifulsoup4", "dateutil": "python-dateutil"}


def pip_package(top: str) -> str | None:
    """The PyPI distribution a top-level module comes from (``None`` for the standard library)."""
    if top in sys.stdlib_module_names or top == "builtins":
        return None
    return PIP_NAMES.get(top, top)


def alias_for(adapter: str, path: str, tool: Tool) -> dict[str, Any]:
    """The ``tool_aliases`` entry of one migratable tool."""
    assert tool.mapping is not None
    m = tool.mapping
    params = []
    for p in tool.params:
        entry: dict[str, Any] = {"name": p.name, "required": p.required}
        if p.annotation:
            entry["annotation"] = p.annotation
        if not p.required:
            entry["default"] = p.default
        params.append(entry)
    return {
        "target": m.target,
        "args": m.args,
        "kwargs": m.kwargs,
        "params": params,
        "wrap": m.wrap,
        "adapter": adapter,
        "source": f"{path}:{tool.line}",
    }


def propose_config(report: AnalysisReport) -> dict[str, Any]:
    """The generic configuration that serves every migratable tool of ``report``."""
    aliases: dict[str, dict[str, Any]] = {}
    conflicts: dict[str, list[str]] = {}
    custom: dict[str, dict[str, Any]] = {}
    for adapter in report.adapters:
        for tool in adapter.tools:
            if not tool.migratable:
                custom.setdefault(tool.name, {"adapter": adapter.name,
                                              "reasons": [r.category for r in tool.reasons]})
                continue
            entry = alias_for(adapter.name, adapter.path, tool)
            if tool.name in aliases and _call_of(aliases[tool.name]) != _call_of(entry):
                conflicts.setdefault(tool.name, [aliases[tool.name]["adapter"]]).append(adapter.name)
            aliases.setdefault(tool.name, entry)
    for name in conflicts:
        aliases.pop(name)
        custom[name] = {"adapter": ", ".join(conflicts[name]), "reasons": ["conflicting_mappings"]}
    local = {a.module.split(".")[0] for a in report.adapters}
    keeping = {info["adapter"] for info in custom.values()}
    hosts = [a for a in report.adapters if a.name in keeping and a.generation == BASE_ADAPTER]
    return {
        "libraries": _libraries(aliases.values(), local),
        "tool_aliases": dict(sorted(aliases.items())),
        "custom_tools": dict(sorted(custom.items())),
        # One BaseAdapter keeping tools: the generic adapter serves them through it (one pool).
        "custom_adapter": f"{hosts[0].module}.{hosts[0].name}" if len(hosts) == 1 and keeping == {hosts[0].name} else None,
    }


def _call_of(alias: dict[str, Any]) -> tuple:
    return alias["target"], repr(alias["args"]), repr(alias["kwargs"]), repr(alias["wrap"])


def _libraries(aliases, local: set[str]) -> list[dict[str, Any]]:
    """One library per top-level module; modules of the analyzed package itself have no pip package."""
    by_top: dict[str, dict[str, set[str]]] = {}
    for alias in aliases:
        module, _, function = alias["target"].rpartition(".")
        top = module.split(".")[0]
        lib = by_top.setdefault(top, {"modules": set(), "functions": set()})
        lib["modules"].add(module)
        lib["functions"].add(alias["target"][len(top) + 1:])
    return [
        {
            "name": top,
            "module": top,
            "pip_package": None if top in local else pip_package(top),
            "local": top in local,
            "function_filters": sorted(lib["functions"]),
            "security_config": {
                "allowed_modules": sorted(lib["modules"]),
                "blocked_functions": list(DEFAULT_BLOCKED_FUNCTIONS),
            },
        }
        for top, lib in sorted(by_top.items())
    ]
