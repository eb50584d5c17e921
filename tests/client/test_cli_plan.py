"""``plan validate`` and ``plan show`` as a user runs them: exit codes, one JSON object, lines, never a traceback."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.deployment.extensions.helpers import fill


@pytest.fixture
def plan_cli(tmp_path):
    """Run ``snakepit-migrate`` (no Temporal needed for validate and show); returns (code, stdout, stderr)."""
    env = {**os.environ, "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home")}

    def run(*args: str) -> tuple[int, str, str]:
        proc = subprocess.run([sys.executable, "-m", "client.cli", *args], env=env, capture_output=True, text=True, timeout=120)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.returncode, proc.stdout, proc.stderr

    return run


PLAN = """\
    plan: two-stores
    policy: rollback
    migrations:
      - id: to-redis
        type: sessions
        params: {source: "@legacy", target: "@cache"}
      - id: to-sqlite
        type: sessions
        params: {source: "@legacy", target: "@archive"}
      - id: merge
        type: sessions
        depends_on: [to-redis, to-sqlite]
        params: {source: "@cache", target: "@final", overwrite: true}
    """


def files(tmp_path: Path, plan: str, resources: dict[str, str]) -> str:
    (tmp_path / "plan.yaml").write_text(textwrap.dedent(plan))
    body = "".join(f"      {k}: {v!r}\n" for k, v in resources.items())
    (tmp_path / "environments.yaml").write_text(
        f"environments:\n  staging:\n    throughput: {{sessions_per_s: 100}}\n    resources:\n{body}")
    return str(tmp_path / "plan.yaml")


async def test_validate_and_show_a_valid_plan(plan_cli, tmp_path, sqlite_url, redis_url):
    await fill(sqlite_url, 200, expired_fraction=0)
    plan = files(tmp_path, PLAN, {"legacy": sqlite_url, "cache": redis_url, "archive": f"sqlite://{tmp_path}/archive.db",
                                  "final": f"sqlite://{tmp_path}/final.db"})
    code, out, err = plan_cli("plan", "validate", plan, "--env", "staging", "--json")
    assert code == 0, err
    found = json.loads(out)
    assert found["valid"] and found["levels"] == [["to-redis", "to-sqlite"], ["merge"]]
    assert found["facts"]["to-redis"]["sessions"] == 200

    code, out, err = plan_cli("plan", "show", plan, "--env", "staging", "--json")
    assert code == 0, err
    shown = json.loads(out)
    first = shown["steps"][0]
    assert first["id"] == "to-redis" and first["group"] == 1
    assert first["estimate_s"] == 2 * 200 / 100 + 5 and "sessions_per_s=100 (environment staging)" in first["estimate_basis"]
    assert first["rollback"]["by_plan_policy"] is True
    merge = shown["steps"][2]
    assert merge["group"] == 2 and merge["estimate_s"] is None  # its source is written by group 1
    assert shown["estimated_total_s"] == 9.0 and shown["estimate_complete"] is False

    code, out, err = plan_cli("plan", "show", plan, "--env", "staging", "--md")
    assert code == 0, err
    assert "1. to-redis ‖ to-sqlite (in parallel)\n2. merge" in out
    assert "Rollback: on failure the target is put back exactly as found" in out
    assert not (tmp_path / "archive.db").exists() and not (tmp_path / "final.db").exists()


def test_invalid_plan_exit_1_with_lines_and_conflict(plan_cli, tmp_path):
    plan = files(tmp_path, PLAN.replace("depends_on: [to-redis, to-sqlite]", "depends_on: [to-sqlite]"),
                 {"legacy": "sqlite:///x.db", "cache": "redis://127.0.0.1:6379/1", "archive": "sqlite:///a.db", "final": "sqlite:///f.db"})
    code, out, err = plan_cli("plan", "validate", plan, "--json")
    assert code == 1
    found = json.loads(out)
    assert [(i["kind"], i["line"], i["hint"]) for i in found["issues"]] == [
        ("conflict", 10, "order them: in merge set depends_on: [to-sqlite, to-redis]")]
    code, out, err = plan_cli("plan", "validate", plan)
    assert code == 1 and f"{plan}:10: to-redis and merge both touch cache" in err and "invalid" in out


def test_unreadable_plan_exit_2(plan_cli, tmp_path):
    code, out, err = plan_cli("plan", "validate", str(tmp_path / "none.yaml"), "--json")
    assert code == 2 and json.loads(out)["error"].endswith("none.yaml: no such file")
    (tmp_path / "bad.yaml").write_text("plan: p\nmigrations: [\n")
    code, out, err = plan_cli("plan", "validate", str(tmp_path / "bad.yaml"))
    assert code == 2 and f"{tmp_path}/bad.yaml:3:1:" in err
    code, out, err = plan_cli("plan", "show", str(tmp_path / "bad.yaml"), "--env", "nowhere", "--json")
    assert code == 2 and json.loads(out)["type"] == "PlanUnreadable"


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


async def test_plan_run_dry_then_real_and_status_tree(cli, tmp_path, sqlite_url, redis_url):
    await fill(sqlite_url, 50, expired_fraction=0)
    plan = files(tmp_path, PLAN, {"legacy": sqlite_url, "cache": redis_url, "archive": f"sqlite://{tmp_path}/archive.db",
                                  "final": f"sqlite://{tmp_path}/final.db"})
    code, out, err = cli("plan", "run", plan, "--env", "staging", "--dry-run", "--json")
    assert code == 0, err
    dry = json.loads(out)
    assert dry["status"] == "dry_run" and [s["state"] for s in dry["steps"]] == ["dry_run"] * 3
    assert not (tmp_path / "archive.db").exists() and not (tmp_path / "final.db").exists()

    body = "".join(f"      {k}: {v!r}\n" for k, v in {"legacy": sqlite_url, "cache": redis_url,
                   "archive": f"sqlite://{tmp_path}/archive.db", "final": f"sqlite://{tmp_path}/final.db"}.items())
    (tmp_path / "measured.yaml").write_text(f"environments:\n  production-like:\n    resources:\n{body}")  # no stated throughput
    code, out, err = cli("plan", "run", plan, "--env", "staging", "--id", "plan-cli-real")
    assert code == 0, err
    assert "plan-cli-real (plan two-stores, staging): completed" in out
    assert "group 1 to-redis: completed" in err
    code, out, err = cli("status", "plan-cli-real")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1] == "  group 1" and lines[4] == "  group 2"
    assert "merge" in lines[5] and "completed" in lines[5] and "plan-cli-real.merge" in lines[5] and "sessions_copied 50" in lines[5]
    code, out, err = cli("status", "plan-cli-real", "--json")
    assert code == 0 and json.loads(out)["result"]["completed_order"][-1] == "merge"

    # estimates now use the throughput measured in those runs (this server's completed session migrations)
    code, out, err = cli("plan", "show", plan, "--env", "production-like", "--environments", str(tmp_path / "measured.yaml"), "--json")
    assert code == 0, err
    basis = json.loads(out)["steps"][0]["estimate_basis"]
    assert "sessions_per_s=" in basis and "(measured: median of" in basis, basis


def test_plan_run_refuses_an_invalid_plan_with_exit_2(cli, tmp_path):
    plan = files(tmp_path, PLAN, {"legacy": f"sqlite://{tmp_path}/missing.db", "cache": "redis://127.0.0.1:1/0",
                                  "archive": f"sqlite://{tmp_path}/a.db", "final": f"sqlite://{tmp_path}/f.db"})
    code, out, err = cli("plan", "run", plan, "--env", "staging")
    assert code == 2 and "nothing was started" in err and "missing.db does not exist" in err


def two_environments(tmp_path: Path, staging: dict[str, str], production: dict[str, str]) -> None:
    def block(res: dict[str, str]) -> str:
        return "".join(f"      {k}: {v!r}\n" for k, v in res.items())

    (tmp_path / "environments.yaml").write_text(
        f"environments:\n  staging:\n    resources:\n{block(staging)}  production:\n    resources:\n{block(production)}")


async def test_export_and_promote_only_what_passed_in_staging(cli, tmp_path, sqlite_url, redis_url):
    plan_text = "plan: promote-me\nmigrations:\n  - id: move\n    type: sessions\n    params: {source: \"@src\", target: \"@dst\"}\n"
    (tmp_path / "plan.yaml").write_text(plan_text)
    prod_src = f"sqlite://{tmp_path}/prod-src.db"
    await fill(sqlite_url, 30, expired_fraction=0)
    await fill(prod_src, 40, expired_fraction=0, seed=8)
    two_environments(tmp_path, {"src": sqlite_url, "dst": redis_url}, {"src": prod_src, "dst": f"sqlite://{tmp_path}/prod-dst.db"})
    plan = str(tmp_path / "plan.yaml")

    code, out, err = cli("plan", "export", plan, "--env", "production", "--out", str(tmp_path / "prod.json"))
    assert code == 0, err
    exported = json.loads((tmp_path / "prod.json").read_text())
    assert exported["procedure"]["steps"][0]["input"] == {"source": prod_src, "target": f"sqlite://{tmp_path}/prod-dst.db"}
    assert exported["plan_digest"] == hashlib.sha256(plan_text.encode()).hexdigest()

    code, out, err = cli("plan", "run", plan, "--env", "staging", "--dry-run")
    assert code == 0, err
    code, out, err = cli("plan", "promote", plan, "--from", "staging", "--to", "production", "--json")
    assert code == 2 and "has no completed run in staging: not promoted to production" in json.loads(out)["error"]
    assert not (tmp_path / "prod-dst.db").exists()

    code, out, err = cli("plan", "run", plan, "--env", "staging", "--id", "plan-staging-ok", "--json")
    assert code == 0, err
    code, out, err = cli("plan", "promote", plan, "--from", "staging", "--to", "production", "--json")
    assert code == 0, err
    promoted = json.loads(out)
    assert promoted["environment"] == "production" and promoted["promoted_from"] == "plan-staging-ok"
    assert promoted["steps"][0]["figures"]["sessions_copied"] == 40

    code, out, err = cli("plan", "compare", "plan-staging-ok", promoted["plan_id"], "--json")
    assert code == 0, err
    side = json.loads(out)
    assert side["environments"] == ["staging", "production"] and side["same_plan_digest"] is True
    assert side["steps"][0]["figures"]["sessions_copied"] == [30, 40]
    assert all(isinstance(d, float) for d in side["steps"][0]["figures"]["duration_s"])
    code, out, err = cli("plan", "compare", "plan-staging-ok", "no-such-run")
    assert code == 2 and "no-such-run" in err

    (tmp_path / "plan.yaml").write_text(plan_text + "# edited after staging\n")
    code, out, err = cli("plan", "promote", plan, "--from", "staging", "--to", "production")
    assert code == 2 and "has no completed run in staging" in err and "a changed plan file has a new digest" in err
