"""Feasibility checked for real: stores opened, configs parsed, paths and fleets looked for; nothing written."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from deployment.plans.check import validate_plan
from tests.deployment.extensions.helpers import fill

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def write(tmp_path: Path, plan: str, resources: dict[str, str]) -> str:
    (tmp_path / "plan.yaml").write_text(textwrap.dedent(plan))
    lines = "".join(f"      {k}: {v!r}\n" for k, v in resources.items())
    (tmp_path / "environments.yaml").write_text(f"environments:\n  staging:\n    resources:\n{lines}")
    return str(tmp_path / "plan.yaml")


async def check(tmp_path: Path, plan: str, resources: dict[str, str]):
    return await validate_plan(write(tmp_path, plan, resources), "staging", None, tmp_path / "backups")


SESSIONS_TWO_STEPS = """\
    plan: p
    migrations:
      - id: first
        type: sessions
        params: {source: "@old", target: "@mid"}
      - id: second
        type: sessions
        depends_on: [first]
        params: {source: "@mid", target: "@new"}
    """


async def test_missing_source_store_is_an_error_and_is_not_created(tmp_path, redis_url):
    missing = tmp_path / "nope.db"
    found = await check(tmp_path, SESSIONS_TWO_STEPS, {"old": f"sqlite://{missing}", "mid": redis_url,
                                                         "new": f"sqlite://{tmp_path}/new.db"})
    assert not found.valid
    assert len(found.issues) == 1
    assert found.issues[0].message.startswith(f"first: the source store sqlite://{missing} does not exist")
    assert found.issues[0].line == 3 and found.issues[0].kind == "feasibility"
    assert not missing.exists() and not (tmp_path / "new.db").exists()
    # the second reads what the first writes: not required to exist yet
    assert "written by an earlier migration" in found.feasibility.facts["second"]["source"]


async def test_counts_sessions_and_flags_a_non_empty_target(tmp_path, sqlite_url, redis_url):
    await fill(sqlite_url, 30, expired_fraction=0)
    await fill(redis_url, 4, expired_fraction=0, seed=99)
    found = await check(tmp_path, SESSIONS_TWO_STEPS, {"old": sqlite_url, "mid": redis_url, "new": f"sqlite://{tmp_path}/n.db"})
    assert found.valid, [i.text() for i in found.issues]
    assert found.feasibility.facts["first"]["sessions"] == 30
    assert found.feasibility.facts["first"]["target_sessions"] == 4
    risks = [r for r in found.feasibility.risks if r.migration == "first"]
    assert len(risks) == 1 and "is not empty (4 sessions)" in risks[0].risk and "overwrite" in risks[0].mitigation
    assert not (tmp_path / "n.db").exists()


async def test_unreachable_redis_is_an_error(tmp_path, sqlite_url):
    await fill(sqlite_url, 3)
    found = await check(tmp_path, SESSIONS_TWO_STEPS, {"old": sqlite_url, "mid": "redis://127.0.0.1:1/0",
                                                         "new": f"sqlite://{tmp_path}/n.db"})
    errors = [i.message for i in found.issues]
    assert len(errors) == 1 and errors[0].startswith("first:") and "127.0.0.1:1" in errors[0]


CONFIG = """\
    plan: p
    migrations:
      - id: cfg
        type: config
        params: {path: "@cfg", to_version: "%s"}
    """


async def test_config_parses_and_its_version_is_detected(tmp_path):
    shutil.copytree(FIXTURES / "config" / "v0_6", tmp_path / "cfg")
    found = await check(tmp_path, CONFIG % "0.10", {"cfg": str(tmp_path / "cfg")})
    assert found.valid, [i.text() for i in found.issues]
    facts = found.feasibility.facts["cfg"]
    assert facts["from_version"] == "0.6" and facts["to_version"] == "0.10" and facts["files"] == 1
    assert facts["changes"] > 0 and facts["disk_free_bytes"] > 0


async def test_unknown_target_version_and_unparsable_config_are_errors(tmp_path):
    shutil.copytree(FIXTURES / "config" / "v0_6", tmp_path / "cfg")
    found = await check(tmp_path, CONFIG % "7.3", {"cfg": str(tmp_path / "cfg")})
    assert len(found.issues) == 1 and "7.3" in found.issues[0].message
    (tmp_path / "bad.exs").write_text("import Config\nconfig :snakepit, pools: [\n")
    found = await check(tmp_path, CONFIG % "0.10", {"cfg": str(tmp_path / "bad.exs")})
    assert len(found.issues) == 1 and f"{tmp_path}/bad.exs:" in found.issues[0].message


async def test_adapter_path_and_fleet_are_looked_for(tmp_path):
    (tmp_path / "pool.json").write_text("{}")
    found = await check(tmp_path, """\
        plan: p
        migrations:
          - id: ad
            type: adapter
            params: {path: "@adapter", fleet: "@fleet", config_path: "@pool"}
        """, {"adapter": str(tmp_path / "missing_adapter.py"), "fleet": "http://127.0.0.1:1",
              "pool": str(tmp_path / "pool.json")})
    messages = [i.message for i in found.issues]
    assert any(f"the adapter {tmp_path}/missing_adapter.py does not exist" in m for m in messages)
    assert any("127.0.0.1:1" in m for m in messages), messages


async def test_environment_not_in_the_file_is_unreadable(tmp_path):
    from deployment.plans.errors import PlanUnreadable

    path = write(tmp_path, CONFIG % "0.10", {"cfg": "x"})
    with pytest.raises(PlanUnreadable, match="environment 'production' is not in"):
        await validate_plan(path, "production", None, tmp_path)
