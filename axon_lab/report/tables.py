"""Tables formatted for people: what every notebook shows instead of a raw ``DataFrame``.

:func:`table` turns a frame into a :class:`Table` that displays (in JupyterLab and in the HTML
report) with units in the headers, sensible precision, ``—`` for missing values, no index
column, verdict words next to their symbols, ``yes``/``no`` for booleans and wrapping cells, so
a wide table fits the page. The frame itself is untouched (``Table.frame``); sidecars keep the
raw numbers.

Rules (one place, unit-tested):

* a column's unit comes from ``units=`` or its name: ``*_ms`` → ms, ``*_s`` → s, ``*_pct`` → %,
  ``rps``/``qps*`` → req/s, ``*_mb`` → MB, ``*_kb`` → KB, ``*_bytes`` → B; a rate or share
  (``*_rate``, ``*_share``, ``share_*``, ``*_ratio``, ``*_used``) is shown as a percentage;
* numbers: integers with thousands separators; other numbers with 3 significant digits
  (``809.559266`` → ``810``, ``12.345`` → ``12.3``, ``0.01234`` → ``0.0123``), at least
  ``1,235`` digits above 1,000, ``0`` for zero;
* missing (``None``, ``NaN``, ``NaT``, empty lists) → ``—``;
* ``status`` values (pass, warn, fail, unknown, info) get their symbol, and a ``verdict``
  column of bare symbols gets the word (``✅ pass``);
* a list or dict cell is shown compactly (``a, b``; ``k: v``).
"""

from __future__ import annotations

import html
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from axon_lab.goals import SYMBOLS

MISSING = "—"
#: Suffix of a column name → its unit (checked in order; the suffix is dropped from the header).
UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_ms", "ms"),
    ("_us", "µs"),
    ("_s", "s"),
    ("_pct", "%"),
    ("_mb", "MB"),
    ("_kb", "KB"),
    ("_bytes", "B"),
    ("_rps", "req/s"),
)
#: Column names that are per-second rates (kept whole in the header).
RATE_NAMES = {"rps": "req/s", "qps": "queries/s", "qps_1": "queries/s", "qps_n": "queries/s"}
#: Suffixes of columns holding a fraction in [0, 1], shown as a percentage.
SHARE_SUFFIXES = ("_rate", "_share", "_ratio", "_used")
_WORDS = {v: k for k, v in SYMBOLS.items()}
#: Names that end like a unit but are not one (Zipf's exponent ``s``).
NOT_UNITS = {"zipf_s"}
_HEX40 = re.compile(r"[0-9a-f]{40}")
_ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)")


def is_missing(value: Any) -> bool:
    """``None``, a float NaN, pandas' NA/NaT, or an empty container."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, list | tuple | dict | set) and not value:
        return True
    try:
        import pandas as pd

        return bool(value is pd.NA or value is pd.NaT)
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False


def number(value: Any, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits (thousands separated; integers exact)."""
    if is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    v = float(value)
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0:
        return "0"
    if v.is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    magnitude = math.floor(math.log10(abs(v)))
    decimals = max(0, digits - 1 - magnitude)
    if decimals == 0:
        return f"{v:,.0f}"
    text = f"{v:,.{decimals}f}".rstrip("0").rstrip(".")
    return text


def percent(value: Any, digits: int = 3) -> str:
    """A fraction as a percentage: ``0.0123`` → ``1.23%``, ``0`` → ``0%``, ``1`` → ``100%``."""
    if is_missing(value):
        return MISSING
    v = float(value) * 100
    if v == 0:
        return "0%"
    if abs(v) >= 99.95 and abs(v) < 100.05 and v != 100:
        return f"{v:.2f}%"
    return f"{number(v, digits)}%"


