"""A config directory migrates as one unit: environment files keep what they combined with in the base file."""

from __future__ import annotations

from deployment.config.exs import deep_merge
from deployment.config.plan import load_unit, plan_unit, primary_name
from deployment.config.values import same

BASE = b"""import Config
config :snakepit,
  adapter_module: Snakepit.Adapters.GRPCPython,
  pool_config: %{pool_size: 8, adapter_args: ["--adapter", "app.A"]},
  grpc_port: 50_051,
  grpc_host: "localhost"
import_config "#{config_env()}.exs"
"""


def _effective(files: list[tuple[str, bytes]], env: str) -> dict:
    docs = {d.path: d.config() for d in load_unit(files)}
    out: dict = {}
    for name in ("config/config.exs", f"config/{env}.exs"):
        for k, v in docs.get(name, {}).items():
            out[k] = deep_merge(out[k], v) if k in out else v
    return out


def test_env_file_pool_keeps_the_base_adapter_and_env_listener_keeps_the_base_port() -> None:
    files = [
        ("config/config.exs", BASE),
        ("config/prod.exs", b'import Config\nconfig :snakepit,\n  pool_config: %{pool_size: 32},\n  grpc_host: System.get_env("HOST")\n'),
        ("config/test.exs", b"import Config\nconfig :snakepit, adapter_module: MyApp.FakeAdapter\n"),
    ]
    plan = plan_unit(load_unit(files), "0.10")
    assert plan.valid and not plan.findings, [f.text() for f in plan.findings]
    after = [(f.path, f.after) for f in plan.files]
    prod = _effective(after, "prod")
    assert prod["pools"] == [{"name": "default", "worker_profile": "process", "pool_size": 32, "adapter_module": "Snakepit.Adapters.GRPCPython"}]
    assert prod["grpc_listener"]["port"] == 50051 and prod["grpc_listener"]["host"].source == 'System.get_env("HOST")'
    test = _effective(after, "test")
    assert test["pools"][0]["adapter_module"] == "MyApp.FakeAdapter"
    assert test["pools"][0]["pool_size"] == 8 and test["pools"][0]["adapter_args"] == ["--adapter", "app.A"]
    assert same(_effective(after, "dev"), _effective(after, "dev"))


def test_settings_split_over_calls_of_one_file_are_a_finding() -> None:
    files = [("config/config.exs", b"import Config\nconfig :snakepit, adapter_module: Snakepit.Adapters.GRPCPython\nconfig :snakepit, pool_config: %{pool_size: 2}\n")]
    plan = plan_unit(load_unit(files), "0.6")
    assert any("split over several config calls" in f.message for f in plan.findings)


def test_from_overrides_detection() -> None:
    files = [("config/config.exs", b"import Config\nconfig :snakepit, pool_config: %{pool_size: 2}\n")]
    assert plan_unit(load_unit(files), "0.8").from_version == "0.3"
    plan = plan_unit(load_unit(files), "0.8", "0.7")
    assert plan.from_version == "0.7"
    assert [(c.kind, c.key) for c in plan.changes] == [("added", "log_level")]  # 0.7 -> 0.8 only; the pool stays legacy


def test_primary_file_of_a_unit() -> None:
    assert primary_name(["c/config.exs", "c/prod.exs"]) == "c/config.exs"
    assert primary_name(["snakepit.json"]) == "snakepit.json"
    assert primary_name(["c/prod.exs"]) is None
    assert primary_name(["a.json", "b.yaml"]) is None


def test_rollback_by_version_gives_back_the_same_settings() -> None:
    original = [("config/config.exs", BASE.replace(b"  grpc_port", b"  cleanup_retry_interval: 250,\n  grpc_port"))]
    up = plan_unit(load_unit(original), "0.13")
    assert up.valid and up.changed
    down = plan_unit(load_unit([(f.path, f.after) for f in up.files]), "0.5", "0.13")
    assert not down.lossy and down.valid, [f.text() for f in down.lossy]
    (before,) = load_unit(original)
    (after,) = load_unit([(f.path, f.after) for f in down.files])
    assert same(after.config(), before.config())
    assert b"import_config" in down.files[0].after


def test_a_call_whose_settings_are_an_expression_is_kept_and_reported() -> None:
    source = b"import Config\nconfig :snakepit, MyApp.Settings.snakepit()\nconfig :snakepit, wire_protocol: :json\n"
    plan = plan_unit(load_unit([("config/config.exs", source)]), "0.5")
    (f,) = plan.files
    assert b"config :snakepit, MyApp.Settings.snakepit()\n" in f.after and b"wire_protocol" not in f.after
    assert any("are an expression" in x.message and x.line == 2 for x in plan.findings)
