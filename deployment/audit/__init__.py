"""The audit trail: an append-only, hash-chained log of every action of a migration.

Usable without Temporal: ``async with open_audit_log() as log: await log.append(AuditEntry(...))``.
"""

from __future__ import annotations

from deployment.audit.entry import AuditEntry, ChainReport, StoredEntry, default_actor, now_ts, parse_since
from deployment.audit.log import AuditLog, audit_url, open_audit_log

__all__ = ["AuditEntry", "AuditLog", "ChainReport", "StoredEntry", "audit_url", "default_actor", "now_ts", "open_audit_log", "parse_since"]
