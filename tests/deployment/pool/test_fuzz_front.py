"""Hypothesis: random HTTP requests to the reference fleet's front give JSON answers, never a 5xx, and it keeps serving.

A real fleet (one instance of the fixture adapter) runs in its own process
with an admin token. Requests draw a method, a path (the real routes with
random parts, or random text), headers, and a body (random bytes, or JSON
shaped like what the route reads, with wrong types). With the admin token
only requests that cannot stop the fleet are sent (no shutdown; drain,
restart and wait-idle only of instances that do not exist). Every answer
must be JSON; an error must be a 4xx ``{"error": {"type", "message"}}``;
afterwards the instance still serves a tool call. ``FUZZ_EXAMPLES`` sets the
number of examples (``make fuzz`` runs many more).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
TOKEN = "fuzz-admin-token"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
ROUTES = ["/tools/{x}", "/tools", "/health", "/admin/instances", "/admin/instances/{x}", "/admin/instances/{x}/config",
          "/admin/instances/{x}/drain", "/admin/instances/{x}/undrain", "/admin/instances/{x}/wait-idle",
          "/admin/instances/{x}/restart", "/admin/migration", "/admin/shutdown"]  # fmt: skip
TOOLS = ["ping", "incr", "add", "boom", "helper", "nope", "__init__", "", "a" * 200]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "FOO"]

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)),
    max_leaves=8,
)
shaped = st.fixed_dictionaries({}, optional={
    "session_id": json_values, "arguments": st.one_of(json_values, st.dictionaries(st.sampled_from(["a", "b", "by", "n"]), json_values)),
    "config": json_values, "timeout": json_values, "settle": json_values, "id": json_values, "phase": json_values,
})  # fmt: skip
bodies = st.one_of(st.none(), st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                   shaped.map(lambda v: json.dumps(v).encode()))  # fmt: skip
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    """A one-instance reference fleet behind an admin token; shut down afterwards."""
    folder = tmp_path_factory.mktemp("fuzz-front")
    path = os.pathsep.join([str(FIXTURES / "fleet"), str(FIXTURES / "rolling")])
    config = {"config_version": "v1", "session_store": f"sqlite:///{folder / 'sessions.db'}", "session_default_ttl": 600,
              "pools": [{"name": "default", "pool_size": 1, "adapter_args": ["--adapter", "fleet_adapters.CounterAdapter"],
                         "adapter_env": {"PYTHONPATH": path}}]}  # fmt: skip
    (folder / "v1.json").write_text(json.dumps(config))
    env = {**os.environ, "SNAKEPIT_ADMIN_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "pool", "start", "--config", str(folder / "v1.json"), "--port", "0",
         "--instances", "1", "--json", "--run-dir", str(folder / "run")],
        stdout=subprocess.PIPE, stderr=(folder / "fleet.log").open("ab"), env=env, text=True, start_new_session=True,
    )  # fmt: skip
    text = ""
    while True:
        line = proc.stdout.readline()
        assert line, f"the fleet did not start: {(folder / 'fleet.log').read_text()[-1500:]}"
        text += line
        try:
            info = json.loads(text)
            break
        except ValueError:
            continue
    parts = urlsplit(info["url"])
    yield parts.hostname, parts.port, proc
    send(parts.hostname, parts.port, "POST", "/admin/shutdown", None, {"Authorization": f"Bearer {TOKEN}"})
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


def send(host: str, port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@st.composite
def requests_(draw: st.DrawFn) -> tuple[str, str, bytes | None, dict[str, str]]:
    method = draw(st.sampled_from(METHODS))
    route = draw(st.sampled_from(ROUTES))
    part = draw(st.one_of(st.sampled_from(TOOLS), st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                                                        blacklist_characters="/?#%"), max_size=20)))  # fmt: skip
    path = draw(st.one_of(st.just(route.replace("{x}", part)), st.text(max_size=30).map(lambda t: "/" + t)))
    if draw(st.booleans()):
        path += "?" + draw(header_text).replace(" ", "+").replace("#", "")
    headers = dict(draw(st.dictionaries(st.sampled_from(["Content-Type", "Accept", "X-Whatever", "Authorization", "Content-Encoding"]),
                                        header_text, max_size=3)))  # fmt: skip
    with_token = draw(st.booleans())
    if with_token:
        headers["Authorization"] = f"Bearer {TOKEN}"
    return method, path, draw(bodies), headers


def harmless(method: str, path: str, headers: dict[str, str]) -> bool:
    """With the token, nothing that stops the fleet or takes its one instance out."""
    if headers.get("Authorization") != f"Bearer {TOKEN}":
        return True
    if path.split("?")[0].rstrip("/") == "/admin/shutdown":
        return False
    return not re.match(r"^/admin/instances/w\d+/(drain|restart|wait-idle)", path)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests_())
def test_random_requests_get_json_answers_and_never_a_server_error(front, request):
    host, port, proc = front
    method, path, body, headers = request
    assume(harmless(method, path, headers))
    try:
        status, data = send(host, port, method, path, body, headers)
    except (http.client.InvalidURL, ValueError, UnicodeEncodeError):
        assume(False)  # the client library refuses to send it: nothing reached the fleet
    assert proc.poll() is None, "the fleet exited"
    assert status < 500, (method, path, body, status, data[:500])
    if method == "HEAD":
        return
    if method == "FOO":
        # Not an HTTP method: aiohttp's request parser answers a plain 400 before the app sees the request.
        assert status == 400, (status, data[:300])
        return
    try:
        payload = json.loads(data)
    except ValueError:
        pytest.fail(f"not JSON: {method} {path} -> {status} {data[:300]!r}")
    if status >= 400:
        assert isinstance(payload["error"]["type"], str) and payload["error"]["message"], payload


def test_the_fleet_still_serves_after_the_fuzzing(front):
    host, port, proc = front
    auth = {"Authorization": f"Bearer {TOKEN}"}
    send(host, port, "DELETE", "/admin/migration", None, auth)  # a fuzzed PUT may have set a migration mark
    send(host, port, "POST", "/admin/instances/w1/undrain", b"{}", {**auth, "Content-Type": "application/json"})
    deadline = time.monotonic() + 30
    while True:
        status, data = send(host, port, "GET", "/health", None, {})
        if json.loads(data)["status"] == "ok" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200 and json.loads(data)["status"] == "ok", data
    status, data = send(host, port, "POST", "/tools/add", json.dumps({"session_id": "s1", "arguments": {"a": 2, "b": 3}}).encode(),
                        {"Content-Type": "application/json"})  # fmt: skip
    assert status == 200 and json.loads(data)["result"] == 5, data
