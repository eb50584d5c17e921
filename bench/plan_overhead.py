"""Orchestration overhead of a plan: ten no-op steps through the MigrationPlan workflow on the embedded server.

    .venv/bin/python bench/plan_overhead.py [--steps 10] [--runs 3] [--parallel]

Starts the embedded dev server exactly as ``snakepit-migrate`` does (its own
SQLite file, the search attributes registered) in a throwaway home, and a
worker in this process. The plan's steps are ``custom`` migrations of
``bench.noop_extension:NoOp``, which change nothing, so what is timed is the
plan's own work: its audit trail and index, the feasibility check, and each
child's (validate, plan, apply, verify, its own audit trail), one after the
other (a chain: every step is its own group) unless ``--parallel``. One
warm-up run, then ``--runs`` timed runs, from start to result as a client
sees them (the median is ``seconds``). Each run's history splits that time
into the children's own (from each start to its completion, ``children_s``)
and the plan's (``plan_own_s``: before the first child — feasibility, index,
audit —, between children, and after the last — the final audit entries),
so a loaded machine shows in both and the split still holds. Prints one JSON
object; the target is under 2 s for ten steps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from client import api  # noqa: E402
from client.connect import connect  # noqa: E402
from client.embedded import listening, server_command  # noqa: E402
from client.search import indexing_available  # noqa: E402
from deployment.plans.model import Environment, Migration, Plan  # noqa: E402
from deployment.plans.resolve import resolve  # noqa: E402
from worker import build_worker  # noqa: E402

NOOP = "bench.noop_extension:NoOp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def noop_plan(steps: int, parallel: bool) -> Plan:
    return Plan("overhead", "bench/plan_overhead.py", [
        Migration(id=f"step{i:02d}", type="custom", params={"extension": NOOP},
                  depends_on=[] if parallel or i == 0 else [f"step{i - 1:02d}"])
        for i in range(steps)
    ], digest="bench")  # fmt: skip


async def timed_runs(port: int, steps: int, runs: int, parallel: bool) -> dict[str, object]:
    client = await connect(f"127.0.0.1:{port}")
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    inp = resolve(noop_plan(steps, parallel), Environment("bench", {}))
    inp.search_attributes = await indexing_available(client)  # as the CLI decides
    seconds: list[float] = []
    splits: list[dict[str, float]] = []
    async with build_worker(client, queue):
        for n in range(runs + 1):  # the first run warms the worker up (imports, sandbox) and is not counted
            t0 = time.perf_counter()
            handle = await api.start_migration_plan(client, inp, f"overhead-{uuid.uuid4().hex[:8]}", queue)
            result = await handle.result()
            took = time.perf_counter() - t0
            if result.status != "completed" or len(result.completed_order) != steps:
                raise SystemExit(f"the plan did not complete: {result.status} {result.error}")
            if n:
                seconds.append(took)
                splits.append(await split(handle))
            else:
                warmup = took
    median = statistics.median(seconds)
    own = statistics.median(s["plan_own_s"] for s in splits)
    return {
        "benchmark": "plan_overhead", "steps": steps, "shape": "parallel" if parallel else "chain",
        "seconds": round(median, 3), "per_step_ms": round(median * 1000 / steps, 1), "runs_s": [round(s, 3) for s in seconds],
        "warmup_s": round(warmup, 3),
        "children_s": round(statistics.median(s["children_s"] for s in splits), 3), "plan_own_s": round(own, 3),
        "plan_own_per_step_ms": round(own * 1000 / steps, 1),
        "between_children_ms": round(statistics.median(s["between_ms"] for s in splits), 1),
        "indexed": inp.search_attributes, "target_s": 2.0, "met": median < 2.0, "load_avg_1m": os.getloadavg()[0],
    }  # fmt: skip


async def split(handle) -> dict[str, float]:  # noqa: ANN001
    """From a run's history: its children's own time (each start to completion, overlaps counted once) and the rest."""
    events = (await handle.fetch_history()).events
    start: dict[str, float] = {}
    spans: list[tuple[float, float]] = []
    for e in events:
        at = e.event_time.ToDatetime().timestamp()
        if e.HasField("start_child_workflow_execution_initiated_event_attributes"):
            start[e.start_child_workflow_execution_initiated_event_attributes.workflow_id] = at
        elif e.HasField("child_workflow_execution_completed_event_attributes"):
            spans.append((start[e.child_workflow_execution_completed_event_attributes.workflow_execution.workflow_id], at))
    busy, covered_to = 0.0, 0.0
    for begin, end in sorted(spans):  # the union of the children's intervals
        busy += max(0.0, end - max(begin, covered_to))
        covered_to = max(covered_to, end)
    ends, begins = sorted(e for _, e in spans), sorted(b for b, _ in spans)
    between = [b - a for a, b in zip(ends, begins[1:]) if b > a]
    total = events[-1].event_time.ToDatetime().timestamp() - events[0].event_time.ToDatetime().timestamp()
    return {"children_s": busy, "plan_own_s": total - busy, "between_ms": 1000 * statistics.median(between) if between else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parallel", action="store_true", help="every step in one group instead of a chain")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SNAKEPIT_MIGRATE_HOME"] = tmp  # the server's database and the audit log are throwaway
        os.environ.pop("SNAKEPIT_AUDIT_URL", None)
        port = free_port()
        server = subprocess.Popen(server_command(port, free_port()), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  stdin=subprocess.DEVNULL)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not listening("127.0.0.1", port):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the embedded server did not start")
                time.sleep(0.1)
            found = asyncio.run(timed_runs(port, args.steps, args.runs, args.parallel))
        finally:
            server.terminate()
            server.wait(10)
    print(json.dumps(found))


if __name__ == "__main__":
    main()
