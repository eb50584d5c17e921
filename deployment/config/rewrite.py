"""Surgical rewriting of config scripts: edit only the byte ranges a conversion changed.

Given a parsed :class:`ExsFile` and, for each of its ``config :snakepit`` calls,
the settings a conversion produced, :func:`rewrite_exs` computes the smallest
edits it can (rename a key in place, replace one value, delete one pair with
its line, insert a pair after its neighbour) and applies them to the original
bytes.  Comments, blank lines, other applications' config, ``import_config``
lines and every expression that did not change stay byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from deployment.config.exs import ConfigCall, Entry, ExsFile, Value
from deployment.config.values import Config, Keywords, _key_text, render, same

_LINE_REST = re.compile(rb"[ \t]*(,)?[ \t]*(#[^\r\n]*)?(\r?\n|$)")
_TO_COMMA = re.compile(rb"[ \t\r\n]*(#[^\n]*\n[ \t\r\n]*)*,")


@dataclass(frozen=True)
class Edit:
    """Replace ``source[start:end]`` with ``text``; ``seq`` orders insertions at one point."""

    start: int
    end: int
    text: str
    seq: int = 0


def apply_edits(source: bytes, edits: list[Edit]) -> bytes:
    """Apply non-overlapping edits to ``source``; overlapping edits are a bug and raise."""
    ordered = sorted(edits, key=lambda e: (e.start, e.end, e.seq))
    out: list[bytes] = []
    pos = 0
    for e in ordered:
        if e.start < pos:
            raise ValueError(f"overlapping edits at byte {e.start}")
        out.append(source[pos:e.start])
        out.append(e.text.encode())
        pos = max(pos, e.end)
    out.append(source[pos:])
    return b"".join(out)


class _Planner:
    def __init__(self, source: bytes, hints: set[tuple[tuple, str, str]]) -> None:
        self.src = source
        self.hints = hints
        self.newline = "\r\n" if b"\r\n" in source else "\n"  # inserted lines follow the file's line endings
        self.edits: list[Edit] = []
        self._seq = 0

    def add(self, start: int, end: int, text: str) -> None:
        """Plan replacing ``[start, end)`` with ``text`` (in the file's line endings)."""
        self._seq += 1
        if self.newline != "\n":
            text = text.replace("\n", self.newline)
        self.edits.append(Edit(start, end, text, self._seq))

    # -- geometry -------------------------------------------------------
    def line_start(self, pos: int) -> int:
        """The byte where the line holding ``pos`` starts."""
        return self.src.rfind(b"\n", 0, pos) + 1

    def indent_of(self, pos: int) -> str:
        """The whitespace that starts the line holding ``pos``."""
        start = self.line_start(pos)
        m = re.match(rb"[ \t]*", self.src[start:pos])
        return m.group(0).decode() if m else ""

    def starts_line(self, pos: int) -> bool:
        """Whether only whitespace comes before ``pos`` on its line."""
        return self.src[self.line_start(pos):pos].strip(b" \t\r") == b""

    def rest(self, pos: int) -> re.Match[bytes] | None:
        """After ``pos``: optional comma and comment up to the end of the line."""
        return _LINE_REST.match(self.src, pos)

    def comma_after(self, pos: int) -> int | None:
        """The byte of the comma that follows ``pos`` (across blanks and comments), or None."""
        m = _TO_COMMA.match(self.src, pos)
        return m.end() - 1 if m else None

    # -- values ---------------------------------------------------------
    def value(self, node: Value, new: Any, path: tuple = (), inline: bool = False) -> None:
        """Make ``node`` hold ``new``, descending into containers to keep what did not change."""
        if same(node.data, new):
            return
        if node.kind in ("map", "keywords") and isinstance(new, dict) and (node.kind == "keywords") == isinstance(new, Keywords):
            self.container(node, node.data, new, path)
            return
        if node.kind == "list" and isinstance(new, list) and len(new) == len(node.items):
            for i, (item, new_item) in enumerate(zip(node.items, new)):
                self.value(item, new_item, path + (i,))
            return
        if node.kind == "tuple" and isinstance(new, tuple) and len(new) == len(node.items):
            for i, (item, new_item) in enumerate(zip(node.items, new)):
                self.value(item, new_item, path + (i,))
            return
        indent = self.indent_of(node.span.start)
        column = node.span.start - self.line_start(node.span.start)
        width = 1 << 30 if inline else 88  # a value among pairs written on one line stays on one line
        self.add(node.span.start, node.span.end, render(new, len(indent), width, column))

    def _pair_text(self, key: str, value: Any, indent: str, inline: bool = False) -> str:
        width = 1 << 30 if inline else 88
        return f"{_key_text(key)} {render(value, len(indent), width, len(indent) + len(key) + 2)}"

    def container(self, node: Value, old: dict, new: dict, path: tuple = (), call_level: bool = False) -> bool:
        """Edit the entries of a map or keyword list; False when every entry goes and nothing comes."""
        entries = node.entries
        multiline = bool(entries) and self._multiline(node)
        inline = bool(entries) and not multiline
        old_keys = [e.key for e in entries]
        last = {k: i for i, k in enumerate(old_keys)}  # a key written twice: the last one counts
        removed = {k for k in old_keys if k not in new}
        new_keys = list(new.keys())
        if not new_keys and call_level:
            return False
        paired: dict[str, int] = {}  # added key -> index of the removed pair it takes the place of
        inserts: dict[int, list[str]] = {}  # old index after which to insert (-1: before the first)
        anchor = -1
        for key in new_keys:
            if key in last:
                anchor = last[key]
                continue
            candidate = next(
                (i for i, k in enumerate(old_keys) if k in removed and i == last[k] and i not in paired.values() and (path, k, key) in self.hints),
                None,
            )
            if candidate is not None:
                paired[key] = candidate
                anchor = candidate
            else:
                inserts.setdefault(anchor, []).append(key)
        deleted = [i for i, k in enumerate(old_keys) if k in removed and i not in paired.values()]
        survivors = [i for i in range(len(old_keys)) if i not in deleted]
        for key, i in paired.items():
            e = entries[i]
            self.add(e.key_span.start, e.key_span.end, _key_text(key)[:-1])
            self.value(e.value, new[key], path + (key,), inline)
        for key, i in last.items():
            if key in new:
                self.value(entries[i].value, new[key], path + (key,), inline)
        if not entries:
            if new_keys:
                text = ", ".join(self._pair_text(k, new[k], "", inline=True) for k in new_keys)
                self.add(node.open_end, node.open_end, text)
            return True
        indent = self.indent_of(entries[0].pair_span.start) if multiline else ""
        last_survivor = survivors[-1] if survivors else None
        runs = _runs(deleted)
        for after, keys in inserts.items():
            texts = [self._pair_text(k, new[k], indent, inline) for k in keys]
            run = next((r for r in runs if r[0] == after + 1 and not self._own_lines(entries, r)), None)
            if run is not None:
                # pairs written inline that are going: the new ones take their place
                self.add(entries[run[0]].pair_span.start, entries[run[-1]].pair_span.end, ", ".join(texts))
                runs.remove(run)
                continue
            later = any(i > after for i in survivors) or any(a > after for a in inserts)
            self._insert(entries, after, texts, multiline, indent, later)
        self._delete_runs(node, entries, runs)
        if last_survivor is not None and last_survivor < len(entries) - 1 and not any(a >= last_survivor for a in inserts):
            old_trailing = self.comma_after(entries[-1].pair_span.end)
            closer = node.close_start
            trailing = old_trailing is not None and (closer is None or old_trailing < closer)
            comma = self.comma_after(entries[last_survivor].pair_span.end)
            covered = comma is not None and any(e.start <= comma < e.end for e in self.edits)
            if comma is not None and not trailing and not covered and comma < entries[last_survivor + 1].pair_span.start:
                self.add(comma, comma + 1, "")
        return True

    def _multiline(self, node: Value) -> bool:
        entries = node.entries
        if len(entries) > 1:
            return entries[1].pair_span.line != entries[0].pair_span.line
        return self.starts_line(entries[0].pair_span.start)

    def _insert(self, entries: list[Entry], after: int, texts: list[str], multiline: bool, indent: str, later: bool) -> None:
        if after < 0:
            first = entries[0].pair_span.start
            tail = "," if later else ""
            if multiline and self.starts_line(first):
                self.add(self.line_start(first), self.line_start(first), ",\n".join(f"{indent}{t}" for t in texts) + tail + "\n")
            else:
                self.add(first, first, ", ".join(texts) + (", " if later else ""))
            return
        e = entries[after]
        has_comma = self.comma_after(e.pair_span.end)
        m = self.rest(e.pair_span.end)
        if multiline and m is not None:
            eol = m.end(3) - len(m.group(3))
            direct_comma = m.group(1) is not None
            if not direct_comma and not (later and has_comma is not None):
                self.add(e.pair_span.end, e.pair_span.end, ",")
            body = ",\n".join(f"{indent}{t}" for t in texts)
            tail = "," if later else ""
            self.add(eol, eol, f"\n{body}{tail}")
            return
        nxt = entries[after + 1].pair_span.start if after + 1 < len(entries) else None
        if not later and has_comma is not None and (nxt is None or has_comma < nxt):
            # the comma after ``e`` only ever separated it from entries that are going: reuse it
            self.add(has_comma + 1, has_comma + 1, " " + ", ".join(texts))
            return
        self.add(e.pair_span.end, e.pair_span.end, "".join(f", {t}" for t in texts))

    def _own_lines(self, entries: list[Entry], run: list[int]) -> bool:
        """Whether every pair of ``run`` sits alone on its line(s)."""
        return all(self.starts_line(entries[i].pair_span.start) and self.rest(entries[i].pair_span.end) is not None for i in run)

    def _delete_runs(self, node: Value, entries: list[Entry], runs: list[list[int]]) -> None:
        for run in runs:
            first, last = entries[run[0]], entries[run[-1]]
            if self._own_lines(entries, run):
                # one pair per line: delete each pair's own lines, keeping comment lines between them
                for i in run:
                    m = self.rest(entries[i].pair_span.end)
                    assert m is not None
                    self.add(self.line_start(entries[i].pair_span.start), m.end(), "")
            elif run[-1] + 1 < len(entries):
                self.add(first.pair_span.start, entries[run[-1] + 1].pair_span.start, "")
            elif run[0] > 0:
                self.add(entries[run[0] - 1].pair_span.end, last.pair_span.end, "")
            else:
                start = node.open_end if node.open_end is not None else first.pair_span.start
                end = node.close_start if node.close_start is not None else last.pair_span.end
                self.add(start, end, "")

    # -- statements -----------------------------------------------------
    def delete_statement(self, call: ConfigCall) -> None:
        """Remove a whole ``config`` statement, with its line when it has one to itself."""
        m = self.rest(call.span.end)
        if self.starts_line(call.span.start) and m is not None:
            self.add(self.line_start(call.span.start), m.end(), "")
        else:
            self.add(call.span.start, call.span.end, "")

    def append_statement(self, call: ConfigCall, new: Config) -> None:
        """Add ``config :snakepit, key: value`` statements right after ``call``."""
        m = self.rest(call.span.end)
        pos = m.end() if m is not None else call.span.end
        sep = "" if self.src[pos - 1:pos] == b"\n" else "\n"
        indent = self.indent_of(call.span.start)
        text = "".join(f"{sep if i == 0 else ''}{indent}config :snakepit, {self._pair_text(k, v, indent)}\n" for i, (k, v) in enumerate(new.items()))
        self.add(pos, pos, text)

    def call(self, call: ConfigCall, new: Config) -> None:
        """Edit one ``config :snakepit`` statement so that it sets ``new``."""
        if call.args.kind == "opaque":
            return
        if call.subkey is None:
            if not self.container(call.args, call.args.data, new, (), call_level=True):
                self.delete_statement(call)
            return
        rest = {k: v for k, v in new.items() if k != call.subkey}
        heir = next((k for k in rest if ((), call.subkey, k) in self.hints), None)
        if call.subkey in new:
            self.value(call.args, new[call.subkey], (call.subkey,))
        elif heir is not None and isinstance(rest[heir], Keywords):
            self.add(call.subkey_span.start, call.subkey_span.end, heir)
            self.value(call.args, rest.pop(heir), (heir,))
        else:
            self.delete_statement(call)
        if rest:
            self.append_statement(call, rest)


def _runs(indices: list[int]) -> list[list[int]]:
    """Consecutive indices grouped: [1, 2, 4] -> [[1, 2], [4]]."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def rewrite_exs(exs: ExsFile, new_per_call: list[Config], hints: set[tuple[tuple, str, str]] | None = None) -> bytes:
    """The bytes of ``exs`` with each Snakepit call changed to set the matching ``new_per_call``.

    ``hints`` are (parent path, old key, new key) triples: a new key takes the
    place of the old one (renamed or moved there) instead of being appended.
    """
    planner = _Planner(exs.source, hints or set())
    for call, new in zip(exs.calls, new_per_call, strict=True):
        planner.call(call, new)
    return apply_edits(exs.source, planner.edits)
