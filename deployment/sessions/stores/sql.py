"""What the SQL drivers share: identifier checks and statement text."""

from __future__ import annotations

import re

from deployment.errors import BadInput

DEFAULT_TABLE = "snakepit_sessions"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def table_name(options: dict[str, str]) -> str:
    """The ``?table=`` option, checked to be a plain SQL identifier."""
    table = options.get("table", DEFAULT_TABLE)
    if not _IDENT.match(table):
        raise BadInput(
            f"table name {table!r} is not a plain SQL identifier",
            hint="use letters, digits and underscores, starting with a letter (e.g. ?table=snakepit_sessions)",
        )
    return table


def journal_table(table: str) -> str:
    """The journal table that sits beside a session table."""
    return f"{table}_migrate_journal"


def control_table(table: str) -> str:
    """The control key-value table (routing mode, acknowledgements) beside a session table."""
    return f"{table}_migrate_control"
