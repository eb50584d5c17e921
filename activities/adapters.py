"""Activities of the adapter migration: analysis, the equivalence check, the config files, the live replay.

Each is idempotent, so Temporal may retry any of them: a backup already taken
is returned as it was taken, a config already written is not written twice,
a restore of files already restored does nothing.  Sources, configurations
and recorded calls stay in files; what goes through history is paths,
digests, counts and abridged verdicts.  The equivalence check and the replay
run in a thread and heartbeat while they do.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import tempfile
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from temporalio import activity

from activities.errors import as_application_errors
from activities.runs import completed_run, nothing_to_undo
from client.paths import home
from deployment.adapters.analyzer import analyze_path
from deployment.adapters.equivalence import Limits, Recorded, Tolerance, ToolVerdict, read_cases, read_records, replay, verify
from deployment.adapters.errors import SamplesParseError
from deployment.adapters.generic import CONFIG_ENV, GenericConfig
from deployment.adapters.proposal import propose_config
from deployment.errors import BadInput, MigrateError
from deployment.fleet import open_fleet
from deployment.pool.config import _select_pool, _snakepit_keys, parse_pool_config
from deployment.pool.errors import PoolConfigError
from workflows.adapter_models import (
    AnalysisSummary,
    AnalyzeInput,
    BackupInput,
    BackupPoint,
    FileBackup,
    PoolConfigInfo,
    PoolConfigInput,
    ReplayInput,
    ReplaySummary,
    RestoredConfig,
    RestoreInput,
    ToolCheck,
    ToolSummary,
    UndoPlan,
    VerifyInput,
    VerifySummary,
    WriteInput,
    WrittenConfig,
    abridged,
)

T = TypeVar("T")

GENERIC_ADAPTER = "deployment.adapters.generic.GenericAdapter"
GENERIC_FILE = "generic-adapter.json"
FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml"}
HEARTBEAT_S = 1.0


class ConfigChanged(MigrateError):
    """The pool config changed since the migration backed it up: someone else is editing it."""


def sha256(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


class AdapterActivities:
    """Adapter-migration activities; they need nothing but the files and the fleet they are given."""

    @activity.defn(name="analyze_adapter")
    async def analyze_adapter(self, params: AnalyzeInput) -> AnalysisSummary:
        """Analyze the custom adapter (statically, never importing it) and summarise every tool."""
        with as_application_errors():
            report = await asyncio.to_thread(analyze_path, params.path)
        tools = [
            ToolSummary(name=t.name, adapter=a.name, migratable=t.migratable, categories=sorted({r.category for r in t.reasons}),
                        reasons=[f"{r.category} (line {r.line})" for r in t.reasons])
            for a in report.adapters for t in a.tools
        ]  # fmt: skip
        return AnalysisSummary(adapters=[f"{a.module}.{a.name}" for a in report.adapters], tools=tools,
                               migratable=sum(t.migratable for t in tools), custom=sum(not t.migratable for t in tools))

    @activity.defn(name="inspect_pool_config")
    async def inspect_pool_config(self, params: PoolConfigInput) -> PoolConfigInfo:
        """Read the pool config, and check that the fleet runs exactly it and that it can be rewritten."""
        with as_application_errors():
            path = Path(params.config_path)
            fmt = _format(path)
            data = _read_bytes(path)
            spec = parse_pool_config(_decode(path, fmt, data), params.pool)
            if spec.adapter == GENERIC_ADAPTER:
                raise BadInput(f"{path}: the pool already runs the generic adapter", hint="there is nothing to migrate")
            generic_path = Path(params.generic_path) if params.generic_path else path.with_name(GENERIC_FILE)
            if not generic_path.parent.is_dir():
                raise BadInput(f"{generic_path.parent}: no such directory for the generic configuration")
            async with open_fleet(params.fleet) as fleet:
                versions = {i.id: i.config_version for i in await fleet.list_instances()}
                health = await fleet.health()
            if not versions:
                raise BadInput(f"the fleet {params.fleet} lists no instance")
            other = {i: v for i, v in versions.items() if v != spec.version}
            if other:
                raise BadInput(
                    f"the fleet does not run {path} (config {spec.version}): "
                    + ", ".join(f"{i} runs {v}" for i, v in sorted(other.items())),
                    hint="give --config the file the fleet was started on, or restart the fleet onto it first",
                )
            if health.migration is not None and health.migration.id != params.migration_id:
                raise BadInput(f"the fleet reports migration {health.migration.id} ({health.migration.phase}) in progress",
                               hint="wait for it to finish")
            if params.needs_url and not getattr(open_fleet(params.fleet), "url", None):
                raise BadInput("replaying recorded calls needs a fleet reached over HTTP",
                               hint="give --fleet as http://host:port or local:http://host:port")
            return PoolConfigInfo(
                config_path=str(path.resolve()), format=fmt, digest=sha256(data), size=len(data),
                config_version=spec.version, adapter=spec.adapter, generic_path=str(generic_path.resolve()),
                fleet_versions=versions,
            )  # fmt: skip

    @activity.defn(name="verify_adapter_equivalence")
    async def verify_adapter_equivalence(self, params: VerifyInput) -> VerifySummary:
        """Run every aliased tool through both adapters on the same inputs; stage the verified configuration.

        The check runs subprocesses (two tools at a time) in a thread; the
        activity heartbeats meanwhile.  A retry runs the check again from the
        start: it writes nothing but the staged file, replaced whole.
        """
        with as_application_errors():
            return await _heartbeating(lambda: _verify(params))

    @activity.defn(name="backup_adapter_config")
    async def backup_adapter_config(self, params: BackupInput) -> BackupPoint:
        """Copy the pool config and the generic configuration file (if any) aside, with their digests.

        A backup this migration took already is returned as taken, never
        replaced by what may be the migration's own writing.
        """
        with as_application_errors():
            return BackupPoint(config=_backup(Path(params.config_path), params.migration_id),
                               generic=_backup(Path(params.generic_path), params.migration_id))

    @activity.defn(name="write_generic_config")
    async def write_generic_config(self, params: WriteInput) -> WrittenConfig:
        """Write the generic configuration, then the pool config onto the generic adapter; each write-then-rename.

        The pool config must still be as backed up (else ConfigChanged), or be
        exactly what this step writes (a retry).
        """
        with as_application_errors():
            return _write(params)

    @activity.defn(name="restore_adapter_config")
    async def restore_adapter_config(self, params: RestoreInput) -> RestoredConfig:
        """Compensation: both files back byte for byte as the backup found them (a file that did not exist is removed)."""
        with as_application_errors():
            config = params.backup.config
            if params.expect_digest is not None:
                found_digest = sha256(_read_bytes(Path(config.path)))
                if found_digest not in (params.expect_digest, config.digest):
                    raise ConfigChanged(f"{config.path} was edited since the migration wrote it (digest {found_digest}, "
                                        f"written {params.expect_digest}); it is left as it is",
                                        hint=f"the backup is {config.backup_path}: put it back by hand if that is wanted")
            changed = False
            for found in (config,) if params.config_only else (config, params.backup.generic):
                changed |= _restore(found)
            now = sha256(Path(config.path).read_bytes()) if config.existed else None
            if now != config.digest:
                raise ConfigChanged(f"{config.path}: restored, but its digest is {now}, not {config.digest}")
            return RestoredConfig(config_digest=now, generic_removed=not params.config_only and not params.backup.generic.existed,
                                  restored=changed)

    @activity.defn(name="load_adapter_undo")
    async def load_adapter_undo(self, migration_id: str) -> UndoPlan:
        """What the completed migration ``migration_id`` backed up and wrote, read from its result in Temporal."""
        result, _ = await completed_run(migration_id, "AdapterMigration")
        if result.get("status") != "completed" or not result.get("written") or not result.get("backup"):
            raise nothing_to_undo(f"adapter migration {migration_id} is {result.get('status')}: it wrote nothing to undo")
        return UndoPlan.model_validate({"backup": result["backup"], "written": result["written"]})

    @activity.defn(name="replay_recorded_calls")
    async def replay_recorded_calls(self, params: ReplayInput) -> ReplaySummary:
        """Send recorded calls to the live fleet and compare each answer with the recorded one."""
        with as_application_errors(unreachable_is_transient=True):
            return await _heartbeating(lambda: _replay(params))


# -- helpers: every one runs inside an activity -----------------------------------------------


async def _heartbeating(work: Callable[[], T]) -> T:
    """Run blocking ``work`` in a thread, heartbeating until it ends."""
    task = asyncio.ensure_future(asyncio.to_thread(work))
    beats = 0
    while not task.done():
        await asyncio.wait({task}, timeout=HEARTBEAT_S)
        beats += 1
        activity.heartbeat(beats)
    return task.result()


def _format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BadInput(f"{path}: the adapter migration rewrites JSON, YAML or TOML pool configs, not {path.suffix or 'this'} files",
                       hint="convert the pool's settings to a .json/.yaml/.toml file the fleet reads")
    return fmt


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({exc.strerror or exc})") from None


def _decode(path: Path, fmt: str, data: bytes) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
        raw = json.loads(text) if fmt == "json" else yaml.safe_load(text) if fmt == "yaml" else tomllib.loads(text)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError, RecursionError) as exc:
        raise PoolConfigError(f"{path}: not valid {fmt.upper()} ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(raw, dict):
        raise PoolConfigError(f"{path}: the top level must be a mapping of Snakepit keys")
    return raw


def _encode(fmt: str, raw: dict[str, Any]) -> bytes:
    if fmt == "json":
        return (json.dumps(raw, indent=2) + "\n").encode()
    if fmt == "yaml":
        return yaml.safe_dump(raw, sort_keys=False).encode()
    import tomli_w

    return tomli_w.dumps(raw).encode()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a sibling temporary file, fsync it, and rename it over ``path`` (mode kept)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BadInput(f"{path}: cannot write ({exc.strerror or exc})") from None


def _load_generic(path: str) -> dict[str, Any]:
    """A generic configuration file: the configuration itself, or the whole ``adapter analyze --json`` output."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return GenericConfig.load(path).raw  # raises the clear error for whatever is wrong
    if isinstance(raw, dict) and "libraries" not in raw and isinstance(raw.get("proposed_config"), dict):
        return GenericConfig.parse(raw["proposed_config"], f"{path}: proposed_config").raw
    return GenericConfig.load(path).raw


