"""A rollback that fails for a real cause, `recover ID` naming what remains, and `--resume-rollback` finishing it.

The fault is injected at a chosen point by the test's worker: just before the
compensation activity starts, the target is made unreachable for real (the
PostgreSQL role of the target URL loses its login; the config directory
becomes immutable, so even root gets EPERM). The workflow's own retry budget
runs out, the run ends ``rollback_failed``; then the cause is fixed and the
CLI resumes the rollback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor, Worker

from activities import all_activities
from client import api
from client.cli.config import start_config_workflow
from deployment.sessions.record import canonical_bytes
from deployment.sessions.recovery import store_digest
from deployment.sessions.snapshot import generate_sessions, write_snapshot
from deployment.sessions.stores import open_store
from tests.client.test_recover import cli
from tests.deployment.config.config_corpus import CORPUS, snapshot
from tests.e2e.helpers import store_bytes
from workflows import all_workflows
from workflows.session_models import SessionMigrationInput


class FaultBefore(Interceptor):
    """Run ``fault`` once, just before the first attempt of the activity named ``name``."""

    def __init__(self, name: str, fault: Callable[[], Awaitable[None]]) -> None:
        self.name, self.fault, self.fired = name, fault, False

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next, self)


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, owner: FaultBefore) -> None:
        super().__init__(next)
        self.owner = owner

    async def execute_activity(self, input: ExecuteActivityInput):  # noqa: A002, ANN201
        if activity.info().activity_type == self.owner.name and not self.owner.fired:
            self.owner.fired = True
            await self.owner.fault()
        return await self.next.execute_activity(input)


def worker_with(client, queue: str, fault: FaultBefore) -> Worker:  # noqa: ANN001
    """The project's workflows and activities, with one fault armed."""
    return Worker(
        client, task_queue=queue, workflows=all_workflows(), activities=all_activities(),
        activity_executor=concurrent.futures.ThreadPoolExecutor(max_workers=4), interceptors=[fault],
    )  # fmt: skip


async def pg(base: str, sql: str) -> None:
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_role(pg_base: str):
    """A PostgreSQL role of its own (so its login can be revoked), dropped afterwards with what it owns."""
    role = f"spm_rb_{uuid.uuid4().hex[:8]}"
    asyncio.run(pg(pg_base, f"CREATE ROLE {role} LOGIN SUPERUSER"))
    yield role
    asyncio.run(pg(pg_base, f"ALTER ROLE {role} LOGIN; DROP OWNED BY {role}; DROP ROLE {role}"))


def as_role(base: str, role: str, table: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port or 5432}", query=f"table={table}"))


