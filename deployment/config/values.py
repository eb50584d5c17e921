"""The values a Snakepit configuration holds, in every file format.

Elixir literals become plain Python data with three marker types: an
:class:`Atom` (``:info``), a :class:`Module` (``Snakepit.Adapters.GRPCPython``)
and an :class:`Opaque` expression kept verbatim (``System.get_env("X")``).
Keyword lists are :class:`Keywords` (a ``dict`` that remembers it was a
keyword list), maps are plain ``dict``, tuples are ``tuple``.  ``Atom`` and
``Module`` are ``str`` subclasses, so ``value == "info"`` holds for both the
Elixir and the JSON form of the same setting.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

Config = dict[str, Any]

_PLAIN_ATOM = re.compile(r"^[A-Za-z_][A-Za-z0-9_@]*[?!]?$")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_@]*[?!]?$")


class Atom(str):
    """An Elixir atom, stored without its leading colon."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str(self)!r})"


class Module(str):
    """An Elixir alias (module name) such as ``Snakepit.Adapters.GRPCPython``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Module({str(self)!r})"


@dataclass(frozen=True)
class Opaque:
    """An expression the tool does not evaluate; moved around as its source text."""

    source: str

    def __str__(self) -> str:
        return self.source


class SourceInt(int):
    """An integer written in a form worth keeping (``50_051``, ``0x1F``); equal to the plain int."""

    source: str = ""

    @classmethod
    def of(cls, value: int, source: str) -> "SourceInt":
        out = cls(value)
        out.source = source
        return out


class Keywords(dict):
    """An Elixir keyword list (``[a: 1, b: 2]``) with unique keys, in order."""

    def __repr__(self) -> str:
        return f"Keywords({dict.__repr__(self)})"


def is_mapping(value: Any) -> bool:
    """True for maps and keyword lists alike."""
    return isinstance(value, dict)


def same_kind(template: Any, items: dict[str, Any]) -> dict[str, Any]:
    """``items`` as a keyword list if ``template`` was one, else as a map."""
    return Keywords(items) if isinstance(template, Keywords) else dict(items)


def contains_opaque(value: Any) -> bool:
    """True when ``value`` is or holds an opaque expression."""
    if isinstance(value, Opaque):
        return True
    if isinstance(value, dict):
        return any(contains_opaque(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_opaque(v) for v in value)
    return False


def to_plain(value: Any) -> Any:
    """The JSON-ready form: atoms and modules as strings, tuples as lists, opaque as ``{"$expr": src}``."""
    if isinstance(value, Opaque):
        return {"$expr": value.source}
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (Atom, Module)):
        return str(value)
    return value


def _atom_text(name: str) -> str:
    return f":{name}" if _PLAIN_ATOM.match(name) else ":" + json.dumps(name)


def _key_text(name: str) -> str:
    return f"{name}:" if _PLAIN_KEY.match(name) else json.dumps(name) + ":"


def _string_text(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("#{", "\\#{")
        .replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def render(value: Any, indent: int = 0, width: int = 88, column: int | None = None) -> str:
    """Elixir source for ``value``; one line when it fits in ``width`` columns, else one item a line.

    ``indent`` is the indentation of the line the value starts on (closing
    delimiters line up with it); ``column`` is where the value itself starts.
    """
    flat = _render_flat(value)
    start = indent if column is None else column
    if start + len(flat) <= width or not isinstance(value, (dict, list)) or not value:
        return flat
    pad = " " * (indent + 2)
    close = " " * indent
    if isinstance(value, dict):
        body = ",\n".join(
            f"{pad}{_key_text(k)} {render(v, indent + 2, width, indent + 3 + len(k))}" for k, v in value.items()
        )
        return f"[\n{body}\n{close}]" if isinstance(value, Keywords) else f"%{{\n{body}\n{close}}}"
    body = ",\n".join(f"{pad}{render(v, indent + 2, width)}" for v in value)
    return f"[\n{body}\n{close}]"


def _kind(value: Any) -> type:
    return int if isinstance(value, SourceInt) else type(value)


def same(a: Any, b: Any) -> bool:
    """Equality that also tells an atom from a string and a map from a keyword list."""
    if _kind(a) is not _kind(b):
        # ``[]`` is both the empty list and the empty keyword list in Elixir
        return {_kind(a), _kind(b)} == {list, Keywords} and not a and not b
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def _render_flat(value: Any) -> str:
    if isinstance(value, Opaque):
        return value.source
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Atom):
        return _atom_text(str(value))
    if isinstance(value, Module):
        return str(value)
    if isinstance(value, str):
        return _string_text(value)
    if isinstance(value, SourceInt) and value.source:
        return value.source
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Keywords):
        return "[" + ", ".join(f"{_key_text(k)} {_render_flat(v)}" for k, v in value.items()) + "]"
    if isinstance(value, dict):
        return "%{" + ", ".join(f"{_key_text(k)} {_render_flat(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        return "{" + ", ".join(_render_flat(v) for v in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_render_flat(v) for v in value) + "]"
    raise TypeError(f"cannot render {type(value).__name__} as Elixir")


def describe(value: Any) -> str:
    """A short human form of a value for messages and change lists (Elixir syntax)."""
    try:
        text = _render_flat(value)
    except TypeError:
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
