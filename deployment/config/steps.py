"""Chain the converters between supported versions, up or down."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from deployment.config.converters import (
    Context,
    Converter,
    c01_grpc_only,
    c02_pools,
    c03_drop_grpc_config,
    c04_grpc_listener,
    c05_cleanup_retry_interval_ms,
    c06_drop_installer,
    c07_log_level_info,
    c08_log_categories_list,
    c09_session_settings,
    c10_python_runtime,
    c11_python_adapter,
    c12_heartbeat_ping_interval,
    c13_pool_size_precedence,
)
from deployment.config.detect import rank
from deployment.config.downgrade import d5_to_3, d6_to_5, d7_to_6, d8_to_7, d10_to_8, d13_to_10
from deployment.config.model import Change, Converted, Finding
from deployment.config.values import Config


@dataclass(frozen=True)
class Step:
    """Converters that take a config from ``source`` to ``target``, in order."""

    source: str
    target: str
    converters: tuple[Converter, ...]

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"


UP = [
    Step("0.3", "0.5", (c01_grpc_only,)),
    Step("0.5", "0.6", (c11_python_adapter, c02_pools, c03_drop_grpc_config, c09_session_settings, c12_heartbeat_ping_interval)),
    Step("0.6", "0.7", (c03_drop_grpc_config, c05_cleanup_retry_interval_ms, c10_python_runtime, c11_python_adapter, c09_session_settings, c12_heartbeat_ping_interval)),
    Step("0.7", "0.8", (c06_drop_installer, c07_log_level_info, c08_log_categories_list)),
    Step("0.8", "0.10", (c04_grpc_listener,)),
    Step("0.10", "0.13", (c13_pool_size_precedence,)),
]
DOWN = [
    Step("0.13", "0.10", (d13_to_10,)),
    Step("0.10", "0.8", (d10_to_8,)),
    Step("0.8", "0.7", (d8_to_7,)),
    Step("0.7", "0.6", (d7_to_6,)),
    Step("0.6", "0.5", (d6_to_5,)),
    Step("0.5", "0.3", (d5_to_3,)),
]
# Conversions of keys no version reads any more: applied even when the config already claims a later version.
REPAIRS: tuple[Converter, ...] = (
    c03_drop_grpc_config, c05_cleanup_retry_interval_ms, c06_drop_installer, c08_log_categories_list,
    c09_session_settings, c10_python_runtime, c11_python_adapter, c12_heartbeat_ping_interval,
)


def plan(source: str, target: str) -> list[Step]:
    """The steps from ``source`` to ``target`` (up or down); empty when they are equal."""
    a, b = rank(source), rank(target)
    if a <= b:
        return [s for s in UP if a <= rank(s.source) and rank(s.target) <= b]
    return [s for s in DOWN if b <= rank(s.target) and rank(s.source) <= a]


def convert(cfg: Config, source: str, target: str, ctx: Context = Context()) -> Converted:
    """Chain the steps from ``source`` to ``target``; on the way up, repair keys no version reads first."""
    current = copy.deepcopy(cfg)
    changes: list[Change] = []
    findings: list[Finding] = []
    runs: list[tuple[str, Converter]] = []
    if rank(source) <= rank(target):
        earlier = {c for s in UP if rank(s.target) <= rank(source) for c in s.converters}
        runs += [(f"repair@{source}", c) for c in REPAIRS if c in earlier]
    for step in plan(source, target):
        runs += [(step.name, c) for c in step.converters]
    base = copy.deepcopy(ctx.inherited)
    for name, fn in runs:
        result = fn(current, Context(ctx.primary, base, repair=name.startswith("repair@")))
        current = result.config
        if base:  # the base file moves along the same chain, so each step sees it as of that step
            base = fn(base, Context(primary=True)).config
        changes += [c.model_copy(update={"step": name}) for c in result.changes]
        findings += [f.model_copy(update={"step": name}) for f in result.findings]
    return Converted(current, changes, findings)

