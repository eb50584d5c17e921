"""A parent migration for the tests: it marks the fleet itself and runs RollingRestart as its child,
as AdapterMigration does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.fleet import FleetActivities
    from workflows.fleet_models import MarkInput, RollingRestartInput, RollingRestartResult


@workflow.defn(name="TestParentMigration")
class ParentMigrationWorkflow:
    """Mark the fleet, run the rolling restart as a child under the parent's id, clear the mark."""

    @workflow.run
    async def run(self, params: dict[str, Any]) -> RollingRestartResult:
        inp = RollingRestartInput.model_validate(params)
        mid = workflow.info().workflow_id
        mark = {"start_to_close_timeout": timedelta(seconds=30)}
        await workflow.execute_activity_method(
            FleetActivities.set_fleet_migration, MarkInput(fleet=inp.spec, migration_id=mid, phase="parent: rolling"), **mark
        )
        await workflow.sleep(timedelta(seconds=1.5))  # long enough for the test's 0.1 s health sampling to see the mark
        child = inp.model_copy(update={"migration_id": mid, "keep_migration_mark": True})
        try:
            result = await workflow.execute_child_workflow(
                "RollingRestart", child.model_dump(exclude_none=True), id=f"{mid}-restart", result_type=RollingRestartResult
            )
        except ChildWorkflowError as exc:
            cause = exc.cause
            if not (isinstance(cause, ApplicationError) and cause.details):
                raise
            result = RollingRestartResult.model_validate(cause.details[0])
        await workflow.execute_activity_method(
            FleetActivities.set_fleet_migration, MarkInput(fleet=inp.spec, migration_id=mid), **mark
        )
        return result
