"""Classify one tool body: a single library call (with its mapping) or the reasons it is not.

Pure functions over the AST.  A body migrates automatically only when, after
its docstring, leading imports and bindings of parameters to local names, it
is one ``return`` of one call into an imported library (or a builtin) whose
arguments are parameters or constants, optionally wrapped in a dict of
constants (the command-handler ``{"status": "ok", "result": ...}`` shape).
Everything else gets reasons, each with the line that shows it.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from typing import Any

from deployment.adapters.model import Mapping, Param, Reason, REASON_ORDER
from deployment.adapters.source import BUILTIN_NAMES, ModuleIndex, literal

SESSION_ATTRS = frozenset({"session_context", "context", "session", "session_id", "ctx", "_session_context"})
SESSION_METHODS = frozenset(
    {"get_variable", "set_variable", "register_variable", "update_variable", "get_variables", "delete_variable",
     "watch_variable", "list_variables", "get_session", "register_program", "get_program"}
)
HOST_ATTRS = frozenset({"call_host", "host_call", "call_elixir", "call_elixir_tool", "elixir_tools"})
PICKLE_MODULES = frozenset({"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"})
PICKLE_FUNCTIONS = frozenset({"pandas.read_pickle", "torch.load", "torch.save", "numpy.load"})
IO_MODULES = frozenset(
    {"os", "io", "pathlib", "shutil", "socket", "ssl", "urllib", "http", "requests", "httpx", "aiohttp", "ftplib",
     "smtplib", "sqlite3", "tempfile", "glob", "subprocess", "boto3", "psycopg2", "asyncpg", "redis", "fileinput",
     "mmap", "zipfile", "tarfile", "csv", "logging", "webbrowser", "telnetlib", "xmlrpc", "grpc"}
)
IO_FUNCTIONS = frozenset(
    {"builtins.open", "builtins.print", "builtins.input", "numpy.save", "numpy.savez", "numpy.loadtxt",
     "numpy.savetxt", "numpy.genfromtxt", "numpy.fromfile", "time.sleep"}
)
IO_METHODS = frozenset(
    {"read", "write", "readline", "readlines", "writelines", "read_text", "write_text", "read_bytes", "write_bytes",
     "to_csv", "to_json", "to_parquet", "to_excel", "to_sql", "to_hdf", "savefig", "urlopen", "recv", "send",
     "sendall", "connect", "unlink", "mkdir"}
)
DYNAMIC_FUNCTIONS = frozenset(
    {"builtins.getattr", "builtins.setattr", "builtins.eval", "builtins.exec", "builtins.compile",
     "builtins.__import__", "builtins.globals", "builtins.locals", "builtins.vars", "importlib.import_module",
     "importlib.__import__", "operator.attrgetter", "operator.methodcaller"}
)
STREAM_NAMES = frozenset({"StreamChunk"})
# Methods every adapter inherits from its bridge base class.
FRAMEWORK_METHODS = frozenset(
    {"execute_tool", "call_tool", "initialize", "cleanup", "set_session_context", "get_tools",
     "register_with_session", "register_with_session_async", "process_command", "register_command",
     "get_supported_commands", "_register_commands", "_handle_unknown_command", "_create_tool_registration",
     "_create_parameter_spec"}
)


@dataclass
class Scope:
    """What a tool body can see: its module, its class, its parameters and their conventions."""

    index: ModuleIndex
    qualname: str
    self_name: str | None = "self"
    class_methods: frozenset[str] = frozenset()
    class_names: frozenset[str] = frozenset()
    ctx_param: str | None = None  # a session-context parameter (handler objects, execute_tool)
    args_dict: str | None = None  # the dict parameter of command handlers and if-chain branches
    params: list[Param] = field(default_factory=list)

    def reason(self, category: str, detail: str, node: ast.AST) -> Reason:
        line = getattr(node, "lineno", 0)
        return Reason(category, detail, line, self.index.text(line))


@dataclass
class Classification:
    params: list[Param]
    mapping: Mapping | None
    reasons: list[Reason]


def body_of(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.stmt]:
    """The statements of ``fn`` without its docstring."""
    body = list(fn.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]
    return body


def signature_params(fn: ast.FunctionDef | ast.AsyncFunctionDef, skip: int) -> tuple[list[Param], list[str]]:
    """Parameters after the first ``skip`` positional ones (``*args``/``**kwargs`` last, with their stars),
    and the bare names of ``*args``/``**kwargs``."""
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    pairs = list(zip(positional, defaults))[skip:]
    pairs += list(zip(a.kwonlyargs, a.kw_defaults))
    params = [_param(arg, default) for arg, default in pairs]
    for star, v in (("*", a.vararg), ("**", a.kwarg)):
        if v is not None:
            params.append(Param(star + v.arg, ast.unparse(v.annotation) if v.annotation else None, None, False))
    return params, [v.arg for v in (a.vararg, a.kwarg) if v is not None]


def _param(arg: ast.arg, default: ast.expr | None) -> Param:
    annotation = ast.unparse(arg.annotation) if arg.annotation is not None else None
    if default is None:
        return Param(arg.arg, annotation)
    ok, value = literal(default)
    return Param(arg.arg, annotation, value if ok else None, False, None if ok else ast.unparse(default))


def dict_params(body: list[ast.stmt], dict_name: str) -> list[Param]:
    """Parameters of a command handler, read from ``args["x"]`` and ``args.get("x", default)``."""
    found: dict[str, Param] = {}
    for node in _walk(body):
        key, default = _dict_key(node, dict_name)
        if key is None or key in found:
            continue
        if default is _REQUIRED:
            found[key] = Param(key)
        else:
            ok, value = literal(default) if default is not None else (True, None)
            found[key] = Param(key, None, value if ok else None, False, None if ok else ast.unparse(default))
    return list(found.values())


_REQUIRED = object()


def _dict_key(node: ast.AST, dict_name: str) -> tuple[str | None, Any]:
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == dict_name
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    ):
        return node.slice.value, _REQUIRED
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == dict_name
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and not node.keywords
        and len(node.args) <= 2
    ):
        return node.args[0].value, node.args[1] if len(node.args) == 2 else None
    return None, None


def _walk(stmts: list[ast.stmt]):
    for stmt in stmts:
        yield from ast.walk(stmt)


def local_names(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Every name ``fn`` binds: parameters, assignments, loop targets, local imports."""
    a = fn.args
    names = {x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs]}
    names |= {v.arg for v in (a.vararg, a.kwarg) if v is not None}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def local_imports(body: list[ast.stmt]) -> dict[str, str]:
    """Imports made inside a function body, as local name -> dotted origin."""
    found: dict[str, str] = {}
    for node in _walk(body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                found[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return found


class _Resolver:
    """Resolve a call's function expression to a dotted library target, if it is one."""

    def __init__(self, scope: Scope, fn: ast.FunctionDef | ast.AsyncFunctionDef, body: list[ast.stmt]) -> None:
        self.scope = scope
        self.imports = {**scope.index.imports, **local_imports(body)}
        self.locals = local_names(fn) - set(local_imports(body))

    def target(self, node: ast.AST) -> str | None:
        chain: list[str] = []
        while isinstance(node, ast.Attribute):
            chain.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id in self.locals:
            return None
        root = node.id
        index = self.scope.index
        if root in self.imports:
            base = self.imports[root]
        elif root in BUILTIN_NAMES and not (root in index.functions or root in index.classes or root in index.mutable or root in index.constants):
            base = f"builtins.{root}"
        else:
            return None
        return ".".join([base, *reversed(chain)])


def scan(body: list[ast.stmt], scope: Scope, resolver: _Resolver) -> list[Reason]:
    """Evidence, first per category, of what keeps a body from migrating automatically."""
    found: dict[str, Reason] = {}

    def add(category: str, detail: str, node: ast.AST) -> None:
        if category not in found:
            found[category] = scope.reason(category, detail, node)

    index = scope.index
    for node in _walk(body):
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            add("streaming", "yields results", node)
        elif isinstance(node, ast.Name):
            if node.id in STREAM_NAMES:
                add("streaming", f"uses {node.id}", node)
            elif scope.ctx_param and node.id == scope.ctx_param and isinstance(node.ctx, ast.Load):
                add("session_context", f"uses the context parameter `{node.id}`", node)
            elif node.id in index.mutable and node.id not in resolver.locals:
                add("module_state", f"uses module-level `{node.id}` (bound at line {index.mutable[node.id]})", node)
            elif node.id in scope.class_names and node.id not in resolver.locals:
                add("adapter_state", f"uses class `{node.id}` attributes", node)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            add("module_state", f"declares {'global' if isinstance(node, ast.Global) else 'nonlocal'} {', '.join(node.names)}", node)
        elif isinstance(node, ast.Attribute):
            _scan_attribute(node, scope, add)
        elif isinstance(node, ast.Call):
            _scan_call(node, scope, resolver, add)
    return [found[c] for c in REASON_ORDER if c in found]


def _scan_attribute(node: ast.Attribute, scope: Scope, add) -> None:
    attr = node.attr
    if attr in SESSION_METHODS:
        add("session_context", f"calls session method `{attr}`", node)
    if "elixir" in attr.lower() or attr in HOST_ATTRS:
        add("host_callback", f"uses `{attr}` to reach the host", node)
    if isinstance(node.value, ast.Name) and scope.self_name and node.value.id == scope.self_name:
        if attr in SESSION_ATTRS:
            add("session_context", f"uses self.{attr}", node)
        elif attr in scope.class_methods or attr in FRAMEWORK_METHODS:
            add("composite_logic", f"calls the adapter's own method self.{attr}()", node)
        elif "elixir" not in attr.lower() and attr not in HOST_ATTRS:
            add("adapter_state", f"uses adapter state self.{attr}", node)


def _scan_call(node: ast.Call, scope: Scope, resolver: _Resolver, add) -> None:
    func = node.func
    if isinstance(func, ast.Subscript):
        add("dynamic_dispatch", f"calls a function looked up at run time: {ast.unparse(func)}", node)
        return
    target = resolver.target(func)
    if target is None:
        if isinstance(func, ast.Attribute):
            if func.attr in {"read_pickle", "to_pickle"}:
                add("pickle", f"calls .{func.attr}()", node)
            elif func.attr in IO_METHODS:
                add("io", f"calls .{func.attr}()", node)
        return
    root = target.split(".")[0]
    if root in PICKLE_MODULES or target in PICKLE_FUNCTIONS:
        add("pickle", f"calls {target}", node)
    elif root in IO_MODULES or target in IO_FUNCTIONS or _is_io_function(target):
        add("io", f"calls {target}", node)
    elif target in DYNAMIC_FUNCTIONS:
        add("dynamic_dispatch", f"calls {target.removeprefix('builtins.')}", node)


def _is_io_function(target: str) -> bool:
    module, _, function = target.rpartition(".")
    return module.split(".")[0] in {"pandas", "polars", "pyarrow"} and (
        function.startswith("read_") or function.startswith("to_")
    )


def classify(
    fn: ast.FunctionDef | ast.AsyncFunctionDef,
    scope: Scope,
    *,
    body: list[ast.stmt] | None = None,
    extra: list[Reason] = (),
) -> Classification:
    """Classify ``fn`` (or the given ``body`` of it, e.g. one branch of an if-chain)."""
    body = body_of(fn) if body is None else body
    resolver = _Resolver(scope, fn, body)
    params = dict_params(body, scope.args_dict) if scope.args_dict else list(scope.params)
    reasons: dict[str, Reason] = {}
    for r in [*extra, *scan(body, scope, resolver)]:
        reasons.setdefault(r.category, r)
    mapping = None
    if not reasons:
        outcome = _single_call(fn, body, scope, resolver, params)
        if isinstance(outcome, Reason):
            reasons[outcome.category] = outcome
        else:
            mapping = outcome
    ordered = [reasons[c] for c in REASON_ORDER if c in reasons]
    return Classification(params, mapping, ordered)


def _single_call(fn, body, scope: Scope, resolver: _Resolver, params: list[Param]) -> Mapping | Reason:
    """The mapping when ``body`` is one library call on parameters and constants, else why not."""
    a = fn.args
    if scope.args_dict is None:
        for v, kind in ((a.vararg, "*"), (a.kwarg, "**")):
            if v is not None:
                return scope.reason("composite_logic", f"accepts arbitrary {kind}{v.arg}; no fixed parameter list", fn)
    for p in params:
        if p.default_source is not None:
            return scope.reason("composite_logic", f"default of `{p.name}` is computed ({p.default_source})", fn)
        if not p.required and not json_exact(p.default):
            return scope.reason("composite_logic", f"default of `{p.name}` ({p.default!r}) has no exact JSON form", fn)
    param_names = {p.name for p in params}
    aliases: dict[str, dict[str, Any]] = {}
    stmts = [s for s in body if not isinstance(s, (ast.Import, ast.ImportFrom, ast.Pass))]
    if not stmts:
        return scope.reason("composite_logic", "does not call anything", fn)
    result_name: str | None = None
    call: ast.Call | None = None
    for i, stmt in enumerate(stmts):
        last = i == len(stmts) - 1
        if last:
            if not isinstance(stmt, ast.Return) or stmt.value is None:
                return scope.reason("composite_logic", "does not end in returning the call's result", stmt)
            break
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
            source = _arg_source(stmt.value, scope, params, param_names, aliases)
            if source is not None and call is None:
                aliases[name] = source
                continue
            expr = stmt.value.value if isinstance(stmt.value, ast.Await) else stmt.value
            if isinstance(expr, ast.Call) and call is None:
                call, result_name = expr, name
                continue
        return scope.reason("composite_logic", "does more than bind parameters and make one call", stmt)
    ret = stmts[-1].value
    wrap = None
    if isinstance(ret, ast.Dict):
        wrap_or_reason = _wrap(ret, scope, result_name)
        if isinstance(wrap_or_reason, Reason):
            return wrap_or_reason
        wrap, inner = wrap_or_reason
        if inner is not None:
            if call is not None:
                return scope.reason("composite_logic", "makes more than one call", ret)
            call = inner
    elif isinstance(ret, ast.Name) and ret.id == result_name:
        pass
    else:
        expr = ret.value if isinstance(ret, ast.Await) else ret
        if call is not None or not isinstance(expr, ast.Call):
            what = "post-processes the call's result" if call is not None else "returns a computed value, not a library call"
            return scope.reason("composite_logic", f"{what}: {ast.unparse(ret)[:80]}", ret)
        call = expr
    if call is None:
        return scope.reason("composite_logic", "does not call a library function", ret)
    return _mapping(call, scope, resolver, params, param_names, aliases, wrap)


def _wrap(ret: ast.Dict, scope: Scope, result_name: str | None) -> tuple[dict[str, Any], ast.Call | None] | Reason:
    constants: dict[str, Any] = {}
    result_key = None
    inner = None
    for key, value in zip(ret.keys, ret.values):
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            return scope.reason("composite_logic", "builds a result dict with computed keys", ret)
        if isinstance(value, ast.Name) and value.id == result_name or isinstance(value, ast.Call):
            if result_key is not None:
                return scope.reason("composite_logic", "returns more than one computed value", value)
            result_key = key.value
            inner = value if isinstance(value, ast.Call) else None
            continue
        ok, val = literal(value)
        if not ok or not json_exact(val):
            return scope.reason("composite_logic", f"result field {key.value!r} is computed: {ast.unparse(value)[:60]}", value)
        constants[key.value] = val
    if result_key is None:
        return scope.reason("composite_logic", "returns only constants", ret)
    return {"result_key": result_key, "constants": constants}, inner


def json_exact(value: Any) -> bool:
    """Whether ``value`` survives a JSON round trip unchanged (so a config can carry it)."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(json_exact(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and json_exact(v) for k, v in value.items())
    return False


def _const(value: Any) -> dict[str, Any] | None:
    """A constant as the config carries it: JSON as is, a flat tuple as a tagged list, else nothing."""
    if json_exact(value):
        return {"const": value}
    if isinstance(value, tuple) and json_exact(list(value)):
        return {"const": list(value), "tuple": True}
    return None


def _arg_source(node: ast.AST, scope: Scope, params, param_names, aliases) -> dict[str, Any] | None:
    if isinstance(node, ast.Name):
        if node.id in aliases:
            return aliases[node.id]
        if scope.args_dict is None and node.id in param_names:
            return {"param": node.id}
        if node.id in scope.index.constants:
            return _const(scope.index.constants[node.id])
    if scope.args_dict:
        key, _ = _dict_key(node, scope.args_dict)
        if key is not None:
            return {"param": key}
    ok, value = literal(node)
    if ok:
        return _const(value)
    return None


def _mapping(call: ast.Call, scope: Scope, resolver: _Resolver, params, param_names, aliases, wrap) -> Mapping | Reason:
    index = scope.index
    func = call.func
    root = func
    while isinstance(root, ast.Attribute):
        root = root.value
    target = resolver.target(func)
    if target is None:
        if isinstance(root, ast.Name) and (root.id in index.functions or root.id in index.classes):
            return scope.reason("composite_logic", f"calls `{root.id}` defined in the adapter module, not a library", call)
        return scope.reason("composite_logic", f"calls `{ast.unparse(func)[:60]}`, which is not a library function", call)
    module, _, function = target.rpartition(".")
    if function.startswith("_"):
        return scope.reason("composite_logic", f"calls private `{target}`", call)
    args: list[dict[str, Any]] = []
    for arg in call.args:
        if isinstance(arg, ast.Starred):
            return scope.reason("composite_logic", f"unpacks `{ast.unparse(arg)}` into the call", arg)
        source = _arg_source(arg, scope, params, param_names, aliases)
        if source is None:
            return scope.reason("composite_logic", f"argument `{ast.unparse(arg)[:60]}` is computed or has no exact JSON form", arg)
        args.append(source)
    kwargs: dict[str, dict[str, Any]] = {}
    for kw in call.keywords:
        if kw.arg is None:
            return scope.reason("composite_logic", f"passes `**{ast.unparse(kw.value)}` into the call", kw.value)
        source = _arg_source(kw.value, scope, params, param_names, aliases)
        if source is None:
            return scope.reason("composite_logic", f"argument `{kw.arg}={ast.unparse(kw.value)[:60]}` is computed or has no exact JSON form", kw.value)
        kwargs[kw.arg] = source
    if scope.args_dict and _whole_dict_used(scope.args_dict, call):
        return scope.reason("composite_logic", f"uses the whole `{scope.args_dict}` dict", call)
    return Mapping(module, function, args, kwargs, wrap, call.lineno)


def _whole_dict_used(dict_name: str, call: ast.Call) -> bool:
    allowed: set[int] = set()
    for node in ast.walk(call):
        key, _ = _dict_key(node, dict_name)
        if key is not None:
            allowed.add(id(node.value if isinstance(node, ast.Subscript) else node.func.value))
    return any(isinstance(n, ast.Name) and n.id == dict_name and id(n) not in allowed for n in ast.walk(call))
