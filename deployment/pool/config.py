"""The deployment config as the reference fleet reads it (pure logic, plus one file read).

The config is the JSON, YAML or TOML form of the Snakepit keys, either bare or
under a ``snakepit`` key, or an Elixir ``config/*.exs`` file.  From it the fleet needs one pool: the adapter (from
``adapter_args: ["--adapter", "mod.Class"]``), its environment, the pool size,
the session settings and the ``session_store`` URL.  Both the 0.6+ ``pools``
list and the older single pool (``adapter_module`` + ``pool_config``) are read.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployment.pool.errors import PoolConfigError
from deployment.sessions.record import DEFAULT_TTL

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
DEFAULT_INSTANCES = 2
MAX_INSTANCES = 32


@dataclass(frozen=True)
class PoolSpec:
    """What one fleet instance needs to start, read from a deployment config."""

    version: str
    pool_name: str
    pool_size: int | None
    adapter: str
    adapter_argv: list[str]
    adapter_env: dict[str, str]
    session_store: str | None
    max_sessions: int | None
    session_ttl: int
    raw: dict[str, Any] = field(repr=False)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The Snakepit keys of a config file: ``.exs``, ``.json``, ``.yaml``/``.yml`` or ``.toml``.

    Parsing is the config migrator's (:func:`deployment.config.documents.load_document`),
    so the fleet reads exactly what ``config check`` reads; Elixir expressions it
    cannot evaluate come back as ``{"$expr": source}``.
    """
    from deployment.config.documents import load_document  # only the CLI reads config files
    from deployment.config.values import to_plain

    p = Path(path)
    try:
        source = p.read_bytes()
    except OSError as exc:
        raise PoolConfigError(f"cannot read config {p}: {exc.strerror or exc}") from None
    data = to_plain(load_document(str(p), source).config())
    if not isinstance(data, dict):
        raise PoolConfigError(f"config {p}: the top level must be a mapping of Snakepit keys")
    return data


def _expression(value: Any) -> str | None:
    """The source of an Elixir expression the config could not evaluate, else None."""
    if isinstance(value, dict) and set(value) == {"$expr"}:
        return str(value["$expr"])
    return None


def config_version(raw: dict[str, Any]) -> str:
    """``config_version`` if the config names one, else a digest of its canonical JSON."""
    explicit = raw.get("config_version")
    if isinstance(explicit, (str, int)) and not isinstance(explicit, bool) and str(explicit):
        return str(explicit)
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()[:12]


def _snakepit_keys(raw: dict[str, Any]) -> dict[str, Any]:
    inner = raw.get("snakepit")
    if isinstance(inner, dict) and "pools" not in raw and "adapter_args" not in raw:
        return inner
    return raw


def _select_pool(keys: dict[str, Any], pool: str | None) -> dict[str, Any]:
    pools = keys.get("pools")
    if pools is None:
        legacy = keys.get("pool_config") or {}
        if not isinstance(legacy, dict):
            raise PoolConfigError("'pool_config' must be a mapping")
        entry = {"name": "default", **legacy}
        for key in ("adapter_args", "adapter_env", "worker_profile"):
            if key in keys and key not in entry:
                entry[key] = keys[key]
        return entry
    if not isinstance(pools, list) or not pools or not all(isinstance(p, dict) for p in pools):
        raise PoolConfigError("'pools' must be a non-empty list of mappings")
    names = [str(p.get("name", "default")).lstrip(":") for p in pools]
    if pool is None:
        return pools[names.index("default")] if "default" in names else pools[0]
    if pool not in names:
        raise PoolConfigError(f"no pool named {pool!r}; the config has {', '.join(names)}")
    return pools[names.index(pool)]


