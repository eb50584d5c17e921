"""A SessionMigration asked to index itself is found by MigrationType / MigrationPhase, with a one-line memo summary."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

from client import api
from client.paths import temporal_cli
from client.search import indexing_available
from tests.e2e.helpers import make_snapshot
from workflows.session_models import SessionMigrationInput


async def found(client, query: str) -> list[str]:
    """Workflow ids matching ``query``, waiting out visibility's short lag."""
    for _ in range(50):
        ids = [wf.id async for wf in client.list_workflows(query)]
        if ids:
            return ids
        await asyncio.sleep(0.1)
    return []


async def test_an_indexed_run_is_found_by_type_and_phase_and_summarised(temporal_env, temporal_client, task_queue, tmp_path, sqlite_url):
    assert await indexing_available(temporal_client)  # the test server registers them as the embedded one does
    make_snapshot(tmp_path / "in.jsonl", 120, expired_fraction=0.0)
    mid = f"indexed-{uuid.uuid4().hex[:6]}"
    inp = SessionMigrationInput(source=f"jsonl://{tmp_path}/in.jsonl", target=sqlite_url, search_attributes=True)
    result = await api.wait_for_result(await api.start_session_migration(temporal_client, inp, mid, task_queue))
    assert result.status == "completed"
    assert await found(temporal_client, f"WorkflowId = '{mid}' AND MigrationType = 'SessionMigration' AND MigrationPhase = 'done'") == [mid]
    assert await found(temporal_client, f"WorkflowId = '{mid}' AND MigrationPhase = 'copying'") == []
    desc = await temporal_client.get_workflow_handle(mid).describe()
    assert await desc.memo_value("summary") == f"sessions {result.source} -> {result.target}: completed, 120 copied, 0 restored"
    address = temporal_env.client.service_client.config.target_host
    listed = subprocess.run(
        [temporal_cli(), "workflow", "list", "--address", address, "--query", f"MigrationPhase = 'done' AND WorkflowId = '{mid}'"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert mid in listed.stdout


async def test_a_run_not_asked_to_index_itself_sets_nothing(temporal_client, task_queue, tmp_path, sqlite_url):
    make_snapshot(tmp_path / "in.jsonl", 20, expired_fraction=0.0)
    mid = f"plain-{uuid.uuid4().hex[:6]}"
    inp = SessionMigrationInput(source=f"jsonl://{tmp_path}/in.jsonl", target=sqlite_url)
    assert (await api.wait_for_result(await api.start_session_migration(temporal_client, inp, mid, task_queue))).status == "completed"
    await asyncio.sleep(1)
    assert [wf.id async for wf in temporal_client.list_workflows(f"WorkflowId = '{mid}' AND MigrationType = 'SessionMigration'")] == []
    assert await (await temporal_client.get_workflow_handle(mid).describe()).memo() == {}
