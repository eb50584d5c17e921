"""Read the files of a config unit from disk (the only I/O of ``deployment.config``)."""

from __future__ import annotations

from pathlib import Path

from deployment.config.documents import FORMATS
from deployment.config.errors import ConfigParseError, NoConfigFound

_ORDER = {"config.exs": 0, "runtime.exs": 2}


def unit_paths(path: str | Path) -> list[Path]:
    """The config files of ``path``: the file itself, or the config files directly in a directory.

    ``config.exs`` comes first and ``runtime.exs`` last, as Elixir evaluates them.
    """
    p = Path(path)
    if not p.exists():
        raise NoConfigFound(f"{path}: no such file or directory", hint="give a config file (config/config.exs) or a config/ directory")
    if p.is_file():
        if p.suffix.lower() not in FORMATS:
            raise NoConfigFound(f"{path}: not a config file this tool reads", hint="use a .exs, .json, .yaml/.yml or .toml file")
        return [p]
    found = sorted(
        (c for c in p.iterdir() if c.is_file() and c.suffix.lower() in FORMATS and not c.name.startswith(".")),
        key=lambda c: (_ORDER.get(c.name, 1), c.name),
    )
    if not found:
        raise NoConfigFound(f"{path}: no .exs, .json, .yaml or .toml file in this directory", hint="point at your project's config/ directory")
    return found


def read_unit(path: str | Path) -> list[tuple[str, bytes]]:
    """``(path, bytes)`` of every file of the unit; an unreadable file raises a clear error."""
    out = []
    for p in unit_paths(path):
        try:
            out.append((str(p), p.read_bytes()))
        except OSError as exc:
            raise ConfigParseError(str(p), 1, 1, f"cannot read the file: {exc.strerror or exc}") from None
    return out


def read_base(path: str | Path) -> tuple[str, bytes] | None:
    """The ``config.exs`` beside an environment file (``config/prod.exs``) given on its own, else None.

    It is read so that the environment file is understood as Elixir layers it: on top of the base.
    """
    from deployment.config.plan import ENV_FILES

    p = Path(path)
    sibling = p.parent / "config.exs"
    if not p.is_file() or p.suffix != ".exs" or p.stem not in ENV_FILES or not sibling.is_file():
        return None
    try:
        return str(sibling), sibling.read_bytes()
    except OSError:
        return None
