"""Order a plan: dependency cycles, parallel groups (topological levels), and resource conflicts (pure)."""

from __future__ import annotations

from deployment.plans.errors import PlanIssue
from deployment.plans.model import Plan, Resource
from deployment.sessions.stores.base import redact_url


def find_cycles(plan: Plan) -> list[list[str]]:
    """Every elementary dependency cycle found by a depth-first walk, each as ``[a, b, ..., a]``, once."""
    deps = {m.id: [d for d in m.depends_on if d in plan.by_id()] for m in plan.migrations}
    cycles: list[list[str]] = []
    seen_sets: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in deps[node]:
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                if frozenset(cycle) not in seen_sets:
                    seen_sets.add(frozenset(cycle))
                    cycles.append(cycle)
            elif dep not in state:
                walk(dep)
        stack.pop()
        state[node] = 2

    for m in plan.migrations:
        if m.id not in state:
            walk(m.id)
    return cycles


def cycle_issues(plan: Plan) -> list[PlanIssue]:
    """A schema issue per dependency cycle, naming it ``a → b → a`` at the line of its first migration."""
    by_id = plan.by_id()
    return [
        PlanIssue("cycle", f"dependency cycle: {' → '.join(c)} (→ reads 'depends on')", plan.path,
                  by_id[c[0]].line_of("depends_on"), c[0],
                  f"remove one of these depends_on, e.g. {c[1]} from the depends_on of {c[0]}")
        for c in find_cycles(plan)
    ]


def levels(plan: Plan) -> list[list[str]]:
    """The parallel groups: level 0 depends on nothing, level n only on levels below it; file order within a level.

    Raises ValueError on a cycle (check :func:`find_cycles` first).
    """
    deps = {m.id: set(d for d in m.depends_on if d in plan.by_id()) for m in plan.migrations}
    placed: dict[str, int] = {}
    groups: list[list[str]] = []
    while len(placed) < len(deps):
        ready = [m.id for m in plan.migrations if m.id not in placed and deps[m.id] <= placed.keys()]
        if not ready:
            raise ValueError("the plan has a dependency cycle")
        for mid in ready:
            placed[mid] = len(groups)
        groups.append(ready)
    return groups


def ancestors(plan: Plan) -> dict[str, set[str]]:
    """For every migration, every migration it depends on, directly or not."""
    deps = {m.id: [d for d in m.depends_on if d in plan.by_id()] for m in plan.migrations}
    memo: dict[str, set[str]] = {}

    def of(mid: str, trail: frozenset[str]) -> set[str]:
        if mid in memo:
            return memo[mid]
        found: set[str] = set()
        for d in deps[mid]:
            if d not in trail:
                found |= {d} | of(d, trail | {d})
        memo[mid] = found
        return found

    return {m.id: of(m.id, frozenset({m.id})) for m in plan.migrations}


def conflicts(plan: Plan, touched: dict[str, list[Resource]]) -> list[PlanIssue]:
    """Two migrations on the same resource, at least one writing it, with no ordering between them.

    ``touched`` is migration id -> the resources it touches (bound to an
    environment or logical). The suggestion orders the later one in the file
    after the earlier one.
    """
    before = ancestors(plan)
    order = [m.id for m in plan.migrations]
    by_id = plan.by_id()
    issues: list[PlanIssue] = []
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            if a in before[b] or b in before[a]:
                continue
            shared = sorted({
                " = ".join(sorted({ra.name, rb.name})) + (f" ({redact_url(ra.value)})" if ra.value != ra.name else "")
                for ra in touched.get(a, []) for rb in touched.get(b, [])
                if ra.value == rb.value and "write" in (ra.access, rb.access)
            })
            if shared:
                deps = ", ".join(by_id[b].depends_on + [a])
                issues.append(PlanIssue(
                    "conflict",
                    f"{a} and {b} both touch {', '.join(shared)} (at least one writes it) with no order between them",
                    plan.path, by_id[b].line, b, f"order them: in {b} set depends_on: [{deps}]",
                ))
    return issues
