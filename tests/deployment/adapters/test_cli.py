"""``snakepit-migrate adapter analyze|verify``: output, files written and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from client.cli import main

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "adapters"


def flat(text: str) -> str:
    """Undo the console's line wrapping."""
    return " ".join(text.split())


def test_analyze_json_is_one_object_with_report_and_proposal(capsys):
    assert main(["adapter", "analyze", str(FIXTURES / "if_chain_adapter.py"), "--json"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert doc["report"]["summary"] == {"adapters": 1, "tools": 5, "migratable": 2, "custom": 3}
    tools = {t["name"]: t for t in doc["report"]["adapters"][0]["tools"]}
    assert tools["add"]["mapping"]["target"] == "operator.add"
    assert tools["whoami"]["reasons"][0]["category"] == "session_context"
    assert tools["whoami"]["reasons"][0]["line"] == 18
    assert set(doc["proposed_config"]["tool_aliases"]) == {"add", "power"}


def test_analyze_text_report(capsys):
    assert main(["adapter", "analyze", str(FIXTURES / "command_handler_v01.py")]) == 0
    text = capsys.readouterr().out
    assert "sqrt(x)  [register_command]  MIGRATES -> {'status': 'ok', 'result': math.sqrt(x)}" in text
    assert "pickle: calls pickle.load (line 41: model = pickle.load(fh))" in text
    assert "1 adapter(s), 7 tool(s): 3 migrate, 4 stay custom" in text


def test_bad_source_exits_2_with_a_clear_message(tmp_path, capsys):
    bad = tmp_path / "broken.py"
    bad.write_text("class Adapter(BaseAdapter:\n")
    assert main(["adapter", "analyze", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "broken.py, line 1: syntax error" in flat(captured.err) and "Traceback" not in captured.err
    assert main(["adapter", "analyze", str(tmp_path / "nope")]) == 2
    assert "no such file or directory" in flat(capsys.readouterr().err)


def test_write_config_then_verify_it(tmp_path, capsys):
    config = tmp_path / "generic.json"
    assert main(["adapter", "analyze", str(FIXTURES / "if_chain_adapter.py"), "--write-config", str(config)]) == 0
    capsys.readouterr()
    assert set(json.loads(config.read_text())["tool_aliases"]) == {"add", "power"}
    verified = tmp_path / "verified.json"
    args = ["adapter", "verify", str(FIXTURES / "if_chain_adapter.py"), "--generic", str(config),
            "--examples", "10", "--write-config", str(verified), "--json"]
    # ``add`` reads unannotated arguments: without samples nothing proves it, so it stays custom.
    assert main(args) == 1
    doc = json.loads(capsys.readouterr().out)
    assert {t["tool"]: t["status"] for t in doc["tools"]} == {"add": "no_cases", "power": "equivalent"}
    assert set(json.loads(verified.read_text())["tool_aliases"]) == {"power"}
    samples = tmp_path / "samples.jsonl"
    samples.write_text('{"tool": "add", "arguments": {"a": 1, "b": 2.5}}\n{"tool": "add", "arguments": {"a": "x", "b": 1}}\n')
    assert main([*args, "--samples", str(samples)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and {t["tool"]: (t["status"], t["cases"]) for t in doc["tools"]} == {
        "add": ("equivalent", 2), "power": ("equivalent", 10)}
    assert set(json.loads(verified.read_text())["tool_aliases"]) == {"add", "power"}


def test_verify_mismatch_exit_1_and_accepting_it(tmp_path, capsys):
    assert main(["adapter", "analyze", str(FIXTURES / "if_chain_adapter.py"), "--json"]) == 0
    config = json.loads(capsys.readouterr().out)["proposed_config"]
    config["tool_aliases"]["add"]["target"] = "operator.sub"
    config["libraries"] = [*config["libraries"], {"name": "op2", "module": "operator", "function_filters": ["sub"]}]
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps(config))
    samples = tmp_path / "samples.jsonl"
    samples.write_text('{"tool": "add", "arguments": {"a": 0, "b": 0}}\n{"tool": "add", "arguments": {"a": 2, "b": 3}}\n')
    args = ["adapter", "verify", str(FIXTURES / "if_chain_adapter.py"), "--generic", str(path),
            "--samples", str(samples), "--examples", "5"]
    assert main(args) == 1
    text = capsys.readouterr().out
    # The samples also type the unannotated a and b (ints), so inputs are generated as well.
    assert "add: MISMATCH -> custom  1/6 matched (samples 2, generated 4)" in text
    assert 'first mismatch: arguments {"a": 2, "b": 3}' in text
    assert "custom:  5" in text and "generic: -1" in text
    assert main([*args, "--accept-mismatch", "add"]) == 0
    assert "add: ACCEPTED -> generic" in capsys.readouterr().out
    assert main([*args, "--accept-mismatch", "nosuch"]) == 2
    assert "--accept-mismatch nosuch" in flat(capsys.readouterr().err)


def test_verify_bad_config_and_samples_exit_2(tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text('{"libraries": {}}')
    assert main(["adapter", "verify", str(FIXTURES / "if_chain_adapter.py"), "--generic", str(config)]) == 2
    assert "'libraries' must be a list" in flat(capsys.readouterr().err)
    config.write_text('{"libraries": []}')
    samples = tmp_path / "s.jsonl"
    samples.write_text("{oops\n")
    assert main(["adapter", "verify", str(FIXTURES / "if_chain_adapter.py"), "--generic", str(config),
                 "--samples", str(samples)]) == 2
    assert "s.jsonl, line 1: not valid JSON" in flat(capsys.readouterr().err)


def test_verify_with_recorded_traffic(tmp_path, capsys):
    config = tmp_path / "generic.json"
    assert main(["adapter", "analyze", str(FIXTURES / "command_handler_v01.py"), "--write-config", str(config)]) == 0
    capsys.readouterr()
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("\n".join(json.dumps(r) for r in [
        {"tool": "sqrt", "arguments": {"x": 9}, "result": {"status": "ok", "result": 3.0}},
        {"tool": "mean", "arguments": {"values": [1, 2, 4]}, "result": {"status": "ok", "result": 2.3333333333333335}},
        {"tool": "hypot", "arguments": {"x": 3, "y": 4}, "result": {"status": "ok", "result": 5.0}},
    ]) + "\n")
    # The 0.1-era adapter imports snakepit_bridge.core, which this environment does not have:
    # the custom side cannot load, and every tool stays custom with that reason.
    code = main(["adapter", "verify", str(FIXTURES / "command_handler_v01.py"), "--generic", str(config),
                 "--traffic", str(traffic), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    for t in doc["tools"]:
        assert (t["status"], t["decision"], t["sources"]["traffic"]) == ("error", "custom", 1)
        assert "custom adapter: cannot load: ModuleNotFoundError" in t["detail"] and "snakepit_bridge.core" in t["detail"]


def test_verify_runs_the_custom_side_under_the_given_interpreter(tmp_path, capsys):
    import sys

    config = tmp_path / "generic.json"
    assert main(["adapter", "analyze", str(FIXTURES / "threadsafe_adapter.py"), "--write-config", str(config)]) == 0
    capsys.readouterr()
    args = ["adapter", "verify", str(FIXTURES / "threadsafe_adapter.py"), "--generic", str(config), "--examples", "5"]
    assert main([*args, "--python", sys.executable]) == 0
    assert "distance: EQUIVALENT -> generic  5/5 matched" in capsys.readouterr().out
    assert main([*args, "--python", str(tmp_path / "no-python")]) == 2
    assert "no such interpreter" in flat(capsys.readouterr().err)


def test_verify_takes_the_analyze_json_output_as_it_is(tmp_path, capsys):
    assert main(["adapter", "analyze", str(FIXTURES / "threadsafe_adapter.py"), "--json"]) == 0
    whole = tmp_path / "analysis.json"
    whole.write_text(capsys.readouterr().out)
    assert main(["adapter", "verify", str(FIXTURES / "threadsafe_adapter.py"), "--generic", str(whole),
                 "--examples", "3"]) == 0
    assert "distance: EQUIVALENT -> generic  3/3 matched" in capsys.readouterr().out
