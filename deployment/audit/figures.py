"""The figures and findings of a run, by workflow type, from its result (as JSON): pure.

Every report, comparison and plan total reads a run through these, so a
config, adapter, rolling-restart or custom run shows its own counts, not a
session migration's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Result = dict[str, Any]


def _count(value: Any) -> int | None:
    return len(value) if isinstance(value, list) else None


def _session(r: Result) -> dict[str, Any]:
    duration = r.get("duration_s") or 0.0
    copied = r.get("sessions_copied") or 0
    return {"sessions read": r.get("sessions_total"), "sessions copied": r.get("sessions_copied"),
            "expired skipped": r.get("sessions_skipped_expired"), "batches": r.get("batches"),
            "copy resumes": r.get("copy_resumes"), "restored": r.get("restored"),
            "sessions/s": round(copied / duration, 1) if duration else None}  # fmt: skip


def _config(r: Result) -> dict[str, Any]:
    return {"path": r.get("path"), "from version": r.get("from_version"), "to version": r.get("to_version"),
            "changes": _count(r.get("changes")), "files written": _count(r.get("files_written")),
            "findings": _count(r.get("findings")), "warnings": _count(r.get("warnings")),
            "files restored": _count(r.get("restored"))}  # fmt: skip


def _adapter(r: Result) -> dict[str, Any]:
    analysis, verified = r.get("analysis") or {}, r.get("verification") or {}
    rollout, replay = r.get("rollout") or {}, r.get("replay") or {}
    return {"adapter path": r.get("path"), "fleet": r.get("fleet"), "pool config": r.get("config_path"),
            "tools analyzed": _count(analysis.get("tools")), "migratable": analysis.get("migratable"),
            "kept custom": analysis.get("custom"), "equivalence": _verdict(verified.get("ok")),
            "generic tools": _count(verified.get("generic_tools")), "instances restarted": rollout.get("restarted"),
            "calls replayed": replay.get("replayed"), "calls matched": replay.get("matched"),
            "rolled back": _verdict(r.get("rolled_back"))}  # fmt: skip


def _rolling(r: Result) -> dict[str, Any]:
    instances = r.get("instances") or []
    return {"fleet": r.get("fleet"), "config version": r.get("config_version"), "instances": len(instances),
            "restarted": r.get("restarted"), "returned to previous config": _count(r.get("rolled_back")),
            "failed instance": r.get("failed_instance")}  # fmt: skip


def _custom(r: Result) -> dict[str, Any]:
    plan, verified = r.get("plan") or {}, r.get("verification") or {}
    return {"extension": f"{r.get('name') or r.get('extension')} {r.get('version') or ''}".strip(),
            "planned": plan.get("total"), "to change": plan.get("to_change"), "handled": r.get("done"),
            "changed": r.get("changed"), "checkpoints": r.get("checkpoints"), "apply resumes": r.get("apply_resumes"),
            "verified": _verdict(verified.get("ok")), "checked": verified.get("checked"), "restored": r.get("restored")}  # fmt: skip


def _plan(r: Result) -> dict[str, Any]:
    steps = r.get("steps") or []
    return {"plan": r.get("plan"), "environment": r.get("environment"), "policy": r.get("policy"),
            "steps": len(steps), "completed": _count(r.get("completed_order")), "undone": _count(r.get("undone_order")),
            "failed step": r.get("failed_step"), "promoted from": r.get("promoted_from")}  # fmt: skip


def _verdict(ok: Any) -> str | None:
    return None if ok is None else ("yes" if ok else "no")


FIGURES: dict[str, Callable[[Result], dict[str, Any]]] = {
    "SessionMigration": _session, "ConfigMigration": _config, "AdapterMigration": _adapter,
    "RollingRestart": _rolling, "CustomMigration": _custom, "MigrationPlan": _plan,
}  # fmt: skip


def figures_of(workflow_type: str | None, result: Result | None) -> dict[str, Any]:
    """The run's own figures (label -> value), without the ones its result does not have."""
    if not result:
        return {}
    found = FIGURES.get(workflow_type or "", _session)(result)
    found["duration (s)"] = result.get("duration_s")
    return {k: v for k, v in found.items() if v is not None}


def findings_of(workflow_type: str | None, result: Result | None) -> list[str]:
    """What a person must look at: findings, problems, mismatches, failed instances and steps, each one line."""
    r = result or {}
    found: list[str] = []
    for f in r.get("findings") or []:
        found.append(f"{f.get('key')}: {f.get('message')}" if isinstance(f, dict) else str(f))
    for w in r.get("warnings") or []:
        found.append(f"warning {w.get('key')}: {w.get('message')}" if isinstance(w, dict) else str(w))
    verified = r.get("verification") if isinstance(r.get("verification"), dict) else {}
    found += [str(p) for p in verified.get("problems") or []]
    for field in ("missing", "mismatched", "extra"):
        if verified.get(field):
            found.append(f"{len(verified[field])} {field} session(s), e.g. {', '.join(map(str, verified[field][:5]))}")
    if workflow_type == "AdapterMigration":
        found += [f"tool {t} stays custom" for t in verified.get("custom_tools") or []]
        replay = r.get("replay") or {}
        found += [f"replay of {t['tool']}: {t['status']} {t.get('detail') or ''}".strip() for t in replay.get("tools") or []
                  if isinstance(t, dict) and t.get("status") in ("mismatch", "not_reproduced", "error")]  # fmt: skip
    for i in r.get("instances") or []:
        if isinstance(i, dict) and i.get("outcome") in ("failed", "rolled_back", "not_reached"):
            found.append(f"instance {i.get('id')}: {i.get('outcome')}")
    for s in r.get("steps") or []:
        if isinstance(s, dict) and s.get("error"):
            found.append(f"step {s.get('id')} ({s.get('state')}): {s['error']}")
    return found


def impact_of(result: Result | None) -> dict[str, Any]:
    """The run's impact figures: the worker's CPU and memory, and any ``fleet_*`` sample fields, whatever they are."""
    r = result or {}
    impact: dict[str, Any] = {}
    if r.get("worker_cpu_s") is not None:
        impact["worker_cpu_s"] = r["worker_cpu_s"]
    if r.get("worker_peak_rss_bytes"):
        impact["worker_peak_rss_mib"] = round(r["worker_peak_rss_bytes"] / 2**20, 1)
    nested = r.get("impact") if isinstance(r.get("impact"), dict) else {}
    for source in (nested, r):
        for key, value in source.items():
            if key.startswith("fleet_") and value is not None:
                impact[key] = value
    return impact


def numeric_totals(figures: list[dict[str, Any]]) -> dict[str, float]:
    """Every numeric figure summed over several runs (a plan's children), in first-seen order."""
    totals: dict[str, float] = {}
    for found in figures:
        for key, value in found.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "sessions/s":
                totals[key] = round(totals.get(key, 0) + value, 3)
    return totals
