"""The search attributes migrations are indexed by: registered on the embedded server, checked on a cluster."""

from __future__ import annotations

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError

from workflows.search_attributes import ALL_KEYS


def server_args() -> list[str]:
    """``--search-attribute NAME=Keyword`` for each, for ``temporal server start-dev``."""
    return [arg for key in ALL_KEYS for arg in ("--search-attribute", f"{key.name}=Keyword")]


async def indexing_available(client: Client) -> bool:
    """Whether the namespace has every migration search attribute registered (else runs are not indexed)."""
    try:
        resp = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=client.namespace))
    except RPCError:
        return False
    return all(key.name in resp.custom_attributes for key in ALL_KEYS)
