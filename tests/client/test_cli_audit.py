"""``audit verify``, ``audit export`` and ``history`` through the real command line."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import uuid

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from client.connect import client_options
from deployment.audit import AuditEntry, open_audit_log
from tests.client.test_cli_sessions import cli  # noqa: F401  (the shared CLI fixture)
from tests.e2e.helpers import make_snapshot
from workflows import all_workflows


async def write_entries(url: str, migrations: list[str]) -> None:
    async with open_audit_log(url) as log:
        for n, mid in enumerate(migrations, 1):
            await log.append(AuditEntry(ts=f"2026-11-2{n}T09:00:00.000000Z", actor="alice", host="ops1", event="started",
                                        migration_id=mid, after={"n": n}))  # fmt: skip


async def test_verify_and_export_of_an_intact_log(cli, tmp_path, monkeypatch):
    url = f"sqlite://{tmp_path}/audit.db"
    await write_entries(url, ["m-a", "m-b", "m-a"])
    code, out, _ = cli("audit", "verify", "--url", url, "--json")
    assert code == 0 and json.loads(out)["ok"] is True and json.loads(out)["entries"] == 3
    code, out, _ = cli("audit", "export", "--url", url, "--migration", "m-a", "--since", "2026-11-22")
    assert code == 0 and [json.loads(line)["after"] for line in out.splitlines()] == [{"n": 3}]
    code, out, _ = cli("audit", "export", "--url", url, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["migration_id"] for r in rows] == ["m-a", "m-b", "m-a"] and rows[0]["actor"] == "alice"


async def test_verify_of_a_tampered_log_exits_1_naming_the_entry(cli, tmp_path):
    url = f"sqlite://{tmp_path}/audit.db"
    await write_entries(url, ["m-a", "m-b", "m-c"])
    db = sqlite3.connect(tmp_path / "audit.db")
    db.execute("DROP TRIGGER snakepit_audit_no_delete")
    db.execute("DELETE FROM snakepit_audit WHERE seq = 2")
    db.commit()
    db.close()
    code, out, _ = cli("audit", "verify", "--url", url)
    assert code == 1 and "BROKEN" in out and "entry #2 was removed" in out
    code, out, _ = cli("audit", "verify", "--url", url, "--json")
    first = json.loads(out)["problems"][0]
    assert code == 1 and (first["seq"], first["kind"]) == (2, "removed")


def test_bad_audit_arguments_exit_2(cli, tmp_path):
    code, out, err = cli("audit", "export", "--url", f"sqlite://{tmp_path}/a.db", "--format", "xml")
    assert code == 2 and "--format 'xml'" in err and out == ""
    code, _, err = cli("audit", "export", "--url", f"sqlite://{tmp_path}/a.db", "--since", "last week")
    assert code == 2 and "neither an ISO" in err
    code, _, err = cli("audit", "verify", "--url", "postgresql://nobody:pw-xyz@127.0.0.1:1/none")
    assert code == 2 and "cannot open the audit log" in err and "pw-xyz" not in err
    code, _, err = cli("history", "no-such-migration")
    assert code == 2 and "no migration with id 'no-such-migration'" in err


async def test_history_of_a_run_is_json_the_replayer_accepts(cli, tmp_path, sqlite_url):
    make_snapshot(tmp_path / "in.jsonl", 50)
    mid = f"hist-{uuid.uuid4().hex[:6]}"
    assert cli("sessions", "migrate", "--from", f"jsonl://{tmp_path}/in.jsonl", "--to", sqlite_url, "--id", mid)[0] == 0
    code, out, _ = cli("history", mid)
    assert code == 0
    events = json.loads(out)["events"]
    assert events[0]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"
    assert events[-1]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"
    replayed = await Replayer(workflows=all_workflows(), **client_options()).replay_workflow(
        WorkflowHistory.from_json(mid, out), raise_on_replay_failure=False
    )
    assert replayed.replay_failure is None
