"""``snakepit-migrate recover ID``: the manual procedure for a migration whose rollback failed, and its resumption.

A rollback fails when a compensation cannot complete within its retry budget
(the target store unreachable, a config directory that refuses writes). The
run then ends ``rollback_failed`` and what it wrote is still in place. This
module reads what was done from the run's result, reads what remains from the
place itself (the session journal in the target store, the config files
against their backup), prints the steps that finish the job, and resumes the
rollback once the cause is fixed: by the same undo run ``rollback ID`` starts
for a completed migration (``ID-rollback``), then checks that the target
matches its pre-migration digest.

Session migrations and config migrations are covered; other types are named
with what to do instead.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from temporalio.client import Client

from client import api
from deployment.errors import BadInput, NotFound, StoreUnreachable
from deployment.sessions.recovery import journal_state, store_digest
from deployment.sessions.stores import open_store
from deployment.sessions.stores.base import redact_url
from workflows.session_models import SessionMigrationInput, SessionMigrationResult

# What a rollback failure's text says about its cause, and how to fix that cause.
FIXES = [
    (("StoreUnreachable", "cannot reach", "not permitted to log in", "Connection refused"),
     "the target store did not answer: check that it runs, that its address is right, and that the migration's "
     "user can log in (e.g. ALTER ROLE ... LOGIN, or the Redis password)"),
    (("No space left", "Errno 28", "Disk quota"),
     "the disk holding the config files is full: free space on it (df -h), then resume"),
    (("Operation not permitted", "Permission denied", "PermissionError", "Read-only file system"),
     "the config directory refused the write: check its ownership and mode (ls -ld), its immutable flag "
     "(lsattr -d; chattr -i), and whether its file system is mounted read-only"),
]  # fmt: skip


def rollback_cause(error: str | None) -> str | None:
    """How to fix what made the rollback fail, read from the part of ``error`` after the rollback's failure."""
    text = (error or "").rsplit("failed:", 1)[-1]
    return next((fix for needles, fix in FIXES if any(n in text for n in needles)), None)


class FailedRollback:
    """A migration whose rollback failed: the migration (whose writes are to undo) and the run that failed undoing it."""

    def __init__(self, owner: dict[str, Any], failed: dict[str, Any], params: dict[str, Any]) -> None:
        self.owner = owner  # describe() of the migration itself
        self.failed = failed  # describe() of the run whose rollback failed (the migration, or its ID-rollback run)
        self.params = params  # the migration's original input
        self.id: str = owner["migration_id"]
        self.kind: str = owner["type"]

    @property
    def failure(self) -> dict[str, Any]:
        return self.failed.get("result") or {}

    @property
    def result(self) -> dict[str, Any]:
        return self.owner.get("result") or {}


async def find(client: Client, migration_id: str) -> tuple[FailedRollback | None, str]:
    """The failed rollback of ``migration_id`` (given as the migration's id or its ``-rollback`` run's), or why there is none."""
    info = await api.describe(client, migration_id)
    params = await api.original_input(client, migration_id)
    if params.get("rollback_of"):  # the undo run was named: the migration is the one it undoes
        return await find(client, params["rollback_of"])
    if info["status"] == "running":
        return None, f"{migration_id} is still running: nothing to recover yet (follow it with: snakepit-migrate status {migration_id} --watch)"
    undo = None
    with contextlib.suppress(NotFound):
        undo = await api.describe(client, f"{migration_id}-rollback")
    if undo is not None and undo["status"] == "rolled_back":
        return None, f"{migration_id} was rolled back by {migration_id}-rollback: nothing to recover"
    if undo is not None and undo["status"] in ("rollback_failed", "failed"):  # the latest attempt failed
        return FailedRollback(info, undo, params), ""
    if info["status"] == "rollback_failed":
        return FailedRollback(info, info, params), ""
    if info["status"] in ("completed", "rolled_back", "dry_run", "unchanged", "refused"):
        return None, f"{migration_id} is {info['status']}: no rollback of it failed, nothing to recover"
    return None, (
        f"{migration_id} is {info['status']} and no rollback of it ran: its partial data, if any, is found with "
        f"snakepit-migrate recover --scan --store TARGET_URL, then put back with --cleanup {migration_id} or finished with --resume {migration_id}"
    )


# -- what remains -------------------------------------------------------------------------


async def session_state(case: FailedRollback) -> dict[str, Any]:
    """The target's journal of the migration, read now: ids back as before, ids still to restore, its digest."""
    target = case.params["target"]
    try:
        async with open_store(target, create=False) as store:
            journal = await journal_state(store, case.id)
            digest = await store_digest(store)
    except StoreUnreachable as exc:
        return {"reachable": False, "error": str(exc)}
    return {
        "reachable": True,
        "journal_present": journal.present,
        "journaled": journal.journaled,
        "restored": journal.restored,
        "to_restore": len(journal.remaining),
        "ids_to_restore": journal.remaining[:50],
        "target_now": {"count": digest.count, "digest": str(digest)},
    }


