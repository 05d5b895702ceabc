"""Results sidecars: each notebook ends by recording its results as JSON (+ Parquet) with provenance.

CI and comparisons read sidecars, never scraped cell text. A sidecar is
``<out_dir>/<name>.results.json`` with the fixed top-level schema below; frames go next to it as
``<name>.<frame>.parquet``.

Schema (``axon_lab.results/1``)::

    {"schema": "axon_lab.results/1", "name": str, "status": "ok" | "failed",
     "verdict": {"status": "pass"|"warn"|"fail"|"info", "summary": str} | null,
     "provenance": {...axon_lab.provenance.collect()...},
     "results": {...}, "frames": {frame_name: file_name}, "error": str | null}
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from axon_lab import jsonutil, provenance
from axon_lab.errors import InputFileError
from axon_lab.redact import redact

SCHEMA = "axon_lab.results/1"
#: Set by ``axon-lab run`` so a notebook's sidecar lands beside its executed copy.
OUT_DIR_ENV = "AXON_LAB_OUT_DIR"


class RecordedPath(type(Path())):  # type: ignore[misc]
    """The sidecar's path, shown in a notebook as what was recorded, not where (a shared
    report never shows a local path).
    """

    def note(self) -> str:
        return f"Results recorded as {self.name} (sidecar with provenance, for CI and comparisons)."

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.note())

    def _repr_html_(self) -> str:
        return f"<p><small>{self.note()}</small></p>"


def default_out_dir(name: str) -> Path:
    """Where a sidecar goes: ``$AXON_LAB_OUT_DIR`` if set, else ``reports/<name>/``."""
    env = os.environ.get(OUT_DIR_ENV)
    return Path(env) if env else Path("reports") / name


def parameter_values(namespace: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The notebook's parameters with the values this run uses, for ``record(parameters=...)``.

    The names are those the ``parameters`` cell declares: its ``name: type = default`` lines are
    the notebook's only annotated assignments, so IPython keeps exactly them in the namespace's
    ``__annotations__``; the values are the current ones (papermill's injected cell assigns after
    the defaults). So a notebook never types its parameters a second time.

    Parameters
    ----------
    namespace
        Where to look (default: the caller's globals, i.e. the notebook's namespace).

    Returns
    -------
    dict
        ``{name: value}`` in declaration order; empty outside a notebook with a parameters cell.
    """
    ns = sys._getframe(1).f_globals if namespace is None else namespace
    declared = ns.get("__annotations__") or {}
    return {name: ns[name] for name in declared if name in ns}


def _redact_frame(frame: Any) -> Any:
    """A copy of ``frame`` whose text cells are redacted (the caller's frame is left as is)."""
    import pandas as pd

    text_cols = [
        c
        for c in frame.columns
        if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c].dtype)
    ]
    if not text_cols:
        return frame
    out = frame.copy()
    for c in text_cols:
        out[c] = out[c].map(
            lambda v: redact(v) if isinstance(v, str | Mapping | list | tuple) else v
        )
    return out


def record(
    name: str,
    results: Mapping[str, Any],
    *,
    parameters: Mapping[str, Any] | None = None,
    frames: Mapping[str, Any] | None = None,
    verdict: Mapping[str, Any] | None = None,
    status: str = "ok",
    error: str | None = None,
    out_dir: Path | str | None = None,
) -> Path:
    """Write the results sidecar of ``name`` and return its path.

    Parameters
    ----------
    name
        Short identifier of the experiment or notebook (``load_baseline``...).
    results
        JSON-able results (numpy/pandas are converted; secrets redacted).
    parameters
        The parameters the run used (recorded in provenance, redacted).
    frames
        Optional ``{name: DataFrame}`` written as Parquet beside the JSON (text cells redacted).
    verdict
        ``{"status": "pass"|"warn"|"fail"|"info", "summary": "one line"}`` for report indexes.
    """
    out = Path(out_dir) if out_dir is not None else default_out_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    frame_files: dict[str, str] = {}
    for fname, frame in (frames or {}).items():
        if frame is None:
            continue
        fpath = out / f"{name}.{fname}.parquet"
        _redact_frame(frame).to_parquet(fpath, index=False)
        frame_files[fname] = fpath.name
    doc = {
        "schema": SCHEMA,
        "name": name,
        "status": status,
        "verdict": dict(verdict) if verdict else None,
        "provenance": provenance.collect(parameters),
        "results": redact(jsonutil.to_jsonable(results)),
        "frames": frame_files,
        "error": error,
    }
    return RecordedPath(jsonutil.write_json(out / f"{name}.results.json", doc))


def load(path: Path | str) -> dict[str, Any]:
    """Read a sidecar, checking its schema; raises :class:`InputFileError` naming the problem."""
    path = Path(path)
    doc = jsonutil.read_json(path)
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise InputFileError(path, f"not an axon_lab results sidecar (schema != {SCHEMA!r})")
    return doc


def load_frame(sidecar_path: Path | str, frame: str):  # -> pandas.DataFrame
    """Load one Parquet frame listed in a sidecar."""
    import pandas as pd

    path = Path(sidecar_path)
    doc = load(path)
    try:
        return pd.read_parquet(path.parent / doc["frames"][frame])
    except KeyError:
        raise InputFileError(path, f"no frame {frame!r}; has {sorted(doc['frames'])}") from None
