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
from dataclasses import dataclass
from typing import Any

from deployment.adapters.evidence import scan
from deployment.adapters.model import REASON_ORDER, Mapping, Param, Reason
from deployment.adapters.scope import Resolver, Scope, body_of, dict_key, dict_params
from deployment.adapters.source import literal


@dataclass
class Classification:
    """A tool's parameters, and its mapping or the reasons it has none."""

    params: list[Param]
    mapping: Mapping | None
    reasons: list[Reason]


def classify(
    fn: ast.FunctionDef | ast.AsyncFunctionDef,
    scope: Scope,
    *,
    body: list[ast.stmt] | None = None,
    extra: list[Reason] = (),
) -> Classification:
    """Classify ``fn`` (or the given ``body`` of it, e.g. one branch of an if-chain)."""
    body = body_of(fn) if body is None else body
    resolver = Resolver(scope, fn, body)
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


def _single_call(fn, body, scope: Scope, resolver: Resolver, params: list[Param]) -> Mapping | Reason:
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
        key, _ = dict_key(node, scope.args_dict)
        if key is not None:
            return {"param": key}
    ok, value = literal(node)
    if ok:
        return _const(value)
    return None


def _mapping(call: ast.Call, scope: Scope, resolver: Resolver, params, param_names, aliases, wrap) -> Mapping | Reason:
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
        key, _ = dict_key(node, dict_name)
        if key is not None:
            allowed.add(id(node.value if isinstance(node, ast.Subscript) else node.func.value))
    return any(isinstance(n, ast.Name) and n.id == dict_name and id(n) not in allowed for n in ast.walk(call))

