"""MigrationPlan against the dev server: children by group in parallel, a dry run that touches nothing,
and the failure policies (stop leaves completed children, rollback undoes them newest first)."""

from __future__ import annotations

import hashlib
import shutil
import textwrap
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import redis
from temporalio.client import Client, WorkflowFailureError

from client.api import result_from_failure
from deployment.plans.check import validate_plan
from deployment.sessions.stores import open_store
from tests.deployment.extensions.helpers import fill, store_bytes
from workflows.plan_models import MigrationPlanResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

PARALLEL = """\
    plan: two-then-one
    policy: {policy}
    migrations:
      - id: to-redis
        type: sessions
        params: {{source: "@legacy", target: "@cache", slice_seconds: 0.5}}
      - id: to-archive
        type: sessions
        params: {{source: "@legacy", target: "@archive", slice_seconds: 0.5}}
      - id: cfg
        type: config
        params: {{path: "@cfg", to_version: "0.10", accept_findings: true}}
      - id: merge
        type: sessions
        depends_on: [to-redis, to-archive]
        params: {{source: "@cache", target: "@final", slice_seconds: 0.5{extra}}}
    """

CHAIN = """\
    plan: chain
    policy: {policy}
    migrations:
      - id: one
        type: sessions
        params: {{source: "@legacy", target: "@cache"}}
      - id: two
        type: sessions
        depends_on: [one]
        params: {{source: "@legacy", target: "@archive"}}
      - id: cfg
        type: config
        depends_on: [two]
        params: {{path: "@cfg", to_version: "0.10", accept_findings: true}}
      - id: three
        type: sessions
        depends_on: [cfg]
        params: {{source: "@cache", target: "@final", fail_after_batches: 1, batch_size: 20}}
    """


async def resolved(tmp_path: Path, plan: str, resources: dict[str, str], dry_run: bool = False) -> dict:
    (tmp_path / "plan.yaml").write_text(textwrap.dedent(plan))
    body = "".join(f"      {k}: {v!r}\n" for k, v in resources.items())
    (tmp_path / "environments.yaml").write_text(f"environments:\n  staging:\n    resources:\n{body}")
    found = await validate_plan(str(tmp_path / "plan.yaml"), "staging", None, tmp_path / "backups")
    assert found.valid, [i.text() for i in found.issues]
    return found.resolved(dry_run=dry_run).model_dump()


async def run_plan(client: Client, queue: str, params: dict) -> MigrationPlanResult:
    handle = await client.start_workflow("MigrationPlan", params, id=f"plan-{uuid.uuid4().hex[:8]}", task_queue=queue,
                                         result_type=MigrationPlanResult)
    try:
        return await handle.result()
    except WorkflowFailureError as exc:
        found = result_from_failure(exc, MigrationPlanResult)
        assert found is not None, exc
        return found


def stores(tmp_path: Path, sqlite_url: str, redis_url: str) -> dict[str, str]:
    if not (tmp_path / "cfg").exists():
        shutil.copytree(FIXTURES / "config" / "v0_6", tmp_path / "cfg")
    return {"legacy": sqlite_url, "cache": redis_url, "archive": f"sqlite://{tmp_path}/archive.db",
            "final": f"sqlite://{tmp_path}/final.db", "cfg": str(tmp_path / "cfg")}


def digest_files(folder: Path) -> str:
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())).hexdigest()


async def live_count(url: str) -> int:
    async with open_store(url) as store:
        return (await store.stats())["live"]


async def test_two_groups_run_in_parallel_then_the_dependent_one(temporal_client, task_queue, tmp_path, sqlite_url, redis_url):
    recs = await fill(sqlite_url, 400, expired_fraction=0)
    res = stores(tmp_path, sqlite_url, redis_url)
    result = await run_plan(temporal_client, task_queue, await resolved(tmp_path, PARALLEL.format(policy="stop", extra=""), res))
    assert result.status == "completed", result.error
    assert set(result.completed_order[:3]) == {"to-redis", "to-archive", "cfg"} and result.completed_order[3] == "merge"
    assert "grpc_listener" in (tmp_path / "cfg" / "config.exs").read_text()
    by_id = {s.id: s for s in result.steps}
    assert [by_id[m].figures["sessions_copied"] for m in ("to-redis", "to-archive", "merge")] == [400, 400, 400]
    assert by_id["merge"].figures["source_digest"] == by_id["merge"].figures["target_digest"]
    assert await store_bytes(res["final"]) == await store_bytes(sqlite_url) and len(recs) == 400
    # the first group ran at the same time: each child started before the other closed
    a = await temporal_client.get_workflow_handle(by_id["to-redis"].child_id).describe()
    b = await temporal_client.get_workflow_handle(by_id["to-archive"].child_id).describe()
    m = await temporal_client.get_workflow_handle(by_id["merge"].child_id).describe()
    assert a.start_time < b.close_time and b.start_time < a.close_time
    assert m.start_time >= max(a.close_time, b.close_time)


