"""The generic adapter: proposed configs, aliased tools, refusals, and JSON results."""

from __future__ import annotations

import datetime
import fractions
import json
import math
from pathlib import Path

import pytest

from deployment.adapters.analyzer import analyze_path
from deployment.adapters.errors import (
    BadArguments,
    BlockedFunction,
    CallRefused,
    FunctionNotAllowed,
    GenericConfigError,
    ModuleNotAllowed,
)
from deployment.adapters.generic import CONFIG_ENV, GenericAdapter, UnknownTool
from deployment.adapters.jsonify import to_json
from deployment.adapters.proposal import propose_config

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "adapters"


def lib(module: str, functions: list[str] | None = None, allowed: list[str] | None = None, blocked: list[str] | None = None):
    return {"name": module, "module": module, "function_filters": functions or [],
            "security_config": {"allowed_modules": allowed or [module], "blocked_functions": blocked or []}}


@pytest.fixture(scope="module")
def proposed() -> dict:
    return propose_config(analyze_path(FIXTURES / "base_adapter_tools.py"))


def test_proposal_admits_exactly_what_the_migratable_tools_call(proposed):
    assert set(proposed["tool_aliases"]) == {"square_root", "mean", "round_to", "title", "log_base", "fsum", "gcd"}
    libs = {l["name"]: (l["function_filters"], l["security_config"]["allowed_modules"], l["pip_package"])
            for l in proposed["libraries"]}
    assert libs == {
        "builtins": (["round"], ["builtins"], None),
        "math": (["fsum", "gcd", "log", "sqrt"], ["math"], None),
        "statistics": (["mean"], ["statistics"], None),
        "string": (["capwords"], ["string"], None),
    }
    assert set(proposed["custom_tools"]) == {"cached_factorial", "double_hypot", "read_config", "session_hits",
                                             "ask_host", "countdown", "restore", "scaled", "describe"}
    assert proposed["custom_tools"]["restore"]["reasons"] == ["pickle"]
    assert "pickle.*" in proposed["libraries"][0]["security_config"]["blocked_functions"]
    json.dumps(proposed)  # the proposal is plain JSON


def test_aliases_call_the_mapped_functions(proposed):
    g = GenericAdapter(proposed)
    assert g.execute_tool("square_root", {"x": 9}, None) == 3.0
    assert g.execute_tool("round_to", {"x": 2.34567}, None) == 2.35  # default ndigits=2 applied
    assert g.execute_tool("round_to", {"x": 2.34567, "ndigits": 3}, None) == 2.346
    assert g.execute_tool("title", {"text": "hello   big world"}, None) == "Hello Big World"
    assert g.execute_tool("log_base", {"x": 100.0}, None) == math.log(100.0, 10)
    assert g.execute_tool("fsum", {"values": [0.1] * 10}, None) == 1.0
    assert g.execute_tool("gcd", {"a": 12, "b": 18}, None) == 6
    with pytest.raises(BadArguments, match="missing required argument 'x'"):
        g.execute_tool("square_root", {}, None)
    with pytest.raises(BadArguments, match="unexpected keyword argument 'y'"):
        g.execute_tool("square_root", {"x": 1, "y": 2}, None)
    # Tools that stay custom are served by the custom adapter; anything else is unknown.
    assert proposed["custom_adapter"] == "base_adapter_tools.MathToolsAdapter"
    assert g.execute_tool("cached_factorial", {"n": 3}, None) == 6
    with pytest.raises(UnknownTool, match="_clamp"):
        g.execute_tool("_clamp", {"x": -1}, None)
    # Library exceptions pass through unchanged, so they can be compared with the custom adapter's.
    with pytest.raises(ValueError, match="math domain error"):
        g.execute_tool("square_root", {"x": -1}, None)


def test_command_handler_results_keep_their_envelope():
    g = GenericAdapter(propose_config(analyze_path(FIXTURES / "command_handler_v01.py")))
    assert g.execute_tool("sqrt", {"x": 16}, None) == {"status": "ok", "result": 4.0}
    assert g.execute_tool("hypot", {"x": 3}, None) == {"status": "ok", "result": 3.0}
    assert g.execute_tool("hypot", {"x": 3, "y": 4}, None) == {"status": "ok", "result": 5.0}