def _verify(params: VerifyInput) -> VerifySummary:
    report = analyze_path(params.path)
    # Only the class the pool runs is migrated; other adapters in the same source are not this pool's tools.
    report.adapters = [a for a in report.adapters if f"{a.module}.{a.name}" == params.custom_adapter] or report.adapters
    config = copy.deepcopy(_load_generic(params.generic) if params.generic else propose_config(report))
    config["custom_adapter"] = params.custom_adapter  # tools that stay custom are served by the pool's adapter
    unknown = sorted(set(params.accept) - set(config.get("tool_aliases", {})))
    if unknown:
        raise BadInput(f"--accept-mismatch {unknown[0]}: the generic configuration has no alias of that name",
                       hint="name a tool listed under tool_aliases")
    checked = verify(
        report, config,
        samples=read_cases(params.samples) if params.samples else None,
        traffic=recorded_calls(params.traffic) if params.traffic else None,
        examples=params.examples, accept=set(params.accept),
        tolerance=Tolerance(params.rel_tol, params.abs_tol), limits=Limits(timeout=params.timeout_s),
    )  # fmt: skip
    data = (json.dumps(checked.config, indent=2) + "\n").encode()
    staged = None
    if params.stage_as:  # in the tool's own state folder: the deployment is written only by write_generic_config
        folder = home() / "staged"
        folder.mkdir(exist_ok=True)
        staged = folder / f"{params.stage_as}.generic.json"
        _write_atomic(staged, data)
    aliases = checked.config.get("tool_aliases", {})
    return VerifySummary(
        ok=checked.ok, tools=[_check(v) for v in checked.tools], generic_tools=sorted(aliases),
        custom_tools=sorted(checked.config.get("custom_tools", {})), config_digest=sha256(data),
        staged_path=str(staged) if staged else None,
    )  # fmt: skip


