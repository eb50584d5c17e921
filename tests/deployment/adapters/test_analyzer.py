"""The analyzer finds exactly the tools each adapter exposes and classifies each one, with reasons."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deployment.adapters.analyzer import analyze_path
from deployment.adapters.errors import AdapterSourceError, NoAdapterFound
from deployment.adapters.proposal import propose_config
from deployment.errors import BadInput

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "adapters"


def split(adapter) -> tuple[set[str], dict[str, set[str]]]:
    """(migratable tool names, {custom tool name: reason categories})."""
    migratable = {t.name for t in adapter.tools if t.migratable}
    custom = {t.name: t.categories() for t in adapter.tools if not t.migratable}
    return migratable, custom


def test_command_handler_generation():
    report = analyze_path(FIXTURES / "command_handler_v01.py")
    [adapter] = report.adapters
    assert (adapter.name, adapter.generation) == ("MathCommandHandler", "command_handler")
    assert {t.name for t in adapter.tools} == {"sqrt", "mean", "hypot", "ping", "stats", "load_model", "scaled"}
    migratable, custom = split(adapter)
    assert migratable == {"sqrt", "mean", "hypot"}
    assert custom == {
        "ping": {"composite_logic"},
        "stats": {"adapter_state"},
        "load_model": {"io", "pickle"},
        "scaled": {"composite_logic"},
    }
    hypot = adapter.tool("hypot")
    assert [(p.name, p.required, p.default) for p in hypot.params] == [("x", True, None), ("y", False, 0.0)]
    assert hypot.mapping.target == "math.hypot"
    assert hypot.mapping.args == [{"param": "x"}, {"param": "y"}]
    assert hypot.mapping.wrap == {"result_key": "result", "constants": {"status": "ok"}}
    load = adapter.tool("load_model")
    by_cat = {r.category: r for r in load.reasons}
    assert by_cat["io"].line == 40 and "open" in by_cat["io"].source
    assert by_cat["pickle"].line == 41 and by_cat["pickle"].source == "model = pickle.load(fh)"


def test_dynamic_call_bridge_is_recognised_and_nothing_migrates():
    [adapter] = analyze_path(FIXTURES / "dynamic_bridge.py").adapters
    assert adapter.generation == "dynamic_call_bridge"
    migratable, custom = split(adapter)
    assert migratable == set()
    assert custom == {
        "call": {"dynamic_dispatch", "adapter_state"},
        "store": {"adapter_state"},
        "retrieve": {"adapter_state"},
        "list_stored": {"adapter_state"},
        "delete_stored": {"adapter_state"},
    }
    assert {p.name for p in adapter.tool("call").params} == {"target", "args", "kwargs", "store_as"}
    assert any("same target directly" in n for n in adapter.notes)


def test_base_adapter_decorated_and_getattr_reachable_tools():
    [adapter] = analyze_path(FIXTURES / "base_adapter_tools.py").adapters
    assert (adapter.name, adapter.generation) == ("MathToolsAdapter", "base_adapter")
    migratable, custom = split(adapter)
    assert migratable == {"square_root", "mean", "round_to", "title", "log_base", "fsum", "gcd"}
    assert custom == {
        "cached_factorial": {"module_state"},
        "double_hypot": {"composite_logic"},
        "read_config": {"io"},
        "session_hits": {"session_context"},
        "ask_host": {"session_context", "host_callback"},
        "countdown": {"streaming"},
        "restore": {"pickle"},
        "scaled": {"session_context"},
        "describe": {"composite_logic"},
    }
    # Undecorated methods reached through call_tool's getattr are tools; private ones are only noted.
    assert adapter.tool("gcd").exposure == "getattr"
    assert adapter.tool("square_root").exposure == "decorator"
    assert any("_clamp" in n for n in adapter.notes)
    assert "_clamp" not in {t.name for t in adapter.tools}


def test_base_adapter_tool_details():
    adapter = analyze_path(FIXTURES / "base_adapter_tools.py").adapter("MathToolsAdapter")
    round_to = adapter.tool("round_to")
    assert [p.to_dict() for p in round_to.params] == [
        {"name": "x", "annotation": "float", "required": True},
        {"name": "ndigits", "annotation": "int", "required": False, "default": 2},
    ]
    assert round_to.mapping.target == "builtins.round"
    assert adapter.tool("mean").description == "Arithmetic mean"
    assert adapter.tool("gcd").description == ""
    title = adapter.tool("title").mapping
    assert (title.module, title.function, title.constant_kwargs()) == ("string", "capwords", {"sep": None})
    # A module-level constant becomes a constant argument.
    assert adapter.tool("log_base").mapping.args == [{"param": "x"}, {"const": 10}]
    fsum = adapter.tool("fsum")
    assert fsum.is_async and not adapter.tool("mean").is_async
    countdown = adapter.tool("countdown")
    assert countdown.streaming and {r.line for r in countdown.reasons} == {66}
    state = adapter.tool("cached_factorial").reasons[0]
    assert state.line == 45 and "_FACTORIALS" in state.detail
    assert adapter.tool("session_hits").reasons[0].guidance.startswith("reads or writes the session context")


def test_handler_objects_in_a_package():
    report = analyze_path(FIXTURES / "handlers_pkg")
    assert report.files == ["__init__.py", "adapter.py", "handlers.py"]
    [adapter] = report.adapters
    assert (adapter.name, adapter.module) == ("DelegatingAdapter", "handlers_pkg.adapter")
    migratable, custom = split(adapter)
    # StatsHandler lists its tools in get_tools (``unlisted`` is not one); TextHandler exposes its public methods.
    assert migratable == {"median"}
    assert custom == {"spread": {"composite_logic"}, "remember": {"session_context"}, "words": {"composite_logic"}}
    median = adapter.tool("median")
    assert median.exposure == "handler:StatsHandler"
    assert [p.name for p in median.params] == ["values"]  # the ctx parameter is not a tool parameter
    assert median.mapping.target == "statistics.median"


def test_if_chain_dispatch():
    [adapter] = analyze_path(FIXTURES / "if_chain_adapter.py").adapters
    migratable, custom = split(adapter)
    assert migratable == {"add", "power"}
    assert custom == {"upper": {"composite_logic"}, "shout": {"composite_logic"}, "whoami": {"session_context"}}
    add = adapter.tool("add")
    assert (add.mapping.target, add.mapping.args) == ("operator.add", [{"param": "a"}, {"param": "b"}])
    power = adapter.tool("power")
    assert power.function == "ChainAdapter._power"
    assert [(p.name, p.required, p.default) for p in power.params] == [("base", True, None), ("exp", False, 2.0)]
    # No getattr dispatch here: undecorated methods are not reachable.
    assert "helper" not in {t.name for t in adapter.tools}


def test_thread_safe_variant():
    [adapter] = analyze_path(FIXTURES / "threadsafe_adapter.py").adapters
    assert adapter.thread_safe
    migratable, custom = split(adapter)
    assert migratable == {"distance"}
    assert custom == {"increment": {"adapter_state"}}


def test_analyzer_never_executes_the_analyzed_code(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.setenv("SNAKEPIT_FIXTURE_MARKER", str(marker))
    report = analyze_path(FIXTURES / "import_side_effect.py")
    assert not marker.exists()
    tool = report.adapter("SideEffectAdapter").tool("absolute")
    assert tool.description == ""  # a computed description is not evaluated
    assert tool.migratable and tool.mapping.target == "builtins.abs"
    # Control: running the same file does write the marker, so the check above can fail.
    env = {**os.environ, "SNAKEPIT_FIXTURE_MARKER": str(marker), "PYTHONPATH": "/nonexistent"}
    subprocess.run([sys.executable, "-S", str(FIXTURES / "import_side_effect.py")], env=env, capture_output=True)
    assert marker.read_text() == "imported"


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"class A(:\n    pass\n", "line 1: syntax error"),
        (b"x = 1\x00\n", "NUL bytes"),
        (b"\xff\xfe\x00garbage\x81", "not decodable"),
        (b"# -*- coding: no-such-codec -*-\nx = 1\n", "not decodable"),
        (b"x = " + b"(" * 500 + b"1" + b")" * 500 + b"\n", "syntax error"),
        (b"x = " + b"-" * 200_000 + b"1\n", "nested or sized past"),
    ],
)
def test_malformed_and_hostile_sources_give_clear_errors(tmp_path, content, problem):
    bad = tmp_path / "bad.py"
    bad.write_bytes(content)
    with pytest.raises(AdapterSourceError) as info:
        analyze_path(bad)
    assert isinstance(info.value, BadInput) and info.value.exit_code == 2
    assert str(bad) in str(info.value) and problem in str(info.value)


def test_bad_paths(tmp_path):
    with pytest.raises(AdapterSourceError, match="no such file"):
        analyze_path(tmp_path / "missing.py")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(AdapterSourceError, match="not a Python source file"):
        analyze_path(tmp_path / "notes.txt")
    with pytest.raises(AdapterSourceError, match="no .py files"):
        analyze_path(tmp_path)
    big = tmp_path / "big.py"
    big.write_bytes(b"#" * 2_000_001)
    with pytest.raises(AdapterSourceError, match="larger than"):
        analyze_path(big)
    big.unlink()
    # A .py name on a device would never finish reading: it is refused or skipped, never read.
    (tmp_path / "zero.py").symlink_to("/dev/zero")
    with pytest.raises(AdapterSourceError, match="not a regular file"):
        analyze_path(tmp_path / "zero.py")
    with pytest.raises(AdapterSourceError, match="no .py files"):
        analyze_path(tmp_path)


def test_no_adapter_found(tmp_path):
    plain = tmp_path / "plain.py"
    plain.write_text("import math\n\nclass Point:\n    def norm(self):\n        return math.hypot(1, 2)\n")
    with pytest.raises(NoAdapterFound, match="no adapter class found"):
        analyze_path(plain)


def test_tricky_shapes():
    report = analyze_path(FIXTURES / "tricky_shapes.py")
    adapter = report.adapter("TrickyAdapter")
    migratable, custom = split(adapter)
    # A mixin's @tool, a staticmethod, imports inside the body, keyword-only parameters, bind-then-return.
    assert migratable == {"ceil", "floor", "degrees", "imported_inside", "kw_only", "bind_then_return"}
    assert custom == {
        "ticks": {"streaming"},
        "slow_sqrt": {"module_state"},
        "dispatch": {"dynamic_dispatch"},
        "table": {"dynamic_dispatch"},
        "varargs": {"composite_logic"},
        "computed_default": {"composite_logic"},
        "helper_call": {"composite_logic"},
        "class_state": {"adapter_state"},
        "nested": {"composite_logic"},
        "counter": {"module_state"},
    }
    assert adapter.tool("ceil").function == "GeometryMixin.ceil"
    assert [p.name for p in adapter.tool("floor").params] == ["x"] == [p.name for p in adapter.tool("degrees").params]
    assert adapter.tool("ticks").streaming and adapter.tool("ticks").is_async
    assert adapter.tool("imported_inside").mapping.target == "cmath.sqrt"
    assert [p.name for p in adapter.tool("varargs").params] == ["*values"]
    assert adapter.tool("computed_default").params[1].to_dict()["default"] == {"__expr__": "math.pi"}
    # Mixins that are not adapters themselves are not reported.
    assert {a.name for a in report.adapters} == {"TrickyAdapter", "LoopRegistered"}
    loop = report.adapter("LoopRegistered")
    migratable, custom = split(loop)
    assert migratable == set() and custom == {"tan": {"composite_logic"}, "ok": {"composite_logic"}}
    assert loop.notes == ["line 97: a command is registered under a computed name (name); it cannot be listed statically"]


def test_hostile_class_hierarchies(tmp_path):
    cyclic = tmp_path / "cyclic.py"
    cyclic.write_text(
        "from snakepit_bridge.base_adapter import BaseAdapter, tool\n"
        "class A(B):\n    pass\n"
        "class B(A, BaseAdapter):\n    @tool()\n    def f(self, x: int):\n        return abs(x)\n"
        "class C(C):\n    pass\n"
    )
    report = analyze_path(cyclic)
    assert {a.name: {t.name for t in a.tools} for a in report.adapters} == {"A": {"f"}, "B": {"f"}}
    # A long chain in definition order is followed; the same chain written backwards is refused cleanly.
    chain = [f"class C{i}(C{i - 1}):\n    pass\n" for i in range(1, 1100)]
    head = "from snakepit_bridge.base_adapter import BaseAdapter\nclass C0(BaseAdapter):\n    pass\n"
    deep = tmp_path / "deep.py"
    deep.write_text(head + "".join(chain))
    assert len(analyze_path(deep).adapters) == 1100
    backwards = tmp_path / "backwards.py"
    backwards.write_text("".join(reversed(chain)) + head)
    with pytest.raises(AdapterSourceError, match="chain of bases too deep to follow"):
        analyze_path(backwards)


def test_a_vendored_bridge_base_class_is_not_an_adapter(tmp_path):
    (tmp_path / "core.py").write_text(
        "from abc import ABC, abstractmethod\n"
        "class BaseCommandHandler(ABC):\n"
        "    @abstractmethod\n    def _register_commands(self):\n        pass\n"
        "    def register_command(self, name, handler):\n        self.registry[name] = handler\n"
    )
    (tmp_path / "handler.py").write_text(
        "import math\nfrom .core import BaseCommandHandler\n"
        "class Mine(BaseCommandHandler):\n    def _register_commands(self):\n"
        "        self.register_command('floor', self.handle_floor)\n"
        "    def handle_floor(self, args):\n        return math.floor(args['x'])\n"
    )
    report = analyze_path(tmp_path)
    assert [(a.name, a.generation) for a in report.adapters] == [("Mine", "command_handler")]
    assert report.adapters[0].tool("floor").mapping.target == "math.floor"


def test_match_statements_and_dispatch_tables():
    report = analyze_path(FIXTURES / "dispatch_shapes.py")
    match_split = split(report.adapter("MatchAdapter"))
    # A guarded case is still a tool; its guard is part of what is classified.
    assert match_split == ({"floor", "ceil", "round_up", "stdev"}, {"whoami": {"session_context"}})
    assert report.adapter("MatchAdapter").tool("whoami").reasons[0].line == 18
    assert report.adapter("MatchAdapter").tool("stdev").function == "MatchAdapter._stdev"
    table = report.adapter("TableAdapter")
    assert split(table) == ({"exp", "median", "log2"}, {"note": {"adapter_state"}})
    assert table.tool("median").exposure == "dispatch_table" and table.tool("exp").exposure == "if_chain"
    assert [p.name for p in table.tool("log2").params] == ["x"]


def test_getattr_with_a_name_prefix_and_super_fallback():
    report = analyze_path(FIXTURES / "getattr_shapes.py")
    prefix = report.adapter("PrefixAdapter")
    assert split(prefix) == ({"sqrt", "mode"}, {"seen": {"adapter_state"}})
    assert prefix.tool("sqrt").function == "PrefixAdapter.tool_sqrt" and prefix.tool("sqrt").exposure == "getattr"
    fallback = report.adapter("FallbackAdapter")
    # super().execute_tool is BaseAdapter's call_tool: undecorated methods are reachable.
    assert split(fallback) == ({"trunc"}, {"version": {"composite_logic"}})


def test_command_handler_dispatching_in_process_command():
    [adapter] = analyze_path(FIXTURES / "process_command_v01.py").adapters
    assert adapter.generation == "command_handler"
    # time.time() with no arguments is one library call too: equivalence, not the analyzer, judges it.
    assert split(adapter) == ({"sqrt", "factorial", "now", "time"}, {"uptime": {"adapter_state"}})
    assert adapter.tool("now").mapping.target == "time.time"
    factorial = adapter.tool("factorial")
    assert (factorial.exposure, factorial.function) == ("process_command", "SelfDispatching.handle_factorial")
    assert [(p.name, p.required, p.default) for p in factorial.params] == [("n", False, 5)]
    assert adapter.tool("sqrt").mapping.wrap == {"result_key": "result", "constants": {"status": "ok"}}


def test_module_names_are_the_ones_a_worker_imports(tmp_path):
    # A file inside a package is named with its package, and imports from above the topmost package.
    report = analyze_path(FIXTURES / "handlers_pkg" / "adapter.py")
    assert report.adapters[0].module == "handlers_pkg.adapter"
    assert report.import_root == str(FIXTURES)
    # A plain directory of modules is itself what a worker puts on its path.
    plain = tmp_path / "adapters"
    plain.mkdir()
    (plain / "m.py").write_text("import math\nfrom snakepit_bridge.base_adapter import BaseAdapter, tool\n"
                                "class M(BaseAdapter):\n    @tool()\n    def f(self, x: float):\n        return math.floor(x)\n")
    (tmp_path / "elsewhere.py").write_text("x = 1\n")
    (plain / "linked.py").symlink_to(tmp_path / "elsewhere.py")  # a symlinked module keeps its place
    report = analyze_path(plain)
    assert (report.import_root, report.adapters[0].module) == (str(plain), "m")
    assert propose_config(report)["custom_adapter"] is None


def test_evidence_points_at_the_earliest_line(tmp_path):
    src = tmp_path / "deep_first.py"
    src.write_text(
        "from snakepit_bridge.base_adapter import BaseAdapter, tool\n"
        "class A(BaseAdapter):\n"
        "    @tool()\n"
        "    def g(self, x: int):\n"
        "        return [\n"
        "            [self.first],\n"
        "            self.second,\n"
        "        ]\n"
    )
    # A walk meets self.second first (it is shallower); the report points at line 6 all the same.
    [reason] = analyze_path(src).adapters[0].tool("g").reasons
    assert (reason.category, reason.line, reason.source) == ("adapter_state", 6, "[self.first],")
