"""The migration metrics every activity records (OpenTelemetry; exported only when telemetry is set up).

``snakepit_migrate.sessions`` (counter, by outcome copied / skipped_expired),
``snakepit_migrate.batch.duration`` (histogram, seconds a batch took to read,
write and check), ``snakepit_migrate.errors`` (counter, by error type) and
``snakepit_migrate.rollbacks`` (counter). Each carries the migration id.
Errors are counted by :class:`ActivityMetricsInterceptor`, which the worker installs.
"""

from __future__ import annotations

import asyncio
import contextlib
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


SAMPLE_TIMEOUT_S = 2.0
FLEET_FIELDS = ("fleet_samples", "fleet_rps_sum", "fleet_p99_ms_max", "fleet_requests", "fleet_errors")


class FleetImpact:
    """The live fleet's traffic (``/health/traffic``) sampled about every ``interval_s`` during one copy slice.

    Added to a cursor's running totals: samples taken, the sum of their
    request rates (the mean is sum / samples), the highest p99 latency seen,
    and the requests and errors the fleet answered between the slice's first
    and last sample.  A fleet that does not report traffic, or does not
    answer, adds nothing: sampling never fails a copy.
    """

    def __init__(self, spec: str | None, interval_s: float = 1.0) -> None:
        self._spec, self._interval = spec, interval_s
        self._task: asyncio.Task[None] | None = None
        self.samples: list[Any] = []
        self._base: dict[str, Any] | None = None
        self._fleet: Any = None

    async def __aenter__(self) -> "FleetImpact":
        if self._spec:
            from deployment.fleet import open_fleet

            try:
                self._fleet = open_fleet(self._spec)
            except Exception as exc:  # e.g. a spec no driver reads: the copy goes on unsampled
                activity.logger.warning("Fleet traffic not sampled: %s", exc)
                return self
            if await self._take():  # one sample before the first batch, however short the slice
                self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._fleet is not None:
            with contextlib.suppress(Exception):
                await self._fleet.close()

    async def _take(self) -> bool:
        """One sample; False when the fleet does not report its traffic (then sampling stops)."""
        assert self._fleet is not None
        try:
            found = await asyncio.wait_for(self._fleet.traffic(), SAMPLE_TIMEOUT_S)
        except Exception:  # a missed sample is only a missed sample
            return True
        if found is None:
            return False
        self.samples.append(found)
        return True

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if not await self._take():
                return

    def sample(self, cursor: Any) -> dict[str, Any]:
        """The ``fleet_*`` figures the slice began with (its first cursor), plus this slice's samples so far."""
        if self._base is None:
            self._base = {k: getattr(cursor, k) for k in FLEET_FIELDS}
        base = self._base
        if not self.samples:
            return dict(base)
        first, last = self.samples[0], self.samples[-1]
        p99s = [t.p99_ms for t in self.samples if t.p99_ms is not None]
        earlier = [base["fleet_p99_ms_max"]] if base["fleet_p99_ms_max"] is not None else []
        return {
            "fleet_samples": base["fleet_samples"] + len(self.samples),
            "fleet_rps_sum": round(base["fleet_rps_sum"] + sum(t.rps for t in self.samples), 2),
            "fleet_p99_ms_max": max([*p99s, *earlier], default=None),
            "fleet_requests": base["fleet_requests"] + last.total_requests - first.total_requests,
            "fleet_errors": base["fleet_errors"] + last.total_errors - first.total_errors,
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
