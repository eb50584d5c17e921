"""Surgical rewriting over the corpus: only changed bytes move, results validate, migrating twice changes nothing."""

from __future__ import annotations

import difflib

import pytest
from tests.deployment.config.config_corpus import CORPUS, ERAS

from deployment.config.exs import parse_exs
from deployment.config.plan import load_unit, plan_unit
from deployment.config.rewrite import rewrite_exs
from deployment.config.schemas import VERSIONS
from deployment.config.source import read_unit
from deployment.config.validate import is_valid

UPGRADES = [(name, target) for name, era in sorted(ERAS.items()) for target in VERSIONS if VERSIONS.index(target) >= VERSIONS.index(era)]


def _plan(name: str, target: str):
    return plan_unit(load_unit(read_unit(CORPUS / name)), target)


@pytest.mark.parametrize(("name", "target"), UPGRADES)
def test_migrated_corpus_parses_validates_and_is_idempotent(name: str, target: str) -> None:
    plan = _plan(name, target)
    assert plan.valid, [i.text() for i in plan.issues if i.severity == "error"]
    again = plan_unit(load_unit([(f.path, f.after) for f in plan.files]), target, plan.to_version)
    assert not again.changed, again.diff()
    detected = plan_unit(load_unit([(f.path, f.after) for f in plan.files]), target)
    assert not detected.changed, detected.diff()


@pytest.mark.parametrize("name", [n for n in sorted(ERAS) if n != "formats"])
def test_comments_imports_and_other_apps_survive(name: str) -> None:
    plan = _plan(name, "0.13")
    for f in plan.files:
        before = f.before.decode().splitlines()
        after = f.after.decode().splitlines()
        kept = [line for line in before if line.lstrip().startswith(("#", "import", "config :logger", "config :my_app")) or "database:" in line]
        for line in kept:
            assert line in after, f"{f.path}: lost {line!r}"


@pytest.mark.parametrize("name", [n for n in sorted(ERAS) if n != "formats"])
def test_only_lines_of_changed_settings_differ(name: str) -> None:
    plan = _plan(name, "0.13")
    touched_keys = {c.key.split(".")[0].split("[")[0] for c in plan.changes} | {(c.to or "").split(".")[0].split("[")[0] for c in plan.changes}
    for f in plan.files:
        removed = [line for line in difflib.ndiff(f.before.decode().splitlines(), f.after.decode().splitlines()) if line.startswith("- ")]
        for line in removed:
            text = line[2:].strip()
            assert any(key and key in text for key in touched_keys) or text.startswith(("%{", "}", "]", "max_workers", "startup_", "pool_size", "adapter_args", "cleanup_max_retries", "python_runtime")), f"{f.path}: unexpected change of {text!r}"


def test_opaque_expressions_move_verbatim() -> None:
    plan = _plan("v0_3", "0.6")
    config = next(f for f in plan.files if f.path.endswith("config.exs"))
    assert b"pool_size: System.schedulers_online() * 2," in config.after
    prod = next(f for f in plan.files if f.path.endswith("prod.exs"))
    assert not prod.changed


def _rewrite(source: bytes, new: list[dict], hints=None) -> bytes:
    exs = parse_exs(source)
    out = rewrite_exs(exs, new, hints)
    parse_exs(out)
    return out


def test_rename_in_place_keeps_trailing_comment() -> None:
    src = b"config :snakepit,\n  a: 1,\n  cleanup_retry_interval: 100, # ms\n  b: 2\n"
    out = _rewrite(src, [{"a": 1, "cleanup_retry_interval_ms": 100, "b": 2}], {((), "cleanup_retry_interval", "cleanup_retry_interval_ms")})
    assert out == b"config :snakepit,\n  a: 1,\n  cleanup_retry_interval_ms: 100, # ms\n  b: 2\n"


def test_deleting_the_last_pair_removes_the_dangling_comma() -> None:
    src = b"config :snakepit,\n  a: 1,\n  wire_protocol: :json\n\nconfig :logger, level: :info\n"
    assert _rewrite(src, [{"a": 1}]) == b"config :snakepit,\n  a: 1\n\nconfig :logger, level: :info\n"


def test_deleting_every_pair_removes_the_statement() -> None:
    src = b"import Config\n# keep me\nconfig :snakepit, wire_protocol: :json\nconfig :logger, level: :info\n"
    assert _rewrite(src, [{}]) == b"import Config\n# keep me\nconfig :logger, level: :info\n"


def test_inline_edits_stay_inline() -> None:
    src = b"config :snakepit, a: 1, wire_protocol: :json, b: %{x: 1, interval_ms: 2}\n"
    out = _rewrite(src, [{"a": 1, "b": {"x": 1, "ping_interval_ms": 2}, "c": 3}], {(("b",), "interval_ms", "ping_interval_ms")})
    assert out == b"config :snakepit, a: 1, b: %{x: 1, ping_interval_ms: 2}, c: 3\n"


