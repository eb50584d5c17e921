"""Inputs and results of the SessionMigration workflow and its activities.

Only cursors, counts and digests travel through Temporal; session data never does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from deployment.sessions.partition import WHOLE, Partition
from deployment.sessions.verify import VerifyReport

Phase = Literal[
    "pending", "validating", "backup", "dual_write", "copying", "finalizing", "verifying",
    "switching_reads", "soaking", "rolling_back", "copying_back", "done",
]  # fmt: skip
MAX_PARALLELISM = 32
MAX_BATCH_SIZE = 10_000
Status = Literal["completed", "dry_run", "rolled_back", "rollback_failed", "failed"]


class SessionMigrationInput(BaseModel):
    """What to move where. The workflow's single JSON input."""

    source: str = Field(description="store URL to read sessions from")
    target: str = Field(description="store URL to write sessions to")
    batch_size: int = Field(500, ge=1, le=MAX_BATCH_SIZE, description="sessions per read/write batch")
    dry_run: bool = Field(False, description="read and count everything, write nothing")
    overwrite: bool = Field(False, description="replace target sessions that have the same id")
    verify: bool = Field(True, description="compare both stores by digest after the copy")
    slice_seconds: float = Field(2.0, gt=0, le=300, description="how long one copy activity runs before reporting")
    verify_margin_seconds: float = Field(
        30.0, ge=0, description="sessions expiring within this margin of the verification are left out of it"
    )
    fail_after_batches: int | None = Field(
        None, ge=0, description="fault injection: fail the copy after this many batches (for drills and tests)"
    )
    rollback_of: str | None = Field(None, description="undo the completed migration with this id instead of copying")
    zero_downtime: bool = Field(
        False, description="move a store that serves live traffic: dual writes, backfill, verify, switch reads, soak, finalize"
    )
    soak_seconds: float = Field(60.0, ge=0, description="zero downtime: how long reads come from the target before finalizing")
    ack_timeout_seconds: float = Field(60.0, gt=0, description="zero downtime: how long to wait for every instance to follow a mode")
    fleet: str | None = Field(None, description="a fleet (front URL or spec) whose health reports this migration and its phase")
    actor: str | None = Field(None, description="who started it, for the audit log (default: the worker's OS user)")
    actor_host: str | None = Field(None, description="the host it was started from, for the audit log")
    stall_alert_seconds: float | None = Field(
        None, gt=0, description="alert when one copy slice has reported no progress for this long (None: never)"
    )
    search_attributes: bool = Field(False, description="index the run by MigrationType/MigrationPhase (they must be registered)")
    parallelism: int = Field(
        4, ge=1, le=MAX_PARALLELISM,
        description="key-space partitions copied concurrently, each by its own activity (a JSONL end, or fault injection, copies as one)",
    )  # fmt: skip
    rate_limit_per_s: float | None = Field(None, gt=0, description="at most this many sessions read per second (None: no limit)")
    continue_as_new_after_slices: int = Field(
        500, ge=1, description="copy slices one run records before it continues as new (sooner when Temporal suggests it)"
    )
    wait_for_lock: bool = Field(False, description="run alone: wait for the locks of source/target/fleet instead of being refused")
    on_corrupt: Literal["skip", "stop"] = Field(
        "stop", description="a source record that does not decode or lacks fields: stop (and roll back), or skip it, counted and listed"
    )
    resume: "CopyResume | None" = Field(None, description="set by the workflow itself when it continues as new mid-copy")


class CopySettings(BaseModel):
    """What an operator may change while a copy runs (the ``reconfigure`` update, ``pause``/``resume`` signals)."""

    batch_size: int
    parallelism: int
    rate_limit_per_s: float | None = None
    paused: bool = False


class ReconfigureInput(BaseModel):
    """The argument of the ``reconfigure`` update: each field given is changed, the others kept.

    Unconstrained here on purpose: the update's validator checks the values
    and refuses bad ones with a message naming the field and its range.
    """

    batch_size: int | None = None
    parallelism: int | None = None
    rate_limit_per_s: float | None = None


