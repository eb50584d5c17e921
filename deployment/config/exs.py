"""Parse Elixir config scripts (``config/*.exs``) with tree-sitter into a located model.

Every ``config :snakepit, ...`` call (including ``config :snakepit, :python, ...``
and calls inside ``if config_env() == :prod do ... end``) becomes a
:class:`ConfigCall` whose keyword arguments are :class:`Entry` objects that
know the byte ranges of their key, value and whole pair.  Literal values are
turned into data (see :mod:`deployment.config.values`); any other expression
is kept as an :class:`Opaque` with its exact source text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import tree_sitter_elixir
from tree_sitter import Language, Node, Parser

from deployment.config.errors import ConfigParseError
from deployment.config.values import Atom, Config, Keywords, Module, Opaque, SourceInt

APP = "snakepit"
_LANGUAGE = Language(tree_sitter_elixir.language())
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "s": " ", "e": "\x1b", "0": "\0", "a": "\a", "b": "\b",
            "d": "\x7f", "f": "\f", "v": "\v", "\\": "\\", '"': '"', "'": "'", "#": "#"}


@dataclass(frozen=True)
class Span:
    """A byte range with the 1-based line and column of its start."""

    start: int
    end: int
    line: int
    column: int


@dataclass
class Value:
    """A parsed value and where it is; containers also know their entries or items."""

    data: Any
    span: Span
    kind: str  # "map" | "keywords" | "list" | "tuple" | "scalar" | "opaque"
    entries: list["Entry"] = field(default_factory=list)
    items: list["Value"] = field(default_factory=list)
    open_end: int | None = None  # byte after the opening delimiter of a map/list
    close_start: int | None = None  # byte of the closing delimiter


@dataclass
class Entry:
    """One ``key: value`` pair."""

    key: str
    key_span: Span  # just the name (without ``:`` and quotes)
    pair_span: Span
    value: Value


@dataclass
class ConfigCall:
    """One ``config :snakepit, ...`` statement."""

    span: Span
    subkey: str | None  # ``:python`` in ``config :snakepit, :python, strategy: :uv``
    subkey_span: Span | None
    args: Value  # kind "keywords" (possibly with brackets) or "opaque"

    def data(self) -> Config:
        """What this call sets, as ``{key: value}`` (a sub-key call sets one key)."""
        if self.subkey:
            return {self.subkey: self.args.data}
        return dict(self.args.data) if isinstance(self.args.data, dict) else {}


@dataclass
class ExsFile:
    """A parsed config script: its bytes, its Snakepit calls, and where each setting is."""

    path: str
    source: bytes
    calls: list[ConfigCall]
    imports: list[str]

    def config(self) -> Config:
        """The merged Snakepit settings of this file, as ``Config.config/2`` merges them."""
        merged: Config = {}
        for call in self.calls:
            for key, value in call.data().items():
                merged[key] = deep_merge(merged.get(key), value) if key in merged else value
        return merged

    def locations(self) -> dict[tuple, Span]:
        """Every key path (``("pool_config", "pool_size")``, list items by index) to its span."""
        found: dict[tuple, Span] = {}
        for call in self.calls:
            if call.subkey:
                found[(call.subkey,)] = call.subkey_span or call.span
                _index(call.args, (call.subkey,), found)
            else:
                _index(call.args, (), found)
        return found

    def duplicates(self) -> list[tuple[tuple, Span]]:
        """Keys written twice in one keyword list or map (only the last counts), where they repeat."""
        found: list[tuple[tuple, Span]] = []
        for call in self.calls:
            _duplicates(call.args, (call.subkey,) if call.subkey else (), found)
        return found


def _duplicates(value: "Value", path: tuple, found: list[tuple[tuple, Span]]) -> None:
    seen: set[str] = set()
    for entry in value.entries:
        if entry.key in seen:
            found.append((path + (entry.key,), entry.key_span))
        seen.add(entry.key)
        _duplicates(entry.value, path + (entry.key,), found)
    for i, item in enumerate(value.items):
        _duplicates(item, path + (i,), found)


def deep_merge(old: Any, new: Any) -> Any:
    """Elixir's config merge: keyword lists merge key by key, anything else is replaced."""
    if isinstance(old, Keywords) and isinstance(new, Keywords):
        out = Keywords(old)
        for k, v in new.items():
            out[k] = deep_merge(out[k], v) if k in out else v
        return out
    return new


def _index(value: Value, path: tuple, found: dict[tuple, Span]) -> None:
    for entry in value.entries:
        found[path + (entry.key,)] = entry.key_span
        _index(entry.value, path + (entry.key,), found)
    for i, item in enumerate(value.items):
        found[path + (i,)] = item.span
        _index(item, path + (i,), found)


def _span(node: Node) -> Span:
    return Span(node.start_byte, node.end_byte, node.start_point[0] + 1, node.start_point[1] + 1)


