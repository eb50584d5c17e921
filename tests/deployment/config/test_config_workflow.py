"""The ConfigMigration workflow against a real Temporal dev server: backup, atomic write, validate, restore."""

from __future__ import annotations

import concurrent.futures
import json
import uuid
from pathlib import Path

import pytest
from tests.deployment.config.config_corpus import snapshot
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.alerts import AlertActivities
from activities.audit import AuditActivities
from activities.config_files import ConfigFileActivities, ValidateInput, digest
from client.cli.config import rollback_config, start_config_workflow
from deployment.config.errors import InvalidResult
from workflows.config_migration import ConfigMigrationWorkflow
from workflows.resource_lock import ResourceLockWorkflow


@pytest.fixture
def env(temporal_env: WorkflowEnvironment) -> WorkflowEnvironment:
    """The session's Temporal dev server (tests/conftest.py)."""
    return temporal_env


class FailingValidation(ConfigFileActivities):
    """Validation that always fails after the write, to drive the compensation."""

    @activity.defn(name="validate_config_files")
    def validate_config_files(self, params: ValidateInput) -> list:
        raise InvalidResult("validation failed on purpose")


def config_worker(env, queue: str, acts: ConfigFileActivities, pool: concurrent.futures.Executor) -> Worker:
    """A worker of the config migration with ``acts`` for its files (the audit log, alerts and locks as in production)."""
    activities_ = [acts.plan_config_migration, acts.backup_config_files, acts.write_config_files, acts.validate_config_files,
                   acts.restore_config_backup, AuditActivities().append_audit_entry, AlertActivities().send_alert]
    return Worker(env.client, task_queue=queue, workflows=[ConfigMigrationWorkflow, ResourceLockWorkflow], activities=activities_,
                  activity_executor=pool)


async def run(env, tmp_path: Path, params: dict, activities: ConfigFileActivities | None = None, rollback_of: str | None = None, force: bool = False):
    queue = f"config-{uuid.uuid4().hex}"
    acts = activities or ConfigFileActivities(tmp_path / "backups")
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        async with config_worker(env, queue, acts, pool):
            return await _start(env, params, queue, rollback_of, force)


async def _start(env, params: dict, queue: str, rollback_of: str | None, force: bool):
    if rollback_of:
        return await rollback_config(env.client, rollback_of, force, task_queue=queue)
    return await start_config_workflow(env.client, params, task_queue=queue)


async def test_migrate_then_rollback_restores_the_original_bytes(env, corpus, tmp_path) -> None:
    folder = corpus("v0_5")
    before = snapshot(folder)
    result = await run(env, tmp_path, {"path": str(folder), "to_version": "0.10", "accept_findings": True})
    assert result.status == "completed", result.error
    assert (result.from_version, result.to_version) == ("0.5", "0.10")
    assert sorted(Path(p).name for p in result.files_written) == ["config.exs", "prod.exs"]
    after = snapshot(folder)
    assert after["config.exs"] != before["config.exs"] and after["runtime.exs"] == before["runtime.exs"]
    assert b"grpc_listener: %{mode: :external" in after["config.exs"]
    assert not list(folder.glob(".*.tmp")), "no temporary file is left behind"
    backup = result.backup
    assert {Path(e.path).name: e.digest for e in backup.files} == {n: digest(before[n]) for n in ("config.exs", "prod.exs")}
    assert all(Path(e.backup_copy).read_bytes() == before[Path(e.path).name] for e in backup.files)

    again = await run(env, tmp_path, {"path": str(folder), "to_version": "0.10", "accept_findings": True})
    assert again.status == "unchanged" and snapshot(folder) == after

    undone = await run(env, tmp_path, {}, rollback_of=result.migration_id)
    assert undone.status == "rolled_back" and len(undone.restored) == 2
    assert snapshot(folder) == before


async def test_failure_mid_write_restores_every_file_byte_for_byte(env, corpus, tmp_path) -> None:
    folder = corpus("v0_5")
    before = snapshot(folder)
    result = await run(env, tmp_path, {"path": str(folder), "to_version": "0.10", "accept_findings": True, "fail_after_files": 1})
    assert result.status == "rolled_back" and "injected failure" in result.error
    assert [Path(p).name for p in result.restored] == ["config.exs"]
    assert snapshot(folder) == before


async def test_failed_validation_after_the_write_restores(env, corpus, tmp_path) -> None:
    folder = corpus("v0_8")
    before = snapshot(folder)
    result = await run(env, tmp_path, {"path": str(folder), "to_version": "0.10"}, FailingValidation(tmp_path / "backups"))
    assert result.status == "rolled_back" and "validation failed on purpose" in result.error
    assert snapshot(folder) == before


async def test_findings_not_accepted_are_refused_before_any_write(env, corpus, tmp_path) -> None:
    folder = corpus("v0_3")
    before = snapshot(folder)
    result = await run(env, tmp_path, {"path": str(folder), "to_version": "0.6"})
    assert result.status == "refused" and "accept-findings" in result.error and result.backup is None
    assert snapshot(folder) == before
    assert not (tmp_path / "backups").exists()


