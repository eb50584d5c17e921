"""Two runs of a plan side by side (e.g. staging and production): durations, counts, findings (pure)."""

from __future__ import annotations

from typing import Any

FIGURES = ("duration_s", "sessions_total", "sessions_copied", "files_written", "findings", "restored", "restarted", "changed")


def compare_runs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a`` and ``b`` are MigrationPlan results (as JSON); every step of either, with both sides' state and figures."""
    steps_a = {s["id"]: s for s in a.get("steps", [])}
    steps_b = {s["id"]: s for s in b.get("steps", [])}
    rows = []
    for sid in list(steps_a) + [s for s in steps_b if s not in steps_a]:
        sa, sb = steps_a.get(sid, {}), steps_b.get(sid, {})
        figures = {k: [sa.get("figures", {}).get(k), sb.get("figures", {}).get(k)] for k in FIGURES
                   if k in sa.get("figures", {}) or k in sb.get("figures", {})}
        rows.append({"id": sid, "state": [sa.get("state"), sb.get("state")], "figures": figures,
                     "error": [sa.get("error"), sb.get("error")]})
    same = a.get("digest") == b.get("digest")
    return {
        "runs": [a.get("plan_id"), b.get("plan_id")], "environments": [a.get("environment"), b.get("environment")],
        "plan": [a.get("plan"), b.get("plan")], "same_plan_digest": same, "status": [a.get("status"), b.get("status")],
        "duration_s": [a.get("duration_s"), b.get("duration_s")], "promoted_from": [a.get("promoted_from"), b.get("promoted_from")],
        "steps": rows,
    }  # fmt: skip


def render_comparison(c: dict[str, Any]) -> str:
    """A side-by-side text table of :func:`compare_runs`."""
    def cell(v: Any) -> str:
        return "-" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))

    lines = [f"{'':<28}{cell(c['runs'][0]):<34}{cell(c['runs'][1])}",
             f"{'environment':<28}{cell(c['environments'][0]):<34}{cell(c['environments'][1])}",
             f"{'status':<28}{cell(c['status'][0]):<34}{cell(c['status'][1])}",
             f"{'duration_s':<28}{cell(c['duration_s'][0]):<34}{cell(c['duration_s'][1])}"]
    if not c["same_plan_digest"]:
        lines.append("note: the two runs are of different plan files (digests differ)")
    for row in c["steps"]:
        lines.append(f"{row['id'] + ' state':<28}{cell(row['state'][0]):<34}{cell(row['state'][1])}")
        for k, (va, vb) in row["figures"].items():
            lines.append(f"{'  ' + k:<28}{cell(va):<34}{cell(vb)}")
    return "\n".join(lines)
