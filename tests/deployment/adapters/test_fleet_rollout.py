"""A reference fleet moves from a custom adapter to the verified mixed generic configuration.

Real worker processes: calls are recorded on the custom adapter, the
recording feeds the equivalence check, the verified configuration is rolled
out instance by instance under load, and the recorded calls replayed against
the fleet get the same answers (migrated tools through generic calls,
stateful ones through the custom adapter the generic one delegates to).
The AdapterMigration workflow will drive these same steps.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from deployment.adapters.analyzer import analyze_path
from deployment.adapters.equivalence import Limits, read_records, replay, verify
from deployment.adapters.proposal import propose_config
from deployment.fleet.local import LocalFleet
from deployment.pool.load import run_load

pytestmark = pytest.mark.asyncio(loop_scope="session")

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "adapters"
CALLS = [
    ("square_root", {"x": 2.0}), ("square_root", {"x": 16}), ("mean", {"values": [1, 2, 4]}),
    ("round_to", {"x": 2.34567}), ("title", {"text": "hello  big world"}), ("gcd", {"a": 12, "b": 18}),
    ("log_base", {"x": 1000.0}), ("fsum", {"values": [0.1] * 10}),
    ("cached_factorial", {"n": 5}), ("countdown", {"n": 2}),  # these two stay custom
]


def fleet_config(adapter: str, version: str, store_url: str, env: dict[str, str]) -> dict[str, Any]:
    return {
        "config_version": version,
        "pools": [{"name": "default", "pool_size": 2, "adapter_args": ["--adapter", adapter],
                   "adapter_env": {"PYTHONPATH": str(FIXTURES), **env}}],
        "session_store": store_url,
        "session_default_ttl": 600,
    }


def http_call(url: str, tool: str, arguments: dict[str, Any], session: str = "replay") -> Any:
    """One call to the fleet; an error answer is raised as an exception named by its type."""
    body = json.dumps({"session_id": session, "arguments": arguments}).encode()
    request = urllib.request.Request(f"{url}/tools/{tool}", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read())["result"]
    except urllib.error.HTTPError as exc:
        error = json.loads(exc.read()).get("error", {})
        raised = type(error.get("type", "HTTPError"), (Exception,), {"status": exc.code})
        raise raised(error.get("message", "")) from None


async def test_custom_fleet_rolls_onto_the_verified_mixed_config_with_identical_answers(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'sessions.db'}"
    v1 = tmp_path / "v1.json"
    v1.write_text(json.dumps(fleet_config("base_adapter_tools.MathToolsAdapter", "v1", store_url, {})))
    recorded = tmp_path / "calls.jsonl"
    fleet = await LocalFleet.start(v1, instances=2, port=0, ready_timeout=60,
                                   extra_args=["--record", str(recorded), "--run-dir", str(tmp_path / "run")])
    try:
        for tool, arguments in CALLS:
            await asyncio.to_thread(http_call, fleet.url, tool, arguments, "record")
        with pytest.raises(Exception) as unknown_before:
            await asyncio.to_thread(http_call, fleet.url, "no_such_tool", {})
        records = read_records(recorded)
        assert len(records) == len(CALLS) and all(r.has_result for r in records)

        report = analyze_path(FIXTURES / "base_adapter_tools.py")
        verified = verify(report, propose_config(report), traffic=read_records(recorded), examples=10,
                          limits=Limits(timeout=30))
        assert verified.ok, [v.to_dict() for v in verified.tools if v.decision != "generic"]
        # The sandboxed custom adapter reproduces every recorded production answer of a migrated tool.
        assert sum(v.recorded["cases"] for v in verified.tools) == sum(v.recorded["matches"] for v in verified.tools) == 8
        assert verified.config["custom_adapter"] == "base_adapter_tools.MathToolsAdapter"
        generic = tmp_path / "generic.json"
        generic.write_text(json.dumps(verified.config))
        v2 = fleet_config("deployment.adapters.generic.GenericAdapter", "v2", store_url,
                          {"SNAKEPIT_GENERIC_CONFIG": str(generic)})

        load = asyncio.create_task(run_load(fleet.url, rate=10, duration=15, sessions=4, tool="square_root",
                                            arguments={"x": 9.0}, keep_results=True))
        await asyncio.sleep(0.5)
        for inst in await fleet.list_instances():
            await fleet.drain(inst.id)
            await fleet.wait_idle(inst.id, 10)
            assert (await fleet.restart(inst.id, v2, timeout=30, settle=0.5)).config_version == "v2"
            await fleet.undrain(inst.id)
        assert not load.done(), "the load ended before the rollout did: the test proves nothing"
        result = await load
        assert result.errors == 0 and result.ok == result.requests == 150, result.error_kinds
        assert set(result.last_results.values()) == {3.0}
        health = await fleet.health()
        assert {(i.config_version, i.adapter) for i in health.instances} == {
            ("v2", "deployment.adapters.generic.GenericAdapter")}

        # An unknown tool: this adapter's own execute_tool let call_tool's AttributeError out (500);
        # the generic adapter answers as the host does for adapters without their own dispatch (404).
        with pytest.raises(Exception) as unknown_after:
            await asyncio.to_thread(http_call, fleet.url, "no_such_tool", {})
        assert (type(unknown_before.value).__name__, unknown_before.value.status) == ("ToolError", 500)
        assert "AttributeError" in str(unknown_before.value)
        assert (type(unknown_after.value).__name__, unknown_after.value.status) == ("UnknownTool", 404)

        verdicts = await asyncio.to_thread(replay, records, lambda tool, args: http_call(fleet.url, tool, args))
        assert {v.tool: (v.status, v.cases, v.matches) for v in verdicts} == {
            tool: ("equivalent", n, n) for tool, n in
            {"square_root": 2, "mean": 1, "round_to": 1, "title": 1, "gcd": 1, "log_base": 1, "fsum": 1,
             "cached_factorial": 1, "countdown": 1}.items()
        }
    finally:
        assert await fleet.stop() == 0
