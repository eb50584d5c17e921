"""The pool and load verbs on bad input: a clear message, exit code 2, no traceback, nothing left running."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from client.cli import main


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    def run(*args: str) -> Done:
        code = main(list(args))
        captured = capsys.readouterr()
        return Done(code, captured.out, " ".join(captured.err.split()))

    return run


def worker_processes(run_dir: Path) -> set[int]:
    """Fleet workers started for ``run_dir`` (their config copies live there)."""
    found = set()
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info.get("cmdline") or []
        if "deployment.pool.worker" in cmd and any(str(run_dir) in part for part in cmd):
            found.add(p.pid)
    return found


def test_start_with_an_unknown_adapter_names_the_instance_and_cause(make_config, cli, tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps(make_config("fleet_adapters.NoSuchAdapter", "v1", f"sqlite:///{tmp_path}/s.db")))
    done = cli("pool", "start", "--config", str(config), "--instances", "2", "--port", "0", "--run-dir", str(tmp_path / "run"))
    assert done.returncode == 2, done.stderr
    assert "error: instance w" in done.stderr and "has no attribute 'NoSuchAdapter'" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert sorted(p.name for p in (tmp_path / "run").glob("*.config.json"))  # workers were started...
    assert worker_processes(tmp_path / "run") == set()  # ...and none is left running


def test_start_with_a_config_it_cannot_load(cli, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("pools:\n  - name: default\n    adapter_args: [--adapter, 'mod:Class']\n")
    done = cli("pool", "start", "--config", str(config), "--port", "0")
    assert done.returncode == 2 and "not a dotted Python path" in done.stderr and "Traceback" not in done.stderr
    done = cli("pool", "start", "--config", str(tmp_path / "missing.toml"), "--port", "0")
    assert done.returncode == 2 and "cannot read config" in done.stderr


def test_load_refuses_remote_and_unbounded_targets(cli) -> None:
    done = cli("load", "--url", "http://10.1.2.3:8470", "--rate", "10", "--duration", "1")
    assert done.returncode == 2 and "not a loopback address" in done.stderr
    done = cli("load", "--url", "http://127.0.0.1:8470", "--rate", "5000", "--duration", "1")
    assert done.returncode == 2 and "--rate must be" in done.stderr


def test_control_verbs_on_a_fleet_that_does_not_answer(cli) -> None:
    done = cli("pool", "status", "--fleet", "http://127.0.0.1:9")
    assert done.returncode == 2 and "did not answer" in done.stderr and "Traceback" not in done.stderr
    done = cli("pool", "drain", "w1", "--fleet", "ftp://x")
    assert done.returncode == 2 and "unknown fleet" in done.stderr


def test_start_on_a_busy_port_says_so_and_leaves_nothing(make_config, cli, tmp_path: Path) -> None:
    import socket

    config = tmp_path / "ok.json"
    config.write_text(json.dumps(make_config("fleet_adapters.CounterAdapter", "v1", f"sqlite:///{tmp_path}/s.db")))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = cli("pool", "start", "--config", str(config), "--instances", "1", "--port", str(port),
                   "--run-dir", str(tmp_path / "run"))
    assert done.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert worker_processes(tmp_path / "run") == set()
