"""The interface a custom migration implements, and the context the framework gives it.

An extension is a class with a pydantic ``Params`` model, a ``name``, a
semantic ``version`` and five async steps, each safe to run again:

* ``validate(params, ctx)`` — the problems that make the migration impossible
  (an empty list when it can run); reads only.
* ``plan(params, ctx)`` — what ``apply`` would change, counted; reads only.
  A dry run stops here.
* ``apply(params, ctx, resume, report)`` — the change. After every durable
  step it awaits ``report(Progress(done=..., checkpoint={...}))``; the
  framework records the checkpoint (a Temporal heartbeat) and may end the
  call there by raising :class:`StopApply` (let it propagate). The next call
  gets that checkpoint as ``resume``, also after a worker crash, so the work
  since the last checkpoint may be done twice: it must be idempotent.
* ``verify(params, ctx)`` — whether the change is complete and correct.
* ``rollback(params, ctx)`` — put back what this run (``ctx.run_id``)
  changed; a no-op when it changed nothing or was rolled back already.

Optionally ``resources(params)`` declares what the migration writes (pure,
no I/O): a run started on its own locks each one, so no other run writes it
meanwhile. ``ctx.audit(event, **fields)`` lands in the audit log with the
run's ids, as ``extension.<event>``.

Nothing here knows about Temporal: a test or a script runs the steps with
``ExtensionContext(run_id)``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Protocol

from pydantic import BaseModel, Field, ValidationError

from deployment.errors import BadInput


class ExtensionError(BadInput):
    """An extension that cannot be loaded or used: import error, missing step, bad version, bad parameters."""


class ExtensionVersionMismatch(ExtensionError):
    """The installed extension's major version differs from the one a run was started with."""


# -- versions ---------------------------------------------------------------

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


class Version(NamedTuple):
    """A semantic version ``MAJOR.MINOR.PATCH[-pre][+build]``."""

    major: int
    minor: int
    patch: int
    prerelease: str = ""

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}" + (f"-{self.prerelease}" if self.prerelease else "")


def parse_version(text: object) -> Version:
    """Parse a semantic version string; raise :class:`ExtensionError` saying what is wrong."""
    if not isinstance(text, str):
        raise ExtensionError(f"version must be a string such as '1.0.0', got {type(text).__name__} {text!r}")
    m = _SEMVER.match(text.strip())
    if not m:
        raise ExtensionError(
            f"version {text!r} is not a semantic version", hint="write MAJOR.MINOR.PATCH, e.g. '1.0.0' or '2.1.0-rc.1'"
        )
    return Version(int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4) or "")


def check_resumable(name: str, recorded: str, installed: str) -> None:
    """Refuse to continue a run started with ``recorded`` on a worker that has ``installed``.

    The same major version resumes (minor and patch upgrades keep the
    checkpoint format and the rollback); a different major raises
    :class:`ExtensionVersionMismatch`.
    """
    was, now = parse_version(recorded), parse_version(installed)
    if was.major != now.major:
        raise ExtensionVersionMismatch(
            f"extension {name!r} is {installed} on this worker, but the run was started with {recorded}: "
            f"a different major version cannot resume or roll back its checkpoints, so this worker refuses it",
            hint=f"run the workers with {name} {was.major}.x installed until this run has ended",
        )


# -- what the steps return --------------------------------------------------


class Progress(BaseModel):
    """What ``apply`` reports after each durable step: a small JSON checkpoint, never data."""

    done: int = Field(0, ge=0, description="items handled so far (changed or found unchanged)")
    changed: int = Field(0, ge=0, description="items written so far")
    total: int | None = Field(None, ge=0, description="items to handle in all, when known")
    checkpoint: dict[str, Any] = Field(default_factory=dict, description="where to resume (cursors, counters)")
    message: str = ""


class Plan(BaseModel):
    """What ``apply`` would do, counted (the answer of a dry run)."""

    summary: str
    total: int = Field(0, ge=0, description="items apply will handle")
    to_change: int = Field(0, ge=0, description="items apply will write")
    resources: list[str] = Field(default_factory=list, description="what the migration writes (store URLs, redacted)")
    details: dict[str, Any] = Field(default_factory=dict)


class Applied(BaseModel):
    """The end of ``apply``."""

    done: int = 0
    changed: int = 0
    message: str = ""


class Verification(BaseModel):
    """The answer of ``verify``."""

    ok: bool
    checked: int = 0
    problems: list[str] = Field(default_factory=list, description="at most a few dozen, each naming what is wrong")


class RolledBack(BaseModel):
    """The answer of ``rollback``."""

    restored: int = 0
    message: str = ""


# -- the context the framework supplies ---------------------------------------


class AuditWriter(Protocol):
    """Writes one structured audit entry: an event name and JSON-able fields."""

    def __call__(self, event: str, /, **fields: Any) -> None: ...


class LogAudit:
    """An audit writer that logs each entry as one JSON line on a logger."""

    def __init__(self, logger: logging.Logger | None = None, **common: Any) -> None:
        self.logger = logger or logging.getLogger("snakepit_migrate.audit")
        self.common = common

    def __call__(self, event: str, /, **fields: Any) -> None:
        entry = {"ts": round(time.time(), 3), "event": event, **self.common, **fields}
        self.logger.info("%s", json.dumps(entry, default=str, sort_keys=True))


