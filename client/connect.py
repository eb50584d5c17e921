"""The one client factory: the same data converter and interceptors for the
worker, the CLI, the Python API and the tests."""

from __future__ import annotations

import logging
import os
from typing import Any

from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig

TASK_QUEUE = "snakepit-migrations"
DEFAULT_ADDRESS = "localhost:7233"
NAMESPACE = "default"


def client_options() -> dict[str, Any]:
    """Keyword arguments every Temporal client of this project is built with.

    Also handed to ``WorkflowEnvironment.start_local`` / ``start_time_skipping``
    in the tests so that they speak exactly as the CLI does.
    """
    return {"data_converter": pydantic_data_converter, "interceptors": [TracingInterceptor()]}


def resolve_address(address: str | None) -> str:
    """The address given, else ``TEMPORAL_ADDRESS``, else localhost:7233."""
    return address or os.environ.get("TEMPORAL_ADDRESS") or DEFAULT_ADDRESS


async def connect(address: str | None = None, namespace: str = NAMESPACE) -> Client:
    """Connect to Temporal at ``address`` with the project's converter and tracing."""
    return await Client.connect(resolve_address(address), namespace=namespace, **client_options())


def forward_core_logs() -> None:
    """Send the Temporal core's own log lines (warnings and up) to Python logging instead of stdout.

    Left alone, the native core writes them to stdout, where they would land
    in front of a ``--json`` result.  Call it before the first client of a
    process is made: clients made earlier keep the runtime they were made with.
    """
    logging_config = LoggingConfig(
        filter=LoggingConfig.default.filter, forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
    )
    Runtime.set_default(Runtime(telemetry=TelemetryConfig(logging=logging_config)), error_if_already_set=False)
