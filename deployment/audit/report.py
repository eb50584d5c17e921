"""The final report of a migration: its outcome and its audit entries, as JSON, Markdown or one HTML file.

Pure: built from the run's description (``client.api.describe``) and its
audit entries; no I/O. Each type shows its own figures and findings
(:mod:`deployment.audit.figures`); a plan's report has a section for each
child and the plan's totals; two reports compare side by side.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any

from deployment.audit.entry import StoredEntry
from deployment.audit.figures import figures_of, findings_of, impact_of, numeric_totals
from deployment.errors import BadInput

FORMATS = ("md", "html", "json")


def _seconds(a: str, b: str) -> float:
    parse = lambda ts: datetime.fromisoformat(ts.replace("Z", "+00:00"))  # noqa: E731
    return round((parse(b) - parse(a)).total_seconds(), 3)


def build_report(info: dict[str, Any], entries: list[StoredEntry], chain_ok: bool,
                 children: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The report's figures: before and after, each step with its timing, validation, integrity, the run's own
    figures and findings, impact, totals; for a plan, ``children`` (each child's report) and the plan's totals."""
    result = info.get("result") or {}
    kind = info.get("type")
    phases = [e for e in entries if e.event == "phase"]
    steps = [
        {"step": e.after["phase"], "started": e.ts, "duration_s": _seconds(e.ts, nxt.ts)}
        for e, nxt in zip(phases, phases[1:] + entries[-1:])
        if e.after and e.after.get("phase") != "done"
    ]
    moved = next((e for e in entries if e.event == "data_moved"), None)
    duration = result.get("duration_s") or 0.0
    report = {
        "migration_id": info["migration_id"],
        "type": kind,
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
        "figures": figures_of(kind, result),
        "findings": findings_of(kind, result),
        "rollback": {"rolled_back": result.get("rolled_back"), "restored": result.get("restored")},
        "impact": impact_of(result),
        "error": {"message": result.get("error"), "type": result.get("error_type"),
                  "step": result.get("failed_phase") or result.get("failed_step")}
        if result.get("error")
        else None,
        "audit": {"entries": len(entries), "chain_intact": chain_ok},
    }  # fmt: skip
    if children is not None:
        report["children"] = children
        report["plan_totals"] = plan_totals(result, children)
    return report


def child_section(step: dict[str, Any], child: dict[str, Any] | None) -> dict[str, Any]:
    """One plan step as the plan's report shows it: the child's own report, or (never started) the step's state."""
    if child is None:
        child = {"migration_id": step.get("child_id"), "type": step.get("workflow"), "status": step.get("state"),
                 "figures": dict(step.get("figures") or {}), "findings": [step["error"]] if step.get("error") else [],
                 "steps": [], "impact": {}, "error": None}  # fmt: skip
    return {**child, "step_id": step.get("id"), "plan_type": step.get("type"), "state": step.get("state"),
            "undone_by": step.get("rollback_id")}  # fmt: skip


def plan_totals(result: dict[str, Any], children: list[dict[str, Any]]) -> dict[str, Any]:
    """A plan's totals: its duration, its steps by state, and every numeric figure summed over its children."""
    states: dict[str, int] = {}
    for c in children:
        states[c.get("state") or "?"] = states.get(c.get("state") or "?", 0) + 1
    summed = numeric_totals([c.get("figures") or {} for c in children])
    return {"duration (s)": result.get("duration_s"), "steps": len(children),
            **{f"steps {k}": v for k, v in sorted(states.items())},
            "findings": sum(len(c.get("findings") or []) for c in children),
            "children's time (s)": summed.pop("duration (s)", None),
            **{f"total {k}": v for k, v in summed.items()}}  # fmt: skip


_IMPACT_LABELS = {"worker_cpu_s": "CPU seconds during the copy", "worker_peak_rss_mib": "peak memory (MiB)"}


def _impact_rows(impact: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(_IMPACT_LABELS.get(k, k.replace("_", " ")), v if not isinstance(v, (dict, list)) else json.dumps(v, sort_keys=True))
            for k, v in impact.items()]


