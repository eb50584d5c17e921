"""The HTML report, opened in headless Chromium, shows the run's figures (read back as the page's rendered text)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import uuid

import aiohttp

from client import api
from deployment.audit import open_audit_log
from deployment.audit.report import build_report, render_report
from tests.conftest import service_missing
from tests.e2e.helpers import make_snapshot
from workflows.session_models import SessionMigrationInput


async def rendered_text(path) -> str:
    """``document.body.innerText`` of the page in headless Chromium: what a person sees, not the markup."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        service_missing("Chromium", "no chromium binary on PATH (apt-get install chromium)")
    proc = await asyncio.create_subprocess_exec(
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0", f"file://{path}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        port = None
        while port is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
            assert line, "chromium exited before it listened"
            match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            port = match and match.group(1)
        async with aiohttp.ClientSession() as http:
            for _ in range(50):
                async with http.get(f"http://127.0.0.1:{port}/json") as resp:
                    pages = [t for t in await resp.json(content_type=None) if t["type"] == "page" and t["url"].startswith("file:")]
                if pages:
                    break
                await asyncio.sleep(0.1)
            async with http.ws_connect(pages[0]["webSocketDebuggerUrl"]) as ws:
                for attempt in range(50):
                    await ws.send_json({"id": attempt, "method": "Runtime.evaluate",
                                        "params": {"expression": "[document.URL, document.readyState, document.body.innerText].join('\\n')"}})  # fmt: skip
                    while True:
                        msg = json.loads((await ws.receive()).data)
                        if msg.get("id") == attempt:
                            break
                    value = msg["result"]["result"].get("value")  # none while the body does not exist yet
                    url, state, text = value.split("\n", 2) if value else ("", "", "")
                    if url.startswith("file:") and state == "complete":  # not the blank page it starts on
                        return text
                    await asyncio.sleep(0.1)
        raise AssertionError("the page never finished loading")
    finally:
        proc.kill()
        await proc.wait()


async def test_the_html_report_shows_the_figures_in_a_browser(temporal_client, task_queue, tmp_path, sqlite_url, monkeypatch):
    monkeypatch.setenv("SNAKEPIT_AUDIT_URL", f"sqlite://{tmp_path}/audit.db")
    make_snapshot(tmp_path / "in.jsonl", 180, expired_fraction=0.0)
    mid = f"html-{uuid.uuid4().hex[:6]}"
    inp = SessionMigrationInput(source=f"jsonl://{tmp_path}/in.jsonl", target=sqlite_url, batch_size=60, actor="dana")
    result = await api.wait_for_result(await api.start_session_migration(temporal_client, inp, mid, task_queue))
    async with open_audit_log() as log:
        report = build_report(await api.describe(temporal_client, mid), await log.entries(migration=mid), (await log.verify()).ok)
    page = tmp_path / "report.html"
    page.write_text(render_report(report, "html"))
    text = await rendered_text(page)
    assert f"Migration report: {mid} completed" in text
    assert re.search(r"sessions copied\s+180", text) and re.search(r"batches\s+3", text)
    assert re.search(rf"target digest\s+{re.escape(result.target_digest)}", text) and re.search(r"digests match\s+yes", text)
    assert re.search(r"started by\s+dana on ", text) and re.search(r"hash chain\s+intact", text)
    assert re.search(r"copying\s+\S+Z\s+\d+(\.\d+)?", text)  # the steps table, with timings


async def test_a_plan_report_in_a_browser_shows_each_childs_figures(temporal_client, task_queue, tmp_path, monkeypatch):
    from client.cli.audit import full_report
    from tests.client.test_report_plans import plan_run

    monkeypatch.setenv("SNAKEPIT_AUDIT_URL", f"sqlite://{tmp_path}/audit.db")
    result = await plan_run(temporal_client, task_queue, tmp_path / "plan", 90)
    assert result.status == "completed", result.error
    async with open_audit_log() as log:
        report = await full_report(temporal_client, log, result.plan_id)
    page = tmp_path / "plan-report.html"
    page.write_text(render_report(report, "html"))
    text = await rendered_text(page)
    assert f"Migration report: {result.plan_id} completed" in text
    assert re.search(r"Step copy \(sessions\): completed", text) and re.search(r"sessions copied\s+90", text)
    assert re.search(r"Step cfg \(config\): completed", text) and re.search(r"to version\s+0\.10", text)
    assert re.search(r"total sessions copied\s+90", text)
