"""The migration metrics every activity records (OpenTelemetry; exported only when telemetry is set up).

``snakepit_migrate.sessions`` (counter, by outcome copied / skipped_expired),
``snakepit_migrate.batch.duration`` (histogram, seconds a batch took to read,
write and check), ``snakepit_migrate.errors`` (counter, by error type) and
``snakepit_migrate.rollbacks`` (counter). Each carries the migration id.
Errors are counted by :class:`ActivityMetricsInterceptor`, which the worker installs.
"""

from __future__ import annotations

from typing import Any

import psutil
from opentelemetry import metrics
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

_meter = metrics.get_meter("snakepit_migrate")

sessions = _meter.create_counter("snakepit_migrate.sessions", unit="{session}", description="sessions processed, by outcome")
batch_duration = _meter.create_histogram("snakepit_migrate.batch.duration", unit="s", description="time to read, write and check one batch")
errors = _meter.create_counter("snakepit_migrate.errors", unit="{error}", description="activity failures, by error type")
rollbacks = _meter.create_counter("snakepit_migrate.rollbacks", unit="{rollback}", description="compensations that put a target back")


class ProcessImpact:
    """CPU and memory of this (worker) process during one copy slice, added to a cursor's running totals."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._cpu_start = sum(self._process.cpu_times()[:2])
        self._cpu_before = 0.0  # what the cursor held when this slice began
        self._seen_first = False

    def sample(self, cursor: Any) -> dict[str, Any]:
        """The cursor's ``worker_cpu_s`` and ``worker_peak_rss_bytes`` updated to now."""
        if not self._seen_first:
            self._cpu_before, self._seen_first = cursor.worker_cpu_s, True
        used = sum(self._process.cpu_times()[:2]) - self._cpu_start
        return {
            "worker_cpu_s": round(self._cpu_before + used, 3),
            "worker_peak_rss_bytes": max(cursor.worker_peak_rss_bytes, self._process.memory_info().rss),
        }


def record_batch(migration_id: str, seconds: float, copied: int, skipped_expired: int, dry_run: bool) -> None:
    """One batch of a copy: its duration and its sessions (``read`` instead of ``copied`` in a dry run)."""
    tags = {"migration_id": migration_id}
    batch_duration.record(seconds, tags)
    sessions.add(copied, {**tags, "outcome": "read" if dry_run else "copied"})
    sessions.add(skipped_expired, {**tags, "outcome": "skipped_expired"})


class ActivityMetricsInterceptor(Interceptor):
    """Counts every failed activity attempt in ``snakepit_migrate.errors``, by error type and activity."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CountErrors(next)


class _CountErrors(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except Exception as exc:
            info = activity.info()
            kind = exc.type if isinstance(exc, ApplicationError) and exc.type else type(exc).__name__
            errors.add(1, {"migration_id": info.workflow_id or "", "activity": info.activity_type, "error_type": kind})
            raise
