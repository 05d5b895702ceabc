"""JSON that understands numpy, pandas, paths and datetimes, and never writes NaN."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types (NaN/inf become None)."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None  # type: ignore[assignment]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "model_dump"):
        return to_jsonable(obj.model_dump(mode="json"))
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, _dt.datetime | _dt.date):
        return None if str(obj) == "NaT" else obj.isoformat()
    if np is not None:
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return to_jsonable(float(obj))
        if isinstance(obj, np.bool_):
            return bool(obj)
        if isinstance(obj, np.ndarray):
            return to_jsonable(obj.tolist())
    try:
        import pandas as pd

        if obj is pd.NA or obj is pd.NaT:
            return None
        if isinstance(obj, pd.DataFrame):
            return to_jsonable(obj.to_dict(orient="records"))
        if isinstance(obj, pd.Series):
            return to_jsonable(obj.to_dict())
        if isinstance(obj, pd.Timestamp):
            return obj.isoformat()
    except ImportError:  # pragma: no cover
        pass
    return str(obj)


def dumps(obj: Any, **kw: Any) -> str:
    """``json.dumps`` of :func:`to_jsonable` (strict: no NaN)."""
    kw.setdefault("indent", 2)
    return json.dumps(to_jsonable(obj), allow_nan=False, **kw)


def write_json(path: Path | str, obj: Any) -> Path:
    """Write ``obj`` as JSON atomically (temp file + rename) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dumps(obj) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_json(path: Path | str, *, missing: str = "", want_object: bool = False) -> Any:
    """Parse a JSON file; a missing or malformed file is one :class:`InputFileError` naming it.

    Parameters
    ----------
    path
        The file.
    missing
        What a missing file means, added to the message (``"not a fault run directory"``).
    want_object
        Also fail when the document is not a JSON object.
    """
    from axon_lab.errors import InputFileError

    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(
            path, f"no such file ({missing})" if missing else "no such file"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(path, f"not valid JSON ({exc})") from None
    if want_object and not isinstance(doc, dict):
        raise InputFileError(path, "not a JSON object")
    return doc
