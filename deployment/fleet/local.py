"""The ``local`` driver: the reference fleet, started here or already running on loopback.

:meth:`LocalFleet.start` runs ``snakepit-migrate pool start --json`` as a
child process, reads its one-line ready report, and controls it through the
admin endpoints like the ``http`` driver; :meth:`LocalFleet.stop` shuts it
down and reaps it (the front stops its workers on the way out).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psutil

from deployment.fleet.http import HttpFleet
from deployment.pool.errors import FleetLeftRunning, FleetStartFailed, FleetUnreachable

_CLI = "import sys; from client.cli import main; sys.exit(main())"


class LocalFleet(HttpFleet):
    """The reference fleet on this machine."""

    kind = "local"

    def __init__(self, url: str, *, process: asyncio.subprocess.Process | None = None,
                 ready: dict[str, Any] | None = None, log_path: Path | None = None) -> None:
        super().__init__(url)
        self.process = process
        self.ready = ready or {}
        self.log_path = log_path

    @classmethod
    async def start(cls, config_path: str | Path, *, instances: int | None = None, port: int = 0,
                    extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                    ready_timeout: float = 90.0, log_path: str | Path | None = None) -> LocalFleet:
        """Start a reference fleet on ``config_path`` and return a driver for it once it serves."""
        args = [sys.executable, "-c", _CLI, "pool", "start", "--config", str(config_path),
                "--port", str(port), "--json", *(extra_args or [])]
        if instances is not None:
            args += ["--instances", str(instances)]
        log = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="snakepit-fleet-", suffix=".log")[1])
        with open(log, "ab") as log_fh:
            proc = await asyncio.create_subprocess_exec(
                *args, stdout=asyncio.subprocess.PIPE, stderr=log_fh, stdin=asyncio.subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
            )
        assert proc.stdout is not None
        try:
            ready = await asyncio.wait_for(_read_json(proc.stdout), ready_timeout)
        except TimeoutError:
            ready = None
        if not isinstance(ready, dict) or "url" not in ready:
            await _reap(proc, 5.0)
            tail = log.read_text(errors="replace").strip()[-1500:] if log.exists() else ""
            raise FleetStartFailed(f"the reference fleet did not start: {tail or 'no output'}")
        return cls(ready["url"], process=proc, ready=ready, log_path=log)

    @classmethod
    @asynccontextmanager
    async def running(cls, config_path: str | Path, **start: Any) -> AsyncIterator[LocalFleet]:
        """Start a fleet for the ``async with`` block; on the way out stop it and check that
        the front and every worker are gone (else :class:`FleetLeftRunning`)."""
        fleet = await cls.start(config_path, **start)
        failed = False
        try:
            yield fleet
        except BaseException:
            failed = True
            raise
        finally:
            pids = await fleet.process_ids()
            code = await fleet.stop()
            left = [p for p in pids if _alive(p)]
            if not failed and (left or code != 0):
                raise FleetLeftRunning(f"the fleet at {fleet.url} exited with {code}; still running: {left or 'none'}")

    async def process_ids(self) -> list[int]:
        """The front's pid and those of the workers it reports (empty if it does not answer)."""
        pids = [self.process.pid] if self.process is not None else []
        try:
            payload = await self._request("GET", f"{self.admin}/instances")
        except FleetUnreachable:
            return pids
        return pids + [i["pid"] for i in payload["instances"] if i.get("pid")]

    async def stop(self, timeout: float = 20.0) -> int | None:
        """Shut the fleet down and wait for it; returns its exit code (None if not ours)."""
        try:
            await self.shutdown()
        except FleetUnreachable:
            pass
        await self.close()
        if self.process is None:
            return None
        return await _reap(self.process, timeout)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def _read_json(stream: asyncio.StreamReader) -> Any:
    """The first JSON object on a stream (it may span lines); None at EOF."""
    text = ""
    while line := await stream.readline():
        text += line.decode(errors="replace")
        try:
            return json.loads(text)
        except ValueError:
            continue
    return None


async def _reap(proc: asyncio.subprocess.Process, timeout: float = 20.0) -> int:
    try:
        return await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        pass
    try:
        proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(proc.wait(), 10.0)
    except (ProcessLookupError, TimeoutError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    return await proc.wait()
