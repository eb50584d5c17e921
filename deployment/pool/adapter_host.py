"""Loading an adapter by dotted path and running one request the way upstream does.

Per request: a new adapter instance, ``set_session_context``, ``initialize()``
if present, ``execute_tool(tool_name, arguments, context)``, ``cleanup()``.
Streaming results (an iterator of ``StreamChunk``) are gathered into a list of
their data.  Coroutine hooks are awaited on the calling thread's own loop.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

from snakepit_bridge.base_adapter import BaseAdapter, StreamChunk
from snakepit_bridge.session_context import SessionContext

TOOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,127}$")


class AdapterLoadError(Exception):
    """The adapter path does not name a usable adapter class; the message is the cause."""


class UnknownTool(Exception):
    """The adapter has no such tool."""


def _adapter_in_module(module: Any) -> type | None:
    named = getattr(module, "Adapter", None) or getattr(module, "ADAPTER", None)
    if isinstance(named, type):
        return named
    own = [v for v in vars(module).values()
           if isinstance(v, type) and v.__module__ == module.__name__ and callable(getattr(v, "execute_tool", None))]
    return own[0] if len(own) == 1 else None


def _import(path: str, name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise AdapterLoadError(f"adapter {path}: no module named {exc.name!r}") from None
        raise AdapterLoadError(f"adapter {path}: importing {name} failed: no module named {exc.name!r}") from None
    except Exception as exc:  # an adapter module that fails to import
        raise AdapterLoadError(f"adapter {path}: importing {name} raised {type(exc).__name__}: {exc}") from None


def load_adapter_class(path: str) -> type:
    """The class at ``module.Class``, or the one adapter class the module ``path`` defines."""
    module_name, _, attr = path.rpartition(".")
    module = _import(path, module_name)
    cls = getattr(module, attr, None)
    if cls is None and hasattr(module, "__path__"):
        found = _adapter_in_module(_import(path, path))
        if found is None:
            raise AdapterLoadError(f"adapter {path}: the module defines no single adapter class")
        return found
    if cls is None:
        raise AdapterLoadError(f"adapter {path}: module {module_name} has no attribute {attr!r}")
    if isinstance(cls, type(module)):
        found = _adapter_in_module(cls)
        if found is None:
            raise AdapterLoadError(f"adapter {path}: the module defines no single adapter class")
        return found
    if not isinstance(cls, type) or not callable(getattr(cls, "execute_tool", None)):
        raise AdapterLoadError(f"adapter {path}: {attr} is not an adapter class (it has no execute_tool)")
    return cls


def to_json_value(value: Any) -> Any:
    """A tool result as JSON data; numpy-style scalars and arrays are converted."""
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        pass
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json_value(v) for v in value]
    for method in ("tolist", "item"):
        if callable(getattr(value, method, None)):
            return to_json_value(getattr(value, method)())
    if isinstance(value, float):  # NaN / infinity
        return str(value)
    raise TypeError(f"a {type(value).__name__} result cannot be sent as JSON")


def _settle(value: Any) -> Any:
    return asyncio.run(value) if inspect.iscoroutine(value) else value


def _gather_stream(chunks: Iterator[Any]) -> list[Any]:
    out = []
    for chunk in chunks:
        if isinstance(chunk, StreamChunk):
            out.append(chunk.data)
            if chunk.is_final:
                break
        else:
            out.append(chunk)
    return out


class AdapterHost:
    """One adapter class, ready to serve requests in this process."""

    def __init__(self, cls: type, argv: list[str] | None = None) -> None:
        self.cls = cls
        self.argv = list(argv or [])
        self.thread_safe = bool(getattr(cls, "__thread_safe__", False))
        self.path = f"{cls.__module__}.{cls.__qualname__}"
        self._lock = threading.Lock()
        try:
            probe = cls()
        except Exception as exc:
            raise AdapterLoadError(f"adapter {self.path}: constructing it raised {type(exc).__name__}: {exc}") from None
        get_tools = getattr(probe, "get_tools", None)
        self.tools = [t.to_dict() if hasattr(t, "to_dict") else {"name": str(t)} for t in (get_tools() if get_tools else [])]
        self._own_dispatch = type(probe).execute_tool is not BaseAdapter.execute_tool

    def call(self, tool_name: str, arguments: dict[str, Any], context: SessionContext) -> Any:
        """Run one request on a fresh adapter instance; thread-unsafe adapters one at a time."""
        if self.thread_safe:
            return self._call(tool_name, arguments, context)
        with self._lock:
            return self._call(tool_name, arguments, context)

    def _call(self, tool_name: str, arguments: dict[str, Any], context: SessionContext) -> Any:
        adapter = self.cls()
        if not self._own_dispatch and not callable(getattr(adapter, tool_name, None)):
            raise UnknownTool(f"{self.path} has no tool {tool_name!r}")
        if callable(getattr(adapter, "set_session_context", None)):
            adapter.set_session_context(context)
        try:
            if callable(getattr(adapter, "initialize", None)):
                _settle(adapter.initialize())
            result = _settle(adapter.execute_tool(tool_name, arguments, context))
            if inspect.isgenerator(result) or isinstance(result, StreamChunk):
                result = _gather_stream(iter([result]) if isinstance(result, StreamChunk) else result)
            return to_json_value(result)
        finally:
            if callable(getattr(adapter, "cleanup", None)):
                _settle(adapter.cleanup())
