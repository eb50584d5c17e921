"""The session record: invariants, canonical bytes, expiry, digests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deployment.errors import InvalidSession
from deployment.sessions.digest import SetDigest, record_digest
from deployment.sessions.record import canonical_bytes, decode, is_expired, normalize

BASE = {"id": "s1", "ttl": 60, "created_at": 100, "last_accessed": 150}


def test_normalize_fills_defaults_and_types_timestamps_as_floats():
    rec = normalize(BASE)
    assert rec == {
        "id": "s1", "ttl": 60, "created_at": 100.0, "last_accessed": 150.0,
        "last_worker_id": None, "programs": {}, "metadata": {}, "stats": {},
    }  # fmt: skip
    assert isinstance(rec["created_at"], float)


def test_unknown_fields_are_kept():
    rec = normalize({**BASE, "variables": {"t": 0.7}, "variable_index": {"t": "v1"}})
    assert rec["variables"] == {"t": 0.7} and rec["variable_index"] == {"t": "v1"}


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"id": ""}, "'id'"),
        ({"id": 5}, "'id'"),
        ({"ttl": -1}, "'ttl'"),
        ({"ttl": True}, "'ttl'"),
        ({"ttl": 1.5}, "'ttl'"),
        ({"created_at": "yesterday"}, "'created_at'"),
        ({"last_accessed": float("nan")}, "'last_accessed'"),
        ({"last_accessed": 50}, "earlier than 'created_at'"),
        ({"last_worker_id": 3}, "'last_worker_id'"),
        ({"programs": []}, "'programs'"),
    ],
)
def test_invariant_violations_name_the_field(change, needle):
    with pytest.raises(InvalidSession, match=needle):
        normalize({**BASE, **change})


def test_expiry_is_strictly_less_than_now():
    rec = normalize(BASE)  # expires at 210
    assert not is_expired(rec, 210.0)
    assert is_expired(rec, 210.000001)


def test_canonical_bytes_are_stable_across_key_order():
    a = normalize({**BASE, "metadata": {"b": 1, "a": "é"}})
    b = normalize({"metadata": {"a": "é", "b": 1}, **{k: BASE[k] for k in reversed(list(BASE))}})
    assert canonical_bytes(a) == canonical_bytes(b)
    assert "é".encode() in canonical_bytes(a)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)


@given(meta=st.dictionaries(st.text(), json_values, max_size=5), last=st.floats(0, 2e9), ttl=st.integers(0, 10**7))
def test_canonical_bytes_round_trip_exactly(meta, last, ttl):
    rec = normalize({"id": "x", "ttl": ttl, "created_at": last, "last_accessed": last, "metadata": meta})
    assert canonical_bytes(decode(canonical_bytes(rec))) == canonical_bytes(rec)


def test_set_digest_is_order_independent_and_sensitive_to_every_byte():
    recs = [normalize({**BASE, "id": f"s{i}"}) for i in range(50)]
    forward, backward = SetDigest(), SetDigest()
    for r in recs:
        forward.add(r)
    for r in reversed(recs):
        backward.add(r)
    assert str(forward) == str(backward)
    changed = SetDigest()
    for r in recs[:-1] + [{**recs[-1], "ttl": 61}]:
        changed.add(r)
    assert str(changed) != str(forward)
    assert SetDigest.parse(str(forward)) == forward
    halves = SetDigest()
    for r in recs[:25]:
        halves.add(r)
    rest = SetDigest()
    for r in recs[25:]:
        rest.add(r)
    assert str(halves.merge(rest)) == str(forward)
    assert record_digest(recs[0]) != record_digest(recs[1])
