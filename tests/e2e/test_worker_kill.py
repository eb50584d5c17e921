"""A worker process killed with SIGKILL mid-copy: another one resumes from the heartbeated cursor."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

from client import api
from tests.e2e.helpers import live_lines, make_snapshot, store_bytes, wait_for_phase
from workflows.session_models import SessionMigrationInput


def start_worker(address: str, queue: str, log) -> subprocess.Popen:
    """A separate worker process, as an operator runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "client.cli", "worker", "--address", address, "--task-queue", queue],
        stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip


async def test_sigkill_of_the_worker_mid_copy_still_completes_with_identical_digests(
    temporal_env, tmp_path, pg_url
):
    total = 30000
    recs = make_snapshot(tmp_path / "in.jsonl", total, expired_fraction=0.05)
    address = temporal_env.client.service_client.config.target_host
    queue = f"kill-{uuid.uuid4().hex[:6]}"
    log = (tmp_path / "workers.log").open("ab")
    first = start_worker(address, queue, log)
    second = None
    try:
        handle = await api.start_session_migration(
            temporal_env.client,
            SessionMigrationInput(source=f"jsonl://{tmp_path}/in.jsonl", target=pg_url, batch_size=10, slice_seconds=60),
            task_queue=queue,
        )
        await wait_for_phase(handle, "copying")
        await asyncio.sleep(2.5)  # well inside the first slice: only heartbeats know where the copy is
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        written_at_kill = len(await store_bytes(pg_url))
        assert 0 < written_at_kill < total
        second = start_worker(address, queue, log)
        result = await asyncio.wait_for(api.wait_for_result(handle), timeout=240)
    finally:
        for proc in (first, second):
            if proc and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert result.status == "completed", result.error
    assert result.copy_resumes >= 1  # the retry resumed from a heartbeated cursor, not from the start
    assert result.source_digest == result.target_digest and result.verification.ok
    assert set((await store_bytes(pg_url)).values()) >= live_lines(recs)
    assert result.sessions_copied + result.sessions_skipped_expired == total
