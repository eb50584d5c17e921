"""Validate a configuration against one version's schema, with locations and suggestions.

Errors and warnings name the key, what is wrong, and a suggestion: the
allowed atoms of an enum, ``did you mean pool_config?`` for a typo of a known
key, or why a key is no longer read.  Unknown keys are warnings, never dropped.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from deployment.config.exs import Span
from deployment.config.model import Issue
from deployment.config.schemas import GRPC_ADAPTER, LEGACY_ADAPTERS, RETIRED, SCHEMAS, Section
from deployment.config.values import Config, Opaque, describe

Locations = dict[tuple, Span]


def dotted(path: tuple) -> str:
    """``("pools", 0, "name")`` -> ``pools[0].name``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _locate(path: tuple, locations: Locations | None) -> tuple[int | None, int | None]:
    if not locations:
        return None, None
    probe = tuple(path)
    while probe:
        if probe in locations:
            return locations[probe].line, locations[probe].column
        probe = probe[:-1]
    return None, None


def _issue(severity: str, path: tuple, message: str, suggestion: str | None, file: str | None, locations: Locations | None) -> Issue:
    line, column = _locate(path, locations)
    return Issue(severity=severity, key=dotted(path), message=message, suggestion=suggestion, file=file, line=line, column=column)


def _section(annotation: Any) -> tuple[type[Section] | None, bool]:
    """The nested section model inside a field annotation, and whether it is a list of them."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation, False
    if origin is list:
        inner, _ = _section(typing.get_args(annotation)[0])
        return inner, inner is not None
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            found, is_list = _section(arg)
            if found is not None:
                return found, is_list
    return None, False


def _unknown_keys(model: type[Section], data: Any, path: tuple, out: list[tuple[tuple, str, str | None]]) -> None:
    if not isinstance(data, dict):
        return
    known = list(model.model_fields)
    for key, value in data.items():
        if key in model.model_fields:
            nested, is_list = _section(model.model_fields[key].annotation)
            if nested is not None:
                items = value if is_list and isinstance(value, list) else [value] if not is_list else []
                for i, item in enumerate(items):
                    _unknown_keys(nested, item, path + (key, i) if is_list else path + (key,), out)
            continue
        if any(key.startswith(p) for p in model.prefixes):
            continue
        if key in RETIRED:
            out.append((path + (key,), f"{key} is not read by this version", RETIRED[key]["why"]))
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
        out.append((path + (key,), "unknown key (kept as is)", f"did you mean {close[0]}?" if close else None))


def _enum_hint(err: dict) -> str | None:
    ctx = err.get("ctx") or {}
    expected = ctx.get("expected")
    if err["type"] == "literal_error" and expected:
        atoms = [a.strip().strip("'") for a in expected.replace(" or ", ", ").split(",")]
        return "allowed: " + ", ".join(f":{a}" for a in atoms if a)
    if err["type"] == "missing":
        return "add it"
    return None


def _adapter_issues(version: str, config: Config) -> list[tuple[tuple, str, str | None]]:
    found: list[tuple[tuple, str, str | None]] = []
    places: list[tuple[tuple, Any]] = [(("adapter_module",), config.get("adapter_module"))]
    pools = config.get("pools")
    if isinstance(pools, list):
        places += [(("pools", i, "adapter_module"), p.get("adapter_module")) for i, p in enumerate(pools) if isinstance(p, dict)]
    for path, adapter in places:
        if not isinstance(adapter, str) or isinstance(adapter, Opaque):
            continue
        if version != "0.3" and adapter in LEGACY_ADAPTERS:
            found.append((path, f"{adapter} does not exist from 0.4 on (gRPC only)", f"use {GRPC_ADAPTER}; run `config migrate`"))
        if version == "0.3" and adapter == GRPC_ADAPTER:
            found.append((path, f"{adapter} does not exist before 0.4", "use Snakepit.Adapters.GenericPythonV2"))
    return found


def validate(
    config: Config,
    version: str,
    *,
    elixir: bool = True,
    file: str | None = None,
    locations: Locations | None = None,
) -> list[Issue]:
    """Every error and warning of ``config`` read as Snakepit ``version``, errors first."""
    model = SCHEMAS[version]
    issues: list[Issue] = []
    try:
        model.model_validate(config, context={"elixir": elixir})
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            path = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
            path = _strip_variant(path)
            msg = "not an allowed value" if err["type"] == "literal_error" else err["msg"].removeprefix("Value error, ")
            got = _value_at(config, path)
            if got is not _MISSING and err["type"] != "missing":
                msg = f"{msg} (got {describe(got)})"
            issues.append(_issue("error", path, msg, _enum_hint(err), file, locations))
    for path, message, hint in _adapter_issues(version, config):
        issues.append(_issue("error", path, message, hint, file, locations))
    inner = config.get("pool_config")
    if version == "0.13" and isinstance(inner, dict) and "pool_size" in config and "pool_size" in inner and config["pool_size"] != inner["pool_size"]:
        issues.append(_issue(
            "warning", ("pool_size",), f"pool_size ({describe(config['pool_size'])}) and pool_config.pool_size ({describe(inner['pool_size'])}) differ",
            "from 0.13 the top-level pool_size wins; make them equal", file, locations,
        ))  # fmt: skip
    unknown: list[tuple[tuple, str, str | None]] = []
    _unknown_keys(model, config, (), unknown)
    for path, message, hint in unknown:
        issues.append(_issue("warning", path, message, hint, file, locations))
    return _dedupe(issues)


_MISSING = object()


def _strip_variant(path: tuple) -> tuple:
    # pydantic adds the union member tried ("int", "literal['infinity']", "tuple[...]") to the location
    return tuple(p for p in path if not (isinstance(p, str) and (p in ("int", "str", "bool", "float", "tuple", "list", "dict") or "'" in p or "[" in p)))


def _value_at(config: Any, path: tuple) -> Any:
    node = config
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return _MISSING
    return node


def _dedupe(issues: list[Issue]) -> list[Issue]:
    seen: dict[tuple, Issue] = {}
    for issue in issues:
        key = (issue.severity, issue.key, issue.file)
        if key not in seen:
            seen[key] = issue
    return sorted(seen.values(), key=lambda i: (i.severity != "error", i.file or "", i.line or 0, i.column or 0))


def is_valid(issues: list[Issue]) -> bool:
    """True when no issue is an error."""
    return not any(i.severity == "error" for i in issues)


def as_model(config: Config, version: str) -> BaseModel:
    """The validated pydantic model of ``config`` (raises ``ValidationError`` when invalid)."""
    return SCHEMAS[version].model_validate(config, context={"elixir": False})
