"""Search attributes and memo of a migration run, so the Temporal UI and ``temporal workflow list --query`` filter them.

Set only when the run's input asks (``search_attributes``): the CLI asks when
the server has them registered (the embedded server registers them at
start), because a workflow that upserts an unregistered attribute stalls.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import SearchAttributeKey

MIGRATION_TYPE = SearchAttributeKey.for_keyword("MigrationType")
MIGRATION_PHASE = SearchAttributeKey.for_keyword("MigrationPhase")
ENVIRONMENT = SearchAttributeKey.for_keyword("Environment")
PLAN_ID = SearchAttributeKey.for_keyword("PlanId")
ALL_KEYS = (MIGRATION_TYPE, MIGRATION_PHASE, ENVIRONMENT, PLAN_ID)


class MigrationIndex:
    """Keeps a run's ``MigrationType`` / ``MigrationPhase`` attributes and its one-line memo summary current."""

    def __init__(self) -> None:
        self.enabled = False

    def start(self, kind: str, summary: str) -> None:
        """Index the run by type and write its first summary."""
        if self.enabled:
            workflow.upsert_search_attributes([MIGRATION_TYPE.value_set(kind)])
            workflow.upsert_memo({"summary": summary})

    def phase(self, phase: str) -> None:
        """The phase the run is in."""
        if self.enabled:
            workflow.upsert_search_attributes([MIGRATION_PHASE.value_set(phase)])

    def summary(self, text: str) -> None:
        """Replace the memo's one-line summary."""
        if self.enabled:
            workflow.upsert_memo({"summary": text})
