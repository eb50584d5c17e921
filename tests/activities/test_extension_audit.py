"""What an extension writes through ``ctx.audit`` lands in the audit log with the run's ids, in order;
an audit log that cannot be written does not fail the step (the gap is logged)."""

from __future__ import annotations

import logging

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.extensions import ExtensionActivities
from deployment.audit import open_audit_log
from tests.deployment.extensions.test_activities import CALLS, Counter, step
from workflows.extension_models import ApplyCursor, ApplyInput


class Chatty(Counter):
    """Counter whose plan writes an entry too big for the audit log."""

    async def plan(self, params, ctx):
        ctx.audit("dump", rows=["x" * 100] * 200)
        return await super().plan(params, ctx)


async def test_entries_land_in_the_log_with_the_runs_ids_in_order(tmp_path, monkeypatch):
    url = f"sqlite://{tmp_path}/audit.db"
    monkeypatch.setenv("SNAKEPIT_AUDIT_URL", url)
    CALLS.clear()
    env = ActivityEnvironment()
    acts = ExtensionActivities(loader=lambda ref: Counter)
    done = await env.run(acts.apply_extension, ApplyInput(step=step(version="1.0.0", actor="erin", actor_host="ops2"),
                                                          cursor=ApplyCursor(), slice_seconds=60))  # fmt: skip
    assert done.finished and done.checkpoints == 5
    async with open_audit_log(url) as log:
        entries = await log.entries()
        assert (await log.verify()).ok
    info = env.info
    assert [e.event for e in entries] == ["extension.apply.slice"] + ["extension.count"] * 5 + ["extension.apply.done"]
    assert [e.after.get("item") for e in entries[1:6]] == [0, 1, 2, 3, 4]
    assert all((e.migration_id, e.workflow_id, e.run_id) == (info.workflow_id, info.workflow_id, info.workflow_run_id) for e in entries)
    assert all((e.actor, e.host) == ("erin", "ops2") for e in entries)
    assert all(e.after["extension"] == "counter" and e.after["version"] == "1.3.0" for e in entries)
    assert entries[-1].after["changed"] == 5 and entries[1].after["journal_of"] == "m-1"  # the run's journal id, if not its own


async def test_an_oversized_entry_is_refused_as_the_extensions_bug(tmp_path, monkeypatch):
    monkeypatch.setenv("SNAKEPIT_AUDIT_URL", f"sqlite://{tmp_path}/audit.db")
    acts = ExtensionActivities(loader=lambda ref: Chatty)
    with pytest.raises(ApplicationError, match="over 8192 bytes"):
        await ActivityEnvironment().run(acts.plan_extension, step(version="1.0.0"))


async def test_an_unwritable_log_does_not_fail_the_step_and_the_gap_is_logged(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SNAKEPIT_AUDIT_URL", "ftp://nowhere/audit")
    acts = ExtensionActivities(loader=lambda ref: Counter)
    with caplog.at_level(logging.ERROR, logger="snakepit_migrate.extensions"):
        plan = await ActivityEnvironment().run(acts.plan_extension, step(version="1.0.0"))
    assert plan.summary == "prod"
    assert any("1 audit entries of extension counter" in r.getMessage() and "not written" in r.getMessage() for r in caplog.records)
