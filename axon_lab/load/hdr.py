"""HDR histograms (µs, 3 significant digits): bounded memory, vectorised recording, mergeable, portable.

Wraps ``hdrh.histogram.HdrHistogram`` so the interchange format is HdrHistogram's own
(compressed, base64; readable by the Java/C/Go/JS HdrHistogram libraries and the online
plotter), and adds :meth:`Histogram.record_many`, which records a NumPy array in one pass
(the pure-Python ``record_value`` costs ~2 µs per value, too much on a load generator's path).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram

from axon_lab.errors import InputFileError

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_DIGITS = 3
SCHEMA = "axon_lab.hdr/1"


class Histogram:
    """An HDR histogram of durations in microseconds (1 µs .. 1 h, 3 significant digits).

    Values below 1 µs are recorded as 1 µs and values above an hour as an hour (counted in
    :attr:`clamped`), so nothing is silently lost.
    """

    def __init__(self, hdr: HdrHistogram | None = None) -> None:
        self.hdr = hdr or HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        self._counts = np.ctypeslib.as_array(self.hdr.counts)
        self.clamped = 0

    # -- recording ----------------------------------------------------------------------
    def record_ms(self, values_ms: np.ndarray | Iterable[float]) -> None:
        """Record durations given in milliseconds (NaN values are skipped)."""
        arr = np.asarray(values_ms, dtype=float)
        arr = arr[np.isfinite(arr)]
        self.record_many(np.rint(arr * 1000.0).astype(np.int64))

    def record_many(self, values_us: np.ndarray) -> None:
        """Record integer microsecond values, vectorised (same buckets as ``record_value``)."""
        v = np.asarray(values_us, dtype=np.int64)
        if v.size == 0:
            return
        low = v < LOWEST_US
        high = v > HIGHEST_US
        self.clamped += int(low.sum() + high.sum())
        v = np.clip(v, LOWEST_US, HIGHEST_US)
        h = self.hdr
        # bucket index = bit_length(v | sub_bucket_mask) - unit_magnitude - (half_mag + 1)
        masked = (v | h.sub_bucket_mask).astype(np.float64)  # exact: values < 2**53
        _, exp = np.frexp(masked)  # masked = m * 2**exp with m in [0.5, 1): exp = bit_length
        bucket = exp.astype(np.int64) - h.unit_magnitude - (h.sub_bucket_half_count_magnitude + 1)
        sub = v >> (bucket + h.unit_magnitude)
        idx = ((bucket + 1) << h.sub_bucket_half_count_magnitude) + (sub - h.sub_bucket_half_count)
        self._counts += np.bincount(idx, minlength=h.counts_len)[: h.counts_len].astype(np.uint64)
        h.total_count += int(v.size)
        h.min_value = min(h.min_value, int(v.min()))
        h.max_value = max(h.max_value, int(v.max()))

    def merge(self, other: Histogram) -> Histogram:
        """Add ``other``'s counts into this histogram (in place) and return self."""
        if other.count:
            self.hdr.add(other.hdr)
        self.clamped += other.clamped
        return self

    # -- reading ------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Number of recorded values."""
        return int(self.hdr.get_total_count())

    def percentile_ms(self, q: float) -> float:
        """Value at percentile ``q`` (0–100), in ms (HDR: smallest bucket value ≥ q% of counts)."""
        if not self.count:
            return float("nan")
        return self.hdr.get_value_at_percentile(q) / 1000.0

    def summary_ms(self) -> dict[str, float]:
        """count, min, max, mean, stddev, p50, p90, p95, p99, p999 (ms) from the histogram."""
        if not self.count:
            return {"count": 0}
        h = self.hdr
        return {
            "count": self.count,
            "min": h.get_min_value() / 1000.0,
            "max": h.get_max_value() / 1000.0,
            **self._mean_stddev_ms(),
            **{
                k: h.get_value_at_percentile(q) / 1000.0
                for k, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 99.9))
            },
        }

    def _mean_stddev_ms(self) -> dict[str, float]:
        """HdrHistogram's mean and stddev (bucket midpoints), over the non-empty buckets only.

        ``HdrHistogram.get_mean_value``/``get_stddev`` walk every one of the ~23,500 buckets in
        Python (~80 ms each); the same sums over the non-empty ones are the same numbers.
        """
        h = self.hdr
        idx = np.flatnonzero(self._counts)
        counts = self._counts[idx].astype(np.float64)
        mids = np.array(
            [h._hdr_median_equiv_value(h.get_value_from_index(int(i))) for i in idx],
            dtype=np.float64,
        )
        total = counts.sum()
        mean = float((counts * mids).sum() / total)
        std = math.sqrt(float((counts * (mids - mean) ** 2).sum() / total))
        return {"mean": mean / 1000.0, "stddev": std / 1000.0}

    def encode(self) -> str:
        """HdrHistogram's compressed base64 encoding (V2, the cross-language format)."""
        return self.hdr.encode().decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Histogram:
        """Inverse of :meth:`encode`."""
        return cls(HdrHistogram.decode(text))

    def percentile_distribution(self) -> str:
        """The ``.hgrm`` text table (wrk2 ``--latency`` style, values in ms)."""
        buf = io.BytesIO()
        if self.count:
            self.hdr.output_percentile_distribution(buf, 1000.0)
        return buf.getvalue().decode("ascii")


def write_histograms(path: Path | str, histograms: Mapping[str, Histogram]) -> Path:
    """Write ``{name: histogram}`` as JSON (encoded histograms, unit µs); returns the path."""
    from axon_lab import jsonutil

    doc = {
        "schema": SCHEMA,
        "unit": "us",
        "lowest": LOWEST_US,
        "highest": HIGHEST_US,
        "significant_digits": SIGNIFICANT_DIGITS,
        "histograms": {k: h.encode() for k, h in histograms.items() if h.count},
        "counts": {k: h.count for k, h in histograms.items()},
    }
    return jsonutil.write_json(path, doc)


def read_histograms(path: Path | str) -> dict[str, Histogram]:
    """Read a file written by :func:`write_histograms`."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputFileError(path, f"cannot read histograms ({exc})") from None
    if doc.get("schema") != SCHEMA:
        raise InputFileError(path, f"not an axon_lab histogram file (schema != {SCHEMA!r})")
    return {k: Histogram.decode(v) for k, v in doc["histograms"].items()}


def merge_histograms(parts: Iterable[Mapping[str, Histogram]]) -> dict[str, Histogram]:
    """Merge per-worker ``{name: histogram}`` mappings name by name (new objects)."""
    out: dict[str, Histogram] = {}
    for part in parts:
        for name, h in part.items():
            out.setdefault(name, Histogram()).merge(h)
    return out
