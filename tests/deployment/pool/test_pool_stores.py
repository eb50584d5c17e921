"""The fleet's sessions in the real Redis and PostgreSQL stores."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from deployment.fleet.local import LocalFleet
from deployment.sessions.stores import open_store
from tests.deployment.pool.fleet_helpers import call_tool

pytestmark = [pytest.mark.services, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(params=["redis", "postgresql"])
def store_base(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(kind, base URL) of each real store; skips (or fails under CI) where the service is absent."""
    return request.param, request.getfixturevalue("redis_base" if request.param == "redis" else "pg_base")


async def test_sessions_live_in_the_configured_store(make_config, store_base: tuple[str, str], tmp_path: Path) -> None:
    kind, base = store_base
    tag = uuid.uuid4().hex[:8]
    url = f"{base}?prefix=fleet-{tag}:" if kind == "redis" else f"{base}?table=fleet_{tag}"
    config = tmp_path / "fleet.json"
    config.write_text(json.dumps(make_config("fleet_adapters.CounterAdapter", "v1", url)))
    async with LocalFleet.running(config, instances=2, port=0, extra_args=["--run-dir", str(tmp_path / "run")]) as fleet:
        for expected in (1, 2, 3):
            assert await call_tool(fleet.url, "incr", f"s-{tag}", {"by": 1}) == (200, {"result": expected})
        reported = (await fleet.list_instances())[0].sessions
        # direct store access, or a session router in its resting mode
        assert reported is not None and reported["store"] == url and reported["mode"] in ("direct", "source")
    async with open_store(url) as store:
        rec = (await store.read_many([f"s-{tag}"]))[f"s-{tag}"]
        assert rec["metadata"] == {"counter": 3} and rec["last_worker_id"] in ("w1", "w2")
        await store.delete_many([f"s-{tag}"])
        if kind == "postgresql":  # every table the store made for this test's table name
            pool = store.pool  # type: ignore[attr-defined]
            for row in await pool.fetch("SELECT tablename FROM pg_tables WHERE tablename LIKE $1", f"fleet_{tag}%"):
                await pool.execute(f'DROP TABLE IF EXISTS "{row["tablename"]}"')
