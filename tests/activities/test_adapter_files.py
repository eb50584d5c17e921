"""The file steps of the adapter migration: back up, write onto the generic adapter, restore byte for byte.

Real files in every format the step rewrites; the activities run in Temporal's ActivityEnvironment.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.adapters import GENERIC_ADAPTER, AdapterActivities, generic_pool, recorded_calls, sha256
from deployment.adapters.errors import SamplesParseError
from deployment.pool.config import parse_pool_config
from workflows.adapter_models import BackupInput, PoolConfigInput, RestoreInput, WriteInput

POOLS = {
    "config_version": "v1",
    "pools": [{"name": "default", "pool_size": 2, "adapter_args": ["--adapter", "mod.Custom", "--verbose"],
               "adapter_env": {"PYTHONPATH": "/srv/adapters"}}],
    "session_store": "sqlite:////tmp/s.db",
}
LEGACY = {"adapter_module": "Snakepit.Adapters.GRPCPython", "adapter_args": ["--adapter=mod.Custom"],
          "pool_config": {"pool_size": 4}}  # fmt: skip
GENERIC = {"libraries": [], "tool_aliases": {}, "custom_tools": {}, "custom_adapter": "mod.Custom"}
DUMP = {".json": lambda d: json.dumps(d, indent=4) + "\n",
        ".yaml": lambda d: "# the production pool\n" + yaml.safe_dump(d),
        ".toml": lambda d: __import__("tomli_w").dumps(d)}  # fmt: skip
LOAD = {".json": json.loads, ".yaml": yaml.safe_load, ".toml": tomllib.loads}


def test_the_pool_is_pointed_at_the_generic_adapter_and_everything_else_kept() -> None:
    new = generic_pool(POOLS, None, "/etc/generic.json")
    assert new["pools"][0]["adapter_args"] == ["--adapter", GENERIC_ADAPTER, "--verbose"]
    assert new["pools"][0]["adapter_env"] == {"PYTHONPATH": "/srv/adapters", "SNAKEPIT_GENERIC_CONFIG": "/etc/generic.json"}
    assert new["config_version"] == "v1-generic" and POOLS["config_version"] == "v1"  # the input is not touched
    spec = parse_pool_config(new)
    assert (spec.adapter, spec.adapter_argv, spec.pool_size) == (GENERIC_ADAPTER, ["--verbose"], 2)

    old = generic_pool(LEGACY, None, "/etc/generic.json")
    spec = parse_pool_config(old)
    assert (spec.adapter, spec.pool_size, spec.adapter_env) == (GENERIC_ADAPTER, 4, {"SNAKEPIT_GENERIC_CONFIG": "/etc/generic.json"})
    assert parse_pool_config(old).version != parse_pool_config(LEGACY).version


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".toml"])
async def test_write_then_restore_gives_back_the_exact_bytes(tmp_path: Path, suffix: str) -> None:
    env, acts = ActivityEnvironment(), AdapterActivities()
    config = tmp_path / f"pool{suffix}"
    original = DUMP[suffix](POOLS).encode()
    config.write_bytes(original)
    generic = tmp_path / "generic-adapter.json"
    staged = tmp_path / "staged.json"
    staged.write_text(json.dumps(GENERIC))

    backup = await env.run(acts.backup_adapter_config, BackupInput(migration_id="m1", config_path=str(config),
                                                                   generic_path=str(generic)))
    assert backup.config.digest == sha256(original) and not backup.generic.existed
    config.write_bytes(original)  # a retried backup returns the backup it took
    assert await env.run(acts.backup_adapter_config, BackupInput(migration_id="m1", config_path=str(config),
                                                                 generic_path=str(generic))) == backup
    write = WriteInput(migration_id="m1", config_path=str(config), generic_path=str(generic), staged_path=str(staged),
                       staged_digest=sha256(staged.read_bytes()), custom_adapter="mod.Custom",
                       expected_digest=sha256(original))
    written = await env.run(acts.write_generic_config, write)
    assert await env.run(acts.write_generic_config, write) == written  # a retry writes the same, refuses nothing
    raw = LOAD[suffix](config.read_text())
    assert raw["pools"][0]["adapter_args"][:2] == ["--adapter", GENERIC_ADAPTER] and written.config_version == "v1-generic"
    assert generic.read_bytes() == staged.read_bytes() and written.config_digest == sha256(config.read_bytes())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["generic-adapter.json", f"pool{suffix}", f"pool.m1.bak{suffix}", "staged.json"])  # no temporary left

    restored = await env.run(acts.restore_adapter_config, RestoreInput(backup=backup))
    assert restored.restored and config.read_bytes() == original and not generic.exists()
    again = await env.run(acts.restore_adapter_config, RestoreInput(backup=backup))
    assert not again.restored and config.read_bytes() == original


async def test_a_config_edited_after_the_backup_is_not_overwritten(tmp_path: Path) -> None:
    env, acts = ActivityEnvironment(), AdapterActivities()
    config, staged = tmp_path / "pool.json", tmp_path / "staged.json"
    config.write_text(json.dumps(POOLS))
    staged.write_text(json.dumps(GENERIC))
    backup = await env.run(acts.backup_adapter_config, BackupInput(migration_id="m2", config_path=str(config),
                                                                   generic_path=str(tmp_path / "g.json")))
    config.write_text(json.dumps({**POOLS, "pool_size": 3}))
    edited = config.read_bytes()
    with pytest.raises(ApplicationError) as refused:
        await env.run(acts.write_generic_config, WriteInput(
            migration_id="m2", config_path=str(config), generic_path=str(tmp_path / "g.json"), staged_path=str(staged),
            staged_digest=sha256(staged.read_bytes()), custom_adapter="mod.Custom", expected_digest=backup.config.digest))
    assert refused.value.type == "ConfigChanged" and refused.value.non_retryable and "changed since it was backed up" in str(refused.value)
    assert config.read_bytes() == edited and not (tmp_path / "g.json").exists()


async def test_an_exs_config_is_refused_as_bad_input(tmp_path: Path) -> None:
    exs = tmp_path / "config.exs"
    exs.write_text("import Config\nconfig :snakepit, pooling_enabled: true\n")
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(AdapterActivities().inspect_pool_config, PoolConfigInput(
            config_path=str(exs), fleet="http://127.0.0.1:9", migration_id="m3"))
    assert refused.value.type == "BadInput" and "rewrites JSON, YAML or TOML pool configs, not .exs" in str(refused.value)


def test_a_call_being_recorded_is_not_a_malformed_line(tmp_path: Path) -> None:
    traffic = tmp_path / "calls.jsonl"
    traffic.write_text('{"tool": "gcd", "arguments": {"a": 4, "b": 6}, "result": 2}\n{"tool": "gcd", "argu')
    assert [(r.tool, r.result) for r in recorded_calls(str(traffic))] == [("gcd", 2)]
    traffic.write_text('{"tool": "gcd", "arguments": {}}\nnot json\n{"tool": "gcd", "argu')
    with pytest.raises(SamplesParseError) as bad:
        recorded_calls(str(traffic))
    assert str(bad.value).startswith(f"{traffic}, line 2: not valid JSON")


async def test_undoing_a_completed_migration_refuses_a_config_edited_since_and_can_keep_the_generic_file(tmp_path: Path) -> None:
    env, acts = ActivityEnvironment(), AdapterActivities()
    config, generic, staged = tmp_path / "pool.json", tmp_path / "generic-adapter.json", tmp_path / "staged.json"
    config.write_text(json.dumps(POOLS))
    original = config.read_bytes()
    staged.write_text(json.dumps(GENERIC))
    backup = await env.run(acts.backup_adapter_config, BackupInput(migration_id="m4", config_path=str(config),
                                                                   generic_path=str(generic)))
    written = await env.run(acts.write_generic_config, WriteInput(
        migration_id="m4", config_path=str(config), generic_path=str(generic), staged_path=str(staged),
        staged_digest=sha256(staged.read_bytes()), custom_adapter="mod.Custom", expected_digest=backup.config.digest))

    config.write_text(config.read_text().replace('"pool_size": 2', '"pool_size": 5'))  # an operator's edit
    edited = config.read_bytes()
    with pytest.raises(ApplicationError) as refused:
        await env.run(acts.restore_adapter_config, RestoreInput(backup=backup, expect_digest=written.config_digest))
    assert refused.value.type == "ConfigChanged" and "was edited since the migration wrote it" in str(refused.value)
    assert config.read_bytes() == edited and generic.exists()

    config.write_bytes(edited.replace(b'"pool_size": 5', b'"pool_size": 2'))
    assert sha256(config.read_bytes()) == written.config_digest
    kept = await env.run(acts.restore_adapter_config,
                         RestoreInput(backup=backup, expect_digest=written.config_digest, config_only=True))
    assert kept.restored and not kept.generic_removed and config.read_bytes() == original and generic.exists()
    done = await env.run(acts.restore_adapter_config, RestoreInput(backup=backup, expect_digest=written.config_digest))
    assert done.restored and done.generic_removed and not generic.exists() and config.read_bytes() == original
