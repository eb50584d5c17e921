"""``snakepit-migrate pool ...`` (the reference fleet and fleet control) and ``load``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import typer

from client.cli import app
from client.cli.common import emit_json, err, out, run
from deployment.errors import BadInput

pool_app = typer.Typer(help="Run the reference worker fleet and control running fleets.", no_args_is_help=True)
app.add_typer(pool_app, name="pool")

DEFAULT_PORT = 8470
DEFAULT_FLEET = f"local:http://127.0.0.1:{DEFAULT_PORT}"
FleetOpt = typer.Option(DEFAULT_FLEET, "--fleet", help="http://host:port, local:URL or command:/path/hooks.toml")
JsonOpt = typer.Option(False, "--json", help="print one JSON object on stdout")


@pool_app.command("start")
def start(
    config: Path = typer.Option(..., "--config", help="deployment config (.json, .yaml, .toml)"),
    instances: int | None = typer.Option(None, "--instances", help="worker processes (default: pool_size, at most 8)"),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="front port on 127.0.0.1 (0: any free port)"),
    pool: str | None = typer.Option(None, "--pool", help="which of the config's pools to run"),
    record: Path | None = typer.Option(None, "--record", help="append a sample of calls to this JSONL file"),
    record_every: int = typer.Option(1, "--record-every", help="keep every N-th successful call"),
    record_limit: int = typer.Option(1000, "--record-limit", help="at most this many recorded calls"),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="worker logs and config copies (default: a temp dir)"),
    as_json: bool = JsonOpt,
) -> None:
    """Start N worker processes behind a balancing front; serve until interrupted."""
    from deployment.pool.config import MAX_INSTANCES, default_instances, parse_pool_config, read_config_file
    from deployment.pool.front import serve
    from deployment.pool.sample import CallRecorder

    spec = parse_pool_config(read_config_file(config), pool)
    count = instances if instances is not None else default_instances(spec)
    if not 1 <= count <= MAX_INSTANCES:
        raise BadInput(f"--instances must be between 1 and {MAX_INSTANCES}, got {count}")
    if not 0 <= port <= 65535:
        raise BadInput(f"--port must be a TCP port, got {port}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    recorder = CallRecorder(record, record_every, record_limit) if record else None

    def ready(info: dict[str, Any]) -> None:
        if as_json:
            emit_json(info)
        err.print(f"fleet serving on {info['url']}: {info['instances']} instance(s) of {info['adapter']} "
                  f"(config {info['config_version']}), sessions in {info['session_store']}")

    run(serve(spec, count, port=port, run_dir=run_dir, recorder=recorder, on_ready=ready))


@pool_app.command("status")
def status(fleet: str = FleetOpt, as_json: bool = JsonOpt) -> None:
    """Show the fleet's health: status, instances, migration."""
    health = run(_with_fleet(fleet, lambda f: f.health()))
    if as_json:
        emit_json(health.model_dump())
        return
    out.print(f"status: {health.status}" + (f"  migration {health.migration.id} ({health.migration.phase})"
                                            if health.migration else ""))
    for i in health.instances:
        out.print(f"  {i.id:<6} {i.state:<11} config {i.config_version}  {i.adapter}")


@pool_app.command("instances")
def instances(fleet: str = FleetOpt, as_json: bool = JsonOpt) -> None:
    """List the instances with their in-flight count and what they report of their sessions."""
    found = run(_with_fleet(fleet, lambda f: f.list_instances()))
    if as_json:
        emit_json({"instances": [i.model_dump() for i in found]})
        return
    for i in found:
        _show(i, False)


@pool_app.command("drain")
def drain(instance: str, fleet: str = FleetOpt, as_json: bool = JsonOpt) -> None:
    """Stop sending new requests to one instance."""
    _show(run(_with_fleet(fleet, lambda f: f.drain(instance))), as_json)


@pool_app.command("wait-idle")
def wait_idle(instance: str, timeout: float = typer.Option(30.0, "--timeout"), fleet: str = FleetOpt,
              as_json: bool = JsonOpt) -> None:
    """Wait until one instance has no request in flight."""
    _show(run(_with_fleet(fleet, lambda f: f.wait_idle(instance, timeout))), as_json)


@pool_app.command("restart")
def restart(instance: str, config: Path = typer.Option(..., "--config"),
            timeout: float | None = typer.Option(None, "--timeout", help="seconds to wait until healthy"),
            settle: float = typer.Option(0.0, "--settle", help="seconds it must then stay healthy"),
            fleet: str = FleetOpt, as_json: bool = JsonOpt) -> None:
    """Restart one instance on a config; on failure it keeps serving the old one."""
    from deployment.pool.config import read_config_file

    raw = read_config_file(config)
    _show(run(_with_fleet(fleet, lambda f: f.restart(instance, raw, timeout, settle))), as_json)


@pool_app.command("undrain")
def undrain(instance: str, fleet: str = FleetOpt, as_json: bool = JsonOpt) -> None:
    """Send requests to one instance again."""
    _show(run(_with_fleet(fleet, lambda f: f.undrain(instance))), as_json)


@pool_app.command("stop")
def stop(url: str = typer.Option(f"http://127.0.0.1:{DEFAULT_PORT}", "--url")) -> None:
    """Shut down a reference fleet (its front stops every worker)."""
    from deployment.fleet.http import HttpFleet

    run(_with_driver(HttpFleet(url), lambda f: f.shutdown()))
    err.print(f"fleet at {url} is stopping")


@app.command("load")
def load(
    url: str = typer.Option(..., "--url", help="the fleet front, on a loopback address"),
    rate: float = typer.Option(..., "--rate", help="requests per second"),
    duration: float = typer.Option(..., "--duration", help="seconds"),
    sessions: int = typer.Option(10, "--sessions", help="distinct session ids"),
    tool: str | None = typer.Option(None, "--tool", help="default: a tool that needs no arguments"),
    arguments: str = typer.Option("{}", "--arguments", help="JSON object passed to the tool"),
    as_json: bool = JsonOpt,
) -> int:
    """Call tools at a steady rate and report requests, errors and latency."""
    from deployment.pool.load import run_load

    try:
        args = json.loads(arguments)
    except ValueError as exc:
        raise BadInput(f"--arguments is not JSON: {exc}") from None
    if not isinstance(args, dict):
        raise BadInput("--arguments must be a JSON object")
    report = run(run_load(url, rate, duration, sessions, tool=tool, arguments=args))
    if as_json:
        emit_json(report.model_dump())
    else:
        lat = report.latency_ms
        out.print(f"{report.requests} requests to {report.tool}, {report.errors} errors, "
                  f"p50 {lat['p50']}ms p95 {lat['p95']}ms p99 {lat['p99']}ms max {lat['max']}ms")
        for kind, n in sorted(report.error_kinds.items()):
            out.print(f"  {kind}: {n}")
    return 1 if report.errors else 0


async def _with_driver(driver: Any, step: Any) -> Any:
    async with driver:
        return await step(driver)


async def _with_fleet(spec: str, step: Any) -> Any:
    from deployment.fleet import open_fleet

    return await _with_driver(open_fleet(spec), step)


def _show(info: Any, as_json: bool) -> None:
    if as_json:
        emit_json(info.model_dump())
    else:
        out.print(f"{info.id}: {info.state} (config {info.config_version}, {info.in_flight} in flight)")
