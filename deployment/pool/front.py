"""The front of the reference fleet: balancing, health, and the admin API.

Traffic: ``POST /tools/{name}`` goes to the serving (healthy, not draining,
not restarting) instance with the fewest requests in flight.  A connection
refused by a worker is retried on another instance; nothing else is retried,
because the tool may have run.

Admin (what ``deployment.fleet`` drivers call):
``GET /admin/instances``, ``GET /admin/instances/{id}/config``,
``POST /admin/instances/{id}/drain | undrain | wait-idle | restart``,
``PUT | DELETE /admin/migration``, ``POST /admin/shutdown``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from deployment.errors import BadInput, MigrateError
from deployment.pool.adapter_host import TOOL_NAME
from deployment.pool.config import PoolSpec, with_quota
from deployment.pool.errors import InstanceStartFailed, UnknownInstance, to_payload
from deployment.pool.instances import SERVING, Instance
from deployment.pool.sample import CallRecorder
from deployment.pool.traffic import TrafficWindow

log = logging.getLogger("snakepit.pool")

HEALTH_INTERVAL = 0.5
FAILED_CHECKS_DOWN = 2  # consecutive failed /ready checks before a live process counts as down
MAX_WAIT = 600.0
# When set, /admin/* requires "Authorization: Bearer <token>"; the http/local drivers send it.
ADMIN_TOKEN_ENV = "SNAKEPIT_ADMIN_TOKEN"
AFFINITY_ENTRIES = 100_000


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": kind, "message": message}}, status=status)


def _timing(raw: dict[str, Any], key: str, default: float) -> float:
    """A Snakepit ``*_timeout`` setting (milliseconds) in seconds."""
    value = raw.get(key)
    return value / 1000.0 if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else default


class SessionLocks:
    """A lock per session id, kept only while some call of that session waits or runs."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, session_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(session_id, (asyncio.Lock(), 0))
        self._locks[session_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[session_id]
            if users == 1:
                del self._locks[session_id]
            else:
                self._locks[session_id] = (lock, users - 1)


class Fleet:
    """N instances of one pool, the balancing over them, and the reported migration."""

    def __init__(self, spec: PoolSpec, instances: int, run_dir: Path, *,
                 recorder: CallRecorder | None = None, call_timeout: float = 60.0) -> None:
        self.spec = spec
        self.run_dir = run_dir
        store_url = spec.session_store or with_quota(f"sqlite:///{run_dir / 'sessions.db'}", spec.max_sessions)
        self.store_url = store_url
        start_timeout = _timing(spec.raw, "worker_init_timeout", 30.0)
        self.queue_timeout = _timing(spec.raw, "pool_queue_timeout", 5.0)
        self.cleanup_interval = _timing(spec.raw, "session_cleanup_interval", 60.0)
        self.call_timeout = call_timeout
        self.instances = [Instance(f"w{i + 1}", spec, run_dir, store_url, start_timeout) for i in range(instances)]
        self.migration: dict[str, str] | None = None
        self.recorder = recorder
        self._turn = 0
        self._http: aiohttp.ClientSession | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._prune_task: asyncio.Task[None] | None = None
        self._respawns: set[asyncio.Task[None]] = set()
        self._session_locks = SessionLocks()
        self.traffic = TrafficWindow()
        self._affinity: dict[str, str] = {}  # session id -> instance that last served it, oldest first

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        """Start every instance; if one fails, stop the others and raise its error.

        The first starts alone, so that whatever its store creates on first open
        (tables, indexes) exists before the others open it concurrently.
        """
        first, rest = self.instances[0], self.instances[1:]
        results: list[Any] = await asyncio.gather(first.start(), return_exceptions=True)
        if not isinstance(results[0], BaseException):
            results += await asyncio.gather(*(i.start() for i in rest), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await asyncio.gather(*(i.stop() for i in self.instances))
            raise failed[0]
        # A fresh loopback connection per call: a dead worker then shows as "refused"
        # (safe to retry elsewhere) rather than as a stale pooled connection.
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))
        self._health_task = asyncio.create_task(self._health_loop())
        self._prune_task = asyncio.create_task(self._prune_loop())

    async def close(self) -> None:
        """Stop health checks and every worker process."""
        for task in (self._health_task, self._prune_task):
            if task is not None:
                task.cancel()
        for task in list(self._respawns):
            task.cancel()
        await asyncio.gather(*(i.stop() for i in self.instances), return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    def instance(self, instance_id: str) -> Instance:
        for inst in self.instances:
            if inst.id == instance_id:
                return inst
        raise UnknownInstance(instance_id, f"no such instance; the fleet has {', '.join(i.id for i in self.instances)}")

    # -- traffic ---------------------------------------------------------------
    def pick(self, session_id: str | None = None) -> Instance | None:
        """Where a call goes: the session's last instance if it serves and is not busier
        than the least busy one by more than one request (Snakepit's ``affinity: :hint``),
        else the serving instance with the fewest requests in flight (round robin on ties)."""
        serving = [i for i in self.instances if i.state == SERVING]
        if not serving:
            return None
        self._turn += 1
        start = self._turn % len(serving)
        rotated = serving[start:] + serving[:start]
        least = min(rotated, key=lambda i: i.in_flight)
        last = self._affinity.get(session_id) if session_id is not None else None
        for inst in serving:
            if inst.id == last and inst.in_flight <= least.in_flight + 1:
                return inst
        return least

    def _remember(self, session_id: str, instance_id: str) -> None:
        self._affinity.pop(session_id, None)
        self._affinity[session_id] = instance_id
        if len(self._affinity) > AFFINITY_ENTRIES:
            self._affinity.pop(next(iter(self._affinity)))

    async def call(self, tool: str, session_id: str, arguments: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Forward one tool call; returns the HTTP status and body for the client.

        Calls of one session run one at a time across the whole fleet, so a
        session's read-modify-write through the store never loses an update.
        """
        started = time.monotonic()
        async with self._session_locks.hold(session_id):
            status, body = await self._forward(tool, session_id, arguments)
        self.traffic.record((time.monotonic() - started) * 1000, status == 200)
        return status, body

    async def _forward(self, tool: str, session_id: str, arguments: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        assert self._http is not None
        deadline = time.monotonic() + self.queue_timeout
        refused = 0
        while True:
            inst = self.pick(session_id)
            if inst is None:
                if time.monotonic() >= deadline:
                    return 503, {"error": {"type": "NoInstance", "message": "no instance is serving"}}
                await asyncio.sleep(0.02)
                continue
            proc = inst.acquire()
            try:
                async with self._http.post(f"{proc.url}/call", json={
                    "tool": tool, "session_id": session_id, "arguments": arguments,
                }, timeout=aiohttp.ClientTimeout(total=self.call_timeout)) as resp:
                    body = await resp.json(content_type=None)
                    status = resp.status
            except aiohttp.ClientConnectorError as exc:
                # Refused: the tool never ran, so another instance may take it.
                inst.healthy = False  # the health loop repairs the instance
                refused += 1
                if refused > len(self.instances):
                    return 502, {"error": {"type": "WorkerFailed", "message": f"instance {inst.id}: {exc}"}}
                continue
            except TimeoutError:
                return 504, {"error": {"type": "Timeout", "message": f"instance {inst.id}: no answer within {self.call_timeout:g}s"}}
            except (aiohttp.ClientError, ValueError) as exc:  # dropped mid-call, or not JSON
                return 502, {"error": {"type": "WorkerFailed", "message": f"instance {inst.id}: {type(exc).__name__}: {exc}"}}
            finally:
                inst.release(proc)
            if status == 200:
                self._remember(session_id, inst.id)
            if status == 200 and self.recorder is not None:
                self.recorder.offer(tool, arguments, body.get("result"))
            return status, body

    # -- health ----------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """The ``/health`` body."""
        shown = [{k: d[k] for k in ("id", "state", "config_version", "adapter")} for d in (i.describe() for i in self.instances)]
        if self.migration is not None:
            status = "migrating"
        elif all(d["state"] == SERVING for d in shown):
            status = "ok"
        else:
            status = "degraded"
        return {"status": status, "instances": shown, "migration": self.migration}

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            await asyncio.gather(*(self._check(i) for i in self.instances), return_exceptions=True)

    async def _prune_loop(self) -> None:
        """Every ``session_cleanup_interval`` one serving instance deletes the expired sessions."""
        assert self._http is not None
        while True:
            await asyncio.sleep(self.cleanup_interval)
            inst = self.pick()
            if inst is None or inst.process is None:
                continue
            try:
                async with self._http.post(f"{inst.process.url}/prune", timeout=aiohttp.ClientTimeout(total=60)) as resp:
                    body = await resp.json(content_type=None)
                if body.get("pruned"):
                    log.info("%s: pruned %d expired session(s)", inst.id, body["pruned"])
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("%s: pruning failed: %s", inst.id, exc)

    async def _check(self, inst: Instance) -> None:
        proc = inst.process
        if inst.restarting or proc is None:
            return
        if not proc.alive:
            if inst.healthy:
                log.warning("%s: worker pid %d exited with %s; restarting it", inst.id, proc.proc.pid, proc.proc.returncode)
            inst.healthy = False
            if not any(t.get_name() == inst.id for t in self._respawns):
                task = asyncio.create_task(inst.respawn(), name=inst.id)
                self._respawns.add(task)
                task.add_done_callback(self._respawns.discard)
            return
        assert self._http is not None
        try:
            async with self._http.get(f"{proc.url}/ready", timeout=aiohttp.ClientTimeout(total=2.0)) as resp:
                ready = await resp.json(content_type=None) if resp.status == 200 else {}
        except (aiohttp.ClientError, TimeoutError, ValueError):
            ready = {}
        if inst.process is not proc:
            return
        if ready:
            inst.healthy, inst.failed_checks = True, 0
            proc.sessions = ready.get("sessions")
            return
        inst.failed_checks += 1
        if inst.failed_checks >= FAILED_CHECKS_DOWN and inst.healthy:
            log.warning("%s: worker pid %d failed %d health checks; taking it out of service",
                        inst.id, proc.proc.pid, inst.failed_checks)
            inst.healthy = False


class FrontApp:
    """The HTTP routes of the front over one :class:`Fleet`."""

    def __init__(self, fleet: Fleet, stop: asyncio.Event, admin_token: str | None = None) -> None:
        self.fleet = fleet
        self.stop = stop
        self.admin_token = admin_token

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024, middlewares=[self._errors, self._admin_auth])
        r = app.router
        r.add_post("/tools/{name}", self.tool)
        r.add_get("/tools", self.tools)
        r.add_get("/health", self.health)
        r.add_get("/health/traffic", self.traffic)
        r.add_get("/admin/instances", self.list_instances)
        r.add_get("/admin/instances/{id}", self.show_instance)
        r.add_get("/admin/instances/{id}/config", self.instance_config)
        r.add_post("/admin/instances/{id}/drain", self.drain)
        r.add_post("/admin/instances/{id}/undrain", self.undrain)
        r.add_post("/admin/instances/{id}/wait-idle", self.wait_idle)
        r.add_post("/admin/instances/{id}/restart", self.restart)
        r.add_put("/admin/migration", self.set_migration)
        r.add_delete("/admin/migration", self.clear_migration)
        r.add_post("/admin/shutdown", self.shutdown)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        try:
            return await handler(request)
        except MigrateError as exc:
            return web.json_response(to_payload(exc), status=getattr(exc, "http_status", 400))
        except web.HTTPException as exc:  # aiohttp's own 404/405/413...: JSON like every other error
            if exc.status < 400 or exc.content_type == "application/json":
                raise
            resp = _error(exc.status, exc.reason.title().replace(" ", ""), f"{request.method} {request.path}: {exc.reason}")
            if "Allow" in exc.headers:
                resp.headers["Allow"] = exc.headers["Allow"]
            return resp

    @web.middleware
    async def _admin_auth(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        if self.admin_token and request.path.startswith("/admin/"):
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.admin_token}".encode()):
                return _error(401, "Unauthorized", f"the admin API needs 'Authorization: Bearer ${ADMIN_TOKEN_ENV}'")
        return await handler(request)

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text='{"error": {"type": "BadRequest", "message": "the body must be JSON"}}',
                                     content_type="application/json") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text='{"error": {"type": "BadRequest", "message": "the body must be a JSON object"}}',
                                     content_type="application/json")
        return body

    # -- traffic ---------------------------------------------------------------
    async def tool(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not TOOL_NAME.match(name):
            return _error(400, "BadRequest", f"invalid tool name {name!r}")
        body = await self._body(request)
        session_id, arguments = body.get("session_id"), body.get("arguments", {})
        if not isinstance(session_id, str) or not session_id:
            return _error(400, "BadRequest", "'session_id' must be a non-empty string")
        if not isinstance(arguments, dict):
            return _error(400, "BadRequest", "'arguments' must be a JSON object")
        status, payload = await self.fleet.call(name, session_id, arguments)
        return web.json_response(payload, status=status)

    async def tools(self, request: web.Request) -> web.Response:
        inst = self.fleet.pick()
        tools = inst.process.tools if inst is not None and inst.process is not None else []
        return web.json_response({"tools": tools})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(self.fleet.health())

    async def traffic(self, request: web.Request) -> web.Response:
        """What clients saw over the last seconds: requests, errors, rate, p50/p99 latency (beside the /health contract)."""
        return web.json_response(self.fleet.traffic.snapshot())

    # -- admin -----------------------------------------------------------------
    async def list_instances(self, request: web.Request) -> web.Response:
        return web.json_response({"instances": [i.describe() for i in self.fleet.instances],
                                  "migration": self.fleet.migration})

    async def show_instance(self, request: web.Request) -> web.Response:
        return web.json_response(self.fleet.instance(request.match_info["id"]).describe())

    async def instance_config(self, request: web.Request) -> web.Response:
        inst = self.fleet.instance(request.match_info["id"])
        return web.json_response({"id": inst.id, "config_version": inst.spec.version, "config": inst.spec.raw})

    async def drain(self, request: web.Request) -> web.Response:
        inst = self.fleet.instance(request.match_info["id"])
        inst.drained = True
        log.info("%s: draining (%d in flight)", inst.id, inst.in_flight)
        return web.json_response(inst.describe())

    async def undrain(self, request: web.Request) -> web.Response:
        inst = self.fleet.instance(request.match_info["id"])
        inst.drained = False
        log.info("%s: serving again", inst.id)
        return web.json_response(inst.describe())

    async def wait_idle(self, request: web.Request) -> web.Response:
        inst = self.fleet.instance(request.match_info["id"])
        timeout = (await self._body(request)).get("timeout", 30.0)
        if not isinstance(timeout, (int, float)) or not 0 <= timeout <= MAX_WAIT:
            return _error(400, "BadRequest", f"'timeout' must be a number of seconds in [0, {MAX_WAIT:g}]")
        await inst.wait_idle(float(timeout))
        return web.json_response(inst.describe())

    async def restart(self, request: web.Request) -> web.Response:
        inst = self.fleet.instance(request.match_info["id"])
        body = await self._body(request)
        config, timeout, settle = body.get("config"), body.get("timeout"), body.get("settle", 0)
        if not isinstance(config, dict):
            raise InstanceStartFailed(inst.id, "the restart names no config (a JSON object of Snakepit keys)")
        if timeout is not None and (not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_WAIT):
            return _error(400, "BadRequest", f"'timeout' must be a number of seconds in (0, {MAX_WAIT:g}]")
        if not isinstance(settle, (int, float)) or not 0 <= settle <= MAX_WAIT:
            return _error(400, "BadRequest", f"'settle' must be a number of seconds in [0, {MAX_WAIT:g}]")
        await inst.restart(config, timeout, float(settle))
        return web.json_response(inst.describe())

    async def set_migration(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        mid, phase = body.get("id"), body.get("phase")
        if not isinstance(mid, str) or not mid or not isinstance(phase, str) or not phase:
            return _error(400, "BadRequest", "a migration needs a non-empty 'id' and 'phase'")
        self.fleet.migration = {"id": mid, "phase": phase}
        return web.json_response(self.fleet.health())

    async def clear_migration(self, request: web.Request) -> web.Response:
        self.fleet.migration = None
        return web.json_response(self.fleet.health())

    async def shutdown(self, request: web.Request) -> web.Response:
        self.stop.set()
        return web.json_response({"stopping": True})


async def serve(spec: PoolSpec, instances: int, *, host: str = "127.0.0.1", port: int = 0,
                run_dir: Path | None = None, recorder: CallRecorder | None = None,
                on_ready: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Start the fleet and its front; serve until SIGINT/SIGTERM or ``/admin/shutdown``."""
    run_dir = run_dir or Path(tempfile.mkdtemp(prefix="snakepit-pool-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(spec, instances, run_dir, recorder=recorder)
    await fleet.start()
    stop = asyncio.Event()
    front = FrontApp(fleet, stop, os.environ.get(ADMIN_TOKEN_ENV) or None)
    runner = web.AppRunner(front.app(), access_log=None, handle_signals=False)
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise BadInput(f"the front cannot listen on {host}:{port}: {exc.strerror or exc}",
                           hint="choose another --port (0 picks a free one)") from None
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if on_ready is not None:
            on_ready({"url": f"http://{host}:{bound}", "port": bound, "instances": len(fleet.instances),
                      "adapter": spec.adapter, "config_version": spec.version,
                      "session_store": fleet.store_url, "run_dir": str(run_dir)})
        await stop.wait()
    finally:
        await runner.cleanup()
        await fleet.close()
