"""Per-request records: a bounded in-memory chunk, flushed to Parquet parts by a writer thread.

During a run, records go to ``<out>/records.parquet/part-NNNNNN.parquet`` (a Parquet dataset
directory, every part a complete file), so a run that is killed outright still leaves every
flushed record readable (``pd.read_parquet(out / "records.parquet")`` or :func:`read_records`).
When the run ends normally — also after Ctrl-C — the parts are consolidated into a single
``records.parquet`` file. HDR histograms are fed from the same chunks on the writer thread, off
the generator's event loop.

Columns (times in ns since the run's start; ``-1`` when the event did not happen)
-----------------------------------------------------------------------------------
``seq``              request number (scheduling order)
``shape_stage``      index of the shape stage the request was scheduled in
``conn``             connection id (``-1``: none)
``intended_ns``      when the request was meant to start (open loop: the schedule; closed loop:
                     when the VU was ready — previous end plus think time)
``sent_ns``          when its bytes were written (after any wait for a free connection)
``first_byte_ns``    first response byte
``end_ns``           response complete (or failure/timeout)
``response_ms``      ``end − intended``: what a user waiting since the intended start saw
``service_ms``       ``end − sent``: the server's time (plus network)
``ttfb_ms``          ``first byte − sent``
``lag_ms``           ``sent − intended``: schedule lag (timer lag + wait for a connection)
``connect_ms``       TCP connect time when the request opened its connection, else NaN
``status``           HTTP status, 0 without a response
``outcome``          one of :data:`OUTCOMES`
``error``            short error text, null when fine
``bytes``            response bytes (head + body)
``queued``           waited for a free connection (open loop, pool exhausted)
``late``             ``lag_ms`` above the run's ``late_ms``
``checks_passed``    / ``checks_failed``: check results for this response
``stage.<name>``     stage durations (ms), one column per name seen: from ``Server-Timing`` or
                     the response body, as the target profile says (:mod:`axon_lab.load.profiles`)
``cache.<name>``     cache outcome per cache header entry (``hit``, ``miss``, ``l1-hit``...)
``sse.<name>``       streaming responses (``stream: true``): ms from the send to the first event
                     of each type, ``sse.ttft``, ``sse.itl`` (mean inter-chunk gap),
                     ``sse.itl_max``, ``sse.chunks``, ``sse.chunks_per_s``, ``sse.errors``
``ratelimit.<name>`` rate-limit headers when the target sends them: ``limit``, ``remaining``,
                     ``reset`` (s), ``retry_after`` (s), ``policy`` (text, ``100;w=900``)

``response_ms``/``service_ms`` are set for outcomes ``ok``, ``http_error`` and ``timeout`` (a
timeout counts at the timeout: a lower bound); ``ttfb_ms`` when a first byte came.
"""

from __future__ import annotations

import io
import queue
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from axon_lab.errors import InputFileError
from axon_lab.load.hdr import Histogram

OUTCOMES: tuple[str, ...] = (
    "ok",
    "http_error",
    "timeout",
    "connect_error",
    "io_error",
    "protocol_error",
    "interrupted",
    "dropped",
)
#: Outcomes whose latency is measured (a response came, or it timed out).
TIMED_OUTCOMES: tuple[str, ...] = ("ok", "http_error", "timeout")
#: Outcomes latency statistics and thresholds are judged on: successful responses, and timeouts
#: at the timeout (a lower bound of the wait, never hidden). Error responses (4xx/5xx: a 429 is
#: fast) are reported apart, as k6 users do with ``expected_response``.
LATENCY_OUTCOMES: tuple[str, ...] = ("ok", "timeout")
#: Outcomes counted by ``http_req_failed`` (k6: status >= 400 or no response).
FAILED_OUTCOMES: tuple[str, ...] = (
    "http_error",
    "timeout",
    "connect_error",
    "io_error",
    "protocol_error",
)

