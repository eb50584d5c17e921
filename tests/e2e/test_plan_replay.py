"""Saved MigrationPlan histories still replay: a change that would break plans in flight fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from client.connect import client_options
from workflows import all_workflows

HISTORIES = sorted((Path(__file__).resolve().parents[1] / "histories").glob("plan_*.json"))


def test_every_outcome_has_a_saved_history():
    assert {p.stem for p in HISTORIES} == {"plan_completed", "plan_rolled_back"}
    # the rolled-back plan took a lock per store, ran three children, then two undo runs, newest first
    events = json.loads((HISTORIES[1]).read_text())["events"]
    started = [e["startChildWorkflowExecutionInitiatedEventAttributes"] for e in events
               if e["eventType"] == "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED"]
    assert [s["workflowType"]["name"] for s in started] == ["ResourceLock"] * 4 + ["SessionMigration"] * 5
    assert [s["workflowId"].split(".")[-1] for s in started[4:]] == ["one", "two", "three", "two-rollback", "one-rollback"]


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays(path: Path):
    replayer = Replayer(workflows=all_workflows(), **client_options())
    result = await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text()), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
