"""Check for real that a plan bound to an environment can run: this module does I/O.

Stores are opened read-only in spirit (``create=False``: a missing source is
an error, a missing target will be created), configs are parsed and their
version detected, adapter files looked for, fleets asked for their health,
and free disk space compared with what backups will need.  Nothing is written.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from deployment.errors import MigrateError, StoreMissing
from deployment.plans.errors import PlanIssue
from deployment.plans.graph import ancestors
from deployment.plans.model import Plan, Resource

CHECK_TIMEOUT_S = 10.0
SESSION_BYTES_ESTIMATE = 1024  # stated default size of one session when the store cannot say


@dataclass
class Risk:
    """Something that can go wrong, and what to do about it."""

    migration: str
    risk: str
    mitigation: str


@dataclass
class Feasibility:
    """What the checks found: facts per migration (sizes, versions, instances), errors, and risks."""

    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    issues: list[PlanIssue] = field(default_factory=list)
    risks: list[Risk] = field(default_factory=list)


def _produced_by_ancestors(plan: Plan, touched: dict[str, list[Resource]]) -> dict[str, set[str]]:
    """For every migration, the resource values some migration it depends on writes (they may not exist yet)."""
    before = ancestors(plan)
    return {mid: {r.value for a in before[mid] for r in touched.get(a, []) if r.access == "write"} for mid in before}


async def check_feasibility(plan: Plan, params: dict[str, dict[str, Any]], touched: dict[str, list[Resource]],
                            backup_dir: Path) -> Feasibility:
    """Run every migration's checks (concurrently, each bounded by ``CHECK_TIMEOUT_S``)."""
    found = Feasibility()
    produced = _produced_by_ancestors(plan, touched)
    checks = {"sessions": _sessions, "config": _config, "adapter": _adapter, "rolling_restart": _restart, "custom": _custom}

    async def one(m: Any) -> None:
        facts: dict[str, Any] = {}
        found.facts[m.id] = facts

        def fail(message: str, hint: str | None = None) -> None:
            found.issues.append(PlanIssue("feasibility", f"{m.id}: {message}", plan.path, m.line, m.id, hint))

        def risk(what: str, mitigation: str) -> None:
            found.risks.append(Risk(m.id, what, mitigation))

        try:
            await asyncio.wait_for(checks[m.type](params[m.id], produced[m.id], facts, fail, risk), CHECK_TIMEOUT_S)
        except asyncio.TimeoutError:
            fail(f"the checks took more than {CHECK_TIMEOUT_S:.0f} s (a store or fleet that does not answer)")
        except MigrateError as exc:
            fail(exc.message, exc.hint)

    await asyncio.gather(*(one(m) for m in plan.migrations))
    _disk(plan, params, found, backup_dir)
    return found


async def _sessions(p: dict[str, Any], produced: set[str], facts: dict[str, Any], fail: Any, risk: Any) -> None:
    from deployment.sessions.stores import open_store, redact_url

    source, target = p["source"], p["target"]
    if source in produced:
        facts["source"] = "written by an earlier migration of the plan: checked when it runs"
    else:
        try:
            async with open_store(source, create=False) as store:
                facts["sessions"] = await store.count()
        except StoreMissing as exc:
            fail(f"the source store {redact_url(source)} does not exist: {exc.message}", "check the URL bound to it")
            return
        facts["source_bytes"] = _file_size(source) or facts["sessions"] * SESSION_BYTES_ESTIMATE
    try:
        async with open_store(target, create=False) as store:
            facts["target_sessions"] = held = await store.count()
    except StoreMissing:
        facts["target_sessions"] = held = 0
        facts["target"] = "missing: created by the migration"
        _writable_parent(target, fail)
    if held and not p.get("overwrite") and target not in produced:
        risk(f"the target store {redact_url(target)} is not empty ({held} sessions): ids in both stores are refused",
             "merge: set overwrite: true to replace the target's copies; or clean the target first")
    if p.get("zero_downtime") and not p.get("fleet"):
        risk("zero downtime without a fleet: instances that do not follow the routing mode are not detected",
             "name the fleet (params.fleet) so its health shows the migration")


def _file_size(url: str) -> int | None:
    if urlsplit(url).scheme in ("sqlite", "jsonl"):
        path = Path(urlsplit(url).path)
        return path.stat().st_size if path.is_file() else None
    return None


def _writable_parent(url: str, fail: Any) -> None:
    if urlsplit(url).scheme in ("sqlite", "jsonl"):
        parent = Path(urlsplit(url).path).parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            fail(f"the target's folder {parent} does not exist or is not writable", "create it, or bind another path")


