"""The final report of a migration: its outcome and its audit entries, as JSON, Markdown or one HTML file.

Pure: built from the run's description (``client.api.describe``) and its
audit entries; no I/O.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any

from deployment.audit.entry import StoredEntry
from deployment.errors import BadInput

FORMATS = ("md", "html", "json")


def _seconds(a: str, b: str) -> float:
    parse = lambda ts: datetime.fromisoformat(ts.replace("Z", "+00:00"))  # noqa: E731
    return round((parse(b) - parse(a)).total_seconds(), 3)


def build_report(info: dict[str, Any], entries: list[StoredEntry], chain_ok: bool) -> dict[str, Any]:
    """The report's figures: before and after, each step with its timing, validation, integrity, totals."""
    result = info.get("result") or {}
    phases = [e for e in entries if e.event == "phase"]
    steps = [
        {"step": e.after["phase"], "started": e.ts, "duration_s": _seconds(e.ts, nxt.ts)}
        for e, nxt in zip(phases, phases[1:] + entries[-1:])
        if e.after and e.after.get("phase") != "done"
    ]
    moved = next((e for e in entries if e.event == "data_moved"), None)
    duration = result.get("duration_s") or 0.0
    return {
        "migration_id": info["migration_id"],
        "type": info.get("type"),
        "status": info.get("status"),
        "started": info.get("started"),
        "closed": info.get("closed"),
        "source": result.get("source"),
        "target": result.get("target"),
        "actor": entries[0].actor if entries else None,
        "host": entries[0].host if entries else None,
        "before": result.get("target_before") or (moved.before if moved else None),
        "after": moved.after if moved else None,
        "steps": steps,
        "validation": result.get("verification"),
        "integrity": {
            "source_digest": result.get("source_digest"),
            "target_digest": result.get("target_digest"),
            "digests_match": bool(result.get("source_digest")) and result.get("source_digest") == result.get("target_digest"),
        },
        "totals": {
            "sessions_total": result.get("sessions_total"),
            "sessions_copied": result.get("sessions_copied"),
            "sessions_skipped_expired": result.get("sessions_skipped_expired"),
            "batches": result.get("batches"),
            "copy_resumes": result.get("copy_resumes"),
            "duration_s": duration,
            "sessions_per_s": round(result.get("sessions_copied", 0) / duration, 1) if duration else None,
        },
        "rollback": {"rolled_back": result.get("rolled_back"), "restored": result.get("restored")},
        "impact": {
            "worker_cpu_s": result.get("worker_cpu_s"),
            "worker_peak_rss_mib": round(result.get("worker_peak_rss_bytes", 0) / 2**20, 1) if result.get("worker_peak_rss_bytes") else None,
        },
        "error": {"message": result.get("error"), "type": result.get("error_type"), "step": result.get("failed_phase")}
        if result.get("error")
        else None,
        "audit": {"entries": len(entries), "chain_intact": chain_ok},
    }


def _sections(r: dict[str, Any]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """The report as titled lists of (label, value), shared by Markdown and HTML."""
    t, i = r["totals"], r["integrity"]
    sections = [
        ("Migration", [("id", r["migration_id"]), ("type", r["type"]), ("status", r["status"]), ("source", r["source"]),
                       ("target", r["target"]), ("started by", f"{r['actor']} on {r['host']}" if r["actor"] else None),
                       ("started", r["started"]), ("closed", r["closed"])]),
        ("Totals", [("sessions read", t["sessions_total"]), ("sessions copied", t["sessions_copied"]),
                    ("expired skipped", t["sessions_skipped_expired"]), ("batches", t["batches"]),
                    ("copy resumes", t["copy_resumes"]), ("duration (s)", t["duration_s"]), ("sessions/s", t["sessions_per_s"])]),
        ("Impact on the worker", [("CPU seconds during the copy", r["impact"]["worker_cpu_s"]),
                                  ("peak memory (MiB)", r["impact"]["worker_peak_rss_mib"])]),
        ("Integrity", [("source digest", i["source_digest"]), ("target digest", i["target_digest"]),
                       ("digests match", "yes" if i["digests_match"] else "no")]),
        ("Target before", list((r["before"] or {}).items())),
        ("Validation", [(k, v) for k, v in (r["validation"] or {}).items() if not isinstance(v, list) or v]),
        ("Rollback", [("rolled back", "yes" if r["rollback"]["rolled_back"] else "no"), ("restored", r["rollback"]["restored"])]),
        ("Audit trail", [("entries", r["audit"]["entries"]), ("hash chain", "intact" if r["audit"]["chain_intact"] else "BROKEN")]),
    ]  # fmt: skip
    if r["error"]:
        sections.insert(1, ("Error", list(r["error"].items())))
    return sections


def render_report(report: dict[str, Any], fmt: str) -> str:
    """The report as ``json``, ``md`` or ``html`` (one self-contained file)."""
    if fmt == "json":
        return json.dumps(report, indent=2, default=str) + "\n"
    if fmt == "md":
        return _markdown(report)
    if fmt == "html":
        return _html(report)
    raise BadInput(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")


def _markdown(r: dict[str, Any]) -> str:
    lines = [f"# Migration report: {r['migration_id']} ({r['status']})", ""]
    for title, rows in _sections(r):
        lines += [f"## {title}", "", "| | |", "|---|---|"] + [f"| {k} | {'' if v is None else v} |" for k, v in rows] + [""]
    lines += ["## Steps as run", "", "| step | started | duration (s) |", "|---|---|---|"]
    lines += [f"| {s['step']} | {s['started']} | {s['duration_s']} |" for s in r["steps"]] + [""]
    return "\n".join(lines)


def _html(r: dict[str, Any]) -> str:
    e = lambda v: html.escape("" if v is None else str(v))  # noqa: E731
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Migration report {e(r['migration_id'])}</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin-bottom:1.5em}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#f3f3f3}"
        ".completed{color:#176a1d}.rolled_back,.failed,.rollback_failed{color:#a61b1b}</style></head><body>",
        f"<h1>Migration report: {e(r['migration_id'])} <span class='{e(r['status'])}'>{e(r['status'])}</span></h1>",
    ]
    for title, rows in _sections(r):
        parts.append(f"<h2>{e(title)}</h2><table>")
        parts += [f"<tr><th>{e(k)}</th><td data-field='{e(k)}'>{e(v)}</td></tr>" for k, v in rows]
        parts.append("</table>")
    parts.append("<h2>Steps as run</h2><table><tr><th>step</th><th>started</th><th>duration (s)</th></tr>")
    parts += [f"<tr><td>{e(s['step'])}</td><td>{e(s['started'])}</td><td>{e(s['duration_s'])}</td></tr>" for s in r["steps"]]
    parts.append("</table></body></html>\n")
    return "".join(parts)