def test_generic_call_tool_and_refusals(tmp_path, monkeypatch):
    (tmp_path / "sneaky.py").write_text("run = eval\n\ndef double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    g = GenericAdapter({"libraries": [
        lib("math", ["sqrt", "f*"], blocked=["math.factorial"]),
        lib("os", allowed=["os.*"]),
        lib("builtins", ["*"]),
        lib("sneaky"),
    ]})
    assert g.execute_tool("call", {"target": "math.sqrt", "args": [4]}, None) == 2.0
    assert g.execute_tool("call", {"target": "math.fsum", "args": [[0.5, 0.25]]}, None) == 0.75
    assert g.execute_tool("call", {"target": "sneaky.double", "kwargs": {"x": 4}}, None) == 8
    # "os.*" admits os and its submodules; no function_filters means every (unblocked) function.
    assert g.execute_tool("call", {"target": "os.path.join", "args": ["a", "b"]}, None) == "a/b"
    refusals = {
        "os.system": (BlockedFunction, "blocked function 'system'"),
        "builtins.eval": (BlockedFunction, "blocked function 'eval'"),
        "builtins.getattr": (BlockedFunction, "builtins.*attr"),
        "builtins.open": (BlockedFunction, "'open'"),
        "pickle.loads": (BlockedFunction, "pickle.*"),
        "math.factorial": (BlockedFunction, "math.factorial"),
        "math.cos": (FunctionNotAllowed, "function_filters of library 'math'"),
        "statistics.mean": (ModuleNotAllowed, "allowed_modules"),
        "math.__loader__": (BlockedFunction, "private and dunder"),
        "sneaky.run": (BlockedFunction, "builtins.eval, which is always blocked"),
        "nonsense": (CallRefused, "dotted"),
    }
    for target, (error, text) in refusals.items():
        with pytest.raises(error) as info:
            g.execute_tool("call", {"target": target, "args": ["1"]}, None)
        assert text is None or text in str(info.value), (target, str(info.value))
    assert isinstance(FunctionNotAllowed("x"), CallRefused) and BlockedFunction("x").exit_code == 2


def test_awaitable_results_are_awaited():
    g = GenericAdapter({"libraries": [lib("asyncio", ["sleep"])]})
    assert g.call("asyncio.sleep", [0, "done"]) == "done"


def test_results_are_json_with_tagged_types():
    value = {
        "t": (1, 2.5),
        "s": {3, 1, 2},
        "c": complex(1, -2),
        "f": fractions.Fraction(1, 3),
        "n": float("nan"),
        "i": float("-inf"),
        "b": b"\x00\xff",
        "k": {1: "one"},
        "d": datetime.date(2026, 11, 25),
    }
    assert to_json(value) == {
        "t": [1, 2.5],
        "s": {"__type__": "set", "items": [1, 2, 3]},
        "c": {"__type__": "complex", "real": 1.0, "imag": -2.0},
        "f": {"__type__": "fractions.Fraction", "value": "1/3"},
        "n": {"__type__": "float", "value": "nan"},
        "i": {"__type__": "float", "value": "-inf"},
        "b": {"__type__": "bytes", "base64": "AP8="},
        "k": {"__type__": "dict", "items": [[1, "one"]]},
        "d": {"__type__": "datetime.date", "value": "2026-11-25"},
    }
    json.dumps(to_json(value), allow_nan=False)
    deep: list = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        to_json(deep)


