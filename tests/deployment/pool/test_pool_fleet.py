"""The reference fleet as real processes on loopback: traffic, sessions, health, drain, restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from deployment.fleet.local import LocalFleet
from deployment.pool.errors import DrainTimeout, InstanceStartFailed, UnknownInstance
from deployment.pool.load import run_load
from deployment.sessions.stores import open_store
from tests.deployment.pool.fleet_helpers import call_tool

pytestmark = pytest.mark.asyncio(loop_scope="session")

CLI = "import sys; from client.cli import main; sys.exit(main())"


async def test_calls_are_balanced_and_sessions_go_through_the_store(fleet: LocalFleet, store_url: str) -> None:
    pids = set()
    for k in range(6):
        status, body = await call_tool(fleet.url, "ping", f"balance-{k}")
        assert status == 200, body
        pids.add(body["result"]["pid"])
    assert len(pids) >= 2  # more than one instance took traffic
    sticky = {(await call_tool(fleet.url, "ping", "balance-0"))[1]["result"]["pid"] for _ in range(4)}
    assert len(sticky) == 1  # an idle fleet keeps a session on the instance that last served it

    for expected in range(1, 6):
        status, body = await call_tool(fleet.url, "incr", "counted", {"by": 1})
        assert (status, body) == (200, {"result": expected})
    async with open_store(store_url) as store:
        rec = (await store.read_many(["counted"]))["counted"]
    assert rec["metadata"] == {"counter": 5}
    assert rec["last_worker_id"] in {"w1", "w2", "w3"}
    assert rec["ttl"] == 600 and rec["last_accessed"] >= rec["created_at"]

    assert await call_tool(fleet.url, "countdown", "s", {"n": 2}) == (200, {"result": [2, 1, 0]})
    status, body = await call_tool(fleet.url, "nope", "s")
    assert status == 404 and body["error"]["type"] == "UnknownTool"
    status, body = await call_tool(fleet.url, "boom", "s")
    assert status == 500 and "boom" in body["error"]["message"]


async def test_health_has_exactly_the_contract_shape(fleet: LocalFleet, store_url: str) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fleet.url}/health") as resp:
            assert resp.status == 200
            body = await resp.json()
    assert set(body) == {"status", "instances", "migration"}
    assert body["status"] == "ok" and body["migration"] is None
    assert [i["id"] for i in body["instances"]] == ["w1", "w2", "w3"]
    for inst in body["instances"]:
        assert set(inst) == {"id", "state", "config_version", "adapter"}
        assert inst["state"] == "serving" and inst["adapter"] == "fleet_adapters.CounterAdapter"
    for inst in await fleet.list_instances():  # the admin view adds what the instances report
        assert inst.sessions is not None and inst.sessions["store"] == store_url and inst.in_flight == 0
        assert inst.sessions["mode"] in ("direct", "source")  # direct access, or a router at rest


async def test_traffic_beside_health_counts_the_calls_and_their_latency(fleet: LocalFleet) -> None:
    before = await fleet.traffic()
    assert before is not None and before.window_s > 0
    for n in range(20):
        await call_tool(fleet.url, "ping", f"traffic-{n}")
    await call_tool(fleet.url, "boom", "traffic-boom")  # a failing tool is a failed call
    after = await fleet.traffic()
    assert after.total_requests - before.total_requests == 21 and after.total_errors - before.total_errors == 1
    assert after.requests >= 21 and after.p99_ms is not None and after.p50_ms is not None and 0 < after.p50_ms <= after.p99_ms
    assert set((await fleet.health()).model_dump()) == {"status", "instances", "migration"}  # the contract is unchanged


async def test_wait_idle_waits_for_the_request_in_flight(fleet: LocalFleet) -> None:
    slow = asyncio.create_task(call_tool(fleet.url, "slow", "slow-one", {"seconds": 1.5}))
    busy = []
    for _ in range(50):
        busy = [i for i in await fleet.list_instances() if i.in_flight > 0]
        if busy:
            break
        await asyncio.sleep(0.05)
    assert busy, "the slow call never showed as in flight"
    target = busy[0].id
    assert (await fleet.drain(target)).state == "draining"
    with pytest.raises(DrainTimeout, match=f"instance {target}: 1 request"):
        await fleet.wait_idle(target, 0.2)
    assert (await fleet.wait_idle(target, 10)).in_flight == 0
    assert (await slow)[0] == 200
    assert (await fleet.health()).status == "degraded"  # one instance out of service, no migration
    assert (await fleet.undrain(target)).state == "serving"
    with pytest.raises(UnknownInstance, match="instance w9"):
        await fleet.drain("w9")


async def test_bad_configs_keep_the_old_config_serving(make_config, fleet: LocalFleet, fleet_dir: Path, store_url: str) -> None:
    before = {i.id: i.config_version for i in await fleet.list_instances()}
    cases = [
        (make_config("fleet_adapters.NoSuchAdapter", "bad-1", store_url), "has no attribute 'NoSuchAdapter'", None),
        (make_config("no_such_pkg.Adapter", "bad-2", store_url), "no module named 'no_such_pkg'", None),
        (make_config("fleet_adapters.BrokenInitAdapter", "bad-3", store_url), "cannot load the model", None),
        ({"pools": []}, "cannot be loaded", None),
        (make_config("fleet_slow_import.SlowAdapter", "bad-4", store_url), "never became healthy within 1s", 1.0),
        (make_config("fleet_adapters.CrashSoonAdapter", "bad-5", store_url), "unhealthy within 2s of starting", None),
    ]
    for config, cause, timeout in cases:
        with pytest.raises(InstanceStartFailed) as caught:
            await fleet.restart("w1", config, timeout=timeout, settle=2.0)
        assert caught.value.instance == "w1" and cause in caught.value.cause
        assert "instance w1" in str(caught.value)
    after = await fleet.list_instances()
    assert {i.id: i.config_version for i in after} == before
    assert all(i.state == "serving" for i in after)
    for _ in range(6):
        assert (await call_tool(fleet.url, "ping", "after-bad"))[0] == 200


async def test_rolling_restart_under_load_fails_no_request(make_config, fleet: LocalFleet, fleet_dir: Path, store_url: str) -> None:
    v2 = make_config("fleet_adapters.CounterAdapterV2", "v2", store_url)
    done = asyncio.Event()
    load = asyncio.create_task(run_load(fleet.url, rate=25, duration=120, sessions=5, tool="incr",
                                        keep_results=True, stop=done))
    await asyncio.sleep(0.5)
    await fleet.set_migration("mig-1", "rolling_restart")
    health = await fleet.health()
    assert health.status == "migrating" and health.migration is not None and health.migration.phase == "rolling_restart"
    for inst in await fleet.list_instances():
        previous = await fleet.instance_config(inst.id)
        assert previous["config_version"] in ("v1", "v2")
        await fleet.drain(inst.id)
        await fleet.wait_idle(inst.id, 10)
        restarted = await fleet.restart(inst.id, v2, timeout=30, settle=0.5)
        assert (restarted.config_version, restarted.state) == ("v2", "draining")
        assert (await fleet.undrain(inst.id)).state == "serving"
    assert not load.done(), "the load ended before the restarts did: the test proves nothing"
    await asyncio.sleep(0.5)  # traffic on the new config too
    done.set()
    report = await load
    await fleet.clear_migration()
    assert report.requests >= 50 and report.errors == 0, report.error_kinds
    health = await fleet.health()
    assert health.status == "ok" and {i.config_version for i in health.instances} == {"v2"}
    assert {(await call_tool(fleet.url, "ping", "after"))[1]["result"]["version"] for _ in range(6)} == {"v2"}
    async with open_store(store_url) as store:
        records = await store.read_many([f"load-{k}" for k in range(5)])
    # every increment landed: calls of one session are serialised, none was lost across restarts,
    # and what each client was last told is what the store holds
    assert sum(r["metadata"]["counter"] for r in records.values()) == report.requests
    assert report.last_results == {sid: r["metadata"]["counter"] for sid, r in records.items()}


async def test_a_killed_worker_comes_back_by_itself(fleet: LocalFleet) -> None:
    victim = next(i for i in (await fleet.list_instances()) if i.id == "w2")
    pid = (await fleet._request("GET", f"{fleet.admin}/instances/w2"))["pid"]
    proc = psutil.Process(pid)  # taken before the kill: the pool may reap it before we look
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):
        while proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
            await asyncio.sleep(0.01)
    for _ in range(5):  # traffic keeps flowing: a refused connection is retried elsewhere
        status, body = await call_tool(fleet.url, "ping", "during-kill")
        assert status == 200, (body, pid, fleet.log_path.read_text()[-1500:] if fleet.log_path else "")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = await fleet._request("GET", f"{fleet.admin}/instances/w2")
        if now["state"] == "serving" and now["pid"] != pid:
            break
        await asyncio.sleep(0.2)
    assert now["state"] == "serving" and now["pid"] != pid and now["restarts"] >= 1
    assert now["config_version"] == victim.config_version


async def test_calls_are_recorded_as_jsonl(fleet: LocalFleet, fleet_dir: Path) -> None:
    lines = [json.loads(line) for line in (fleet_dir / "calls.jsonl").read_text().splitlines()]
    assert lines and all(set(line) == {"tool", "arguments", "result"} for line in lines)
    assert {"tool": "add", "arguments": {"a": 1, "b": 2}, "result": 3} not in lines
    assert (await call_tool(fleet.url, "add", "rec", {"a": 1, "b": 2}))[1] == {"result": 3}
    lines = [json.loads(line) for line in (fleet_dir / "calls.jsonl").read_text().splitlines()]
    assert {"tool": "add", "arguments": {"a": 1, "b": 2}, "result": 3} in lines
    assert not any(line["tool"] == "boom" for line in lines)  # failures are not samples


HOOKS = """
list = "curl -s --fail-with-body $FLEET/admin/instances"
drain = "curl -s --fail-with-body -X POST $FLEET/admin/instances/$SNAKEPIT_INSTANCE/drain"
wait_idle = "curl -s --fail-with-body -X POST -d '{\\"timeout\\": '$SNAKEPIT_TIMEOUT'}' $FLEET/admin/instances/$SNAKEPIT_INSTANCE/wait-idle"
restart = "python3 -c 'import json,os; print(json.dumps({\\"config\\": json.load(open(os.environ[\\"SNAKEPIT_CONFIG_FILE\\"]))}))' | curl -s --fail-with-body --data-binary @- $FLEET/admin/instances/$SNAKEPIT_INSTANCE/restart"
undrain = "curl -s --fail-with-body -X POST $FLEET/admin/instances/$SNAKEPIT_INSTANCE/undrain"
config = "curl -s --fail-with-body $FLEET/admin/instances/$SNAKEPIT_INSTANCE/config | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)[\\"config\\"]))'"
timeout = 60
"""


async def test_command_driver_runs_operator_hooks(make_config, fleet: LocalFleet, fleet_dir: Path, store_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from deployment.fleet import open_fleet

    hooks = fleet_dir / "hooks.toml"
    hooks.write_text(HOOKS)
    monkeypatch.setenv("FLEET", fleet.url)
    async with open_fleet(f"command:{hooks}") as driver:
        assert [i.id for i in await driver.list_instances()] == ["w1", "w2", "w3"]
        assert (await driver.drain("w3")).state == "draining"
        assert (await driver.wait_idle("w3", 5)).in_flight == 0
        current = await driver.instance_config("w3")
        assert (await driver.restart("w3", current)).config_version == current["config_version"]
        with pytest.raises(InstanceStartFailed, match="NoSuchAdapter") as caught:
            await driver.restart("w3", make_config("fleet_adapters.NoSuchAdapter", "bad", store_url))
        assert caught.value.instance == "w3"
        assert (await driver.undrain("w3")).state == "serving"
        assert (await driver.health()).status == "ok"


async def test_load_verb_reports_json(fleet: LocalFleet) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLI, "load", "--url", fleet.url, "--rate", "40", "--duration", "1",
        "--sessions", "3", "--tool", "add", "--arguments", '{"a": 1, "b": 2}', "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert (report["requests"], report["ok"], report["errors"], report["tool"]) == (40, 40, 0, "add")
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p95"] <= report["latency_ms"]["p99"] <= report["latency_ms"]["max"]


async def test_the_generic_adapter_is_hosted_by_dotted_path(fleet_dir: Path) -> None:
    generic = fleet_dir / "generic.json"
    generic.write_text(json.dumps({
        "libraries": [{"name": "math", "module": "math", "function_filters": ["sqrt", "hypot"],
                       "security_config": {"allowed_modules": ["math"]}}],
        "tool_aliases": {"root": {"target": "math.sqrt", "args": [{"param": "x"}], "kwargs": {},
                                  "params": [{"name": "x", "required": True}], "wrap": None}},
    }))
    config = fleet_dir / "generic-fleet.json"
    config.write_text(json.dumps({
        "pools": [{"name": "default", "adapter_args": ["--adapter", "deployment.adapters.generic.GenericAdapter"],
                   "adapter_env": {"SNAKEPIT_GENERIC_CONFIG": str(generic)}}],
        "session_store": f"sqlite:///{fleet_dir / 'generic-sessions.db'}",
    }))
    async with LocalFleet.running(config, instances=1, port=0, extra_args=["--run-dir", str(fleet_dir / "grun")]) as generic_fleet:
        assert await call_tool(generic_fleet.url, "root", "g", {"x": 16}) == (200, {"result": 4.0})
        assert await call_tool(generic_fleet.url, "call", "g", {"target": "math.hypot", "args": [3, 4]}) == (200, {"result": 5.0})
        status, body = await call_tool(generic_fleet.url, "call", "g", {"target": "os.system", "args": ["true"]})
        assert status == 400 and body["error"]["type"] in ("ModuleNotAllowed", "BlockedFunction")


async def test_admin_token_and_workers_do_not_outlive_a_killed_front(
        v1_config: Path, fleet_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import aiohttp

    from deployment.errors import BadInput
    from deployment.fleet.http import HttpFleet

    monkeypatch.setenv("SNAKEPIT_ADMIN_TOKEN", "s3cret")
    lone = await LocalFleet.start(v1_config, instances=1, port=0, extra_args=["--run-dir", str(fleet_dir / "lone")])
    assert lone.process is not None
    pids = [i["pid"] for i in (await lone._request("GET", f"{lone.admin}/instances"))["instances"]]
    async with aiohttp.ClientSession() as http:  # traffic and health stay open, admin does not
        async with http.post(f"{lone.url}/admin/instances/w1/drain") as resp:
            assert resp.status == 401
        async with http.get(f"{lone.url}/health") as resp:
            assert resp.status == 200
    monkeypatch.delenv("SNAKEPIT_ADMIN_TOKEN")
    async with HttpFleet(lone.url) as tokenless:
        with pytest.raises(BadInput, match="401"):
            await tokenless.drain("w1")
    assert (await call_tool(lone.url, "ping", "lone"))[0] == 200
    await lone.close()
    lone.process.kill()
    await lone.process.wait()
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert pids and not alive


async def test_expired_sessions_are_pruned(make_config, fleet_dir: Path) -> None:
    store = f"sqlite:///{fleet_dir / 'prune.db'}"
    config = fleet_dir / "prune.json"
    config.write_text(json.dumps(make_config("fleet_adapters.CounterAdapter", "p1", store,
                                             session_default_ttl=1, session_cleanup_interval=300)))
    async with LocalFleet.running(config, instances=1, port=0, extra_args=["--run-dir", str(fleet_dir / "prune")]) as short:
        assert (await call_tool(short.url, "incr", "brief"))[0] == 200
        async with open_store(store) as s:
            assert await s.read_many(["brief"])
        await asyncio.sleep(2.5)  # ttl 1 s, pruned every 0.3 s
        async with open_store(store) as s:
            assert await s.read_many(["brief"]) == {}
        assert await call_tool(short.url, "incr", "brief") == (200, {"result": 1})  # a new session


async def test_control_verbs_drive_the_fleet(fleet: LocalFleet, capsys: pytest.CaptureFixture[str]) -> None:
    from client.cli import main

    async def verb(*args: str) -> tuple[int, dict]:
        code = await asyncio.to_thread(main, [*args, "--fleet", f"local:{fleet.url}", "--json"])
        return code, json.loads(capsys.readouterr().out)

    code, health = await verb("pool", "status")
    assert code == 0 and health["status"] == "ok" and len(health["instances"]) == 3
    code, drained = await verb("pool", "drain", "w2")
    assert code == 0 and drained["state"] == "draining"
    code, listed = await verb("pool", "instances")
    assert [i["state"] for i in listed["instances"]] == ["serving", "draining", "serving"]
    code, back = await verb("pool", "undrain", "w2")
    assert code == 0 and back["state"] == "serving"
