"""Errors of the configuration migration; the CLI turns them into messages and exit codes."""

from __future__ import annotations

from deployment.errors import BadInput, MigrateError


class ConfigParseError(BadInput):
    """A configuration file that cannot be read or parsed (``config check`` exits 2)."""

    def __init__(self, path: str, line: int, column: int, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"{path}:{line}:{column}: {problem}", hint=hint or "fix the syntax there and run the command again")
        self.path = path
        self.line = line
        self.column = column
        self.problem = problem


class UnknownVersion(BadInput):
    """A version that is not one of the supported schema versions."""


class NoConfigFound(BadInput):
    """A path with no Snakepit configuration file in it."""


class FindingsNotAccepted(BadInput):
    """A migration that needs a person's decision; rerun with ``--accept-findings``."""


class LossyDownConversion(BadInput):
    """A down-conversion that would drop settings the older version cannot express."""


class InvalidResult(MigrateError):
    """A converted configuration that does not validate as its target version."""


class FileChanged(BadInput):
    """A file changed since the migration that a rollback would overwrite."""
