"""Path handling shared by the file-backed drivers."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from deployment.errors import BadInput


def path_of(url: str) -> Path:
    """The absolute file path of a ``scheme:///abs/path`` URL."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise BadInput(
            f"{url!r}: a file store URL takes an absolute path after three slashes",
            hint=f"write {parts.scheme}:///abs/path (got host {parts.netloc!r})",
        )
    path = unquote(parts.path)
    if not path.startswith("/") or path == "/":
        raise BadInput(f"{url!r}: the path must be absolute", hint=f"write {parts.scheme}:///abs/path")
    return Path(path)
