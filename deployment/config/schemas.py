"""One pydantic schema per supported Snakepit version (0.3, 0.5, 0.6, 0.7, 0.8, 0.10, 0.13).

Each field accepts an :class:`Opaque` expression in place of its value (the
tool never evaluates one).  Keys a version does not read are not fields:
validation reports them as warnings (see :mod:`deployment.config.validate`),
with the reason when the key was renamed or removed in a known version.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, WrapValidator

from deployment.config.values import Atom, Keywords, Module, Opaque

VERSIONS = ["0.3", "0.5", "0.6", "0.7", "0.8", "0.10", "0.13"]

LEGACY_ADAPTERS = {
    "Snakepit.Adapters.GenericPython",
    "Snakepit.Adapters.GenericPythonV2",
    "Snakepit.Adapters.EnhancedPython",
    "Snakepit.Adapters.GenericJavaScript",
}
GRPC_ADAPTER = "Snakepit.Adapters.GRPCPython"


def _opaque_ok(value: Any, handler: Any) -> Any:
    return value if isinstance(value, Opaque) else handler(value)


def _atom_only(value: Any, info: ValidationInfo) -> Any:
    if info.context and info.context.get("elixir") and isinstance(value, str) and not isinstance(value, (Atom, Opaque)):
        raise ValueError(f"must be an atom (:{value}), not a string")
    return value


def _module_only(value: Any, info: ValidationInfo) -> Any:
    if info.context and info.context.get("elixir") and isinstance(value, str) and not isinstance(value, Module):
        raise ValueError("must be a module name such as Snakepit.Adapters.GRPCPython, not a string")
    return value


def _map_only(value: Any) -> Any:
    if isinstance(value, Keywords):
        raise ValueError("must be a map (%{...}); a keyword list here is never read")
    return value


def _list_only(value: Any) -> Any:
    if isinstance(value, dict):
        raise ValueError("must be a list of atoms ([:pool, :grpc]); the map form is ignored")
    return value


O = WrapValidator(_opaque_ok)
AtomV = BeforeValidator(_atom_only)


def Enum(*atoms: str) -> Any:  # noqa: N802 - reads as a type
    """An atom restricted to ``atoms``, or an opaque expression."""
    return Annotated[Literal[atoms], AtomV, O]  # type: ignore[valid-type]


Bool = Annotated[bool, Field(strict=True), O]
PosInt = Annotated[int, Field(strict=True, ge=1), O]
NonNegInt = Annotated[int, Field(strict=True, ge=0), O]
Port = Annotated[int, Field(strict=True, ge=0, le=65535), O]
Number = Annotated[float | int, Field(ge=0), O]
Timeout = Annotated[Annotated[int, Field(strict=True, ge=0)] | Literal["infinity"], AtomV, O]
Str = Annotated[str, Field(strict=True), O]
Mod = Annotated[str, BeforeValidator(_module_only), O]
AnyList = Annotated[list[Any], O]
AnyMap = Annotated[dict[str, Any], O]
LogLevel = Enum("debug", "info", "warning", "error", "none")


class Section(BaseModel):
    """A block of settings; unknown keys are kept (and reported as warnings)."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)
    prefixes: ClassVar[tuple[str, ...]] = ()


def _empty_keywords(value: Any) -> Any:
    return Keywords() if isinstance(value, list) and not value else value


def Block(model: type[Section], *, map_only: bool = False) -> Any:  # noqa: N802
    """A nested section, optionally one that must be a map rather than a keyword list (``[]`` is an empty one)."""
    if map_only:
        return Annotated[model, BeforeValidator(_map_only), O]
    return Annotated[model, BeforeValidator(_empty_keywords), O]


# -- nested sections ------------------------------------------------------------


class PoolConfig03(Section):
    """The single pool of 0.1–0.3."""

    pool_size: PosInt | None = None
    adapter_args: AnyList | None = None


class PoolConfig05(PoolConfig03):
    """The single pool of 0.4–0.5 (startup batching from 0.5.1)."""

    startup_batch_size: PosInt | None = None
    startup_batch_delay_ms: NonNegInt | None = None
    max_workers: PosInt | None = None
    python_thread_limits: AnyMap | None = None


