"""Evidence in a tool body of what keeps it from migrating: state, session, I/O, pickle, streaming, ...

:func:`scan` walks the body once and keeps, per category, the earliest line
that shows it, so a person is pointed at where it starts.
"""

from __future__ import annotations

import ast

from deployment.adapters.model import REASON_ORDER, Reason
from deployment.adapters.scope import Resolver, Scope, walk_body

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


def scan(body: list[ast.stmt], scope: Scope, resolver: Resolver) -> list[Reason]:
    """Evidence, the earliest per category, of what keeps a body from migrating automatically."""
    found: dict[str, Reason] = {}

    def add(category: str, detail: str, node: ast.AST) -> None:
        line = getattr(node, "lineno", 0)
        if category not in found or 0 < line < found[category].line:  # the earliest line shows it best
            found[category] = scope.reason(category, detail, node)

    index = scope.index
    for node in walk_body(body):
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


def _scan_call(node: ast.Call, scope: Scope, resolver: Resolver, add) -> None:
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

