"""The procedure `recover ID` prints for a failed rollback: the cause's fix, URLs fit for commands, config steps."""

from __future__ import annotations

from client.cli.recover_rollback import FailedRollback, command_url, procedure, render, rollback_cause


def test_the_fix_is_read_from_the_rollbacks_own_failure_not_the_first_one():
    both = "cannot reach PostgreSQL at x; and the rollback failed: [Errno 1] Operation not permitted: '/etc/c/.x.tmp'"
    assert "lsattr" in rollback_cause(both)
    assert "log in" in rollback_cause("injected failure; and the rollback failed: cannot reach PostgreSQL at x")
    assert "df -h" in rollback_cause("x; and the restore failed: [Errno 28] No space left on device")
    assert rollback_cause("x; and the rollback failed: something else") is None


def test_a_command_keeps_a_password_reference_and_hides_a_literal_password():
    assert command_url("postgresql://m:${secret:pg}@h/db?table=t") == "postgresql://m:${secret:pg}@h/db?table=t"
    assert command_url("postgresql://m:hunter2@h/db") == "postgresql://m:***@h/db"
    assert command_url("sqlite:///var/s.db") == "sqlite:///var/s.db"


def test_a_config_procedure_names_each_file_its_copy_and_its_digest():
    backup = {"directory": "/b/config-1", "files": [
        {"path": "/etc/c/config.exs", "digest": "d1", "after_digest": "a1", "backup_copy": "/b/config-1/config.exs"},
        {"path": "/etc/c/prod.exs", "digest": "d2", "after_digest": "a2", "backup_copy": "/b/config-1/prod.exs"}]}  # fmt: skip
    run = {"migration_id": "config-1", "type": "ConfigMigration", "task_queue": "q", "status": "rollback_failed",
           "result": {"status": "rollback_failed", "path": "/etc/c", "from_version": "0.5", "to_version": "0.10",
                      "files_written": ["/etc/c/config.exs"], "backup": backup, "failed_phase": "writing",
                      "error": "injected; and the restore failed: [Errno 1] Operation not permitted"}}  # fmt: skip
    remains = {"backup": "/b/config-1", "to_restore": 1, "files": [
        {"path": "/etc/c/config.exs", "state": "new version", "backup_copy": "/b/config-1/config.exs", "digest_before": "d1"},
        {"path": "/etc/c/prod.exs", "state": "restored", "backup_copy": "/b/config-1/prod.exs", "digest_before": "d2"}]}  # fmt: skip
    text = render(procedure(FailedRollback(run, run, {}), remains))
    assert "/etc/c/config.exs: new version" in text and "/etc/c/prod.exs: restored" in text
    assert "cp '/b/config-1/config.exs' '/etc/c/config.exs'" in text and "prod.exs' '/etc" not in text  # only what remains
    assert "d1  /etc/c/config.exs" in text and "recover config-1 --resume-rollback" in text and "--force" not in text


def runs(monkeypatch, table: dict[str, dict]) -> None:
    """Stand-ins for Temporal's answers: each run's describe() and original input, by id."""
    from client import api
    from deployment.errors import NotFound

    async def describe(client, mid):  # noqa: ANN001, ANN202
        if mid not in table:
            raise NotFound(f"no migration with id {mid!r}")
        return {"migration_id": mid, "type": "SessionMigration", "task_queue": "q", **table[mid]}

    async def original_input(client, mid):  # noqa: ANN001, ANN202
        return table[mid].get("input", {"target": "sqlite:///t.db"})

    monkeypatch.setattr(api, "describe", describe)
    monkeypatch.setattr(api, "original_input", original_input)


async def test_the_failed_rollback_is_found_from_either_id_and_the_latest_attempt_wins(monkeypatch):
    from client.cli.recover_rollback import find

    runs(monkeypatch, {"m": {"status": "rollback_failed", "result": {"error": "first"}},
                       "m-rollback": {"status": "rollback_failed", "result": {"error": "second"},
                                      "input": {"rollback_of": "m", "target": "sqlite:///t.db"}}})  # fmt: skip
    for given in ("m", "m-rollback"):
        case, _ = await find(None, given)
        assert case.id == "m" and case.failed["migration_id"] == "m-rollback" and case.failure["error"] == "second"


async def test_a_completed_migration_whose_rollback_run_failed_is_a_failed_rollback(monkeypatch):
    from client.cli.recover_rollback import find

    runs(monkeypatch, {"m": {"status": "completed", "result": {"target_before": {"target_count": 3}}},
                       "m-rollback": {"status": "rollback_failed", "result": {"error": "cannot reach"},
                                      "input": {"rollback_of": "m"}}})  # fmt: skip
    case, _ = await find(None, "m")
    assert case.result["target_before"]["target_count"] == 3 and case.failure["error"] == "cannot reach"


async def test_nothing_to_recover_is_said_with_its_reason(monkeypatch):
    from client.cli.recover_rollback import find

    runs(monkeypatch, {"done": {"status": "rolled_back"}, "going": {"status": "running"}, "cut": {"status": "terminated"},
                       "ok": {"status": "completed"}, "ok2": {"status": "completed"},
                       "ok2-rollback": {"status": "rolled_back", "input": {"rollback_of": "ok2"}}})  # fmt: skip
    found = {mid: await find(None, mid) for mid in ("done", "going", "cut", "ok", "ok2")}
    assert all(case is None for case, _ in found.values())
    reasons = {mid: why for mid, (_, why) in found.items()}
    assert "still running" in reasons["going"] and "recover --scan" in reasons["cut"]
    assert "rolled back by ok2-rollback" in reasons["ok2"] and "nothing to recover" in reasons["ok"]
