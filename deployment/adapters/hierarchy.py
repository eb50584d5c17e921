"""The classes of the analyzed source: their bases and methods, across files.

Bases are resolved by name among the analyzed files only (a base imported
from elsewhere, such as ``BaseAdapter``, is known by its name alone).
Lookups are memoised, and cyclic or absurdly deep hierarchies are cut or
raise :class:`RecursionError` for the caller to report.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from deployment.adapters.source import ModuleIndex

Func = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass
class Method:
    """A function defined in a class of the analyzed source."""

    fn: Func
    index: ModuleIndex
    owner: str


class ClassTable:
    """Every top-level class of the analyzed files, for resolving local bases and handler classes."""

    def __init__(self, indexes: list[ModuleIndex]) -> None:
        self.by_name: dict[str, list[tuple[ModuleIndex, ast.ClassDef]]] = {}
        self._bases: dict[int, set[str]] = {}
        self._methods: dict[int, dict[str, Method]] = {}
        for ix in indexes:
            for name, cls in ix.classes.items():
                self.by_name.setdefault(name, []).append((ix, cls))

    def find(self, name: str, near: ModuleIndex) -> tuple[ModuleIndex, ast.ClassDef] | None:
        """The class of that name, preferring the given module's own."""
        found = self.by_name.get(name, [])
        for ix, cls in found:
            if ix is near:
                return ix, cls
        return found[0] if found else None

    def local_bases(self, cls: ast.ClassDef, ix: ModuleIndex) -> list[tuple[ModuleIndex, ast.ClassDef]]:
        """The bases of ``cls`` that are classes of the analyzed source."""
        out = []
        for base in cls.bases:
            hit = self.find(terminal(base), ix) if terminal(base) else None
            if hit and hit[1] is not cls:
                out.append(hit)
        return out

    def base_names(self, cls: ast.ClassDef, ix: ModuleIndex, seen: set[int] | None = None) -> set[str]:
        """Terminal names of every base, through the analyzed classes (memoised; cycles cut)."""
        if id(cls) in self._bases:
            return self._bases[id(cls)]
        seen = seen if seen is not None else set()
        if id(cls) in seen:
            return set()
        seen.add(id(cls))
        names = {terminal(b) for b in cls.bases} - {None}
        for bix, bcls in self.local_bases(cls, ix):
            names |= self.base_names(bcls, bix, seen)
        self._bases[id(cls)] = names  # type: ignore[assignment]
        return names  # type: ignore[return-value]

    def methods(self, cls: ast.ClassDef, ix: ModuleIndex, seen: set[int] | None = None) -> dict[str, Method]:
        """Methods of ``cls`` and its analyzed bases, nearest definition winning (memoised; cycles cut)."""
        if id(cls) in self._methods:
            return self._methods[id(cls)]
        seen = seen if seen is not None else set()
        if id(cls) in seen:
            return {}
        seen.add(id(cls))
        result: dict[str, Method] = {}
        for bix, bcls in reversed(self.local_bases(cls, ix)):
            result.update(self.methods(bcls, bix, seen))
        for node in cls.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                result[node.name] = Method(node, ix, cls.name)
        self._methods[id(cls)] = result
        return result


def terminal(node: ast.AST) -> str | None:
    """The last name of a dotted or subscripted expression (``a.b.C[...]`` -> ``C``)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):  # Generic[...] and the like
        return terminal(node.value)
    return None


def decorator_name(dec: ast.expr) -> str | None:
    """``tool`` for ``@tool``, ``@tool(...)`` and ``@base_adapter.tool(...)``."""
    return terminal(dec.func if isinstance(dec, ast.Call) else dec)
