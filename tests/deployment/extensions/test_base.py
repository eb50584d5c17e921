"""The extension interface's pure parts: versions, resumability, bindings, throttle."""

from __future__ import annotations

import time

import pytest

from deployment.extensions import ExtensionError, ExtensionVersionMismatch, Throttle, check_resumable, parse_version, resolve_bindings


@pytest.mark.parametrize("text, major", [("1.0.0", 1), ("0.3.12", 0), ("2.1.0-rc.1", 2), ("10.0.1+build.5", 10)])
def test_semantic_versions_parse(text, major):
    assert parse_version(text).major == major


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "01.0.0", "1.0.0.0", "", "latest", 1.0])
def test_a_bad_version_is_refused_with_the_form_expected(text):
    with pytest.raises(ExtensionError, match="version|MAJOR.MINOR.PATCH"):
        parse_version(text)


def test_same_major_resumes_and_another_major_is_refused_with_a_hint():
    check_resumable("rekey", "1.0.0", "1.7.3")
    check_resumable("rekey", "1.2.0", "1.0.0")
    with pytest.raises(ExtensionVersionMismatch) as exc:
        check_resumable("rekey", "1.2.0", "2.0.0")
    assert "2.0.0 on this worker" in str(exc.value) and "started with 1.2.0" in str(exc.value)
    assert exc.value.hint == "run the workers with rekey 1.x installed until this run has ended"


def test_bindings_fill_params_at_any_depth_and_an_unbound_name_says_where():
    params = {"store": "${store}", "nested": {"list": ["a", "x-${env}-y"]}, "n": 3, "literal": "$${store}"}
    got = resolve_bindings(params, {"store": "redis://h:6379/0", "env": "prod"})
    assert got == {"store": "redis://h:6379/0", "nested": {"list": ["a", "x-prod-y"]}, "n": 3, "literal": "${store}"}
    with pytest.raises(ExtensionError, match=r"params\.nested\.list\[1\]: \$\{env\} is not bound \(bindings given: store\)"):
        resolve_bindings(params, {"store": "x"})


async def test_throttle_keeps_the_rate_under_its_limit():
    throttle = Throttle(200)
    start = time.monotonic()
    for _ in range(10):
        await throttle(10)  # 100 items at 200/s: at least half a second
    assert time.monotonic() - start >= 0.45
    assert throttle.limited(50).max_per_second == 50 and throttle.limited(None).max_per_second == 200
    assert Throttle().limited(None).max_per_second is None
    with pytest.raises(ExtensionError):
        Throttle(0)