class MemoryAudit:
    """An audit writer that keeps entries in a list (tests, scripts)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def __call__(self, event: str, /, **fields: Any) -> None:
        self.entries.append({"event": event, **fields})


class Throttle:
    """Keeps a loop under ``max_per_second`` items; ``await throttle(n)`` after handling n items."""

    def __init__(self, max_per_second: float | None = None, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if max_per_second is not None and max_per_second <= 0:
            raise ExtensionError(f"max_per_second must be positive, got {max_per_second}")
        self.max_per_second = max_per_second
        self._sleep = sleep
        self._start = time.monotonic()
        self._count = 0

    async def __call__(self, items: int = 1) -> float:
        """Account for ``items`` and sleep as long as needed to stay under the limit; returns the seconds slept."""
        self._count += items
        if not self.max_per_second:
            await self._sleep(0)
            return 0.0
        ahead = self._count / self.max_per_second - (time.monotonic() - self._start)
        if ahead > 0:
            await self._sleep(ahead)
        return max(ahead, 0.0)

    def limited(self, max_per_second: float | None) -> "Throttle":
        """A throttle with the stricter of this limit and ``max_per_second``."""
        limits = [x for x in (self.max_per_second, max_per_second) if x]
        return Throttle(min(limits) if limits else None, self._sleep)


@dataclass
class ExtensionContext:
    """What the framework hands every step."""

    run_id: str  # the migration id; the key of this run's journal
    bindings: Mapping[str, str] = field(default_factory=dict)
    audit: AuditWriter = field(default_factory=MemoryAudit)
    throttle: Throttle = field(default_factory=Throttle)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("snakepit_migrate.extensions"))
    dry_run: bool = False


class StopApply(BaseException):
    """Raised from ``report`` to end an ``apply`` call at a checkpoint; the framework calls again from it.

    A BaseException so that an extension's ``except Exception`` does not swallow it.
    """


Report = Callable[[Progress], Awaitable[None]]


# -- the base class ---------------------------------------------------------

STEPS = ("validate", "plan", "apply", "verify", "rollback")


class MigrationExtension(ABC):
    """Base class of every custom migration. See the module docstring for the contract."""

    name: ClassVar[str]
    version: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    description: ClassVar[str] = ""

    def parse_params(self, params: Mapping[str, Any]) -> BaseModel:
        """Validate raw parameters against ``Params`` (raises pydantic's ValidationError)."""
        return self.Params.model_validate(dict(params))

    def resources(self, params: Any) -> list[str]:
        """What the migration writes (store URLs, paths) as given in ``params``: a run on its own locks each.

        Pure, no I/O; the default declares nothing (then only the run's bindings are locked).
        """
        return []

    @abstractmethod
    async def validate(self, params: Any, ctx: ExtensionContext) -> list[str]:
        """The problems that make the migration impossible, each a sentence saying how to fix it."""

    @abstractmethod
    async def plan(self, params: Any, ctx: ExtensionContext) -> Plan:
        """What apply would change, without changing anything."""

    @abstractmethod
    async def apply(self, params: Any, ctx: ExtensionContext, resume: Progress | None, report: Report) -> Applied:
        """Make the change from ``resume`` (None: from the start), awaiting ``report`` after each durable step."""

    @abstractmethod
    async def verify(self, params: Any, ctx: ExtensionContext) -> Verification:
        """Whether the change is complete and correct."""

    @abstractmethod
    async def rollback(self, params: Any, ctx: ExtensionContext) -> RolledBack:
        """Undo what run ``ctx.run_id`` changed; idempotent."""


# -- environment bindings -----------------------------------------------------

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


def resolve_bindings(value: Any, bindings: Mapping[str, str], where: str = "params") -> Any:
    """``value`` with every ``${NAME}`` in its strings replaced from ``bindings``.

    So one plan serves several environments: ``{"store": "${sessions_store}"}``
    with ``{"sessions_store": "redis://prod:6379/0"}``. ``$${`` escapes a
    literal ``${``. An unbound name raises :class:`ExtensionError` naming where.
    """
    if isinstance(value, dict):
        return {k: resolve_bindings(v, bindings, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_bindings(v, bindings, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        if m.start() > 0 and value[m.start() - 1] == "$":
            return m.group(0)
        name = m.group(1)
        if name not in bindings:
            known = ", ".join(sorted(bindings)) or "none"
            raise ExtensionError(
                f"{where}: ${{{name}}} is not bound (bindings given: {known})",
                hint=f"pass it with --bindings '{{\"{name}\": \"...\"}}'",
            )
        return str(bindings[name])

    return _REF.sub(sub, value).replace("$${", "${")


def instantiate(
    cls: type[MigrationExtension], params: Mapping[str, Any], bindings: Mapping[str, str]
) -> tuple[MigrationExtension, BaseModel]:
    """An instance of ``cls`` and its parameters, bindings resolved and checked against ``Params``.

    Raises :class:`ExtensionError` naming each field that is wrong.
    """
    ext = cls()
    try:
        return ext, ext.parse_params(resolve_bindings(params, bindings))
    except ValidationError as exc:
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e["loc"])
            parts.append(f"{where}: {e['msg']}" if where else e["msg"])
        raise ExtensionError(
            f"invalid params for extension {cls.name!r}: " + "; ".join(parts), hint="fix them in --params"
        ) from None