def recorded_calls(path: str) -> list[Recorded]:
    """The complete lines of a JSONL file the fleet may still be appending to.

    A last line without its newline is a call being recorded right now, not a
    malformed one: it is left for the next reader.
    """
    data = _read_bytes(Path(path))
    complete = data[: data.rfind(b"\n") + 1]
    if complete == data:
        return read_records(path)
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as fh:
        fh.write(complete)
        fh.flush()
        try:
            return read_records(fh.name)
        except SamplesParseError as exc:
            raise SamplesParseError(path, exc.line, str(exc.message).split(": ", 1)[-1]) from None


def _check(v: ToolVerdict) -> ToolCheck:
    return ToolCheck(tool=v.tool, status=v.status, decision=v.decision, cases=v.cases, matches=v.matches,
                     detail=v.detail, first_mismatch=abridged(v.first_mismatch) if v.first_mismatch else None)


def _backup_path(path: Path, migration_id: str) -> Path:
    return path.with_name(f"{path.stem}.{migration_id}.bak{path.suffix}")


def _backup(path: Path, migration_id: str) -> FileBackup:
    copy_path = _backup_path(path, migration_id)
    if copy_path.exists():  # taken by an earlier attempt of this migration
        data = copy_path.read_bytes()
        return FileBackup(path=str(path), existed=True, backup_path=str(copy_path), digest=sha256(data), size=len(data))
    if not path.exists():  # nothing writes it before this step has completed, so a retry finds it absent too
        return FileBackup(path=str(path), existed=False)
    data = _read_bytes(path)
    _write_atomic(copy_path, data)
    return FileBackup(path=str(path), existed=True, backup_path=str(copy_path), digest=sha256(data), size=len(data))


