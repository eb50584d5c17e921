"""Inputs generated from parameter annotations with hypothesis.

An annotation is read as source text (``"list[float]"``, ``"Optional[int]"``,
``"str | None"``), never evaluated; a parameter without one (a command
handler's ``args["x"]``) can be typed from the values samples and recorded
traffic show callers sending.  A required parameter whose type cannot be
read makes the tool ungeneratable (no cases); an optional one is left out.
Generation is derandomized, so the same tool always gets the same inputs.
"""

from __future__ import annotations

import ast
import json
from typing import Any

from deployment.adapters.model import Param

_SCALARS = ("int", "float", "str", "bool")
_SEQUENCES = {"list", "List", "Sequence", "Iterable", "tuple", "Tuple", "set", "Set", "frozenset"}
_MAPPINGS = {"dict", "Dict", "Mapping"}


def _json_values(st) -> Any:
    """Any JSON value, small: what an ``Any`` parameter can receive over the wire."""
    leaves = st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats(-1e6, 1e6, allow_nan=False) | st.text(max_size=8)
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                        max_leaves=8)


def _strategy(node: ast.expr | None, st) -> Any:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and node.value is None:
        return st.none()
    if isinstance(node, ast.Name) or isinstance(node, ast.Attribute):
        name = node.id if isinstance(node, ast.Name) else node.attr
        scalars = {
            "int": lambda: st.integers(-10_000, 10_000),
            "float": lambda: st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
            "str": lambda: st.text(max_size=16),
            "bool": st.booleans,
            "list": lambda: st.lists(st.integers(-100, 100), max_size=8),
            "Any": lambda: _json_values(st),
            "object": lambda: _json_values(st),
        }
        return scalars[name]() if name in scalars else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _strategy(node.left, st), _strategy(node.right, st)
        return st.one_of(left, right) if left is not None and right is not None else None
    if isinstance(node, ast.Subscript):
        outer = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
        inner = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        parts = [_strategy(e, st) for e in inner]
        if any(p is None for p in parts if p is not Ellipsis):
            return None
        if outer in {"Optional"}:
            return st.one_of(st.none(), parts[0])
        if outer in {"Union"}:
            return st.one_of(*parts)
        if outer in _SEQUENCES and parts:
            return st.lists(parts[0], max_size=8)
        if outer in _MAPPINGS and len(parts) == 2 and isinstance(inner[0], ast.Name) and inner[0].id == "str":
            return st.dictionaries(st.text(max_size=8), parts[1], max_size=5)
    return None


def strategy_for(param: Param, st) -> Any:
    """A hypothesis strategy for one parameter, or ``None`` when its type cannot be read."""
    if param.annotation:
        try:
            node = ast.parse(param.annotation, mode="eval").body
        except (SyntaxError, ValueError, RecursionError):
            node = None
        found = _strategy(node, st)
        if found is not None:
            return found
    if not param.required and param.default is not None and type(param.default).__name__ in _SCALARS:
        return _strategy(ast.Name(type(param.default).__name__), st)
    return None


def available() -> bool:
    """Whether hypothesis is installed (it is a development dependency)."""
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        return False
    return True


def observed_annotation(values: list[Any]) -> str | None:
    """An annotation for a parameter without one, from the JSON values callers were seen to send."""
    kinds = set()
    items = [x for v in values if isinstance(v, list) for x in v]  # every list's elements share one type
    for v in values:
        if v is None:
            kinds.add("None")
        elif isinstance(v, bool):
            kinds.add("bool")
        elif isinstance(v, (int, float)):
            kinds.add("int" if isinstance(v, int) else "float")
        elif isinstance(v, str):
            kinds.add("str")
        elif isinstance(v, list):
            inner = observed_annotation(items) if items else "int"
            kinds.add(f"list[{inner}]" if inner else "list[Any]")
        elif isinstance(v, dict):
            kinds.add("Dict[str, Any]")
    if {"int", "float"} <= kinds:
        kinds -= {"int"}
    optional = "None" in kinds
    kinds.discard("None")
    if len(kinds) != 1:
        return None
    (kind,) = kinds
    return f"Optional[{kind}]" if optional else kind


def with_observed_types(params: list[Param], observed: list[dict[str, Any]]) -> list[Param]:
    """``params``, those without an annotation typed from ``observed`` arguments where they agree."""
    out = []
    for p in params:
        if p.annotation is None:
            seen = [args[p.name] for args in observed if p.name in args]
            guess = observed_annotation(seen) if seen else None
            if guess:
                p = Param(p.name, guess, p.default, p.required, p.default_source)
        out.append(p)
    return out


def generate_cases(params: list[Param], count: int) -> list[dict[str, Any]]:
    """Up to ``count`` distinct argument dicts for a tool, empty when a required type is unknown."""
    try:
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import strategies as st
    except ImportError:  # hypothesis is optional at run time: samples and traffic still work
        return []
    required, optional = {}, {}
    for p in params:
        s = strategy_for(p, st)
        if s is None:
            if p.required:
                return []
            continue
        (required if p.required else optional)[p.name] = s
    out: list[dict[str, Any]] = []
    seen: set[str] = set()

    @settings(max_examples=count, database=None, derandomize=True, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.fixed_dictionaries(required, optional=optional))
    def collect(arguments: dict[str, Any]) -> None:
        key = json.dumps(arguments, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(arguments)

    collect()
    return out
