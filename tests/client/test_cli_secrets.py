"""A password in a store URL reaches the store, and nothing else: not the history, the audit log, the output or the logs."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid

import asyncpg
import pytest

from deployment.sessions.stores import open_store
from tests.client.test_cli_sessions import cli  # noqa: F401  (the shared CLI fixture)
from tests.e2e.helpers import make_snapshot


@pytest.fixture
def pg_role(pg_base):
    """A PostgreSQL role with a password (trust auth accepts any, so the test checks where it travels, not auth)."""
    role, password = f"audit_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_base)
        await conn.execute(sql)
        await conn.close()

    asyncio.run(admin(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'; GRANT CREATE ON SCHEMA public TO {role}"))
    yield role, password
    asyncio.run(admin(f"DROP OWNED BY {role}; DROP ROLE {role}"))


def decoded(history: str) -> str:
    """The history's text with every payload's base64 data decoded, so a secret cannot hide in base64."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and "metadata" in node:
                found.append(base64.b64decode(node["data"]).decode(errors="replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history))
    return history + "\n".join(found)


async def test_a_password_in_a_postgresql_url_appears_nowhere(cli, tmp_path, pg_base, pg_role):
    role, password = pg_role
    make_snapshot(tmp_path / "in.jsonl", 120, expired_fraction=0.0)
    host = pg_base.split("@", 1)[1].split("?")[0]
    target = f"postgresql://{role}:{password}@{host}?table=t_{role}"
    mid = f"secret-{uuid.uuid4().hex[:6]}"
    seen: list[str] = []

    def run(*args: str) -> tuple[int, str, str]:
        code, out, err = cli(*args)
        seen.extend([out, err])
        return code, out, err

    code, out, err = run("sessions", "migrate", "--from", f"jsonl://{tmp_path}/in.jsonl", "--to", target, "--id", mid, "--json")
    assert code == 0 and json.loads(out)["sessions_copied"] == 120, (json.loads(out).get("error") if out else None, err)
    assert "${secret:pw-" in err  # the CLI says where the password went
    async with open_store(target) as store:  # the data did reach the store the password opens
        assert await store.count() == 120
    code, rolled, _ = run("rollback", mid, "--json")  # a later run resolves the recorded reference too
    assert code == 0 and json.loads(rolled)["restored"] == 120
    histories = []
    for run_id in (mid, f"{mid}-rollback"):
        code, history, _ = run("history", run_id)
        assert code == 0
        histories.append(decoded(history))
    code, audit, _ = run("audit", "export", "--migration", mid, "--format", "csv")
    assert code == 0
    reports = []
    for fmt in ("json", "html"):
        code, report, _ = run("report", mid, "--format", fmt)
        assert code == 0 and f"{role}:***@" in report
        reports.append(report)
    logs = "".join(p.read_text() for p in (tmp_path / "home").glob("*.log"))
    # the searches can fail: the decoded history and the audit export name the role and the target
    assert all(f"{role}:${{secret:pw-" in h for h in histories) and f"{role}:***@" in audit and "data_moved" in audit
    assert re.search(r"Phase validating -> backup after \d+\.\d s", logs), logs[-3000:]  # the worker logged the run, timed
    for where, text in [("history", h) for h in histories] + [("audit export", audit), ("report", "".join(reports)), ("logs", logs), ("output", "".join(seen))]:
        assert password not in text, f"the password leaked into the {where}"
