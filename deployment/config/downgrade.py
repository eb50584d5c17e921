"""Lossless down-conversions: back to an older supported version, or a list of what would be lost.

Each returns findings of kind ``lossy`` for settings the older version cannot
express; a migration refuses to write a down-conversion that has any.
"""

from __future__ import annotations

from typing import Any

from deployment.config.converters import Context, replace_keys, without
from deployment.config.model import Converted, Finding, change
from deployment.config.schemas import PoolConfig05
from deployment.config.values import Config, describe


def _lost(keys: list[str], cfg: Config, version: str) -> list[Finding]:
    return [
        Finding(key=k, kind="lossy", message=f"{k} ({describe(cfg[k])}) cannot be expressed in {version}", guidance=f"remove {k} first if losing it is acceptable, or restore from the backup instead")
        for k in keys if k in cfg
    ]


def d13_to_10(cfg: Config, ctx: Context) -> Converted:
    """0.13 -> 0.10: lossless unless ``instance_token`` is set."""
    return Converted(dict(cfg), [], _lost(["instance_token"], cfg, "0.10"))


def d10_to_8(cfg: Config, ctx: Context) -> Converted:
    """0.10 -> 0.8: ``grpc_listener`` back to ``grpc_port``/``grpc_host`` when it only says that."""
    lost = _lost(["instance_name", "data_dir", "affinity"] + [k for k in cfg if k.startswith(("pool_reconcile_", "worker_starter_", "worker_supervisor_"))], cfg, "0.8")
    listener = cfg.get("grpc_listener")
    if listener is None:
        return Converted(dict(cfg), [], lost)
    if not isinstance(listener, dict) or listener.get("mode") not in ("internal", "external") or set(listener) - {"mode", "host", "port"}:
        return Converted(dict(cfg), [], lost + _lost(["grpc_listener"], cfg, "0.8"))
    if listener["mode"] == "internal":
        if set(listener) != {"mode"}:
            return Converted(dict(cfg), [], lost + _lost(["grpc_listener"], cfg, "0.8"))
        out = replace_keys(cfg, ["grpc_listener"], "grpc_port", 0)
        return Converted(out, [change("moved", "grpc_listener.mode", "an internal listener is grpc_port: 0 before 0.10", before=listener["mode"], to="grpc_port", after=0)], lost)
    out = {}
    for k, v in cfg.items():
        if k == "grpc_listener":
            if "port" in listener:
                out["grpc_port"] = listener["port"]
            if "host" in listener:
                out["grpc_host"] = listener["host"]
        else:
            out[k] = v
    changes = [change("moved", f"grpc_listener.{k}", "back to the pre-0.10 key", before=listener[k], to=f"grpc_{k}") for k in ("port", "host") if k in listener]
    return Converted(out, changes, lost)


def d8_to_7(cfg: Config, ctx: Context) -> Converted:
    """0.8 -> 0.7: lossless unless ``timeout_profile`` or ``log_categories`` is set; ``log_level: :info`` is the old default."""
    lost = _lost(["timeout_profile", "log_categories"], cfg, "0.7")
    if cfg.get("log_level") == "info":
        return Converted(without(cfg, "log_level"), [change("removed", "log_level", ":info is the default before 0.8.1", before=cfg["log_level"])], lost)
    return Converted(dict(cfg), [], lost)


def d7_to_6(cfg: Config, ctx: Context) -> Converted:
    """0.7 -> 0.6: ``cleanup_retry_interval_ms`` back to ``cleanup_retry_interval``; 0.7-only keys are lost."""
    lost = _lost(["capacity_strategy", "python_packages", "python", "library_mode", "grpc_log_level", "log_python_output", "cleanup_on_stop", "process_group_kill"], cfg, "0.6")
    if "cleanup_retry_interval_ms" not in cfg:
        return Converted(dict(cfg), [], lost)
    value = cfg["cleanup_retry_interval_ms"]
    out = replace_keys(cfg, ["cleanup_retry_interval_ms"], "cleanup_retry_interval", value)
    return Converted(out, [change("renamed", "cleanup_retry_interval_ms", "the name before 0.7.6", before=value, after=value, to="cleanup_retry_interval")], lost)


def d6_to_5(cfg: Config, ctx: Context) -> Converted:
    """0.6 -> 0.5: one ``:default`` process pool back to ``adapter_module`` + ``pool_config``."""
    lost = _lost(["heartbeat", "log_level", "session_store", "pool_size"], cfg, "0.5")
    pools = cfg.get("pools")
    if pools is None:
        return Converted(dict(cfg), [], lost)
    allowed = set(PoolConfig05.model_fields) | {"name", "worker_profile", "adapter_module"}
    if (
        not isinstance(pools, list) or len(pools) != 1 or not isinstance(pools[0], dict)
        or pools[0].get("name") != "default" or pools[0].get("worker_profile", "process") != "process"
        or set(pools[0]) - allowed
    ):
        return Converted(dict(cfg), [], lost + _lost(["pools"], cfg, "0.5 (only one :default process pool can be)"))
    pool = pools[0]
    pool_config = {k: v for k, v in pool.items() if k not in ("name", "worker_profile", "adapter_module")}
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        if k != "pools":
            out[k] = v
            continue
        if "adapter_module" in pool:
            out["adapter_module"] = pool["adapter_module"]
        if pool_config:
            out["pool_config"] = pool_config
    changes = [change("moved", f"pools[0].{k}", "back to the single-pool form", before=v, to="adapter_module" if k == "adapter_module" else f"pool_config.{k}") for k, v in pool.items() if k not in ("name", "worker_profile")]
    return Converted(out, changes, lost)


def d5_to_3(cfg: Config, ctx: Context) -> Converted:
    """0.5 -> 0.3: lossless only for a config with no gRPC or session settings and no adapter."""
    keys = ["grpc_port", "grpc_host", "grpc_config", "adapter_module", "session_default_ttl", "session_cleanup_interval", "session_max_sessions", "session_warning_threshold"]
    lost = _lost(keys, cfg, "0.3")
    pool_config = cfg.get("pool_config")
    if isinstance(pool_config, dict):
        extra = [k for k in pool_config if k not in ("pool_size", "adapter_args")]
        lost += [Finding(key=f"pool_config.{k}", kind="lossy", message=f"pool_config.{k} cannot be expressed in 0.3", guidance="remove it first, or restore from the backup instead") for k in extra]
    return Converted(dict(cfg), [], lost)
