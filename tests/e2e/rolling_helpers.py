"""What the rolling-restart tests share: fixture configs, a real 3-instance reference fleet, run helpers."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from client import api
from deployment.fleet.base import FleetHealth
from deployment.fleet.local import LocalFleet
from workflows.fleet_models import RollingRestartInput, RollingRestartProgress, RollingRestartResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAST = {"drain_timeout_s": 10.0, "health_timeout_s": 20.0, "settle_s": 0.5}


def fleet_config(adapter: str, version: str, store_url: str, **env: str) -> dict[str, Any]:
    """A deployment config (Snakepit keys) running a fixture adapter."""
    path = os.pathsep.join([str(FIXTURES / "fleet"), str(FIXTURES / "rolling")])
    return {
        "config_version": version,
        "pools": [{"name": "default", "pool_size": 3, "adapter_args": ["--adapter", adapter],
                   "adapter_env": {"PYTHONPATH": path, **env}}],
        "session_store": store_url,
        "session_default_ttl": 600,
    }


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rolling")


@pytest.fixture(scope="module")
def store_url(fleet_dir: Path) -> str:
    return f"sqlite:///{fleet_dir / 'sessions.db'}"


@pytest_asyncio.fixture(scope="module")
async def fleet(fleet_dir: Path, store_url: str) -> AsyncIterator[LocalFleet]:
    """A 3-instance reference fleet on config v1; every process of it is gone afterwards (else FleetLeftRunning)."""
    v1 = fleet_dir / "v1.json"
    v1.write_text(json.dumps(fleet_config("fleet_adapters.CounterAdapter", "v1", store_url)))
    async with LocalFleet.running(v1, instances=3, port=0, ready_timeout=60,
                                  extra_args=["--run-dir", str(fleet_dir / "run")]) as running:
        yield running


async def versions(fleet: LocalFleet) -> dict[str, str | None]:
    """Each instance's config version."""
    return {i.id: i.config_version for i in await fleet.list_instances()}


async def restart_watching(
    client, queue: str, fleet: LocalFleet, on_progress: Callable[[RollingRestartProgress], None] | None = None,
    **fields: Any,
) -> tuple[str, RollingRestartResult, list[tuple[RollingRestartProgress, FleetHealth]]]:
    """Run a rolling restart to its end, sampling its progress and the fleet's health every 0.1 s."""
    inp = RollingRestartInput(fleet=fleet.url, driver="local", **{**FAST, **fields})
    handle = await api.start_rolling_restart(client, inp, task_queue=queue)
    samples: list[tuple[RollingRestartProgress, FleetHealth]] = []

    async def sample(progress: RollingRestartProgress) -> None:
        samples.append((progress, await fleet.health()))
        if on_progress is not None:
            on_progress(progress)

    result = await api.wait_for_rolling_restart(handle, sample, poll_s=0.1)
    return handle.id, result, samples


def assert_one_out_at_most(samples: list[tuple[RollingRestartProgress, FleetHealth]], migration_id: str) -> None:
    """While the run touched the fleet: health said ``migrating`` (this run), and at most one instance was out."""
    during = [(p, h) for p, h in samples if p.phase not in ("pending", "validating", "done")]
    assert len(during) >= 6, f"too few samples to prove anything: {len(during)}"
    for progress, health in during:
        out = [i.id for i in health.instances if i.state != "serving"]
        assert len(out) <= 1, f"{out} out of service at once during {progress.phase} {progress.instance}"
        if health.migration is not None:
            assert health.status == "migrating" and health.migration.id == migration_id
