"""Check and plan the migration of a set of config files as one unit (pure: bytes in, bytes out).

A *unit* is one file or a ``config/`` directory (``config.exs``, ``dev.exs``,
``prod.exs``, ``runtime.exs``, ...).  Its version is detected from the keys of
all its files together; every file is converted from that version; every
converted file must parse again and validate as the target.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import PurePath

from deployment.config.converters import Context
from deployment.config.detect import Detection, canonical, detect, keys_of
from deployment.config.documents import Document, ExsDocument, load_document
from deployment.config.errors import ConfigParseError
from deployment.config.exs import deep_merge
from deployment.config.model import Change, Finding, Issue
from deployment.config.steps import convert
from deployment.config.validate import dotted, is_valid, validate
from deployment.config.values import Config, same

ENV_FILES = {"dev", "test", "prod", "staging", "runtime"}


def primary_name(names: list[str]) -> str | None:
    """The file that holds the base settings: ``config.exs``, else the one file not named after an environment.

    An environment file given alone (``prod.exs``) is not a base: defaults are not added to it.
    """
    stems = {PurePath(n).name: n for n in names}
    if "config.exs" in stems:
        return stems["config.exs"]
    bases = [n for n in names if PurePath(n).stem not in ENV_FILES]
    return bases[0] if len(bases) == 1 else None


def load_unit(files: list[tuple[str, bytes]]) -> list[Document]:
    """Parse every file of a unit; the first unreadable one raises :class:`ConfigParseError`."""
    return [load_document(path, data) for path, data in files]


def load_base(found: tuple[str, bytes] | None) -> Document | None:
    """The parsed base file of an environment file given alone (see ``source.read_base``)."""
    return load_document(*found) if found is not None else None


@dataclass
class CheckReport:
    """What ``config check`` reports for a unit."""

    detection: Detection
    version: str
    issues: list[Issue]
    files: list[str]

    @property
    def valid(self) -> bool:
        return is_valid(self.issues)

    def as_json(self) -> dict:
        return {
            "files": self.files,
            "detected_version": self.detection.version,
            "version": self.version,
            "reasons": self.detection.reasons,
            "valid": self.valid,
            "errors": [i.model_dump() for i in self.issues if i.severity == "error"],
            "warnings": [i.model_dump() for i in self.issues if i.severity == "warning"],
        }


def check_unit(docs: list[Document], version: str | None = None, base: Document | None = None) -> CheckReport:
    """Detect the version of a unit (``version`` overrides) and validate every file as that version.

    ``base`` is the ``config.exs`` beside an environment file checked on its own: its keys count
    for detection; it is not validated.
    """
    detection = detect(keys_of(([base.config()] if base is not None else []) + [d.config() for d in docs]))
    target = canonical(version) if version else detection.version
    issues: list[Issue] = []
    for doc in docs:
        issues += validate(doc.config(), target, elixir=doc.elixir, file=doc.path, locations=doc.locations())
        if isinstance(doc, ExsDocument):
            issues += [
                Issue(severity="warning", key=dotted(path), message="set twice in the same list; only the last one counts",
                      suggestion="remove one of them", file=doc.path, line=span.line, column=span.column)
                for path, span in doc.parsed.duplicates()
            ]  # fmt: skip
    return CheckReport(detection, target, _sorted(issues), [d.path for d in docs])


def _sorted(issues: list[Issue]) -> list[Issue]:
    return sorted(issues, key=lambda i: (i.severity != "error", i.file or "", i.line or 0, i.column or 0))


@dataclass
class FilePlan:
    """One file of a migration: its bytes before and after, and why."""

    path: str
    format: str
    before: bytes
    after: bytes
    changes: list[Change] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        """The unified diff of this file (empty when unchanged)."""
        if not self.changed:
            return ""
        a = self.before.decode("utf-8", "replace").splitlines(keepends=True)
        b = self.after.decode("utf-8", "replace").splitlines(keepends=True)
        lines = list(difflib.unified_diff(a, b, f"a/{self.path}", f"b/{self.path}"))
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


@dataclass
class MigrationPlan:
    """Every file of a unit converted from ``from_version`` to ``to_version``, validated."""

    from_version: str
    to_version: str
    detection: Detection
    files: list[FilePlan]
    issues: list[Issue]

    @property
    def changes(self) -> list[Change]:
        return [c for f in self.files for c in f.changes]

    @property
    def findings(self) -> list[Finding]:
        return [x for f in self.files for x in f.findings]

    @property
    def lossy(self) -> list[Finding]:
        return [x for x in self.findings if x.kind == "lossy"]

    @property
    def valid(self) -> bool:
        return is_valid(self.issues)

    @property
    def changed(self) -> bool:
        return any(f.changed for f in self.files)

    def diff(self) -> str:
        return "".join(f.diff() for f in self.files)

    def as_json(self) -> dict:
        return {
            "from_version": self.from_version,
            "to_version": self.to_version,
            "reasons": self.detection.reasons,
            "files": [f.path for f in self.files],
            "changed_files": [f.path for f in self.files if f.changed],
            "changes": [c.model_dump() for c in self.changes],
            "findings": [x.model_dump() for x in self.findings],
            "errors": [i.model_dump() for i in self.issues if i.severity == "error"],
            "warnings": [i.model_dump() for i in self.issues if i.severity == "warning"],
            "valid": self.valid,
        }


def plan_unit(docs: list[Document], to: str, from_: str | None = None, base: Document | None = None) -> MigrationPlan:
    """Convert every file of a unit to ``to``; each result is parsed again and validated as ``to``.

    ``base`` is the ``config.exs`` beside an environment file migrated on its own: it is read (for
    detection and for what the environment file inherits) but not part of the plan.
    """
    known = ([base.config()] if base is not None else []) + [d.config() for d in docs]
    detection = detect(keys_of(known))
    source = canonical(from_) if from_ else detection.version
    target = canonical(to)
    primary = primary_name([d.path for d in docs])
    own_base = next((d for d in docs if d.path == primary), None)
    base = own_base or base
    plans: list[FilePlan] = []
    issues: list[Issue] = []
    for doc in docs:
        inherited = base.config() if base is not None and doc is not base else {}
        result = doc.convert(source, target, Context(primary=doc is own_base, inherited=inherited))
        plans.append(FilePlan(doc.path, doc.format, doc.source, result.after, result.changes, result.findings))
        try:
            again = load_document(doc.path, result.after)
        except ConfigParseError as exc:  # a rewriter defect: never write such a file
            issues.append(Issue(severity="error", key="(file)", message=f"the converted file does not parse: {exc.problem}", file=doc.path, line=exc.line, column=exc.column))
            continue
        issues += validate(again.config(), target, elixir=again.elixir, file=doc.path, locations=again.locations())
    if base is not None:
        _check_layers(docs, plans, base, source, target)
    return MigrationPlan(source, target, detection, plans, _sorted(issues))


def _merged(*configs: Config) -> Config:
    out: Config = {}
    for cfg in configs:
        for key, value in cfg.items():
            out[key] = deep_merge(out[key], value) if key in out else value
    return out


def _check_layers(docs: list[Document], plans: list[FilePlan], base: Document, source: str, target: str) -> None:
    """An environment file converted on its own must give what converting base + environment together gives."""
    mine = next((i for i, d in enumerate(docs) if d is base), None)
    try:
        if mine is not None:
            base_new = load_document(base.path, plans[mine].after).config()
        else:  # a base outside the plan: compare with what it becomes once migrated too
            base_new = convert(base.config(), source, target, Context(primary=True)).config
    except ConfigParseError:
        return
    for i, doc in enumerate(docs):
        if doc is base or not plans[i].changed:
            continue
        try:
            env_new = load_document(doc.path, plans[i].after).config()
        except ConfigParseError:
            continue
        expected = convert(_merged(base.config(), doc.config()), source, target, Context(primary=True)).config
        actual = _merged(base_new, env_new)
        differ = sorted(k for k in set(expected) | set(actual) if not (k in expected and k in actual and same(expected[k], actual[k])))
        if differ:
            plans[i].findings.append(Finding(
                key=", ".join(differ),
                message=(
                    f"with {PurePath(base.path).name} and {PurePath(doc.path).name} together, {', '.join(differ)} would differ from "
                    f"converting their merged settings: a value this file sets replaces the whole value of the base file"
                ),
                guidance="repeat in this file the settings of the base file that must survive (for pools: adapter_module, adapter_args), or check the diff by hand",
                file=doc.path,
            ))