def digest_sqlite(url: str) -> str | None:
    path = Path(urlsplit(url).path)
    files = sorted(p for p in path.parent.glob(path.name + "*"))  # the database and any -wal/-journal beside it
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest() if files else None


def digest_redis(url: str) -> str:
    prefix = parse_qs(urlsplit(url).query)["prefix"][0]
    r = redis.Redis.from_url(url.split("?")[0])
    keys = sorted(r.scan_iter(match=f"*{prefix}*", count=1000))
    return hashlib.sha256(b"".join(k + (r.dump(k) or b"") for k in keys)).hexdigest() + f":{len(keys)}"


async def test_dry_run_touches_no_store(temporal_client, task_queue, tmp_path, sqlite_url, redis_url):
    await fill(sqlite_url, 120, expired_fraction=0.1)
    res = stores(tmp_path, sqlite_url, redis_url)
    await fill(res["archive"], 7, expired_fraction=0, seed=3)  # a target that exists, with sessions of its own
    await fill(redis_url, 5, expired_fraction=0, seed=5)
    params = await resolved(tmp_path, PARALLEL.format(policy="rollback", extra=", overwrite: true"), res, dry_run=True)
    before = (digest_sqlite(sqlite_url), digest_redis(redis_url), digest_sqlite(res["archive"]), digest_sqlite(res["final"]),
              digest_files(tmp_path / "cfg"))
    assert before[0] and before[2] and before[3] is None and before[1].endswith(":5")
    result = await run_plan(temporal_client, task_queue, params)
    assert result.status == "dry_run", result.error
    assert all(s.state == "dry_run" and s.child_status == "dry_run" for s in result.steps)
    assert {s.id: s.figures.get("sessions_total") for s in result.steps} == {"to-redis": 120, "to-archive": 120, "cfg": None,
                                                                             "merge": 5}
    assert next(s for s in result.steps if s.id == "cfg").figures["to_version"] == "0.10"
    after = (digest_sqlite(sqlite_url), digest_redis(redis_url), digest_sqlite(res["archive"]), digest_sqlite(res["final"]),
             digest_files(tmp_path / "cfg"))
    assert after == before


async def test_rollback_policy_undoes_completed_children_newest_first(temporal_client, task_queue, tmp_path, sqlite_url, redis_url):
    await fill(sqlite_url, 100, expired_fraction=0)
    res = stores(tmp_path, sqlite_url, redis_url)
    await fill(res["archive"], 3, expired_fraction=0, seed=4)  # found before: must be there after the undo
    archive_before, cfg_before = await store_bytes(res["archive"]), digest_files(tmp_path / "cfg")
    result = await run_plan(temporal_client, task_queue, await resolved(tmp_path, CHAIN.format(policy="rollback"), res))
    assert result.status == "rolled_back", result
    assert result.failed_step == "three" and "injected failure after 1 batches" in result.error
    states = {s.id: s.state for s in result.steps}
    assert states == {"one": "undone", "two": "undone", "cfg": "undone", "three": "rolled_back"}
    assert result.completed_order == ["one", "two", "cfg"] and result.undone_order == ["cfg", "two", "one"]
    assert await store_bytes(res["archive"]) == archive_before
    assert digest_files(tmp_path / "cfg") == cfg_before
    assert await live_count(redis_url) == 0 and await live_count(res["final"]) == 0
    undo_two = await temporal_client.get_workflow_handle(f"{result.plan_id}.two-rollback").describe()
    undo_one = await temporal_client.get_workflow_handle(f"{result.plan_id}.one-rollback").describe()
    assert undo_two.close_time <= undo_one.start_time


async def test_stop_policy_leaves_completed_children(temporal_client, task_queue, tmp_path, sqlite_url, redis_url):
    await fill(sqlite_url, 60, expired_fraction=0)
    res = stores(tmp_path, sqlite_url, redis_url)
    result = await run_plan(temporal_client, task_queue, await resolved(tmp_path, CHAIN.format(policy="stop"), res))
    assert result.status == "failed" and result.failed_step == "three"
    assert {s.id: s.state for s in result.steps} == {"one": "completed", "two": "completed", "cfg": "completed",
                                                     "three": "rolled_back"}
    assert result.undone_order == []
    assert await live_count(redis_url) == 60 and await live_count(res["archive"]) == 60
    assert await live_count(res["final"]) == 0
    assert "grpc_listener" in (tmp_path / "cfg" / "config.exs").read_text()  # stop: the completed config step stays


