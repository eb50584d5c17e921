"""Shared helpers for the reference fleet tests: configs on disk and a running fleet."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from deployment.fleet.local import LocalFleet

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fleet"


def fleet_config(adapter: str, version: str, store_url: str, **extra: Any) -> dict[str, Any]:
    """A deployment config (Snakepit keys) running ``adapter`` from the fleet fixtures."""
    return {
        "config_version": version,
        "pools": [{"name": "default", "pool_size": 3, "adapter_args": ["--adapter", adapter],
                   "adapter_env": {"PYTHONPATH": str(FIXTURES)}}],
        "session_store": store_url,
        "session_default_ttl": 600,
        **extra,
    }


@pytest.fixture(scope="session")
def make_config() -> Callable[..., dict[str, Any]]:
    """:func:`fleet_config`, for tests (conftest modules are not importable by name)."""
    return fleet_config


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fleet")


@pytest.fixture(scope="module")
def store_url(fleet_dir: Path) -> str:
    return f"sqlite:///{fleet_dir / 'sessions.db'}"


@pytest.fixture(scope="module")
def v1_config(fleet_dir: Path, store_url: str) -> Path:
    path = fleet_dir / "v1.json"
    path.write_text(json.dumps(fleet_config("fleet_adapters.CounterAdapter", "v1", store_url)))
    return path


@pytest_asyncio.fixture(scope="module")
async def fleet(fleet_dir: Path, v1_config: Path) -> AsyncIterator[LocalFleet]:
    """A 3-instance reference fleet on v1, recording its calls; every process is gone afterwards."""
    async with LocalFleet.running(v1_config, instances=3, port=0, ready_timeout=60,
                                  extra_args=["--record", str(fleet_dir / "calls.jsonl"),
                                              "--run-dir", str(fleet_dir / "run")]) as running:
        yield running
