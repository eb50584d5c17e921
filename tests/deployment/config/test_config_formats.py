"""JSON, YAML and TOML forms of the same schema go through the same converters."""

from __future__ import annotations

import json
import tomllib

import pytest
import yaml
from tests.deployment.config.config_corpus import CORPUS

from deployment.config.documents import load_document
from deployment.config.errors import ConfigParseError
from deployment.config.plan import check_unit, load_unit, plan_unit
from deployment.config.source import read_unit

EXPECTED_013 = {
    "pools": [{"name": "default", "worker_profile": "process", "pool_size": 8, "adapter_module": "Snakepit.Adapters.GRPCPython", "adapter_args": ["--adapter", "my_app.Adapter"]}],
    "grpc_listener": {"mode": "external", "host": "localhost", "port": 50051},
    "cleanup_retry_interval_ms": 100,
}


def _after(name: str, target: str = "0.13") -> dict[str, bytes]:
    plan = plan_unit(load_unit(read_unit(CORPUS / "formats")), target)
    assert plan.valid, plan.issues
    return {f.path.rsplit("/", 1)[-1]: f.after for f in plan.files}


def test_json_converts_under_its_snakepit_key_keeping_indentation() -> None:
    after = _after("formats")["snakepit.json"]
    assert json.loads(after) == {"snakepit": EXPECTED_013}
    assert after.startswith(b'{\n    "snakepit": {\n        "pools"')


def test_yaml_converts_and_keeps_its_header_comment() -> None:
    after = _after("formats")["snakepit.yaml"]
    assert after.startswith(b"# fleet config\n")
    data = yaml.safe_load(after)
    assert data["grpc_listener"] == {"mode": "internal"}
    assert data["session_default_ttl"] == 600 and data["session_store"] == {"max_sessions": 100}
    assert data["pools"][0]["pool_size"] == 4


def test_toml_converts_to_tables() -> None:
    data = tomllib.loads(_after("formats")["snakepit.toml"].decode())
    assert data["snakepit"]["pools"][0]["pool_size"] == 6
    assert data["snakepit"]["grpc_listener"] == {"mode": "external", "port": 50051}
    assert data["snakepit"]["pooling_enabled"] is True


def test_formats_round_trip_down_to_0_5() -> None:
    files = [(p, d) for p, d in read_unit(CORPUS / "formats") if not p.endswith(".yaml")]
    up = plan_unit(load_unit(files), "0.10")
    down = plan_unit(load_unit([(f.path, f.after) for f in up.files]), "0.5", "0.10")
    assert not down.lossy and down.valid
    for (path, original), f in zip(files, down.files, strict=True):
        assert load_document(path, f.after).config() == load_document(path, original).config()


def test_down_conversion_names_what_0_5_cannot_hold() -> None:
    up = plan_unit(load_unit([(p, d) for p, d in read_unit(CORPUS / "formats") if p.endswith(".yaml")]), "0.10")
    down = plan_unit(load_unit([(f.path, f.after) for f in up.files]), "0.5", "0.10")
    assert [f.key for f in down.lossy] == ["session_store"]  # log_level: :info added on the way up is the old default


def test_enum_strings_are_fine_outside_elixir() -> None:
    assert check_unit(load_unit([("c.json", b'{"log_level": "info", "pools": [{"name": "a", "worker_profile": "thread"}]}')]), "0.8").valid


@pytest.mark.parametrize(
    ("name", "data", "line"),
    [
        ("bad.json", b'{"a": 1,\n "b": }', 2), ("bad.yaml", b"a: [1, 2\nb: 3\n", 2), ("bad.toml", b"a = 1\nb = \n", 2),
        ("top.json", b"[1, 2]", 1), ("keys.yaml", b"pool_config:\n  1: 2\n", 1),
    ],
)
def test_malformed_files_are_located_parse_errors(name: str, data: bytes, line: int) -> None:
    with pytest.raises(ConfigParseError) as info:
        load_document(name, data)
    assert info.value.line == line and str(info.value).startswith(f"{name}:{line}:")


def test_an_empty_yaml_file_has_no_settings() -> None:
    assert load_document("empty.yaml", b"# nothing yet\n").config() == {}


def test_json_and_yaml_issues_name_line_and_column() -> None:
    report = check_unit(load_unit([("c.json", b'{\n  "snakepit": {\n    "log_level": "loud",\n    "pool_confg": {}\n  }\n}\n')]), "0.8")
    by_key = {i.key: i for i in report.issues}
    assert (by_key["log_level"].line, by_key["log_level"].column) == (3, 5)
    assert (by_key["pool_confg"].line, by_key["pool_confg"].suggestion) == (4, "did you mean pool_config?")
    report = check_unit(load_unit([("c.yaml", b"# top\npools:\n  - name: a\n    worker_profile: proc\n")]), "0.8")
    (issue,) = report.issues
    assert (issue.key, issue.line, issue.column) == ("pools[0].worker_profile", 4, 5)


def test_toml_issues_name_line_and_column() -> None:
    source = b'[snakepit]\nlog_level = "loud"\n\n[[snakepit.pools]]\nname = "a"\n\n[[snakepit.pools]]\nname = "b"\n  worker_profile = "proc"\n'
    report = check_unit(load_unit([("c.toml", source)]), "0.8")
    by_key = {i.key: i for i in report.issues}
    assert (by_key["log_level"].line, by_key["log_level"].column) == (2, 1)
    assert (by_key["pools[1].worker_profile"].line, by_key["pools[1].worker_profile"].column) == (9, 3)
