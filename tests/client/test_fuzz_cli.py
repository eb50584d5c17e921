"""Hypothesis: random argv drawn from the real command tree never breaks the CLI.

Every invocation runs in-process through ``client.cli.main`` (the same error
boundary as the console script) and must end with exit 0, 1, 2 or 3, with no
traceback and no "internal error" (the boundary's last line of defence: any
exception that reaches it is a bug). The commands are taken from the typer
app itself, with their real options; values are drawn from tokens that bad
input looks like. Nothing reaches a live service: Temporal is a closed port,
fleets are closed ports, and the files named are malformed ones in a folder
of their own. ``FUZZ_EXAMPLES``
sets the number of examples (``make fuzz`` runs many more).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client.cli import _register, app, main

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
CLOSED = "127.0.0.1:1"  # nothing listens there
# Long-running verbs (a server, a worker, a fleet, a load generator, sandboxed adapter runs) are not fuzzed here.
SKIP = {("server",), ("worker",), ("load",), ("pool", "start"), ("adapter", "verify"), ("adapter", "migrate")}
# Options whose value could reach a live service on this machine get only values that cannot.
PINNED = {"--address": [CLOSED, ""], "--fleet": [f"http://{CLOSED}", f"local:http://{CLOSED}", "nonsense"],
          "--url": [f"http://{CLOSED}", "sqlite:///nonexistent/dir/audit.db", "bogus://x", ""]}  # fmt: skip
# Files the drawn arguments name: malformed ones of every kind a command reads, in one folder made once.
FILES = Path(tempfile.mkdtemp(prefix="fuzz-cli-"))
CONTENTS = {
    "list-key.yaml": b"? [a, b]\n: 1\n", "deep.yaml": b"[" * 3000 + b"]" * 3000,
    "plan.yaml": b"plan: p\nmigrations:\n  - id: a\n    type: sessions\n    params: {source: '@x', target: 3}\n",
    "envs.yaml": b"environments: {prod: {resources: [1], throughput: {x: -1}}}\n", "garbage.bin": bytes(range(256)),
    "config.exs": b'import Config\nconfig :snakepit, pool_size: "x", adapter_module: %{\n', "adapter.py": b"def f(:\n",
    "corrupt.jsonl": b'{"id": "a"}\nnot json\n{"id": 1, "ttl": "x"}\n', "fake.db": b"not an sqlite file",
    "params.json": b'{"store": 5}', "empty": b"",
}  # fmt: skip
for name, data in CONTENTS.items():
    (FILES / name).write_bytes(data)
(FILES / "dir").mkdir()
(FILES / "dir" / "config.exs").write_bytes(CONTENTS["config.exs"])
TOKENS = [*CONTENTS, "dir", f"jsonl://{FILES}/corrupt.jsonl", f"sqlite://{FILES}/fake.db", f"jsonl://{FILES}/garbage.bin",
          f"sqlite://{FILES}/dir", f"@{FILES}/params.json",

    "", "x", "-1", "0", "3.5", "nan", "inf", "1e309", "-", "--", "--json", "--help", "💥", "é✓", "a" * 300, "../..",
    "/nonexistent/dir/file", "sqlite:///nonexistent/dir/s.db", "jsonl:///nonexistent/x.jsonl", "redis://127.0.0.1:1/0",
    "postgresql://nobody@127.0.0.1:1/db", "bogus://x", "{", "{}", '{"a": 1}', "[1, 2]", "null", "0.10", "0.3",
    "rekey-sessions", "module:Class", "os:system", "sessions-3f9c2a1b", "P1D", "*/5 * * * *", "2026-13-45T99:00",
]  # fmt: skip


def command_tree() -> list[tuple[tuple[str, ...], Any]]:
    """Every leaf command of the app with its path, e.g. (("sessions", "migrate"), command)."""
    _register()
    found: list[tuple[tuple[str, ...], Any]] = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))
        elif path not in SKIP:
            found.append((path, cmd))

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = command_tree()
values = st.one_of(st.sampled_from(TOKENS), st.text(max_size=30).filter(lambda t: "\x00" not in t))


@st.composite
def argv(draw: st.DrawFn) -> list[str]:
    """A command path, then some of its options (real ones, with drawn values) and positionals, in any order."""
    path, cmd = draw(st.sampled_from(COMMANDS))
    parts: list[list[str]] = []
    for param in cmd.params:
        opts = getattr(param, "opts", [])
        if not draw(st.booleans()):
            continue
        if not opts or not opts[0].startswith("-"):  # a positional argument
            parts.append([draw(values)])
        elif getattr(param, "is_flag", False):
            parts.append([opts[0]])
        else:
            pinned = PINNED.get(opts[0])
            parts.append([opts[0], draw(st.sampled_from(pinned)) if pinned else draw(values)])
    if path[0] == "pool" or path == ("fleet", "restart"):  # never the default fleet address, which may be someone's
        parts.append(["--fleet", f"http://{CLOSED}"] if path != ("pool", "stop") else ["--url", f"http://{CLOSED}"])
    parts += [[draw(values)] for _ in range(draw(st.integers(0, 2)))]  # stray words
    order = draw(st.permutations(parts))
    return [*path, *(w for part in order for w in part)]


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """The folder of malformed files as working folder, a fresh home; Temporal at a closed port."""
    monkeypatch.chdir(FILES)
    monkeypatch.setenv("SNAKEPIT_MIGRATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TEMPORAL_ADDRESS", CLOSED)
    monkeypatch.setenv("SNAKEPIT_AUDIT_URL", f"sqlite://{tmp_path / 'audit.db'}")
    monkeypatch.delenv("SNAKEPIT_MIGRATE_DEBUG", raising=False)
    return tmp_path


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(args=argv())
def test_random_argv_ends_with_a_known_exit_code_and_no_traceback(args, sandbox, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    assert code in (0, 1, 2, 3), (args, code, err[-2000:])
    assert "Traceback" not in out + err, (args, err[-3000:])
    assert "internal error" not in err, (args, err[-2000:])


def test_the_tree_is_the_real_one():
    """The fuzzer draws from the app's commands: a verb added later is fuzzed too."""
    paths = {p for p, _ in COMMANDS}
    assert {("recover",), ("sessions", "migrate"), ("plan", "validate"), ("config", "check")} <= paths
    assert not paths & SKIP
