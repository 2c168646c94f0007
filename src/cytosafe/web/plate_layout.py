"""A plate as its wells: the 96- or 384-well grid of a stored plate, coloured by sample
type, with each well's signal (one analyte at a time) and culture on hover, as the plate
views of MSD Discovery Workbench and xPONENT show a plate."""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

__all__ = ["SAMPLE_TYPE_LABELS", "plate_grid"]

#: The sample types in the legend's order, with how the page names them.
SAMPLE_TYPE_LABELS = {
    "standard": "Standard",
    "blank": "Blank",
    "control": "Control",
    "sample": "Sample",
}
_WELL = re.compile(r"^([A-Z]+)(\d+)$")
#: Plate formats: (rows, columns) of the ANSI/SLAS 4-2004 footprints.
_FORMATS = ((8, 12), (16, 24), (32, 48))


def _row_index(letters: str) -> int:
    index = 0
    for ch in letters:
        index = index * 26 + (ord(ch) - ord("A") + 1)
    return index - 1


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _compact(value: float) -> str:
    """A signal in four characters or so, as plate views print it: 156, 1.2k, 647k, 1.2M."""
    size = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            scaled = value / limit
            return f"{scaled:.3g}{suffix}" if abs(scaled) < 100 else f"{scaled:.0f}{suffix}"
    return f"{value:.3g}" if size < 100 else f"{value:.0f}"


def plate_grid(table: pd.DataFrame, analyte: str | None = None) -> dict[str, Any]:
    """The grid of one plate's tidy measurements (:func:`cytosafe.store.load_measurements`).

    Returns
    -------
    dict
        ``rows`` (letters), ``columns`` (numbers), ``cells`` (per row, per column: the
        well, its sample type or ``""`` for an empty well, its signal for ``analyte``, and
        ``title``, the hover text: well, type, sample, donor, treatment and concentration,
        format, signal, exclusion), ``analytes``, ``analyte`` (the one shown: the first
        when none or an unknown one is asked), ``counts`` (wells per sample type) and
        ``size`` (96, 384 or 1536).
    """
    analytes = sorted(table["analyte"].astype(str).unique().tolist())
    if analyte not in analytes:
        analyte = analytes[0] if analytes else None
    shown = table[table["analyte"].astype(str) == analyte] if analyte else table.iloc[0:0]
    wells: dict[str, dict[str, Any]] = {}
    for r in table.drop_duplicates("well").to_dict("records"):
        wells[str(r["well"])] = r
    signals = {
        str(w): s for w, s in zip(shown["well"], shown["signal"], strict=True) if pd.notna(s)
    }
    excluded = set()
    if "exclude" in shown.columns:
        excluded = {str(w) for w, e in zip(shown["well"], shown["exclude"], strict=True) if e}
    spots = [(m.group(1), int(m.group(2))) for m in map(_WELL.match, wells) if m]
    n_rows = max((_row_index(r) + 1 for r, _ in spots), default=8)
    n_cols = max((c for _, c in spots), default=12)
    rows_n, cols_n = next(
        ((r, c) for r, c in _FORMATS if n_rows <= r and n_cols <= c), (n_rows, n_cols)
    )
    letters = [chr(ord("A") + i) if i < 26 else "A" + chr(ord("A") + i - 26) for i in range(rows_n)]
    cells = []
    for letter in letters:
        line = []
        for col in range(1, cols_n + 1):
            well = f"{letter}{col:02d}"
            r = wells.get(well)
            if r is None:
                line.append({"well": well, "type": "", "signal": "", "title": f"{well}: empty"})
                continue
            kind = _text(r.get("sample_type")).lower()
            signal = signals.get(well)
            parts = [f"{well} · {SAMPLE_TYPE_LABELS.get(kind, kind)}"]
            if _text(r.get("sample_id")):
                parts.append(f"sample {_text(r.get('sample_id'))}")
            if kind == "standard" and _text(r.get("standard_concentration")):
                parts.append(f"standard {_text(r.get('standard_concentration'))}")
            if _text(r.get("donor_id")):
                parts.append(f"donor {_text(r.get('donor_id'))}")
            if _text(r.get("treatment")):
                dose = " ".join(
                    t
                    for t in (
                        _text(r.get("treatment_concentration")),
                        _text(r.get("treatment_unit")),
                    )
                    if t
                )
                parts.append(f"{_text(r.get('treatment'))}" + (f" {dose}" if dose else ""))
            if _text(r.get("assay_format")):
                parts.append(_text(r.get("assay_format")))
            if signal is not None:
                parts.append(f"{analyte}: signal {signal:.6g}")
            if well in excluded:
                parts.append("excluded from the calibration")
            line.append(
                {
                    "well": well,
                    "type": kind,
                    "signal": "" if signal is None else _compact(signal),
                    "excluded": well in excluded,
                    "annotated": bool(_text(r.get("donor_id")) or _text(r.get("treatment"))),
                    "title": "\n".join(parts),
                }
            )
        cells.append(line)
    kinds = pd.Series([str(r.get("sample_type", "")).lower() for r in wells.values()])
    counts = {k: int((kinds == k).sum()) for k in SAMPLE_TYPE_LABELS if (kinds == k).any()}
    return {
        "rows": letters,
        "columns": list(range(1, cols_n + 1)),
        "cells": cells,
        "analytes": analytes,
        "analyte": analyte,
        "counts": counts,
        "size": rows_n * cols_n,
    }