def _file_digest(path: str) -> str | None:
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


def config_state(case: FailedRollback) -> dict[str, Any]:
    """Each backed-up file against its original digest: back as before, still the new version, or changed since."""
    backup = case.result.get("backup") or case.failure.get("backup")
    if not backup:
        return {"backup": None, "files": [], "to_restore": 0}
    files = []
    for e in backup["files"]:
        now = _file_digest(e["path"])
        state = "restored" if now == e["digest"] else "new version" if now == e["after_digest"] else "missing" if now is None else "changed since"
        files.append({"path": e["path"], "state": state, "backup_copy": e["backup_copy"], "digest_before": e["digest"]})
    return {"backup": backup["directory"], "files": files, "to_restore": sum(f["state"] != "restored" for f in files)}


# -- the procedure ------------------------------------------------------------------------


def command_url(url: str) -> str:
    """The URL as a command may carry it: a password reference (``${secret:NAME}``) kept, a literal password hidden."""
    password = urlsplit(url).password if "://" in url else None
    return url if not password or password.startswith("${") else redact_url(url)


def procedure(case: FailedRollback, remains: dict[str, Any]) -> dict[str, Any]:
    """Everything a person needs to finish the rollback by hand, as one JSON-ready object."""
    failure = case.failure
    report: dict[str, Any] = {
        "migration_id": case.id,
        "type": case.kind,
        "failed_run": case.failed["migration_id"],
        "status": "rollback_failed",
        "error": failure.get("error"),
        "error_type": failure.get("error_type"),
        "failed_phase": failure.get("failed_phase"),
        "remains": remains,
    }
    fix = rollback_cause(failure.get("error"))
    steps = [f"1. Fix the cause: {fix or 'see the error above'}."]
    if case.kind == "SessionMigration":
        r = case.result
        before = r.get("target_before") or {}
        target = command_url(case.params["target"])
        report["done"] = {
            "target": target,
            "sessions_copied": r.get("sessions_copied", 0),
            "batches": r.get("batches", 0),
            "source_digest": r.get("source_digest"),
            "target_before": before,
            "restored_before_failing": failure.get("restored", 0),
        }
        if not remains.get("reachable"):
            steps.append(f"   The target cannot be read now ({remains.get('error')}): run recover {case.id} again once it answers, "
                         "to see the journaled ids still to restore.")
        steps += [
            f"2. Resume the rollback (the undo run {case.id}-rollback, then a digest check of the target):\n"
            f"     snakepit-migrate recover {case.id} --resume-rollback",
            f"   or, without Temporal, from the journal directly:\n"
            f"     snakepit-migrate recover --cleanup {case.id} --store '{target}'",
            f"3. Check: the target must then hold {before.get('target_count', '?')} session(s) with digest "
            f"{before.get('target_digest', '?')} and no journal of {case.id}:\n"
            f"     snakepit-migrate recover --scan --store '{target}'   (lists no journal of {case.id})",
        ]
    else:
        r = case.result or failure
        report["done"] = {"path": r.get("path"), "from_version": r.get("from_version"), "to_version": r.get("to_version"),
                          "files_written": r.get("files_written", []), "restored_before_failing": failure.get("restored", [])}  # fmt: skip
        changed = [f for f in remains["files"] if f["state"] == "changed since"]
        force = " --force" if changed else ""
        steps.append(f"2. Resume the rollback (the restore run {case.id}-rollback, then a digest check of every file):\n"
                     f"     snakepit-migrate recover {case.id} --resume-rollback{force}")  # fmt: skip
        if changed:
            steps.append("   --force: " + ", ".join(f["path"] for f in changed) + " changed since the migration; the restore overwrites them")
        manual = [f"     cp '{f['backup_copy']}' '{f['path']}'" for f in remains["files"] if f["state"] != "restored"]
        if manual:
            steps.append("   or by hand, from the backup:\n" + "\n".join(manual))
        checks = [f"     {f['digest_before']}  {f['path']}" for f in remains["files"]]
        steps.append("3. Check: sha256sum of each file must print its digest before the migration:\n" + "\n".join(checks))
    report["steps"] = steps
    return report


