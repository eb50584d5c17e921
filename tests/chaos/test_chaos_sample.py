"""CI's fixed sample of the fault-injection suite: each fault kind once, mid-copy (`make chaos` runs 50)."""

from __future__ import annotations

import pytest

from tests.chaos.harness import Trial, run_trial


@pytest.mark.parametrize(
    "fault, target",
    [("worker_kill", "postgresql"), ("temporal_restart", "redis"), ("pg_terminate", "postgresql"), ("redis_restart", "redis")],
)
async def test_a_fault_mid_copy_converges_with_invariants_intact(fault, target, pg_base, redis_base):
    trial = await run_trial(Trial(fault=fault, at_fraction=0.3, target=target))
    assert trial.outcome in ("completed", "rolled_back"), trial.problems
    assert trial.invariants_ok, trial.problems
    assert "no PostgreSQL connection" not in trial.injected, trial.injected
