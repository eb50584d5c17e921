"""Saved ConfigMigration histories still replay: a change to the workflow that breaks runs in flight fails here."""

from __future__ import annotations

import json

import pytest
from tests.deployment.config.config_corpus import CORPUS
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from client.connect import client_options
from workflows.config_migration import ConfigMigrationWorkflow

HISTORIES = sorted((CORPUS / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays(path) -> None:
    text = path.read_text()
    workflow_id = f"config-history-{path.stem}"
    replayer = Replayer(workflows=[ConfigMigrationWorkflow], **client_options())
    await replayer.replay_workflow(WorkflowHistory.from_json(workflow_id, text))


def test_the_three_outcomes_are_covered() -> None:
    assert {p.stem for p in HISTORIES} == {
        "completed", "rolled_back", "refused",  # recorded before the audit trail and the lone-run locks
        "audited_completed", "audited_rolled_back",  # with both: audit entries, a ResourceLock child, an alert
    }  # fmt: skip
    events = {p.stem: len(json.loads(p.read_text())["events"]) for p in HISTORIES}
    assert events["refused"] < events["completed"]
    for name in ("audited_completed", "audited_rolled_back"):
        text = (CORPUS / "histories" / f"{name}.json").read_text()
        assert "append_audit_entry" in text and '"ResourceLock"' in text, name
    assert "send_alert" in (CORPUS / "histories" / "audited_rolled_back.json").read_text()
