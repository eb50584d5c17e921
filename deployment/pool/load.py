"""A bounded, loopback-only load generator for a fleet front.

Requests are scheduled open-loop at ``rate`` per second for ``duration``
seconds over ``sessions`` session ids (``load-0`` ... ``load-{K-1}``); latency
is measured from each request's scheduled time, so a stalled fleet shows as
latency rather than as fewer requests.  Any answer other than 200 is an error.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel

from deployment.errors import BadInput

MAX_RATE = 2000.0
MAX_DURATION = 3600.0
MAX_REQUESTS = 200_000
MAX_OUTSTANDING = 256


class LoadReport(BaseModel):
    """What a load run did: counts, error kinds and latency percentiles in milliseconds."""

    url: str
    tool: str
    rate: float
    duration: float
    sessions: int
    requests: int
    ok: int
    errors: int
    error_kinds: dict[str, int]
    latency_ms: dict[str, float]
    achieved_rate: float
    # Per session, the result of its last successful call (completion order); with ``keep_results``.
    last_results: dict[str, Any] | None = None


def percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of already sorted values; 0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def check_target(url: str, rate: float, duration: float, sessions: int) -> None:
    """Refuse anything but a bounded run against a loopback address (BadInput)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"load: {url!r} is not an http URL")
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise BadInput(f"load: {host} is not a loopback address; the load generator only targets this machine")
    if not 0 < rate <= MAX_RATE:
        raise BadInput(f"load: --rate must be in (0, {MAX_RATE:g}] requests per second, got {rate:g}")
    if not 0 < duration <= MAX_DURATION:
        raise BadInput(f"load: --duration must be in (0, {MAX_DURATION:g}] seconds, got {duration:g}")
    if rate * duration > MAX_REQUESTS:
        raise BadInput(f"load: {rate:g}/s for {duration:g}s is more than {MAX_REQUESTS} requests")
    if sessions < 1:
        raise BadInput("load: --sessions must be at least 1")


async def pick_tool(http: aiohttp.ClientSession, url: str) -> str:
    """A tool of the fleet that needs no argument, ``ping`` if there is one (from ``GET /tools``)."""
    try:
        async with http.get(f"{url}/tools", timeout=aiohttp.ClientTimeout(total=10)) as resp:
            tools = (await resp.json(content_type=None)).get("tools", [])
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise BadInput(f"load: cannot list the tools of {url}: {type(exc).__name__}: {exc}") from None
    callable_bare = [str(t["name"]) for t in tools if not any(p.get("required") for p in t.get("parameters", []))]
    if callable_bare:
        return "ping" if "ping" in callable_bare else callable_bare[0]
    raise BadInput(f"load: no tool of {url} can be called without arguments", hint="name one with --tool and --arguments")


async def run_load(url: str, rate: float, duration: float, sessions: int = 10, *,
                   tool: str | None = None, arguments: dict[str, Any] | None = None,
                   keep_results: bool = False, stop: asyncio.Event | None = None) -> LoadReport:
    """Drive ``POST {url}/tools/{tool}`` at ``rate``/s for ``duration`` s and report.

    With ``keep_results`` the report holds each session's last result, so a test
    can check that what clients were last told is what the store holds.  Setting
    ``stop`` ends the run early (``duration`` is then an upper bound), e.g. when
    the migration the load accompanies has finished.
    """
    url = url.rstrip("/")
    check_target(url, rate, duration, sessions)
    total = int(rate * duration)
    latencies: list[float] = []
    kinds: dict[str, int] = {}
    last: dict[str, Any] = {}
    gate = asyncio.Semaphore(MAX_OUTSTANDING)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_OUTSTANDING)) as http:
        name = tool or await pick_tool(http, url)

        async def one(i: int, scheduled: float) -> None:
            body = {"session_id": f"load-{i % sessions}", "arguments": arguments or {}}
            kind = None
            try:
                async with http.post(f"{url}/tools/{name}", json=body,
                                     timeout=aiohttp.ClientTimeout(total=60)) as resp:
                    payload = await resp.json(content_type=None)
                    if resp.status != 200:
                        err = payload.get("error") if isinstance(payload, dict) else None
                        kind = f"http_{resp.status}" + (f"_{err.get('type')}" if isinstance(err, dict) else "")
                    elif keep_results:
                        last[body["session_id"]] = payload.get("result")
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                kind = type(exc).__name__
            finally:
                gate.release()
            latencies.append((time.monotonic() - scheduled) * 1000.0)
            if kind:
                kinds[kind] = kinds.get(kind, 0) + 1

        start = time.monotonic()
        tasks = []
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                if stop is None:
                    await asyncio.sleep(delay)
                else:
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                    except TimeoutError:
                        pass
            if stop is not None and stop.is_set():
                break
            await gate.acquire()
            tasks.append(asyncio.create_task(one(i, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
        total = len(tasks)
    latencies.sort()
    errors = sum(kinds.values())
    return LoadReport(
        url=url, tool=name, rate=rate, duration=duration, sessions=sessions, requests=total,
        ok=total - errors, errors=errors, error_kinds=kinds,
        latency_ms={"p50": round(percentile(latencies, 50), 3), "p95": round(percentile(latencies, 95), 3),
                    "p99": round(percentile(latencies, 99), 3), "max": round(latencies[-1] if latencies else 0.0, 3)},
        achieved_rate=round(total / elapsed, 3) if elapsed > 0 else 0.0,
        last_results=last if keep_results else None,
    )
