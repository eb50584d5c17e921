"""Activities of the configuration migration: every read and write of config files.

Files are backed up (content and SHA-256) before anything is written, written
with write-then-rename (a reader sees the old file or the new one, never half
of one), validated after the write, and restored byte for byte from the
backup on failure or on rollback.  Every activity is idempotent: a retry finds
what the previous attempt did and finishes it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import as_application_errors
from deployment.config.errors import FileChanged, FindingsNotAccepted, InvalidResult, LossyDownConversion, NoConfigFound
from deployment.config.model import Change, Finding, Issue
from deployment.config.plan import check_unit, load_base, load_unit, plan_unit
from deployment.config.source import read_base, read_unit
from deployment.errors import MigrateError


def digest(data: bytes) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    return hashlib.sha256(data).hexdigest()


# -- inputs and results -----------------------------------------------------------------


class ConfigMigrationInput(BaseModel):
    """What to migrate to which version. The workflow's single JSON input."""

    path: str = Field("", description="a config file or a config/ directory (all its files migrate as one unit)")
    to_version: str = Field("", description="target Snakepit version, e.g. 0.10")
    from_version: str | None = Field(None, description="source version; detected from the keys when omitted")
    accept_findings: bool = Field(False, description="proceed although some settings need a person's review")
    dry_run: bool = Field(False, description="plan and validate, write nothing")
    fail_after_files: int | None = Field(None, ge=0, description="fault injection: fail after writing this many files")
    rollback_of: str | None = Field(None, description="restore the backup of this completed migration instead")
    force: bool = Field(False, description="with rollback_of: restore even files changed since the migration")
    actor: str | None = Field(None, description="who started it, for the audit log (default: the worker's OS user)")
    actor_host: str | None = Field(None, description="the host it was started from, for the audit log")
    wait_for_lock: bool = Field(False, description="run on its own: wait while another run holds the path, instead of failing")


class PlannedFile(BaseModel):
    """One file of the unit: its digest now and its full new content."""

    path: str
    before_digest: str
    after: str
    after_digest: str
    changed: bool


class PlanInput(BaseModel):
    """Which unit to plan, to which version."""

    migration_id: str
    path: str
    to_version: str
    from_version: str | None = None


class PlanResult(BaseModel):
    """The converted unit, ready to write; validated already."""

    from_version: str
    to_version: str
    reasons: list[str]
    files: list[PlannedFile]
    changes: list[Change]
    findings: list[Finding]
    errors: list[Issue]
    warnings: list[Issue]
    diff: str


class BackupEntry(BaseModel):
    """One backed-up file: where it lives, its copy, and its digest before and after."""

    path: str
    digest: str
    size: int
    backup_copy: str
    after_digest: str


class BackupRecord(BaseModel):
    """Where the original bytes are kept and how to recognise them."""

    migration_id: str
    directory: str
    created_at: float
    files: list[BackupEntry]


class WriteInput(BaseModel):
    """The planned files of a migration (the backup and the write take the same input)."""

    migration_id: str
    files: list[PlannedFile]
    fail_after_files: int | None = None


class WriteResult(BaseModel):
    """Files written by this attempt, and files a previous attempt had already written."""

    written: list[str]
    already: list[str]


class ValidateInput(BaseModel):
    """The unit to read back, the version it must validate as, and the digest each file must have."""

    path: str
    to_version: str
    expected: dict[str, str]  # path -> digest the file must have now


class RestoreInput(BaseModel):
    """Whose backup to restore; ``compensation`` when a failed run undoes itself."""

    migration_id: str
    force: bool = False
    compensation: bool = False


class RestoreResult(BaseModel):
    """Files put back, and files that already held their original bytes."""

    restored: list[str]
    unchanged: list[str]


