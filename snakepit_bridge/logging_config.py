"""``get_logger`` as later upstream adapters import it (``snakepit_bridge.logging_config``)."""

from __future__ import annotations

import logging


def get_logger(name: str) -> logging.Logger:
    """A standard logger; the worker process configures handlers and level."""
    return logging.getLogger(name)
