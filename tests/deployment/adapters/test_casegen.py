"""Inputs generated from parameter annotations (read as text, never evaluated)."""

from __future__ import annotations

import json

from deployment.adapters.casegen import generate_cases, observed_annotation, with_observed_types
from deployment.adapters.model import Param


def test_generated_inputs_follow_the_annotations():
    cases = generate_cases([Param("values", "list[float]"), Param("n", "Optional[int]", None, False)], 25)
    assert 10 <= len(cases) <= 25
    assert all(isinstance(v, float) for c in cases for v in c["values"])
    assert any("n" not in c for c in cases) and any(c.get("n") is None for c in cases if "n" in c)
    assert any(isinstance(c.get("n"), int) for c in cases)
    assert len({json.dumps(c, sort_keys=True) for c in cases}) == len(cases)  # distinct


def test_generation_is_repeatable():
    params = [Param("text", "str"), Param("flag", "bool | None")]
    assert generate_cases(params, 10) == generate_cases(params, 10)


def test_any_and_mappings_get_json_values():
    cases = generate_cases([Param("payload", "Dict[str, Any]"), Param("extra", "dict[str, int]", None, False)], 15)
    assert cases and all(isinstance(c["payload"], dict) for c in cases)
    json.dumps(cases, allow_nan=False)
    assert all(isinstance(v, int) for c in cases for v in c.get("extra", {}).values())


def test_unreadable_types():
    # A required parameter nobody can generate: no cases at all (the check then needs samples).
    assert generate_cases([Param("model", "sklearn.Pipeline"), Param("x", "int")], 5) == []
    assert generate_cases([Param("x", None)], 5) == []
    assert generate_cases([Param("x", "__import__('os').system('x')")], 5) == []
    # An optional one is left out; an unannotated optional follows its default's type.
    cases = generate_cases([Param("x", "int"), Param("model", "Pipeline", None, False), Param("k", None, 3, False)], 10)
    assert cases and all("model" not in c for c in cases) and any(isinstance(c.get("k"), int) for c in cases)


def test_types_observed_in_samples_for_unannotated_parameters():
    assert observed_annotation([1, 2.5, -3]) == "float"
    assert observed_annotation([1, 2]) == "int"
    assert observed_annotation(["a", None]) == "Optional[str]"
    assert observed_annotation([[1, 2], [3.5]]) == "list[float]"
    assert observed_annotation([{"a": 1}]) == "Dict[str, Any]"
    assert observed_annotation([1, "a"]) is None  # callers disagree: no guess
    params = with_observed_types([Param("x"), Param("label", None, "a", False), Param("n", "int")],
                                 [{"x": 2.0, "label": "p"}, {"x": -1}])
    assert [(p.name, p.annotation) for p in params] == [("x", "float"), ("label", "str"), ("n", "int")]
    cases = generate_cases(params, 10)
    assert cases and all(isinstance(c["x"], float) for c in cases)