def render(report: dict[str, Any]) -> str:
    """The procedure as text for a person."""
    lines = [f"{report['migration_id']} ({report['type']}): the rollback failed in run {report['failed_run']}",
             f"cause: {report['error']}", "", "What was done:"]  # fmt: skip
    done, remains = report["done"], report["remains"]
    if report["type"] == "SessionMigration":
        before = done["target_before"] or {}
        lines += [f"  before the migration the target {done['target']} held {before.get('target_count')} session(s), "
                  f"digest {before.get('target_digest')}",
                  f"  the run reported {done['sessions_copied']} session(s) copied in {done['batches']} batch(es) before it failed in "
                  f"{report['failed_phase']} (writes after its last report are counted by the journal below)"]  # fmt: skip
        if "***" in done["target"]:
            lines.append("  (the target URL is shown without its password: put it back in place of *** in the commands below)")
        lines += ["", "What remains:"]
        if not remains["reachable"]:
            lines.append(f"  unknown: the target cannot be read ({remains['error']})")
        elif not remains["journal_present"]:
            lines.append(f"  no journal of {report['migration_id']} is left in the target; only the digest check remains")
        else:
            ids = ", ".join(remains["ids_to_restore"][:20])
            lines.append(f"  {remains['to_restore']} of {remains['journaled']} journaled session id(s) still to restore"
                         + (f": {ids}" + (" ..." if remains["to_restore"] > 20 else "") if ids else ""))
            lines.append(f"  the target holds {remains['target_now']['count']} session(s) now, digest {remains['target_now']['digest']}")
    else:
        lines.append(f"  {done['path']}: {len(done['files_written'])} file(s) written ({done['from_version']} -> {done['to_version']})")
        lines += ["", "What remains:"]
        lines += [f"  {f['path']}: {f['state']}" for f in remains["files"]] or ["  no backup was recorded"]
    lines += ["", "To finish it:", *report["steps"]]
    return "\n".join(lines)


# -- resuming -----------------------------------------------------------------------------


async def resume_session_rollback(client: Client, case: FailedRollback, actor: tuple[str, str]) -> dict[str, Any]:
    """Start ``ID-rollback`` (the journal undo), wait for it, then compare the target with its pre-migration digest."""
    from client.cli.progress import ProgressView
    from client.embedded import worker_while_waiting

    if case.params.get("zero_downtime"):
        raise BadInput(
            f"{case.id} is a zero-downtime migration: its rollback also moves the routing back, which recover does not resume",
            hint=f"check the routing mode of the source first; then put the target back with: snakepit-migrate recover --cleanup {case.id} --store TARGET_URL",
        )
    remains = await session_state(case)
    if not remains["reachable"]:
        raise StoreUnreachable(f"the cause is not fixed yet: {remains['error']}", hint="nothing was started; fix it and run this again")
    undo_id = f"{case.id}-rollback"
    if remains["journal_present"]:
        params = {**case.params, "rollback_of": case.id, "dry_run": False, "actor": actor[0], "actor_host": actor[1]}
        handle = await api.start_session_migration(
            client, SessionMigrationInput.model_validate(params), undo_id, case.owner["task_queue"]
        )
        async with worker_while_waiting(client, handle, case.owner["task_queue"]):
            with ProgressView(quiet=True) as view:
                undo: SessionMigrationResult = await api.wait_for_result(handle, view)
        outcome = {"rollback_run": undo_id, "status": undo.status, "restored": undo.restored, "error": undo.error}
    else:  # the failed attempt had finished the undo; only the check is left
        outcome = {"rollback_run": None, "status": "rolled_back", "restored": 0, "error": None}
    before = case.result.get("target_before") or {}
    async with open_store(case.params["target"], create=False) as store:
        now = await store_digest(store)
        left = await journal_state(store, case.id)
    validation = {"expected": before.get("target_digest"), "found": str(now),
                  "journal_left": left.present, "ok": str(now) == before.get("target_digest") and not left.present}  # fmt: skip
    return {"migration_id": case.id, "type": case.kind, **outcome, "validation": validation}


async def resume_config_rollback(client: Client, case: FailedRollback, force: bool) -> dict[str, Any]:
    """Start ``ID-rollback`` (the backup restore ``rollback ID`` runs), wait, then check every file's digest."""
    from client.cli.config import rollback_config
    from client.embedded import worker_while_waiting

    async with worker_while_waiting(client, None, case.owner["task_queue"]):
        undo = await rollback_config(client, case.id, force, case.owner["task_queue"])
    remains = config_state(case)
    wrong = [f["path"] for f in remains["files"] if f["state"] != "restored"]
    return {"migration_id": case.id, "type": case.kind, "rollback_run": f"{case.id}-rollback", "status": undo.status,
            "restored": undo.restored, "error": undo.error,
            "validation": {"files": remains["files"], "not_as_before": wrong, "ok": undo.status == "rolled_back" and not wrong}}  # fmt: skip