@pytest.mark.parametrize(
    "config, text",
    [
        ([], "must be a JSON object"),
        ({"libraries": "math"}, "'libraries' must be a list"),
        ({"libraries": [{"module": "1bad"}]}, "libraries[0].module must be a dotted module name"),
        ({"libraries": [{"module": "m", "function_filters": "sqrt"}]}, "function_filters must be a list"),
        ({"libraries": [], "tool_aliases": {"t": {"target": "sqrt"}}}, "tool_aliases.t.target must be a dotted"),
        ({"libraries": [], "tool_aliases": {"t": {"target": "m.f", "args": [{"x": 1}]}}}, "tool_aliases.t.args[0] must be"),
        ({"libraries": [], "tool_aliases": {"t": {"target": "m.f", "args": [{"param": "y"}], "params": [{"name": "x"}]}}},
         "tool_aliases.t: argument source {\"param\": 'y'} is not one of its params"),
    ],
)
def test_malformed_configs(config, text):
    with pytest.raises(GenericConfigError) as info:
        GenericAdapter(config)
    assert text in str(info.value)


def test_config_from_file_and_environment(tmp_path, monkeypatch, proposed):
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    with pytest.raises(GenericConfigError, match=CONFIG_ENV):
        GenericAdapter()
    path = tmp_path / "generic.json"
    path.write_text(json.dumps(proposed))
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert GenericAdapter().execute_tool("gcd", {"a": 4, "b": 6}, None) == 2
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(GenericConfigError, match="nested too deeply"):
        GenericAdapter(deep)
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "libraries": [,]\n}')
    with pytest.raises(GenericConfigError, match=r"broken.json, line 2: not valid JSON"):
        GenericAdapter(broken)


def test_a_fleet_worker_hosts_the_generic_adapter_like_a_custom_one(tmp_path, monkeypatch, proposed):
    from deployment.pool.adapter_host import AdapterHost
    from snakepit_bridge.session_context import SessionContext

    path = tmp_path / "generic.json"
    path.write_text(json.dumps(proposed))
    monkeypatch.setenv(CONFIG_ENV, str(path))
    host = AdapterHost(GenericAdapter)
    assert {t["name"] for t in host.tools} == {*proposed["tool_aliases"], *proposed["custom_tools"], "call"}
    assert next(t for t in host.tools if t["name"] == "round_to")["parameters"][1] == {
        "name": "ndigits", "type": "int", "required": False}
    assert next(t for t in host.tools if t["name"] == "countdown")["supports_streaming"]  # the custom tool's own metadata
    assert host.call("round_to", {"x": 1.23456}, SessionContext("s1")) == 1.23
    with pytest.raises(BlockedFunction):
        host.call("call", {"target": "builtins.eval", "args": ["1"]}, SessionContext("s1"))
    # The mixed configuration: stateful tools reach the custom adapter with the request's session.
    assert host.call("session_hits", {}, SessionContext("s2", metadata={"hits": 3})) == 3
    assert host.call("countdown", {"n": 2}, SessionContext("s2")) == [{"i": 2}, {"i": 1}]


def test_a_custom_adapter_that_cannot_load_is_a_config_error(proposed):
    with pytest.raises(GenericConfigError, match="custom_adapter nowhere.Adapter: cannot be loaded"):
        GenericAdapter({**proposed, "custom_adapter": "nowhere.Adapter"})
    with pytest.raises(GenericConfigError, match="both aliased and listed in custom_tools"):
        GenericAdapter({**proposed, "custom_tools": {"gcd": {}}})
    with pytest.raises(GenericConfigError, match="'custom_adapter' must be a dotted"):
        GenericAdapter({**proposed, "custom_adapter": "no dots"})


def test_aliases_outside_the_rules_are_refused_when_the_config_loads():
    base = {"libraries": [lib("math", ["sqrt"]), lib("builtins", ["*"])]}
    for target, text in (("math.cos", "function_filters"), ("statistics.mean", "allowed_modules"),
                         ("builtins.eval", "blocked")):
        config = {**base, "tool_aliases": {"t": {"target": target, "args": [{"param": "x"}]}}}
        with pytest.raises(GenericConfigError) as info:
            GenericAdapter(config)
        assert f"tool_aliases.t: {target}" in str(info.value) and text in str(info.value)


