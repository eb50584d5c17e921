"""A compatible ``snakepit_bridge`` for the reference fleet's worker processes.

Custom adapters written for upstream Snakepit (``BaseAdapter``, ``@tool``,
``execute_tool``/``call_tool``, ``initialize``/``cleanup``, the session
context, the thread-safe variant) load here unchanged.
"""

from snakepit_bridge.base_adapter import BaseAdapter, StreamChunk, ToolMetadata, tool
from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method
from snakepit_bridge.session_context import SessionContext

__all__ = [
    "BaseAdapter",
    "SessionContext",
    "StreamChunk",
    "ThreadSafeAdapter",
    "ToolMetadata",
    "thread_safe_method",
    "tool",
]
