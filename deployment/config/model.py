"""The records a configuration migration reports: changes, findings, validation issues."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from pydantic import BaseModel

from deployment.config.values import Config, describe

ChangeKind = Literal["renamed", "removed", "added", "moved", "semantic"]


class Change(BaseModel):
    """One thing a converter did: ``key`` before, ``to`` after (for a rename or move)."""

    kind: ChangeKind
    key: str
    before: str | None = None
    after: str | None = None
    to: str | None = None
    note: str
    step: str = ""
    file: str | None = None

    def line(self) -> str:
        """A one-line human form for the change list."""
        where = f"{self.file}: " if self.file else ""
        moved = f" -> {self.to}" if self.to else ""
        values = ""
        if self.before is not None or self.after is not None:
            values = f" ({self.before if self.before is not None else '-'} => {self.after if self.after is not None else '-'})"
        return f"{where}[{self.step}] {self.kind} {self.key}{moved}{values}: {self.note}"


class Finding(BaseModel):
    """Something a person must decide: the migration refuses to run unless findings are accepted."""

    key: str
    message: str
    guidance: str
    kind: Literal["manual", "lossy"] = "manual"
    step: str = ""
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def text(self) -> str:
        """``file:line:col: key: message`` plus guidance."""
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}:{self.column}: " if self.line else f"{self.file}: "
        return f"{where}{self.key}: {self.message}\n    guidance: {self.guidance}"


class Issue(BaseModel):
    """A validation error or warning, located in the file it came from."""

    severity: Literal["error", "warning"]
    key: str
    message: str
    suggestion: str | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def text(self) -> str:
        """``file:line:col: severity: key: message (suggestion)``."""
        where = f"{self.file}:{self.line or 1}:{self.column or 1}: " if self.file else ""
        hint = f" ({self.suggestion})" if self.suggestion else ""
        return f"{where}{self.severity}: {self.key}: {self.message}{hint}"


class Converted(NamedTuple):
    """What a converter returns: the new config, its changes, and what it could not do."""

    config: Config
    changes: list[Change]
    findings: list[Finding] = []


def change(kind: ChangeKind, key: str, note: str, before: Any = ..., after: Any = ..., to: str | None = None) -> Change:
    """A :class:`Change` with values shown in Elixir syntax (``...`` means not applicable)."""
    return Change(
        kind=kind,
        key=key,
        note=note,
        to=to,
        before=None if before is ... else describe(before),
        after=None if after is ... else describe(after),
    )
