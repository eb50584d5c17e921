"""Custom migrations: the interface an extension implements, its context, and the registry.

Not tied to Temporal: ``workflows/custom_migration.py`` runs any extension as
a saga, and the same steps can be run from a script or a test.
"""

from deployment.extensions.base import (
    Applied,
    AuditWriter,
    ExtensionContext,
    ExtensionError,
    ExtensionVersionMismatch,
    LogAudit,
    MemoryAudit,
    MigrationExtension,
    Plan,
    Progress,
    Report,
    RolledBack,
    StopApply,
    Throttle,
    Verification,
    Version,
    check_resumable,
    instantiate,
    parse_version,
    resolve_bindings,
)
from deployment.extensions.registry import ENTRY_POINT_GROUP, ExtensionInfo, discover, load_extension

__all__ = [
    "Applied", "AuditWriter", "ExtensionContext", "ExtensionError", "ExtensionVersionMismatch", "LogAudit",
    "MemoryAudit", "MigrationExtension", "Plan", "Progress", "Report", "RolledBack", "StopApply", "Throttle",
    "Verification", "Version", "check_resumable", "instantiate", "parse_version", "resolve_bindings",
    "ENTRY_POINT_GROUP", "ExtensionInfo", "discover", "load_extension",
]  # fmt: skip