def _sections(r: dict[str, Any]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """The report as titled lists of (label, value), shared by Markdown and HTML."""
    i = r["integrity"]
    sections = [
        ("Migration", [(k, v) for k, v in [
            ("id", r["migration_id"]), ("type", r["type"]), ("status", r["status"]), ("source", r.get("source")),
            ("target", r.get("target")), ("started by", f"{r['actor']} on {r['host']}" if r.get("actor") else None),
            ("started", r.get("started")), ("closed", r.get("closed"))] if v is not None or k in ("started", "closed")]),
        ("Figures", list(r["figures"].items())),
    ]  # fmt: skip
    if r.get("plan_totals"):
        sections.append(("Plan totals", [(k, v) for k, v in r["plan_totals"].items() if v is not None]))
    if r["impact"]:
        sections.append(("Impact", _impact_rows(r["impact"])))
    if i["source_digest"] or i["target_digest"]:
        sections.append(("Integrity", [("source digest", i["source_digest"]), ("target digest", i["target_digest"]),
                                       ("digests match", "yes" if i["digests_match"] else "no")]))  # fmt: skip
    if r.get("before"):
        sections.append(("Target before", list(r["before"].items())))
    if r.get("validation"):
        sections.append(("Validation", [(k, v) for k, v in r["validation"].items() if not isinstance(v, (list, dict)) or v]))
    if r["findings"]:
        sections.append(("Findings", [(str(n), f) for n, f in enumerate(r["findings"], 1)]))
    if r["rollback"]["rolled_back"] is not None:
        sections.append(("Rollback", [("rolled back", "yes" if r["rollback"]["rolled_back"] else "no"),
                                      ("restored", r["rollback"]["restored"])]))  # fmt: skip
    sections.append(("Audit trail", [("entries", r["audit"]["entries"]),
                                     ("hash chain", "intact" if r["audit"]["chain_intact"] else "BROKEN")]))  # fmt: skip
    if r["error"]:
        sections.insert(1, ("Error", list(r["error"].items())))
    return sections


def _child_sections(c: dict[str, Any]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """A plan child's section: type, status, timings, figures, findings."""
    head = [("child", c.get("migration_id")), ("type", c.get("type")), ("status", c.get("status")), ("state", c.get("state")),
            ("started", c.get("started")), ("closed", c.get("closed")), ("undone by", c.get("undone_by"))]  # fmt: skip
    rows = [(k, v) for k, v in head if v is not None] + list((c.get("figures") or {}).items())
    rows += _impact_rows(c.get("impact") or {})
    if c.get("error"):
        rows += [(f"error {k}", v) for k, v in c["error"].items() if v is not None]
    rows += [(f"finding {n}", f) for n, f in enumerate(c.get("findings") or [], 1)]
    return [(f"Step {c.get('step_id')} ({c.get('plan_type') or c.get('type')}): {c.get('status')}", rows)]


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
    lines += _md_steps(r["steps"], "##")
    for child in r.get("children") or []:
        for title, rows in _child_sections(child):
            lines += [f"## {title}", "", "| | |", "|---|---|"] + [f"| {k} | {'' if v is None else v} |" for k, v in rows] + [""]
        if child.get("steps"):
            lines += _md_steps(child["steps"], "###")
    return "\n".join(lines)


def _md_steps(steps: list[dict[str, Any]], level: str) -> list[str]:
    lines = [f"{level} Steps as run", "", "| step | started | duration (s) |", "|---|---|---|"]
    return lines + [f"| {s['step']} | {s['started']} | {s['duration_s']} |" for s in steps] + [""]


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
    def table(title: str, rows: list[tuple[str, Any]], level: str = "h2") -> None:
        parts.append(f"<{level}>{e(title)}</{level}><table>")
        parts.extend(f"<tr><th>{e(k)}</th><td data-field='{e(k)}'>{e(v)}</td></tr>" for k, v in rows)
        parts.append("</table>")

    def steps(rows: list[dict[str, Any]], level: str = "h2") -> None:
        parts.append(f"<{level}>Steps as run</{level}><table><tr><th>step</th><th>started</th><th>duration (s)</th></tr>")
        parts.extend(f"<tr><td>{e(s['step'])}</td><td>{e(s['started'])}</td><td>{e(s['duration_s'])}</td></tr>" for s in rows)
        parts.append("</table>")

    for title, rows in _sections(r):
        table(title, rows)
    steps(r["steps"])
    for child in r.get("children") or []:
        parts.append(f"<section class='child' id='step-{e(child.get('step_id'))}'>")
        for title, rows in _child_sections(child):
            table(title, rows)
        if child.get("steps"):
            steps(child["steps"], "h3")
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "".join(parts)


def compare_reports(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two runs' reports side by side: status, durations, every figure either has, findings; for plans, per step too."""
    def pair(key: str, x: dict[str, Any], y: dict[str, Any]) -> list[Any]:
        return [x.get(key), y.get(key)]

    def figures(x: dict[str, Any], y: dict[str, Any]) -> dict[str, list[Any]]:
        fx, fy = x.get("figures") or {}, y.get("figures") or {}
        return {k: [fx.get(k), fy.get(k)] for k in list(fx) + [k for k in fy if k not in fx]}

    compared: dict[str, Any] = {
        "runs": pair("migration_id", a, b), "types": pair("type", a, b), "status": pair("status", a, b),
        "duration_s": [(a.get("figures") or {}).get("duration (s)"), (b.get("figures") or {}).get("duration (s)")],
        "figures": figures(a, b), "findings": [len(a.get("findings") or []), len(b.get("findings") or [])],
        "findings_only_in": [sorted(set(a.get("findings") or []) - set(b.get("findings") or [])),
                             sorted(set(b.get("findings") or []) - set(a.get("findings") or []))],
        "impact": {k: pair(k, a.get("impact") or {}, b.get("impact") or {})
                   for k in list(a.get("impact") or {}) + [k for k in b.get("impact") or {} if k not in (a.get("impact") or {})]},
    }  # fmt: skip
    if "children" in a or "children" in b:
        ca = {c["step_id"]: c for c in a.get("children") or []}
        cb = {c["step_id"]: c for c in b.get("children") or []}
        compared["totals"] = {k: [(a.get("plan_totals") or {}).get(k), (b.get("plan_totals") or {}).get(k)]
                              for k in list(a.get("plan_totals") or {}) + [k for k in b.get("plan_totals") or {} if k not in (a.get("plan_totals") or {})]}  # fmt: skip
        compared["steps"] = [
            {"id": sid, "status": pair("status", ca.get(sid, {}), cb.get(sid, {})), "figures": figures(ca.get(sid, {}), cb.get(sid, {})),
             "findings": [len(ca.get(sid, {}).get("findings") or []), len(cb.get(sid, {}).get("findings") or [])]}
            for sid in list(ca) + [s for s in cb if s not in ca]
        ]  # fmt: skip
    return compared


def render_comparison(c: dict[str, Any], fmt: str) -> str:
    """A comparison as ``json``, ``md`` (a table) or ``html`` (one self-contained file)."""
    if fmt == "json":
        return json.dumps(c, indent=2, default=str) + "\n"
    rows: list[tuple[str, Any, Any]] = [("run", *c["runs"]), ("type", *c["types"]), ("status", *c["status"]),
                                        ("duration (s)", *c["duration_s"]), ("findings", *c["findings"])]  # fmt: skip
    rows += [(k, *v) for k, v in c["figures"].items() if k != "duration (s)"]
    rows += [(f"impact: {k}", *v) for k, v in c["impact"].items()]
    rows += [(f"plan: {k}", *v) for k, v in (c.get("totals") or {}).items()]
    for step in c.get("steps") or []:
        rows.append((f"{step['id']}: status", *step["status"]))
        rows += [(f"{step['id']}: {k}", *v) for k, v in step["figures"].items()]
        rows.append((f"{step['id']}: findings", *step["findings"]))
    rows += [(f"finding only in {'A' if n == 0 else 'B'}", f if n == 0 else "", f if n == 1 else "")
             for n, found in enumerate(c["findings_only_in"]) for f in found]  # fmt: skip
    show = lambda v: "" if v is None else str(v)  # noqa: E731
    if fmt == "md":
        lines = [f"# Comparison: {c['runs'][0]} and {c['runs'][1]}", "", "| | A | B |", "|---|---|---|"]
        return "\n".join(lines + [f"| {k} | {show(x)} | {show(y)} |" for k, x, y in rows]) + "\n"
    if fmt == "html":
        e = lambda v: html.escape(show(v))  # noqa: E731
        body = "".join(f"<tr><th>{e(k)}</th><td data-side='A' data-field='{e(k)}'>{e(x)}</td>"
                       f"<td data-side='B' data-field='{e(k)}'>{e(y)}</td></tr>" for k, x, y in rows)  # fmt: skip
        return ("<!doctype html><html><head><meta charset='utf-8'>"
                f"<title>Comparison {e(c['runs'][0])} and {e(c['runs'][1])}</title>"
                "<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
                "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#f3f3f3}</style></head><body>"
                f"<h1>Comparison: {e(c['runs'][0])} and {e(c['runs'][1])}</h1>"
                f"<table><tr><th></th><th>A</th><th>B</th></tr>{body}</table></body></html>\n")  # fmt: skip
    raise BadInput(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
