"""Reading the deployment config the fleet runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployment.errors import BadInput
from deployment.pool.config import default_instances, parse_pool_config, read_config_file
from deployment.pool.errors import PoolConfigError

POOLS = {
    "pools": [
        {"name": "default", "pool_size": 3, "adapter_args": ["--adapter", "app.adapters.Mine", "--flag"],
         "adapter_env": {"N": 1}, "worker_profile": "thread"},
        {"name": "other", "adapter_args": ["--adapter=app.Other"]},
    ],
    "session_default_ttl": 120,
    "session_store": {"url": "sqlite:///tmp/x.db", "max_sessions": 50},
}


def test_pools_form() -> None:
    spec = parse_pool_config(POOLS)
    assert (spec.pool_name, spec.pool_size, spec.adapter, spec.adapter_argv) == ("default", 3, "app.adapters.Mine", ["--flag"])
    assert spec.adapter_env == {"N": "1"} and spec.session_ttl == 120
    assert spec.session_store == "sqlite:///tmp/x.db?max_sessions=50"
    assert parse_pool_config(POOLS, "other").adapter == "app.Other"
    assert default_instances(spec) == 3


def test_legacy_single_pool_and_snakepit_wrapper() -> None:
    raw = {"snakepit": {"adapter_module": "Snakepit.Adapters.GRPCPython",
                        "pool_config": {"pool_size": 20, "adapter_args": ["--adapter", "m.C"]},
                        "session_store": "redis://127.0.0.1:6379/1"}}
    spec = parse_pool_config(raw)
    assert spec.adapter == "m.C" and spec.pool_size == 20 and spec.session_store == "redis://127.0.0.1:6379/1"
    assert default_instances(spec) == 8  # bounded


def test_version_is_explicit_or_a_digest() -> None:
    assert parse_pool_config({**POOLS, "config_version": "v7"}).version == "v7"
    a, b = parse_pool_config(POOLS).version, parse_pool_config({**POOLS, "session_default_ttl": 121}).version
    assert a.startswith("sha256:") and a != b


@pytest.mark.parametrize(("raw", "message"), [
    ({"pools": [{"name": "default"}]}, "names no adapter"),
    ({"pools": [{"adapter_args": ["--adapter", "mod:Class"]}]}, "not a dotted Python path"),
    ({"pools": []}, "non-empty list"),
    ({"pools": [{"adapter_args": ["--adapter", "m.C"]}], "session_store": "nowhere"}, "is not a URL"),
    ({"pools": [{"adapter_args": ["--adapter", "m.C"], "pool_size": 0}]}, "positive integer"),
])
def test_bad_configs_name_the_problem(raw: dict, message: str) -> None:
    with pytest.raises(PoolConfigError, match=message):
        parse_pool_config(raw)


def test_files_in_three_formats(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps(POOLS))
    (tmp_path / "c.yaml").write_text("pools:\n  - name: default\n    adapter_args: [--adapter, app.adapters.Mine]\n")
    (tmp_path / "c.toml").write_text('[[pools]]\nname = "default"\nadapter_args = ["--adapter", "app.adapters.Mine"]\n')
    for name in ("c.json", "c.yaml", "c.toml"):
        assert parse_pool_config(read_config_file(tmp_path / name)).adapter == "app.adapters.Mine"
    (tmp_path / "bad.yaml").write_text("pools: [\n")
    with pytest.raises(BadInput, match=r"bad.yaml:2:1"):
        read_config_file(tmp_path / "bad.yaml")
    with pytest.raises(PoolConfigError, match="cannot read config"):
        read_config_file(tmp_path / "missing.json")


def test_an_elixir_config_runs_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "config.exs").write_text(
        'import Config\n# the application config\n'
        'config :snakepit,\n  pools: [\n'
        '    %{name: :default, worker_profile: :process, pool_size: System.schedulers_online() * 2,\n'
        '      adapter_module: Snakepit.Adapters.GRPCPython, adapter_args: ["--adapter", "my_app.Adapter"]}\n'
        '  ],\n  session_default_ttl: 900,\n  session_store: %{max_sessions: 250, strict_mode: false}\n')
    spec = parse_pool_config(read_config_file(tmp_path / "config.exs"))
    assert (spec.pool_name, spec.adapter, spec.pool_size, spec.session_ttl) == ("default", "my_app.Adapter", None, 900)
    assert (spec.session_store, spec.max_sessions) == (None, 250)  # upstream's map: the quota, no URL
    (tmp_path / "env.exs").write_text(
        'import Config\nconfig :snakepit, pools: [%{name: :default, adapter_args: ["--adapter", "m.C"], '
        'adapter_env: %{"HOME_DIR" => System.get_env("HOME")}}]\n')
    with pytest.raises(PoolConfigError, match="'adapter_env' is an expression"):
        parse_pool_config(read_config_file(tmp_path / "env.exs"))
