"""Tell a configuration's Snakepit version from the keys it sets, and say why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deployment.config.errors import UnknownVersion
from deployment.config.schemas import GRPC_ADAPTER, LEGACY_ADAPTERS, VERSIONS
from deployment.config.values import Config

_LAST = VERSIONS[-1]

# key -> (oldest version that reads it, newest version that reads it, what it tells)
_EVIDENCE: dict[str, tuple[str, str, str]] = {
    "wire_protocol": ("0.3", "0.3", "wire_protocol exists only up to 0.3"),
    "grpc_config": ("0.5", "0.6", "grpc_config exists from 0.4 to 0.6.10"),
    "grpc_port": ("0.5", "0.8", "grpc_port is read from 0.4 until grpc_listener replaces it in 0.10"),
    "grpc_host": ("0.5", "0.8", "grpc_host is read from 0.4 until grpc_listener replaces it in 0.10"),
    "session_default_ttl": ("0.5", _LAST, "top-level session settings exist from 0.4"),
    "session_cleanup_interval": ("0.5", _LAST, "top-level session settings exist from 0.4"),
    "session_max_sessions": ("0.5", _LAST, "top-level session settings exist from 0.4"),
    "pools": ("0.6", _LAST, "pools means 0.6 or later"),
    "heartbeat": ("0.6", _LAST, "heartbeat exists from 0.6"),
    "log_level": ("0.6", _LAST, "log_level exists from 0.6"),
    "pool_size": ("0.6", _LAST, "a top-level pool_size exists from 0.6"),
    "cleanup_retry_interval": ("0.3", "0.6", "cleanup_retry_interval was renamed in 0.7.6"),
    "cleanup_retry_interval_ms": ("0.7", _LAST, "cleanup_retry_interval_ms exists from 0.7.6"),
    "capacity_strategy": ("0.7", _LAST, "capacity_strategy exists from 0.7"),
    "python_packages": ("0.7", _LAST, "python_packages exists from 0.7"),
    "python": ("0.7", _LAST, "the :python runtime block exists from 0.7"),
    "library_mode": ("0.7", _LAST, "library_mode exists from 0.7"),
    "grpc_log_level": ("0.7", _LAST, "grpc_log_level exists from 0.7"),
    "log_python_output": ("0.7", _LAST, "log_python_output exists from 0.7"),
    "cleanup_on_stop": ("0.7", _LAST, "cleanup_on_stop exists from 0.7"),
    "process_group_kill": ("0.7", _LAST, "process_group_kill exists from 0.7"),
    "timeout_profile": ("0.8", _LAST, "timeout_profile exists from 0.8.8"),
    "grpc_listener": ("0.10", _LAST, "grpc_listener means 0.10 or later"),
    "instance_name": ("0.10", _LAST, "instance_name exists from 0.10"),
    "data_dir": ("0.10", _LAST, "data_dir exists from 0.10"),
    "affinity": ("0.10", _LAST, "affinity exists from 0.10"),
    "instance_token": ("0.13", _LAST, "instance_token exists from 0.13"),
}
_PREFIXES = {"pool_reconcile_": "0.10", "worker_starter_": "0.10", "worker_supervisor_": "0.10"}
_POOL_CONFIG_05 = ("startup_batch_size", "startup_batch_delay_ms", "max_workers", "python_thread_limits")


def rank(version: str) -> int:
    """The position of a supported version; raises :class:`UnknownVersion` for anything else."""
    canon = canonical(version)
    return VERSIONS.index(canon)


def canonical(version: str) -> str:
    """The supported schema a release belongs to: ``0.6.11`` -> ``0.6``, ``0.4`` -> ``0.5``, ``0.9`` -> ``0.10``."""
    text = version.strip().lstrip("vV")
    parts = text.split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise UnknownVersion(
            f"'{version}' is not a version", hint=f"use one of {', '.join(VERSIONS)}"
        ) from None
    if major != 0:
        raise UnknownVersion(f"Snakepit {version} is not a supported version", hint=f"use one of {', '.join(VERSIONS)}")
    for v in VERSIONS:
        if int(v.split(".")[1]) >= minor:
            return v
    raise UnknownVersion(f"Snakepit {version} is newer than this tool knows", hint=f"the newest supported is {_LAST}")


@dataclass
class Detection:
    """The detected version, why, and keys that belong to an older era than the verdict."""

    version: str
    reasons: list[str]
    stale: list[str] = field(default_factory=list)
    lowest: str = VERSIONS[0]
    highest: str = _LAST


def _bounds(config: Config) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for key, value in config.items():
        if key in _EVIDENCE:
            lo, hi, why = _EVIDENCE[key]
            found.append((lo, hi, why))
        for prefix, lo in _PREFIXES.items():
            if key.startswith(prefix):
                found.append((lo, _LAST, f"{prefix}* settings exist from 0.9.1"))
    adapter = config.get("adapter_module")
    if isinstance(adapter, str):
        if adapter in LEGACY_ADAPTERS:
            found.append(("0.3", "0.3", f"adapter_module {adapter} exists only up to 0.3"))
        elif adapter == GRPC_ADAPTER:
            found.append(("0.5", _LAST, f"adapter_module {adapter} exists from 0.4"))
    pool_config = config.get("pool_config")
    if isinstance(pool_config, dict):
        for key in _POOL_CONFIG_05:
            if key in pool_config:
                found.append(("0.5", _LAST, f"pool_config.{key} exists from 0.5.1"))
    categories = config.get("log_categories")
    if isinstance(categories, list):
        found.append(("0.8", _LAST, "log_categories as a list exists from 0.8"))
    packages = config.get("python_packages")
    if isinstance(packages, dict) and "installer" in packages:
        found.append(("0.7", "0.7", "python_packages.installer was removed in 0.8.9"))
    return found


def detect(config: Config) -> Detection:
    """The oldest supported version that reads every key present, with the evidence.

    Keys of an older era next to newer ones (a leftover ``cleanup_retry_interval``
    in an 0.8 file) do not pull the verdict down; they are listed as ``stale``.
    """
    evidence = _bounds(config)
    if not evidence:
        keys = ", ".join(sorted(config)) or "no Snakepit settings"
        return Detection(VERSIONS[0], [f"only keys every version reads ({keys}); assuming the oldest, {VERSIONS[0]}"])
    lo = max((e[0] for e in evidence), key=rank)
    hi = min((e[1] for e in evidence), key=rank)
    reasons = sorted({e[2] for e in evidence if rank(e[0]) == rank(lo)})
    stale = sorted({e[2] for e in evidence if rank(e[1]) < rank(lo)})
    if stale:
        reasons.append("also keys a " + lo + " deployment no longer reads: " + "; ".join(stale))
    highest = hi if rank(hi) >= rank(lo) else lo
    return Detection(lo, reasons, stale, lo, highest)


def keys_of(configs: list[Config]) -> Config:
    """All keys of several configs in one dict (later files win), for detection of a directory."""
    merged: dict[str, Any] = {}
    for cfg in configs:
        merged.update(cfg)
    return merged
