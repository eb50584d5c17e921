"""The ``command`` driver: operator shell hooks, one per step.

A hooks file (JSON, YAML or TOML) maps steps to shell commands::

    list = "kubectl get pods -l app=snakepit -o json | ./to-instances.py"   # prints JSON
    drain = "./lb.sh drain $SNAKEPIT_INSTANCE"
    wait_idle = "./lb.sh wait-idle $SNAKEPIT_INSTANCE $SNAKEPIT_TIMEOUT"
    restart = "./deploy.sh $SNAKEPIT_INSTANCE $SNAKEPIT_CONFIG_FILE"
    undrain = "./lb.sh undrain $SNAKEPIT_INSTANCE"
    health = "curl -s http://10.0.0.5/health"          # optional, prints the /health JSON
    config = "cat /etc/snakepit/$SNAKEPIT_INSTANCE.json"  # optional, prints the instance's config
    set_migration = "..."                               # optional ($SNAKEPIT_MIGRATION_ID, _PHASE)
    clear_migration = "..."                             # optional
    timeout = 120                                       # seconds a hook may run, default 300

``list`` prints ``{"instances": [{"id", "state", "config_version", "adapter"}]}``
(or the bare list).  A hook that exits non-zero fails the step with its
output: ``restart`` as :class:`InstanceStartFailed`, ``wait_idle`` as
:class:`DrainTimeout`.  Values reach hooks only as environment variables,
never pasted into the command line.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from deployment.fleet.base import FleetDriver, FleetHealth, InstanceInfo
from deployment.pool.config import read_config_file
from deployment.pool.errors import DrainTimeout, InstanceError, InstanceStartFailed, PoolConfigError

REQUIRED = ("list", "drain", "wait_idle", "restart", "undrain")
OPTIONAL = ("health", "config", "set_migration", "clear_migration")


class CommandFleet(FleetDriver):
    """A fleet controlled by shell hooks."""

    kind = "command"

    def __init__(self, hooks: dict[str, str], *, timeout: float = 300.0, cwd: str | None = None) -> None:
        missing = [h for h in REQUIRED if not isinstance(hooks.get(h), str) or not hooks[h].strip()]
        if missing:
            raise PoolConfigError(f"fleet hooks: missing {', '.join(missing)}",
                                  hint=f"a hooks file names a shell command for each of {', '.join(REQUIRED)}")
        unknown = sorted(set(hooks) - set(REQUIRED) - set(OPTIONAL))
        if unknown:
            raise PoolConfigError(f"fleet hooks: unknown step(s) {', '.join(unknown)}")
        self.hooks = hooks
        self.timeout = timeout
        self.cwd = cwd

    @classmethod
    def from_file(cls, path: str | Path) -> CommandFleet:
        """Read a hooks file; hooks run in the file's folder."""
        raw = read_config_file(path)
        timeout = raw.pop("timeout", 300.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise PoolConfigError(f"fleet hooks {path}: 'timeout' must be a positive number of seconds")
        return cls({str(k): v for k, v in raw.items()}, timeout=float(timeout), cwd=str(Path(path).resolve().parent))

    async def _run(self, step: str, instance: str = "-", env: dict[str, str] | None = None,
                   wait: float = 0.0) -> str:
        proc = await asyncio.create_subprocess_shell(
            self.hooks[step], cwd=self.cwd, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "SNAKEPIT_STEP": step, "SNAKEPIT_INSTANCE": instance, **(env or {})},
            start_new_session=True,
        )
        try:
            out, errb = await asyncio.wait_for(proc.communicate(), self.timeout + wait)
        except TimeoutError:
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            await proc.wait()
            raise self._failure(step, instance, f"the {step} hook ran longer than {self.timeout + wait:g}s") from None
        if proc.returncode != 0:
            said = (errb or out).decode(errors="replace").strip()[-500:]
            raise self._failure(step, instance, f"the {step} hook exited {proc.returncode}: {said or 'no output'}")
        return out.decode(errors="replace")

    @staticmethod
    def _failure(step: str, instance: str, cause: str) -> InstanceError:
        if step == "restart":
            return InstanceStartFailed(instance, cause)
        if step == "wait_idle":
            return DrainTimeout(instance, cause)
        return InstanceError(instance, cause)

    def _json(self, step: str, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            raise InstanceError("-", f"the {step} hook did not print JSON: {text.strip()[:200]!r}") from None

    async def list_instances(self) -> list[InstanceInfo]:
        payload = self._json("list", await self._run("list"))
        items = payload.get("instances", []) if isinstance(payload, dict) else payload
        return [InstanceInfo.model_validate(i) for i in items]

    async def health(self) -> FleetHealth:
        if "health" in self.hooks:
            return FleetHealth.model_validate(self._json("health", await self._run("health")))
        instances = await self.list_instances()
        ok = all(i.state == "serving" for i in instances)
        return FleetHealth(status="ok" if ok else "degraded", instances=instances)

    async def _find(self, instance_id: str) -> InstanceInfo:
        for inst in await self.list_instances():
            if inst.id == instance_id:
                return inst
        raise InstanceError(instance_id, "the list hook does not show this instance")

    async def drain(self, instance_id: str) -> InstanceInfo:
        await self._run("drain", instance_id)
        return await self._find(instance_id)

    async def wait_idle(self, instance_id: str, timeout: float) -> InstanceInfo:
        await self._run("wait_idle", instance_id, {"SNAKEPIT_TIMEOUT": f"{timeout:g}"}, wait=timeout)
        return await self._find(instance_id)

    async def restart(self, instance_id: str, config: dict[str, Any], timeout: float | None = None,
                      settle: float = 0.0) -> InstanceInfo:
        with tempfile.TemporaryDirectory(prefix="snakepit-hook-") as folder:
            config_file = Path(folder) / "config.json"
            config_file.write_text(json.dumps(config, indent=2, default=str))
            env = {"SNAKEPIT_CONFIG_FILE": str(config_file), "SNAKEPIT_TIMEOUT": f"{timeout or self.timeout:g}",
                   "SNAKEPIT_SETTLE": f"{settle:g}"}
            await self._run("restart", instance_id, env, wait=(timeout or 0.0) + settle)
        return await self._find(instance_id)

    async def undrain(self, instance_id: str) -> InstanceInfo:
        await self._run("undrain", instance_id)
        return await self._find(instance_id)

    async def instance_config(self, instance_id: str) -> dict[str, Any]:
        if "config" not in self.hooks:
            raise InstanceError(instance_id, "the fleet hooks have no 'config' step, so the current config is unknown")
        payload = self._json("config", await self._run("config", instance_id))
        if not isinstance(payload, dict):
            raise InstanceError(instance_id, "the config hook must print a JSON object")
        return payload

    async def set_migration(self, migration_id: str, phase: str) -> None:
        if "set_migration" in self.hooks:
            await self._run("set_migration", env={"SNAKEPIT_MIGRATION_ID": migration_id, "SNAKEPIT_MIGRATION_PHASE": phase})

    async def clear_migration(self) -> None:
        if "clear_migration" in self.hooks:
            await self._run("clear_migration")