async def _config(p: dict[str, Any], produced: set[str], facts: dict[str, Any], fail: Any, risk: Any) -> None:
    from deployment.config.detect import canonical
    from deployment.config.plan import check_unit, load_base, load_unit, plan_unit
    from deployment.config.source import read_base, read_unit

    if p.get("path") in produced:
        facts["config"] = "written by an earlier migration of the plan: checked when it runs"
        return
    files = read_unit(p["path"])  # NoConfigFound, ConfigParseError: reported with their hint
    docs, base = load_unit(files), load_base(read_base(p["path"]))
    report = check_unit(docs, p.get("from_version"), base)
    target = canonical(p["to_version"])  # UnknownVersion for a version no schema describes
    facts.update(files=len(files), bytes=sum(len(b) for _, b in files), from_version=report.version, to_version=target)
    plan = plan_unit(docs, target, p.get("from_version"), base)
    facts["changes"] = len(plan.changes)
    if plan.findings and not p.get("accept_findings"):
        keys = ", ".join(sorted({f.key for f in plan.findings})[:5])
        risk(f"{len(plan.findings)} setting(s) need a person's review ({keys}): the migration refuses without accept_findings",
             "review them (snakepit-migrate config migrate --dry-run), then set accept_findings: true")
    if plan.lossy:
        fail(f"converting {report.version} → {target} would drop settings the older version cannot express",
             "migrate to a version that keeps them")


async def _adapter(p: dict[str, Any], produced: set[str], facts: dict[str, Any], fail: Any, risk: Any) -> None:
    from workflows.adapter_models import AdapterMigrationInput

    inp = AdapterMigrationInput.model_validate(p)
    for what, path in (("adapter", inp.path), ("pool config", inp.config_path), ("traffic", inp.traffic), ("samples", inp.samples)):
        if path and path not in produced and not Path(path).exists():
            fail(f"the {what} {path} does not exist", "check the path bound to it")
    if inp.config_path and Path(inp.config_path).is_file():
        facts["bytes"] = Path(inp.config_path).stat().st_size
    await _fleet_health(inp.spec, facts, fail)
    if not inp.traffic:
        risk("no recorded traffic: the equivalence check uses generated inputs only",
             "record the fleet's calls (traffic) so real inputs are compared and replayed")
    if inp.accept_mismatch:
        risk(f"tools migrated despite mismatches: {', '.join(inp.accept_mismatch)}",
             "keep those tools custom unless each mismatch is understood")


async def _restart(p: dict[str, Any], produced: set[str], facts: dict[str, Any], fail: Any, risk: Any) -> None:
    from workflows.fleet_models import RollingRestartInput

    inp = RollingRestartInput.model_validate(p)
    if inp.config_path and inp.config_path not in produced and not Path(inp.config_path).is_file():
        fail(f"the config {inp.config_path} does not exist", "check the path bound to it")
    await _fleet_health(inp.spec, facts, fail)
    if facts.get("instances") == 1:
        risk("the fleet has one instance: it is out of service while it restarts", "add an instance first, or accept the gap")


async def _fleet_health(spec: str, facts: dict[str, Any], fail: Any) -> None:
    from deployment.fleet import open_fleet

    async with open_fleet(spec) as fleet:
        health = await fleet.health()  # FleetUnreachable: reported with its hint
    facts["instances"] = len(health.instances)
    facts["fleet_status"] = health.status
    if health.migration is not None:
        fail(f"the fleet reports migration {health.migration.id} in phase {health.migration.phase}",
             "wait until it ends (snakepit-migrate status ID)")


async def _custom(p: dict[str, Any], produced: set[str], facts: dict[str, Any], fail: Any, risk: Any) -> None:
    from deployment.extensions.registry import load_extension

    cls = load_extension(p["extension"])  # ExtensionError: unknown, ambiguous or broken
    facts["extension"] = f"{getattr(cls, 'name', p['extension'])} {getattr(cls, 'version', '')}".strip()


def _disk(plan: Plan, params: dict[str, dict[str, Any]], found: Feasibility, backup_dir: Path) -> None:
    """Backups (config copies under ``backup_dir``, session journals beside file stores) need free space."""
    need: dict[Path, tuple[int, list[str]]] = {}

    def add(folder: Path, size: int, mid: str) -> None:
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        total, who = need.get(folder, (0, []))
        need[folder] = (total + size, who + [mid])

    for m in plan.migrations:
        facts = found.facts.get(m.id, {})
        if m.type == "config" and facts.get("bytes"):
            add(backup_dir, 2 * facts["bytes"], m.id)  # the backup copy and the atomic write's temporary file
        if m.type == "sessions" and urlsplit(params[m.id]["target"]).scheme in ("sqlite", "jsonl"):
            add(Path(urlsplit(params[m.id]["target"]).path).parent, 2 * facts.get("source_bytes", 0), m.id)
    for folder, (size, who) in need.items():
        free = shutil.disk_usage(folder).free
        for mid in who:
            found.facts[mid]["disk_free_bytes"] = free
        if free < size:
            found.issues.append(PlanIssue("feasibility", f"{', '.join(who)}: {size:,} bytes needed in {folder} for copies "
                                          f"and backups, {free:,} free", plan.path, None, who[0], "free space or bind another path"))
