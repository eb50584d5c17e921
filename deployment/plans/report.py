"""What ``plan show`` tells: every step, its order and parallel group, estimates, rollback procedure and risks (pure)."""

from __future__ import annotations

from typing import Any

from deployment.plans.feasibility import Feasibility, Risk
from deployment.plans.model import REVERSIBLE, Environment, Migration, Plan

# Stated defaults, used when the environment's `throughput` does not give a measured figure.
DEFAULT_THROUGHPUT = {
    "sessions_per_s": 2000.0,  # sessions read and written per second (the copy; verification reads both again)
    "config_s_per_file": 1.0,
    "restart_s_per_instance": 15.0,  # drain, restart, health check (plus the step's settle_s)
    "adapter_check_s": 60.0,  # the equivalence check before the rollout
    "custom_s": 30.0,  # an extension's size is unknown before it plans
}

PHASES = {
    "sessions": ["validate both stores (source readable, target reachable, no id collision, quota)",
                 "record the target's backup point (digest as found)", "copy in batches, journaled in the target",
                 "finalize the target", "verify both stores by digest"],
    "config": ["plan the conversion and validate the result (nothing written)", "back up every file to change",
               "write each file atomically", "read back and validate as the target version"],
    "adapter": ["analyze the adapter's tools", "check equivalence on recorded and generated inputs",
                "back up the pool config", "write the generic configuration", "rolling restart onto it",
                "replay recorded calls against the live fleet"],
    "rolling_restart": ["check the config loads and every instance serves",
                        "per instance: drain, wait idle, restart on the new config, wait healthy, undrain"],
    "custom": ["resolve the extension and record its version", "validate", "plan", "apply in slices", "verify"],
}

ROLLBACK = {
    "sessions": ("on failure the target is put back exactly as found (from its journal)",
                 "after completion: snakepit-migrate rollback ID (undo from the target's journal)"),
    "config": ("on failure every changed file is restored byte for byte from its backup",
               "after completion: snakepit-migrate rollback ID (refuses files edited since; --force)"),
    "adapter": ("on failure the pool config is restored and every instance restarted onto it",
                "after completion: snakepit-migrate rollback ID (pool config restored, every instance restarted onto it)"),
    "rolling_restart": ("on failure every instance already restarted goes back to the config it served",
                        "after completion: snakepit-migrate fleet rollback ID (each instance back to the config it served)"),
    "custom": ("on failure the extension's rollback undoes what apply did",
               "after completion: snakepit-migrate extensions rollback ID"),
}


def _rate(env: Environment | None, key: str, measured: dict[str, tuple[float, int]] | None = None) -> tuple[float, str]:
    """The throughput to estimate with: the environment's stated one, else the measured one, else the stated default."""
    if env is not None and key in env.throughput:
        return env.throughput[key], f"{key}={env.throughput[key]:g} (environment {env.name})"
    if measured and key in measured:
        value, runs = measured[key]
        return value, f"{key}={value:g} (measured: median of {runs} earlier run(s))"
    return DEFAULT_THROUGHPUT[key], f"{key}={DEFAULT_THROUGHPUT[key]:g} (stated default)"


def estimate(m: Migration, params: dict[str, Any], facts: dict[str, Any], env: Environment | None,
             measured: dict[str, tuple[float, int]] | None = None) -> tuple[float | None, str]:
    """Seconds a migration is expected to take, and how that was worked out (None when the size is unknown)."""
    if m.type == "sessions":
        n = facts.get("sessions")
        if n is None:
            return None, "the source is written by an earlier step: size unknown until then"
        rate, basis = _rate(env, "sessions_per_s", measured)
        return round(2 * n / rate + 5, 1), f"{n} sessions copied then verified at {basis}, plus 5 s of checks"
    if m.type == "config":
        per, basis = _rate(env, "config_s_per_file")
        files = facts.get("files", 1)
        return round(files * per, 1), f"{files} file(s) at {basis}"
    if m.type in ("rolling_restart", "adapter"):
        instances = facts.get("instances")
        if instances is None:
            return None, "the fleet did not report its instances"
        per, basis = _rate(env, "restart_s_per_instance")
        settle = float(params.get("settle_s", 2.0))
        total = instances * (per + settle)
        note = f"{instances} instance(s) at {basis} + settle {settle:g} s"
        if m.type == "adapter":
            check, check_basis = _rate(env, "adapter_check_s")
            total += check
            note += f", plus the check ({check_basis})"
        return round(total, 1), note
    seconds, basis = _rate(env, "custom_s")
    return seconds, basis


