"""Errors of migration plans; the CLI turns them into messages and exit codes."""

from __future__ import annotations

from dataclasses import dataclass

from deployment.errors import BadInput, MigrateError


@dataclass(frozen=True)
class PlanIssue:
    """One problem of a plan, placed in its file: what, where, how to fix."""

    kind: str  # schema | cycle | conflict | feasibility
    message: str
    file: str | None = None
    line: int | None = None
    migration: str | None = None
    hint: str | None = None
    severity: str = "error"  # error | warning

    def text(self) -> str:
        """``file:line: message (hint: ...)``."""
        where = f"{self.file}:{self.line}: " if self.file and self.line else (f"{self.file}: " if self.file else "")
        return f"{where}{self.message}" + (f"\n  hint: {self.hint}" if self.hint else "")

    def as_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class PlanUnreadable(BadInput):
    """A plan or environments file that cannot be read or is not YAML (exit 2)."""


class ResourceLocked(MigrateError):
    """A resource another running plan holds (exit code 3); the message names the holder and how to wait."""

    exit_code = 3
