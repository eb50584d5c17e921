"""numpy results come back tagged with ``__type__`` (run where numpy is installed; the venv has none).

The base interpreter this venv was made from may have numpy: the generic
adapter and the converter are run there, in a subprocess, on real arrays.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[3]
BASE_PYTHON = Path(sys.base_prefix) / "bin" / "python3"


def _has_numpy() -> bool:
    if not BASE_PYTHON.exists():
        return False
    return subprocess.run([str(BASE_PYTHON), "-c", "import numpy"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not _has_numpy(), reason=f"no numpy for {BASE_PYTHON}")

SCRIPT = """
import json, numpy as np
from deployment.adapters.generic import GenericAdapter
g = GenericAdapter({"libraries": [{"name": "numpy", "module": "numpy", "function_filters": ["arange", "mean", "load"]}],
                    "tool_aliases": {"grid": {"target": "numpy.arange", "args": [{"param": "n"}], "params": [{"name": "n"}]}}})
out = {"grid": g.execute_tool("grid", {"n": 4}, None),
       "mean": g.execute_tool("call", {"target": "numpy.mean", "args": [[1, 2, 3, 4]]}, None)}
try:
    g.execute_tool("call", {"target": "numpy.load", "args": ["x.npy"]}, None)
except Exception as exc:
    out["load"] = type(exc).__name__
print(json.dumps(out))
"""


def test_numpy_arrays_and_scalars_through_the_generic_adapter():
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    done = subprocess.run([str(BASE_PYTHON), "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["grid"] == {"__type__": "numpy.ndarray", "dtype": "int64", "shape": [4], "data": [0, 1, 2, 3]}
    assert out["mean"] == 2.5  # a numpy scalar becomes a plain number
    assert out["load"] == "BlockedFunction"  # numpy.load unpickles: blocked even when the filters admit it
