"""Fixture adapters are importable as a worker would import them (the analyzer itself never does)."""

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "adapters"


@pytest.fixture(autouse=True)
def fixture_adapters_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
