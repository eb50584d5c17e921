"""Fault injection for session migrations: real processes, one fault at a chosen point, then invariants.

Each trial runs on its own Temporal dev server (persisted to a file, so it
can be killed and restarted on the same database), its own worker process,
and its own Redis server (append-only, so a restart keeps its data); the
target PostgreSQL table is the machine's, under a unique name. A trial:
fills a JSONL snapshot, starts a SessionMigration into the target, waits
until the copy has done the chosen fraction, injects the fault, restarts
what it killed, and waits for the run to converge. Then it checks:

* completed → the target holds exactly the source's live sessions, byte for
  byte (so every expiry is kept), with no journal left but its own;
* rolled back → the target is as it was found, with no journal at all.

The other migration types have their trials in :mod:`tests.chaos.other_kinds`
(a config directory refusing writes, a fleet instance SIGKILLed during a
rolling restart, a custom extension raising in its apply step). Every trial,
of every kind, also checks the audit log the worker wrote: its hash chain
intact, and the run in it from start to end.

``python -m tests.chaos.harness --trials 50 --seed 7`` prints a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import asyncpg

from client import api
from client.connect import connect
from client.paths import temporal_cli
from deployment.sessions.snapshot import generate_sessions, write_snapshot
from deployment.sessions.stores import open_store
from deployment.sessions.verify import compare_stores
from workflows.session_models import MigrationProgress, SessionMigrationInput

PG = os.environ.get("SNAKEPIT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
SESSION_FAULTS = ("worker_kill", "temporal_restart", "pg_terminate", "redis_restart")
FAULTS = (*SESSION_FAULTS, "config_permission", "fleet_instance_kill", "extension_raise")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")


@dataclass
class Trial:
    """One fault at one point, and what came of it."""

    fault: str
    at_fraction: float
    target: str  # "postgresql" | "redis"
    sessions: int = 3000
    injected: str = ""  # what the fault did, e.g. "terminated 2 connections"
    outcome: str = "pending"  # completed | rolled_back | stuck | error
    invariants_ok: bool = False
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Services:
    """The processes a trial owns: a dev server, a worker, a Redis server; each can be killed and restarted."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.temporal_port, self.redis_port = free_port(), free_port()
        self.queue = f"chaos-{uuid.uuid4().hex[:6]}"
        self.log = (folder / "services.log").open("ab")
        self.audit_url = f"sqlite://{folder / 'audit.db'}"  # the log the worker writes; its chain is checked after each trial
        self.worker_env = {**os.environ, "SNAKEPIT_AUDIT_URL": self.audit_url, "SNAKEPIT_MIGRATE_HOME": str(folder / "home")}
        self.temporal: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.redis: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def _spawn(self, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(cmd, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, start_new_session=True, env=env)

    def start_temporal(self) -> None:
        self.temporal = self._spawn([
            temporal_cli(), "server", "start-dev", "--headless", "--port", str(self.temporal_port),
            "--db-filename", str(self.folder / "temporal.db"), "--log-level", "error",
            "--http-port", str(free_port()), "--metrics-port", str(free_port()),
        ])  # fmt: skip
        wait_port(self.temporal_port)

    def start_worker(self) -> None:
        self.worker = self._spawn([sys.executable, "-m", "client.cli", "worker", "--address", self.address,
                                   "--task-queue", self.queue], self.worker_env)  # fmt: skip

    def start_redis(self) -> None:
        self.redis = self._spawn([
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port), "--dir", str(self.folder),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
        ])  # fmt: skip
        wait_port(self.redis_port)

    @staticmethod
    def kill(proc: subprocess.Popen | None) -> None:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        for proc in (self.worker, self.temporal, self.redis):
            self.kill(proc)


async def terminate_pg_connections(table: str) -> int:
    """``pg_terminate_backend`` every connection whose last query touched ``table``."""
    conn = await asyncpg.connect(PG)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE $1",
            f"%{table}%",
        )
        return len(rows)
    finally:
        await conn.close()


async def inject(trial: Trial, svc: Services, table: str) -> str:
    """Inject the trial's fault and restart what it killed; returns what it did."""
    if trial.fault == "worker_kill":
        svc.kill(svc.worker)
        svc.start_worker()
        return "worker SIGKILLed and started again"
    if trial.fault == "temporal_restart":
        svc.kill(svc.temporal)
        svc.start_temporal()
        return "Temporal server SIGKILLed and started again on the same database"
    if trial.fault == "pg_terminate":
        for _ in range(200):  # the worker's connections show the table once they have used it
            n = await terminate_pg_connections(table)
            if n:
                return f"terminated {n} PostgreSQL connection(s)"
            await asyncio.sleep(0.05)
        return "no PostgreSQL connection to terminate"
    if trial.fault == "redis_restart":
        svc.kill(svc.redis)
        svc.start_redis()
        return "Redis SIGKILLed and started again (append-only file kept)"
    raise ValueError(f"unknown fault {trial.fault!r}")


async def store_state(url: str) -> tuple[dict[str, bytes], list[str]]:
    from deployment.sessions.record import canonical_bytes

    async with open_store(url) as store:
        held = {r["id"]: canonical_bytes(r) async for b in store.iter_records() for r in b}
        return held, await store.journal_ids()


async def audit_problems(url: str, migration_id: str) -> list[str]:
    """The audit log the run wrote: its hash chain intact, and the run in it from start to end."""
    from deployment.audit import open_audit_log

    async with open_audit_log(url) as log:
        report = await log.verify()
        events = [e.event for e in await log.entries(migration=migration_id)]
    problems = [f"audit chain broken: {p.message}" for p in report.problems] or ([] if report.ok else ["audit chain not ok"])
    if "started" not in events or "ended" not in events:
        problems.append(f"audit log lacks the run's start or end: {events}")
    return problems