class StoresInput(BaseModel):
    """The two ends of a migration, as activity input."""

    migration_id: str
    source: str
    target: str
    batch_size: int = 500
    overwrite: bool = False
    parallelism: int = 1


class PartitionPlan(BaseModel):
    """How the source's key space is split for a parallel copy."""

    partitions: list[Partition]


class InspectResult(BaseModel):
    """What validation found at both ends."""

    source_total: int
    source_live: int | None = Field(None, description="None when only counted (an empty target has nothing to collide with)")
    source_expired: int | None = None
    target_count: int
    conflicts: int
    conflict_sample: list[str] = []
    target_quota: int | None = None


class TargetInput(BaseModel):
    """One store and the migration acting on it."""

    migration_id: str
    target: str
    require_journal: bool = False


class BackupPoint(BaseModel):
    """The target as found before the first write."""

    target_count: int
    target_digest: str


class CopyCursor(BaseModel):
    """Where a copy stands; heartbeated after every batch and returned after every slice."""

    source_cursor: str | None = None
    target_checkpoint: str | None = None
    scanned: int = 0
    copied: int = 0
    skipped_expired: int = 0
    batches: int = 0
    digest: str = "0:" + "0" * 32
    finished: bool = False
    resumes: int = Field(0, description="how many times a retried attempt resumed from a heartbeated cursor")
    worker_cpu_s: float = Field(0.0, description="CPU seconds the worker process used during the copy slices")
    worker_peak_rss_bytes: int = Field(0, description="the worker process's largest resident memory seen during the copy")
    batch_size: int = Field(0, description="the batch size of the last batch")
    corrupt: int = Field(0, description="corrupt records skipped (on_corrupt=skip)")
    corrupt_ids: list[str] = Field([], description="the first corrupt ids skipped")
    fleet_samples: int = Field(0, description="impact: samples of the live fleet's traffic taken during the copy")
    fleet_rps_sum: float = Field(0.0, description="impact: the sum of the sampled request rates (mean = sum / samples)")
    fleet_p99_ms_max: float | None = Field(None, description="impact: the highest p99 latency the fleet reported during the copy")
    fleet_requests: int = Field(0, description="impact: requests the fleet answered while it was sampled")
    fleet_errors: int = Field(0, description="impact: of those, the ones that failed")


class CopyResume(BaseModel):
    """What a run that continues as new mid-copy hands to the next: cursors, counts and digests, no data.

    The compensation is rebuilt from it: the journal lives in the target.
    """

    started_at: float
    copy_started: float
    sessions_total: int
    target_before: BackupPoint | None = None
    partitions: list[Partition]
    cursors: list[CopyCursor]
    continued: int = Field(1, description="how many times the run has continued as new")
    settings: CopySettings


class CopyInput(BaseModel):
    """One slice of the copy."""

    migration_id: str
    source: str
    target: str
    batch_size: int
    cursor: CopyCursor
    slice_seconds: float = 2.0
    dry_run: bool = False
    fail_after_batches: int | None = None
    only_newer: bool = False
    rate_per_s: float | None = Field(None, description="at most this many sessions read per second by this slice")
    on_corrupt: Literal["skip", "stop"] = "stop"
    partition: Partition = WHOLE
    fleet: str | None = Field(None, description="a live fleet whose traffic the first partition samples for the impact figures")
    read_back: bool = Field(True, description="read every written batch back and compare (off when a digest verification follows)")
    known_absent: bool = Field(False, description="the target was empty at the backup point: journal every prior as absent unread")


class VerifyInput(BaseModel):
    """Compare the live sessions of two stores."""

    source: str
    target: str
    margin_seconds: float = 30.0
    batch_size: int = 500
    tolerate_extra: bool = False
    settle_seconds: float | None = None
    copied_digest: str | None = Field(
        None, description="the set digest of what the copy wrote into a target that was empty: compared with one read of the target"
    )


class UndoResult(BaseModel):
    """What a compensation put back."""

    restored: int


