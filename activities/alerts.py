"""Alerts: a JSON POST to every configured webhook, and a log line.

``SNAKEPIT_ALERT_WEBHOOKS`` (comma-separated URLs) names the webhooks; the
log always gets the alert. A webhook that does not answer 2xx fails the
activity, which Temporal retries; every attempt carries the same
``alert_id``, so a receiver can drop repeats.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from typing import Any

import aiohttp
from temporalio import activity
from temporalio.exceptions import ApplicationError

from deployment.audit.entry import format_ts, scrub
from deployment.sessions.stores.base import redact_url
from workflows.audit_models import AlertInput

log = logging.getLogger("snakepit_migrate.alerts")


def webhooks() -> list[str]:
    """The webhook URLs of ``SNAKEPIT_ALERT_WEBHOOKS``."""
    return [u.strip() for u in os.environ.get("SNAKEPIT_ALERT_WEBHOOKS", "").split(",") if u.strip()]


class AlertActivities:
    """Sends alerts to the webhooks of ``SNAKEPIT_ALERT_WEBHOOKS`` and to the log."""

    @activity.defn(name="send_alert")
    async def send_alert(self, params: AlertInput) -> int:
        """Log the alert and POST it to every webhook; returns how many webhooks took it."""
        info = activity.info()
        payload: dict[str, Any] = {
            "alert_id": f"{info.workflow_run_id}:{info.activity_id}",
            **scrub(params.model_dump(exclude={"at"})),
            "workflow_id": info.workflow_id,
            "run_id": info.workflow_run_id,
            "at": format_ts(datetime.fromtimestamp(params.at, timezone.utc)),
        }
        if info.attempt == 1:
            log.warning("ALERT %s %s in %s: %s (%s)", params.kind, params.migration_id, params.step, params.error, params.action)
        failed = []
        async with aiohttp.ClientSession() as http:
            for url in webhooks():
                try:
                    async with http.post(url, json=payload, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                        if resp.status // 100 != 2:
                            failed.append(f"{redact_url(url)} answered {resp.status}")
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    failed.append(f"{redact_url(url)}: {exc or type(exc).__name__}")
        if failed:  # retried by Temporal with the same alert_id
            raise ApplicationError(f"alert {payload['alert_id']} not delivered: {'; '.join(failed)}", type="AlertNotDelivered")
        return len(webhooks())