def plan_risks(plan: Plan, levels: list[list[str]]) -> list[Risk]:
    """Risks of the plan as a whole: what its policy leaves behind."""
    risks = []
    if plan.policy == "stop" and len(levels) > 1:
        risks.append(Risk("(plan)", "policy stop: a failure leaves the migrations completed before it in place",
                          "set policy: rollback to undo them in reverse order"))
    for m in plan.migrations:
        if m.type not in REVERSIBLE and plan.policy == "rollback":
            risks.append(Risk(m.id, f"a completed {m.type} step is not undone by the plan's rollback",
                              "put it in the last group, or be ready to follow its manual rollback"))
    return risks


def show(plan: Plan, env: Environment | None, levels: list[list[str]], params: dict[str, dict[str, Any]],
         feasibility: Feasibility | None, measured: dict[str, tuple[float, int]] | None = None) -> dict[str, Any]:
    """The plan as ``plan show --json`` prints it."""
    facts = feasibility.facts if feasibility else {}
    level_of = {mid: n for n, group in enumerate(levels) for mid in group}
    steps = []
    for m in sorted(plan.migrations, key=lambda m: level_of[m.id]):
        seconds, basis = estimate(m, params[m.id], facts.get(m.id, {}), env, measured)
        automatic, after = ROLLBACK[m.type]
        steps.append({
            "id": m.id, "type": m.type, "workflow": m.workflow_type, "group": level_of[m.id] + 1,
            "depends_on": m.depends_on, "phases": PHASES[m.type], "facts": facts.get(m.id, {}),
            "estimate_s": seconds, "estimate_basis": basis,
            "rollback": {"automatic": automatic, "after_completion": after,
                         "by_plan_policy": plan.policy == "rollback" and m.type in REVERSIBLE},
        })  # fmt: skip
    per_group = [max((s["estimate_s"] or 0.0) for s in steps if s["group"] == n + 1) for n in range(len(levels))]
    risks = plan_risks(plan, levels) + (feasibility.risks if feasibility else [])
    return {
        "plan": plan.name, "environment": env.name if env else None, "digest": plan.digest, "policy": plan.policy,
        "groups": levels, "steps": steps, "estimated_total_s": round(sum(per_group), 1),
        "estimate_complete": all(s["estimate_s"] is not None for s in steps),
        "risks": [r.__dict__ for r in risks],
    }  # fmt: skip


def markdown(shown: dict[str, Any]) -> str:
    """The same as Markdown, for a change request or a runbook."""
    lines = [f"# Plan {shown['plan']} — environment {shown['environment']}", "",
             f"Digest `{shown['digest'][:16]}`, failure policy **{shown['policy']}**, "
             f"estimated {shown['estimated_total_s']:g} s" + ("" if shown["estimate_complete"] else " (at least)") + ".", "",
             "## Order", ""]
    for n, group in enumerate(shown["groups"], 1):
        lines.append(f"{n}. {' ‖ '.join(group)}" + (" (in parallel)" if len(group) > 1 else ""))
    lines += ["", "## Steps"]
    for s in shown["steps"]:
        est = f"{s['estimate_s']:g} s" if s["estimate_s"] is not None else "unknown"
        lines += ["", f"### {s['id']} ({s['type']}, group {s['group']})", "",
                  f"Depends on: {', '.join(s['depends_on']) or 'nothing'}. Estimate: {est} — {s['estimate_basis']}.", ""]
        lines += [f"{i}. {p}" for i, p in enumerate(s["phases"], 1)]
        rb = s["rollback"]
        lines += ["", f"Rollback: {rb['automatic']}; {rb['after_completion']}"
                  + ("; undone by the plan's rollback policy." if rb["by_plan_policy"] else ".")]
    lines += ["", "## Risks", ""]
    lines += [f"- **{r['migration']}**: {r['risk']} → {r['mitigation']}" for r in shown["risks"]] or ["- none found"]
    return "\n".join(lines) + "\n"
