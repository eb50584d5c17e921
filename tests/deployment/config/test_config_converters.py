"""The twelve conversions, one test each, plus purity, chaining and lossless down-conversion."""

from __future__ import annotations

import copy

import pytest

from deployment.config import converters as cv
from deployment.config.converters import Context
from deployment.config.steps import convert, plan
from deployment.config.validate import is_valid, validate
from deployment.config.values import Atom, Keywords, Module, Opaque

GRPC = Module("Snakepit.Adapters.GRPCPython")
CTX = Context()


def kinds(result) -> list[tuple[str, str]]:
    return [(c.kind, c.key) for c in result.changes]


def test_c01_wire_protocol_dropped_and_legacy_adapter_becomes_grpc_with_a_finding() -> None:
    r = cv.c01_grpc_only({"wire_protocol": Atom("json"), "adapter_module": Module("Snakepit.Adapters.EnhancedPython")}, CTX)
    assert r.config == {"adapter_module": GRPC} and isinstance(r.config["adapter_module"], Module)
    assert kinds(r) == [("removed", "wire_protocol"), ("semantic", "adapter_module")]
    (finding,) = r.findings
    assert "BaseAdapter" in finding.guidance
    js = cv.c01_grpc_only({"adapter_module": Module("Snakepit.Adapters.GenericJavaScript")}, CTX)
    assert js.config["adapter_module"] == "Snakepit.Adapters.GenericJavaScript" and js.findings


def test_c02_single_pool_becomes_pools_list_in_reference_order() -> None:
    r = cv.c02_pools({"adapter_module": GRPC, "pool_config": {"pool_size": 8, "adapter_args": ["a"], "startup_batch_size": 8}, "log_level": Atom("info")}, CTX)
    assert r.config == {
        "pools": [{"name": "default", "worker_profile": "process", "pool_size": 8, "adapter_module": GRPC, "adapter_args": ["a"], "startup_batch_size": 8}],
        "log_level": "info",
    }
    assert list(r.config["pools"][0]) == ["name", "worker_profile", "pool_size", "adapter_module", "adapter_args", "startup_batch_size"]
    assert ("moved", "pool_config.pool_size") in kinds(r) and ("removed", "pool_config") in kinds(r)


def test_c02_opaque_pool_config_is_a_finding_not_a_guess() -> None:
    r = cv.c02_pools({"pool_config": Opaque("pool_settings()")}, CTX)
    assert r.config == {"pool_config": Opaque("pool_settings()")} and r.findings


def test_c03_grpc_config_dropped() -> None:
    r = cv.c03_drop_grpc_config({"grpc_config": {"base_port": 50052, "port_range": 100}, "grpc_port": 1}, CTX)
    assert r.config == {"grpc_port": 1} and kinds(r) == [("removed", "grpc_config")]


@pytest.mark.parametrize(
    ("given", "listener"),
    [
        ({"grpc_port": 0}, {"mode": "internal"}),
        ({"grpc_port": 50051, "grpc_host": "h"}, {"mode": "external", "host": "h", "port": 50051}),
        ({"grpc_port": 50051}, {"mode": "external", "port": 50051}),
    ],
)
def test_c04_grpc_port_and_host_become_grpc_listener(given: dict, listener: dict) -> None:
    r = cv.c04_grpc_listener({"a": 1, **given, "z": 2}, CTX)
    assert r.config == {"a": 1, "grpc_listener": listener, "z": 2}
    assert list(r.config) == ["a", "grpc_listener", "z"]


def test_c04_opaque_port_is_a_finding() -> None:
    r = cv.c04_grpc_listener({"grpc_port": Opaque('System.get_env("PORT")')}, CTX)
    assert "grpc_port" in r.config and r.findings