def _restore(found: FileBackup) -> bool:
    """Put one file back as found; True when something had to change."""
    path = Path(found.path)
    if not found.existed:
        if path.exists():
            path.unlink()
            return True
        return False
    assert found.backup_path is not None
    data = Path(found.backup_path).read_bytes()
    if sha256(data) != found.digest:
        raise ConfigChanged(f"the backup {found.backup_path} no longer has digest {found.digest}: it was edited")
    if path.exists() and path.read_bytes() == data:
        return False
    _write_atomic(path, data)
    return True


def generic_pool(raw: dict[str, Any], pool: str | None, generic_path: str) -> dict[str, Any]:
    """``raw`` with the pool's adapter replaced by the generic adapter reading ``generic_path``.

    Other adapter arguments and every environment variable are kept; a
    ``config_version`` the config names gets ``-generic`` appended, so the
    fleet tells the two configs apart.
    """
    new = copy.deepcopy(raw)
    keys = _snakepit_keys(new)
    entry = _select_pool(keys, pool)
    if "pools" not in keys:  # the single pool of 0.5 and before: its settings live in pool_config
        keys["pool_config"] = entry = {k: v for k, v in entry.items() if k != "name"}
    argv = list(entry.get("adapter_args", keys.get("adapter_args")) or [])
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--adapter" and i + 1 < len(argv):
            i += 2
        elif argv[i].startswith("--adapter="):
            i += 1
        else:
            out.append(argv[i])
            i += 1
    entry["adapter_args"] = ["--adapter", GENERIC_ADAPTER, *out]
    entry["adapter_env"] = {**(entry.get("adapter_env") or {}), CONFIG_ENV: generic_path}
    if "config_version" in new and isinstance(new["config_version"], (str, int)) and str(new["config_version"]):
        new["config_version"] = f"{new['config_version']}-generic"
    return new