def _children(node: Node) -> list[Node]:
    return [c for c in node.named_children if c.type != "comment"]


def _text(node: Node, src: bytes) -> str:
    return src[node.start_byte:node.end_byte].decode("utf-8", errors="replace")


def _quoted(node: Node, src: bytes) -> str | None:
    """The content of a string/quoted atom/quoted keyword, or None if it interpolates."""
    parts: list[str] = []
    for child in node.named_children:
        if child.type == "quoted_content":
            parts.append(_text(child, src))
        elif child.type == "escape_sequence":
            esc = _text(child, src)[1:]
            if esc in _ESCAPES:
                parts.append(_ESCAPES[esc])
            elif esc.startswith("x") and len(esc) > 1:
                parts.append(chr(int(esc[1:].strip("{}"), 16)))
            elif esc.startswith("u") and len(esc) > 1:
                parts.append(chr(int(esc[1:].strip("{}"), 16)))
            else:
                parts.append(esc)
        elif child.type == "interpolation":
            return None
    return "".join(parts)


def _keyword_name(node: Node, src: bytes) -> tuple[str, Span] | None:
    if node.type == "keyword":
        text = _text(node, src).rstrip()
        name = text[:-1] if text.endswith(":") else text
        return name, Span(node.start_byte, node.start_byte + len(name.encode()), node.start_point[0] + 1, node.start_point[1] + 1)
    if node.type == "quoted_keyword":
        name = _quoted(node, src)
        end = next((c.end_byte for c in reversed(node.children) if c.type in ('"', "'")), None)
        if name is None or end is None:
            return None
        s = _span(node)
        return name, Span(s.start, end, s.line, s.column)
    return None


def _entries(keywords: Node, src: bytes) -> list[Entry] | None:
    out: list[Entry] = []
    for pair in _children(keywords):
        if pair.type != "pair":
            return None
        key_node, value_node = pair.child_by_field_name("key"), pair.child_by_field_name("value")
        if key_node is None or value_node is None:
            return None
        named = _keyword_name(key_node, src)
        if named is None:
            return None
        out.append(Entry(named[0], named[1], _span(pair), parse_value(value_node, src)))
    return out


def _opaque(node: Node, src: bytes) -> Value:
    return Value(Opaque(_text(node, src)), _span(node), "opaque")


def _container(node: Node, src: bytes, entries: list[Entry], kind: str) -> Value:
    data: dict[str, Any] = Keywords() if kind == "keywords" else {}
    for e in entries:
        data[e.key] = e.value.data
    return Value(data, _span(node), kind, entries=entries)


def _delims(value: Value, node: Node) -> Value:
    kids = node.children
    opener = next((c for c in kids if c.type in ("[", "{")), None)
    closer = next((c for c in reversed(kids) if c.type in ("]", "}")), None)
    value.open_end = opener.end_byte if opener else None
    value.close_start = closer.start_byte if closer else None
    return value


def parse_value(node: Node, src: bytes) -> Value:
    """Turn one expression node into a located value (opaque when it is not a literal)."""
    t = node.type
    span = _span(node)
    text = _text(node, src)
    if t == "integer":
        digits = text.replace("_", "")
        try:
            number = int(digits, 0)
        except ValueError:
            try:
                number = int(digits, 10)
            except ValueError:
                return _opaque(node, src)
        return Value(SourceInt.of(number, text) if text != str(number) else number, span, "scalar")
    if t == "float":
        try:
            return Value(float(text.replace("_", "")), span, "scalar")
        except ValueError:
            return _opaque(node, src)
    if t == "boolean":
        return Value(text == "true", span, "scalar")
    if t == "nil":
        return Value(None, span, "scalar")
    if t == "atom":
        return Value(Atom(text[1:]), span, "scalar")
    if t == "quoted_atom":
        name = _quoted(node, src)
        return Value(Atom(name), span, "scalar") if name is not None else _opaque(node, src)
    if t == "alias":
        return Value(Module(text), span, "scalar")
    if t == "string":
        content = _quoted(node, src)
        return Value(content, span, "scalar") if content is not None else _opaque(node, src)
    if t == "unary_operator":
        operand = node.child_by_field_name("operand")
        op = node.child_by_field_name("operator")
        if operand is not None and op is not None and op.type == "-" and operand.type in ("integer", "float"):
            inner = parse_value(operand, src)
            if isinstance(inner.data, (int, float)):
                return Value(-inner.data, span, "scalar")
        return _opaque(node, src)
    if t == "list":
        kids = _children(node)
        if kids and kids[-1].type == "keywords":
            if len(kids) > 1:
                return _opaque(node, src)
            entries = _entries(kids[-1], src)
            return _delims(_container(node, src, entries, "keywords"), node) if entries is not None else _opaque(node, src)
        items = [parse_value(k, src) for k in kids]
        return _delims(Value([i.data for i in items], span, "list", items=items), node)
    if t == "tuple":
        kids = _children(node)
        if any(k.type == "keywords" for k in kids):
            return _opaque(node, src)
        items = [parse_value(k, src) for k in kids]
        return Value(tuple(i.data for i in items), span, "tuple", items=items)
    if t == "map":
        return _parse_map(node, src)
    return _opaque(node, src)