class MigrationProgress(BaseModel):
    """The answer of the ``progress`` query."""

    migration_id: str
    phase: Phase
    done: int = 0
    total: int = 0
    rate_per_s: float = 0.0
    eta_s: float | None = None
    message: str = ""
    settings: CopySettings | None = Field(None, description="the copy's current settings (None before the copy)")
    batch_size: int = Field(0, description="the batch size the copy activities last used")
    partitions: int = 0
    continued: int = Field(0, description="how many times the run has continued as new")


class SessionMigrationResult(BaseModel):
    """What happened, in the figures a person or a script needs."""

    migration_id: str
    status: Status
    source: str
    target: str
    dry_run: bool = False
    sessions_total: int = 0
    sessions_copied: int = 0
    sessions_skipped_expired: int = 0
    sessions_corrupt: int = Field(0, description="corrupt source records skipped (on_corrupt=skip)")
    corrupt_ids: list[str] = Field([], description="the ids of the corrupt records skipped (the first 100 of each partition)")
    batches: int = 0
    copy_resumes: int = 0
    partitions: int = Field(1, description="key-space partitions the copy ran in parallel")
    parallelism: int = Field(0, description="partitions copying at once, at the end")
    rate_limit_per_s: float | None = Field(None, description="the rate limit at the end (None: none)")
    continued_as_new: int = Field(0, description="how many times the run continued as new during the copy")
    batch_size: int = Field(0, description="sessions per batch the copy used")
    copy_seconds: float = Field(0.0, description="wall time of the copy phase")
    copy_sessions_per_s: float = Field(0.0, description="sessions read per second during the copy phase")
    worker_cpu_s: float = Field(0.0, description="impact: CPU seconds of the worker process during the copy")
    worker_peak_rss_bytes: int = Field(0, description="impact: the worker process's peak resident memory during the copy")
    fleet_samples: int = Field(0, description="impact: samples of the live fleet's traffic (/health/traffic) during the copy")
    fleet_rps_mean: float | None = Field(None, description="impact: the fleet's mean request rate while sampled")
    fleet_p99_ms_max: float | None = Field(None, description="impact: the highest p99 latency the fleet reported during the copy")
    fleet_requests: int | None = Field(None, description="impact: requests the fleet answered while sampled")
    fleet_errors: int | None = Field(None, description="impact: of those, the ones that failed")
    source_digest: str | None = None
    target_digest: str | None = None
    target_before: BackupPoint | None = None
    verification: VerifyReport | None = None
    rolled_back: bool = False
    restored: int = 0
    error: str | None = None
    error_type: str | None = Field(None, description="the failure's type, e.g. StoreUnreachable or VerificationFailed")
    failed_phase: Phase | None = None
    started_at: float = 0.0
    duration_s: float = 0.0

    def audit_state(self) -> dict:
        """The outcome in a few figures, for the audit log's last entry of the run."""
        state = self.model_dump(exclude={"source", "target", "verification", "target_before", "migration_id", "started_at"})
        state["error"] = (self.error or "")[:500] or None
        if self.verification is not None:
            v = self.verification
            state["verification"] = {"ok": v.ok, "matched": v.matched, "missing": v.missing_count,
                                     "mismatched": v.mismatched_count, "extra": v.extra_count}  # fmt: skip
        return state


class RoutingInput(BaseModel):
    """Publish a routing mode in the source store."""

    source: str
    mode: Literal["source", "dual_write", "dual_write_read_target", "target"]
    epoch: int
    target: str | None = None
    migration_id: str | None = None


class RoutingStateResult(BaseModel):
    """The routing state a source store holds."""

    mode: str
    epoch: int
    target: str | None = None
    migration_id: str | None = None


class AckInput(BaseModel):
    """Wait until every live instance follows ``epoch``."""

    source: str
    epoch: int
    timeout_seconds: float = 60.0
    fresh_seconds: float = 10.0


class AckResult(BaseModel):
    """The instances that acknowledged."""

    instances: list[str]


SessionMigrationInput.model_rebuild()
