"""Credentials out of store URLs: references in what Temporal records, values resolved where a store is opened.

A workflow's input is kept in its history, so a store URL must not carry a
password there. Two references may stand in the password's place:

* ``${env:NAME}``: the value of the environment variable NAME of the process
  that opens the store (the worker);
* ``${secret:NAME}``: the contents of ``$SNAKEPIT_SECRETS_DIR/NAME`` (default
  ``$SNAKEPIT_MIGRATE_HOME/secrets``), one password, no trailing newline needed.

``snakepit-migrate sessions migrate`` moves a literal password into a new
secret file (mode 0600) and starts the workflow with the reference, so the
same worker host (or one sharing the folder) can resolve it, and a later
rollback, started from the recorded input, still can.
"""

from __future__ import annotations

import os
import re
import secrets as _random
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from deployment.errors import BadInput
from deployment.sessions.stores.base import redact_url

_REFERENCE = re.compile(r"^\$\{(env|secret):([A-Za-z_][A-Za-z0-9_.-]{0,127})\}$")


def secrets_dir() -> Path:
    """``SNAKEPIT_SECRETS_DIR``, else ``secrets`` in the tool's home."""
    if os.environ.get("SNAKEPIT_SECRETS_DIR"):
        return Path(os.environ["SNAKEPIT_SECRETS_DIR"])
    from deployment.home import home

    return home() / "secrets"


def _split(url: str) -> tuple[str, str | None, str] | None:
    """(before the password, the password as written, from '@' on), or None without a password."""
    if "://" not in url:
        return None
    scheme, rest = url.split("://", 1)
    netloc_end = next((i for i, c in enumerate(rest) if c in "/?#"), len(rest))
    netloc = rest[:netloc_end]
    if "@" not in netloc:
        return None
    userinfo, hostport = netloc.rsplit("@", 1)
    if ":" not in userinfo:
        return None
    user, password = userinfo.split(":", 1)
    return f"{scheme}://{user}:", password, f"@{hostport}{rest[netloc_end:]}"


def is_reference(password: str) -> bool:
    """Whether the password part of a URL is a ``${env:...}`` or ``${secret:...}`` reference."""
    return _REFERENCE.match(unquote(password)) is not None


def stash_password(url: str) -> str:
    """The URL with a literal password moved into a new secret file and replaced by its reference."""
    parts = _split(url)
    if parts is None or is_reference(parts[1] or ""):
        return url
    head, password, tail = parts
    folder = secrets_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"pw-{_random.token_hex(8)}"
    fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(unquote(password or ""))
    return f"{head}${{secret:{name}}}{tail}"


def resolve_secrets(url: str) -> str:
    """The URL with a password reference replaced by its value (percent-encoded); other URLs unchanged."""
    parts = _split(url)
    if parts is None:
        return url
    head, password, tail = parts
    match = _REFERENCE.match(unquote(password or ""))
    if match is None:
        return url
    kind, name = match.groups()
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise BadInput(f"{redact_url(url)}: the password reference ${{env:{name}}} is not set in this process's environment",
                           hint=f"export {name}=... for the worker (and the CLI)")  # fmt: skip
    else:
        path = secrets_dir() / name
        try:
            value = path.read_text().rstrip("\n")
        except OSError as exc:
            raise BadInput(f"{redact_url(url)}: the password reference ${{secret:{name}}} cannot be read: {exc.strerror}",
                           hint=f"the worker reads {path}; set SNAKEPIT_SECRETS_DIR to the folder holding it") from None  # fmt: skip
    return f"{head}{quote(value, safe='')}{tail}"


def has_literal_password(url: str) -> bool:
    """Whether the URL carries a password that is not a reference."""
    parts = _split(url)
    return parts is not None and not is_reference(parts[1] or "") and urlsplit(url).password is not None
