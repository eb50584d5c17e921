"""Hypothesis: a malformed plan or environments file gives issues or PlanUnreadable naming file and line, nothing else.

Inputs: random bytes and text, random YAML documents, a valid plan with one
part replaced by a random value, and a few shapes YAML allows that a plan
must refuse (non-scalar keys, deep nesting, self-referencing aliases).
``FUZZ_EXAMPLES`` sets the number of examples (``make fuzz`` runs many more).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from deployment.plans.errors import PlanUnreadable
from deployment.plans.loader import load_environments, load_plan

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
PATH = "plans/fuzzed.yaml"
VALID_PLAN = {
    "plan": "p", "policy": "rollback",
    "migrations": [
        {"id": "users", "type": "sessions", "params": {"source": "@old", "target": "@new", "batch_size": 500},
         "environments": {"production": {"batch_size": 2000}}, "touches": ["sessions_db"]},
        {"id": "conf", "type": "config", "params": {"path": "@config", "to_version": "0.10"}, "depends_on": ["users"]},
    ],
}  # fmt: skip
VALID_ENVIRONMENTS = {"environments": {"staging": {"resources": {"old": "sqlite:///s.db"}, "throughput": {"sessions": 900}}}}

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12), st.dates())
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)  # fmt: skip
NASTY = [
    b"? [a, b]\n: 1\n",  # a list as a key
    b"plan: p\nmigrations:\n  - id: a\n    type: [sessions]\n",  # a list where a name is expected
    b"plan: p\npolicy: {stop: 1}\nmigrations: [{id: a, type: {x: 1}}]\n",
    b"environments:\n  ? {a: 1}\n  : {resources: {}}\n",
    b"a: &x [*x]\n",  # a list that contains itself
    b"plan: p\nmigrations:\n  - &m {id: a, type: sessions, params: {self: *m}}\n",
    b"[" * 5000 + b"]" * 5000,  # deeper than Python's recursion limit
    b"plan: p\nmigrations: [{id: a, type: sessions, params: {t: !!python/object:os.system x}}]\n",
    b"\xff\xfe\x00p\x00l",
    b"plan: p\nmigrations:\n  - id: a\n    type: sessions\n  - id: a\n    type: sessions\n",
    b"environments: {prod: {resources: {db: ''}, throughput: {x: .nan}}}\n",
]


def check(loader: Any, data: bytes) -> None:
    try:
        _, issues = loader(PATH, data)
    except PlanUnreadable as exc:
        assert str(exc).startswith(PATH), str(exc)
        return
    lines = data.count(b"\n") + 1
    for issue in issues if isinstance(issues, list) else []:
        assert issue.file == PATH and issue.message, issue
        assert isinstance(issue.line, int) and 1 <= issue.line <= lines, issue


def mutated(doc: Any, path: list[Any], value: Any) -> Any:
    """``doc`` with the part at ``path`` (as far as it goes) replaced by ``value``."""
    if not path or not isinstance(doc, (dict, list)):
        return value
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    keys = list(copy) if isinstance(copy, dict) else list(range(len(copy)))
    if not keys:
        return value
    key = keys[path[0] % len(keys)]
    copy[key] = mutated(copy[key], path[1:], value)
    return copy


@pytest.mark.parametrize("data", NASTY)
@pytest.mark.parametrize("loader", [load_plan, load_environments])
def test_shapes_yaml_allows_but_a_plan_refuses(loader, data):
    check(loader, data)


@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_random_bytes(data):
    check(load_plan, data)
    check(load_environments, data)


@settings(max_examples=EXAMPLES, deadline=None)
@given(doc=values)
def test_random_yaml_documents(doc):
    data = yaml.safe_dump(doc, allow_unicode=True).encode()
    check(load_plan, data)
    check(load_environments, data)


@settings(max_examples=EXAMPLES, deadline=None)
@given(path=st.lists(st.integers(0, 9), max_size=5), value=values, flow=st.booleans())
def test_a_valid_file_with_one_part_replaced(path, value, flow):
    for loader, doc in ((load_plan, VALID_PLAN), (load_environments, VALID_ENVIRONMENTS)):
        check(loader, yaml.safe_dump(mutated(doc, path, value), allow_unicode=True, default_flow_style=flow).encode())


def test_the_valid_files_load_without_issues():
    """The seeds the fuzzer mutates are themselves correct, so a mutation is what any issue comes from."""
    assert load_plan(PATH, yaml.safe_dump(VALID_PLAN).encode())[1] == []
    assert load_environments(PATH, yaml.safe_dump(VALID_ENVIRONMENTS).encode())[1] == []
