"""The embedded Temporal server and the in-process worker.

With no address given and nothing listening on localhost:7233, a command
starts ``temporal server start-dev`` in the background (it stays up for later
commands, its state in ``$SNAKEPIT_MIGRATE_HOME/temporal.db``); with no worker
polling the task queue, a command runs a worker in-process while it waits.
Given a real cluster, the same command only talks to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone

from typing import Any

from temporalio.api.enums.v1 import PendingActivityState, PendingWorkflowTaskState, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from client.connect import DEFAULT_ADDRESS, NAMESPACE, TASK_QUEUE, connect, resolve_address
from client.paths import home, temporal_cli
from client.search import server_args
from deployment.errors import BadInput

UI_PORT = 8233
# An idle worker's long poll lasts about a minute; a poller seen more recently than this is alive.
POLLER_FRESH_S = 90
# A scheduled task no worker started for this long means no live worker serves the queue.
UNSERVED_S = 4.0
# Identity prefix of the short-lived workers commands run in-process; they never count as "a worker polls".
CLI_WORKER_PREFIX = "snakepit-migrate-cli-"


def server_command(port: int = 7233, ui_port: int = UI_PORT) -> list[str]:
    """The ``temporal server start-dev`` command line of the embedded server."""
    return [
        temporal_cli(), "server", "start-dev",
        "--port", str(port), "--ui-port", str(ui_port),
        "--db-filename", str(home() / "temporal.db"),
        "--namespace", NAMESPACE, "--log-level", "warn", "--ui-disable-news-fetch", *server_args(),
    ]  # fmt: skip


def listening(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def start_background_server() -> subprocess.Popen[bytes]:
    """Start the embedded server detached from this process; it outlives the command."""
    log = (home() / "temporal.log").open("ab")
    return subprocess.Popen(
        server_command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
    )


async def ensure_client(address: str | None) -> Client:
    """A connected client: to ``address`` if given, else to localhost, starting the embedded server if needed."""
    explicit = address or os.environ.get("TEMPORAL_ADDRESS")
    target = resolve_address(address)
    if not explicit and target == DEFAULT_ADDRESS and not listening("127.0.0.1", 7233):
        from client.cli.common import err

        err.print(f"Starting the embedded Temporal server (UI http://localhost:{UI_PORT}, log {home() / 'temporal.log'})")
        proc = start_background_server()
        deadline = time.monotonic() + 60
        while not listening("127.0.0.1", 7233):
            if proc.poll() is not None:
                raise BadInput(
                    f"the embedded Temporal server exited with code {proc.returncode}",
                    hint=f"see {home() / 'temporal.log'}; is port 7233 or {UI_PORT} taken?",
                )
            if time.monotonic() > deadline:
                raise BadInput("the embedded Temporal server did not start within 60 s", hint=f"see {home() / 'temporal.log'}")
            await asyncio.sleep(0.2)
    deadline = time.monotonic() + 30
    while True:
        try:
            return await connect(target)
        except RuntimeError as exc:
            if explicit or time.monotonic() > deadline:
                raise BadInput(
                    f"cannot connect to Temporal at {target}: {exc}",
                    hint="check --address / TEMPORAL_ADDRESS, or omit both to use the embedded server",
                ) from None
            await asyncio.sleep(0.5)


async def worker_is_polling(client: Client, task_queue: str = TASK_QUEUE) -> bool:
    """Whether some worker polled the task queue, for workflows and for activities, in the last 90 s.

    A worker that died less than a minute ago still counts; :func:`worker_while_waiting`
    therefore also watches whether the run's tasks are actually picked up.
    """
    now = datetime.now(timezone.utc)
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(namespace=client.namespace, task_queue=TaskQueue(name=task_queue), task_queue_type=kind)
        )
        fresh = [
            p
            for p in resp.pollers
            if not p.identity.startswith(CLI_WORKER_PREFIX)
            and (now - p.last_access_time.ToDatetime(timezone.utc)).total_seconds() < POLLER_FRESH_S
        ]
        if not fresh:
            return False
    return True


async def waiting_unserved_s(handle: WorkflowHandle[Any, Any]) -> float:
    """How long the run's oldest scheduled task has waited for a worker to start it (0 if none waits)."""
    desc = await handle.describe()
    raw = desc.raw_description
    now = datetime.now(timezone.utc)
    waits = []
    task = raw.pending_workflow_task
    if raw.HasField("pending_workflow_task") and task.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED:
        waits.append((now - task.scheduled_time.ToDatetime(timezone.utc)).total_seconds())
    for act in raw.pending_activities:
        if act.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED and act.HasField("scheduled_time"):
            waits.append((now - act.scheduled_time.ToDatetime(timezone.utc)).total_seconds())
    return max(waits, default=0.0)


@contextlib.asynccontextmanager
async def worker_while_waiting(
    client: Client, handle: WorkflowHandle[Any, Any] | None = None, task_queue: str = TASK_QUEUE
) -> AsyncIterator[None]:
    """Make sure some worker serves ``handle`` while the block waits for it.

    With no worker polling, one runs in this process at once; otherwise the
    run (without ``handle``: every open run of the task queue) is watched,
    and if a task of it waits unserved for longer than ``UNSERVED_S`` (the
    poller seen was a dead one), one starts then.
    """
    from worker import build_worker

    worker = None
    task: asyncio.Task[None] | None = None

    def start() -> None:
        nonlocal worker, task
        worker = build_worker(client, task_queue, identity=f"{CLI_WORKER_PREFIX}{os.getpid()}@{socket.gethostname()}")
        task = asyncio.create_task(worker.run())

    async def watched() -> list[WorkflowHandle[Any, Any]]:
        if handle is not None:
            return [handle]
        # No handle given: every run of the task queue that is still open.
        query = f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
        return [client.get_workflow_handle(wf.id, run_id=wf.run_id) async for wf in client.list_workflows(query, limit=20)]

    async def watch() -> None:
        while worker is None:
            await asyncio.sleep(1)
            with contextlib.suppress(RPCError):
                for each in await watched():
                    if await waiting_unserved_s(each) > UNSERVED_S:
                        start()
                        return

    if not await worker_is_polling(client, task_queue):
        start()
    watcher = asyncio.create_task(watch())
    try:
        yield
    finally:
        watcher.cancel()
        if worker is not None:
            await worker.shutdown()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task  # type: ignore[misc]


def spawn_background_worker(address: str | None) -> int:
    """Start ``snakepit-migrate worker`` detached, for runs started with --no-wait.

    Its pid is written to ``$SNAKEPIT_MIGRATE_HOME/worker.pid`` and returned; its log goes to worker.log.
    """
    log = (home() / "worker.log").open("ab")
    cmd = [sys.executable, "-m", "client.cli", "worker"] + (["--address", address] if address else [])
    env = {**os.environ, **({"TEMPORAL_ADDRESS": os.environ["TEMPORAL_ADDRESS"]} if "TEMPORAL_ADDRESS" in os.environ else {})}
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    (home() / "worker.pid").write_text(str(proc.pid))
    return proc.pid
