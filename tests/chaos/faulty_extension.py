"""A custom extension that raises in its apply step: the rekey example with a failing hook, for the fault-injection suite.

After ``fail_after_done`` sessions it raises once (a marker file records
that it did, so a retried attempt goes on): ``transient`` raises a plain
``RuntimeError`` (a bug or a blip: Temporal retries the step, which resumes
from its checkpoint), ``permanent`` raises the extension's own
``ExtensionError`` (the step cannot succeed: the run rolls back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from deployment.extensions.base import Applied, ExtensionContext, ExtensionError, Progress, Report
from deployment.extensions.rekey import RekeyParams, RekeySessions


class FaultyParams(RekeyParams):
    """The rekey parameters, and where and how to raise."""

    fail_after_done: int = Field(ge=0, description="raise once this many sessions were scanned")
    fail_mode: Literal["transient", "permanent"] = "transient"
    marker: str = Field(description="a file written when it raised, so it raises once")


class FaultyRekey(RekeySessions):
    """``rekey-sessions`` whose apply step raises once, at a chosen point."""

    name = "faulty-rekey"
    Params = FaultyParams

    async def apply(self, params: FaultyParams, ctx: ExtensionContext, resume: Progress | None, report: Report) -> Applied:  # type: ignore[override]
        async def reporting(progress: Progress) -> None:
            await report(progress)
            marker = Path(params.marker)
            if progress.done >= params.fail_after_done and not marker.exists():
                marker.write_text(f"raised after {progress.done} sessions\n")
                if params.fail_mode == "permanent":
                    raise ExtensionError(f"faulty-rekey: injected permanent failure after {progress.done} sessions")
                raise RuntimeError(f"faulty-rekey: injected transient failure after {progress.done} sessions")

        return await super().apply(params, ctx, resume, reporting)