# -- file helpers ------------------------------------------------------------------------


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` by writing a temporary file beside it and renaming it over.

    A symbolic link is followed: the file it points to is replaced, the link stays.
    """
    path = path.resolve()
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".snakepit-migrate.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _current(path: str) -> str | None:
    p = Path(path)
    return digest(p.read_bytes()) if p.exists() else None


class ConfigFileActivities:
    """Config-file activities; backups live under ``backup_root/<migration id>/``."""

    def __init__(self, backup_root: Path | None = None) -> None:
        self._backup_root = backup_root

    @property
    def backup_root(self) -> Path:
        if self._backup_root is None:
            from client.paths import home

            self._backup_root = home() / "config-backups"
        return self._backup_root

    def _manifest(self, migration_id: str) -> Path:
        return self.backup_root / migration_id / "manifest.json"

    def load_backup(self, migration_id: str) -> BackupRecord | None:
        """The backup record of a migration, or None if it made none."""
        path = self._manifest(migration_id)
        if not path.exists():
            return None
        return BackupRecord.model_validate_json(path.read_text())

    @activity.defn(name="plan_config_migration")
    def plan_config_migration(self, params: PlanInput) -> PlanResult:
        """Read the unit, convert it, validate the result; nothing is written."""
        with as_application_errors():
            docs = load_unit(read_unit(params.path))
            plan = plan_unit(docs, params.to_version, params.from_version, load_base(read_base(params.path)))
            return PlanResult(
                from_version=plan.from_version,
                to_version=plan.to_version,
                reasons=plan.detection.reasons,
                files=[
                    PlannedFile(path=f.path, before_digest=digest(f.before), after=f.after.decode("utf-8"), after_digest=digest(f.after), changed=f.changed)
                    for f in plan.files
                ],
                changes=plan.changes,
                findings=plan.findings,
                errors=[i for i in plan.issues if i.severity == "error"],
                warnings=[i for i in plan.issues if i.severity == "warning"],
                diff=plan.diff(),
            )

    @activity.defn(name="backup_config_files")
    def backup_config_files(self, params: WriteInput) -> BackupRecord:
        """Copy every file to be changed into the backup directory, with its digest; verify the copies."""
        with as_application_errors():
            existing = self.load_backup(params.migration_id)
            if existing is not None:
                return existing
            folder = self.backup_root / params.migration_id
            folder.mkdir(parents=True, exist_ok=True)
            entries = []
            for i, f in enumerate(p for p in params.files if p.changed):
                data = Path(f.path).read_bytes()
                if digest(data) != f.before_digest:
                    raise FileChanged(f"{f.path} changed after the migration was planned", hint="run the migration again")
                copy = folder / f"{i:03d}-{Path(f.path).name}"
                atomic_write(copy, data)
                if digest(copy.read_bytes()) != f.before_digest:
                    raise OSError(f"the backup copy of {f.path} does not read back identically")
                entries.append(BackupEntry(path=str(Path(f.path).resolve()), digest=f.before_digest, size=len(data), backup_copy=str(copy), after_digest=f.after_digest))
            record = BackupRecord(migration_id=params.migration_id, directory=str(folder), created_at=time.time(), files=entries)
            atomic_write(self._manifest(params.migration_id), record.model_dump_json(indent=2).encode())
            return record

    @activity.defn(name="write_config_files")
    def write_config_files(self, params: WriteInput) -> WriteResult:
        """Write the new content of each changed file atomically, unless it is already there."""
        with as_application_errors():
            written: list[str] = []
            already: list[str] = []
            for f in (p for p in params.files if p.changed):
                now = _current(f.path)
                if now == f.after_digest:
                    already.append(f.path)
                    continue
                if now != f.before_digest:
                    raise FileChanged(f"{f.path} changed while the migration ran", hint="the migration is undone; run it again")
                if params.fail_after_files is not None and len(written) + len(already) >= params.fail_after_files:
                    raise ApplicationError(
                        f"injected failure after writing {len(written) + len(already)} file(s)", type="InjectedFailure", non_retryable=True
                    )
                atomic_write(Path(f.path), f.after.encode("utf-8"))
                written.append(f.path)
                activity.heartbeat(len(written))
            return WriteResult(written=written, already=already)

    @activity.defn(name="validate_config_files")
    def validate_config_files(self, params: ValidateInput) -> list[Issue]:
        """Read the written files back: each has the planned digest, parses, and validates as the target."""
        with as_application_errors():
            files = read_unit(params.path)
            for path, data in files:
                want = params.expected.get(path)
                if want is not None and digest(data) != want:
                    raise InvalidResult(f"{path} does not hold the planned content after the write")
            report = check_unit(load_unit(files), params.to_version, load_base(read_base(params.path)))
            errors = [i for i in report.issues if i.severity == "error"]
            if errors:
                raise InvalidResult("the written files do not validate as " + params.to_version + ":\n" + "\n".join(i.text() for i in errors))
            return report.issues

    @activity.defn(name="restore_config_backup")
    def restore_config_backup(self, params: RestoreInput) -> RestoreResult:
        """Put every backed-up file back byte for byte; refuse files changed since the migration unless forced."""
        with as_application_errors():
            record = self.load_backup(params.migration_id)
            if record is None:
                if params.compensation:
                    return RestoreResult(restored=[], unchanged=[])
                raise NoConfigFound(f"migration {params.migration_id} has no config backup", hint="check the id with: snakepit-migrate list")
            restored: list[str] = []
            unchanged: list[str] = []
            changed_since = [e.path for e in record.files if _current(e.path) not in (e.digest, e.after_digest)]
            if changed_since and not params.force:
                raise FileChanged(
                    "changed since the migration: " + ", ".join(changed_since),
                    hint="restoring would overwrite those edits; rerun with --force to restore anyway",
                )
            for e in record.files:
                if _current(e.path) == e.digest:
                    unchanged.append(e.path)
                    continue
                data = Path(e.backup_copy).read_bytes()
                if digest(data) != e.digest:
                    raise FileChanged(f"the backup copy {e.backup_copy} is damaged (digest differs)", hint="restore it by hand from version control")
                atomic_write(Path(e.path), data)
                if _current(e.path) != e.digest:
                    raise OSError(f"{e.path} does not read back as the backup after the restore")
                restored.append(e.path)
            return RestoreResult(restored=restored, unchanged=unchanged)


def refusal(to_version: str, findings: list[Finding], errors: list[Issue], accept_findings: bool) -> MigrateError | None:
    """Why a planned migration must not be written (lossy, invalid, findings not accepted), or None."""
    lossy = [f for f in findings if f.kind == "lossy"]
    if lossy:
        return LossyDownConversion(
            f"down-conversion to {to_version} would lose settings:\n" + "\n".join("  " + f.text() for f in lossy),
            hint="restore from the migration's backup instead (snakepit-migrate config rollback ID)",
        )
    if errors:
        return InvalidResult(f"the converted config does not validate as {to_version}:\n" + "\n".join("  " + i.text() for i in errors))
    manual = [f for f in findings if f.kind == "manual"]
    if manual and not accept_findings:
        return FindingsNotAccepted(
            f"{len(manual)} setting(s) need a person's review:\n" + "\n".join("  " + f.text() for f in manual),
            hint="review them, then rerun with --accept-findings (nothing was written)",
        )
    return None

