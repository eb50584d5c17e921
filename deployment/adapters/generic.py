"""The generic adapter: library calls by dotted path, configured, with no adapter code.

Configuration (JSON; the form ``adapter analyze`` proposes)::

    {"libraries": [{"name": "math", "module": "math", "pip_package": null,
                    "function_filters": ["sqrt", "hypot"],
                    "security_config": {"allowed_modules": ["math"],
                                        "blocked_functions": ["eval", "exec", "pickle.load"]}}],
     "tool_aliases": {"square_root": {"target": "math.sqrt", "args": [{"param": "x"}], "kwargs": {},
                                      "params": [{"name": "x", "required": true}], "wrap": null}}}

A call is made only when its module matches a library's ``allowed_modules``,
its function passes that library's ``function_filters``, and it is neither in
``blocked_functions`` nor one of :data:`DEFAULT_BLOCKED_FUNCTIONS` (always
applied; they deny code execution, pickle, process control, and the usual file
and network entry points such as ``open``, ``socket.*``, ``urllib.*``).
Nothing else is enforced: upstream's ``file_access``, ``network_access``,
``cache_config`` and ``execution`` keys are not implemented, so a library
admitted here can do whatever its functions do.
A mixed configuration names the custom adapter class in ``custom_adapter``
and the tools it keeps in ``custom_tools``: those calls are served by that
class exactly as a worker served it before, so one worker pool serves both.
``execute_tool(tool_name, arguments, context)`` is the BaseAdapter
entry point, so a worker hosts :class:`GenericAdapter` like a custom adapter;
with no configuration given it reads the JSON file named by
``SNAKEPIT_GENERIC_CONFIG``.  Results come back as JSON data
(:func:`deployment.adapters.jsonify.to_json`).
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import importlib
import inspect
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployment.adapters.errors import (
    BadArguments,
    BlockedFunction,
    CallRefused,
    FunctionNotAllowed,
    GenericConfigError,
    ModuleNotAllowed,
)
from deployment.adapters.jsonify import to_json
from deployment.pool.adapter_host import AdapterHost
from deployment.pool.adapter_host import UnknownTool as HostUnknownTool
from snakepit_bridge.base_adapter import ToolMetadata

CONFIG_ENV = "SNAKEPIT_GENERIC_CONFIG"
CALL_TOOL = "call"

# Always refused, whatever the configuration says.  A pattern without a dot
# matches that function name in any module; with a dot, the whole target.
DEFAULT_BLOCKED_FUNCTIONS: tuple[str, ...] = (
    "eval", "exec", "__import__", "breakpoint", "open", "input", "system", "popen",
    "builtins.exit", "builtins.quit", "builtins.help", "builtins.compile", "builtins.globals", "builtins.locals", "builtins.vars", "builtins.*attr",
    "pickle.*", "_pickle.*", "cPickle.*", "dill.*", "cloudpickle.*", "joblib.load", "joblib.dump", "marshal.*",
    "shelve.*", "pandas.read_pickle", "numpy.load", "torch.load",
    "os.system", "os.popen", "os.exec*", "os.spawn*", "os.fork*", "os.kill*", "os.remove", "os.unlink",
    "os.rmdir", "os.removedirs", "os.rename", "os.replace", "os.chmod", "os.chown", "os.putenv", "os.unsetenv",
    "shutil.*", "subprocess.*", "pty.*", "ctypes.*", "importlib.*", "runpy.*", "code.*", "codeop.*",
    "sys.*", "socket.*", "urllib.*", "http.*", "webbrowser.*",
)
_DANGEROUS_NAMES = ("builtins.eval", "builtins.exec", "builtins.compile", "builtins.__import__", "builtins.open",
                    "builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.breakpoint",
                    "os.system", "os.popen", "pickle.load", "pickle.loads", "marshal.load", "marshal.loads",
                    "importlib.import_module", "subprocess.run", "subprocess.Popen")
_TARGET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def _dangerous_objects() -> dict[int, str]:
    found: dict[int, str] = {}
    for name in _DANGEROUS_NAMES:
        module, _, attr = name.rpartition(".")
        try:
            found[id(getattr(importlib.import_module(module), attr))] = name
        except (ImportError, AttributeError):
            continue
    return found


_DANGEROUS = _dangerous_objects()


class UnknownTool(CallRefused, HostUnknownTool):
    """A tool name that is neither an alias, a custom tool, nor the generic call.

    Also the fleet host's ``UnknownTool``, so a worker answers it exactly as it
    answers an unknown tool of an adapter without its own dispatch (404).
    """


@dataclass
class Library:
    """One library of the configuration and the rules it sets."""

    name: str
    module: str
    function_filters: list[str]
    allowed_modules: list[str]
    blocked_functions: list[str]

    def allows_module(self, module: str) -> bool:
        """Whether ``module`` matches one of ``allowed_modules`` (``x.*`` also admits ``x``)."""
        return any(_module_matches(module, pattern) for pattern in self.allowed_modules)

    def allows_function(self, target: str) -> bool:
        """Whether the target passes ``function_filters`` (none means every function)."""
        if not self.function_filters:
            return True
        rel = target[len(self.module) + 1:] if target.startswith(self.module + ".") else target.rpartition(".")[2]
        return any(fnmatch.fnmatchcase(rel, f) for f in self.function_filters)


@dataclass
class Alias:
    """A custom tool name and the generic call it stands for."""

    name: str
    target: str
    args: list[dict[str, Any]]
    kwargs: dict[str, dict[str, Any]]
    params: list[dict[str, Any]]
    wrap: dict[str, Any] | None = None


@dataclass
class GenericConfig:
    """A validated generic adapter configuration."""

    libraries: list[Library]
    aliases: dict[str, Alias] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    custom_adapter: str | None = None  # "module.Class" serving the tools that stay custom
    custom_tools: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, raw: Any, where: str = "generic config") -> "GenericConfig":
        """Validate a decoded configuration; every problem names its location."""
        if not isinstance(raw, dict):
            raise GenericConfigError(f"{where}: must be a JSON object with 'libraries'")
        libs = raw.get("libraries")
        if not isinstance(libs, list):
            raise GenericConfigError(f"{where}: 'libraries' must be a list", hint='e.g. "libraries": [{"name": "math", "module": "math"}]')
        libraries = [_library(lib, f"{where}: libraries[{i}]") for i, lib in enumerate(libs)]
        aliases_raw = raw.get("tool_aliases", {})
        if not isinstance(aliases_raw, dict):
            raise GenericConfigError(f"{where}: 'tool_aliases' must be an object mapping tool names to calls")
        aliases = {name: _alias(name, a, f"{where}: tool_aliases.{name}") for name, a in aliases_raw.items()}
        custom_adapter = raw.get("custom_adapter")
        if custom_adapter is not None and not (isinstance(custom_adapter, str) and _TARGET.match(custom_adapter)):
            raise GenericConfigError(f"{where}: 'custom_adapter' must be a dotted 'module.Class' path or null, got {custom_adapter!r}")
        custom_tools = raw.get("custom_tools", {})
        if not isinstance(custom_tools, (dict, list)) or not all(isinstance(t, str) for t in custom_tools):
            raise GenericConfigError(f"{where}: 'custom_tools' must be an object (or list) of tool names")
        overlap = sorted(set(custom_tools) & set(aliases))
        if overlap:
            raise GenericConfigError(f"{where}: tool {overlap[0]!r} is both aliased and listed in custom_tools")
        config = cls(libraries, aliases, raw, custom_adapter, frozenset(custom_tools))
        for name, alias in aliases.items():
            try:
                config.check(alias.target)
            except CallRefused as exc:
                raise GenericConfigError(f"{where}: tool_aliases.{name}: {exc.message}", hint=exc.hint) from None
        return config

    def check(self, target: Any) -> None:
        """Raise the :class:`CallRefused` that the rules give ``target``, if any (imports nothing)."""
        if not isinstance(target, str) or not _TARGET.match(target):
            raise CallRefused(f"target {target!r} is not a dotted 'module.function' path")
        module = target.rpartition(".")[0]
        if any(part.startswith("_") for part in target.split(".")):
            raise BlockedFunction(f"{target}: private and dunder names are never callable")
        blocked = _blocked_by(target, DEFAULT_BLOCKED_FUNCTIONS) or next(
            (p for lib in self.libraries if (p := _blocked_by(target, lib.blocked_functions))), None
        )
        if blocked:
            raise BlockedFunction(f"{target} is blocked (matches blocked function {blocked!r})")
        libraries = [lib for lib in self.libraries if lib.allows_module(module)]
        if not libraries:
            raise ModuleNotAllowed(
                f"{target}: module {module!r} is not in any library's allowed_modules",
                hint="add the module to security_config.allowed_modules of a library",
            )
        if not any(lib.allows_function(target) for lib in libraries):
            raise FunctionNotAllowed(
                f"{target}: not in the function_filters of library {libraries[0].name!r}",
                hint="add the function to that library's function_filters",
            )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "GenericConfig":
        """Read and validate a JSON configuration file."""
        p = Path(path)
        try:
            stat = p.stat()
        except OSError as exc:
            raise GenericConfigError(f"{path}: cannot read generic config ({exc.strerror or exc})") from None
        return _load_cached(str(p), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, _mtime: int, _size: int) -> GenericConfig:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise GenericConfigError(f"{path}: cannot read generic config ({exc})") from None
    except json.JSONDecodeError as exc:
        raise GenericConfigError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise GenericConfigError(f"{path}: JSON nested too deeply to read") from None
    return GenericConfig.parse(raw, path)


def _strings(value: Any, where: str, default: list[str] | None = None) -> list[str]:
    if value is None and default is not None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise GenericConfigError(f"{where} must be a list of non-empty strings")
    return value


def _library(raw: Any, where: str) -> Library:
    if not isinstance(raw, dict):
        raise GenericConfigError(f"{where} must be an object")
    module = raw.get("module")
    if not isinstance(module, str) or not re.match(r"^[A-Za-z_][\w.]*$", module):
        raise GenericConfigError(f"{where}.module must be a dotted module name, got {module!r}")
    security = raw.get("security_config", {})
    if not isinstance(security, dict):
        raise GenericConfigError(f"{where}.security_config must be an object")
    return Library(
        name=str(raw.get("name", module)),
        module=module,
        function_filters=_strings(raw.get("function_filters"), f"{where}.function_filters", []),
        allowed_modules=_strings(security.get("allowed_modules"), f"{where}.security_config.allowed_modules", [module]),
        blocked_functions=_strings(security.get("blocked_functions"), f"{where}.security_config.blocked_functions", []),
    )


def _source(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict) or not (("param" in raw) ^ ("const" in raw)):
        raise GenericConfigError(f"{where} must be {{\"param\": name}} or {{\"const\": value}}")
    if "param" in raw and not isinstance(raw["param"], str):
        raise GenericConfigError(f"{where}.param must be a string")
    if raw.get("tuple") and not isinstance(raw.get("const"), list):
        raise GenericConfigError(f"{where}: \"tuple\": true needs a list \"const\"")
    return raw


def _alias(name: str, raw: Any, where: str) -> Alias:
    if not isinstance(raw, dict):
        raise GenericConfigError(f"{where} must be an object")
    target = raw.get("target")
    if not isinstance(target, str) or not _TARGET.match(target):
        raise GenericConfigError(f"{where}.target must be a dotted 'module.function', got {target!r}")
    args = raw.get("args", [])
    kwargs = raw.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise GenericConfigError(f"{where}: 'args' must be a list and 'kwargs' an object")
    params = raw.get("params")
    if params is None:
        used = [s["param"] for s in [*args, *kwargs.values()] if isinstance(s, dict) and "param" in s]
        params = [{"name": p, "required": True} for p in dict.fromkeys(used)]
    if not isinstance(params, list) or not all(isinstance(p, dict) and isinstance(p.get("name"), str) for p in params):
        raise GenericConfigError(f"{where}.params must be a list of {{\"name\": ..., \"required\": ...}}")
    names = {p["name"] for p in params}
    for s in [*args, *kwargs.values()]:
        if isinstance(s, dict) and "param" in s and s["param"] not in names:
            raise GenericConfigError(f"{where}: argument source {{\"param\": {s['param']!r}}} is not one of its params")
    wrap = raw.get("wrap")
    if wrap is not None and not (isinstance(wrap, dict) and isinstance(wrap.get("result_key"), str)):
        raise GenericConfigError(f"{where}.wrap must be null or {{\"result_key\": ..., \"constants\": {{...}}}}")
    return Alias(
        name,
        target,
        [_source(s, f"{where}.args[{i}]") for i, s in enumerate(args)],
        {k: _source(s, f"{where}.kwargs.{k}") for k, s in kwargs.items()},
        params,
        wrap,
    )


def _module_matches(module: str, pattern: str) -> bool:
    if pattern.endswith(".*") and module == pattern[:-2]:
        return True
    return fnmatch.fnmatchcase(module, pattern)


def _blocked_by(target: str, patterns: list[str] | tuple[str, ...]) -> str | None:
    function = target.rpartition(".")[2]
    for pattern in patterns:
        subject = target if "." in pattern else function
        if fnmatch.fnmatchcase(subject, pattern):
            return pattern
    return None


class GenericAdapter:
    """Calls configured library functions; hosted by a worker like any BaseAdapter.

    Generic calls share nothing, so the adapter is thread-safe; tools that stay
    custom run through the fleet's own :class:`AdapterHost` for the custom class
    (one per process), which gives them a fresh instance, the session context,
    ``initialize``/``cleanup``, and one-at-a-time calls unless that class
    declares ``__thread_safe__``, exactly as when it was the pool's adapter.
    """

    __thread_safe__ = True

    def __init__(self, config: GenericConfig | dict[str, Any] | str | os.PathLike[str] | None = None) -> None:
        if config is None:
            path = os.environ.get(CONFIG_ENV)
            if not path:
                raise GenericConfigError(
                    "the generic adapter has no configuration",
                    hint=f"set {CONFIG_ENV} to the JSON file `snakepit-migrate adapter analyze --write-config` wrote",
                )
            config = path
        if isinstance(config, GenericConfig):
            self.config = config
        elif isinstance(config, (str, os.PathLike)):
            self.config = GenericConfig.load(config)
        else:
            self.config = GenericConfig.parse(config)
        self.session_context: Any = None
        # Imported now, so a worker that cannot load it fails at start rather than on a call.
        self.custom_class = _load_custom(self.config.custom_adapter) if self.config.custom_adapter else None

    # BaseAdapter protocol -------------------------------------------------------------

    def set_session_context(self, session_context: Any) -> None:
        """Generic calls never use the session; tools that stay custom get it with each call."""
        self.session_context = session_context

    def get_tools(self) -> list[ToolMetadata]:
        """Aliased tools, the tools that stay custom, and the generic ``call`` tool."""
        tools = [ToolMetadata(a.name, f"generic call to {a.target}", parameters=[
            {"name": p["name"], "type": p.get("annotation", "any"), "required": p.get("required", True)} for p in a.params
        ]) for a in self.config.aliases.values()]
        if self.custom_class is not None:
            described = {t["name"]: t for t in _custom_host(self.custom_class).tools}
            tools += [ToolMetadata(**described[name]) if name in described else ToolMetadata(name)
                      for name in sorted(self.config.custom_tools)]
        tools.append(ToolMetadata(CALL_TOOL, "call an allowed library function by dotted path", parameters=[
            {"name": "target", "type": "str", "required": True}, {"name": "args", "type": "list", "required": False},
            {"name": "kwargs", "type": "dict", "required": False}]))
        return tools

    def execute_tool(self, tool_name: str, arguments: dict[str, Any] | None, context: Any = None) -> Any:
        """Run an aliased tool, a tool that stays custom, or ``call`` with ``{"target", "args", "kwargs"}``."""
        arguments = {} if arguments is None else arguments
        if not isinstance(arguments, dict):
            raise BadArguments(f"{tool_name}: arguments must be an object, got {type(arguments).__name__}")
        alias = self.config.aliases.get(tool_name)
        if alias is not None:
            return self._run_alias(alias, arguments)
        if self.custom_class is not None and tool_name in self.config.custom_tools:
            return _custom_host(self.custom_class).call(tool_name, arguments, context)
        if tool_name == CALL_TOOL:
            unknown = set(arguments) - {"target", "args", "kwargs"}
            if unknown:
                raise BadArguments(f"call: unexpected arguments {sorted(unknown)}")
            args, kwargs = arguments.get("args", []), arguments.get("kwargs", {})
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise BadArguments("call: 'args' must be a list and 'kwargs' an object")
            return self.call(arguments.get("target"), args, kwargs)
        raise UnknownTool(
            f"no tool {tool_name!r}: it is not in tool_aliases or custom_tools, nor the generic {CALL_TOOL!r} tool",
            hint="add it to tool_aliases, or keep it on the custom adapter",
        )

    # The generic call -----------------------------------------------------------------

    def resolve(self, target: Any) -> Any:
        """The function ``target`` names, once every rule allows it."""
        self.config.check(target)
        module, _, function = target.rpartition(".")
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise CallRefused(f"{target}: cannot import module {module!r} ({exc})", hint="install the library in the worker's environment") from None
        func = getattr(mod, function, None)
        if func is None or not callable(func):
            raise CallRefused(f"{target}: module {module!r} has no callable {function!r}")
        if id(func) in _DANGEROUS:
            raise BlockedFunction(f"{target} is {_DANGEROUS[id(func)]}, which is always blocked")
        return func

    def call(self, target: Any, args: list[Any] | tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        """Call ``target(*args, **kwargs)`` and return its result as JSON data."""
        func = self.resolve(target)
        result = func(*args, **(kwargs or {}))
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return to_json(result)

    def _run_alias(self, alias: Alias, arguments: dict[str, Any]) -> Any:
        names = [p["name"] for p in alias.params]
        unknown = [k for k in arguments if k not in names]
        if unknown:
            raise BadArguments(f"{alias.name}() got an unexpected keyword argument {unknown[0]!r}")
        values: dict[str, Any] = {}
        for p in alias.params:
            if p["name"] in arguments:
                values[p["name"]] = arguments[p["name"]]
            elif p.get("required", True):
                raise BadArguments(f"{alias.name}() missing required argument {p['name']!r}")
            else:
                values[p["name"]] = p.get("default")

        def value(source: dict[str, Any]) -> Any:
            if "param" in source:
                return values[source["param"]]
            return tuple(source["const"]) if source.get("tuple") else source["const"]

        result = self.call(alias.target, [value(s) for s in alias.args], {k: value(s) for k, s in alias.kwargs.items()})
        if alias.wrap is None:
            return result
        return {**alias.wrap.get("constants", {}), alias.wrap["result_key"]: result}


_CUSTOM_HOSTS: dict[type, AdapterHost] = {}
_CUSTOM_HOSTS_LOCK = threading.Lock()


def _custom_host(cls: type) -> AdapterHost:
    """The one host of a custom adapter class in this process."""
    with _CUSTOM_HOSTS_LOCK:
        if cls not in _CUSTOM_HOSTS:
            _CUSTOM_HOSTS[cls] = AdapterHost(cls)
        return _CUSTOM_HOSTS[cls]


def _load_custom(path: str) -> type:
    module, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except Exception as exc:  # the custom adapter's own import failing
        raise GenericConfigError(f"custom_adapter {path}: cannot be loaded ({type(exc).__name__}: {exc})",
                                 hint="the worker must be able to import the custom adapter as before") from None
    if not isinstance(cls, type) or not callable(getattr(cls, "execute_tool", None)):
        raise GenericConfigError(f"custom_adapter {path}: not an adapter class with execute_tool")
    return cls


async def _await(awaitable: Any) -> Any:
    return await awaitable


def blocked_defaults() -> list[str]:
    """The always-applied blocked patterns, for proposals and documentation."""
    return list(DEFAULT_BLOCKED_FUNCTIONS)