def test_conflicting_tool_names_across_adapters_stay_custom(tmp_path):
    (tmp_path / "a.py").write_text("import math\nfrom snakepit_bridge.base_adapter import BaseAdapter, tool\n"
                                   "class A(BaseAdapter):\n    @tool()\n    def root(self, x: float):\n        return math.sqrt(x)\n"
                                   "    @tool()\n    def same(self, x: float):\n        return math.fabs(x)\n")
    (tmp_path / "b.py").write_text("import math\nfrom snakepit_bridge.base_adapter import BaseAdapter, tool\n"
                                   "class B(BaseAdapter):\n    @tool()\n    def root(self, x: float):\n        return math.cbrt(x)\n"
                                   "    @tool()\n    def same(self, x: float):\n        return math.fabs(x)\n")
    config = propose_config(analyze_path(tmp_path))
    assert set(config["tool_aliases"]) == {"same"}
    assert config["custom_tools"]["root"] == {"adapter": "A, B", "reasons": ["conflicting_mappings"]}
    assert config["libraries"][0]["function_filters"] == ["fabs"]


def test_constants_must_survive_the_json_config(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    src = tmp_path / "consts.py"
    src.write_text(
        "from snakepit_bridge.base_adapter import BaseAdapter, tool\n"
        "PAIR = (1, 2)\n"
        "class Consts(BaseAdapter):\n"
        "    @tool()\n    def pair(self, x: int):\n        return repr(PAIR)\n"
        "    @tool()\n    def raw(self, x: int):\n        return repr(b'x')\n"
        "    @tool()\n    def dflt(self, x: bytes = b'a'):\n        return len(x)\n"
        "    @tool()\n    def huge(self, x: float):\n        return max(x, 1e999)\n"
    )
    adapter = analyze_path(src).adapter("Consts")
    assert adapter.tool("pair").mapping.args == [{"const": [1, 2], "tuple": True}]
    for name in ("raw", "dflt", "huge"):
        assert adapter.tool(name).categories() == {"composite_logic"}, name
    assert "no exact JSON form" in adapter.tool("dflt").reasons[0].detail
    config = json.loads(json.dumps(propose_config(analyze_path(src))))  # through JSON, as a worker reads it
    assert GenericAdapter(config).execute_tool("pair", {"x": 0}, None) == "(1, 2)"


def test_custom_tools_keep_their_thread_safety_behind_a_thread_safe_generic_adapter(tmp_path, monkeypatch):
    import threading

    from deployment.pool.adapter_host import AdapterHost
    from snakepit_bridge.session_context import SessionContext

    (tmp_path / "busy_adapter.py").write_text(
        "import threading, time\n"
        "from snakepit_bridge.base_adapter import BaseAdapter, tool\n"
        "STATE = {'active': 0, 'most': 0}\n"
        "LOCK = threading.Lock()\n"
        "class Busy(BaseAdapter):\n"
        "    @tool()\n"
        "    def slow(self) -> int:\n"
        "        with LOCK:\n"
        "            STATE['active'] += 1\n"
        "            STATE['most'] = max(STATE['most'], STATE['active'])\n"
        "        time.sleep(0.1)\n"
        "        with LOCK:\n"
        "            STATE['active'] -= 1\n"
        "        return STATE['most']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "generic.json"
    path.write_text(json.dumps({"libraries": [lib("math", ["sqrt"])], "custom_adapter": "busy_adapter.Busy",
                                "custom_tools": {"slow": {}},
                                "tool_aliases": {"root": {"target": "math.sqrt", "args": [{"param": "x"}]}}}))
    monkeypatch.setenv(CONFIG_ENV, str(path))
    host = AdapterHost(GenericAdapter)
    assert host.thread_safe  # generic calls may run side by side ...
    threads = [threading.Thread(target=host.call, args=("slow", {}, SessionContext(f"s{i}"))) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    import busy_adapter

    assert busy_adapter.STATE["most"] == 1  # ... but a thread-unsafe custom adapter still gets one call at a time
    assert host.call("root", {"x": 81}, SessionContext("s")) == 9.0
