"""Compensations registered before each step, unwound in reverse.

Deterministic: holds only callables that start activities.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, ChildWorkflowError, FailureError

Compensation = Callable[[], Awaitable[Any]]


class Saga:
    """A stack of named compensations."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Compensation]] = []

    def add(self, name: str, compensation: Compensation) -> None:
        """Register the undo of a step *before* the step runs; it must be idempotent."""
        self._steps.append((name, compensation))

    def clear(self) -> None:
        """Forget every compensation: past this point the change is final and undoing it would lose data."""
        self._steps.clear()

    @property
    def pending(self) -> list[str]:
        """Names of the compensations that would run, in the order they would run."""
        return [name for name, _ in reversed(self._steps)]

    async def compensate(self) -> list[Any]:
        """Run every compensation, newest first, shielded from cancellation.

        Stops at the first compensation that fails and re-raises its error;
        the ones not yet run stay registered so a later attempt can finish.
        """
        results: list[Any] = []

        async def unwind() -> None:
            while self._steps:
                name, undo = self._steps[-1]
                workflow.logger.info("Compensating %s", name)
                results.append(await undo())
                self._steps.pop()

        await asyncio.shield(asyncio.ensure_future(unwind()))
        return results


def innermost(exc: BaseException) -> BaseException:
    """The failure an activity or child workflow error wraps, all the way down."""
    while isinstance(exc, (ActivityError, ChildWorkflowError)) and exc.cause is not None:
        exc = exc.cause
    return exc


def failure_text(exc: BaseException, cancelled: str = "the migration was cancelled") -> str:
    """The innermost failure's own message, for a result a person reads."""
    exc = innermost(exc)
    if isinstance(exc, (asyncio.CancelledError, CancelledError)):
        return cancelled
    if isinstance(exc, FailureError) and exc.message:
        return exc.message
    return str(exc) or type(exc).__name__


def failure_type(exc: BaseException) -> str:
    """The innermost failure's type: the ApplicationError type, else the class name."""
    exc = innermost(exc)
    if isinstance(exc, ApplicationError) and exc.type:
        return exc.type
    return "Cancelled" if isinstance(exc, (asyncio.CancelledError, CancelledError)) else type(exc).__name__
