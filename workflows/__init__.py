"""Deterministic orchestration: one module per migration type, plus saga.py."""

from __future__ import annotations


def all_workflows() -> list[type]:
    """Every workflow class the worker registers."""
    from workflows.adapter_migration import AdapterMigrationWorkflow
    from workflows.config_migration import ConfigMigrationWorkflow
    from workflows.custom_migration import CustomMigrationWorkflow
    from workflows.migration_plan import MigrationPlanWorkflow
    from workflows.resource_lock import ResourceLockWorkflow
    from workflows.rolling_restart import RollingRestartWorkflow
    from workflows.session_migration import SessionMigrationWorkflow

    return [SessionMigrationWorkflow, ConfigMigrationWorkflow, RollingRestartWorkflow, CustomMigrationWorkflow,
            AdapterMigrationWorkflow, MigrationPlanWorkflow, ResourceLockWorkflow]
