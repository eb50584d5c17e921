"""CI's fixed sample of the fault-injection suite: each fault kind once (`make chaos` runs 50)."""

from __future__ import annotations

import pytest

from tests.chaos.harness import Trial, run_any


@pytest.mark.parametrize(
    "fault, target",
    [("worker_kill", "postgresql"), ("temporal_restart", "redis"), ("pg_terminate", "postgresql"), ("redis_restart", "redis")],
)
async def test_a_fault_mid_copy_converges_with_invariants_intact(fault, target, pg_base, redis_base):
    trial = await run_any(Trial(fault=fault, at_fraction=0.3, target=target))
    assert trial.outcome in ("completed", "rolled_back"), trial.problems
    assert trial.invariants_ok, trial.problems
    assert "no PostgreSQL connection" not in trial.injected, trial.injected


@pytest.mark.parametrize(
    "fault, at_fraction, target, outcome",
    [
        ("config_permission", 0.05, "config", "completed"),  # 1 s of EPERM: the write's retries outlast it
        ("fleet_instance_kill", 0.4, "fleet", None),  # either end is correct; the fleet must serve on one version
        ("extension_raise", 0.31, "postgresql", "rolled_back"),  # the extension's own error: permanent
    ],
)
async def test_a_fault_in_another_migration_type_converges_with_invariants_intact(fault, at_fraction, target, outcome, pg_base):
    trial = await run_any(Trial(fault=fault, at_fraction=at_fraction, target=target))
    assert trial.outcome in ("completed", "rolled_back"), trial.problems
    assert trial.invariants_ok, trial.problems
    assert outcome is None or trial.outcome == outcome, trial
