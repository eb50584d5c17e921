"""Record the saved ConfigMigration histories the replay test checks: python tests/deployment/config/record_histories.py

Only cases without a saved history are recorded (delete a file to record it again): the first three were
recorded before the audit trail and the lone-run locks, and stay as they were to prove old runs still replay.
"""

import asyncio
import concurrent.futures
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from activities.alerts import AlertActivities
from activities.audit import AuditActivities
from activities.config_files import ConfigFileActivities
from client import paths
from client.connect import client_options
from workflows.config_migration import ConfigMigrationWorkflow, ConfigMigrationResult
from workflows.resource_lock import ResourceLockWorkflow

CASES = {
    "completed": ("v0_8", {"to_version": "0.10"}),
    "rolled_back": ("v0_5", {"to_version": "0.10", "accept_findings": True, "fail_after_files": 1}),
    "refused": ("v0_3", {"to_version": "0.6"}),
    # with the audit trail (findings accepted by an actor), the lone-run lock, and the alert of a rollback
    "audited_completed": ("v0_3", {"to_version": "0.10", "accept_findings": True, "actor": "recorder", "actor_host": "ci"}),
    "audited_rolled_back": ("v0_5", {"to_version": "0.10", "accept_findings": True, "fail_after_files": 1}),
}

async def main():
    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "config"
    out = fixtures / "histories"
    todo = {name: case for name, case in CASES.items() if not (out / f"{name}.json").exists()}
    tmp = Path(tempfile.mkdtemp())
    os.environ.setdefault("SNAKEPIT_AUDIT_URL", f"sqlite://{tmp}/audit.db")
    async with await WorkflowEnvironment.start_local(dev_server_existing_path=paths.temporal_cli(), **client_options()) as env:
        acts = ConfigFileActivities(tmp / "backups")
        q = "hist-" + uuid.uuid4().hex
        activities = [acts.plan_config_migration, acts.backup_config_files, acts.write_config_files, acts.validate_config_files,
                      acts.restore_config_backup, AuditActivities().append_audit_entry, AlertActivities().send_alert]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            async with Worker(env.client, task_queue=q, workflows=[ConfigMigrationWorkflow, ResourceLockWorkflow], activities=activities, activity_executor=pool):
                for name, (fixture, params) in todo.items():
                    folder = tmp / name
                    shutil.copytree(fixtures / fixture, folder)
                    wid = f"config-history-{name}"
                    handle = await env.client.start_workflow("ConfigMigration", {"path": str(folder), **params}, id=wid, task_queue=q, result_type=ConfigMigrationResult)
                    try:
                        await handle.result()
                    except Exception as exc:
                        print(name, "failed as expected:", type(exc).__name__)
                    hist = await handle.fetch_history()
                    (out / f"{name}.json").write_text(hist.to_json())
                    print(name, len(hist.events), "events")

if __name__ == "__main__":
    asyncio.run(main())