async def test_run_checks_feasibility_again_and_alerts_when_it_fails(temporal_client, task_queue, tmp_path, sqlite_url,
                                                                      redis_url, monkeypatch):
    from aiohttp import web

    received: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/alert", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    monkeypatch.setenv("SNAKEPIT_ALERT_WEBHOOKS", f"http://127.0.0.1:{port}/alert")
    try:
        await fill(sqlite_url, 10, expired_fraction=0)
        res = stores(tmp_path, sqlite_url, redis_url)
        params = await resolved(tmp_path, PARALLEL.format(policy="rollback", extra=""), res)
        Path(urlsplit(sqlite_url).path).unlink()  # the source is gone by the time the (e.g. scheduled) run starts
        result = await run_plan(temporal_client, task_queue, params)
    finally:
        await runner.cleanup()
    assert result.status == "failed" and result.failed_step == "(validation)"
    assert "the source store" in result.error and "does not exist" in result.error
    assert {s.state for s in result.steps} == {"skipped"} and result.completed_order == []
    assert not Path(urlsplit(res["archive"]).path).exists() and digest_redis(redis_url).endswith(":0")
    assert len(received) == 1 and received[0]["kind"] == "failed" and received[0]["migration_id"] == result.plan_id
    assert received[0]["step"] == "(validation)"


async def listed(address: str, query: str, expect: int) -> set[str]:
    """Workflow ids ``temporal workflow list --query`` prints (visibility is eventually consistent: asked until ``expect``)."""
    import asyncio
    import json

    from client.paths import temporal_cli

    for _ in range(50):
        proc = await asyncio.create_subprocess_exec(
            temporal_cli(), "workflow", "list", "--address", address, "--query", query, "--output", "json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        text = out.decode().strip()
        rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines() if line.strip()]
        ids = {r["execution"]["workflowId"] for r in rows}
        if len(ids) >= expect:
            return ids
        await asyncio.sleep(0.2)
    return ids


async def test_an_indexed_plan_lists_with_its_children_and_is_found_for_promotion(temporal_client, task_queue, tmp_path,
                                                                                  sqlite_url, redis_url):
    from client.api import completed_plan_runs

    await fill(sqlite_url, 30, expired_fraction=0)
    res = stores(tmp_path, sqlite_url, redis_url)
    params = await resolved(tmp_path, PARALLEL.format(policy="stop", extra=""), res)
    result = await run_plan(temporal_client, task_queue, {**params, "search_attributes": True})
    assert result.status == "completed"
    address = temporal_client.service_client.config.target_host
    children = {f"{result.plan_id}.{s}" for s in ("to-redis", "to-archive", "cfg", "merge")}
    assert await listed(address, f"PlanId = '{result.plan_id}'", 5) == {result.plan_id} | children
    sessions = f"PlanId = '{result.plan_id}' AND Environment = 'staging' AND MigrationType = 'SessionMigration'"
    assert await listed(address, sessions, 3) == children - {f"{result.plan_id}.cfg"}
    assert await listed(address, f"PlanId = '{result.plan_id}' AND MigrationPhase = 'done'", 1) == {result.plan_id}
    # promotion finds it by the query (its memo carries the digest); other environments and digests do not match
    assert (await completed_plan_runs(temporal_client, params["digest"], "staging"))[0] == result.plan_id
    assert await completed_plan_runs(temporal_client, params["digest"], "production") == []

    # a run without attributes (as before plans were indexed) is still found, by reading completed results
    other = tmp_path / "other"
    other.mkdir()
    one = "plan: one\nmigrations:\n  - id: copy\n    type: sessions\n    params: {source: \"@legacy\", target: \"@copy\"}\n"
    unindexed = await resolved(other, one, {"legacy": sqlite_url, "copy": f"sqlite://{other}/copy.db"})
    plain = await run_plan(temporal_client, task_queue, unindexed)
    assert plain.status == "completed" and await listed(address, f"PlanId = '{plain.plan_id}'", 0) == set()
    assert (await completed_plan_runs(temporal_client, unindexed["digest"], "staging"))[0] == plain.plan_id


