"""Version detection over the corpus, and validation with locations and suggestions."""

from __future__ import annotations

import pytest
from tests.deployment.config.config_corpus import CORPUS, ERAS

from deployment.config.detect import canonical, detect
from deployment.config.errors import UnknownVersion
from deployment.config.exs import parse_exs
from deployment.config.plan import check_unit, load_unit
from deployment.config.source import read_unit
from deployment.config.validate import validate


@pytest.mark.parametrize(("name", "version"), sorted(ERAS.items()))
def test_corpus_detection(name: str, version: str) -> None:
    report = check_unit(load_unit(read_unit(CORPUS / name)))
    assert report.detection.version == version
    assert report.detection.reasons, "a verdict always says why"


def test_detection_reasons_name_the_evidence() -> None:
    d = detect({"wire_protocol": "json", "pool_config": {"pool_size": 2}})
    assert d.version == "0.3" and any("wire_protocol" in r for r in d.reasons)
    d = detect({"pools": [], "grpc_config": {}})
    assert d.version == "0.6" and d.highest == "0.6"
    assert detect({"grpc_listener": {"mode": "internal"}}).version == "0.10"
    assert detect({"instance_token": "x"}).version == "0.13"


def test_leftover_keys_do_not_pull_the_verdict_down() -> None:
    d = detect({"timeout_profile": "batch", "cleanup_retry_interval": 500})
    assert d.version == "0.8"
    assert d.stale == ["cleanup_retry_interval was renamed in 0.7.6"]


@pytest.mark.parametrize(("given", "supported"), [("0.1", "0.3"), ("0.3.3", "0.3"), ("0.4", "0.5"), ("0.6.11", "0.6"), ("v0.9.1", "0.10"), ("0.12", "0.13")])
def test_release_numbers_map_to_supported_schemas(given: str, supported: str) -> None:
    assert canonical(given) == supported


@pytest.mark.parametrize("bad", ["1.0", "banana", "0.99", ""])
def test_unknown_versions_are_bad_input(bad: str) -> None:
    with pytest.raises(UnknownVersion):
        canonical(bad)


def _issues(source: bytes, version: str):
    exs = parse_exs(source, "config/config.exs")
    return validate(exs.config(), version, file=exs.path, locations=exs.locations())


def test_typo_of_a_known_key_is_a_located_warning_with_did_you_mean() -> None:
    issues = _issues(b"import Config\nconfig :snakepit,\n  pool_confg: %{pool_size: 4}\n", "0.5")
    (typo,) = issues
    assert (typo.severity, typo.key, typo.line, typo.column) == ("warning", "pool_confg", 3, 3)
    assert typo.suggestion == "did you mean pool_config?"
    assert typo.text().startswith("config/config.exs:3:3: warning: pool_confg:")


def test_enum_errors_list_the_allowed_atoms() -> None:
    (issue,) = _issues(b"import Config\nconfig :snakepit, log_level: :verbose\n", "0.8")
    assert issue.severity == "error" and issue.key == "log_level"
    assert issue.suggestion == "allowed: :debug, :info, :warning, :error, :none"
    assert "(got :verbose)" in issue.message and (issue.line, issue.column) == (2, 19)


def test_strings_are_not_atoms_and_keyword_lists_are_not_maps_in_elixir() -> None:
    issues = _issues(b'import Config\nconfig :snakepit, log_level: "info", session_store: [max_sessions: 3], log_categories: %{pool: :debug}\n', "0.8")
    by_key = {i.key: i for i in issues if i.severity == "error"}
    assert "must be an atom" in by_key["log_level"].message
    assert "must be a map" in by_key["session_store"].message
    assert "map form is ignored" in by_key["log_categories"].message


def test_nested_errors_point_into_the_pool() -> None:
    issues = _issues(b"import Config\nconfig :snakepit,\n  pools: [%{worker_profile: :proc, pool_size: \"4\"}]\n", "0.6")
    keys = {i.key: i for i in issues}
    assert keys["pools[0].name"].severity == "error"
    assert keys["pools[0].worker_profile"].suggestion == "allowed: :process, :thread"
    assert keys["pools[0].pool_size"].column == 36


def test_retired_keys_are_warnings_that_say_why_and_unknown_keys_are_kept() -> None:
    issues = _issues(b"import Config\nconfig :snakepit, cleanup_retry_interval: 5, my_own_thing: 1\n", "0.8")
    assert {i.severity for i in issues} == {"warning"}
    retired = next(i for i in issues if i.key == "cleanup_retry_interval")
    assert "renamed cleanup_retry_interval_ms" in retired.suggestion
    assert any(i.key == "my_own_thing" for i in issues)


def test_legacy_adapters_are_errors_after_0_3_and_grpc_before() -> None:
    (issue,) = _issues(b"import Config\nconfig :snakepit, adapter_module: Snakepit.Adapters.GenericPythonV2\n", "0.5")
    assert issue.severity == "error" and "GRPCPython" in issue.suggestion
    (issue,) = _issues(b"import Config\nconfig :snakepit, adapter_module: Snakepit.Adapters.GRPCPython\n", "0.3")
    assert issue.severity == "error"


def test_opaque_expressions_are_accepted_anywhere() -> None:
    assert _issues(b'import Config\nconfig :snakepit, pool_size: String.to_integer(System.get_env("N")), log_level: level()\n', "0.13") == []


def test_0_13_warns_when_the_two_pool_sizes_differ() -> None:
    (issue,) = _issues(b"import Config\nconfig :snakepit, pool_size: 4, pool_config: %{pool_size: 8}\n", "0.13")
    assert issue.severity == "warning" and "top-level pool_size wins" in issue.suggestion
    assert _issues(b"import Config\nconfig :snakepit, pool_size: 4, pool_config: %{pool_size: 8}\n", "0.10") == []


def test_a_key_written_twice_is_a_located_warning() -> None:
    source = b"import Config\nconfig :snakepit,\n  pool_size: 4,\n  pool_config: %{pool_size: 2, pool_size: 3},\n  pool_size: 8\n"
    report = check_unit(load_unit([("config/config.exs", source)]), "0.13")
    twice = [(i.key, i.line, i.column) for i in report.issues if "set twice" in i.message]
    assert twice == [("pool_config.pool_size", 4, 32), ("pool_size", 5, 3)]