def test_c05_cleanup_retry_interval_renamed_in_place() -> None:
    r = cv.c05_cleanup_retry_interval_ms({"a": 1, "cleanup_retry_interval": 100, "b": 2}, CTX)
    assert list(r.config.items()) == [("a", 1), ("cleanup_retry_interval_ms", 100), ("b", 2)]
    assert r.changes[0].kind == "renamed" and r.changes[0].to == "cleanup_retry_interval_ms"


def test_c06_installer_removed_keeping_keyword_list_form() -> None:
    r = cv.c06_drop_installer({"python_packages": Keywords(packages=["numpy"], installer=Atom("uv"))}, CTX)
    assert r.config["python_packages"] == {"packages": ["numpy"]} and isinstance(r.config["python_packages"], Keywords)


def test_c07_log_level_info_added_only_to_the_primary_file_and_only_when_unset() -> None:
    assert cv.c07_log_level_info({}, Context(primary=True)).config == {"log_level": "info"}
    assert cv.c07_log_level_info({}, Context(primary=False)).config == {}
    assert cv.c07_log_level_info({"log_level": Atom("debug")}, CTX).config == {"log_level": "debug"}


def test_c08_log_categories_map_becomes_list() -> None:
    r = cv.c08_log_categories_list({"log_categories": {"pool": Atom("debug"), "grpc": Atom("info")}}, CTX)
    assert r.config == {"log_categories": ["pool", "grpc"]} and all(isinstance(a, Atom) for a in r.config["log_categories"])
    assert r.changes[0].kind == "semantic" and "not kept" in r.changes[0].note


def test_c09_session_settings_move_to_top_level_and_store_becomes_a_map() -> None:
    r = cv.c09_session_settings({"session_store": Keywords(default_ttl=7200, cleanup_interval=60, max_sessions=5000)}, CTX)
    assert r.config == {"session_default_ttl": 7200, "session_cleanup_interval": 60, "session_store": {"max_sessions": 5000}}
    assert not isinstance(r.config["session_store"], Keywords)
    clash = cv.c09_session_settings({"session_default_ttl": 60, "session_store": {"default_ttl": 10}}, CTX)
    assert clash.config == {"session_default_ttl": 60} and clash.findings


def test_c10_python_runtime_becomes_python_keyword_list() -> None:
    r = cv.c10_python_runtime({"python_runtime": {"strategy": Atom("uv"), "python_version": "3.12"}}, CTX)
    assert r.config == {"python": {"strategy": "uv", "python_version": "3.12"}} and isinstance(r.config["python"], Keywords)
    assert not r.findings
    venv = cv.c10_python_runtime({"python_runtime": {"strategy": Atom("venv")}}, CTX)
    assert venv.config == {"python": {"strategy": "system"}} and venv.findings


def test_c11_python_adapter_becomes_adapter_args() -> None:
    r = cv.c11_python_adapter({"python_adapter": "my_app.adapters:ML", "pool_config": {"pool_size": 2}}, CTX)
    assert r.config == {"pool_config": {"pool_size": 2, "adapter_args": ["--adapter", "my_app.adapters.ML"]}}
    already = cv.c11_python_adapter({"pools": [{"name": Atom("default"), "python_adapter": "a:B", "adapter_args": ["--adapter", "x.Y"]}]}, CTX)
    assert already.config["pools"][0] == {"name": "default", "adapter_args": ["--adapter", "x.Y"]}


def test_c12_heartbeat_interval_ms_becomes_ping_interval_ms() -> None:
    r = cv.c12_heartbeat_ping_interval({"heartbeat": {"enabled": True, "interval_ms": 2000}}, CTX)
    assert list(r.config["heartbeat"].items()) == [("enabled", True), ("ping_interval_ms", 2000)]
    per_pool = cv.c12_heartbeat_ping_interval({"pools": [{"name": Atom("a"), "heartbeat": {"interval_ms": 5}}]}, CTX)
    assert per_pool.config["pools"][0]["heartbeat"] == {"ping_interval_ms": 5}


