"""Audit entries as JSON Lines or CSV: pure formatting."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from deployment.audit.entry import StoredEntry
from deployment.audit.log import COLUMNS
from deployment.errors import BadInput

FORMATS = ("jsonl", "csv")


def export_entries(entries: Iterable[StoredEntry], fmt: str) -> str:
    """Every entry in ``fmt``: one JSON object a line, or CSV with a header (before/after as JSON text)."""
    if fmt == "jsonl":
        return "".join(json.dumps(e.model_dump(), sort_keys=True) + "\n" for e in entries)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        for e in entries:
            row = e.model_dump()
            writer.writerow(
                "" if row[c] is None else json.dumps(row[c], sort_keys=True) if c in ("before", "after") else row[c] for c in COLUMNS
            )
        return buf.getvalue()
    raise BadInput(f"unknown export format {fmt!r}", hint="use jsonl or csv")
