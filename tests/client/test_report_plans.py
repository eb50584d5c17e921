"""Reports of every type: a plan's covers each child (type, status, timings, figures, findings) with plan totals;
custom and config runs show their own figures; ``report --compare`` puts two runs side by side."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from client import api
from client.cli.audit import full_report
from deployment.audit import open_audit_log
from deployment.audit.report import build_report, compare_reports, render_comparison, render_report
from tests.client.test_cli_sessions import cli  # noqa: F401  (the shared CLI fixture)
from tests.deployment.extensions.helpers import fill
from tests.e2e.test_migration_plan import FIXTURES, resolved, run_plan
from tests.e2e.test_session_audit import audit_url  # noqa: F401  (a log of the test only)
from workflows.extension_models import CustomMigrationInput

PLAN = """\
    plan: copy-and-config
    migrations:
      - id: copy
        type: sessions
        params: {source: "@legacy", target: "@final", batch_size: 40}
      - id: cfg
        type: config
        depends_on: [copy]
        params: {path: "@cfg", to_version: "0.10", accept_findings: true}
    """


async def plan_run(client, queue, folder: Path, sessions: int):
    folder.mkdir()
    shutil.copytree(FIXTURES / "config" / "v0_6", folder / "cfg")
    legacy = f"sqlite://{folder}/legacy.db"
    await fill(legacy, sessions, expired_fraction=0)
    params = await resolved(folder, PLAN, {"legacy": legacy, "final": f"sqlite://{folder}/final.db", "cfg": str(folder / "cfg")})
    return await run_plan(client, queue, params)


async def report_of(client, migration_id: str) -> dict:
    async with open_audit_log() as log:
        return await full_report(client, log, migration_id)


async def test_a_plan_report_covers_every_child_and_totals_them(temporal_client, task_queue, tmp_path, audit_url):  # noqa: F811
    result = await plan_run(temporal_client, task_queue, tmp_path / "a", 120)
    assert result.status == "completed", result.error
    report = await report_of(temporal_client, result.plan_id)
    assert report["type"] == "MigrationPlan" and report["figures"]["steps"] == 2 and report["figures"]["completed"] == 2
    copy, cfg = report["children"]
    assert (copy["step_id"], copy["type"], copy["status"]) == ("copy", "SessionMigration", "completed")
    copied = (await api.describe(temporal_client, f"{result.plan_id}.copy"))["result"]
    assert copy["figures"]["sessions copied"] == 120 and copy["figures"]["batches"] == copied["batches"] > 0
    assert [s["step"] for s in copy["steps"]][:3] == ["validating", "backup", "copying"]  # its timings, from its audit entries
    assert (cfg["type"], cfg["figures"]["to version"]) == ("ConfigMigration", "0.10")
    assert cfg["figures"]["files written"] > 0 and "sessions copied" not in cfg["figures"]  # its own figures, not a session's
    cfg_result = (await api.describe(temporal_client, f"{result.plan_id}.cfg"))["result"]
    assert cfg["findings"] == [f"{f['key']}: {f['message']}" for f in cfg_result["findings"]] + [
        f"warning {w['key']}: {w['message']}" for w in cfg_result["warnings"]]
    totals = report["plan_totals"]
    assert totals["steps"] == 2 and totals["steps completed"] == 2 and totals["total sessions copied"] == 120
    assert totals["findings"] == len(cfg["findings"]) and totals["duration (s)"] == result.duration_s
    md = render_report(report, "md")
    assert "## Step copy (sessions): completed" in md and "| sessions copied | 120 |" in md
    assert "## Step cfg (config): completed" in md and "| to version | 0.10 |" in md and "| total sessions copied | 120 |" in md
    page = render_report(report, "html")
    assert "<section class='child' id='step-cfg'>" in page and "<script" not in page


async def test_compare_two_plan_runs_step_by_step(temporal_client, task_queue, tmp_path, audit_url):  # noqa: F811
    first = await plan_run(temporal_client, task_queue, tmp_path / "a", 80)
    second = await plan_run(temporal_client, task_queue, tmp_path / "b", 200)
    c = compare_reports(await report_of(temporal_client, first.plan_id), await report_of(temporal_client, second.plan_id))
    assert c["runs"] == [first.plan_id, second.plan_id] and c["status"] == ["completed", "completed"]
    assert c["duration_s"] == [first.duration_s, second.duration_s]
    assert c["totals"]["total sessions copied"] == [80, 200]
    copy = next(s for s in c["steps"] if s["id"] == "copy")
    assert copy["figures"]["sessions copied"] == [80, 200] and copy["status"] == ["completed", "completed"]
    table = render_comparison(c, "md")
    assert "| copy: sessions copied | 80 | 200 |" in table and "| plan: total sessions copied | 80 | 200 |" in table


async def test_a_custom_run_report_shows_its_own_figures(temporal_client, task_queue, sqlite_url, audit_url):  # noqa: F811
    await fill(sqlite_url, 150, expired_fraction=0)
    handle = await api.start_custom_migration(
        temporal_client, CustomMigrationInput(extension="rekey-sessions", params={"store": sqlite_url, "from_key": "tier",
                                              "to_key": "plan", "batch_size": 50}, slice_seconds=0.1), task_queue=task_queue)  # fmt: skip
    result = await api.wait_for_custom_migration(handle)
    report = await report_of(temporal_client, handle.id)
    assert report["figures"]["extension"] == "rekey-sessions 1.0.0" and report["figures"]["changed"] == result.changed == 150
    assert report["figures"]["verified"] == "yes" and report["figures"]["checkpoints"] == result.checkpoints
    assert "sessions copied" not in report["figures"] and report["findings"] == []
    assert "applying" in [s["step"] for s in report["steps"]] and report["audit"]["chain_intact"]
    assert "| changed | 150 |" in render_report(report, "md")


def test_fleet_impact_fields_are_shown_whatever_they_are():
    info = {"migration_id": "m", "type": "SessionMigration", "status": "completed",
            "result": {"sessions_copied": 5, "duration_s": 1.0, "worker_cpu_s": 0.5,
                       "impact": {"fleet_throughput_rps": 812.5, "fleet_latency_p99_ms": 41}, "fleet_samples": 12}}  # fmt: skip
    report = build_report(info, [], True)
    assert report["impact"] == {"worker_cpu_s": 0.5, "fleet_throughput_rps": 812.5, "fleet_latency_p99_ms": 41, "fleet_samples": 12}
    md = render_report(report, "md")
    assert "| fleet throughput rps | 812.5 |" in md and "| fleet latency p99 ms | 41 |" in md and "| fleet samples | 12 |" in md


def test_cli_compare_two_migrations_and_bad_arguments(cli, tmp_path, sqlite_url):  # noqa: F811
    from tests.e2e.helpers import make_snapshot

    ids = []
    for n, count in enumerate((60, 90)):
        make_snapshot(tmp_path / f"in{n}.jsonl", count, expired_fraction=0.0)
        mid = f"cmp-{uuid.uuid4().hex[:6]}"
        code, _, err = cli("sessions", "migrate", "--from", f"jsonl://{tmp_path}/in{n}.jsonl", "--to", f"sqlite://{tmp_path}/t{n}.db",
                           "--id", mid, "--json")  # fmt: skip
        assert code == 0, err
        ids.append(mid)
    code, out, err = cli("report", "--compare", *ids, "--json")
    assert code == 0, err
    c = json.loads(out)
    assert c["runs"] == ids and c["figures"]["sessions copied"] == [60, 90] and c["findings"] == [0, 0]
    code, out, _ = cli("report", "--compare", *ids)
    assert code == 0 and "| sessions copied | 60 | 90 |" in out
    code, out, err = cli("report", "--compare", ids[0])
    assert code == 2 and "--compare takes two run ids, got 1" in err and out == ""
    code, out, err = cli("report", *ids)
    assert code == 2 and "report takes one migration id, got 2" in err and "--compare" in err
