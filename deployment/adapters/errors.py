"""Errors of the adapter analysis, the generic adapter and the equivalence check."""

from __future__ import annotations

from deployment.errors import BadInput


class AdapterSourceError(BadInput):
    """Adapter source that cannot be read or parsed (missing, binary, malformed, too large)."""

    def __init__(self, path: str, problem: str, *, line: int | None = None, hint: str | None = None) -> None:
        where = f"{path}, line {line}" if line else path
        super().__init__(
            f"{where}: {problem}",
            hint=hint or "give a readable Python source file (or a directory of them) that Python itself can parse",
        )
        self.path = path
        self.line = line


class NoAdapterFound(BadInput):
    """A path whose source defines no adapter class of any generation."""


class GenericConfigError(BadInput):
    """A generic adapter configuration that is malformed."""


class CallRefused(BadInput):
    """A call the generic adapter will not make; the message says which rule refused it."""


class BlockedFunction(CallRefused):
    """The target is in ``blocked_functions`` (or is one of the always-blocked functions)."""


class ModuleNotAllowed(CallRefused):
    """The target's module matches no ``allowed_modules`` pattern of any library."""


class FunctionNotAllowed(CallRefused):
    """The target's function is outside the library's ``function_filters``."""


class BadArguments(CallRefused):
    """Arguments that do not fit the aliased tool's parameters."""


class SamplesParseError(BadInput):
    """A malformed line in a samples or recorded-traffic JSONL file."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        super().__init__(
            f"{path}, line {line}: {problem}",
            hint='each line must be one JSON object like {"tool": "name", "arguments": {...}}',
        )
        self.path = path
        self.line = line
