"""The session an adapter sees during one request.

Values are kept in the session record: ``get``/``set`` read and write its
``metadata`` map, ``get_program``/``set_program`` its ``programs`` map.  The
host loads the record before the call and writes back only the keys that the
call changed (:meth:`SessionContext.changes`).
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["SessionContext"]

_MISSING = object()


class SessionContext:
    """Session-scoped values for one request, backed by one session record."""

    def __init__(self, session_id: str, metadata: dict[str, Any] | None = None,
                 programs: dict[str, Any] | None = None) -> None:
        self.session_id = session_id
        self._maps = {"metadata": copy.deepcopy(metadata or {}), "programs": copy.deepcopy(programs or {})}
        self._dirty: dict[str, set[str]] = {"metadata": set(), "programs": set()}
        self._deleted: dict[str, set[str]] = {"metadata": set(), "programs": set()}

    # -- metadata: the session's values --------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        """A session value, or ``default``."""
        return copy.deepcopy(self._maps["metadata"].get(key, default))

    def set(self, key: str, value: Any) -> None:
        """Set a session value; it must be JSON-serialisable."""
        self._put("metadata", key, value)

    def delete(self, key: str) -> None:
        """Remove a session value if present."""
        self._drop("metadata", key)

    def keys(self) -> list[str]:
        """The names of the session's values."""
        return sorted(self._maps["metadata"])

    # upstream 0.4 spelling
    def get_variable(self, name: str, default: Any = _MISSING) -> Any:
        """Upstream's name for :meth:`get`; raises KeyError when absent and no default."""
        if name not in self._maps["metadata"] and default is _MISSING:
            raise KeyError(f"session {self.session_id!r} has no variable {name!r}")
        return self.get(name, None if default is _MISSING else default)

    def set_variable(self, name: str, value: Any) -> None:
        """Upstream's name for :meth:`set`."""
        self.set(name, value)

    # -- programs --------------------------------------------------------
    def get_program(self, name: str, default: Any = None) -> Any:
        """A stored program of this session, or ``default``."""
        return copy.deepcopy(self._maps["programs"].get(name, default))

    def set_program(self, name: str, program: Any) -> None:
        """Store a program in this session."""
        self._put("programs", name, program)

    def delete_program(self, name: str) -> None:
        """Remove a stored program if present."""
        self._drop("programs", name)

    # -- for the host ------------------------------------------------------
    def changes(self) -> dict[str, dict[str, Any]]:
        """What this request changed: ``{"metadata": {"set": {...}, "deleted": [...]}, ...}``."""
        out: dict[str, dict[str, Any]] = {}
        for field in ("metadata", "programs"):
            sets = {k: copy.deepcopy(self._maps[field][k]) for k in sorted(self._dirty[field])}
            deleted = sorted(self._deleted[field])
            if sets or deleted:
                out[field] = {"set": sets, "deleted": deleted}
        return out

    def _put(self, field: str, key: str, value: Any) -> None:
        self._maps[field][key] = copy.deepcopy(value)
        self._dirty[field].add(key)
        self._deleted[field].discard(key)

    def _drop(self, field: str, key: str) -> None:
        self._maps[field].pop(key, None)
        self._dirty[field].discard(key)
        self._deleted[field].add(key)