def unit_of(column: str, units: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``(label, unit)`` of a column: ``p95_ms`` → ``("p95", "ms")``, ``error_rate`` → ``("error
    rate", "%")``; ``units`` overrides (``{"latency": "ms"}``).
    """
    name = str(column)
    if units and name in units:
        return name.replace("_", " "), units[name]
    low = name.lower()
    if low in NOT_UNITS:
        return name.replace("_", " "), ""
    if low in RATE_NAMES:
        return name, RATE_NAMES[low]
    if low.endswith(SHARE_SUFFIXES) or low.startswith("share_") or low in ("share", "ratio"):
        return name.replace("_", " "), "%"
    for suffix, unit in UNIT_SUFFIXES:
        if low.endswith(suffix) and len(low) > len(suffix):
            return name[: -len(suffix)].replace("_", " "), unit
    return name.replace("_", " "), ""


def header(column: str, units: Mapping[str, str] | None = None) -> str:
    """The column's header with its unit: ``p95_ms`` → ``p95 (ms)``."""
    label, unit = unit_of(column, units)
    return f"{label} ({unit})" if unit else label


def cell(value: Any, unit: str = "", column: str = "") -> str:
    """One value as text, by its unit (``%`` columns hold fractions) and its column."""
    if is_missing(value):
        return MISSING
    col = column.lower()
    if col == "status" and isinstance(value, str) and value in SYMBOLS:
        return f"{SYMBOLS[value]} {value}"
    if col == "verdict" and isinstance(value, str) and value in _WORDS:
        return f"{value} {_WORDS[value]}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if col == "commit" and isinstance(value, str) and _HEX40.fullmatch(value):
        return value[:12]
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        if unit == "%" and not col.endswith("_pct"):
            return percent(value)
        return number(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {cell(v)}" for k, v in value.items()) or MISSING
    if isinstance(value, list | tuple | set):
        return ", ".join(cell(v) for v in value) or MISSING
    try:  # numpy arrays and other sequences
        import numpy as np

        if isinstance(value, np.ndarray):
            return ", ".join(cell(v) for v in value.tolist()) or MISSING
    except ImportError:  # pragma: no cover
        pass
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M:%S")).removesuffix(" 00:00:00")
    if isinstance(value, str) and _ISO_UTC.fullmatch(value):
        return value[:19].replace("T", " ")
    return str(value)


_CSS = (
    "<style>"
    ".axon-table-wrap{overflow-x:auto;max-width:100%}"
    ".jp-RenderedHTMLCommon table.axon-table,table.axon-table{border-collapse:collapse;"
    "table-layout:auto;margin:.3em 0 .8em;font-size:12px;max-width:none}"
    "table.axon-table th,table.axon-table td{border-bottom:1px solid #ddd;padding:.25em .5em;"
    "vertical-align:top;white-space:normal;overflow-wrap:break-word;word-break:normal;"
    "text-align:left!important;max-width:28em}"
    "table.axon-table th{background:#f6f6f6;font-weight:600}"
    "table.axon-table td.num{text-align:right!important;white-space:nowrap;"
    "font-variant-numeric:tabular-nums}"
    "table.axon-table caption{caption-side:top;text-align:left;color:#555;padding-bottom:.2em}"
    "</style>"
)


@dataclass
class Table:
    """A frame formatted for people; ``frame`` is the raw data, ``text`` the formatted cells.

    Displays as HTML in notebooks (and in the HTML report) and as aligned text elsewhere.
    """

    frame: Any
    headers: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    caption: str = ""
    notes: list[str] = field(default_factory=list)
    #: What an empty table says instead of rows.
    empty: str = "none"

    def to_html(self) -> str:
        """The table as a self-contained HTML fragment (wraps; scrolls sideways if it must)."""
        if not self.headers:
            return "".join(f"<p>{html.escape(n)}</p>" for n in self.notes or [self.empty])
        cap = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join(
            "<tr>"
            + "".join(
                f"<td class='num'>{html.escape(v)}</td>" if num else f"<td>{html.escape(v)}</td>"
                for v, num in zip(row, self.numeric, strict=True)
            )
            + "</tr>"
            for row in self.rows
        )
        if not self.rows:
            body = (
                f"<tr><td colspan='{max(len(self.headers), 1)}'>{html.escape(self.empty)}</td></tr>"
            )
        notes = "".join(f"<p><small>{html.escape(n)}</small></p>" for n in self.notes)
        return (
            f"{_CSS}<div class='axon-table-wrap'><table class='axon-table'>{cap}"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{notes}"
        )

    def _repr_html_(self) -> str:
        return self.to_html()

    def to_text(self) -> str:
        """The table as aligned plain text."""
        if not self.headers:
            return "\n".join(
                [*([self.caption] if self.caption else []), *(self.notes or [self.empty])]
            )
        cols = list(zip(self.headers, *self.rows, strict=True)) if self.headers else []
        widths = [max(len(v) for v in c) for c in cols]
        lines = [self.caption] if self.caption else []
        lines.append("  ".join(h.ljust(w) for h, w in zip(self.headers, widths, strict=True)))
        for row in self.rows:
            lines.append(
                "  ".join(
                    v.rjust(w) if num else v.ljust(w)
                    for v, w, num in zip(row, widths, self.numeric, strict=True)
                )
            )
        lines.extend(self.notes)
        return "\n".join(line.rstrip() for line in lines)

    def __repr__(self) -> str:
        return self.to_text()


def _numeric(values: Sequence[Any]) -> bool:
    seen = False
    for v in values:
        if is_missing(v):
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Number):
            return False
        seen = True
    return seen


def table(
    data: Any,
    *,
    units: Mapping[str, str] | None = None,
    columns: Sequence[str] | None = None,
    caption: str = "",
    index: bool | None = None,
    max_rows: int | None = 200,
    empty: str = "none",
) -> Table:
    """``data`` (a DataFrame, a list of dicts, a dict, or a Series) formatted for people.

    Parameters
    ----------
    units
        ``{column: unit}`` where the name does not say it (``%`` means the column holds
        fractions); merged over the frame's ``attrs["units"]``, which analysis code may set.
    columns
        The columns to show, in order (default: all; a ``status`` column beside a ``verdict``
        column is folded into it).
    caption
        One line above the table (what it shows, what to look for); default: the frame's
        ``attrs["caption"]``.
    index
        Keep the index as the first column. Default: only when it carries labels (not 0..n).
    max_rows
        Show at most this many rows (a note says how many were left out).
    empty
        What the table says when there is nothing to show (e.g. "no warnings").
    """
    import dataclasses

    import pandas as pd

    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = dataclasses.asdict(data)
    elif hasattr(data, "to_dict") and not isinstance(data, pd.DataFrame | pd.Series):
        data = data.to_dict()
    if isinstance(data, pd.Series):
        frame = data.to_frame(name=data.name if data.name is not None else "value")
        index = True if index is None else index
    elif isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, Mapping):
        frame = pd.DataFrame({"name": list(data.keys()), "value": list(data.values())})
    elif data is None or isinstance(data, str | bytes | numbers.Number):
        frame = pd.DataFrame({"value": [data]} if data is not None else {"value": []})
    else:
        items = list(data)
        if not items:
            return Table(pd.DataFrame(), [], [], [], caption=caption, empty=empty)
        if all(isinstance(i, Mapping) for i in items):
            frame = pd.DataFrame(items)
        else:
            frame = pd.DataFrame(
                {"note" if all(isinstance(i, str) for i in items) else "value": items}
            )
    units = {**(frame.attrs.get("units") or {}), **(units or {})}
    caption = caption or str(frame.attrs.get("caption") or "")
    shown = frame
    if index is None:
        index = not (
            isinstance(shown.index, pd.RangeIndex)
            and shown.index.start == 0
            and shown.index.step == 1
        )
    if index:
        shown = shown.reset_index()
    original = {str(c): c for c in shown.columns}
    cols = [str(c) for c in (columns or shown.columns)]
    if columns is None and "verdict" in cols and "status" in cols:
        verdicts = shown[original["verdict"]].dropna()
        if len(verdicts) and verdicts.isin(list(_WORDS)).all():
            cols.remove("status")  # the verdict column says it with the word
    notes: list[str] = []
    if max_rows is not None and len(shown) > max_rows:
        notes.append(f"first {max_rows:,} of {len(shown):,} rows shown")
        shown = shown.head(max_rows)
    unit_list = [unit_of(c, units)[1] for c in cols]
    headers = [header(c, units) for c in cols]
    rows: list[list[str]] = []
    numeric: list[bool] = []
    missing = [c for c in cols if c not in original]
    if missing:
        raise KeyError(f"no column {missing[0]!r}; has {list(original)}")
    by_col = {c: shown[original[c]].tolist() for c in cols}
    for c in cols:
        numeric.append(_numeric(by_col[c]))
    by_name = cols == ["name", "value"]  # a mapping: each row's unit comes from its name
    for i in range(len(shown)):
        if by_name:
            name = str(by_col["name"][i])
            label, unit = unit_of(name, units)
            value = cell(by_col["value"][i], unit, name)
            if value != MISSING and unit and (unit != "%" or name.lower().endswith("_pct")):
                value = f"{value}{'' if unit == '%' else ' '}{unit}"
            rows.append([label, value])
            continue
        rows.append([cell(by_col[c][i], u, c) for c, u in zip(cols, unit_list, strict=True)])
    return Table(frame, headers, rows, numeric, caption=caption, notes=notes, empty=empty)
