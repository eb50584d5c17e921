"""Equivalence: custom and generic side by side in sandboxes, mismatches found and kept custom."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from deployment.adapters.analyzer import analyze_path
from deployment.adapters.equivalence import (
    Limits,
    Tolerance,
    read_cases,
    read_records,
    replay,
    same,
    same_outcome,
    verify,
)
from deployment.adapters.generic import GenericAdapter
from deployment.adapters.errors import SamplesParseError
from deployment.adapters.proposal import propose_config

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "adapters"
FAST = Limits(timeout=20)


@pytest.fixture(scope="module")
def math_tools():
    report = analyze_path(FIXTURES / "base_adapter_tools.py")
    return report, propose_config(report)


def test_proposed_mapping_is_equivalent_for_every_migratable_tool(math_tools):
    report, config = math_tools
    result = verify(report, config, examples=15, limits=FAST)
    assert result.ok
    assert {v.tool: v.status for v in result.tools} == {
        t: "equivalent" for t in ("square_root", "mean", "round_to", "title", "log_base", "fsum", "gcd")
    }
    for v in result.tools:
        assert v.cases == v.matches == v.sources["generated"] > 0
    assert result.config["tool_aliases"].keys() == config["tool_aliases"].keys()


def test_wrong_mapping_is_detected_and_keeps_the_tool_custom(math_tools):
    report, config = math_tools
    wrong = copy.deepcopy(config)
    wrong["tool_aliases"]["mean"]["target"] = "statistics.median"
    next(l for l in wrong["libraries"] if l["name"] == "statistics")["function_filters"].append("median")
    result = verify(report, wrong, examples=15, limits=FAST)
    assert not result.ok
    mean = result.verdict("mean")
    assert (mean.status, mean.decision) == ("mismatch", "custom")
    assert 0 < mean.matches < mean.cases
    first = mean.first_mismatch
    assert first["arguments"] == {"values": []}
    assert first["custom"]["error"] == {"type": "statistics.StatisticsError", "message": "mean requires at least one data point"}
    assert first["generic"]["error"]["message"] == "no median for empty data"
    # The other tools still migrate: the verified configuration is mixed.
    assert "mean" not in result.config["tool_aliases"]
    assert result.config["custom_tools"]["mean"]["reasons"] == ["equivalence:mismatch"]
    assert "square_root" in result.config["tool_aliases"]
    only_mean = {**wrong, "tool_aliases": {"mean": wrong["tool_aliases"]["mean"]}}
    accepted = verify(report, only_mean, examples=15, accept={"mean"}, limits=FAST)
    assert accepted.verdict("mean").status == "accepted" and "mean" in accepted.config["tool_aliases"]
    # The other migratable tools are not in this config: they are reported, and stay custom.
    assert accepted.ok and accepted.verdict("gcd").status == "not_in_config"


def test_command_handler_with_samples_and_recorded_traffic(tmp_path):
    report = analyze_path(FIXTURES / "vendored_commands.py")
    config = propose_config(report)
    assert set(config["tool_aliases"]) == {"sqrt", "median"}
    samples = tmp_path / "samples.jsonl"
    samples.write_text('{"tool": "sqrt", "arguments": {"x": 2.0}}\n\n{"tool": "sqrt", "arguments": {"x": -1}}\n')
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text(
        json.dumps({"tool": "median", "arguments": {"values": [3, 1, 2]}, "result": {"status": "ok", "result": 2}}) + "\n"
        + json.dumps({"tool": "median", "arguments": {"values": [4, 1]}, "result": {"status": "ok", "result": 2.5}}) + "\n"
        + json.dumps({"tool": "sqrt", "arguments": {"x": 2.0}, "result": {"status": "ok", "result": 1.4142135623730951}}) + "\n"
    )
    result = verify(report, config, samples=read_cases(samples), traffic=read_records(traffic), examples=10, limits=FAST)
    sqrt, median = result.verdict("sqrt"), result.verdict("median")
    # Unannotated handler args are typed from what samples and traffic sent (x: float, values: list[int]),
    # then generated; the duplicate traffic case is not run twice.
    assert sqrt.sources == {"samples": 2, "traffic": 0, "generated": 10}
    assert (sqrt.status, sqrt.cases, sqrt.matches) == ("equivalent", 12, 12)
    assert (median.status, median.matches) == ("equivalent", median.cases) and median.sources["traffic"] == 2
    # Recorded production answers are reproduced by the custom adapter run here.
    assert (median.recorded, sqrt.recorded) == ({"cases": 2, "matches": 2}, {"cases": 1, "matches": 1})
    assert result.ok
    # Without any input there is nothing to prove: the tool stays custom.
    bare = verify(report, config, examples=10, limits=FAST)
    assert {v.tool: v.status for v in bare.tools} == {"sqrt": "no_cases", "median": "no_cases"}
    assert not bare.ok and bare.config["tool_aliases"] == {}


def test_sandbox_limits_and_isolation():
    report = analyze_path(FIXTURES / "sandbox_probe.py")
    assert not any(t.migratable for t in report.adapters[0].tools)  # aliased by hand below

    def alias(target, param):
        return {"target": target, "args": [{"param": param}], "params": [{"name": param, "required": True}]}

    config = {
        "libraries": [{"name": "builtins", "module": "builtins", "function_filters": ["abs"]},
                      {"name": "math", "module": "math", "function_filters": ["sqrt"]}],
        "tool_aliases": {"spin": alias("builtins.abs", "x"), "hog": alias("builtins.abs", "n"),
                         "chatty": alias("math.sqrt", "x")},
    }
    cases = {"spin": [{"x": 1}], "hog": [{"n": 1000}, {"n": 3 * 1024**3}], "chatty": [{"x": 4.0}]}
    result = verify(report, config, samples=cases, examples=0, limits=Limits(timeout=4, memory_mb=512))
    spin, hog, chatty = result.verdict("spin"), result.verdict("hog"), result.verdict("chatty")
    assert spin.status == "error" and spin.detail.startswith("custom adapter: ")
    assert ("timed out" in spin.detail) or ("signal" in spin.detail)
    # 3 GiB cannot be allocated under a 512 MiB address-space limit.
    assert hog.status == "mismatch" and hog.matches == 1
    assert hog.first_mismatch["custom"] == {"ok": False, "error": {"type": "MemoryError", "message": ""}}
    # Printing does not corrupt the answer; equal results still do not make an I/O tool migratable.
    assert chatty.status == "not_migratable" and chatty.matches == 1 and "io (line 20)" in chatty.detail


def test_comparison_rules():
    tol = Tolerance(rel=1e-9, abs=0.0)
    assert same({"a": [1.0, "x"]}, {"a": [1.0 + 1e-12, "x"]}, tol)
    assert not same(1.0, 1.0 + 1e-6, tol)
    assert not same(2, 2.0, tol) and not same(True, 1, tol) and not same([1], [1, 1], tol)
    assert not same({"a": 1}, {"a": 1, "b": 2}, tol)
    err = {"ok": False, "error": {"type": "ValueError", "message": "math domain error"}}
    assert same_outcome(err, copy.deepcopy(err), tol)
    assert not same_outcome(err, {"ok": False, "error": {"type": "ValueError", "message": "other"}}, tol)
    assert not same_outcome(err, {"ok": False, "error": {"type": "TypeError", "message": "math domain error"}}, tol)
    assert not same_outcome(err, {"ok": True, "value": None}, tol)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("not json\n", "line 1: not valid JSON"),
        ('{"tool": "x"}\n[1]\n', "line 2: not a JSON object"),
        ('{"arguments": {}}\n', "missing 'tool'"),
        ('{"tool": "x", "arguments": [1]}\n', "'arguments' must be a JSON object"),
        ('{"tool": "x", "arguments": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}\n", "line 1: JSON nested too deeply"),
    ],
)
def test_bad_samples_files(tmp_path, text, problem):
    path = tmp_path / "s.jsonl"
    path.write_text(text)
    with pytest.raises(SamplesParseError) as info:
        read_cases(path)
    assert problem in str(info.value) and info.value.exit_code == 2


def test_adapter_package_with_handler_objects():
    report = analyze_path(FIXTURES / "handlers_pkg")
    config = propose_config(report)
    assert set(config["tool_aliases"]) == {"median"}
    result = verify(report, config, examples=10, limits=FAST)
    median = result.verdict("median")
    assert (median.status, median.cases, median.matches) == ("equivalent", 10, 10)


def test_tools_calling_the_adapters_own_package():
    report = analyze_path(FIXTURES / "local_lib_pkg")
    config = propose_config(report)
    assert {n: a["target"] for n, a in config["tool_aliases"].items()} == {
        "triple": "local_lib_pkg.mathlib.triple", "half": "local_lib_pkg.mathlib.half"}
    [lib] = config["libraries"]
    assert (lib["pip_package"], lib["local"], lib["function_filters"]) == (None, True, ["mathlib.half", "mathlib.triple"])
    assert lib["security_config"]["allowed_modules"] == ["local_lib_pkg.mathlib"]
    result = verify(report, config, examples=10, limits=FAST)
    assert result.ok and {v.tool: v.status for v in result.tools} == {"triple": "equivalent", "half": "equivalent"}


def test_replaying_recorded_calls_against_a_running_adapter(tmp_path, math_tools):
    _, config = math_tools
    traffic = tmp_path / "traffic.jsonl"
    lines = [
        {"tool": "square_root", "arguments": {"x": 16.0}, "result": 4.0},
        {"tool": "square_root", "arguments": {"x": 2.0}, "result": 1.4142135623730951},
        {"tool": "gcd", "arguments": {"a": 12, "b": 18}, "result": 6},
        {"tool": "gcd", "arguments": {"a": 7, "b": 21}, "result": 1},  # recorded from a different implementation
        {"tool": "mean", "arguments": {"values": [1, 2]}},  # no result: not replayed
        {"tool": "cached_factorial", "arguments": {"n": 3}, "result": 6},  # stays custom: served by the custom adapter
        {"tool": "_clamp", "arguments": {"x": -1}, "result": 0},  # private: no longer reachable at all
    ]
    traffic.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    records = read_records(traffic)
    assert [r.has_result for r in records] == [True, True, True, True, False, True, True]
    adapter = GenericAdapter(config)
    verdicts = {v.tool: v for v in replay(records, lambda tool, args: adapter.execute_tool(tool, args, None))}
    assert set(verdicts) == {"square_root", "gcd", "cached_factorial", "_clamp"}
    assert (verdicts["square_root"].status, verdicts["square_root"].matches) == ("equivalent", 2)
    gcd = verdicts["gcd"]
    assert (gcd.status, gcd.cases, gcd.matches) == ("mismatch", 2, 1)
    assert gcd.first_mismatch == {"arguments": {"a": 7, "b": 21}, "recorded": 1, "replayed": {"ok": True, "value": 7}}
    assert (verdicts["cached_factorial"].status, verdicts["cached_factorial"].matches) == ("equivalent", 1)
    assert verdicts["_clamp"].first_mismatch["replayed"]["error"]["type"] == "UnknownTool"


def test_recorded_answers_the_check_cannot_reproduce_keep_the_tool_custom(tmp_path, math_tools):
    report, config = math_tools
    only = {**config, "tool_aliases": {k: config["tool_aliases"][k] for k in ("square_root", "gcd")}}
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text(
        json.dumps({"tool": "square_root", "arguments": {"x": 4.0}, "result": 2.0000001}) + "\n"  # another libm, say
        + json.dumps({"tool": "gcd", "arguments": {"a": 4, "b": 6}, "result": 2}) + "\n"
    )
    result = verify(report, only, traffic=read_records(traffic), examples=0, limits=FAST)
    root, gcd = result.verdict("square_root"), result.verdict("gcd")
    assert (gcd.status, gcd.recorded) == ("equivalent", {"cases": 1, "matches": 1})
    # Custom and generic agree with each other, but not with production: nothing is proven.
    assert (root.status, root.decision, root.matches, root.cases) == ("not_reproduced", "custom", 1, 1)
    assert root.recorded_mismatch == {"arguments": {"x": 4.0}, "recorded": 2.0000001,
                                      "custom": {"ok": True, "value": 2.0}}
    assert "square_root" not in result.config["tool_aliases"] and not result.ok
    accepted = verify(report, only, traffic=read_records(traffic), examples=0, accept={"square_root"}, limits=FAST)
    assert accepted.ok and accepted.verdict("square_root").status == "accepted"


def test_prefix_dispatched_tools_verify_under_their_public_names():
    report = analyze_path(FIXTURES / "getattr_shapes.py")
    config = propose_config(report)
    assert {"sqrt", "mode", "trunc"} <= set(config["tool_aliases"])
    result = verify(report, config, examples=8, limits=FAST)
    assert {v.tool: v.status for v in result.tools} == {"sqrt": "equivalent", "mode": "equivalent", "trunc": "equivalent"}
