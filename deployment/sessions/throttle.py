"""Adaptive throttling of a copy from what the live system reports: pure logic, no I/O.

The copy feeds a :class:`Throttle` one :class:`Sample` at a time (the fleet's
p99 latency from its health endpoint, the stores' response time, errors
seen) and gets back a :class:`Decision`: a throttle level and the batch
size, concurrency and pause between batches that go with it.  Level 0 is
full speed; each level up halves batch size and concurrency and doubles the
pause.  It backs off at once when the fleet's p99 exceeds its budget (by
default 20% over the baseline measured before the migration), when a store
answers more than twice as slowly as at first, or on errors; it speeds up
one level at a time, only after ``calm_samples`` samples in a row within
90% of the budget, so it does not oscillate.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    """What was measured since the last sample; ``None`` where nothing was measured."""

    fleet_p99_ms: float | None = None
    store_ms: float | None = None
    errors: int = 0


@dataclass(frozen=True)
class Decision:
    """The settings to copy with until the next sample, and why."""

    level: int
    batch_size: int
    parallelism: int
    delay_s: float
    reason: str


class Throttle:
    """Keeps the fleet's p99 within budget by choosing a throttle level from successive samples."""

    def __init__(
        self,
        *,
        baseline_p99_ms: float,
        max_batch_size: int,
        max_parallelism: int,
        budget: float = 1.2,
        store_baseline_ms: float | None = None,
        max_level: int = 6,
        calm_samples: int = 3,
    ) -> None:
        if baseline_p99_ms <= 0 or budget < 1 or max_batch_size < 1 or max_parallelism < 1:
            raise ValueError("baseline and sizes must be positive and the budget at least 1.0")
        self.limit_ms = baseline_p99_ms * budget
        self.max_batch_size, self.max_parallelism, self.max_level = max_batch_size, max_parallelism, max_level
        self.store_baseline_ms = store_baseline_ms
        self.calm_samples = calm_samples
        self.level = 0
        self._calm = 0

    def decide(self, sample: Sample) -> Decision:
        """The decision after ``sample``: back off on any sign of strain, recover slowly when calm."""
        strain = self._strain(sample)
        if strain:
            self._calm = 0
            self.level = min(self.level + (2 if sample.errors else 1), self.max_level)
            return self._decision(f"back off: {strain}")
        calm = sample.fleet_p99_ms is None or sample.fleet_p99_ms <= 0.9 * self.limit_ms
        self._calm = self._calm + 1 if calm else 0
        if self.level > 0 and self._calm >= self.calm_samples:
            self.level -= 1
            self._calm = 0
            return self._decision(f"speed up: {self.calm_samples} calm samples in a row")
        return self._decision("hold")

    def _strain(self, s: Sample) -> str | None:
        if s.errors:
            return f"{s.errors} store error(s)"
        if s.fleet_p99_ms is not None and s.fleet_p99_ms > self.limit_ms:
            return f"fleet p99 {s.fleet_p99_ms:.0f} ms over the budget of {self.limit_ms:.0f} ms"
        if s.store_ms is not None:
            if self.store_baseline_ms is None:
                self.store_baseline_ms = s.store_ms  # the first answer is the store's baseline
            elif s.store_ms > 2 * self.store_baseline_ms:
                return f"store answers in {s.store_ms:.0f} ms, over twice its {self.store_baseline_ms:.0f} ms"
        return None

    def _decision(self, reason: str) -> Decision:
        return Decision(
            level=self.level,
            batch_size=max(1, self.max_batch_size >> self.level),
            parallelism=max(1, self.max_parallelism >> self.level),
            delay_s=0.0 if self.level == 0 else round(0.05 * 2 ** (self.level - 1), 3),
            reason=reason,
        )
