"""The thread-safe adapter variant: ``__thread_safe__ = True`` and ``@thread_safe_method``.

A host runs requests of an adapter class that declares ``__thread_safe__``
concurrently on threads; other adapters get one request at a time per worker.
``@thread_safe_method`` serialises a method on the instance's lock.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from snakepit_bridge.base_adapter import BaseAdapter, tool

__all__ = ["ThreadSafeAdapter", "thread_safe_method", "tool"]

F = TypeVar("F", bound=Callable[..., Any])


def thread_safe_method(func: F) -> F:
    """Run the method holding the instance's re-entrant lock."""

    @functools.wraps(func)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        lock = getattr(self, "_lock", None)
        if lock is None:
            return func(self, *args, **kwargs)
        with lock:
            return func(self, *args, **kwargs)

    locked.__thread_safe_method__ = True  # type: ignore[attr-defined]
    return locked  # type: ignore[return-value]


class ThreadSafeAdapter(BaseAdapter):
    """An adapter whose requests may run concurrently in one worker."""

    __thread_safe__ = True

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self._local = threading.local()
