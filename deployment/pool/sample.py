"""Recording a bounded sample of real calls as JSONL, for the adapter equivalence check.

Each line is ``{"tool", "arguments", "result"}`` of a call that succeeded;
every ``every``-th call is kept, at most ``limit`` lines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class CallRecorder:
    """Appends a sample of successful calls to a JSONL file."""

    def __init__(self, path: str | Path, every: int = 1, limit: int = 1000) -> None:
        self.path = Path(path)
        self.every = max(1, every)
        self.limit = max(0, limit)
        self.seen = 0
        self.written = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def offer(self, tool: str, arguments: dict[str, Any], result: Any) -> None:
        """Consider one successful call for the sample."""
        self.seen += 1
        if self.written >= self.limit or (self.seen - 1) % self.every:
            return
        line = json.dumps({"tool": tool, "arguments": arguments, "result": result}, sort_keys=True)
        with self.path.open("a") as fh:
            fh.write(line + "\n")
        self.written += 1
