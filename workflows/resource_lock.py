"""ResourceLock: one running workflow per resource is the lock on it.

A plan takes the lock by starting ``lock-<digest of the resource>`` as its
child: Temporal refuses a second running workflow with that id, which is
the refusal.  The lock ends on the holder's ``release`` signal, and, because
it is a child with the TERMINATE parent-close policy, when the holder ends in
any way (completed, failed, terminated): a crashed holder never leaves it stuck.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from temporalio import workflow


class LockInput(BaseModel):
    """The resource (redacted for display) and the run that holds it."""

    resource: str
    holder: str


@workflow.defn(name="ResourceLock")
class ResourceLockWorkflow:
    """Held until released, or until its holder ends."""

    def __init__(self) -> None:
        self._released = False
        self._input: LockInput | None = None

    @workflow.signal(name="release")
    def release(self) -> None:
        """The holder is done with the resource."""
        self._released = True

    @workflow.query(name="holder")
    def holder(self) -> dict[str, Any]:
        """Which run holds which resource."""
        return self._input.model_dump() if self._input else {}

    @workflow.run
    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        self._input = LockInput.model_validate(params)
        await workflow.wait_condition(lambda: self._released)
        return {**self._input.model_dump(), "released": True}
