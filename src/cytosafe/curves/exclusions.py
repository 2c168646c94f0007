"""Exclude and refit: wells a bioanalyst leaves out of the calibration, each with a reason.

An exclusion names a plate, a well and optionally an analyte, with the reason the analyst
gives (issue 12, item 8)::

    PLATE:WELL[:ANALYTE]=REASON          e.g.  P1:B3:IL6=pipetting error, bubble seen

(``cytosafe quantify --exclude``, repeatable), or a file of them: a CSV/TSV table with the
columns ``plate_id``, ``well``, ``analyte`` (optional, empty = every analyte) and
``reason``, or a text file of one ``PLATE:WELL[:ANALYTE]=REASON`` per line (``#``
comments). Without an analyte the well is excluded for every analyte. The reason is
required: ICH M10 (2022) asks that any calibrator excluded from a curve be excluded for
a documented, assignable reason, and that the exclusion be reported (section 8,
documentation). The excluded wells get ``exclude = True`` and their ``exclusion_reason``; the
calibration leaves them out of the fit and lists them in ``standards.csv``; every curve
they do not touch is fitted exactly as before (each curve is its own least-squares
problem).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from cytosafe.errors import InputError

__all__ = ["EXCLUSION_COLUMNS", "apply_exclusions", "parse_exclusions"]

#: The columns of an exclusions table.
EXCLUSION_COLUMNS = ("plate_id", "well", "analyte", "reason")

_ENTRY = re.compile(r"^\s*([^:=]+):([A-Za-z]{1,2}\d{1,3})(?::([^=]+))?\s*=\s*(.*\S)\s*$")


def _parse_entry(text: str, *, file: str | None = None, row: int | None = None) -> dict:
    match = _ENTRY.match(str(text))
    if not match:
        raise InputError(
            f"cannot read exclusion '{text}'",
            file=file,
            row=row,
            field="exclude",
            expected="PLATE:WELL[:ANALYTE]=REASON (the reason is required)",
        )
    plate, well, analyte, reason = match.groups()
    return {
        "plate_id": plate.strip(),
        "well": well.strip().upper(),
        "analyte": analyte.strip() if analyte else None,
        "reason": reason.strip(),
    }


def parse_exclusions(items) -> pd.DataFrame:
    """Exclusions as a table of :data:`EXCLUSION_COLUMNS`.

    Parameters
    ----------
    items:
        A ``PLATE:WELL[:ANALYTE]=REASON`` string, a list of them (paths of exclusion
        files may be mixed in), a path of a file (CSV/TSV table or text lines), or a
        DataFrame with the columns.

    Raises
    ------
    InputError
        An entry that cannot be read, or a table row without a plate, well or reason,
        naming the file, row and field.
    """
    if items is None:
        return pd.DataFrame(columns=list(EXCLUSION_COLUMNS))
    if isinstance(items, pd.DataFrame):
        return _check_table(items, file=None)
    if isinstance(items, (str, Path)) and (isinstance(items, Path) or Path(items).is_file()):
        return _read_file(Path(items))
    if isinstance(items, str):
        items = [items]
    frames = []
    for item in items:
        if isinstance(item, Path) or (isinstance(item, str) and Path(item).is_file()):
            frames.append(_read_file(Path(item)))
        elif isinstance(item, pd.DataFrame):
            frames.append(_check_table(item, file=None))
        else:
            frames.append(pd.DataFrame([_parse_entry(item)]))
    if not frames:
        return pd.DataFrame(columns=list(EXCLUSION_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(EXCLUSION_COLUMNS)]


def _read_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError("exclusions file not found", file=str(path), field="exclusions")
    text = path.read_text(encoding="utf-8-sig")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    header = lines[0].lower() if lines else ""
    if "plate_id" in header and "well" in header:
        sep = "\t" if "\t" in lines[0] else ","
        table = pd.read_csv(path, sep=sep, dtype=str, comment="#", keep_default_na=False)
        return _check_table(table, file=str(path))
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            rows.append(_parse_entry(line, file=str(path), row=number))
    return pd.DataFrame(rows, columns=list(EXCLUSION_COLUMNS))


def _check_table(table: pd.DataFrame, *, file: str | None) -> pd.DataFrame:
    table = table.rename(columns=lambda c: str(c).strip().lower())
    for column in ("plate_id", "well", "reason"):
        if column not in table.columns:
            raise InputError(
                "the exclusions table has no column", file=file, field=column,
                expected="columns plate_id, well, analyte (optional), reason",
            )  # fmt: skip
    out = pd.DataFrame(
        {
            "plate_id": table["plate_id"].astype(str).str.strip(),
            "well": table["well"].astype(str).str.strip().str.upper(),
            "analyte": (
                table["analyte"].astype(object).where(table["analyte"].notna(), None)
                if "analyte" in table.columns
                else None
            ),
            "reason": table["reason"].astype(object).where(table["reason"].notna(), ""),
        }
    )
    out["analyte"] = [
        None if a is None or str(a).strip() == "" else str(a).strip() for a in out["analyte"]
    ]
    out["reason"] = [str(r).strip() for r in out["reason"]]
    for i, row in enumerate(out.itertuples(index=False)):
        line = i + 2  # the header is line 1
        for column in ("plate_id", "well", "reason"):
            if getattr(row, column) in ("", "nan", "None"):
                raise InputError(
                    "an exclusion needs a plate, a well and a reason", file=file, row=line,
                    field=column,
                )  # fmt: skip
    return out


def _norm_well(well: object) -> str:
    text = str(well).strip().upper()
    match = re.match(r"^([A-Z]{1,2})0*(\d+)$", text)
    return f"{match.group(1)}{int(match.group(2))}" if match else text


def apply_exclusions(measurements: pd.DataFrame, exclusions: pd.DataFrame) -> pd.DataFrame:
    """Mark the excluded wells: ``exclude = True`` and their ``exclusion_reason``.

    Wells are matched on plate and well (``B03`` is ``B3``), and on analyte where the
    exclusion names one. An exclusion that matches no well is an
    :class:`~cytosafe.errors.InputError` naming it (a typo must not pass silently).
    """
    table = measurements.copy()
    if "exclusion_reason" not in table.columns:
        table["exclusion_reason"] = pd.Series([None] * len(table), dtype=object, index=table.index)
    else:
        table["exclusion_reason"] = table["exclusion_reason"].astype(object)
    if exclusions is None or len(exclusions) == 0:
        return table
    plates = table["plate_id"].astype(str).to_numpy()
    wells = table["well"].map(_norm_well).to_numpy()
    analytes = table["analyte"].astype(str).to_numpy()
    exclude = (
        table["exclude"].eq(True).to_numpy(dtype=bool).copy()
        if "exclude" in table.columns
        else np.zeros(len(table), dtype=bool)
    )
    reasons = table["exclusion_reason"].to_numpy(dtype=object).copy()
    for row in exclusions.itertuples(index=False):
        hit = (plates == str(row.plate_id)) & (wells == _norm_well(row.well))
        if row.analyte is not None:
            hit &= analytes == str(row.analyte)
        if not hit.any():
            target = f"{row.plate_id}:{row.well}" + (f":{row.analyte}" if row.analyte else "")
            raise InputError(
                f"exclusion '{target}' matches no well",
                field="exclude",
                expected="a plate, well (and analyte) of the measurements",
            )
        exclude |= hit
        reasons[hit] = row.reason
    table["exclude"] = exclude
    table["exclusion_reason"] = reasons
    return table