async def test_rollback_refuses_a_file_edited_since_unless_forced(env, corpus, tmp_path) -> None:
    folder = corpus("v0_8")
    before = snapshot(folder)
    result = await run(env, tmp_path, {"path": str(folder), "to_version": "0.10"})
    assert result.status == "completed"
    edited = (folder / "config.exs").read_bytes() + b"# edited by hand\n"
    (folder / "config.exs").write_bytes(edited)
    refused = await run(env, tmp_path, {}, rollback_of=result.migration_id)
    assert refused.status == "failed" and "changed since the migration" in refused.error and "--force" in refused.error
    assert refused.error_type == "FileChanged"
    assert (folder / "config.exs").read_bytes() == edited
    forced = await run(env, tmp_path, {}, rollback_of=result.migration_id, force=True)
    assert forced.status == "rolled_back" and snapshot(folder) == before


async def test_invalid_input_is_a_clear_failure(env, tmp_path) -> None:
    result_error = None
    try:
        await run(env, tmp_path, {"path": "", "to_version": ""})
    except Exception as exc:  # no result attached: the input never became a migration
        result_error = str(exc)
    assert result_error and "needs 'path' and 'to_version'" in result_error


def test_cli_migrate_and_rollback_end_to_end(env, corpus, tmp_path, monkeypatch, capsys) -> None:
    from client.cli import main

    monkeypatch.setenv("SNAKEPIT_MIGRATE_HOME", str(tmp_path / "home"))
    address = env.client.service_client.config.target_host
    folder = corpus("v0_8")
    before = snapshot(folder)
    mid = f"cfg-{uuid.uuid4().hex[:6]}"
    assert main(["config", "migrate", str(folder), "--to", "0.10", "--address", address, "--json", "--id", mid]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "completed" and data["to_version"] == "0.10" and data["backup"]["files"]
    assert data["migration_id"] == mid
    assert {"migration_id", "from_version", "to_version", "changes", "findings", "backup", "status"} <= data.keys()
    assert snapshot(folder) != before
    assert main(["config", "rollback", data["migration_id"], "--address", address, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "rolled_back"
    assert snapshot(folder) == before
    assert main(["config", "rollback", "no-such-migration", "--address", address, "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error_type"] == "NoConfigFound"


async def test_dry_run_through_the_workflow_plans_and_writes_nothing(env, corpus, tmp_path) -> None:
    folder = corpus("v0_7")
    before = snapshot(folder)
    result = await run(env, tmp_path, {"path": str(folder), "to_version": "0.8", "dry_run": True})
    assert result.status == "dry_run" and result.backup is None
    assert "+  log_categories: [:pool, :grpc]," in result.diff
    assert snapshot(folder) == before


async def test_a_symlinked_config_file_is_written_through_the_link(env, corpus, tmp_path) -> None:
    real = corpus("v0_8")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "config.exs").symlink_to(real / "config.exs")
    before = (real / "config.exs").read_bytes()
    result = await run(env, tmp_path, {"path": str(linked), "to_version": "0.10"})
    assert result.status == "completed"
    assert (linked / "config.exs").is_symlink() and (real / "config.exs").read_bytes() != before
    undone = await run(env, tmp_path, {}, rollback_of=result.migration_id)
    assert undone.status == "rolled_back" and (real / "config.exs").read_bytes() == before
    assert (linked / "config.exs").is_symlink()


async def test_progress_query_answers_in_the_common_shape(env, corpus, tmp_path) -> None:
    from workflows.session_models import MigrationProgress

    folder = corpus("v0_5")
    acts = ConfigFileActivities(tmp_path / "backups")
    queue = f"config-{uuid.uuid4().hex}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        async with config_worker(env, queue, acts, pool):
            result = await start_config_workflow(env.client, {"path": str(folder), "to_version": "0.10"}, task_queue=queue)
            answer = await env.client.get_workflow_handle(result.migration_id).query("progress")
    progress = MigrationProgress.model_validate(answer)
    assert (progress.phase, progress.done, progress.total) == ("done", 2, 2)


async def test_an_id_already_running_is_bad_input(env, tmp_path) -> None:
    from deployment.errors import BadInput

    queue = f"nobody-polls-{uuid.uuid4().hex}"
    mid = f"cfg-{uuid.uuid4().hex[:6]}"
    handle = await env.client.start_workflow("ConfigMigration", {"path": str(tmp_path), "to_version": "0.10"}, id=mid, task_queue=queue)
    try:
        with pytest.raises(BadInput, match="already running"):
            await start_config_workflow(env.client, {"path": str(tmp_path), "to_version": "0.10"}, mid, task_queue=queue)
    finally:
        await handle.terminate("test over")


def test_top_level_rollback_and_status_dispatch_to_a_config_migration(env, corpus, tmp_path, monkeypatch, capsys) -> None:
    from client.cli import main

    monkeypatch.setenv("SNAKEPIT_MIGRATE_HOME", str(tmp_path / "home"))
    address = env.client.service_client.config.target_host
    folder = corpus("v0_8")
    before = snapshot(folder)
    mid = f"cfg-{uuid.uuid4().hex[:6]}"
    assert main(["config", "migrate", str(folder), "--to", "0.10", "--address", address, "--json", "--id", mid]) == 0
    capsys.readouterr()
    assert main(["status", mid, "--address", address, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["type"] == "ConfigMigration" and info["status"] == "completed" and info["result"]["to_version"] == "0.10"
    assert main(["rollback", mid, "--address", address, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "rolled_back"
    assert snapshot(folder) == before
