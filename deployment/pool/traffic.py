"""What the fleet's clients saw lately: requests, errors and latency over a sliding window, for ``/health``.

A migration samples it during its copy (the impact figures of its report),
and a throttle can compare it with the level before the migration.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

WINDOW_S = 10.0


def percentile(sorted_ms: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of already sorted values."""
    return sorted_ms[max(math.ceil(q / 100 * len(sorted_ms)) - 1, 0)]


class TrafficWindow:
    """Every answered call of the last ``window_s`` seconds (its latency, and whether it succeeded)."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._calls: deque[tuple[float, float, bool]] = deque()  # (monotonic time, ms, ok)
        self.total = 0
        self.total_errors = 0

    def record(self, ms: float, ok: bool, now: float | None = None) -> None:
        """One call answered after ``ms`` milliseconds."""
        self._calls.append((time.monotonic() if now is None else now, ms, ok))
        self.total += 1
        self.total_errors += 0 if ok else 1

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Requests, errors, rate and p50/p99 latency of the window (latencies None when it saw no call)."""
        now = time.monotonic() if now is None else now
        while self._calls and self._calls[0][0] < now - self.window_s:
            self._calls.popleft()
        latencies = sorted(ms for _, ms, _ in self._calls)
        errors = sum(1 for _, _, ok in self._calls if not ok)
        return {
            "window_s": self.window_s,
            "requests": len(latencies),
            "errors": errors,
            "rps": round(len(latencies) / self.window_s, 2),
            "p50_ms": round(percentile(latencies, 50), 2) if latencies else None,
            "p99_ms": round(percentile(latencies, 99), 2) if latencies else None,
            "total_requests": self.total,
            "total_errors": self.total_errors,
        }
