"""Helper of the reference fleet tests: one tool call through the front."""

from __future__ import annotations

from typing import Any

import aiohttp


async def call_tool(url: str, name: str, session_id: str, arguments: dict[str, Any] | None = None
                    ) -> tuple[int, dict[str, Any]]:
    """One ``POST /tools/{name}``: the status and the JSON body."""
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/tools/{name}", json={"session_id": session_id, "arguments": arguments or {}},
                             timeout=aiohttp.ClientTimeout(total=30)) as resp:
            return resp.status, await resp.json()
