"""Throttle decisions from synthetic latency signals."""

from __future__ import annotations

import pytest

from deployment.sessions.throttle import Sample, Throttle


def throttle(**kw) -> Throttle:
    return Throttle(baseline_p99_ms=100, max_batch_size=1000, max_parallelism=8, **kw)


def test_within_budget_it_runs_at_full_speed():
    t = throttle()
    for p99 in (90, 110, 119, 100):
        d = t.decide(Sample(fleet_p99_ms=p99, store_ms=5))
    assert (d.level, d.batch_size, d.parallelism, d.delay_s, d.reason) == (0, 1000, 8, 0.0, "hold")


def test_a_p99_over_the_budget_backs_off_and_a_calm_fleet_brings_it_back_slowly():
    t = throttle()
    spike = [t.decide(Sample(fleet_p99_ms=250)) for _ in range(3)]
    assert [d.level for d in spike] == [1, 2, 3]
    assert spike[0].reason == "back off: fleet p99 250 ms over the budget of 120 ms"
    assert (spike[-1].batch_size, spike[-1].parallelism, spike[-1].delay_s) == (125, 1, 0.2)
    levels = [t.decide(Sample(fleet_p99_ms=80)).level for _ in range(9)]
    assert levels == [3, 3, 2, 2, 2, 1, 1, 1, 0]  # one level per three calm samples
    # a p99 just under the budget (not below 90% of it) is not calm: no speed-up
    t = throttle()
    t.decide(Sample(fleet_p99_ms=500))
    assert [t.decide(Sample(fleet_p99_ms=115)).level for _ in range(6)] == [1] * 6


def test_a_slow_store_or_errors_back_off_even_when_the_fleet_is_fine():
    t = throttle()
    assert t.decide(Sample(fleet_p99_ms=50, store_ms=4)).level == 0  # the store's baseline
    d = t.decide(Sample(fleet_p99_ms=50, store_ms=20))
    assert d.level == 1 and "store answers in 20 ms" in d.reason
    d = t.decide(Sample(errors=2))
    assert d.level == 3 and d.reason == "back off: 2 store error(s)"
    assert t.decide(Sample(errors=5)).level == 5


def test_the_level_is_capped_and_sizes_never_reach_zero():
    t = throttle(max_level=4)
    for _ in range(20):
        d = t.decide(Sample(fleet_p99_ms=10_000))
    assert d.level == 4 and d.batch_size == 62 and d.parallelism == 1 and d.delay_s == 0.4


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        Throttle(baseline_p99_ms=0, max_batch_size=10, max_parallelism=1)
