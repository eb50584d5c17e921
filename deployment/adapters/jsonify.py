"""Tool results as JSON data, with non-JSON values tagged by ``__type__``.

Shared by the generic adapter and the equivalence sandbox so that both sides
of a comparison are converted the same way.  Standard library only: numpy and
pandas values are recognised only when those libraries are already imported
(a result cannot be a numpy array unless numpy is loaded).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import fractions
import json
import math
import sys
from typing import Any

MAX_DEPTH = 64


def to_json(value: Any, _depth: int = 0) -> Any:
    """``value`` as JSON-serialisable data; non-JSON types become ``{"__type__": ..., ...}``."""
    if _depth > MAX_DEPTH:
        raise ValueError(f"result is nested deeper than {MAX_DEPTH} levels")
    d = _depth + 1
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return {"__type__": "float", "value": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, (list, tuple)):
        return [to_json(v, d) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: to_json(v, d) for k, v in value.items()}
        return {"__type__": "dict", "items": [[to_json(k, d), to_json(v, d)] for k, v in value.items()]}
    if isinstance(value, (set, frozenset)):
        items = [to_json(v, d) for v in value]
        return {"__type__": "set", "items": sorted(items, key=lambda x: json.dumps(x, sort_keys=True))}
    if isinstance(value, (bytes, bytearray)):
        return {"__type__": "bytes", "base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, complex):
        return {"__type__": "complex", "real": to_json(value.real, d), "imag": to_json(value.imag, d)}
    if isinstance(value, (decimal.Decimal, fractions.Fraction)):
        return {"__type__": f"{type(value).__module__}.{type(value).__name__}", "value": str(value)}
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return {"__type__": f"datetime.{type(value).__name__}", "value": value.isoformat()}
    tagged = _numpy_or_pandas(value, d)
    if tagged is not None:
        return tagged
    kind = type(value)
    return {"__type__": f"{kind.__module__}.{kind.__qualname__}", "repr": repr(value)[:200]}


def _numpy_or_pandas(value: Any, d: int) -> Any:
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.ndarray):
            return {"__type__": "numpy.ndarray", "dtype": str(value.dtype), "shape": list(value.shape),
                    "data": to_json(value.tolist(), d)}
        if isinstance(value, np.generic):
            return to_json(value.item(), d)
    pd = sys.modules.get("pandas")
    if pd is not None:
        if isinstance(value, pd.DataFrame):
            split = value.to_dict(orient="split")
            return {"__type__": "pandas.DataFrame", "columns": to_json(split["columns"], d),
                    "index": to_json(split["index"], d), "data": to_json(split["data"], d)}
        if isinstance(value, pd.Series):
            return {"__type__": "pandas.Series", "name": to_json(value.name, d),
                    "index": to_json(list(value.index), d), "data": to_json(value.tolist(), d)}
    return None
