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
    fleet = await LocalFleet.start(config, instances=2, port=0, extra_args=["--run-dir", str(tmp_path / "run")])
    try:
        for expected in (1, 2, 3):
            assert await call_tool(fleet.url, "incr", f"s-{tag}", {"by": 1}) == (200, {"result": expected})
        assert (await fleet.list_instances())[0].sessions == {"mode": "direct", "store": url}
    finally:
        assert await fleet.stop() == 0
    async with open_store(url) as store:
        rec = (await store.read_many([f"s-{tag}"]))[f"s-{tag}"]
        assert rec["metadata"] == {"counter": 3} and rec["last_worker_id"] in ("w1", "w2")
        await store.delete_many([f"s-{tag}"])
        if kind == "postgresql":
            for table in (store.table, store.journal):  # type: ignore[attr-defined]
                await store.pool.execute(f"DROP TABLE IF EXISTS {table}")  # type: ignore[attr-defined]
