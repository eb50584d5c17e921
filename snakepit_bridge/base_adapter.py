"""The adapter base class of the Snakepit Python bridge (0.4 onward), compatible.

A custom adapter written for upstream Snakepit imports
``from snakepit_bridge.base_adapter import BaseAdapter, tool`` and loads here
unchanged.  Per request the host makes a new instance, hands it a session
context (:meth:`BaseAdapter.set_session_context`), calls ``initialize()`` if
present, then ``execute_tool(tool_name, arguments, context)`` and finally
``cleanup()``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BaseAdapter", "StreamChunk", "ToolMetadata", "tool"]


@dataclass
class StreamChunk:
    """One piece of a streaming tool's output; the last one has ``is_final``."""

    data: Any
    is_final: bool = False


@dataclass
class ToolMetadata:
    """What ``@tool`` records about a method."""

    name: str
    description: str = ""
    supports_streaming: bool = False
    required_variables: list[str] = field(default_factory=list)
    parameters: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as a worker lists its tools."""
        return {
            "name": self.name,
            "description": self.description,
            "supports_streaming": self.supports_streaming,
            "required_variables": list(self.required_variables),
            "parameters": [dict(p) for p in self.parameters],
        }


def _parameters(func: Callable[..., Any]) -> list[dict[str, Any]]:
    params = []
    for name, p in inspect.signature(func).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = p.annotation
        if annotation is inspect.Parameter.empty:
            type_name = "any"
        elif isinstance(annotation, str):
            type_name = annotation
        else:
            type_name = getattr(annotation, "__name__", str(annotation))
        params.append({"name": name, "type": type_name, "required": p.default is inspect.Parameter.empty})
    return params


def tool(
    description: str = "",
    supports_streaming: bool = False,
    required_variables: list[str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a method as a tool; parameters come from its signature."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func._tool_metadata = ToolMetadata(  # type: ignore[attr-defined]
            name=func.__name__,
            description=description or (inspect.getdoc(func) or "").split("\n")[0],
            supports_streaming=supports_streaming,
            required_variables=list(required_variables or []),
            parameters=_parameters(func),
        )
        return func

    return decorate


class BaseAdapter:
    """Base of custom adapters: ``@tool`` methods, reached by ``call_tool``."""

    def __init__(self) -> None:
        self.session_context: Any = None

    def set_session_context(self, session_context: Any) -> None:
        """Called by the host before each request with that request's session."""
        self.session_context = session_context

    def get_tools(self) -> list[ToolMetadata]:
        """The ``@tool`` methods of this adapter, in name order."""
        found: dict[str, ToolMetadata] = {}
        for klass in reversed(type(self).__mro__):
            for name, member in vars(klass).items():
                meta = getattr(member, "_tool_metadata", None)
                if isinstance(meta, ToolMetadata):
                    found[name] = meta
                elif name in found:
                    del found[name]  # overridden without @tool
        return [found[n] for n in sorted(found)]

    def call_tool(self, tool_name: str, **arguments: Any) -> Any:
        """Plain ``getattr`` dispatch, as upstream: any callable attribute is reachable."""
        method = getattr(self, tool_name, None)
        if method is None or not callable(method):
            raise AttributeError(f"{type(self).__name__} has no tool {tool_name!r}")
        return method(**arguments)

    def execute_tool(self, tool_name: str, arguments: dict[str, Any], context: Any) -> Any:
        """Run one tool; the usual body, overridden by adapters that dispatch themselves."""
        return self.call_tool(tool_name, **arguments)
