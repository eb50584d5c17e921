"""What a tool body can see, and the small readings of a function every classifier needs.

Its module's bindings, its class's methods, its parameters (from the
signature, or from ``args["x"]`` for command handlers), and how a call's
function expression resolves to a dotted library target.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from deployment.adapters.model import Param, Reason
from deployment.adapters.source import BUILTIN_NAMES, ModuleIndex, literal


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
        """A reason of ``category`` pointing at ``node``'s line."""
        line = getattr(node, "lineno", 0)
        return Reason(category, detail, line, self.index.text(line))


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
    for node in walk_body(body):
        key, default = dict_key(node, dict_name)
        if key is None or key in found:
            continue
        if default is _REQUIRED:
            found[key] = Param(key)
        else:
            ok, value = literal(default) if default is not None else (True, None)
            found[key] = Param(key, None, value if ok else None, False, None if ok else ast.unparse(default))
    return list(found.values())


_REQUIRED = object()


def dict_key(node: ast.AST, dict_name: str) -> tuple[str | None, Any]:
    """The key and default of ``args["x"]`` / ``args.get("x", d)`` on ``dict_name``, else ``(None, None)``."""
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


def walk_body(stmts: list[ast.stmt]):
    """Every node under the statements, breadth first."""
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
    for node in walk_body(body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                found[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return found


class Resolver:
    """Resolve a call's function expression to a dotted library target, if it is one."""

    def __init__(self, scope: Scope, fn: ast.FunctionDef | ast.AsyncFunctionDef, body: list[ast.stmt]) -> None:
        self.scope = scope
        self.imports = {**scope.index.imports, **local_imports(body)}
        self.locals = local_names(fn) - set(local_imports(body))

    def target(self, node: ast.AST) -> str | None:
        """The dotted target of a call's function expression, or ``None`` if it is not a library function."""
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