RECORDS_NAME = "records.parquet"
_INT_COLS = {
    "seq": np.int64,
    "shape_stage": np.int16,
    "conn": np.int32,
    "intended_ns": np.int64,
    "sent_ns": np.int64,
    "first_byte_ns": np.int64,
    "end_ns": np.int64,
    "status": np.int16,
    "outcome": np.int8,
    "bytes": np.int64,
    "checks_passed": np.int16,
    "checks_failed": np.int16,
}
_BOOL_COLS = ("queued", "late")
#: Histogram name (metric) → records column.
HISTOGRAM_COLUMNS: dict[str, str] = {
    "http_req_duration": "response_ms",
    "http_req_service_duration": "service_ms",
    "http_req_waiting": "ttfb_ms",
    "schedule_lag": "lag_ms",
}


class _Chunk:
    """Preallocated column arrays for up to ``capacity`` records (assigned row by row)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.n = 0
        self.ints = {k: np.full(capacity, -1, dtype=t) for k, t in _INT_COLS.items()}
        self.connect_ms = np.full(capacity, np.nan)
        self.bools = {k: np.zeros(capacity, dtype=bool) for k in _BOOL_COLS}
        self.error: list[Any] = [None] * capacity
        self.stages: dict[str, np.ndarray] = {}
        self.caches: dict[str, list[Any]] = {}
        self.numbers: dict[str, np.ndarray] = {}  # full column names (``ratelimit.remaining``)
        self.texts: dict[str, list[Any]] = {}  # full column names (``ratelimit.policy``)


class RecordSink:
    """Collects records on the engine's thread; a writer thread flushes them to Parquet parts.

    Parameters
    ----------
    directory
        The run's output directory (parts go to ``directory/records.parquet/``).
    chunk_rows
        Rows per chunk (memory bound of the in-flight chunk).
    on_error
        Called with the exception if the writer fails (the run is then incomplete).
    """

    def __init__(
        self,
        directory: Path,
        *,
        chunk_rows: int = 8192,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.parts_dir = self.directory / RECORDS_NAME
        if self.parts_dir.is_file():
            self.parts_dir.unlink()
        elif self.parts_dir.is_dir():
            shutil.rmtree(self.parts_dir)
        self.parts_dir.mkdir(parents=True)
        self.chunk_rows = chunk_rows
        self.on_error = on_error
        # Import and exercise pyarrow's Parquet path now: done lazily on the writer thread
        # mid-run, the imports would hold the GIL for ~0.5 s and stall the generator's loop.
        import pyarrow.parquet as pq

        pq.write_table(chunk_table(chunk_arrays(_Chunk(1))), io.BytesIO())
        empty_frame()
        self.histograms: dict[str, Histogram] = {name: Histogram() for name in HISTOGRAM_COLUMNS}
        self.rows_written = 0
        self.error: BaseException | None = None
        self._chunk = _Chunk(chunk_rows)
        self._parts = 0
        self._queue: queue.Queue[_Chunk | None] = queue.Queue()
        self._thread = threading.Thread(target=self._writer, name="axon-load-writer", daemon=True)
        self._thread.start()

    # -- engine thread ------------------------------------------------------------------
    def add(
        self,
        seq: int,
        shape_stage: int,
        conn: int,
        intended_ns: int,
        sent_ns: int,
        first_ns: int,
        end_ns: int,
        connect_ns: int,
        status: int,
        outcome: int,
        error: str | None,
        nbytes: int,
        queued: bool,
        late: bool,
        checks_passed: int,
        checks_failed: int,
        stages: dict[str, float] | None,
        caches: dict[str, str] | None,
        numbers: dict[str, float] | None = None,
        texts: dict[str, str] | None = None,
    ) -> None:
        """Append one record (times in ns since the run start, ``-1`` if absent)."""
        c = self._chunk
        i = c.n
        ints = c.ints
        ints["seq"][i] = seq
        ints["shape_stage"][i] = shape_stage
        ints["conn"][i] = conn
        ints["intended_ns"][i] = intended_ns
        ints["sent_ns"][i] = sent_ns
        ints["first_byte_ns"][i] = first_ns
        ints["end_ns"][i] = end_ns
        ints["status"][i] = status
        ints["outcome"][i] = outcome
        ints["bytes"][i] = nbytes
        ints["checks_passed"][i] = checks_passed
        ints["checks_failed"][i] = checks_failed
        if connect_ns >= 0:
            c.connect_ms[i] = connect_ns / 1e6
        if queued:
            c.bools["queued"][i] = True
        if late:
            c.bools["late"][i] = True
        if error is not None:
            c.error[i] = error
        if stages:
            for name, ms in stages.items():
                col = c.stages.get(name)
                if col is None:
                    col = c.stages[name] = np.full(c.capacity, np.nan)
                col[i] = ms
        if caches:
            for name, val in caches.items():
                ccol = c.caches.get(name)
                if ccol is None:
                    ccol = c.caches[name] = [None] * c.capacity
                ccol[i] = val
        if numbers:
            for name, x in numbers.items():
                ncol = c.numbers.get(name)
                if ncol is None:
                    ncol = c.numbers[name] = np.full(c.capacity, np.nan)
                ncol[i] = x
        if texts:
            for name, val in texts.items():
                tcol = c.texts.get(name)
                if tcol is None:
                    tcol = c.texts[name] = [None] * c.capacity
                tcol[i] = val
        c.n = i + 1
        if c.n >= c.capacity:
            self.flush()

    def flush(self) -> None:
        """Hand the current chunk to the writer (cheap; called when full and on a timer)."""
        if self._chunk.n:
            self._queue.put(self._chunk)
            self._chunk = _Chunk(self.chunk_rows)

    def close(self):  # -> pandas.DataFrame
        """Flush, stop the writer, consolidate the parts into one file; return all records."""
        self.flush()
        self._queue.put(None)
        self._thread.join()
        # Read the parts back rather than keeping every chunk in memory during the run.
        frame = read_records(self.parts_dir)
        if self.error is None:
            tmp = self.directory / (RECORDS_NAME + ".tmp")
            frame.to_parquet(tmp, index=False)
            shutil.rmtree(self.parts_dir)
            tmp.replace(self.directory / RECORDS_NAME)
        return frame

    # -- writer thread -------------------------------------------------------------------
    def _writer(self) -> None:
        import pyarrow.parquet as pq

        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            if self.error is not None:
                continue
            try:
                data = chunk_arrays(chunk)
                for name, col in HISTOGRAM_COLUMNS.items():
                    self.histograms[name].record_ms(data[col])
                for col, values in data.items():
                    if col.startswith(("stage.", "sse.")):
                        self.histograms.setdefault(col, Histogram()).record_ms(values)
                table = chunk_table(data)
                self._parts += 1
                # Write-then-rename: a part is complete or absent, even if the process is killed.
                tmp = self.parts_dir / f".part-{self._parts:06d}.tmp"
                pq.write_table(table, tmp)
                tmp.replace(self.parts_dir / f"part-{self._parts:06d}.parquet")
                self.rows_written += table.num_rows
            except BaseException as exc:  # disk full, bad permissions...: keep the run going
                self.error = exc
                if self.on_error is not None:
                    self.on_error(exc)


def chunk_arrays(c: _Chunk) -> dict[str, Any]:
    """A chunk's columns as NumPy arrays (plus lists for the string columns), derived ms included."""
    n = c.n
    ints = {k: v[:n] for k, v in c.ints.items()}
    outcome = ints["outcome"]
    intended, sent, first, end = (
        ints[k] for k in ("intended_ns", "sent_ns", "first_byte_ns", "end_ns")
    )
    timed = (outcome <= 2) & (sent >= 0) & (end >= 0)  # ok, http_error, timeout
    has_first = (outcome <= 1) & (first >= 0) & (sent >= 0)
    data: dict[str, Any] = {
        "seq": ints["seq"],
        "shape_stage": ints["shape_stage"],
        "conn": ints["conn"],
        "intended_ns": intended,
        "sent_ns": sent,
        "first_byte_ns": first,
        "end_ns": end,
        "response_ms": np.where(timed, (end - intended) / 1e6, np.nan),
        "service_ms": np.where(timed, (end - sent) / 1e6, np.nan),
        "ttfb_ms": np.where(has_first, (first - sent) / 1e6, np.nan),
        "lag_ms": np.where(sent >= 0, (sent - intended) / 1e6, np.nan),
        "connect_ms": c.connect_ms[:n],
        "status": ints["status"],
        "outcome": outcome,
        "error": c.error[:n],
        "bytes": ints["bytes"],
        "queued": c.bools["queued"][:n],
        "late": c.bools["late"][:n],
        "checks_passed": ints["checks_passed"],
        "checks_failed": ints["checks_failed"],
    }
    for name, col in sorted(c.stages.items()):
        data[f"stage.{name}"] = col[:n]
    for name, ccol in sorted(c.caches.items()):
        data[f"cache.{name}"] = ccol[:n]
    for name, ncol in sorted(c.numbers.items()):
        data[name] = ncol[:n]
    for name, tcol in sorted(c.texts.items()):
        data[name] = tcol[:n]
    return data


