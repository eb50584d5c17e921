"""One configuration file in any of its formats: Elixir script, JSON, YAML or TOML.

A :class:`Document` is built from a file's name and bytes (no I/O here); it
gives the Snakepit settings, where each one is, and converts itself to another
version, returning the new bytes.  Elixir scripts are rewritten surgically
(:mod:`deployment.config.rewrite`); JSON, YAML and TOML are re-serialised in
their own format, keeping key order (and JSON's indentation).
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import tomli_w
import yaml

from deployment.config.converters import Context
from deployment.config.errors import ConfigParseError
from deployment.config.exs import ExsFile, Span, parse_exs
from deployment.config.model import Change, Finding
from deployment.config.rewrite import rewrite_exs
from deployment.config.steps import convert
from deployment.config.validate import Locations
from deployment.config.values import Config, describe, same, to_plain

FORMATS = {".exs": "exs", ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml"}
SECTION = "snakepit"


def format_of(path: str) -> str | None:
    """``exs``, ``json``, ``yaml`` or ``toml`` from the file name, else None."""
    return FORMATS.get(PurePath(path).suffix.lower())


@dataclass
class Conversion:
    """A converted document: new bytes, what changed, what needs a person."""

    after: bytes
    changes: list[Change] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def split_path(text: str) -> tuple:
    """``pools[0].pool_size`` -> ``("pools", 0, "pool_size")``."""
    out: list[Any] = []
    for part in text.split("."):
        m = re.fullmatch(r"([^\[]*)((?:\[\d+\])*)", part)
        if not m:
            out.append(part)
            continue
        if m.group(1):
            out.append(m.group(1))
        out += [int(i) for i in re.findall(r"\[(\d+)\]", m.group(2))]
    return tuple(out)


def hints_from(changes: list[Change]) -> set[tuple[tuple, str, str]]:
    """(parent path, old key, new key) for every rename or move, to edit keys in place."""
    hints: set[tuple[tuple, str, str]] = set()
    for c in changes:
        if c.kind not in ("renamed", "moved", "semantic") or not c.to:
            continue
        old, new = split_path(c.key), split_path(c.to)
        depth = 0
        while depth < min(len(old), len(new)) and old[depth] == new[depth]:
            depth += 1
        if depth < len(old) and depth < len(new) and isinstance(old[depth], str) and isinstance(new[depth], str):
            hints.add((old[:depth], old[depth], new[depth]))
    return hints


class Document:
    """Base of the four formats."""

    format = ""

    def __init__(self, path: str, source: bytes) -> None:
        self.path = path
        self.source = source

    def config(self) -> Config:
        """The Snakepit settings of this file."""
        raise NotImplementedError

    def locations(self) -> Locations | None:
        """Key path to line and column, where the format keeps it."""
        return None

    @property
    def elixir(self) -> bool:
        return self.format == "exs"

    def convert(self, source: str, target: str, context: Context) -> Conversion:
        """The bytes of this file converted from ``source`` to ``target``."""
        raise NotImplementedError


class ExsDocument(Document):
    """An Elixir config script, rewritten surgically one ``config :snakepit`` call at a time."""

    format = "exs"

    def __init__(self, path: str, source: bytes) -> None:
        super().__init__(path, source)
        self.parsed: ExsFile = parse_exs(source, path)

    def config(self) -> Config:
        return self.parsed.config()

    def locations(self) -> Locations:
        return self.parsed.locations()

    def convert(self, source: str, target: str, context: Context) -> Conversion:
        changes: list[Change] = []
        findings: list[Finding] = []
        news: list[Config] = []
        first_plain = next((i for i, c in enumerate(self.parsed.calls) if c.subkey is None and c.args.kind != "opaque"), None)
        locations = self.locations()
        for i, call in enumerate(self.parsed.calls):
            if call.args.kind == "opaque":
                key = call.subkey or "config :snakepit"
                findings.append(Finding(
                    key=key, message=f"the settings of this call are an expression ({describe(call.args.data)}); they are not converted",
                    guidance="write them as a keyword list, or convert them by hand", file=self.path,
                    line=call.span.line, column=call.span.column,
                ))
                news.append(call.data())
                continue
            result = convert(call.data(), source, target, Context(context.primary and i == first_plain, context.inherited))
            news.append(result.config)
            changes += [c.model_copy(update={"file": self.path}) for c in result.changes]
            findings += [_place(f, self.path, locations) for f in result.findings]
        after = rewrite_exs(self.parsed, news, hints_from(changes)) if changes else self.source
        if changes:
            whole = convert(self.config(), source, target, context)
            rewritten = parse_exs(after, self.path).config()
            if not same(rewritten, whole.config):
                diff = sorted(k for k in set(rewritten) | set(whole.config) if not (k in rewritten and k in whole.config and same(rewritten[k], whole.config[k])))
                findings.append(Finding(
                    key=", ".join(diff),
                    message="settings split over several config calls convert differently one call at a time than together",
                    guidance="merge these settings into one `config :snakepit` call and migrate again, or check the diff by hand",
                    file=self.path,
                ))
        return Conversion(after, changes, findings)


def _place(f: Finding, path: str, locations: Locations | None) -> Finding:
    line = column = None
    if locations:
        probe = split_path(f.key.split(",")[0])
        while probe and probe not in locations:
            probe = probe[:-1]
        if probe:
            line, column = locations[probe].line, locations[probe].column
    return f.model_copy(update={"file": path, "line": line, "column": column})


class DataDocument(Document):
    """JSON, YAML or TOML: the settings at the top level or under a ``snakepit`` key."""

    def __init__(self, path: str, source: bytes) -> None:
        super().__init__(path, source)
        loaded = self._load()
        self.data = {} if loaded is None else loaded
        if not isinstance(self.data, dict):
            raise ConfigParseError(path, 1, 1, f"the top level must be a table/object of settings, not {type(self.data).__name__}", hint="write the settings as a mapping of names to values")
        bad = _non_string_key(self.data)
        if bad is not None:
            raise ConfigParseError(path, 1, 1, f"setting names must be strings, found {bad!r}", hint="quote the key, or fix the indentation that turned a value into a key")
        self.nested = isinstance(self.data.get(SECTION), dict)

    def _load(self) -> Any:
        raise NotImplementedError

    def _dump(self, data: Any) -> bytes:
        raise NotImplementedError

    def config(self) -> Config:
        return dict(self.data[SECTION]) if self.nested else dict(self.data)

    def locations(self) -> Locations | None:
        """Where each key is, read with a YAML composer (JSON is YAML too); TOML has none."""
        if self.format == "toml":
            found = _index_toml(self.source)
            if self.nested:
                found = {k[1:]: v for k, v in found.items() if k[:1] == (SECTION,) and len(k) > 1}
            return found
        try:
            node = yaml.compose(self.source.decode("utf-8"))
        except yaml.YAMLError:
            return None
        found: Locations = {}
        _index_yaml(node, (), found)
        if self.nested:
            found = {k[1:]: v for k, v in found.items() if k[:1] == (SECTION,) and len(k) > 1}
        return found

    def convert(self, source: str, target: str, context: Context) -> Conversion:
        result = convert(self.config(), source, target, context)
        changes = [c.model_copy(update={"file": self.path}) for c in result.changes]
        findings = [_place(f, self.path, self.locations()) for f in result.findings]
        if not changes:
            return Conversion(self.source, changes, findings)
        plain = to_plain(result.config)
        data = {**self.data, SECTION: plain} if self.nested else plain
        return Conversion(self._header() + self._dump(data), changes, findings)

    def _header(self) -> bytes:
        """The comment lines at the top of the file, kept when it is re-serialised."""
        if self.format == "json":
            return b""
        m = re.match(rb"(?:[ \t]*(?:#[^\n]*)?\n)*", self.source)
        return m.group(0) if m else b""


def _index_yaml(node: Any, path: tuple, found: Locations) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                mark = key.start_mark
                found[path + (key.value,)] = Span(mark.index, key.end_mark.index, mark.line + 1, mark.column + 1)
                _index_yaml(value, path + (key.value,), found)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            mark = item.start_mark
            found[path + (i,)] = Span(mark.index, item.end_mark.index, mark.line + 1, mark.column + 1)
            _index_yaml(item, path + (i,), found)


_TOML_TABLE = re.compile(rb"^[ \t]*(\[\[?)[ \t]*([^\]]+?)[ \t]*\]\]?")
_TOML_KEY = re.compile(rb"^([ \t]*)([A-Za-z0-9_\-\.\"' ]+?)[ \t]*=")


def _index_toml(source: bytes) -> Locations:
    """Line and column of each ``key =`` and table header of a TOML file (arrays of tables by index)."""
    found: Locations = {}
    table: tuple = ()
    counts: dict[tuple, int] = {}
    offset = 0
    for number, line in enumerate(source.split(b"\n"), start=1):
        header = _TOML_TABLE.match(line)
        if header:
            names = tuple(part.strip().strip("\"'") for part in header.group(2).decode("utf-8", "replace").split("."))
            if header.group(1) == b"[[":
                counts[names] = counts.get(names, -1) + 1
                table = names + (counts[names],)
            else:
                table = names
            found.setdefault(table, Span(offset, offset + len(line), number, 1))
        else:
            key = _TOML_KEY.match(line)
            if key and not line.lstrip().startswith(b"#"):
                names = tuple(part.strip().strip("\"'") for part in key.group(2).decode("utf-8", "replace").split("."))
                found[table + names] = Span(offset + len(key.group(1)), offset + key.end(), number, len(key.group(1)) + 1)
        offset += len(line) + 1
    return found


def _non_string_key(value: Any) -> Any:
    """The first key that is not a string, anywhere in ``value``, else None."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return k
            found = _non_string_key(v)
            if found is not None:
                return found
    elif isinstance(value, list):
        for v in value:
            found = _non_string_key(v)
            if found is not None:
                return found
    return None