def _parse_map(node: Node, src: bytes) -> Value:
    kids = _children(node)
    if any(k.type == "struct" for k in kids):
        return _opaque(node, src)
    content = next((k for k in kids if k.type == "map_content"), None)
    entries: list[Entry] = []
    if content is not None:
        for item in _children(content):
            if item.type == "keywords":
                found = _entries(item, src)
                if found is None:
                    return _opaque(node, src)
                entries.extend(found)
            elif item.type == "binary_operator" and _arrow_atom_key(item, src):
                key_node, value_node = item.child_by_field_name("left"), item.child_by_field_name("right")
                key = _text(key_node, src)[1:]
                key_span = Span(key_node.start_byte + 1, key_node.end_byte, key_node.start_point[0] + 1, key_node.start_point[1] + 2)
                entries.append(Entry(key, key_span, _span(item), parse_value(value_node, src)))
            else:
                return _opaque(node, src)
    return _delims(_container(node, src, entries, "map"), node)


def _arrow_atom_key(node: Node, src: bytes) -> bool:
    op = node.child_by_field_name("operator")
    left = node.child_by_field_name("left")
    return op is not None and op.type == "=>" and left is not None and left.type == "atom"


def _call_name(node: Node, src: bytes) -> str | None:
    target = node.child_by_field_name("target")
    return _text(target, src) if target is not None and target.type == "identifier" else None


def _first_error(node: Node) -> Node | None:
    if node.type == "ERROR" or node.is_missing:
        return node
    for child in node.children:
        if child.has_error or child.is_missing:
            found = _first_error(child)
            if found is not None:
                return found
    return node if node.has_error else None


def parse_exs(source: bytes, path: str = "<config>") -> ExsFile:
    """Parse one config script; a syntax error raises :class:`ConfigParseError` with line and column."""
    try:
        source.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = source[: exc.start].count(b"\n") + 1
        col = exc.start - (source.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigParseError(path, line, col, "the file is not valid UTF-8 text") from None
    tree = Parser(_LANGUAGE).parse(source)
    root = tree.root_node
    if root.has_error:
        bad = _first_error(root) or root
        line, col = bad.start_point[0] + 1, bad.start_point[1] + 1
        what = f"missing '{bad.type}'" if bad.is_missing else "syntax error"
        near = source[bad.start_byte:bad.start_byte + 30].split(b"\n")[0].decode("utf-8", "replace")
        raise ConfigParseError(path, line, col, f"{what} near {near!r}" if near else what)
    calls: list[ConfigCall] = []
    imports: list[str] = []
    _walk(root, source, calls, imports)
    return ExsFile(path, source, calls, imports)


def _walk(node: Node, src: bytes, calls: list[ConfigCall], imports: list[str]) -> None:
    for child in node.named_children:
        if child.type == "call":
            name = _call_name(child, src)
            if name == "config":
                call = _config_call(child, src)
                if call is not None:
                    calls.append(call)
                continue
            if name == "import_config":
                args = next((c for c in child.named_children if c.type == "arguments"), None)
                if args is not None:
                    imports.append(_text(args, src).strip("() "))
                continue
        if child.named_child_count:
            _walk(child, src, calls, imports)


def _config_call(node: Node, src: bytes) -> ConfigCall | None:
    args = next((c for c in node.named_children if c.type == "arguments"), None)
    if args is None:
        return None
    kids = _children(args)
    if not kids or kids[0].type != "atom" or _text(kids[0], src) != f":{APP}":
        return None
    rest = kids[1:]
    subkey, subkey_span = None, None
    if rest and rest[0].type == "atom":
        subkey = _text(rest[0], src)[1:]
        s = _span(rest[0])
        subkey_span = Span(s.start + 1, s.end, s.line, s.column + 1)
        rest = rest[1:]
    if len(rest) != 1:
        return ConfigCall(_span(node), subkey, subkey_span, _opaque(args, src)) if rest else None
    arg = rest[0]
    if arg.type == "keywords":
        entries = _entries(arg, src)
        value = _container(arg, src, entries, "keywords") if entries is not None else _opaque(arg, src)
    else:
        value = parse_value(arg, src)
    if value.kind != "keywords":
        value = Value(Opaque(_text(arg, src)), _span(arg), "opaque")
    return ConfigCall(_span(node), subkey, subkey_span, value)
