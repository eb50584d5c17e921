"""The ``snakepit-migrate`` command line.

Each verb is a short function that builds an input and hands off to
``client.api``; domain errors are translated into a message and an exit code
once, in :func:`main`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

import typer
from typer.exceptions import TyperException

from client.cli.common import err
from deployment.errors import MigrateError

app = typer.Typer(
    name="snakepit-migrate",
    help="Plan, run, verify and roll back migrations of Snakepit deployments on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Sub-command modules attach themselves to ``app``; import order is help order.
    from client.cli import adapter, audit, config, extensions, fleet, plan, pool, recover, runs, schedule, sessions  # noqa: F401


def _log_to_file() -> None:
    # The CLI's own output is its messages; library and in-process worker logs go to a file.
    from client.paths import home

    handler = logging.FileHandler(home() / "snakepit-migrate.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn every error into a message and exit code."""
    _register()
    return guarded(lambda: app(args=argv, prog_name="snakepit-migrate", standalone_mode=False))


def guarded(action: Callable[[], object]) -> int:
    """Run ``action`` with logs to a file, turning every error into a message and an exit code."""
    _log_to_file()
    try:
        from client.telemetry import setup_telemetry

        setup_telemetry()  # OTLP export of spans and metrics, only when OTEL_EXPORTER_OTLP_* asks for it
        result = action()
        return int(result) if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except TyperException as exc:  # usage errors: the message and the usage line, exit 2
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err.print(f"error: {exc.format_message()}")
        return exc.exit_code or 2
    except typer.Abort:
        err.print("aborted")
        return 130
    except MigrateError as exc:
        err.print(f"error: {exc}")
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:  # the last line of defence: never a traceback
        if os.environ.get("SNAKEPIT_MIGRATE_DEBUG"):
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc}")
        err.print("set SNAKEPIT_MIGRATE_DEBUG=1 for the traceback, and please report it")
        return 1


def entry() -> None:
    """Console-script entry for ``snakepit-migrate``."""
    _register()
    entry_with(lambda: app(prog_name="snakepit-migrate", standalone_mode=False))


def entry_with(action: Callable[[], object]) -> None:
    """Run ``action`` guarded, flush, and leave without interpreter teardown.

    Temporal's native runtime can crash while Python finalises after its
    threads were used; every result is written and flushed by then, so the
    process exits straight away with the command's code.
    """
    from client.connect import forward_core_logs

    forward_core_logs()
    code = guarded(action)
    from client.telemetry import flush_telemetry

    flush_telemetry()  # os._exit runs no exit handler: buffered spans and metrics go now
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