def _adapter(argv: Any) -> tuple[str, list[str]]:
    if argv is None:
        argv = []
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise PoolConfigError("'adapter_args' must be a list of strings, e.g. [\"--adapter\", \"mod.Class\"]")
    rest: list[str] = []
    adapter: str | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--adapter" and i + 1 < len(argv):
            adapter, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--adapter="):
            adapter = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    if adapter is None:
        raise PoolConfigError("the pool names no adapter",
                              hint='set adapter_args: ["--adapter", "mod.Class"]')
    if not _DOTTED.match(adapter):
        hint = "write it as a dotted path, module.Class" + (" (the 'mod:Class' form was never read)"
                                                           if ":" in adapter else "")
        raise PoolConfigError(f"adapter path {adapter!r} is not a dotted Python path", hint=hint)
    return adapter, rest


def with_quota(url: str, max_sessions: int | None) -> str:
    """``url`` carrying ``?max_sessions=N`` unless it names a quota already (or none is set)."""
    if max_sessions is None or "max_sessions=" in url:
        return url
    return url + ("&" if "?" in url else "?") + f"max_sessions={max_sessions}"


def _session_store(keys: dict[str, Any]) -> tuple[str | None, int | None]:
    store = keys.get("session_store")
    url: Any = None
    max_sessions = keys.get("session_max_sessions")
    if isinstance(store, str):
        url = store
    elif isinstance(store, dict):  # upstream's %{max_sessions, strict_mode}, plus our 'url'
        url = store.get("url")
        max_sessions = store.get("max_sessions", max_sessions)
    elif store is not None:
        raise PoolConfigError("'session_store' must be a store URL or a mapping with 'url'")
    if max_sessions is not None and (isinstance(max_sessions, bool) or not isinstance(max_sessions, int)
                                     or max_sessions < 1):
        raise PoolConfigError(f"'max_sessions' must be a positive integer, got {max_sessions!r}")
    if url is None:
        return None, max_sessions
    if not isinstance(url, str) or "://" not in url:
        raise PoolConfigError(f"'session_store' URL {url!r} is not a URL",
                              hint="e.g. sqlite:///abs/path.db or redis://127.0.0.1:6379/0")
    return with_quota(url, max_sessions), max_sessions


def parse_pool_config(raw: dict[str, Any], pool: str | None = None) -> PoolSpec:
    """Read the pool the fleet runs from a decoded config; raise PoolConfigError naming the key."""
    if not isinstance(raw, dict):
        raise PoolConfigError("a config must be a mapping of Snakepit keys")
    keys = _snakepit_keys(raw)
    entry = _select_pool(keys, pool)
    adapter, argv = _adapter(entry.get("adapter_args", keys.get("adapter_args")))
    env = entry.get("adapter_env") or {}
    if _expression(env) is not None:
        raise PoolConfigError(f"'adapter_env' is an expression the fleet cannot evaluate: {_expression(env)}",
                              hint="give the variables literally (a map of strings), e.g. in a JSON/YAML/TOML config")
    if not isinstance(env, dict):
        raise PoolConfigError("'adapter_env' must be a mapping of variable names to values")
    size = keys.get("pool_size", entry.get("pool_size"))
    if _expression(size) is not None:
        size = None  # e.g. System.schedulers_online() * 2: the fleet sizes itself (--instances)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise PoolConfigError(f"'pool_size' must be a positive integer, got {size!r}")
    ttl = keys.get("session_default_ttl", DEFAULT_TTL)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
        raise PoolConfigError(f"'session_default_ttl' must be an integer number of seconds, got {ttl!r}")
    store_url, max_sessions = _session_store(keys)
    return PoolSpec(
        version=config_version(raw),
        pool_name=str(entry.get("name", "default")).lstrip(":"),
        pool_size=size,
        adapter=adapter,
        adapter_argv=argv,
        adapter_env={str(k): str(v) for k, v in env.items()},
        session_store=store_url,
        max_sessions=max_sessions,
        session_ttl=ttl,
        raw=raw,
    )


def default_instances(spec: PoolSpec) -> int:
    """How many instances to start when not told: the pool size, at most 8."""
    return min(spec.pool_size or DEFAULT_INSTANCES, 8)
