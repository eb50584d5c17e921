"""``snakepit-migrate report ID`` in JSON, Markdown and HTML: the figures of the run, from its result and audit entries."""

from __future__ import annotations

import json
import uuid

from tests.client.test_cli_sessions import cli  # noqa: F401  (the shared CLI fixture)
from tests.e2e.helpers import make_snapshot


def test_report_of_a_completed_migration_in_every_format(cli, tmp_path, sqlite_url):
    make_snapshot(tmp_path / "in.jsonl", 240, expired_fraction=0.25)
    mid = f"report-{uuid.uuid4().hex[:6]}"
    code, out, err = cli("sessions", "migrate", "--from", f"jsonl://{tmp_path}/in.jsonl", "--to", sqlite_url, "--id", mid,
                         "--batch-size", "40", "--actor", "carol", "--json")  # fmt: skip
    assert code == 0, err
    ran = json.loads(out)
    code, out, _ = cli("report", mid, "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["status"] == "completed" and report["actor"] == "carol"
    assert report["totals"]["sessions_copied"] == ran["sessions_copied"] and report["totals"]["batches"] == 6
    assert report["totals"]["sessions_skipped_expired"] == ran["sessions_skipped_expired"] > 0
    assert report["integrity"] == {"source_digest": ran["source_digest"], "target_digest": ran["target_digest"], "digests_match": True}
    assert [s["step"] for s in report["steps"]] == ["validating", "backup", "copying", "finalizing", "verifying"]
    assert all(s["duration_s"] >= 0 for s in report["steps"]) and report["audit"]["chain_intact"] is True
    assert report["validation"]["ok"] is True and report["before"]["target_count"] == 0
    assert report["impact"]["worker_cpu_s"] > 0 and report["impact"]["worker_peak_rss_mib"] > 20
    code, md, _ = cli("report", mid)
    assert code == 0 and f"| sessions copied | {ran['sessions_copied']} |" in md and "| copying |" in md
    assert f"| CPU seconds during the copy | {report['impact']['worker_cpu_s']} |" in md
    code, page, _ = cli("report", mid, "--format", "html")
    assert code == 0 and page.startswith("<!doctype html>") and "<script" not in page and "http" not in page.split("<body>")[0]
    assert f"<td data-field='sessions copied'>{ran['sessions_copied']}</td>" in page
    assert f"<td data-field='target digest'>{ran['target_digest']}</td>" in page and "<td>verifying</td>" in page


def test_report_of_an_undo_names_who_asked_and_what_was_restored(cli, tmp_path, sqlite_url):
    make_snapshot(tmp_path / "in.jsonl", 300, expired_fraction=0.0)
    mid = f"report-{uuid.uuid4().hex[:6]}"
    code, out, _ = cli("sessions", "migrate", "--from", f"jsonl://{tmp_path}/in.jsonl", "--to", sqlite_url, "--id", mid, "--json")
    assert code == 0
    code, _, _ = cli("rollback", mid, "--actor", "bob")
    assert code == 0
    code, out, _ = cli("report", f"{mid}-rollback", "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["status"] == "rolled_back" and report["rollback"] == {"rolled_back": True, "restored": 300}
    assert report["actor"] == "bob"  # the undo run names who asked for it, not who started the migration
    code, out, _ = cli("audit", "export", "--migration", mid)
    asked = [json.loads(line) for line in out.splitlines()][-1]
    assert code == 0 and (asked["event"], asked["actor"], asked["before"]) == (
        "rollback_requested", "bob", {"type": "SessionMigration", "status": "completed"}
    )
    assert [s["step"] for s in report["steps"]] == ["rolling_back"]


def test_report_bad_arguments_exit_2(cli):
    code, out, err = cli("report", "anything", "--format", "pdf")
    assert code == 2 and "--format 'pdf'" in err and out == ""
    code, _, err = cli("report", "no-such-migration")
    assert code == 2 and "no migration with id 'no-such-migration'" in err
