"""The domain errors of snakepit-migrate.

Every error a user can cause derives from :class:`MigrateError`; the CLI
translates them once, at its boundary, into a message and an exit code.
"""

from __future__ import annotations


class MigrateError(Exception):
    """Base of every error the tool reports to a user."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class BadInput(MigrateError):
    """The user gave something the tool cannot use (exit code 2)."""

    exit_code = 2


class UnknownStoreScheme(BadInput):
    """A store URL whose scheme no driver handles."""


class StoreUnreachable(BadInput):
    """A store that cannot be opened or answered no query."""


class StoreMissing(StoreUnreachable):
    """A store whose file or table does not exist (and was not to be created)."""


class SnapshotParseError(BadInput):
    """A malformed line in a JSONL session snapshot."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        super().__init__(
            f"{path}, line {line}: {problem}",
            hint="fix or remove that line; each line must be one JSON object with a non-empty 'id'",
        )
        self.path = path
        self.line = line


class InvalidSession(BadInput):
    """A session record that breaks the session invariants."""


class TargetNotCompatible(BadInput):
    """The target store holds sessions that collide with the source."""


class MigrationFailed(MigrateError):
    """A migration ran and failed (exit code 1); the message says whether it was rolled back."""


class NotFound(BadInput):
    """A migration id that Temporal does not know."""