@asynccontextmanager
async def trial_run(trial: Trial, redis: bool = False) -> AsyncIterator[Services]:
    """The services of one trial, started; afterwards the verdict (a harness failure is a finding) and clean-up."""
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="chaos-"))
    svc = Services(folder)
    try:
        svc.start_temporal()
        if redis:
            svc.start_redis()
        svc.start_worker()
        yield svc
        trial.invariants_ok = not trial.problems
    except asyncio.TimeoutError:
        trial.outcome = "stuck"
        trial.problems.append("no final state within the trial's time")
    except Exception as exc:  # a harness failure is a finding, reported in the summary
        trial.outcome = "error"
        trial.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        svc.stop()
        shutil.rmtree(folder, ignore_errors=True)
        trial.seconds = round(time.monotonic() - started, 1)


def judge(trial: Trial, status: str, error: str | None, completed: list[str], rolled_back: list[str]) -> None:
    """Record the outcome and the problems the invariants of that outcome found."""
    trial.outcome = status
    if status == "completed":
        trial.problems += completed
    elif status == "rolled_back":
        trial.problems += rolled_back
    else:
        trial.problems.append(f"did not converge: {status} ({error})")


async def run_trial(trial: Trial, timeout: float = 240) -> Trial:
    """A session migration with one fault mid-copy (the fault kinds of :data:`SESSION_FAULTS`)."""
    table = f"chaos_{uuid.uuid4().hex[:8]}"
    async with trial_run(trial, redis=True) as svc:
        try:
            snap = svc.folder / "in.jsonl"
            write_snapshot(snap, generate_sessions(trial.sessions, now=time.time(), expired_fraction=0.05, seed=hash(table) % 1000))
            target = f"{PG}?table={table}" if trial.target == "postgresql" else f"{svc.redis_url}?prefix={table}:"
            before, _ = await store_state(target)
            client = await connect(svc.address)
            handle = await api.start_session_migration(
                # paced to last about 5 s, so the fault lands mid-copy however fast the stores are
                client, SessionMigrationInput(source=f"jsonl://{snap}", target=target, batch_size=20, slice_seconds=1.0,
                                              rate_limit_per_s=max(trial.sessions / 5, 50)),
                task_queue=svc.queue,
            )  # fmt: skip
            goal = int(trial.sessions * trial.at_fraction)
            while True:
                p = await handle.query("progress", result_type=MigrationProgress)
                if p.phase not in ("pending", "validating", "backup") and p.done >= goal or p.phase == "done":
                    break
                await asyncio.sleep(0.05)
            trial.injected = await inject(trial, svc, table)
            client = await connect(svc.address)  # the old connection may have died with the server
            result = await asyncio.wait_for(api.wait_for_result(client.get_workflow_handle(handle.id)), timeout)
            after, journals = await store_state(target)
            async with open_store(f"jsonl://{snap}") as src, open_store(target) as tgt:
                report = await compare_stores(src, tgt)
            differs = [] if report.ok else [f"target differs: {report.missing_count} missing, "
                                            f"{report.mismatched_count} mismatched, {report.extra_count} extra"]  # fmt: skip
            judge(trial, result.status, result.error,
                  completed=differs + ([f"journals left: {journals}"] if journals not in ([], [handle.id]) else []),
                  rolled_back=([f"target not as found: {len(after)} sessions, {len(before)} before"] if after != before else [])
                  + ([f"journals left after rollback: {journals}"] if journals else []))  # fmt: skip
            trial.problems += await audit_problems(svc.audit_url, handle.id)
        finally:
            async with asyncpg.create_pool(PG, min_size=1, max_size=1) as pool:
                await pool.execute(f"DROP TABLE IF EXISTS {table}, {table}_migrate_journal, {table}_migrate_control")
    return trial


def sample(trials: int, seed: int) -> list[Trial]:
    """A seeded random sample of fault points: every kind in turn, at random fractions, on both targets."""
    rng = random.Random(seed)
    fixed = {"pg_terminate": "postgresql", "redis_restart": "redis"}  # a fault that touches only one kind of store

    def trial(fault: str) -> Trial:
        at, target = round(rng.uniform(0.05, 0.95), 2), rng.choice(["postgresql", "redis"])
        return Trial(fault=fault, at_fraction=at, target=fixed.get(fault, target))

    return [trial(FAULTS[i % len(FAULTS)]) for i in range(trials)]


async def run_any(trial: Trial) -> Trial:
    """Run a trial of any fault kind."""
    from tests.chaos import other_kinds

    runner = {"config_permission": other_kinds.run_config_trial, "fleet_instance_kill": other_kinds.run_fleet_trial,
              "extension_raise": other_kinds.run_extension_trial}.get(trial.fault, run_trial)  # fmt: skip
    return await runner(trial)


async def main(trials: int, seed: int) -> dict:
    done = [await run_any(t) for t in sample(trials, seed)]
    return {
        "faults_injected": len(done),
        "converged": sum(t.outcome in ("completed", "rolled_back") for t in done),
        "invariant_violations": sum(not t.invariants_ok for t in done),
        "by_fault": {f: sum(t.fault == f for t in done) for f in FAULTS},
        "outcomes": {o: sum(t.outcome == o for t in done) for o in sorted({t.outcome for t in done})},
        "trials": [asdict(t) for t in done],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Inject faults into real session migrations and check invariants.")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    a = parser.parse_args()
    summary = asyncio.run(main(a.trials, a.seed))
    print(json.dumps(summary, indent=2))
    sys.exit(0 if summary["invariant_violations"] == 0 else 1)
