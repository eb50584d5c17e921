"""The CLI contract: exit codes, one JSON object with --json, clear errors, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from deployment.sessions.stores import open_store
from tests.e2e.helpers import make_snapshot

REQUIRED = {"migration_id", "status", "sessions_copied", "sessions_skipped_expired", "source_digest", "target_digest", "duration_s"}


@pytest.fixture
def cli(temporal_env, tmp_path):
    """Run ``snakepit-migrate`` against the test dev server; returns (code, stdout, stderr)."""
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
           "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home")}  # fmt: skip

    def run(*args: str) -> tuple[int, str, str]:
        proc = subprocess.run([sys.executable, "-m", "client.cli", *args], env=env, capture_output=True, text=True, timeout=180)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.returncode, proc.stdout, proc.stderr

    return run


def test_migrate_json_prints_exactly_one_object_and_verify_agrees(cli, tmp_path, sqlite_url):
    make_snapshot(tmp_path / "in.jsonl", 500)
    code, out, err = cli("sessions", "migrate", "--from", f"jsonl://{tmp_path}/in.jsonl", "--to", sqlite_url, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert REQUIRED <= set(result) and result["status"] == "completed"
    assert result["source_digest"] == result["target_digest"] and result["sessions_copied"] > 0
    code, out, _ = cli("sessions", "verify", "--from", f"jsonl://{tmp_path}/in.jsonl", "--to", sqlite_url, "--json")
    assert code == 0 and json.loads(out)["ok"] is True

    code, out, _ = cli("status", result["migration_id"], "--json")
    assert code == 0 and json.loads(out)["status"] == "completed"
    code, out, _ = cli("list", "--json")
    assert code == 0 and result["migration_id"] in [m["migration_id"] for m in json.loads(out)["migrations"]]


async def test_verify_lists_missing_extra_and_mismatched_ids(cli, tmp_path, redis_url):
    recs = make_snapshot(tmp_path / "in.jsonl", 50, expired_fraction=0.0)
    async with open_store(redis_url) as target:
        await target.write_many(recs[2:] + [{**recs[0], "id": "stranger"}])
        await target.write_many([{**recs[3], "stats": {"calls": -1}}])
    code, out, _ = cli("sessions", "verify", "--from", f"jsonl://{tmp_path}/in.jsonl", "--to", redis_url, "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert report["missing"] == sorted([recs[0]["id"], recs[1]["id"]])
    assert report["extra"] == ["stranger"] and report["mismatched"] == [recs[3]["id"]]
    code, out, _ = cli("sessions", "verify", "--from", f"jsonl://{tmp_path}/in.jsonl", "--to", redis_url)
    assert code == 1 and "DIFFERENT" in out and "stranger" in out


def test_rollback_of_a_completed_migration(cli, tmp_path, sqlite_url):
    make_snapshot(tmp_path / "in.jsonl", 100)
    mid = f"cli-{uuid.uuid4().hex[:6]}"
    assert cli("sessions", "migrate", "--from", f"jsonl://{tmp_path}/in.jsonl", "--to", sqlite_url, "--id", mid)[0] == 0
    code, out, _ = cli("rollback", mid, "--json")
    assert code == 0 and json.loads(out)["status"] == "rolled_back"
    code, _, err = cli("rollback", mid)
    assert code == 2 and "rolled back already" in err


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--from", "ftp://x/y", "--to", "sqlite:///tmp/x.db"], "scheme 'ftp'"),
        (["--from", "jsonl:///tmp/x.jsonl", "--to", "sqlite://relative.db"], "absolute path"),
        (["--from", "jsonl:///tmp/x.jsonl", "--to", "sqlite:///tmp/x.db", "--batch-size", "0"], "batch-size"),
        (["--from", "jsonl:///tmp/x.jsonl"], "Missing option '--to'"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(cli, args, needle):
    code, out, err = cli("sessions", "migrate", *args)
    assert code == 2 and needle in err and out == ""


def test_malformed_snapshot_names_file_and_line_and_writes_nothing(cli, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id":"a","ttl":5,"created_at":1,"last_accessed":2}\n\n{"id": "b", oops\n')
    code, out, err = cli("sessions", "migrate", "--from", f"jsonl://{bad}", "--to", f"sqlite://{tmp_path}/t.db", "--json")
    assert code == 2
    assert f"{bad}, line 3" in json.loads(out)["error"]
    assert not (tmp_path / "t.db").exists()


def test_unreachable_store_and_unknown_id_exit_2(cli, tmp_path):
    make_snapshot(tmp_path / "in.jsonl", 10)
    code, _, err = cli("sessions", "migrate", "--from", f"jsonl://{tmp_path}/in.jsonl", "--to", "redis://127.0.0.1:1/0")
    assert code == 2 and "cannot reach Redis at redis://127.0.0.1:1/0" in err + _
    code, _, err = cli("status", "no-such-migration")
    assert code == 2 and "no migration with id 'no-such-migration'" in err


def test_help_explains_every_verb(cli):
    code, out, _ = cli("--help")
    assert code == 0 and all(verb in out for verb in ("sessions", "status", "rollback", "list", "server", "worker"))
    code, out, _ = cli("sessions", "migrate", "--help")
    assert code == 0 and "--dry-run" in out and "Exit 0 on success" in out


def test_no_wait_starts_a_background_worker_and_status_watch_follows_to_the_end(cli, tmp_path, sqlite_url):
    make_snapshot(tmp_path / "in.jsonl", 3000)
    pid_file = tmp_path / "home" / "worker.pid"
    try:
        code, out, err = cli("sessions", "migrate", "--from", f"jsonl://{tmp_path}/in.jsonl", "--to", sqlite_url,
                             "--no-wait", "--json", "--batch-size", "50")  # fmt: skip
        started = json.loads(out)
        assert code == 0 and started["status"] == "running" and "started one in the background" in err
        code, out, _ = cli("status", started["migration_id"], "--watch", "--json")
        final = json.loads(out)
        assert code == 0 and final["migration_id"] == started["migration_id"] and final["status"] == "completed"
        assert final["source_digest"] == final["target_digest"]
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), 9)


async def test_zero_downtime_from_the_cli_leaves_the_source_routed_to_the_target(cli, tmp_path, sqlite_url, pg_url):
    from deployment.sessions.router import read_routing

    recs = make_snapshot(tmp_path / "in.jsonl", 200, expired_fraction=0.0)
    async with open_store(sqlite_url) as source:
        await source.write_many(recs)
    code, out, err = cli("sessions", "migrate", "--from", sqlite_url, "--to", pg_url, "--zero-downtime", "--soak", "0", "--json")
    result = json.loads(out)
    assert code == 0 and result["status"] == "completed", err
    assert result["sessions_copied"] == 200 and result["source_digest"] == result["target_digest"]
    async with open_store(sqlite_url) as source:
        state = await read_routing(source)
    assert state.mode == "target" and state.target == pg_url and state.migration_id == result["migration_id"]
