"""ExtensionActivities outside a worker: resume from heartbeat details, version refusal, audit, parameter errors."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.extensions import ExtensionActivities
from deployment.extensions import Applied, MigrationExtension, Plan, Progress, RolledBack, Verification
from workflows.extension_models import ApplyCursor, ApplyInput, StepInput

CALLS: list[Any] = []


class CountParams(BaseModel):
    label: str
    upto: int = 5


class Counter(MigrationExtension):
    """Counts to ``upto``, one checkpoint an item."""

    name = "counter"
    version = "1.3.0"
    Params = CountParams

    async def validate(self, params, ctx):
        return []

    async def plan(self, params, ctx):
        return Plan(summary=params.label, total=params.upto)

    async def apply(self, params, ctx, resume, report):
        CALLS.append(("apply", resume.done if resume else None, params.label))
        start = resume.checkpoint["next"] if resume else 0
        for i in range(start, params.upto):
            ctx.audit("count", item=i)
            await report(Progress(done=i + 1, changed=i + 1, checkpoint={"next": i + 1}))
        return Applied(done=params.upto, changed=params.upto - start)

    async def verify(self, params, ctx):
        return Verification(ok=True)

    async def rollback(self, params, ctx):
        return RolledBack()


class Audit(list):
    def __init__(self, **common: Any) -> None:
        super().__init__()
        self.common = common
        AUDITS.append(self)

    def __call__(self, event: str, /, **fields: Any) -> None:
        self.append({"event": event, **self.common, **fields})


AUDITS: list[Audit] = []


@pytest.fixture
def acts():
    CALLS.clear()
    AUDITS.clear()
    return ExtensionActivities(loader=lambda ref: Counter, audit=Audit)


def step(**fields) -> StepInput:
    return StepInput(**{"migration_id": "m-1", "extension": "counter", "params": {"label": "${env}"}, "bindings": {"env": "prod"}, **fields})


async def test_apply_resumes_from_the_heartbeated_checkpoint_and_audits_with_the_run(acts):
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *d: beats.append(d[0] if d else None)
    last = ApplyCursor(progress=Progress(done=3, changed=3, checkpoint={"next": 3}), checkpoints=3)
    env.info = dataclasses.replace(env.info, heartbeat_details=[last.model_dump()])
    done = await env.run(acts.apply_extension, ApplyInput(step=step(version="1.0.0", name="counter"), cursor=ApplyCursor(), slice_seconds=60))
    assert CALLS == [("apply", 3, "prod")]  # resumed at item 3, bindings resolved
    assert done.finished and done.resumes == 1 and done.checkpoints == 5 and done.applied.changed == 2
    assert [b.checkpoints for b in beats if isinstance(b, ApplyCursor)] == [4, 5]
    counted = [e for e in AUDITS[0] if e["event"] == "count"]
    assert [e["item"] for e in counted] == [3, 4]
    assert {(e["run_id"], e["extension"], e["version"]) for e in AUDITS[0]} == {("m-1", "counter", "1.3.0")}


async def test_a_slice_ends_at_a_checkpoint_and_the_next_continues_from_it(acts):
    env = ActivityEnvironment()
    first = await env.run(acts.apply_extension, ApplyInput(step=step(version="1.3.0"), cursor=ApplyCursor(), slice_seconds=0))
    assert not first.finished and first.checkpoints == 1 and first.progress.checkpoint == {"next": 1}
    second = await env.run(acts.apply_extension, ApplyInput(step=step(version="1.3.0"), cursor=first, slice_seconds=60))
    assert second.finished and second.checkpoints == 5 and CALLS == [("apply", None, "prod"), ("apply", 1, "prod")]


async def test_another_major_is_refused_as_permanent_and_a_minor_resumes(acts):
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as exc:
        await env.run(acts.apply_extension, ApplyInput(step=step(version="2.1.0"), cursor=ApplyCursor()))
    assert exc.value.type == "ExtensionVersionMismatch" and exc.value.non_retryable
    assert "'counter' is 1.3.0 on this worker, but the run was started with 2.1.0" in str(exc.value)
    with pytest.raises(ApplicationError, match="started with 'other'"):
        await env.run(acts.rollback_extension, step(version="1.0.0", name="other"))
    assert CALLS == []
    assert (await env.run(acts.plan_extension, step(version="1.0.0"))).summary == "prod"


async def test_bad_params_and_unbound_names_are_permanent_errors_saying_what(acts):
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as exc:
        await env.run(acts.describe_extension, step(params={"upto": "many"}))
    assert exc.value.type == "ExtensionError" and exc.value.non_retryable
    assert "invalid params for extension 'counter': label: Field required; upto: Input should be a valid integer" in str(exc.value)
    with pytest.raises(ApplicationError, match=r"params.label: \$\{env\} is not bound"):
        await env.run(acts.describe_extension, step(bindings={}))
    described = await env.run(acts.describe_extension, step())
    assert (described.name, described.version) == ("counter", "1.3.0")


async def test_a_worker_without_the_extension_says_which_worker_and_what_is_registered():
    env = ActivityEnvironment()
    acts = ExtensionActivities()  # the real registry: no "counter" is installed here
    with pytest.raises(ApplicationError) as exc:
        await env.run(acts.describe_extension, step())
    assert exc.value.type == "ExtensionError" and exc.value.non_retryable
    assert f"(pid {os.getpid()}): no extension named 'counter' is registered (registered: " in str(exc.value)
    assert "rekey-sessions" in str(exc.value)
