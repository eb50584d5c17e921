"""Following a running migration on stderr: a rich bar on a terminal, phase lines otherwise."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from client.cli.common import err


class ProgressView:
    """A callback for ``wait_for_result`` that renders progress on stderr."""

    def __init__(self, quiet: bool = False, unit: str = "sessions") -> None:
        self.quiet = quiet
        self.unit = unit
        self.live = err.is_terminal and not quiet
        self._bar: Progress | None = None
        self._task = None
        self._phase: tuple[str, str | None] | None = None

    def __enter__(self) -> "ProgressView":
        if self.live:
            self._bar = Progress(
                TextColumn("{task.fields[phase]:<12}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} " + self.unit + "/s"),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("migration", total=None, phase="starting", rate="-")
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, p: Any) -> None:
        """Render one progress report (a MigrationProgress, or any model with the same fields)."""
        instance = getattr(p, "instance", None)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=p.done, total=p.total or None, phase=p.phase, rate=f"{p.rate_per_s:,.0f}")
        if (p.phase, instance) != self._phase:
            self._phase = (p.phase, instance)
            if not self.quiet:
                err.print(f"{p.migration_id}: {p.phase}" + (f" {instance}" if instance else "")
                          + (f" ({p.done}/{p.total})" if p.total else ""))