class GrpcConfig(Section):
    """Worker port range, up to 0.6.10."""

    base_port: Port | None = None
    port_range: PosInt | None = None


class Heartbeat(Section):
    """Worker heartbeats (0.6+); Python receives ``ping_interval_ms`` as ``interval_ms``."""

    enabled: Bool | None = None
    ping_interval_ms: PosInt | None = None
    timeout_ms: PosInt | None = None
    max_missed_heartbeats: PosInt | None = None
    initial_delay_ms: NonNegInt | None = None
    dependent: Bool | None = None


class PoolSpec(Section):
    """One entry of ``pools`` (0.6+)."""

    name: Annotated[str, AtomV, O]
    worker_profile: Enum("process", "thread") | None = None
    pool_size: PosInt | None = None
    adapter_module: Mod | None = None
    adapter_args: AnyList | None = None
    adapter_env: Annotated[list[Any] | dict[str, Any], O] | None = None
    threads_per_worker: PosInt | None = None
    thread_safety_checks: Bool | None = None
    worker_ttl: Annotated[tuple[Annotated[int, Field(strict=True, ge=1)], Literal["seconds", "minutes", "hours", "milliseconds"]] | Literal["infinity"], AtomV, O] | None = None
    worker_max_requests: Annotated[Annotated[int, Field(strict=True, ge=1)] | Literal["infinity"], AtomV, O] | None = None
    startup_batch_size: PosInt | None = None
    startup_batch_delay_ms: NonNegInt | None = None
    max_workers: PosInt | None = None
    python_thread_limits: AnyMap | None = None
    heartbeat: Block(Heartbeat) | None = None
    capacity_strategy: Enum("pool", "profile", "hybrid") | None = None


class SessionStore(Section):
    """The session store limits: a map, never a keyword list."""

    max_sessions: PosInt | None = None
    strict_mode: Bool | None = None


class PythonRuntime(Section):
    """``config :snakepit, :python, ...`` (0.7+)."""

    strategy: Enum("system", "uv") | None = None
    managed: Bool | None = None
    python_version: Str | None = None
    python_path: Str | None = None


class PythonPackages07(Section):
    """Packages installed into the worker environment, 0.7 to 0.8.8."""

    packages: AnyList | None = None
    installer: Enum("pip", "uv") | None = None
    timeout: Timeout | None = None


class PythonPackages08(Section):
    """Packages installed into the worker environment, from 0.8.9 (no ``installer``)."""

    packages: AnyList | None = None
    timeout: Timeout | None = None


class GrpcListener(Section):
    """Where the Elixir side listens for workers (0.10+)."""

    mode: Enum("internal", "external", "external_pool")
    host: Str | None = None
    bind_host: Str | None = None
    port: Port | None = None
    base_port: Port | None = None
    pool_size: PosInt | None = None


# -- versions ---------------------------------------------------------------------


class Snakepit03(Section):
    """0.1–0.3: one pool, command-handler adapters, wire protocol."""

    version: ClassVar[str] = "0.3"
    pooling_enabled: Bool | None = None
    pool_config: Block(PoolConfig03) | None = None
    adapter_module: Mod | None = None
    wire_protocol: Enum("auto", "json", "msgpack") | None = None
    pool_startup_timeout: Timeout | None = None
    pool_queue_timeout: Timeout | None = None
    pool_max_queue_size: NonNegInt | None = None
    worker_init_timeout: Timeout | None = None
    worker_health_check_interval: Timeout | None = None
    worker_shutdown_grace_period: Timeout | None = None
    cleanup_retry_interval: Timeout | None = None
    cleanup_max_retries: NonNegInt | None = None


class Snakepit05(Snakepit03):
    """0.4–0.5: gRPC only."""

    version: ClassVar[str] = "0.5"
    wire_protocol: ClassVar[None] = None  # type: ignore[assignment]
    pool_config: Block(PoolConfig05) | None = None
    grpc_port: Port | None = None
    grpc_host: Str | None = None
    grpc_config: Block(GrpcConfig) | None = None
    session_default_ttl: NonNegInt | None = None
    session_cleanup_interval: PosInt | None = None
    session_max_sessions: PosInt | None = None
    session_warning_threshold: Number | None = None