def test_pool_size_precedence_at_0_13_keeps_the_size_in_effect() -> None:
    r = cv.c13_pool_size_precedence({"pool_size": 4, "pool_config": {"pool_size": 8}}, CTX)
    assert r.config["pool_size"] == 8 and r.changes[0].kind == "semantic"


def test_converters_never_mutate_their_input() -> None:
    cfg = {"wire_protocol": Atom("json"), "adapter_module": Module("Snakepit.Adapters.GenericPython"), "pool_config": {"pool_size": 2},
           "cleanup_retry_interval": 5, "session_store": Keywords(default_ttl=1), "heartbeat": {"interval_ms": 1}, "grpc_port": 0}
    before = copy.deepcopy(cfg)
    convert(cfg, "0.3", "0.13")
    assert cfg == before and type(cfg["session_store"]) is Keywords


def test_full_chain_from_0_3_validates_as_every_later_version() -> None:
    cfg = {"pooling_enabled": True, "wire_protocol": Atom("msgpack"), "adapter_module": Module("Snakepit.Adapters.GenericPythonV2"),
           "pool_config": {"pool_size": 4, "adapter_args": ["--x"]}, "cleanup_retry_interval": 100}
    for target in ["0.5", "0.6", "0.7", "0.8", "0.10", "0.13"]:
        result = convert(cfg, "0.3", target)
        assert is_valid(validate(result.config, target)), (target, validate(result.config, target))
        assert not [i for i in validate(result.config, target) if i.severity == "warning"]


def test_plan_goes_up_and_down_through_every_step() -> None:
    assert [s.name for s in plan("0.3", "0.13")] == ["0.3->0.5", "0.5->0.6", "0.6->0.7", "0.7->0.8", "0.8->0.10", "0.10->0.13"]
    assert [s.name for s in plan("0.10", "0.6")] == ["0.10->0.8", "0.8->0.7", "0.7->0.6"]
    assert plan("0.8", "0.8") == []


def test_down_conversion_is_lossless_round_trip() -> None:
    v05 = {"adapter_module": GRPC, "pool_config": {"pool_size": 8, "adapter_args": ["--adapter", "a.B"]}, "grpc_port": 50051, "grpc_host": "h", "cleanup_retry_interval": 100}
    up = convert(v05, "0.5", "0.10", Context(primary=False))
    assert "grpc_listener" in up.config and "pools" in up.config
    down = convert(up.config, "0.10", "0.5")
    assert down.findings == []
    assert down.config == v05


def test_down_conversion_reports_what_it_would_lose() -> None:
    down = convert({"instance_token": "t", "grpc_listener": {"mode": Atom("external_pool"), "pool_size": 2}, "affinity": Atom("hint")}, "0.13", "0.8")
    lost = {f.key for f in down.findings}
    assert lost == {"instance_token", "grpc_listener", "affinity"} and all(f.kind == "lossy" for f in down.findings)


def test_repairs_apply_to_a_config_that_claims_a_later_version() -> None:
    r = convert({"timeout_profile": Atom("batch"), "cleanup_retry_interval": 500}, "0.8", "0.8")
    assert r.config == {"timeout_profile": "batch", "cleanup_retry_interval_ms": 500}


def test_c08_an_expression_for_log_categories_is_a_finding() -> None:
    r = cv.c08_log_categories_list({"log_categories": Opaque("MyApp.log_categories()")}, CTX)
    assert r.config == {"log_categories": Opaque("MyApp.log_categories()")}
    (finding,) = r.findings
    assert "must give a list" in finding.message and "by hand" in finding.guidance


def test_an_expression_for_log_categories_in_an_0_8_config_is_not_questioned_again() -> None:
    assert convert({"log_categories": Opaque("cats()"), "timeout_profile": Atom("batch")}, "0.8", "0.10").findings == []
    assert convert({"log_categories": Opaque("cats()")}, "0.7", "0.8").findings
