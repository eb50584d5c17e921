"""Loading adapters by dotted path and running requests the upstream way."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from deployment.pool.adapter_host import AdapterHost, AdapterLoadError, UnknownTool, load_adapter_class
from snakepit_bridge import SessionContext

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fleet"


@pytest.fixture(autouse=True)
def fixtures_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))


def test_runs_tools_with_a_session_context() -> None:
    host = AdapterHost(load_adapter_class("fleet_adapters.CounterAdapter"))
    assert {t["name"] for t in host.tools} >= {"ping", "incr", "countdown"}
    ctx = SessionContext("s", {"counter": 4})
    assert host.call("incr", {"by": 2}, ctx) == 6
    assert ctx.changes() == {"metadata": {"set": {"counter": 6}, "deleted": []}}
    assert host.call("ping", {}, ctx)["initialized"] is True  # initialize() ran first
    assert host.call("countdown", {"n": 2}, ctx) == [2, 1, 0]  # streamed chunks gathered
    with pytest.raises(UnknownTool):
        host.call("nope", {}, ctx)
    with pytest.raises(ValueError, match="boom"):
        host.call("boom", {}, ctx)


def test_self_dispatching_adapter_gets_every_name() -> None:
    host = AdapterHost(load_adapter_class("fleet_adapters.DispatchAdapter"))
    assert host.call("echo", {"x": 1}, SessionContext("s9")) == {"echo": {"x": 1}, "session": "s9"}


@pytest.mark.parametrize(("path", "cause"), [
    ("no_such_module.Adapter", "no module named 'no_such_module'"),
    ("fleet_adapters.Missing", "has no attribute 'Missing'"),
    ("fleet_adapters.os", "defines no single adapter class"),
    ("fleet_adapters.time", "defines no single adapter class"),
])
def test_unknown_paths_say_why(path: str, cause: str) -> None:
    with pytest.raises(AdapterLoadError, match=cause):
        load_adapter_class(path)


def test_a_constructor_that_raises_is_a_load_error() -> None:
    with pytest.raises(AdapterLoadError, match="cannot load the model"):
        AdapterHost(load_adapter_class("fleet_adapters.BrokenInitAdapter"))


def test_module_path_with_one_adapter_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "onepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "generic.py").write_text(
        "from snakepit_bridge import BaseAdapter\nclass GenericAdapter(BaseAdapter):\n    def hi(self):\n        return 'hi'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_adapter_class("onepkg.generic").__name__ == "GenericAdapter"
    sys.modules.pop("onepkg.generic", None)
    sys.modules.pop("onepkg", None)


def test_async_hooks_and_cleanup_after_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "async_adapter.py").write_text(
        "from snakepit_bridge.base_adapter import BaseAdapter, tool\n"
        "from snakepit_bridge.logging_config import get_logger\n"
        "EVENTS = []\n"
        "class AsyncAdapter(BaseAdapter):\n"
        "    async def initialize(self):\n        EVENTS.append('init')\n"
        "    async def execute_tool(self, tool_name, arguments, context):\n"
        "        if tool_name == 'fail':\n            raise RuntimeError('no')\n"
        "        return {'tool': tool_name, 'session': context.session_id}\n"
        "    def cleanup(self):\n        EVENTS.append('cleanup')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    host = AdapterHost(load_adapter_class("async_adapter.AsyncAdapter"))
    assert host.call("anything", {}, SessionContext("a1")) == {"tool": "anything", "session": "a1"}
    with pytest.raises(RuntimeError):
        host.call("fail", {}, SessionContext("a1"))
    assert sys.modules["async_adapter"].EVENTS == ["init", "cleanup", "init", "cleanup"]
    sys.modules.pop("async_adapter", None)


def test_only_thread_safe_adapters_run_concurrently(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    (tmp_path / "meet_adapters.py").write_text(
        "import threading\n"
        "from snakepit_bridge.base_adapter import BaseAdapter\n"
        "from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter\n"
        "class Meet:\n"
        "    barrier = None\n"
        "    def meet(self):\n        self.barrier.wait()\n        return 'met'\n"
        "class Shared(Meet, ThreadSafeAdapter):\n    pass\n"
        "class Plain(Meet, BaseAdapter):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name, expect_meeting in (("Shared", True), ("Plain", False)):
        cls = load_adapter_class(f"meet_adapters.{name}")
        cls.barrier = threading.Barrier(2, timeout=1.0)  # both calls must be inside the tool at once
        host = AdapterHost(cls)
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(host.call, "meet", {}, SessionContext("m")) for _ in range(2)]
            outcomes = [f.exception() is None for f in futures]
        assert all(outcomes) is expect_meeting, name
    sys.modules.pop("meet_adapters", None)