def _decode(path: str, source: bytes) -> str:
    try:
        return source.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = source[: exc.start].count(b"\n") + 1
        raise ConfigParseError(path, line, 1, "the file is not valid UTF-8 text") from None


class JsonDocument(DataDocument):
    """A JSON file; written back with its own indentation."""

    format = "json"

    def _load(self) -> Any:
        try:
            return json.loads(_decode(self.path, self.source))
        except json.JSONDecodeError as exc:
            raise ConfigParseError(self.path, exc.lineno, exc.colno, exc.msg) from None

    def _dump(self, data: Any) -> bytes:
        m = re.search(rb"\n([ \t]+)\S", self.source)
        indent = m.group(1).decode() if m else 2
        return (json.dumps(data, indent=indent, ensure_ascii=False) + "\n").encode()


class YamlDocument(DataDocument):
    """A YAML file; written back keeping its header comment."""

    format = "yaml"

    def _load(self) -> Any:
        try:
            return yaml.safe_load(_decode(self.path, self.source))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            raise ConfigParseError(self.path, line, col, str(getattr(exc, "problem", None) or exc)) from None

    def _dump(self, data: Any) -> bytes:
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True).encode()


class TomlDocument(DataDocument):
    """A TOML file; written back keeping its header comment (``None`` values are left out)."""

    format = "toml"

    def _load(self) -> Any:
        try:
            return tomllib.loads(_decode(self.path, self.source))
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+), column (\d+)", str(exc))
            line, col = (int(m.group(1)), int(m.group(2))) if m else (1, 1)
            raise ConfigParseError(self.path, line, col, str(exc).split(" (at")[0]) from None

    def _dump(self, data: Any) -> bytes:
        return tomli_w.dumps(_drop_none(data)).encode()


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def load_document(path: str, source: bytes) -> Document:
    """The document of the right format for ``path``; a bad file raises :class:`ConfigParseError`."""
    kind = format_of(path)
    cls = {"exs": ExsDocument, "json": JsonDocument, "yaml": YamlDocument, "toml": TomlDocument}.get(kind or "")
    if cls is None:
        raise ConfigParseError(path, 1, 1, "not a config file this tool reads", hint="use a .exs, .json, .yaml/.yml or .toml file")
    return cls(path, source)

