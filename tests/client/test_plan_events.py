"""The audit entries the plan and schedule commands write themselves: the validation verdict's counts, and a log
that cannot take an entry reported without stopping the command."""

from __future__ import annotations

import textwrap

from client.cli.plan_events import record_event, validation_state
from deployment.audit import open_audit_log
from deployment.plans.check import validate_plan

CONFLICTING = """\
    plan: clash
    migrations:
      - id: one
        type: sessions
        params: {source: "@a", target: "@b"}
      - id: two
        type: sessions
        params: {source: "@a", target: "@b"}
    """


async def test_validation_state_counts_errors_and_conflicts(tmp_path):
    (tmp_path / "plan.yaml").write_text(textwrap.dedent(CONFLICTING))
    found = await validate_plan(str(tmp_path / "plan.yaml"), None, None, tmp_path)
    state = validation_state(found, None)
    assert state["plan"] == "clash" and state["valid"] is False and state["digest"] == found.plan.digest
    assert state["conflicts"] == sum(i.kind == "conflict" for i in found.issues) >= 1
    assert state["errors"] == sum(i.severity == "error" for i in found.issues) >= 1


async def test_an_entry_is_written_with_the_actor(tmp_path, monkeypatch):
    monkeypatch.setenv("SNAKEPIT_AUDIT_URL", f"sqlite://{tmp_path}/audit.db")
    assert await record_event("plan_submitted", "plan-1", ("kim", "ops-2"), {"plan": "p"}, workflow_id="plan-1")
    async with open_audit_log() as log:
        [entry] = await log.entries(migration="plan-1")
    assert (entry.event, entry.actor, entry.host, entry.workflow_id, entry.after) == ("plan_submitted", "kim", "ops-2", "plan-1",
                                                                                      {"plan": "p"})


async def test_a_log_that_cannot_take_it_is_reported_and_the_command_goes_on(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SNAKEPIT_AUDIT_URL", f"sqlite://{tmp_path}/missing/dir/audit.db")
    assert await record_event("plan_validated", "plan:p", ("kim", "ops-2"), {"valid": True}) is False
    assert "warning: the audit log did not take the plan_validated entry of plan:p" in capsys.readouterr().err
