"""The copy phase of SessionMigration in parallel partitions, as workflow state.

Deterministic orchestration only: which partition copies its next slice
when, under the operator's settings (parallelism, rate limit, batch size,
pause), and when the run should hand over to a new one (continue-as-new).
The slices themselves are activities the workflow starts through ``run_slice``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from deployment.sessions.digest import SetDigest
    from deployment.sessions.partition import Partition
    from workflows.session_models import MAX_BATCH_SIZE, CopyCursor, CopySettings, ReconfigureInput

LISTED_CORRUPT = 100

# (partition, its cursor, batch size, rate limit of this slice) -> the cursor after the slice
SliceRunner = Callable[[Partition, CopyCursor, int, "float | None"], Awaitable[CopyCursor]]


class PartitionedCopy:
    """Partitions, their cursors and the settings an operator may change while they copy."""

    def __init__(self, settings: CopySettings) -> None:
        self.settings = settings
        self.partitions: list[Partition] = []
        self.cursors: list[CopyCursor] = []
        self.continued = 0  # how many runs handed over before this one
        self.handover = False  # this run stops at the next slice boundary and continues as new
        self.last_batch_size = 0  # what the latest slice used
        self._running = 0
        self._slices = 0

    def start(self, partitions: list[Partition], cursors: list[CopyCursor] | None = None) -> None:
        """Begin (or, after continue-as-new, go on) with these partitions and cursors."""
        self.partitions = partitions
        self.cursors = cursors or [CopyCursor() for _ in partitions]

    @property
    def merged(self) -> CopyCursor:
        """Every partition's cursor as one (see :func:`merge`), with the batch size of the latest slice."""
        merged = merge(self.cursors) if self.cursors else CopyCursor()
        merged.batch_size = self.last_batch_size or merged.batch_size
        return merged

    def check(self, change: ReconfigureInput, finished: bool) -> None:
        """Refuse a change that cannot apply, naming each bad value and its range (the update's validator)."""
        problems = []
        if finished:
            problems.append("the migration has ended: there is no copy to reconfigure")
        if change.batch_size is None and change.parallelism is None and change.rate_limit_per_s is None:
            problems.append("nothing to change: give a rate, a batch size or a parallelism")
        if change.batch_size is not None and not 1 <= change.batch_size <= MAX_BATCH_SIZE:
            problems.append(f"batch size {change.batch_size} is out of range: give 1 to {MAX_BATCH_SIZE}")
        if change.rate_limit_per_s is not None and not change.rate_limit_per_s > 0:
            problems.append(f"rate {change.rate_limit_per_s:g} sessions/s is not positive: give a number > 0")
        most = len(self.partitions) or self.settings.parallelism
        if change.parallelism is not None and not 1 <= change.parallelism <= most:
            problems.append(
                f"parallelism {change.parallelism} is out of range: this copy has {most} partition(s), give 1 to {most}"
            )
        if problems:
            raise ValueError("; ".join(problems))

    def apply(self, change: ReconfigureInput) -> CopySettings:
        """Take a checked change; running slices finish with the old settings, the next ones use these."""
        updates = change.model_dump(exclude_none=True)
        self.settings = self.settings.model_copy(update=updates)
        workflow.logger.info("Copy reconfigured: %s", updates)
        return self.settings

    async def run(
        self,
        run_slice: SliceRunner,
        on_slice: Callable[[CopyCursor], None],
        stop: Callable[[], bool],
        hand_over_after: int | None,
    ) -> CopyCursor:
        """Copy every partition to its end (or to a hand-over), at most ``parallelism`` at a time.

        ``stop`` (an operator's rollback) ends a wait for a free slot or for a
        resume. A failing partition cancels the others and waits until they
        have stopped, so nothing compensates while a slice still writes.
        ``hand_over_after`` slices in this run (or Temporal's suggestion)
        make every partition stop at its next slice boundary.
        """
        tasks = [asyncio.ensure_future(self._partition(i, run_slice, on_slice, stop, hand_over_after)) for i in range(len(self.partitions))]
        try:
            await workflow.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return self.merged

    async def _partition(
        self,
        i: int,
        run_slice: SliceRunner,
        on_slice: Callable[[CopyCursor], None],
        stop: Callable[[], bool],
        hand_over_after: int | None,
    ) -> None:
        while not self.cursors[i].finished:
            await workflow.wait_condition(
                lambda: stop() or self.handover or (not self.settings.paused and self._running < self.settings.parallelism)
            )
            if self.handover:
                return
            self._running += 1
            try:
                s = self.settings
                rate = None if s.rate_limit_per_s is None else s.rate_limit_per_s / min(s.parallelism, len(self.partitions))
                self.cursors[i] = await run_slice(self.partitions[i], self.cursors[i], s.batch_size, rate)
                self.last_batch_size = self.cursors[i].batch_size
            finally:
                self._running -= 1
            self._slices += 1
            on_slice(self.merged)
            if hand_over_after is not None and not self.merged.finished:
                if self._slices >= hand_over_after or workflow.info().is_continue_as_new_suggested():
                    self.handover = True


def merge(cursors: list[CopyCursor]) -> CopyCursor:
    """The cursors of parallel partitions as one: counts and digests added, finished when all are.

    The partitions share the worker process, so its CPU time and peak memory
    are the largest any partition saw, not a sum.
    """
    digest = SetDigest()
    for c in cursors:
        digest = digest.merge(SetDigest.parse(c.digest))
    return CopyCursor(
        scanned=sum(c.scanned for c in cursors),
        copied=sum(c.copied for c in cursors),
        skipped_expired=sum(c.skipped_expired for c in cursors),
        corrupt=sum(c.corrupt for c in cursors),
        corrupt_ids=[sid for c in cursors for sid in c.corrupt_ids][:LISTED_CORRUPT],
        batches=sum(c.batches for c in cursors),
        resumes=sum(c.resumes for c in cursors),
        digest=str(digest),
        finished=all(c.finished for c in cursors),
        worker_cpu_s=max(c.worker_cpu_s for c in cursors),
        worker_peak_rss_bytes=max(c.worker_peak_rss_bytes for c in cursors),
        batch_size=max(c.batch_size for c in cursors),
        fleet_samples=sum(c.fleet_samples for c in cursors),  # only the first partition samples the fleet
        fleet_rps_sum=sum(c.fleet_rps_sum for c in cursors),
        fleet_p99_ms_max=max((c.fleet_p99_ms_max for c in cursors if c.fleet_p99_ms_max is not None), default=None),
        fleet_requests=sum(c.fleet_requests for c in cursors),
        fleet_errors=sum(c.fleet_errors for c in cursors),
    )
