"""Saved SessionMigration histories still replay: a change that would break runs in flight fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from client.connect import client_options
from workflows import all_workflows

HISTORIES = sorted((Path(__file__).resolve().parents[1] / "histories").glob("session_*.json"))


def test_every_outcome_has_a_saved_history():
    assert {p.stem for p in HISTORIES} == {
        "session_completed", "session_rolled_back", "session_zero_downtime",  # recorded before the audit trail
        "session_audit_completed", "session_audit_rolled_back",  # with its patch and append_audit_entry calls
        "session_alerted_rolled_back",  # with the alerts patch: a send_alert call after the last entry
        "session_indexed_completed",  # search attributes and memo upserted at every phase
        "session_watched_completed",  # the stall-alerts patch: a timer raced against every copy slice
        "session_partitioned_completed",  # parallel-copy and lone-locks: a partition plan, parallel slices, lock children
        "session_continued",  # the first run of a copy that continued as new
    }  # fmt: skip


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays(path: Path):
    replayer = Replayer(workflows=all_workflows(), **client_options())
    result = await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text()), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
