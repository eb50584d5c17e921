"""The instances of a fleet: worker processes, their state, drain and restart.

An :class:`Instance` is a slot with a stable id (``w1``, ``w2``, ...) whose
worker process can be replaced.  A restart starts the new process first and
swaps only once it has handed shake, so a bad config (unknown adapter, config
that does not parse, never healthy) leaves the old process serving.  A
process that dies is restarted on its current config by the health loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from deployment.pool.config import PoolSpec, parse_pool_config
from deployment.pool.errors import DrainTimeout, InstanceStartFailed, PoolConfigError

log = logging.getLogger("snakepit.pool")

SERVING, DRAINING, RESTARTING, DOWN = "serving", "draining", "restarting", "down"
STOP_GRACE = 5.0


@dataclass
class WorkerProcess:
    """One running worker process of an instance."""

    proc: asyncio.subprocess.Process
    port: int
    spec: PoolSpec
    tools: list[dict[str, Any]]
    sessions: dict[str, Any] | None = None  # the worker's SessionAccess.describe(), refreshed by health checks
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _log_tail(path: Path, limit: int = 600) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return text[-limit:]


class Instance:
    """One slot of the fleet: an id, its current process and config, its in-flight count."""

    def __init__(self, instance_id: str, spec: PoolSpec, run_dir: Path, store_url: str,
                 start_timeout: float) -> None:
        self.id = instance_id
        self.spec = spec
        self.run_dir = run_dir
        self.store_url = store_url
        self.start_timeout = start_timeout
        self.process: WorkerProcess | None = None
        self.drained = False
        self.restarting = False
        self.healthy = False
        self.in_flight = 0
        self.restarts = 0
        self.failed_respawns = 0
        self.failed_checks = 0
        self.last_error: str | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    # -- state --------------------------------------------------------------
    @property
    def state(self) -> str:
        if self.restarting:
            return RESTARTING
        if self.process is None or not self.process.alive or not self.healthy:
            return DOWN
        return DRAINING if self.drained else SERVING

    def describe(self) -> dict[str, Any]:
        """The instance as ``/health`` and the admin API show it."""
        proc = self.process
        return {
            "id": self.id,
            "state": self.state,
            "config_version": self.spec.version,
            "adapter": self.spec.adapter,
            "in_flight": self.in_flight,
            "pid": proc.proc.pid if proc else None,
            "port": proc.port if proc else None,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "sessions": proc.sessions if proc else None,
        }

    # -- traffic accounting (synchronous: no await between pick and acquire) --
    def acquire(self) -> WorkerProcess:
        assert self.process is not None
        proc = self.process
        self.in_flight += 1
        proc.in_flight += 1
        self._idle.clear()
        proc.idle.clear()
        return proc

    def release(self, proc: WorkerProcess) -> None:
        self.in_flight -= 1
        proc.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()
        if proc.in_flight == 0:
            proc.idle.set()

    async def wait_idle(self, timeout: float) -> None:
        """Return once no request is in flight; raise DrainTimeout after ``timeout`` s."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            raise DrainTimeout(self.id, f"{self.in_flight} request(s) still in flight after {timeout:g}s") from None

    # -- processes ------------------------------------------------------------
    async def start(self) -> None:
        """Start the first process on the current config."""
        async with self._lock:
            self.process = await self._spawn(self.spec)
            self.healthy = True

    async def restart(self, raw_config: dict[str, Any], timeout: float | None = None, settle: float = 0.0) -> None:
        """Replace the process with one on ``raw_config``; the old one serves until the swap.

        The new process must hand shake within ``timeout`` and then stay healthy
        for ``settle`` seconds; otherwise it is stopped, the old one is kept and
        :class:`InstanceStartFailed` says why.
        """
        try:
            spec = parse_pool_config(raw_config, self.spec.pool_name)
        except PoolConfigError as exc:
            raise InstanceStartFailed(self.id, f"the new config cannot be loaded: {exc}") from None
        async with self._lock:
            log.info("%s: restarting from config %s onto %s", self.id, self.spec.version, spec.version)
            self.restarting = True
            try:
                new = await self._spawn(spec, timeout)
                await self._settle(new, settle)
            except InstanceStartFailed as exc:
                self.last_error = exc.cause
                raise
            finally:
                self.restarting = False
            old, self.process, self.spec = self.process, new, spec
            self.healthy = True
            self.restarts += 1
            self.last_error = None
        if old is not None:
            task = asyncio.create_task(self._retire(old))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def respawn(self) -> None:
        """Bring a dead process back on the current config (the health loop's repair).

        Waits 1 s before the first attempt, doubling after each failure up to 30 s.
        """
        await asyncio.sleep(min(30.0, 2.0 ** self.failed_respawns))
        async with self._lock:
            if self.process is not None and self.process.alive:
                return
            try:
                self.process = await self._spawn(self.spec)
            except InstanceStartFailed as exc:
                self.last_error = exc.cause
                self.failed_respawns += 1
                log.warning("%s: could not restart: %s", self.id, exc.cause)
                return
            self.healthy = True
            self.restarts += 1
            self.failed_respawns = 0

    async def stop(self) -> None:
        """Stop the process (fleet shutdown)."""
        if self.process is not None:
            await self._terminate(self.process)

    async def _settle(self, worker: WorkerProcess, seconds: float) -> None:
        """Watch a new process for ``seconds``: it must stay alive and answer ``/ready``."""
        if seconds <= 0:
            return
        deadline = time.monotonic() + seconds
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            while time.monotonic() < deadline:
                problem = None
                if not worker.alive:
                    problem = f"the worker exited with {worker.proc.returncode}"
                else:
                    try:
                        async with http.get(f"{worker.url}/ready", timeout=aiohttp.ClientTimeout(total=2.0)) as resp:
                            if resp.status != 200:
                                problem = f"/ready answered HTTP {resp.status}"
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        problem = f"/ready failed: {type(exc).__name__}"
                if problem:
                    await self._kill(worker.proc)
                    tail = _log_tail(self.run_dir / f"{self.id}.log", 300)
                    raise InstanceStartFailed(self.id, f"unhealthy within {seconds:g}s of starting "
                                                       f"(adapter {worker.spec.adapter}): {problem}"
                                                       + (f"; log: {tail}" if tail else ""))
                await asyncio.sleep(0.2)

    async def _retire(self, old: WorkerProcess) -> None:
        try:
            if old.in_flight:
                await asyncio.wait_for(old.idle.wait(), 60.0)
        except TimeoutError:
            log.warning("%s: old process %d still busy after 60s; stopping it", self.id, old.proc.pid)
        await self._terminate(old)

    async def _terminate(self, worker: WorkerProcess) -> None:
        if worker.proc.returncode is None:
            try:
                worker.proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(worker.proc.wait(), STOP_GRACE)
            except ProcessLookupError:
                pass
            except TimeoutError:
                worker.proc.kill()
                await worker.proc.wait()

    async def _spawn(self, spec: PoolSpec, timeout: float | None = None) -> WorkerProcess:
        stamp = f"{self.id}-{time.time_ns()}"
        config_file = self.run_dir / f"{stamp}.config.json"
        config_file.write_text(json.dumps(spec.raw, default=str))
        log_file = self.run_dir / f"{self.id}.log"
        env = {**os.environ, **spec.adapter_env}
        with open(log_file, "ab") as log_fh:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "deployment.pool.worker", "--instance", self.id,
                "--config", str(config_file), "--pool", spec.pool_name, "--store", self.store_url,
                stdout=asyncio.subprocess.PIPE, stderr=log_fh, stdin=asyncio.subprocess.DEVNULL, env=env,
            )
        limit = timeout or self.start_timeout
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), limit)
        except TimeoutError:
            await self._kill(proc)
            raise InstanceStartFailed(self.id, f"never became healthy within {limit:g}s "
                                               f"(adapter {spec.adapter}); log: {log_file}") from None
        try:
            hello = json.loads(line) if line else {}
        except ValueError:
            hello = {}
        if not hello.get("ready"):
            await self._kill(proc)
            cause = hello.get("error") or f"the worker exited before it was ready: {_log_tail(log_file) or 'no output'}"
            raise InstanceStartFailed(self.id, cause)
        log.info("%s: worker pid %d serving %s (config %s) on port %d",
                 self.id, proc.pid, spec.adapter, spec.version, hello["port"])
        worker = WorkerProcess(proc=proc, port=int(hello["port"]), spec=spec, tools=hello.get("tools", []),
                               sessions=hello.get("sessions"))
        worker.idle.set()
        return worker

    @staticmethod
    async def _kill(proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
        await proc.wait()
