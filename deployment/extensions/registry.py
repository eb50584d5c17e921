"""Finding extensions: the ones shipped here, installed packages, and ``module:Class`` references.

An installed package registers an extension under the entry-point group
``snakepit_migrate.migrations``::

    [project.entry-points."snakepit_migrate.migrations"]
    rename-tier = "acme_migrations.tier:RenameTier"

Every extension is loaded and checked on its own: one that fails to import,
lacks a step or states a bad version is listed with its error, and the
others load as usual.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from pydantic import BaseModel

from deployment.extensions.base import STEPS, ExtensionError, MigrationExtension, parse_version

ENTRY_POINT_GROUP = "snakepit_migrate.migrations"
# Shipped with snakepit-migrate (the example and template).
BUILTIN = ("deployment.extensions.rekey:RekeySessions",)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


@dataclass
class ExtensionInfo:
    """One extension found, loaded or not."""

    reference: str  # module:Class, what `extensions run` accepts besides the name
    source: str  # "builtin", "entry point NAME (DIST VERSION)" or "reference"
    name: str | None = None
    version: str | None = None
    description: str = ""
    error: str | None = None
    cls: type[MigrationExtension] | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form used by ``extensions list --json``."""
        return {
            "name": self.name,
            "version": self.version,
            "reference": self.reference,
            "source": self.source,
            "description": self.description,
            "ok": self.error is None,
            "error": self.error,
        }


def check_extension(obj: Any, where: str) -> type[MigrationExtension]:
    """``obj`` if it is a usable extension class; else raise naming every problem found."""
    if not (inspect.isclass(obj) and issubclass(obj, MigrationExtension)):
        raise ExtensionError(
            f"{where!r} is {type(obj).__name__} {getattr(obj, '__name__', obj)!r}, not a subclass of MigrationExtension",
            hint="from deployment.extensions import MigrationExtension, and subclass it",
        )
    problems: list[str] = []
    missing = [s for s in STEPS if getattr(obj, s, None) is None or getattr(getattr(obj, s), "__isabstractmethod__", False)]
    if missing:
        problems.append(f"missing step(s): {', '.join(missing)}")
    not_async = [s for s in STEPS if s not in missing and not inspect.iscoroutinefunction(getattr(obj, s))]
    if not_async:
        problems.append(f"step(s) not async def: {', '.join(not_async)}")
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"name {name!r} is not a lowercase identifier such as 'rename-tier'")
    try:
        parse_version(getattr(obj, "version", None))
    except ExtensionError as exc:
        problems.append(exc.message)
    params = getattr(obj, "Params", None)
    if not (inspect.isclass(params) and issubclass(params, BaseModel)):
        problems.append("Params is not a pydantic BaseModel subclass")
    if problems:
        raise ExtensionError(f"{where!r}: " + "; ".join(problems))
    return obj


def import_reference(reference: str) -> type[MigrationExtension]:
    """Import and check the class a ``module:Class`` reference names."""
    module_name, sep, attr = reference.partition(":")
    if not sep or not module_name or not attr:
        raise ExtensionError(
            f"extension reference {reference!r} is not of the form module:Class",
            hint="e.g. deployment.extensions.rekey:RekeySessions, or a registered name (snakepit-migrate extensions list)",
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of third-party code is the extension's error
        raise ExtensionError(
            f"cannot import {module_name!r} (extension {reference!r}): {type(exc).__name__}: {exc}",
            hint="is the package installed in this environment, or its folder on PYTHONPATH?",
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ExtensionError(f"module {module_name!r} has no attribute {attr!r} (extension {reference!r})")
        obj = getattr(obj, part)
    return check_extension(obj, reference)


def _info(cls: type[MigrationExtension], reference: str, source: str) -> ExtensionInfo:
    return ExtensionInfo(
        reference=reference, source=source, name=cls.name, version=cls.version,
        description=(cls.description or inspect.getdoc(cls) or "").split("\n")[0], cls=cls,
    )  # fmt: skip


def discover() -> list[ExtensionInfo]:
    """Every extension shipped or installed, each loaded and checked on its own; broken ones carry ``error``."""
    found: list[ExtensionInfo] = []
    for ref in BUILTIN:
        found.append(_load(ref, "builtin", lambda ref=ref: import_reference(ref)))
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        dist = getattr(ep, "dist", None)
        source = f"entry point {ep.name}" + (f" ({dist.name} {dist.version})" if dist is not None else "")

        def load(ep: metadata.EntryPoint = ep) -> type[MigrationExtension]:
            try:
                obj = ep.load()
            except Exception as exc:
                raise ExtensionError(f"cannot import {ep.value!r}: {type(exc).__name__}: {exc}") from None
            return check_extension(obj, ep.value)

        info = _load(ep.value, source, load)
        info.name = info.name or ep.name
        found.append(info)
    return found


def _load(reference: str, source: str, load: Any) -> ExtensionInfo:
    try:
        return _info(load(), reference, source)
    except ExtensionError as exc:
        return ExtensionInfo(reference=reference, source=source, error=exc.message)


def load_extension(reference: str) -> type[MigrationExtension]:
    """The extension class for a registered name or a ``module:Class`` reference.

    Raises :class:`ExtensionError` with the reason when it is unknown,
    ambiguous or broken.
    """
    if ":" in reference:
        return import_reference(reference)
    found = discover()
    matches = [i for i in found if i.name == reference]
    if not matches:
        usable = ", ".join(sorted({i.name for i in found if i.error is None and i.name})) or "none"
        raise ExtensionError(
            f"no extension named {reference!r} is registered (registered: {usable})",
            hint="see snakepit-migrate extensions list, or pass a module:Class reference",
        )
    broken = [i for i in matches if i.error is not None]
    if broken and len(matches) == len(broken):
        raise ExtensionError(f"extension {reference!r} is broken: {broken[0].error}")
    usable_matches = [i for i in matches if i.error is None]
    if len({i.reference for i in usable_matches}) > 1:
        refs = ", ".join(i.reference for i in usable_matches)
        raise ExtensionError(f"extension name {reference!r} is registered more than once ({refs})", hint="pass one as module:Class")
    assert usable_matches[0].cls is not None
    return usable_matches[0].cls
