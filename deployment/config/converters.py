"""Pure converters between Snakepit configuration versions, one function per conversion.

Every converter takes a config (a ``dict`` of settings) and a :class:`Context`
and returns a :class:`Converted`: a new config (the input is never mutated),
the changes it made, and findings for what it could not do by itself.  A new
key that takes the place of old ones is put where the first of them was, so
that the rewriter can edit it in place.

The twelve conversions of the reference are ``c01_*`` .. ``c12_*`` (and
``c13_*`` for 0.13's pool size precedence); :mod:`deployment.config.steps`
chains them between supported versions, and :mod:`deployment.config.downgrade`
holds the lossless down-conversions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deployment.config.model import Change, Converted, Finding, change
from deployment.config.schemas import GRPC_ADAPTER, LEGACY_ADAPTERS
from deployment.config.values import Atom, Config, Keywords, Module, Opaque, describe


@dataclass(frozen=True)
class Context:
    """Where the config comes from.

    Only the primary (base) file gets new defaults.  ``inherited`` holds the
    base file's settings when converting an environment file (``prod.exs``):
    a key that changes shape there replaces the base value as a whole, so
    what it used to combine with is copied in.
    """

    primary: bool = True
    inherited: dict[str, Any] = field(default_factory=dict)
    repair: bool = False  # run on a config that already claims a later version: fix, do not question


Converter = Callable[[Config, Context], Converted]


# -- ordered-dict helpers --------------------------------------------------------------


def replace_keys(cfg: dict, old: list[str], new_key: str, value: Any) -> dict:
    """``cfg`` with ``new_key`` where the first present key of ``old`` was, and every ``old`` key gone."""
    out = type(cfg)()
    placed = False
    for k, v in cfg.items():
        if k in old or k == new_key:
            if not placed:
                out[new_key] = value
                placed = True
            continue
        out[k] = v
    if not placed:
        out[new_key] = value
    return out


def without(cfg: dict, *keys: str) -> dict:
    """``cfg`` without ``keys`` (same kind: map or keyword list)."""
    return type(cfg)((k, v) for k, v in cfg.items() if k not in keys)


def _finding(key: str, message: str, guidance: str) -> Finding:
    return Finding(key=key, message=message, guidance=guidance)


def _opaque_finding(key: str, value: Opaque, what: str) -> Finding:
    return _finding(
        key,
        f"{key} is an expression ({value.source}) and must change shape: {what}",
        f"rewrite {key} by hand in the new form, or make it a literal and run the migration again",
    )


# -- the twelve conversions ------------------------------------------------------------------


def c01_grpc_only(cfg: Config, ctx: Context) -> Converted:
    """0.3 -> 0.4: drop ``wire_protocol``; legacy Python adapters become ``GRPCPython``."""
    out, changes, findings = dict(cfg), [], []
    if "wire_protocol" in out:
        changes.append(change("removed", "wire_protocol", "0.4 speaks gRPC only; there is no wire protocol to choose", before=out["wire_protocol"]))
        out = without(out, "wire_protocol")
    adapter = out.get("adapter_module")
    python_side = (
        "the Python side must be rewritten from command handlers (BaseCommandHandler, register_command) "
        "to a BaseAdapter with @tool methods; `snakepit-migrate adapters` helps with that"
    )
    if isinstance(adapter, Opaque):
        findings.append(_finding("adapter_module", f"adapter_module is an expression ({adapter.source}); 0.4 needs {GRPC_ADAPTER}", f"set adapter_module: {GRPC_ADAPTER}; {python_side}"))
    elif adapter == "Snakepit.Adapters.GenericJavaScript":
        findings.append(_finding("adapter_module", "GenericJavaScript has no gRPC successor in 0.4", "keep this deployment on 0.3 or replace the JavaScript workers with a Python adapter"))
    elif isinstance(adapter, str) and adapter in LEGACY_ADAPTERS:
        new = Module(GRPC_ADAPTER) if isinstance(adapter, Module) else GRPC_ADAPTER
        out["adapter_module"] = new
        changes.append(change("semantic", "adapter_module", "gRPC adapter replaces the stdin/stdout adapter", before=adapter, after=new))
        findings.append(_finding("adapter_module", f"{adapter} is replaced by {GRPC_ADAPTER}", python_side))
    elif adapter is None and ctx.primary:
        findings.append(_finding("adapter_module", f"the default adapter changes from GenericPythonV2 to {GRPC_ADAPTER}", python_side))
    return Converted(out, changes, findings)


def c02_pools(cfg: Config, ctx: Context) -> Converted:
    """0.5 -> 0.6: ``adapter_module`` + ``pool_config`` become one ``pools`` entry named ``:default``."""
    if "pools" in cfg or not ({"pool_config", "adapter_module"} & cfg.keys()):
        return Converted(dict(cfg), [])
    inherited: dict[str, Any] = {}
    for key in ("pool_config", "adapter_module"):
        if key not in cfg and key in ctx.inherited and "pools" not in ctx.inherited:
            inherited[key] = ctx.inherited[key]
    pool_config = cfg.get("pool_config", inherited.get("pool_config", {}))
    if not isinstance(pool_config, dict):
        return Converted(dict(cfg), [], [_opaque_finding("pool_config", pool_config, "it becomes pools: [%{name: :default, ...}]")] if isinstance(pool_config, Opaque) else [])
    pool: dict[str, Any] = {"name": Atom("default"), "worker_profile": Atom("process")}
    changes = [
        change("added", "pools[0].name", "the single pool becomes the pool named :default", after=pool["name"]),
        change("added", "pools[0].worker_profile", "one OS process per worker, as before", after=pool["worker_profile"]),
    ]
    order = ["pool_size", "adapter_module", "adapter_args"] + [k for k in pool_config if k not in ("pool_size", "adapter_args")]
    copied = "copied from the base file: the pools set here replace the base file's pools as a whole"
    for key in order:
        if key == "adapter_module":
            if "adapter_module" in cfg:
                pool[key] = cfg["adapter_module"]
                changes.append(change("moved", "adapter_module", "the adapter is set per pool", before=cfg[key], to="pools[0].adapter_module"))
            elif "adapter_module" in inherited:
                pool[key] = inherited["adapter_module"]
                changes.append(change("added", "pools[0].adapter_module", copied, after=pool[key]))
        elif key in pool_config:
            pool[key] = pool_config[key]
            if "pool_config" in inherited:
                changes.append(change("added", f"pools[0].{key}", copied, after=pool[key]))
            else:
                changes.append(change("moved", f"pool_config.{key}", "pool settings are set per pool", before=pool_config[key], to=f"pools[0].{key}"))
    out = replace_keys(cfg, ["pool_config", "adapter_module"], "pools", [pool])
    if "pool_config" in cfg:
        changes.append(change("removed", "pool_config", "replaced by pools", before=pool_config))
    return Converted(out, changes)


def c03_drop_grpc_config(cfg: Config, ctx: Context) -> Converted:
    """0.6.11: ``grpc_config: %{base_port, port_range}`` is dropped; worker ports are OS-assigned."""
    if "grpc_config" not in cfg:
        return Converted(dict(cfg), [])
    return Converted(without(cfg, "grpc_config"), [change("removed", "grpc_config", "worker ports are assigned by the OS since 0.6.11", before=cfg["grpc_config"])])


def c04_grpc_listener(cfg: Config, ctx: Context) -> Converted:
    """0.10: ``grpc_port``/``grpc_host`` become ``grpc_listener: %{mode: ...}``."""
    if not ({"grpc_port", "grpc_host"} & cfg.keys()):
        return Converted(dict(cfg), [])
    port, host = cfg.get("grpc_port"), cfg.get("grpc_host")
    changes: list[Change] = []
    if "grpc_listener" not in ctx.inherited:
        if port is None and "grpc_port" in ctx.inherited:
            port = ctx.inherited["grpc_port"]
            changes.append(change("added", "grpc_listener.port", "copied from the base file: the listener set here replaces the base file's as a whole", after=port))
        if host is None and "grpc_host" in ctx.inherited:
            host = ctx.inherited["grpc_host"]
            changes.append(change("added", "grpc_listener.host", "copied from the base file: the listener set here replaces the base file's as a whole", after=host))
    if "grpc_listener" in cfg:
        return Converted(without(cfg, "grpc_port", "grpc_host"), [change("removed", k, "grpc_listener is already set and wins", before=cfg[k]) for k in ("grpc_port", "grpc_host") if k in cfg])
    if isinstance(port, Opaque):
        return Converted(dict(cfg), [], [_opaque_finding("grpc_port", port, "0 becomes %{mode: :internal}, any other port %{mode: :external, port: p}")])
    if port == 0 and host is None:
        listener: dict[str, Any] = {"mode": Atom("internal")}
        changes.append(change("moved", "grpc_port", "port 0 means an internal listener on an OS-assigned port", before=port, to="grpc_listener.mode", after=listener["mode"]))
    else:
        listener = {"mode": Atom("external")}
        if host is not None:
            listener["host"] = host
            if "grpc_host" in cfg:
                changes.append(change("moved", "grpc_host", "the listener's host", before=host, to="grpc_listener.host"))
        if port is not None:
            listener["port"] = port
            if "grpc_port" in cfg:
                changes.append(change("moved", "grpc_port", "the listener's port", before=port, to="grpc_listener.port"))
        changes.append(change("added", "grpc_listener.mode", "a fixed port means an external listener", after=listener["mode"]))
    return Converted(replace_keys(cfg, ["grpc_port", "grpc_host"], "grpc_listener", listener), changes)


def c05_cleanup_retry_interval_ms(cfg: Config, ctx: Context) -> Converted:
    """0.7.6: ``cleanup_retry_interval`` is renamed ``cleanup_retry_interval_ms`` (same milliseconds)."""
    if "cleanup_retry_interval" not in cfg:
        return Converted(dict(cfg), [])
    value = cfg["cleanup_retry_interval"]
    if "cleanup_retry_interval_ms" in cfg:
        return Converted(without(cfg, "cleanup_retry_interval"), [change("removed", "cleanup_retry_interval", "cleanup_retry_interval_ms is already set and wins", before=value)])
    return Converted(replace_keys(cfg, ["cleanup_retry_interval"], "cleanup_retry_interval_ms", value), [change("renamed", "cleanup_retry_interval", "renamed in 0.7.6; the value is milliseconds, unchanged", before=value, after=value, to="cleanup_retry_interval_ms")])


def c06_drop_installer(cfg: Config, ctx: Context) -> Converted:
    """0.8.9: ``python_packages.installer`` is removed."""
    packages = cfg.get("python_packages")
    if not isinstance(packages, dict) or "installer" not in packages:
        return Converted(dict(cfg), [])
    out = dict(cfg)
    out["python_packages"] = without(packages, "installer")
    return Converted(out, [change("removed", "python_packages.installer", "removed in 0.8.9; the installer is chosen automatically", before=packages["installer"])])


def c07_log_level_info(cfg: Config, ctx: Context) -> Converted:
    """0.8.1: the default log level becomes ``:error``; keep the old startup logs with ``log_level: :info``."""
    if "log_level" in cfg or not ctx.primary:
        return Converted(dict(cfg), [])
    out = dict(cfg)
    out["log_level"] = Atom("info")
    return Converted(out, [change("added", "log_level", "the default became :error in 0.8.1; :info keeps the startup logs this deployment had (remove it for quieter logs)", after=out["log_level"])])


def c08_log_categories_list(cfg: Config, ctx: Context) -> Converted:
    """``log_categories`` given as a map is ignored; the read form is a list of categories."""
    cats = cfg.get("log_categories")
    if isinstance(cats, Opaque) and not ctx.repair:
        return Converted(dict(cfg), [], [_opaque_finding("log_categories", cats, "a map (%{pool: :debug}) is ignored; it must give a list ([:pool])")])
    if not isinstance(cats, dict):
        return Converted(dict(cfg), [])
    new = [Atom(k) for k in cats]
    out = dict(cfg)
    out["log_categories"] = new
    levels = {str(v) for v in cats.values()}
    note = "the map form was ignored; the list enables these categories"
    if levels - {"debug"}:
        note += f" (per-category levels {', '.join(sorted(levels))} are not kept: log_level sets the level)"
    return Converted(out, [change("semantic", "log_categories", note, before=cats, after=new)])


_SESSION_MOVES = {"default_ttl": "session_default_ttl", "cleanup_interval": "session_cleanup_interval", "warning_threshold": "session_warning_threshold"}


def c09_session_settings(cfg: Config, ctx: Context) -> Converted:
    """Session TTL and cleanup are top-level ``session_*`` keys; ``session_store`` is a map of ``max_sessions``/``strict_mode``."""
    store = cfg.get("session_store")
    if isinstance(store, Opaque) and not ctx.repair:
        return Converted(dict(cfg), [], [_opaque_finding("session_store", store, "it must be a map of max_sessions and strict_mode")])
    if not isinstance(store, dict) or (not isinstance(store, Keywords) and not (_SESSION_MOVES.keys() & store.keys())):
        return Converted(dict(cfg), [])
    out: dict[str, Any] = {}
    changes: list[Change] = []
    findings: list[Finding] = []
    kept = {k: v for k, v in store.items() if k not in _SESSION_MOVES}
    for k, v in cfg.items():
        if k != "session_store":
            out[k] = v
            continue
        for inner, top in _SESSION_MOVES.items():
            if inner not in store:
                continue
            if top in cfg:
                if cfg[top] != store[inner]:
                    findings.append(_finding(f"session_store.{inner}", f"session_store.{inner} ({describe(store[inner])}) is never read; {top} ({describe(cfg[top])}) is", f"the value of {top} is kept; set it to {describe(store[inner])} if that is what you meant"))
                changes.append(change("removed", f"session_store.{inner}", f"never read; {top} is already set", before=store[inner]))
                continue
            out[top] = store[inner]
            changes.append(change("moved", f"session_store.{inner}", "never read inside session_store; the top-level key is", before=store[inner], to=top))
        if kept:
            out["session_store"] = dict(kept)
            if isinstance(store, Keywords):
                changes.append(change("semantic", "session_store", "a keyword list here was never read; the map form is, so these limits now apply", before=store, after=out["session_store"]))
        else:
            changes.append(change("removed", "session_store", "nothing left in it once the session settings moved", before=store))
    return Converted(out, changes, findings)


def c10_python_runtime(cfg: Config, ctx: Context) -> Converted:
    """``python_runtime: %{strategy: :venv}`` is never read; the code reads ``config :snakepit, :python, strategy: ...``."""
    runtime = cfg.get("python_runtime")
    if runtime is None:
        return Converted(dict(cfg), [])
    if not isinstance(runtime, dict):
        return Converted(dict(cfg), [], [_opaque_finding("python_runtime", runtime, "it becomes config :snakepit, :python, strategy: ...")] if isinstance(runtime, Opaque) else [])
    findings: list[Finding] = []
    existing = cfg.get("python")
    python: dict[str, Any] = Keywords(existing) if isinstance(existing, dict) else Keywords()
    changes: list[Change] = []
    for key, value in runtime.items():
        if key in python:
            changes.append(change("removed", f"python_runtime.{key}", f"never read; python.{key} is already set", before=value))
            continue
        if key == "strategy" and value not in ("system", "uv"):
            new = Atom("system")
            findings.append(_finding("python_runtime.strategy", f"strategy {describe(value)} does not exist; it becomes :system", "check that :system (the interpreter on PATH, e.g. your activated venv) is right, or use :uv with managed: true"))
            changes.append(change("semantic", "python_runtime.strategy", "only :system and :uv exist", before=value, after=new, to="python.strategy"))
            python[key] = new
            continue
        python[key] = value
        changes.append(change("moved", f"python_runtime.{key}", "never read under python_runtime; read under :python", before=value, to=f"python.{key}"))
    if existing is None:
        out = replace_keys(cfg, ["python_runtime"], "python", python)
    else:
        out = without(cfg, "python_runtime")
        out["python"] = python
    return Converted(out, changes, findings)


def _adapter_args(args: Any, adapter: str) -> tuple[Any, bool]:
    """``args`` with ``--adapter module.Class`` first, unless it already names one."""
    spec = adapter.replace(":", ".")
    if isinstance(args, list):
        if "--adapter" in args:
            return args, False
        return ["--adapter", spec, *args], True
    return ["--adapter", spec], True


def _python_adapter_in(section: dict, path: str) -> tuple[dict, list[Change], list[Finding]]:
    adapter = section["python_adapter"]
    if isinstance(adapter, Opaque) or not isinstance(adapter, str):
        return section, [], [_finding(f"{path}python_adapter", f"python_adapter is {describe(adapter)}, not a \"module:Class\" string", 'set adapter_args: ["--adapter", "module.Class"] by hand')]
    args, changed = _adapter_args(section.get("adapter_args"), adapter)
    out = replace_keys(section, ["python_adapter"], "adapter_args", args) if "adapter_args" not in section else without(section, "python_adapter")
    if "adapter_args" in section:
        out["adapter_args"] = args
    note = "python_adapter was never read; --adapter in adapter_args is" if changed else "never read; adapter_args already names the adapter"
    kind = "moved" if changed else "removed"
    return out, [change(kind, f"{path}python_adapter", note, before=adapter, to=f"{path}adapter_args" if changed else None, after=args if changed else ...)], []


PoolFix = Callable[[dict, str], "tuple[dict, list[Change], list[Finding]] | None"]


def _each_pool(pools: list, fix: PoolFix) -> tuple[list, list[Change], list[Finding]]:
    """``pools`` with ``fix(pool, "pools[i].")`` applied to each map pool it returns a result for."""
    out = list(pools)
    changes: list[Change] = []
    findings: list[Finding] = []
    for i, pool in enumerate(pools):
        fixed = fix(pool, f"pools[{i}].") if isinstance(pool, dict) else None
        if fixed is not None:
            out[i], c, f = fixed
            changes += c
            findings += f
    return out, changes, findings


def c11_python_adapter(cfg: Config, ctx: Context) -> Converted:
    """``python_adapter: "mod:Class"`` was never read; the working form is ``adapter_args: ["--adapter", "mod.Class"]``."""
    out = dict(cfg)
    changes: list[Change] = []
    findings: list[Finding] = []
    if isinstance(out.get("pool_config"), dict) and "python_adapter" in out["pool_config"]:
        out["pool_config"], c, f = _python_adapter_in(out["pool_config"], "pool_config.")
        changes += c
        findings += f
    if isinstance(out.get("pools"), list):
        out["pools"], c, f = _each_pool(out["pools"], lambda pool, path: _python_adapter_in(pool, path) if "python_adapter" in pool else None)
        changes += c
        findings += f
    if "python_adapter" in out:
        adapter = out["python_adapter"]
        pools = out.get("pools")
        if isinstance(pools, list) and len(pools) == 1 and isinstance(pools[0], dict):
            pool, c, f = _python_adapter_in({**pools[0], "python_adapter": adapter}, "pools[0].")
            out["pools"] = [pool]
            out = without(out, "python_adapter")
        elif pools is None:
            section = out.get("pool_config", {})
            if not isinstance(section, dict):
                return Converted(out, changes, findings + [_finding("python_adapter", "python_adapter is never read and pool_config is an expression", 'add adapter_args: ["--adapter", "module.Class"] to the pool settings by hand')])
            moved, c, f = _python_adapter_in({**section, "python_adapter": adapter}, "pool_config.")
            out = replace_keys(out, ["pool_config"], "pool_config", moved) if "pool_config" in out else replace_keys(out, ["python_adapter"], "pool_config", moved)
            out = without(out, "python_adapter")
        else:
            return Converted(out, changes, findings + [_finding("python_adapter", "python_adapter is never read and there are several pools", 'add adapter_args: ["--adapter", "module.Class"] to the pool(s) that need it')])
        changes += [x.model_copy(update={"key": "python_adapter"}) for x in c]
        findings += f
    return Converted(out, changes, findings)


def _heartbeat(hb: dict, path: str) -> tuple[dict, list[Change], list[Finding]]:
    value = hb["interval_ms"]
    if "ping_interval_ms" in hb:
        found = [] if hb["ping_interval_ms"] == value else [_finding(f"{path}interval_ms", f"interval_ms ({describe(value)}) is not read; ping_interval_ms ({describe(hb['ping_interval_ms'])}) is", "ping_interval_ms is kept; change it if interval_ms was the value you meant")]
        return without(hb, "interval_ms"), [change("removed", f"{path}interval_ms", "not read; ping_interval_ms is already set", before=value)], found
    out = replace_keys(hb, ["interval_ms"], "ping_interval_ms", value)
    return out, [change("renamed", f"{path}interval_ms", "the Elixir key is ping_interval_ms (Python receives it as interval_ms)", before=value, after=value, to=f"{path}ping_interval_ms")], []


def c12_heartbeat_ping_interval(cfg: Config, ctx: Context) -> Converted:
    """Heartbeat: the Elixir key is ``ping_interval_ms``; Python's ``interval_ms`` is not read in config."""
    out = dict(cfg)
    changes: list[Change] = []
    findings: list[Finding] = []
    if isinstance(out.get("heartbeat"), dict) and "interval_ms" in out["heartbeat"]:
        out["heartbeat"], changes, findings = _heartbeat(out["heartbeat"], "heartbeat.")
    if isinstance(out.get("pools"), list):

        def fix(pool: dict, path: str) -> tuple[dict, list[Change], list[Finding]] | None:
            hb = pool.get("heartbeat")
            if not isinstance(hb, dict) or "interval_ms" not in hb:
                return None
            new_hb, c, f = _heartbeat(hb, f"{path}heartbeat.")
            return {**pool, "heartbeat": new_hb}, c, f

        out["pools"], c, f = _each_pool(out["pools"], fix)
        changes += c
        findings += f
    return Converted(out, changes, findings)


def c13_pool_size_precedence(cfg: Config, ctx: Context) -> Converted:
    """0.13: a top-level ``pool_size`` wins over ``pool_config.pool_size``; keep the size that was in effect."""
    pool_config = cfg.get("pool_config")
    if "pool_size" not in cfg or not isinstance(pool_config, dict) or "pool_size" not in pool_config:
        return Converted(dict(cfg), [])
    top, inner = cfg["pool_size"], pool_config["pool_size"]
    if top == inner:
        return Converted(dict(cfg), [])
    if isinstance(inner, Opaque) or isinstance(top, Opaque):
        return Converted(dict(cfg), [], [_finding("pool_size", f"pool_size ({describe(top)}) and pool_config.pool_size ({describe(inner)}) differ; from 0.13 the top-level one wins", "make them equal to the size you want")])
    out = dict(cfg)
    out["pool_size"] = inner
    return Converted(out, [change("semantic", "pool_size", "from 0.13 the top-level pool_size wins; set to pool_config.pool_size, the size in effect before", before=top, after=inner)])
