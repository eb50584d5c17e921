"""Where the tool keeps its state: one folder, shared by the CLI, the worker and the embedded server."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """``$SNAKEPIT_MIGRATE_HOME``, default ``~/.snakepit-migrate``; created on demand."""
    path = Path(os.environ.get("SNAKEPIT_MIGRATE_HOME") or Path.home() / ".snakepit-migrate")
    path.mkdir(parents=True, exist_ok=True)
    return path