class Snakepit06(Snakepit05):
    """0.6: pools, heartbeat, log level, session store (grpc_config gone from 0.6.11)."""

    version: ClassVar[str] = "0.6"
    grpc_config: ClassVar[None] = None  # type: ignore[assignment]
    pools: Annotated[list[PoolSpec], O] | None = None
    pool_size: PosInt | None = None
    heartbeat: Block(Heartbeat) | None = None
    log_level: LogLevel | None = None
    session_store: Block(SessionStore, map_only=True) | None = None


class Snakepit07(Snakepit06):
    """0.7: capacity, python packages and runtime, library mode; ``cleanup_retry_interval_ms``."""

    version: ClassVar[str] = "0.7"
    cleanup_retry_interval: ClassVar[None] = None  # type: ignore[assignment]
    cleanup_retry_interval_ms: Timeout | None = None
    capacity_strategy: Enum("pool", "profile", "hybrid") | None = None
    python_packages: Block(PythonPackages07) | None = None
    python: Block(PythonRuntime) | None = None
    library_mode: Bool | None = None
    grpc_log_level: LogLevel | None = None
    log_python_output: Bool | None = None
    cleanup_on_stop: Bool | None = None
    process_group_kill: Bool | None = None


class Snakepit08(Snakepit07):
    """0.8: ``log_categories`` list, ``timeout_profile``; ``python_packages.installer`` gone."""

    version: ClassVar[str] = "0.8"
    python_packages: Block(PythonPackages08) | None = None
    log_categories: Annotated[list[Annotated[str, AtomV, O]], BeforeValidator(_list_only), O] | None = None
    timeout_profile: Enum("balanced", "production", "production_strict", "development", "ml_inference", "batch") | None = None


class Snakepit010(Snakepit08):
    """0.9–0.10: ``grpc_listener``, instance name, data dir, affinity, reconcile/starter/supervisor knobs."""

    version: ClassVar[str] = "0.10"
    prefixes: ClassVar[tuple[str, ...]] = ("pool_reconcile_", "worker_starter_", "worker_supervisor_")
    grpc_port: ClassVar[None] = None  # type: ignore[assignment]
    grpc_host: ClassVar[None] = None  # type: ignore[assignment]
    grpc_listener: Block(GrpcListener) | None = None
    instance_name: Str | None = None
    data_dir: Str | None = None
    affinity: Enum("hint", "strict_queue", "strict_fail_fast") | None = None


class Snakepit013(Snakepit010):
    """0.13: ``instance_token``; a top-level ``pool_size`` wins over ``pool_config.pool_size``."""

    version: ClassVar[str] = "0.13"
    instance_token: Str | None = None


SCHEMAS: dict[str, type[Section]] = {
    m.version: m for m in (Snakepit03, Snakepit05, Snakepit06, Snakepit07, Snakepit08, Snakepit010, Snakepit013)
}

# Keys a version does not read, with why: shown as the suggestion of a warning.
RETIRED: dict[str, dict[str, str]] = {
    "wire_protocol": {"from": "0.5", "why": "removed in 0.4 (gRPC only); run `config migrate`"},
    "grpc_config": {"from": "0.6", "why": "removed in 0.6.11; worker ports are assigned by the OS"},
    "cleanup_retry_interval": {"from": "0.7", "why": "renamed cleanup_retry_interval_ms in 0.7.6"},
    "grpc_port": {"from": "0.10", "why": "replaced by grpc_listener: %{mode: ...} in 0.10"},
    "grpc_host": {"from": "0.10", "why": "replaced by grpc_listener: %{mode: :external, host: ...} in 0.10"},
    "python_runtime": {"from": "0.3", "why": "never read; use config :snakepit, :python, strategy: :system | :uv"},
    "python_adapter": {"from": "0.3", "why": 'never read; use adapter_args: ["--adapter", "module.Class"]'},
    "installer": {"from": "0.8", "why": "python_packages.installer was removed in 0.8.9"},
    "default_ttl": {"from": "0.3", "why": "never read inside session_store; use top-level session_default_ttl"},
    "cleanup_interval": {"from": "0.3", "why": "never read inside session_store; use top-level session_cleanup_interval"},
    "interval_ms": {"from": "0.3", "why": "the Elixir key is ping_interval_ms (Python receives it as interval_ms)"},
}
