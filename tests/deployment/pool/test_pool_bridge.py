"""The snakepit_bridge API: tools, dispatch, the session context, the thread-safe variant."""

from __future__ import annotations

import threading

import pytest

from snakepit_bridge import BaseAdapter, SessionContext, StreamChunk, ThreadSafeAdapter, thread_safe_method, tool


class Calc(BaseAdapter):
    @tool(description="Add two numbers")
    def add(self, a: float, b: float = 1.0) -> float:
        return a + b

    @tool(supports_streaming=True, required_variables=["k"])
    def stream(self, n: int):
        """Counts down."""
        yield StreamChunk(n, is_final=True)

    def plain(self) -> str:
        return "plain"


class CalcChild(Calc):
    def add(self, a, b=1.0):  # overridden without @tool: no longer listed
        return a * b


def test_tools_are_listed_with_parameters_from_the_signature() -> None:
    tools = {t.name: t for t in Calc().get_tools()}
    assert sorted(tools) == ["add", "stream"]
    assert tools["add"].description == "Add two numbers"
    assert tools["add"].parameters == [
        {"name": "a", "type": "float", "required": True},
        {"name": "b", "type": "float", "required": False},
    ]
    assert tools["stream"].description == "Counts down."
    assert tools["stream"].supports_streaming and tools["stream"].required_variables == ["k"]
    assert [t.name for t in CalcChild().get_tools()] == ["stream"]


def test_execute_tool_dispatches_by_getattr_to_any_callable() -> None:
    calc = Calc()
    assert calc.execute_tool("add", {"a": 2, "b": 3}, None) == 5
    assert calc.execute_tool("plain", {}, None) == "plain"  # not a @tool, reachable as upstream
    with pytest.raises(AttributeError, match="no tool 'missing'"):
        calc.call_tool("missing")


def test_session_context_records_only_what_changed() -> None:
    ctx = SessionContext("s1", metadata={"a": 1, "b": [1]}, programs={"p": "x"})
    assert ctx.session_id == "s1" and ctx.get("a") == 1 and ctx.get("zz", 7) == 7
    assert ctx.changes() == {}
    ctx.get("b").append(2)  # a copy: reading never changes the session
    assert ctx.get("b") == [1] and ctx.changes() == {}
    ctx.set("a", 2)
    ctx.delete("b")
    ctx.set_program("q", {"src": "y"})
    assert ctx.changes() == {
        "metadata": {"set": {"a": 2}, "deleted": ["b"]},
        "programs": {"set": {"q": {"src": "y"}}, "deleted": []},
    }
    assert ctx.get_variable("a") == 2
    with pytest.raises(KeyError):
        ctx.get_variable("b")


def test_thread_safe_method_serialises_on_the_instance_lock() -> None:
    class Counter(ThreadSafeAdapter):
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        @thread_safe_method
        def bump(self) -> None:
            value = self.n
            threading.Event().wait(0.0005)
            self.n = value + 1

    c = Counter()
    threads = [threading.Thread(target=lambda: [c.bump() for _ in range(20)]) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter.__thread_safe__ is True and c.n == 100
