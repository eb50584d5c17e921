"""Turning domain errors into Temporal failures, in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio.exceptions import ApplicationError

from deployment.errors import BadInput, MigrateError, StoreUnreachable
from deployment.pool.errors import FleetUnreachable


@contextmanager
def as_application_errors(*, unreachable_is_transient: bool = False) -> Iterator[None]:
    """Re-raise domain errors as ``ApplicationError`` typed by their class name.

    Bad input is permanent (``non_retryable``), so Temporal does not retry a
    malformed snapshot; a store or fleet that cannot be reached is retried when
    ``unreachable_is_transient`` (mid-migration), permanent otherwise
    (validation, where it means a wrong URL).
    """
    try:
        yield
    except (StoreUnreachable, FleetUnreachable) as exc:
        raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=not unreachable_is_transient) from exc
    except BadInput as exc:
        raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc
    except MigrateError as exc:
        raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc
