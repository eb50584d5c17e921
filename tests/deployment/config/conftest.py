"""Fixtures of the config tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.deployment.config.config_corpus import CORPUS


@pytest.fixture
def corpus(tmp_path: Path):
    """Copy one corpus directory into a temporary directory and return its path."""

    def copy(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(CORPUS / name, dest)
        return dest

    return copy
