"""What every CLI verb shares: running coroutines, output, and the error boundary."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from rich.console import Console

T = TypeVar("T")

# Progress and logs go to stderr; stdout is kept for results (one JSON object with --json).
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
out = Console(highlight=False, soft_wrap=True, markup=False)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine to completion from a synchronous CLI verb."""
    return asyncio.run(coro)


def emit_json(obj: Any) -> None:
    """Write exactly one JSON object to stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 2) -> None:
    """Print an error to stderr and exit with ``code`` (no traceback)."""
    err.print(f"error: {message}")
    raise SystemExit(code)
