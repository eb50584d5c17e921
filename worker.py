"""One worker process: connect, register every workflow and activity, poll the task queue.

``python worker.py`` is the same as ``snakepit-migrate worker``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities import all_activities
from activities.metrics import ActivityMetricsInterceptor
from client.connect import TASK_QUEUE, connect, forward_core_logs
from client.telemetry import setup_telemetry
from workflows import all_workflows

log = logging.getLogger("snakepit_migrate.worker")


def build_worker(client: Client, task_queue: str = TASK_QUEUE, **options: object) -> Worker:
    """A worker with every workflow and activity of the project registered."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=all_workflows(),
        activities=all_activities(),
        activity_executor=concurrent.futures.ThreadPoolExecutor(max_workers=8),
        # Heartbeats carry the copy cursor: send one at least every second, so a
        # worker killed mid-copy costs at most about a second of batches.
        max_heartbeat_throttle_interval=timedelta(seconds=1),
        interceptors=[ActivityMetricsInterceptor()],  # errors by type; the client's tracing interceptor applies too
        **options,  # type: ignore[arg-type]
    )


async def run_worker(address: str | None = None, task_queue: str = TASK_QUEUE) -> None:
    """Connect and poll until interrupted."""
    setup_telemetry()
    client = await connect(address)
    worker = build_worker(client, task_queue)
    log.info("Worker polling task queue %s at %s", task_queue, client.service_client.config.target_host)
    await worker.run()


def main() -> int:
    """``python worker.py [ADDRESS]``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    forward_core_logs()
    try:
        asyncio.run(run_worker(sys.argv[1] if len(sys.argv) > 1 else None))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