def test_insertion_after_a_commented_last_line() -> None:
    src = b"config :snakepit,\n  a: 1 # note\n"
    assert _rewrite(src, [{"a": 1, "log_level": _atom("info")}]) == b"config :snakepit,\n  a: 1, # note\n  log_level: :info\n"


def test_sub_key_call_renamed_and_edited() -> None:
    src = b"config :snakepit, :python_runtime, strategy: :venv, python_version: \"3.12\"\n"
    from deployment.config.values import Keywords

    out = _rewrite(src, [{"python": Keywords(strategy=_atom("system"), python_version="3.12")}], {((), "python_runtime", "python")})
    assert out == b"config :snakepit, :python, strategy: :system, python_version: \"3.12\"\n"


def test_unchanged_config_gives_identical_bytes() -> None:
    src = (CORPUS / "v0_13" / "config.exs").read_bytes()
    exs = parse_exs(src)
    assert rewrite_exs(exs, [c.data() for c in exs.calls]) == src


def _atom(name: str):
    from deployment.config.values import Atom

    return Atom(name)


def test_valid_flag_reflects_target_validation() -> None:
    plan = plan_unit(load_unit([("config.exs", b"import Config\nconfig :snakepit, adapter_module: Snakepit.Adapters.GenericJavaScript\n")]), "0.5")
    assert not plan.valid and not is_valid(plan.issues)
    assert any("GenericJavaScript" in f.message for f in plan.findings)


def test_crlf_files_keep_crlf_line_endings() -> None:
    src = (CORPUS / "v0_3" / "config.exs").read_bytes().replace(b"\n", b"\r\n")
    plan = plan_unit(load_unit([("config/config.exs", src)]), "0.13")
    after = plan.files[0].after
    assert plan.valid and b"pools: [\r\n" in after
    assert after.count(b"\n") == after.count(b"\r\n"), "no bare LF was introduced"
    lf = _plan("v0_3", "0.13").files[0].after
    assert after == lf.replace(b"\n", b"\r\n")


DOWNGRADES = [(name, target) for name, era in sorted(ERAS.items()) for target in VERSIONS if VERSIONS.index(target) < VERSIONS.index(era)]


@pytest.mark.parametrize(("name", "target"), DOWNGRADES)
def test_down_conversion_of_the_corpus_is_lossless_or_says_what_it_would_lose(name: str, target: str) -> None:
    plan = _plan(name, target)
    if plan.lossy:
        assert all(f.kind == "lossy" and f.message and f.guidance for f in plan.lossy)
        return
    assert plan.valid, [i.text() for i in plan.issues if i.severity == "error"]


def test_a_simple_0_10_deployment_goes_back_to_0_5_and_up_again_to_the_same_settings() -> None:
    down = _plan("v0_10_simple", "0.5")
    assert not down.lossy and down.valid
    (after,) = load_unit([(f.path, f.after) for f in down.files])
    cfg = after.config()
    assert cfg["adapter_module"] == "Snakepit.Adapters.GRPCPython" and cfg["pool_config"]["pool_size"] == 6
    assert (cfg["grpc_port"], cfg["grpc_host"], cfg["cleanup_retry_interval"]) == (50051, "10.1.2.3", 250)
    assert "log_level" not in cfg and b"# reachable from the other nodes" in down.files[0].after
    up = plan_unit(load_unit([(f.path, f.after) for f in down.files]), "0.10", "0.5")
    (original,) = load_unit(read_unit(CORPUS / "v0_10_simple"))
    (again,) = load_unit([(f.path, f.after) for f in up.files])
    assert again.config() == original.config()


def test_a_key_written_twice_converts_the_one_that_counts_and_drops_the_other() -> None:
    src = b"import Config\nconfig :snakepit,\n  cleanup_retry_interval: 1,\n  log_level: :debug,\n  cleanup_retry_interval: 2\n"
    plan = plan_unit(load_unit([("config.exs", src)]), "0.8", "0.6")
    assert plan.files[0].after == b"import Config\nconfig :snakepit,\n  log_level: :debug,\n  cleanup_retry_interval_ms: 2\n"


def test_sub_key_calls_that_change_shape() -> None:
    src = b'import Config\nconfig :snakepit, :session_store, max_sessions: 1, default_ttl: 5\nconfig :snakepit, :python_runtime, python_version: "3.11"\n'
    plan = plan_unit(load_unit([("config.exs", src)]), "0.7", "0.6")
    assert plan.valid
    assert plan.files[0].after == (
        b"import Config\nconfig :snakepit, :session_store, %{max_sessions: 1}\nconfig :snakepit, session_default_ttl: 5\n"
        b'config :snakepit, :python, python_version: "3.11"\n'
    )
