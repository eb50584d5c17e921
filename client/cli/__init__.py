"""The ``snakepit-migrate`` command line.

Each verb is a short function that builds an input and hands off to
``client.api``; domain errors are translated into a message and an exit code
once, in :func:`main`.
"""

from __future__ import annotations

import logging
import os
import sys

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
    from client.cli import adapter, config, pool, runs, sessions  # noqa: F401


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
    _log_to_file()
    try:
        result = app(args=argv, prog_name="snakepit-migrate", standalone_mode=False)
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
        err.print(f"[bold red]error:[/] {exc}", markup=True)
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:  # the last line of defence: never a traceback
        if os.environ.get("SNAKEPIT_MIGRATE_DEBUG"):
            raise
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}", markup=True)
        err.print("set SNAKEPIT_MIGRATE_DEBUG=1 for the traceback, and please report it")
        return 1


if __name__ == "__main__":
    sys.exit(main())
