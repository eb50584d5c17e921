"""A worker that died a moment ago still shows as a poller: commands must not wait on it forever."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "config"


async def test_a_dead_workers_poller_does_not_hang_a_command(temporal_env, tmp_path):
    address = temporal_env.client.service_client.config.target_host
    env = {**os.environ, "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home")}
    worker = subprocess.Popen([sys.executable, "-m", "client.cli", "worker", "--address", address],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)  # fmt: skip
    await asyncio.sleep(4)  # it has polled the default task queue
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    shutil.copytree(FIXTURES / "v0_8", tmp_path / "config")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client.cli", "config", "migrate", str(tmp_path / "config"), "--to", "0.10",
        "--address", address, "--json", stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["status"] == "completed"
