"""``snakepit-migrate config check|migrate --dry-run``: exit codes, one JSON object, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.deployment.config.config_corpus import CORPUS, snapshot

from client.cli import main


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_valid_exits_0_with_version_and_reasons(capsys) -> None:
    code, out, _ = cli(capsys, "config", "check", str(CORPUS / "v0_5"))
    assert code == 0
    assert "version 0.5 (detected)" in out and "grpc_config" in out and "valid:" in out


def test_check_invalid_exits_1_and_locates_errors(capsys) -> None:
    code, out, _ = cli(capsys, "config", "check", str(CORPUS / "broken" / "typos.exs"))
    assert code == 1
    assert "typos.exs:5:3: error: log_level: not an allowed value (got :verbose)" in out
    assert "did you mean pool_config?" in out and "allowed: :process, :thread" in out


def test_check_unreadable_exits_2_without_traceback(capsys) -> None:
    code, out, err = cli(capsys, "config", "check", str(CORPUS / "broken" / "unclosed.exs"))
    assert code == 2 and out == ""
    assert "unclosed.exs:6:1" in err and "Traceback" not in err
    code, _, err = cli(capsys, "config", "check", "/no/such/config")
    assert code == 2 and "no such file" in err


def test_check_json_is_exactly_one_object(capsys) -> None:
    code, out, _ = cli(capsys, "config", "check", str(CORPUS / "broken" / "typos.exs"), "--json")
    data = json.loads(out)
    assert code == 1 and data["valid"] is False and data["detected_version"] == "0.6"
    assert {e["key"] for e in data["errors"]} == {"log_level", "pools[0].worker_profile"}
    assert data["warnings"][0]["suggestion"] == "did you mean pool_config?"
    code, out, _ = cli(capsys, "config", "check", str(CORPUS / "broken" / "unclosed.exs"), "--json")
    assert code == 2 and json.loads(out)["type"] == "ConfigParseError"


def test_check_as_another_version(capsys) -> None:
    code, out, _ = cli(capsys, "config", "check", str(CORPUS / "v0_3"), "--version", "0.8")
    assert code == 1 and "GenericPythonV2 does not exist from 0.4" in out


def test_dry_run_prints_diff_and_changes_and_writes_nothing(capsys, corpus) -> None:
    folder = corpus("v0_3")
    before = snapshot(folder)
    code, out, _ = cli(capsys, "config", "migrate", str(folder), "--to", "0.10", "--dry-run")
    assert code == 0
    assert "-  wire_protocol: :msgpack," in out and "+  pools: [" in out
    assert "removed wire_protocol" in out and "renamed cleanup_retry_interval -> cleanup_retry_interval_ms" in out
    assert "finding(s) need a person's review" in out and "dry run: nothing written" in out
    assert snapshot(folder) == before


def test_dry_run_json(capsys, corpus) -> None:
    folder = corpus("v0_8")
    code, out, _ = cli(capsys, "config", "migrate", str(folder), "--to", "0.10", "--dry-run", "--json")
    data = json.loads(out)
    assert code == 0 and data["status"] == "dry_run"
    assert (data["from_version"], data["to_version"]) == ("0.8", "0.10")
    assert [(c["kind"], c["key"], c["to"]) for c in data["changes"]] == [("moved", "grpc_port", "grpc_listener.mode")]
    assert "+  grpc_listener: %{mode: :internal}" in data["diff"]


def test_migrate_with_findings_refuses_exit_2_and_writes_nothing(capsys, corpus) -> None:
    folder = corpus("v0_3")
    before = snapshot(folder)
    code, out, err = cli(capsys, "config", "migrate", str(folder), "--to", "0.6", "--json")
    assert code == 2 and json.loads(out)["type"] == "FindingsNotAccepted"
    assert "--accept-findings" in err
    assert snapshot(folder) == before


def test_lossy_down_conversion_refuses(capsys, corpus) -> None:
    folder = corpus("v0_13")
    before = snapshot(folder)
    code, _, err = cli(capsys, "config", "migrate", str(folder), "--to", "0.10")
    assert code == 2 and "instance_token" in err and "would lose" in err
    assert snapshot(folder) == before


def test_already_at_target_is_unchanged(capsys, corpus) -> None:
    folder = corpus("v0_10")
    code, out, _ = cli(capsys, "config", "migrate", str(folder), "--to", "0.10", "--json")
    assert code == 0 and json.loads(out)["status"] == "unchanged"


@pytest.mark.parametrize("version", ["1.0", "zero"])
def test_unknown_target_version_is_bad_input(capsys, version: str) -> None:
    code, _, err = cli(capsys, "config", "migrate", str(CORPUS / "v0_5"), "--to", version, "--dry-run")
    assert code == 2 and "0.3, 0.5, 0.6" in err


def test_missing_to_is_a_usage_error(capsys) -> None:
    code, _, _ = cli(capsys, "config", "migrate", str(CORPUS / "v0_5"))
    assert code == 2


def test_relative_paths_work(capsys, corpus, monkeypatch) -> None:
    folder = corpus("v0_1")
    monkeypatch.chdir(folder.parent)
    code, out, _ = cli(capsys, "config", "check", Path(folder.name).as_posix() + "/config.exs", "--json")
    assert code == 0 and json.loads(out)["detected_version"] == "0.3"


def test_refusal_json_carries_the_findings_to_review(capsys, corpus) -> None:
    folder = corpus("v0_6")
    code, out, _ = cli(capsys, "config", "migrate", str(folder), "--to", "0.7", "--json")
    data = json.loads(out)
    assert code == 2 and data["status"] == "refused" and data["migration_id"] is None
    assert [f["key"] for f in data["findings"]] == ["python_runtime.strategy"]
    assert data["findings"][0]["line"] == 33


def test_an_environment_file_alone_is_read_on_top_of_its_config_exs(capsys, corpus) -> None:
    folder = corpus("v0_3")
    code, out, _ = cli(capsys, "config", "migrate", str(folder / "dev.exs"), "--to", "0.6", "--dry-run", "--json")
    data = json.loads(out)
    assert code == 0 and data["from_version"] == "0.3" and data["files"] == [str(folder / "dev.exs")]
    assert "adapter_module: Snakepit.Adapters.GRPCPython" in data["diff"] and "log_level" not in data["diff"]
    assert not data["findings"]
