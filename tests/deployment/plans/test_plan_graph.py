"""Plan files as a user writes them: schema errors with lines, cycles named, conflicts explained, parallel groups."""

from __future__ import annotations

import textwrap

import pytest

from deployment.plans.errors import PlanUnreadable
from deployment.plans.graph import levels
from deployment.plans.loader import load_environments, load_plan
from deployment.plans.resolve import check_plan, resolve


def plan_of(text: str):
    return load_plan("plan.yaml", textwrap.dedent(text).encode())


ENVS = load_environments("envs.yaml", textwrap.dedent("""\
    environments:
      staging:
        resources:
          old: sqlite:///tmp/a.db
          new: redis://127.0.0.1:6379/1
          other: sqlite:///tmp/b.db
          same_as_new: redis://127.0.0.1:6379/1
          x: sqlite:///tmp/x.db
          y: sqlite:///tmp/y.db
          z: sqlite:///tmp/z.db
          w: sqlite:///tmp/w.db
    """).encode())[0]


def sessions(mid: str, source: str, target: str, deps: str = "") -> str:
    return f"""
      - id: {mid}
        type: sessions
        params: {{source: "{source}", target: "{target}"}}
        depends_on: [{deps}]"""


def test_schema_errors_name_file_and_line():
    plan, issues = plan_of("""\
        plan: p
        policy: sometimes
        migrations:
          - id: a
            type: sessions
            params: {source: "@old", target: "@new"}
          - id: b
            type: teleport
          - id: c
            type: config
            colour: blue
          - id: a
            type: config
          - id: d
            type: sessions
            depends_on: [ghost]
            params: {source: "@old", target: "@new"}
        """)
    texts = [i.text() for i in issues]
    assert "plan.yaml:2: policy 'sometimes' is not one of stop, rollback" in texts[0]
    assert any(t.startswith("plan.yaml:8: b: type 'teleport' is not one of sessions") for t in texts)
    assert any(t.startswith("plan.yaml:11: c: unknown key 'colour'") for t in texts)
    assert any(t.startswith("plan.yaml:12: migration id 'a' is used twice (first on line 4)") for t in texts)
    assert any(t.startswith("plan.yaml:16: d depends on 'ghost', which is not a migration of this plan") for t in texts)
    assert len(issues) == 5


def test_yaml_syntax_error_is_unreadable_with_line_and_column():
    with pytest.raises(PlanUnreadable) as exc:
        plan_of("plan: p\nmigrations:\n  - id: a\n   type: [sessions\n")
    assert exc.value.message.startswith("plan.yaml:4:")
    with pytest.raises(PlanUnreadable, match=r"plan.yaml:2:\d+: the key 'plan' is set twice"):
        plan_of("plan: p\nplan: q\n")


def test_params_checked_against_the_workflow_input_with_their_line():
    plan, issues = plan_of("""\
        plan: p
        migrations:
          - id: a
            type: sessions
            params:
              source: "@old"
              target: "@new"
              batch_size: 0
              dry_run: true
        """)
    assert issues == []
    _, _, found = check_plan(plan, ENVS["staging"])
    texts = sorted(i.text() for i in found)
    assert texts[0].startswith("plan.yaml:8: a: params.batch_size: Input should be greater than or equal to 1")
    assert texts[1].startswith("plan.yaml:9: a: dry_run is set by the plan run, not in the plan")


def test_unbound_resource_is_named_with_the_environment():
    plan, _ = plan_of("plan: p\nmigrations:" + sessions("a", "@old", "@nowhere"))
    _, _, found = check_plan(plan, ENVS["staging"])
    assert [i.message for i in found] == ["a: resource 'nowhere' is not bound in environment 'staging'"]
    assert found[0].line == 5


def test_cycles_are_named():
    plan, issues = plan_of("plan: p\nmigrations:"
                           + sessions("a", "@old", "@new", "c") + sessions("b", "@new", "@other", "a")
                           + sessions("c", "@other", "@x", "b") + sessions("d", "@old", "@y", "d2")
                           + sessions("d2", "@old", "@z", "d"))
    assert issues == []
    _, _, found = check_plan(plan, None)
    cycles = [i.message for i in found if i.kind == "cycle"]
    assert cycles == ["dependency cycle: a → c → b → a (→ reads 'depends on')",
                      "dependency cycle: d → d2 → d (→ reads 'depends on')"]
    with pytest.raises(ValueError):
        levels(plan)


def test_conflict_reported_with_the_suggested_depends_on():
    plan, _ = plan_of("plan: p\nmigrations:" + sessions("a", "@old", "@new") + sessions("b", "@other", "@same_as_new"))
    # logically two names: no conflict seen without an environment
    assert check_plan(plan, None)[2] == []
    _, _, found = check_plan(plan, ENVS["staging"])
    assert len(found) == 1 and found[0].kind == "conflict"
    assert found[0].message == "a and b both touch new = same_as_new (redis://127.0.0.1:6379/1) (at least one writes it) with no order between them"
    assert found[0].hint == "order them: in b set depends_on: [a]"
    assert found[0].line == 7


def test_readers_of_one_source_do_not_conflict_and_ordered_writers_do_not_either():
    plan, _ = plan_of("plan: p\nmigrations:" + sessions("a", "@old", "@new") + sessions("b", "@old", "@other")
                      + sessions("c", "@old", "@new", "a"))
    assert check_plan(plan, ENVS["staging"])[2] == []


def test_parallel_groups_are_topological_levels_in_file_order():
    plan, _ = plan_of("plan: p\nmigrations:"
                      + sessions("third", "@new", "@z", "first, second") + sessions("first", "@old", "@new")
                      + sessions("second", "@other", "@y") + sessions("fourth", "@z", "@w", "third"))
    assert levels(plan) == [["first", "second"], ["third"], ["fourth"]]
    resolved = resolve(plan, ENVS["staging"])
    assert resolved.levels == [["first", "second"], ["third"], ["fourth"]]
    first = next(s for s in resolved.steps if s.id == "first")
    assert first.workflow == "SessionMigration"
    assert first.input == {"source": "sqlite:///tmp/a.db", "target": "redis://127.0.0.1:6379/1"}


def test_per_environment_values_override_params():
    plan, issues = plan_of("""\
        plan: p
        migrations:
          - id: a
            type: sessions
            params: {source: "@old", target: "@new", batch_size: 100}
            environments:
              staging: {batch_size: 20}
        """)
    assert issues == []
    assert resolve(plan, ENVS["staging"]).steps[0].input["batch_size"] == 20
    assert plan.migrations[0].params_for("production")["batch_size"] == 100