def chunk_table(data: dict[str, Any]):  # -> pyarrow.Table
    """Arrow table of :func:`chunk_arrays` output.

    Built straight from the NumPy buffers (no pandas on the way), so the writer thread holds the
    GIL only briefly; Parquet encoding then runs in Arrow's C++ with the GIL released.
    """
    import pyarrow as pa

    cols = {}
    for k, v in data.items():
        if k == "outcome":
            cols[k] = pa.DictionaryArray.from_arrays(
                pa.array(v, pa.int8()), pa.array(OUTCOMES, pa.string())
            )
        elif k == "error" or isinstance(v, list):  # error, cache.*, texts: strings
            cols[k] = pa.array(v, pa.string())
        else:
            cols[k] = pa.array(v)
    return pa.table(cols)


def empty_frame():  # -> pandas.DataFrame
    """A records frame with the fixed columns and no rows."""
    import pandas as pd

    data = chunk_arrays(_Chunk(0))
    frame = pd.DataFrame({k: v for k, v in data.items() if k not in ("outcome", "error")})
    frame["outcome"] = pd.Categorical.from_codes(data["outcome"], categories=list(OUTCOMES))
    frame["error"] = pd.array([], dtype="string")
    return frame[list(data)]


def normalize(frame, *, sort: bool = True):  # -> pandas.DataFrame
    """Fixed column order and dtypes (``outcome`` categorical over all :data:`OUTCOMES`, text
    columns ``string``), sorted by ``seq``.
    """
    import pandas as pd

    empty = empty_frame()
    fixed = list(empty.columns)
    extra = sorted(c for c in frame.columns if c not in fixed)
    for col in fixed:
        if col not in frame.columns:
            frame[col] = pd.Series(dtype=empty[col].dtype, index=frame.index)
    frame = frame[fixed + extra].copy()
    oc = frame["outcome"]
    if not isinstance(oc.dtype, pd.CategoricalDtype) or list(oc.cat.categories) != list(OUTCOMES):
        frame["outcome"] = pd.Categorical(oc.astype("string"), categories=list(OUTCOMES))
    for col in ["error", *extra]:
        text = col == "error" or col.startswith("cache.") or col == "ratelimit.policy"
        if text and frame[col].dtype != "string":
            frame[col] = frame[col].astype("string")
    if sort:
        frame = frame.sort_values("seq", kind="stable").reset_index(drop=True)
    return frame


def read_records(path: Path | str):  # -> pandas.DataFrame
    """Records of a run: ``path`` is the run directory or its ``records.parquet`` (file or parts).

    A run that was killed leaves a directory of parts; they are read one by one and unified
    (later parts may carry ``stage.*``/``cache.*`` columns the first did not have).
    """
    import pandas as pd

    p = Path(path)
    if p.is_dir() and not p.name.endswith(".parquet"):
        p = p / RECORDS_NAME
    if p.is_file():
        return normalize(pd.read_parquet(p))
    if p.is_dir():
        parts = sorted(p.glob("part-*.parquet"))
        frames = []
        for part in parts:
            try:
                frames.append(pd.read_parquet(part))
            except Exception:  # a part cut short by a kill: skip it, keep the rest
                continue
        return normalize(
            pd.concat(frames, ignore_index=True, sort=False) if frames else empty_frame()
        )
    raise InputFileError(p, "no records (expected records.parquet)")
