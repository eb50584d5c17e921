"""One fleet instance: a process hosting one adapter behind a small loopback HTTP API.

Started by the front as ``python -m deployment.pool.worker --instance ID
--config FILE``.  It loads the adapter and opens the session store, binds
127.0.0.1 on a free port, then writes exactly one JSON line on stdout: the
handshake ``{"ready": true, "port", "pid", "adapter", "config_version",
"tools"}`` or ``{"ready": false, "error": cause}`` (then exits 2).  After the
handshake stdout is pointed at the log, so adapter prints cannot block it.

Endpoints: ``GET /ready``; ``POST /call`` with ``{"tool", "session_id",
"arguments"}`` → ``{"result"}`` or ``{"error": {"type", "message"}}``;
``POST /prune`` (delete expired sessions, asked for by the front).
The adapter sees ``SNAKEPIT_CONFIG`` (the config file) and
``SNAKEPIT_ADAPTER_ARGS`` (the ``adapter_args`` after ``--adapter X``, JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from deployment.errors import BadInput, MigrateError
from deployment.pool.adapter_host import TOOL_NAME, AdapterHost, AdapterLoadError, UnknownTool, load_adapter_class
from deployment.pool.config import parse_pool_config
from deployment.pool.session_access import SessionAccess, open_session_access
from deployment.sessions.stores.base import QuotaExceeded
from snakepit_bridge.session_context import SessionContext

log = logging.getLogger("snakepit.worker")


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": kind, "message": message}}, status=status)


class Worker:
    """The HTTP face of one adapter host and its session access."""

    def __init__(self, instance_id: str, host: AdapterHost, sessions: SessionAccess, version: str) -> None:
        self.instance_id = instance_id
        self.host = host
        self.sessions = sessions
        self.version = version
        self.in_flight = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/ready", self.ready)
        app.router.add_post("/call", self.call)
        app.router.add_post("/prune", self.prune)
        return app

    def describe(self) -> dict[str, Any]:
        return {"instance": self.instance_id, "adapter": self.host.path, "config_version": self.version,
                "tools": self.host.tools, "in_flight": self.in_flight, "pid": os.getpid(),
                "sessions": self.sessions.describe()}

    async def ready(self, request: web.Request) -> web.Response:
        return web.json_response(self.describe())

    async def prune(self, request: web.Request) -> web.Response:
        try:
            pruned = await self.sessions.prune()
        except Exception as exc:
            return self._store_failed("pruning", "*", exc)
        return web.json_response({"pruned": pruned})

    async def call(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "BadRequest", "the body must be a JSON object")
        tool, session_id, arguments = body.get("tool"), body.get("session_id"), body.get("arguments", {})
        if not isinstance(tool, str) or not TOOL_NAME.match(tool):
            return _error(400, "BadRequest", f"invalid tool name {tool!r}")
        if not isinstance(session_id, str) or not session_id:
            return _error(400, "BadRequest", "'session_id' must be a non-empty string")
        if not isinstance(arguments, dict):
            return _error(400, "BadRequest", "'arguments' must be a JSON object")
        self.in_flight += 1
        try:
            return await self._run(tool, session_id, arguments)
        finally:
            self.in_flight -= 1

    async def _run(self, tool: str, session_id: str, arguments: dict[str, Any]) -> web.Response:
        try:
            record = await self.sessions.begin(session_id, self.instance_id)
        except Exception as exc:  # the store is down or refuses: the caller gets JSON, the log the detail
            return self._store_failed("reading", session_id, exc)
        context = SessionContext(session_id, record.get("metadata"), record.get("programs"))
        try:
            result = await asyncio.to_thread(self.host.call, tool, arguments, context)
        except UnknownTool as exc:
            return _error(404, "UnknownTool", str(exc))
        except BadInput as exc:  # an adapter refusing the call (the generic adapter's CallRefused, ...)
            return _error(400, type(exc).__name__, str(exc))
        except Exception as exc:  # the adapter's own failure goes back to the caller
            log.warning("tool %s failed: %s: %s", tool, type(exc).__name__, exc)
            return _error(500, "ToolError", f"{type(exc).__name__}: {exc}")
        try:
            await self.sessions.commit(session_id, self.instance_id, context.changes())
        except Exception as exc:
            return self._store_failed("writing", session_id, exc)
        return web.json_response({"result": result})

    @staticmethod
    def _store_failed(doing: str, session_id: str, exc: Exception) -> web.Response:
        if not isinstance(exc, MigrateError):
            log.exception("%s session %s failed", doing, session_id)
        message = str(exc) if isinstance(exc, MigrateError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, QuotaExceeded):  # the store refuses new sessions: the client may retry later
            return _error(429, "QuotaExceeded", f"{doing} session {session_id!r}: {message}")
        return _error(503, "SessionStoreError", f"{doing} session {session_id!r}: {message}")


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if os.getppid() != parent:  # the front died: do not outlive it
            stop.set()
            return
        await asyncio.sleep(1.0)


def _handshake(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())


async def serve(instance_id: str, config_path: str, pool: str | None, store_url: str, parent: int) -> int:
    """Load, bind, hand shake, serve until SIGTERM or the parent goes away."""
    try:
        spec = parse_pool_config(json.loads(Path(config_path).read_text()), pool)  # the front's JSON copy
        os.environ["SNAKEPIT_CONFIG"] = config_path
        os.environ["SNAKEPIT_ADAPTER_ARGS"] = json.dumps(spec.adapter_argv)
        host = AdapterHost(load_adapter_class(spec.adapter), spec.adapter_argv)
        sessions = await open_session_access(spec.session_store or store_url, spec.session_ttl, instance_id)
    except (AdapterLoadError, MigrateError, OSError, ValueError) as exc:
        _handshake({"ready": False, "error": str(exc)})
        return 2
    worker = Worker(instance_id, host, sessions, spec.version)
    runner = web.AppRunner(worker.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_watch_parent(parent, stop))
    _handshake({"ready": True, "port": port, **worker.describe()})
    await stop.wait()
    watcher.cancel()
    await runner.cleanup()
    await sessions.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deployment.pool.worker")
    parser.add_argument("--instance", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--pool", default=None)
    parser.add_argument("--store", required=True, help="store URL when the config names none")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.instance} %(levelname)s %(message)s")
    return asyncio.run(serve(args.instance, args.config, args.pool, args.store, os.getppid()))


if __name__ == "__main__":
    sys.exit(main())
