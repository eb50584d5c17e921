"""The fleet's traffic window: what /health/traffic reports and a migration samples."""

from __future__ import annotations

from deployment.pool.traffic import TrafficWindow, percentile


def test_the_window_keeps_only_its_last_seconds_and_counts_errors() -> None:
    w = TrafficWindow(window_s=10.0)
    for n in range(100):
        w.record(ms=float(n + 1), ok=n % 10 != 0, now=float(n) / 10)  # 100 calls over 10 s, 1..100 ms, 10 failed
    snap = w.snapshot(now=9.9)
    assert (snap["requests"], snap["errors"], snap["rps"]) == (100, 10, 10.0)
    assert (snap["p50_ms"], snap["p99_ms"]) == (50.0, 99.0)
    later = w.snapshot(now=15.0)  # calls older than 5.0 s are gone
    assert later["requests"] == 50 and later["errors"] == 5 and later["p50_ms"] == 75.0
    assert (later["total_requests"], later["total_errors"]) == (100, 10)  # totals never shrink
    assert w.snapshot(now=100.0) | {"total_requests": 0, "total_errors": 0} == {
        "window_s": 10.0, "requests": 0, "errors": 0, "rps": 0.0, "p50_ms": None, "p99_ms": None,
        "total_requests": 0, "total_errors": 0}  # fmt: skip


def test_nearest_rank_percentile() -> None:
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([float(n) for n in range(1, 201)], 99) == 198.0