async def test_failed_rollbacks_are_named_resumed_and_validated(temporal_env, tmp_path, pg_base, pg_role, monkeypatch):
    """A session migration and a config migration at once: their retry budgets (about 2 min and 1 min) overlap."""
    monkeypatch.setenv("SNAKEPIT_MIGRATE_HOME", str(tmp_path / "worker-home"))  # the worker's config backups
    for sub in ("sessions", "config"):
        (tmp_path / sub).mkdir()
    outcomes = await asyncio.gather(session_scenario(temporal_env, tmp_path / "sessions", pg_base, pg_role),
                                    config_scenario(temporal_env, tmp_path / "config"), return_exceptions=True)  # fmt: skip
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def session_scenario(temporal_env, tmp_path: Path, pg_base: str, pg_role: str) -> None:  # noqa: ANN001
    """The target's role loses its login just before the undo: rollback_failed; login back; resumed; digest equal."""
    client = temporal_env.client
    target = as_role(pg_base, pg_role, f"t_{uuid.uuid4().hex[:8]}")
    recs = list(generate_sessions(300, now=time.time(), expired_fraction=0.0, seed=11))
    write_snapshot(tmp_path / "in.jsonl", iter(recs))
    async with open_store(target) as store:  # the target as found: 7 sessions of its own and 3 the source also has
        own = list(generate_sessions(7, now=time.time(), expired_fraction=0.0, seed=3))
        clashing = [{**r, "metadata": {"held": "by the target"}} for r in recs[:3]]  # the copy writes these first
        await store.write_many(own + clashing)
    before = await store_bytes(target)

    async def revoke_login() -> None:
        await pg(pg_base, f"ALTER ROLE {pg_role} NOLOGIN; "
                          f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{pg_role}'")  # fmt: skip

    queue = f"recover-{uuid.uuid4().hex[:6]}"
    async with worker_with(client, queue, FaultBefore("undo_session_copy", revoke_login)):
        inp = SessionMigrationInput(source=f"jsonl://{tmp_path}/in.jsonl", target=target, batch_size=20,
                                    overwrite=True, fail_after_batches=3)  # fmt: skip
        handle = await api.start_session_migration(client, inp, task_queue=queue)
        failed = await asyncio.wait_for(api.wait_for_result(handle), timeout=300)
        mid = handle.id
        assert failed.status == "rollback_failed", failed
        assert "StoreUnreachable" in failed.error or "cannot reach PostgreSQL" in failed.error, failed.error

        # Still unreachable: what was done is known from the run, what remains cannot be read.
        code, out, _ = await asyncio.to_thread(cli, temporal_env, tmp_path, "recover", mid, "--json")
        report = json.loads(out)
        assert code == 1 and report["needs_recovery"] and report["failed_run"] == mid
        assert report["done"]["target_before"]["target_count"] == 10  # the copy failed mid-slice: its count is in the journal only
        assert report["remains"]["reachable"] is False and pg_role in report["remains"]["error"]
        assert any(f"recover {mid} --resume-rollback" in step for step in report["steps"])

        await pg(pg_base, f"ALTER ROLE {pg_role} LOGIN")  # the cause, fixed

        code, out, _ = await asyncio.to_thread(cli, temporal_env, tmp_path, "recover", mid)
        assert code == 1 and "60 of 60 journaled session id(s) still to restore" in out, out
        written = [r["id"] for r in recs[:60]]  # three batches of 20, in the snapshot's order
        code, out, _ = await asyncio.to_thread(cli, temporal_env, tmp_path, "recover", mid, "--json")
        remains = json.loads(out)["remains"]
        assert remains["to_restore"] == 60 and set(remains["ids_to_restore"]) <= set(written)
        assert remains["target_now"]["count"] == 10 + 57  # its own, plus what the copy added (three it overwrote)
        code, out, _ = await asyncio.to_thread(cli, temporal_env, tmp_path, "recover", "--scan", "--store", target, "--json")
        [journal] = json.loads(out)["journals"]
        assert code == 1 and journal["run"] == "rollback_failed" and f"recover {mid} --resume-rollback" in journal["advice"]

        code, out, err = await asyncio.to_thread(cli, temporal_env, tmp_path, "recover", mid, "--resume-rollback", "--json")
        done = json.loads(out)
        assert code == 0, err
        assert done["status"] == "rolled_back" and done["rollback_run"] == f"{mid}-rollback" and done["restored"] == 60
        assert done["validation"]["ok"] and done["validation"]["found"] == failed.target_before.target_digest

    assert await store_bytes(target) == before  # byte for byte, the three clashing sessions with their own metadata
    async with open_store(target) as store:
        assert str(await store_digest(store)) == failed.target_before.target_digest and await store.journal_ids() == []
    code, out, _ = await asyncio.to_thread(cli, temporal_env, tmp_path, "recover", mid)
    assert code == 0 and f"rolled back by {mid}-rollback" in out


def chattr(flag: str, folder: Path) -> None:
    subprocess.run(["chattr", flag, str(folder)], check=True)


async def config_scenario(temporal_env, tmp_path: Path) -> None:  # noqa: ANN001
    """The config directory turns immutable just before the restore: rollback_failed; mutable again; resumed; bytes equal."""
    folder = tmp_path / "config"
    shutil.copytree(CORPUS / "v0_5", folder)
    original = snapshot(folder)

    async def make_immutable() -> None:  # no file can be created or renamed in it, not even by root
        await asyncio.to_thread(chattr, "+i", folder)

    queue = f"recover-{uuid.uuid4().hex[:6]}"
    try:
        async with worker_with(temporal_env.client, queue, FaultBefore("restore_config_backup", make_immutable)):
            params = {"path": str(folder), "to_version": "0.10", "accept_findings": True, "fail_after_files": 1}
            failed = await start_config_workflow(temporal_env.client, params, f"config-{uuid.uuid4().hex[:8]}", queue)
            mid = failed.migration_id
            assert failed.status == "rollback_failed", failed
            assert "Operation not permitted" in failed.error, failed.error

            code, out, _ = await asyncio.to_thread(cli, temporal_env, tmp_path, "recover", mid, "--json")
            report = json.loads(out)
            states = {Path(f["path"]).name: f["state"] for f in report["remains"]["files"]}
            assert code == 1 and report["remains"]["to_restore"] == 1
            assert states == {"config.exs": "new version", "prod.exs": "restored"}  # the write stopped after one file
            assert any("lsattr" in step for step in report["steps"])  # the cause's fix is named
            assert any(f"cp '" in step and "config.exs" in step for step in report["steps"])

            await asyncio.to_thread(chattr, "-i", folder)  # the cause, fixed

            code, out, err = await asyncio.to_thread(cli, temporal_env, tmp_path, "recover", mid, "--resume-rollback", "--json")
            done = json.loads(out)
            assert code == 0, err
            assert done["status"] == "rolled_back" and done["validation"]["ok"], done
    finally:
        chattr("-i", folder)
    assert snapshot(folder) == original
    code, out, _ = await asyncio.to_thread(cli, temporal_env, tmp_path, "recover", mid)
    assert code == 0 and "nothing to recover" in out
