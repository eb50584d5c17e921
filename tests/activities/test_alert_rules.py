"""Which last entries of a run raise an alert, and what it says (pure rules of workflows/audit_trail.py)."""

from __future__ import annotations

from workflows.audit_models import AuditEventInput
from workflows.audit_trail import alert_for


def ended(**state) -> AuditEventInput:
    return AuditEventInput(event="ended", migration_id="m-1", at=1.0, after=state)


def test_a_verification_mismatch_is_its_own_kind_with_the_ids_in_the_error():
    alert = alert_for(ended(status="rolled_back", restored=7, failed_phase="verifying", error_type="VerificationFailed",
                            error="verification failed: 1 missing (missing: ['s-9'])"))  # fmt: skip
    assert alert.kind == "verification_mismatch" and alert.step == "verifying" and "s-9" in alert.error
    assert alert.action == "rolled back: 7 record(s) put back as they were found"


def test_a_failed_rollback_says_the_target_needs_repair():
    alert = alert_for(ended(status="rollback_failed", error="x; and the rollback failed: y", failed_phase="copying"))
    assert alert.kind == "rollback_failed" and "run the rollback again" in alert.action


def test_successes_dry_runs_requested_undos_and_other_entries_raise_none():
    assert alert_for(ended(status="completed", error=None)) is None
    assert alert_for(ended(status="dry_run", error=None)) is None
    assert alert_for(ended(status="rolled_back", error=None, restored=3)) is None  # an undo someone asked for, done
    assert alert_for(AuditEventInput(event="phase", migration_id="m-1", at=1.0, after={"status": "failed", "error": "e"})) is None