async def test_cli_audits_validation_and_submission_with_the_actor(temporal_env, tmp_path, sqlite_url):
    import asyncio
    import json
    import os
    import sys

    from deployment.audit import open_audit_log

    await fill(sqlite_url, 10, expired_fraction=0)
    one = "plan: audited\nmigrations:\n  - id: copy\n    type: sessions\n    params: {source: \"@legacy\", target: \"@copy\"}\n"
    await resolved(tmp_path, one, {"legacy": sqlite_url, "copy": f"sqlite://{tmp_path}/copy.db"})
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "plan.yaml").write_text(one.replace("audited", "clashing") + one.split("migrations:\n")[1].replace("id: copy", "id: again"))
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
           "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home")}  # fmt: skip

    async def cli(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "client.cli", *args, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 180)
        assert b"Traceback" not in err, err
        return proc.returncode, out.decode(), err.decode()

    code, _, _ = await cli("plan", "validate", str(tmp_path / "plan.yaml"), "--actor", "hana")
    assert code == 0
    code, _, err = await cli("plan", "validate", str(clash / "plan.yaml"), "--actor", "hana")
    assert code == 1 and "conflict" in err
    code, out, err = await cli("plan", "run", str(tmp_path / "plan.yaml"), "--env", "staging", "--actor", "hana", "--json")
    assert code == 0, err
    plan_id = json.loads(out)["plan_id"]
    code, _, err = await cli("plan", "resume", plan_id, "--actor", "hana")
    assert code == 2 and f"{plan_id} is not a paused plan run (MigrationPlan completed)" in err

    async with open_audit_log() as log:
        validated = [e for e in await log.entries(migration="plan:audited") if e.actor == "hana"]
        clashing = [e for e in await log.entries(migration="plan:clashing") if e.actor == "hana"]
        run_entries = await log.entries(migration=plan_id)
    assert [(e.event, e.after["valid"], e.after["environment"]) for e in validated] == [
        ("plan_validated", True, None), ("plan_validated", True, "staging")]
    assert [(e.event, e.after["valid"]) for e in clashing] == [("plan_validated", False)]
    assert clashing[0].after["errors"] >= 1 and clashing[0].after["conflicts"] >= 1
    events = [(e.event, e.actor) for e in run_entries]
    assert ("plan_submitted", "hana") in events and ("started", "hana") in events and ("ended", "hana") in events
    started = next(e for e in run_entries if e.event == "started")
    assert started.after["digest"] == validated[1].after["digest"] and started.after["schedule_fired"] is None


async def test_cli_rollback_of_a_running_plan_starts_no_further_group_and_undoes_the_completed(temporal_env, tmp_path,
                                                                                              sqlite_url):
    """``snakepit-migrate rollback PLAN_ID`` on a running plan: its running group finishes (a 10 s soak, long enough for a CLI started under load to reach it), no group
    starts after it, and the completed step is undone; audited with the actor."""
    import asyncio
    import json
    import os
    import sys

    from client import api
    from client.connect import TASK_QUEUE
    from deployment.audit import open_audit_log
    from worker import build_worker

    await fill(sqlite_url, 10, expired_fraction=0)
    chain = ("plan: stoppable\nmigrations:\n"
             "  - id: first\n    type: sessions\n    params: {source: \"@legacy\", target: \"@a\", zero_downtime: true, soak_seconds: 10}\n"
             "  - id: second\n    type: sessions\n    depends_on: [first]\n    params: {source: \"@legacy\", target: \"@b\"}\n")  # fmt: skip
    params = await resolved(tmp_path, chain, {"legacy": sqlite_url, "a": f"sqlite://{tmp_path}/a.db", "b": f"sqlite://{tmp_path}/b.db"})
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
           "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home")}  # fmt: skip
    async with build_worker(temporal_env.client, TASK_QUEUE):  # the worker a deployment runs: the CLI's task queue
        handle = await temporal_env.client.start_workflow("MigrationPlan", params, id=f"plan-{uuid.uuid4().hex[:8]}",
                                                          task_queue=TASK_QUEUE)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "client.cli", "rollback", handle.id, "--actor", "jo",
                                                    "--json", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 180)
        info = await api.describe(temporal_env.client, handle.id)
    assert proc.returncode == 0 and b"Traceback" not in err, err.decode()
    result = json.loads(out)
    assert result["status"] == "rolled_back" and result["failed_step"] == "(cancelled)"
    assert {s["id"]: s["state"] for s in result["steps"]} == {"first": "undone", "second": "skipped"}
    assert not (tmp_path / "b.db").exists()
    assert info["status"] == "rolled_back"  # the run's own result says so too
    async with open_audit_log() as log:
        logged = [(e.event, e.actor) for e in await log.entries(migration=handle.id)]
    names = [e for e, _ in logged]
    assert ("plan_cancel_requested", "jo") in logged
    assert names.index("step_finished") < names.index("cancelled") < names.index("rollback") < names.index("ended")
