"""Readers and writers of instrument exports.

Every reader returns the validated tidy measurement table
(:func:`cytosafe.schema.validate_measurements`); :func:`read` recognises the format of a
file from its content, so a user can pass any export without saying what it is.

| format | reader | writer |
|---|---|---|
| tidy CSV / XLSX | :func:`read_tidy` | :func:`write_tidy` |
| plate map + reader matrix (96/384) | :func:`read_plate` | :func:`write_plate_map`, :func:`write_reader_matrix` |
| MSD Discovery Workbench export | :func:`read_msd` | :func:`write_msd` |
| Luminex xPONENT CSV | :func:`read_xponent` | :func:`write_xponent` |
| Bio-Rad Bio-Plex Manager report (.xls/.xlsx) | :func:`read_bioplex` | |

Plate maps with reader matrices come in pairs and are read with :func:`read_plate`
(``cytosafe quantify --plate-map``); :func:`read` takes single-file exports.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cytosafe.errors import InputError
from cytosafe.io.bioplex import read_bioplex, read_bioplex_equations
from cytosafe.io.msd import read_msd, write_msd
from cytosafe.io.platemap import (
    read_plate,
    read_plate_map,
    read_reader_matrix,
    write_plate_map,
    write_reader_matrix,
)
from cytosafe.io.samples import annotate, read_sample_map
from cytosafe.io.tidy import read_tidy, write_tidy
from cytosafe.io.xponent import read_xponent, write_xponent

__all__ = [
    "FORMATS",
    "annotate",
    "detect_format",
    "read",
    "read_bioplex",
    "read_bioplex_equations",
    "read_msd",
    "read_plate",
    "read_plate_map",
    "read_reader_matrix",
    "read_sample_map",
    "read_tidy",
    "read_xponent",
    "write_msd",
    "write_plate_map",
    "write_reader_matrix",
    "write_tidy",
    "write_xponent",
]

FORMATS = ("tidy", "msd", "xponent", "bioplex")

_OLE2 = bytes.fromhex("D0CF11E0A1B11AE1")  # BIFF8 .xls (and other OLE2 files)
_ZIP = b"PK\x03\x04"  # .xlsx


def _excel_format(path: Path) -> str:
    """``bioplex``, ``msd`` or ``tidy`` for an .xlsx workbook, from its sheets' first rows."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged file
        raise InputError(f"cannot be opened as an Excel workbook: {exc}", file=str(path)) from None
    try:
        if "Exp_Data_Tbl" in book.sheetnames:
            return "msd"
        for sheet in book.worksheets:
            for row in sheet.iter_rows(max_row=40, values_only=True):
                cells = [str(c).strip() for c in row if c is not None]
                if cells and cells[0].startswith("Analyte:"):
                    return "bioplex"
                names = {c.lower() for c in cells}
                if {"sample", "well", "signal", "assay"} <= names:
                    return "msd"
        return "tidy"
    finally:
        book.close()


def detect_format(path: str | Path) -> str:
    """Recognise an export from its content: ``xponent``, ``msd``, ``bioplex`` or ``tidy``.

    Excel files: a BIFF8 ``.xls`` is a Bio-Plex report (the only ``.xls`` export
    supported); an ``.xlsx`` is an MSD export when it has DW's ``Exp_Data_Tbl`` sheet or an
    ``Assay`` data-table header, a Bio-Plex report when a sheet opens with ``Analyte:``
    lines, a tidy table otherwise. Text files: xPONENT's ``Program,xPONENT`` first line,
    DW's ``Name,Value`` preamble or ``Experiment Data Table`` title, or a tidy header with
    ``well`` and ``signal``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=str(path))
    with path.open("rb") as fh:
        magic = fh.read(8)
    if magic == _OLE2:
        return "bioplex"
    if magic.startswith(_ZIP):
        return _excel_format(path)
    try:
        with path.open("r", encoding="utf-8-sig", errors="replace") as fh:
            head = [fh.readline() for _ in range(80)]
    except OSError as exc:
        raise InputError(f"cannot be read: {exc}", file=str(path)) from None
    first = head[0].strip().replace('"', "") if head else ""
    if first.startswith("Program") and "xPONENT" in first:
        return "xponent"
    if any(
        line.strip().strip('",').endswith("Experiment Data Table") for line in head
    ) or first.startswith("Name,Value"):
        return "msd"
    header = first.lower()
    if "signal" in header and "well" in header:
        return "tidy"
    if "sample" in header and "well" in header and "signal" in "".join(head).lower():
        return "msd"  # a DW data table saved without its preamble
    raise InputError(
        "the file is not a format CytoSafe recognises",
        file=str(path),
        expected="a tidy CSV/XLSX, an MSD Discovery Workbench export, a Luminex xPONENT CSV "
        "or a Bio-Plex Manager report (plate maps with reader matrices are read with "
        "read_plate / --plate-map)",
    )


def read(path: str | Path, *, sample_map=None, study_id: str | None = None) -> pd.DataFrame:
    """Read any supported single-file export into the validated tidy measurement table.

    The format is recognised by :func:`detect_format`; ``sample_map`` (a path or table,
    see :func:`read_sample_map`) annotates the samples with donor, treatment and
    concentration; ``study_id`` overrides the file's own.
    """
    fmt = detect_format(path)
    if fmt == "xponent":
        return read_xponent(path, study_id=study_id, sample_map=sample_map)
    if fmt == "msd":
        return read_msd(path, study_id=study_id, sample_map=sample_map)
    if fmt == "bioplex":
        return read_bioplex(path, study_id=study_id, sample_map=sample_map)
    table = read_tidy(path)
    if study_id is not None:
        table["study_id"] = study_id
    return annotate(table, sample_map) if sample_map is not None else table
