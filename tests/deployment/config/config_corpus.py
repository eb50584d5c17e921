"""The corpus of real-looking config files the config tests run over."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "config"
# corpus directory -> the version detection must find
ERAS = {
    "v0_1": "0.3",
    "v0_3": "0.3",
    "v0_3_enhanced": "0.3",
    "v0_5": "0.5",
    "v0_5_internal": "0.5",
    "v0_6": "0.6",
    "v0_7": "0.7",
    "v0_8": "0.8",
    "v0_10": "0.10",
    "v0_10_simple": "0.10",
    "v0_13": "0.13",
    "mixed": "0.8",
    "formats": "0.5",
}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of a directory (recursively) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
