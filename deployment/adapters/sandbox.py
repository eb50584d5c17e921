"""Child process of the equivalence check: run one tool's cases on one side, print outcomes.

Run as ``python sandbox.py`` with one JSON request on stdin::

    {"side": "custom", "root": DIR, "module": "pkg.adapter", "adapter": "Class",
     "generation": "base_adapter", "tool": "name", "cases": [{...arguments...}, ...]}
    {"side": "generic", "root": DIR, "config_path": FILE, "tool": "name", "cases": [...]}

and one JSON object on stdout: ``{"outcomes": [{"ok": true, "value": ...} |
{"ok": false, "error": {"type": ..., "message": ...}}]}``.  The parent puts
the project on ``PYTHONPATH``, so the custom side can run under the adapter's
own interpreter (with its dependencies); anything the adapter prints goes to
stderr, never into the answer.  BaseAdapter adapters and the generic adapter
are served by the reference fleet's ``AdapterHost`` (new instance per call,
session context, ``initialize``/``cleanup``, the host's result conversion),
so results are what callers of a worker would get.  Resource limits are set
by the parent.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    sys.path.pop(0)  # never let this directory's modules shadow the adapter's imports

from deployment.adapters.jsonify import to_json  # noqa: E402  (the project is on PYTHONPATH)


def _settle(value: Any) -> Any:
    if inspect.isawaitable(value):
        async def wait() -> Any:
            return await value
        return asyncio.run(wait())
    return value


def _error(exc: BaseException) -> dict[str, Any]:
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return {"ok": False, "error": {"type": name, "message": str(exc)}}


def _hosted(cls: type, tool: str):
    """Run through the reference fleet's AdapterHost, exactly as a worker serves callers."""
    from deployment.pool.adapter_host import AdapterHost
    from snakepit_bridge.session_context import SessionContext

    host = AdapterHost(cls)
    return lambda arguments: host.call(tool, arguments, SessionContext("snakepit-migrate-equivalence"))


def _custom_runner(request: dict[str, Any]):
    sys.path.insert(0, request["root"])
    module = importlib.import_module(request["module"])
    cls = getattr(module, request["adapter"])
    tool = request["tool"]
    if request["generation"] == "base_adapter":
        return _hosted(cls, tool)
    handler = cls()  # command handlers live as long as their process, as upstream
    if callable(getattr(handler, "process_command", None)):
        return lambda arguments: _settle(handler.process_command(tool, arguments))
    method = getattr(handler, request["function"].rpartition(".")[2])
    return lambda arguments: _settle(method(arguments))


def _generic_runner(request: dict[str, Any]):
    from deployment.adapters.generic import CONFIG_ENV, GenericAdapter

    sys.path.insert(0, request["root"])  # a worker has the adapter's own package importable too
    os.environ[CONFIG_ENV] = request["config_path"]  # configured the way a worker's adapter_env does it
    return _hosted(GenericAdapter, request["tool"])


def main() -> int:
    """Answer one request read from stdin."""
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the code under test prints goes to stderr
    sys.stdout = sys.stderr
    request = json.load(sys.stdin)
    try:
        run = _custom_runner(request) if request["side"] == "custom" else _generic_runner(request)
    except BaseException as exc:  # the adapter could not even be loaded
        load_error = _error(exc)["error"]
        answer.write(json.dumps({"load_error": load_error}) + "\n")
        return 0
    outcomes = []
    for arguments in request["cases"]:
        try:
            outcomes.append({"ok": True, "value": to_json(run(arguments))})
        except Exception as exc:
            outcomes.append(_error(exc))
    answer.write(json.dumps({"outcomes": outcomes}) + "\n")
    answer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
