"""Saved MigrationPlan histories still replay: a change that would break plans in flight fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from client.connect import client_options
from workflows import all_workflows

HISTORIES_DIR = Path(__file__).resolve().parents[1] / "histories"
HISTORIES = sorted(HISTORIES_DIR.glob("plan_*.json"))


def test_every_outcome_has_a_saved_history():
    assert {p.stem for p in HISTORIES} == {"plan_completed", "plan_rolled_back", "plan_indexed_audited", "plan_paused_resumed"}
    # the rolled-back plan took a lock per store, ran three children, then two undo runs, newest first
    events = json.loads((HISTORIES_DIR / "plan_rolled_back.json").read_text())["events"]
    started = [e["startChildWorkflowExecutionInitiatedEventAttributes"] for e in events
               if e["eventType"] == "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED"]
    assert [s["workflowType"]["name"] for s in started] == ["ResourceLock"] * 4 + ["SessionMigration"] * 5
    assert [s["workflowId"].split(".")[-1] for s in started[4:]] == ["one", "two", "three", "two-rollback", "one-rollback"]


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays(path: Path):
    replayer = Replayer(workflows=all_workflows(), **client_options())
    result = await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text()), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def _events(name: str) -> list[dict]:
    return json.loads((HISTORIES_DIR / f"{name}.json").read_text())["events"]


def test_new_histories_hold_the_audit_trail_the_index_and_the_pause():
    indexed = _events("plan_indexed_audited")
    activities = [e["activityTaskScheduledEventAttributes"]["activityType"]["name"] for e in indexed
                  if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"]
    assert activities.count("append_audit_entry") >= 9  # started, locks_taken, 3 steps started and finished, ended
    assert any(e["eventType"] == "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES" for e in indexed)
    children = [e["startChildWorkflowExecutionInitiatedEventAttributes"] for e in indexed
                if e["eventType"] == "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED"]
    assert all("PlanId" in c["searchAttributes"]["indexedFields"] for c in children if c["workflowType"]["name"] != "ResourceLock")
    paused = _events("plan_paused_resumed")
    assert [e["workflowExecutionSignaledEventAttributes"]["signalName"] for e in paused
            if e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"] == ["resume"]
    assert paused[-1]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"