def _write(params: WriteInput) -> WrittenConfig:
    path = Path(params.config_path)
    fmt = _format(path)
    staged = _read_bytes(Path(params.staged_path))
    if sha256(staged) != params.staged_digest:
        raise ConfigChanged(f"{params.staged_path}: the verified configuration changed after the check")
    parsed = GenericConfig.parse(json.loads(staged), params.staged_path)
    if parsed.custom_adapter != params.custom_adapter:
        raise ConfigChanged(f"{params.staged_path}: it serves custom tools through {parsed.custom_adapter}, "
                            f"not the pool's adapter {params.custom_adapter}")
    backup = _backup_path(path, params.migration_id)
    original = _read_bytes(backup) if backup.exists() else _read_bytes(path)
    new_bytes = _encode(fmt, generic_pool(_decode(path, fmt, original), params.pool, params.generic_path))
    current = _read_bytes(path)
    if current != new_bytes and sha256(current) != params.expected_digest:
        raise ConfigChanged(f"{path} changed since it was backed up (digest {sha256(current)}, "
                            f"backed up {params.expected_digest})", hint="run the migration again once nobody edits it")
    _write_atomic(Path(params.generic_path), staged)
    if current != new_bytes:
        _write_atomic(path, new_bytes)
    spec = parse_pool_config(_decode(path, fmt, new_bytes), params.pool)
    return WrittenConfig(config_path=str(path), config_digest=sha256(new_bytes), config_version=spec.version,
                         generic_path=params.generic_path, generic_digest=params.staged_digest)


def _call(url: str, session_id: str) -> Callable[[str, dict[str, Any]], Any]:
    """One tool call to the fleet front; an error answer is raised as an exception named by its type."""

    def call(tool: str, arguments: dict[str, Any]) -> Any:
        body = json.dumps({"session_id": session_id, "arguments": arguments}).encode()
        request = urllib.request.Request(f"{url}/tools/{tool}", data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return json.loads(resp.read())["result"]
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read()).get("error", {})
            except ValueError:
                error = {}
            raise type(str(error.get("type", "HTTPError")), (Exception,), {})(error.get("message", str(exc))) from None

    return call


def _replay(params: ReplayInput) -> ReplaySummary:
    url = getattr(open_fleet(params.fleet), "url", None)
    if not url:
        raise BadInput("replaying recorded calls needs a fleet reached over HTTP")
    chosen, per_tool, skipped = [], {}, set()
    wanted = set(params.tools)
    for rec in recorded_calls(params.traffic):
        if rec.tool not in wanted:
            skipped.add(rec.tool)
        elif rec.has_result and per_tool.get(rec.tool, 0) < params.per_tool:
            per_tool[rec.tool] = per_tool.get(rec.tool, 0) + 1
            chosen.append(rec)
    verdicts = replay(chosen, _call(url, params.session_id), Tolerance(params.rel_tol, params.abs_tol))
    tools = [ToolCheck(tool=v.tool, status=v.status, decision=v.decision, cases=v.cases, matches=v.matches, detail=v.detail,
                       first_mismatch=abridged(v.first_mismatch) if v.first_mismatch else None) for v in verdicts]
    return ReplaySummary(ok=all(v.cases == v.matches for v in verdicts), tools=sorted(tools, key=lambda t: t.tool),
                         replayed=sum(v.cases for v in verdicts), matched=sum(v.matches for v in verdicts),
                         skipped_tools=sorted(skipped))
