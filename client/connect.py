"""The one client factory: the same data converter and interceptors for the
worker, the CLI, the Python API and the tests."""

from __future__ import annotations

import os
from typing import Any

from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter

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
