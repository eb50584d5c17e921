"""The portable snapshot: one JSON session object a line.

As a source it is read line by line (a malformed line is reported with its
file and line number).  As a target it is written to ``<path>.partial``,
appended batch by batch with a resumable checkpoint (the partial file's
size), and published by an atomic rename in :meth:`finalize`; a target must
be new or empty, so undoing a migration is removing what it published.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from deployment.errors import BadInput, StoreMissing, SnapshotParseError, StoreUnreachable, InvalidSession
from deployment.sessions.record import Record, canonical_bytes, normalize
from deployment.sessions.stores.base import SessionStore
from deployment.sessions.stores.files import path_of


class JsonlStore(SessionStore):
    """A JSONL snapshot file."""

    scheme = "jsonl"
    reads_own_writes = False

    def __init__(self, url: str, *, create: bool = True) -> None:
        super().__init__(url, create=create)
        self.path: Path = path_of(url)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self._index: dict[str, int] | None = None

    async def open(self) -> None:
        if self.path.exists() and not self.path.is_file():
            raise StoreUnreachable(f"{self.path} is not a regular file", hint="name a .jsonl file")
        if not self.path.parent.is_dir():
            raise StoreUnreachable(
                f"cannot use {self.path}: folder {self.path.parent} does not exist",
                hint="create the folder or name a path in an existing one",
            )
        if not self.create_missing and not self.path.exists():
            raise StoreMissing(f"snapshot {self.path} does not exist", hint="check the path of the source")
        if self.path.exists() and not os.access(self.path, os.R_OK):
            raise StoreUnreachable(f"cannot read {self.path}: permission denied")

    async def close(self) -> None:
        self._index = None

    # -- reading ---------------------------------------------------------
    def _parse(self, raw: bytes, line_no: int) -> Record:
        try:
            return normalize(json.loads(raw))
        except UnicodeDecodeError as exc:
            raise SnapshotParseError(str(self.path), line_no, f"not UTF-8 text ({exc.reason})") from None
        except json.JSONDecodeError as exc:
            raise SnapshotParseError(str(self.path), line_no, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        except InvalidSession as exc:
            raise SnapshotParseError(str(self.path), line_no, exc.message) from None
        except RecursionError:
            raise SnapshotParseError(str(self.path), line_no, "JSON nested too deeply") from None

    def _read_from(self, offset: int, line_no: int, limit: int | None) -> tuple[list[tuple[int, Record]], int, int, bool]:
        found: list[tuple[int, Record]] = []
        if not self.path.exists():
            return found, offset, line_no, True
        with self.path.open("rb") as fh:
            fh.seek(offset)
            while limit is None or len(found) < limit:
                start = fh.tell()
                raw = fh.readline()
                if not raw:
                    return found, fh.tell(), line_no, True
                line_no += 1
                if raw.strip():
                    found.append((start, self._parse(raw, line_no)))
            return found, fh.tell(), line_no, fh.read(1) == b""

    async def scan(self, cursor: str | None, limit: int) -> tuple[list[Record], str | None]:
        offset, line_no = (int(x) for x in cursor.split(":")) if cursor else (0, 0)
        found, offset, line_no, at_end = self._read_from(offset, line_no, limit)
        return [rec for _, rec in found], None if at_end else f"{offset}:{line_no}"

    def _build_index(self) -> dict[str, int]:
        if self._index is None:
            found, _, _, _ = self._read_from(0, 0, None)
            self._index = {rec["id"]: pos for pos, rec in found}
        return self._index

    async def read_many(self, ids: list[str]) -> dict[str, Record]:
        index = self._build_index()
        result: dict[str, Record] = {}
        wanted = sorted((index[i], i) for i in set(ids) if i in index)
        if not wanted:
            return result
        with self.path.open("rb") as fh:
            for pos, sid in wanted:
                fh.seek(pos)
                result[sid] = json.loads(fh.readline())
        return {sid: normalize(rec) for sid, rec in result.items()}

    async def count(self) -> int:
        """Every line checked (a malformed one is reported with its line number), streamed: memory stays flat."""
        if self._index is not None:
            return len(self._index)
        total, cursor = 0, None
        while True:
            batch, cursor = await self.scan(cursor, 1000)
            total += len(batch)
            if cursor is None:
                return total

    # -- writing (append to the partial file, publish on finalize) ---------
    async def write_many(self, records: list[Record], encoded: list[bytes] | None = None) -> None:
        blobs = encoded if encoded is not None else [canonical_bytes(r) for r in records]
        with self.partial.open("ab") as fh:
            fh.write(b"".join(b + b"\n" for b in blobs))
            fh.flush()
            os.fsync(fh.fileno())
        self._index = None

    async def delete_many(self, ids: list[str]) -> None:
        raise InvalidSession("a JSONL snapshot is append-only: sessions cannot be deleted from it")

    async def checkpoint(self) -> str | None:
        return str(self.partial.stat().st_size) if self.partial.exists() else "0"

    async def restore_checkpoint(self, checkpoint: str | None) -> None:
        if self.partial.exists():
            with self.partial.open("r+b") as fh:
                fh.truncate(int(checkpoint or 0))

    async def finalize(self) -> None:
        if not self.partial.exists():
            self.partial.touch()
        os.replace(self.partial, self.path)
        self._index = None

    # -- journal: the only prior state of a (new or empty) target is whether it existed
    def _journal_path(self, migration_id: str) -> Path:
        return self.path.with_name(f"{self.path.name}.journal-{migration_id}.json")

    async def journal_record(self, migration_id: str, priors: dict[str, Record | None]) -> None:
        journal = self._journal_path(migration_id)
        if not journal.exists():
            journal.write_text(json.dumps({"existed": self.path.exists()}))

    async def journal_scan(self, migration_id: str, cursor: str | None, limit: int) -> tuple[list[tuple[str, Record | None]], str | None]:
        return [], None

    async def journal_drop(self, migration_id: str) -> None:
        self._journal_path(migration_id).unlink(missing_ok=True)

    async def journal_ids(self) -> list[str]:
        prefix = f"{self.path.name}.journal-"
        return sorted(p.name[len(prefix) : -len(".json")] for p in self.path.parent.glob(prefix + "*.json"))

    async def undo(self, migration_id: str, batch_size: int = 500) -> int:
        journal = self._journal_path(migration_id)
        if not journal.exists():
            return 0
        existed = json.loads(journal.read_text())["existed"]
        self.partial.unlink(missing_ok=True)
        if existed:
            self.path.write_bytes(b"")
        else:
            self.path.unlink(missing_ok=True)
        await self.journal_drop(migration_id)
        self._index = None
        return 1

    # -- a snapshot file cannot serve live traffic -----------------------
    def _no_live(self) -> BadInput:
        return BadInput(
            f"{self.display} is a JSONL snapshot: it cannot take part in live routing (zero-downtime mode)",
            hint="use sqlite, redis or postgresql for both ends of a zero-downtime migration",
        )

    async def write_many_if_newer(self, records: list[Record], encoded: list[bytes] | None = None) -> int:
        raise self._no_live()

    async def control_get(self, key: str) -> dict[str, Any] | None:
        raise self._no_live()

    async def control_put(self, key: str, value: dict[str, Any]) -> None:
        raise self._no_live()

    async def control_scan(self, prefix: str) -> dict[str, dict[str, Any]]:
        raise self._no_live()

    async def control_delete(self, prefix: str) -> None:
        raise self._no_live()
