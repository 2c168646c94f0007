"""Result tables as the API sends them (CSV, JSON and Parquet, encodings cached by
content) and as the pages show them (readable cells, units in the headers).

A stored table never changes: its bytes are named by their SHA-256, so an encoding made
once serves every later read of the same bytes (in any analysis), and a read costs a
lookup instead of decoding Parquet and encoding again.

On a page every table goes through :func:`cell` and :func:`readable`: a missing value is
"—" (never ``NaT``, ``None`` or ``nan``), a flag is yes/no (never ``False``), a list is
text (never ``['…']``), and a header names the column's unit where the table says it
(``lloq (pg/mL)``, ``onset_hours (h)``) (issue 15, item 1).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cytosafe.store import decode_table

__all__ = [
    "MISSING",
    "PARQUET",
    "EncodedTables",
    "cell",
    "column_units",
    "encode_table",
    "readable",
    "records",
    "single_unit",
]

#: The media type of a Parquet table.
PARQUET = "application/vnd.apache.parquet"


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON records (ISO dates; anything else as text)."""
    return json.loads(frame.to_json(orient="records", date_format="iso", default_handler=str))


class EncodedTables:
    """Result tables already encoded as CSV or JSON, least recently used first out."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, sha256: str, fmt: str) -> bytes | None:
        with self._lock:
            value = self._items.get((sha256, fmt))
            if value is not None:
                self._items.move_to_end((sha256, fmt))
            return value

    def put(self, sha256: str, fmt: str, value: bytes) -> None:
        if len(value) > self.max_bytes // 4:
            return  # a very large table is encoded on each read rather than crowd out the rest
        with self._lock:
            if (sha256, fmt) in self._items:
                return
            self._items[(sha256, fmt)] = value
            self._size += len(value)
            while self._size > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)


def encode_table(content: bytes, fmt: str) -> bytes:
    """Stored Parquet ``content`` as ``fmt``: ``"json"`` (records) or ``"csv"``."""
    frame = decode_table(content)
    if fmt == "json":
        text = frame.to_json(orient="records", date_format="iso", default_handler=str)
    else:
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, lineterminator="\n")
        text = buffer.getvalue()
    return text.encode("utf-8")


# --- tables on a page ---------------------------------------------------------------------

#: How a page shows a missing value.
MISSING = "—"

#: Columns whose unit the table itself names in another column (a concentration in
#: ``concentration_unit``, a dose in ``treatment_unit``).
_UNIT_COLUMNS: dict[str, tuple[str, ...]] = {
    "concentration_unit": (
        "lloq", "uloq", "lod", "concentration", "concentration_in_well", "ci_low",
        "ci_high", "nominal", "back_calculated", "standard_concentration",
        "test_concentration", "control_concentration", "vendor_concentration", "test_lloq",
        "min_standard", "max_standard", "difference", "bottom", "top",
    ),
    "treatment_unit": (
        "treatment_concentration", "ec20", "ec20_ci_low", "ec20_ci_high", "ec50",
        "ec50_ci_low", "ec50_ci_high", "min_tested", "max_tested", "midpoint",
    ),
}  # fmt: skip

#: Units fixed by the column's meaning: hours, percentages, the vital signs in the
#: canonical units of the observation vocabulary (cytosafe.schema.observations.ITEMS).
_FIXED_UNITS: dict[str, str] = {
    "incubation_h": "h",
    "hours": "h",
    "temperature_c": "°C",
    "baseline_max_temperature_c": "°C",
    "systolic_bp": "mmHg",
    "spo2": "%",
    "fio2": "%",
    "oxygen_flow": "L/min",
    "norepinephrine": "µg/min",
    "epinephrine": "µg/min",
    "phenylephrine": "µg/min",
    "dopamine": "µg/kg/min",
    "vasopressin": "U/min",
    "recovery": "%",
    "cv": "%",
    "blank_cv": "%",
    "max_standard_cv": "%",
    "median_sample_cv": "%",
    "replicate_cv": "%",
    "median_recovery": "%",
    "percent": "%",
    "percent_of_positive": "%",
    "median_percent_of_positive": "%",
}


def column_units(frame: pd.DataFrame, known: Mapping[str, str] | None = None) -> dict[str, str]:
    """The unit of each column of ``frame`` that has one: fixed by its name (``*_hours``
    in h, CVs and recoveries in %), or named by the table (one ``concentration_unit`` or
    ``treatment_unit`` for the whole table), or by ``known``: the unit of such a column
    where the analysis says it elsewhere (a QC table's LLOQ is in its curves' unit)."""
    units: dict[str, str] = {}
    for column in frame.columns:
        name = str(column)
        if name in _FIXED_UNITS:
            units[name] = _FIXED_UNITS[name]
        elif name.endswith("_hours"):
            units[name] = "h"
    for source, columns in _UNIT_COLUMNS.items():
        if source not in frame.columns:
            unit = (known or {}).get(source)
            if unit:
                units.update({c: unit for c in columns if c in frame.columns})
            continue
        named = {u for u in frame[source].dropna().astype(str) if u}
        if len(named) != 1:
            continue  # several units in one column: each row's unit stays in its own cell
        (unit,) = named
        units.update({c: unit for c in columns if c in frame.columns})
    return units


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}" if abs(value) >= 1e4 else str(int(value))
    size = abs(value)
    if size >= 1e4:
        return f"{value:,.0f}"
    if size < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


def cell(value: Any) -> str:
    """A value of a table as a person reads it.

    Missing (None, NaN, NaT, ``pd.NA``, empty text) is "—"; flags are "yes"/"no"; numbers
    have four significant digits (thousands grouped, whole numbers whole); dates and times
    are ``YYYY-MM-DD HH:MM``; lists are comma-separated; anything else is its text.

    Examples
    --------
    >>> [cell(v) for v in (None, float("nan"), pd.NaT, False, True, 0.012345, 24.0)]
    ['—', '—', '—', 'no', 'yes', '0.01235', '24']
    >>> cell(["IL-6", "TNF"]), cell(7513904.29), cell("")
    ('IL-6, TNF', '7,513,904', '—')
    """
    if value is None or value is pd.NaT or value is pd.NA:
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return _number(float(value)) if abs(int(value)) >= 1e4 else str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return MISSING
        if math.isinf(number):
            return "∞" if number > 0 else "−∞"
        return _number(number)
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return MISSING if pd.isna(value) else value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (pd.Timedelta, dt.timedelta)):
        return MISSING if pd.isna(value) else f"{pd.Timedelta(value).total_seconds() / 3600:g} h"
    if isinstance(value, Mapping):
        parts = [f"{k}: {cell(v)}" for k, v in value.items()]
        return "; ".join(parts) or MISSING
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Series)):
        parts = [cell(v) for v in value]
        return ", ".join(p for p in parts if p != MISSING) or MISSING
    text = str(value).strip()
    return text or MISSING


def readable(
    frame: pd.DataFrame | None, limit: int | None = 200, units: Mapping[str, str] | None = None
) -> dict:
    """A table as a page shows it: ``headers`` (the column with its unit, if any; ``units``
    as for :func:`column_units`), ``rows`` of :func:`cell` text (the first ``limit``),
    ``n`` rows in all and ``shown``."""
    if frame is None:
        return {"headers": [], "rows": [], "n": 0, "shown": 0}
    units = column_units(frame, units)
    headers = [f"{c} ({units[str(c)]})" if str(c) in units else str(c) for c in frame.columns]
    head = frame if limit is None else frame.head(limit)
    flags = [str(c) == "flags" for c in frame.columns]
    rows = []
    for values in head.itertuples(index=False, name=None):
        row = []
        for v, is_flags in zip(values, flags, strict=True):
            text = cell(v)
            if is_flags and text != MISSING:
                text = text.replace(";", ", ")  # stored as "above_uloq;extrapolated"
            row.append(text)
        rows.append(row)
    return {"headers": headers, "rows": rows, "n": len(frame), "shown": len(head)}


def single_unit(frames: Mapping[str, pd.DataFrame | None]) -> dict[str, str]:
    """The ``concentration_unit`` and ``treatment_unit`` of an analysis where its tables
    name exactly one (for :func:`readable`'s ``units``)."""
    out = {}
    for source in _UNIT_COLUMNS:
        named = set()
        for frame in frames.values():
            if frame is not None and source in frame.columns:
                named |= {u for u in frame[source].dropna().astype(str) if u}
        if len(named) == 1:
            out[source] = named.pop()
    return out
