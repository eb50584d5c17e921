"""Read a plan file and an environments file (pure: bytes in, model and issues out).

Every value keeps the line it was written on (pyyaml's node marks), so a
schema error names ``file:line``.  Nothing here opens a store or a fleet.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import yaml

from deployment.plans.errors import PlanIssue, PlanUnreadable
from deployment.plans.model import POLICIES, WORKFLOW_TYPES, Environment, Migration, Plan

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_PLAN_KEYS = {"plan", "policy", "migrations", "description"}
_MIGRATION_KEYS = {"id", "type", "params", "depends_on", "environments", "touches", "description"}


class Lines(dict):
    """A YAML mapping that remembers its own line and the line of each key (1-based)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.line = 0
        self.key_lines: dict[Any, int] = {}


class LineList(list):
    """A YAML sequence that remembers its line and each item's line."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.line = 0
        self.item_lines: list[int] = []


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Lines:  # type: ignore[override]
        self.flatten_mapping(node)
        result = Lines()
        result.line, result.key_lines = node.start_mark.line + 1, {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict)):
                raise yaml.MarkedYAMLError("while reading a mapping", node.start_mark,
                                           "a key must be a plain value (a name or a number), not a list or a mapping",
                                           key_node.start_mark)  # fmt: skip
            if key in result:
                raise yaml.MarkedYAMLError("while reading a mapping", node.start_mark,
                                           f"the key {key!r} is set twice", key_node.start_mark)
            result[key] = self.construct_object(value_node, deep=True)
            result.key_lines[key] = key_node.start_mark.line + 1
        return result

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LineList:  # type: ignore[override]
        result = LineList(self.construct_object(child, deep=True) for child in node.value)
        result.line, result.item_lines = node.start_mark.line + 1, [c.start_mark.line + 1 for c in node.value]
        return result


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_sequence)


def parse_yaml(path: str, data: bytes) -> Any:
    """The YAML document of ``data``, mappings as :class:`Lines`; raises :class:`PlanUnreadable` with file:line."""
    try:
        return yaml.load(data.decode("utf-8"), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except UnicodeDecodeError as exc:
        raise PlanUnreadable(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        raise PlanUnreadable(f"{where}: {exc.problem or exc.context}", hint="fix the YAML there") from None
    except yaml.YAMLError as exc:
        raise PlanUnreadable(f"{path}: not YAML: {exc}") from None
    except RecursionError:
        raise PlanUnreadable(f"{path}: nested too deeply to read", hint="a plan is a few levels of mappings and lists") from None


def _line(mapping: Any, key: Any) -> int | None:
    if isinstance(mapping, Lines):
        return mapping.key_lines.get(key, mapping.line)
    return None


def load_plan(path: str, data: bytes) -> tuple[Plan, list[PlanIssue]]:
    """The plan in ``data`` and its schema issues (an issue-free plan is well formed, not yet ordered or feasible)."""
    doc = parse_yaml(path, data)
    issues: list[PlanIssue] = []

    def bad(message: str, line: int | None, hint: str | None = None, migration: str | None = None) -> None:
        issues.append(PlanIssue("schema", message, path, line, migration, hint))

    plan = Plan(name="", path=path, migrations=[], digest=hashlib.sha256(data).hexdigest())
    if not isinstance(doc, Lines):
        bad("a plan is a mapping with 'plan', 'policy' and 'migrations'", 1,
            "start from: plan: NAME / migrations: [- id: ..., type: sessions, params: {...}]")
        return plan, issues
    for key in doc:
        if key not in _PLAN_KEYS:
            bad(f"unknown key {key!r}", _line(doc, key), f"the keys of a plan are: {', '.join(sorted(_PLAN_KEYS))}")
    name = doc.get("plan")
    if not isinstance(name, str) or not name.strip():
        bad("'plan' must name the plan (a non-empty string)", _line(doc, "plan") or doc.line, "add: plan: my-plan")
    else:
        plan.name = name
    policy = doc.get("policy", "stop")
    if policy not in POLICIES:
        bad(f"policy {policy!r} is not one of {', '.join(POLICIES)}", _line(doc, "policy"),
            "stop: leave completed migrations in place; rollback: undo them in reverse order")
    else:
        plan.policy = policy
    items = doc.get("migrations")
    if not isinstance(items, LineList) or not items:
        bad("'migrations' must be a non-empty list", _line(doc, "migrations") or doc.line)
        return plan, issues
    seen: dict[str, int] = {}
    for item, line in zip(items, items.item_lines):
        migration = _migration(item, line, bad)
        if migration is None:
            continue
        if migration.id in seen:
            bad(f"migration id {migration.id!r} is used twice (first on line {seen[migration.id]})", migration.line,
                "give every migration its own id", migration.id)
            continue
        seen[migration.id] = migration.line
        plan.migrations.append(migration)
    for m in plan.migrations:
        for dep in m.depends_on:
            if dep not in seen:
                bad(f"{m.id} depends on {dep!r}, which is not a migration of this plan", m.line_of("depends_on"),
                    f"the ids are: {', '.join(seen)}", m.id)
            elif dep == m.id:
                bad(f"{m.id} depends on itself", m.line_of("depends_on"), "remove it from its own depends_on", m.id)
    return plan, issues


def _migration(item: Any, line: int, bad: Any) -> Migration | None:
    if not isinstance(item, Lines):
        bad("each migration is a mapping with id, type and params", line)
        return None
    mid = item.get("id")
    if not isinstance(mid, str) or not _ID.match(mid):
        bad(f"migration id {mid!r} must be lower-case letters, digits, '.', '_' or '-' (at most 63)",
            _line(item, "id") or item.line, "for example: id: users-to-redis")
        return None
    ok = True
    for key in item:
        if key not in _MIGRATION_KEYS:
            bad(f"{mid}: unknown key {key!r}", _line(item, key), f"the keys of a migration are: {', '.join(sorted(_MIGRATION_KEYS))}", mid)
            ok = False
    mtype = item.get("type")
    if not isinstance(mtype, str) or mtype not in WORKFLOW_TYPES:
        bad(f"{mid}: type {mtype!r} is not one of {', '.join(WORKFLOW_TYPES)}", _line(item, "type") or item.line, migration=mid)
        return None
    params = item.get("params", Lines())
    if not isinstance(params, dict):
        bad(f"{mid}: params must be a mapping", _line(item, "params"), migration=mid)
        return None
    deps = item.get("depends_on", [])
    if isinstance(deps, str):
        deps = [deps]
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        bad(f"{mid}: depends_on must be a list of migration ids", _line(item, "depends_on"), migration=mid)
        ok = False
        deps = []
    envs = item.get("environments", {})
    if not isinstance(envs, dict) or not all(isinstance(v, dict) for v in envs.values()):
        bad(f"{mid}: environments must map an environment name to the params it changes", _line(item, "environments"),
            "for example: environments: {production: {batch_size: 2000}}", mid)
        ok = False
        envs = {}
    touches = item.get("touches", [])
    if not isinstance(touches, list) or not all(isinstance(t, str) for t in touches):
        bad(f"{mid}: touches must be a list of resources", _line(item, "touches"), migration=mid)
        ok = False
        touches = []
    lines = {"id": item.line, "type": _line(item, "type") or item.line, "depends_on": _line(item, "depends_on") or item.line}
    if isinstance(params, Lines):
        lines.update({f"params.{k}": n for k, n in params.key_lines.items()})
    for env, values in envs.items():
        if isinstance(values, Lines):
            lines.update({f"environments.{env}.{k}": n for k, n in values.key_lines.items()})
    if not ok:
        return None
    return Migration(id=mid, type=mtype, params=_plain(params), depends_on=list(deps),
                     per_environment={str(k): _plain(v) for k, v in envs.items()}, touches=list(touches),
                     line=item.line, lines=lines)


def _plain(value: Any) -> Any:
    """Plain dicts and lists (JSON-shaped) from the line-carrying ones."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def load_environments(path: str, data: bytes) -> tuple[dict[str, Environment], list[PlanIssue]]:
    """The environments of an environments file: ``environments: {NAME: {resources: {...}, throughput: {...}}}``."""
    doc = parse_yaml(path, data)
    issues: list[PlanIssue] = []
    found: dict[str, Environment] = {}
    envs = doc.get("environments") if isinstance(doc, dict) else None
    if not isinstance(envs, Lines) or not envs:
        issues.append(PlanIssue("schema", "an environments file maps 'environments' to named environments", path,
                                getattr(doc, "line", 1), hint="environments: {staging: {resources: {sessions_db: sqlite:///...}}}"))
        return found, issues
    for name, body in envs.items():
        line = envs.key_lines[name]
        if not isinstance(body, Lines) or not isinstance(body.get("resources", {}), dict):
            issues.append(PlanIssue("schema", f"environment {name!r} must hold 'resources' (a mapping)", path, line))
            continue
        resources = body.get("resources", {})
        bad = [k for k, v in resources.items() if not isinstance(v, str) or not v]
        for k in bad:
            issues.append(PlanIssue("schema", f"{name}: resource {k!r} must be bound to a non-empty string (URL, path or fleet)",
                                    path, _line(resources, k)))
        throughput = body.get("throughput", {})
        if not isinstance(throughput, dict) or not all(isinstance(v, (int, float)) and v > 0 for v in throughput.values()):
            issues.append(PlanIssue("schema", f"{name}: throughput values must be positive numbers", path, _line(body, "throughput")))
            throughput = {}
        found[str(name)] = Environment(str(name), {str(k): v for k, v in resources.items() if k not in bad},
                                       {str(k): float(v) for k, v in throughput.items()})
    return found, issues
