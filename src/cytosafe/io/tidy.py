"""Tidy measurement tables as CSV or XLSX: CytoSafe's own exchange format.

A tidy file holds the measurement table of :mod:`cytosafe.schema.measurements` as it is:
one row per well x analyte, one column per field, the schema's column names in the
header. It is what a lab writes when its reader software is not supported (one row per
well from any spreadsheet), and what :func:`write_tidy` writes.

Reading (:func:`read_tidy`)
---------------------------
* CSV (``,``; ``;`` or tab are recognised from the header line), UTF-8 with or without a
  byte-order mark, or Windows-1252; or an Excel workbook (``.xlsx``/``.xlsm``), its
  first sheet unless ``sheet`` names or numbers another.
* The header is the first non-empty row. Its names are matched to the schema's
  ignoring case, spaces and hyphens (``Plate ID`` -> ``plate_id``, ``Sample Type`` ->
  ``sample_type``); other columns are kept as extras under their own names.
* Empty cells are missing values. A row with fewer cells than the header is a
  truncated file, one with more a misaligned row; both are errors naming the line.
* A row whose ``signal`` is missing (an empty cell, or ``NaN``/``NA``/``N/A``) is set
  aside: it is not read, and a :class:`~cytosafe.errors.DataWarning` names the file, row,
  well and analyte, as the xPONENT and Discovery Workbench readers skip a well without a
  reading; every other row goes on (a curve that loses standards this way gets its status
  from calibration). A file in which no row has a signal is an error. A signal that is not
  a number or is negative stays an error naming the row.
* An optional ``concentration_unit`` column gives, per row, the unit of
  ``standard_concentration`` (and of ``vendor_concentration`` when present, which a row
  reports in the same unit). A mass unit is converted to pg/mL; an arbitrary unit
  (IU/mL, U/mL, AU/mL, ...) is kept as written
  (:func:`~cytosafe.schema.units.analyte_unit`); the column then holds the stored unit
  (``pg/mL`` or the arbitrary unit's canonical spelling). An empty unit is the curve's
  (pg/mL when the curve states none). An unknown or molar unit is a
  :class:`~cytosafe.errors.UnitError` naming the line; one curve in two units is an
  error of validation (:mod:`cytosafe.schema.measurements`).
* ``study_id`` and ``plate_id`` given to the reader override the file's (a file of
  several plates keeps the one ``plate_id`` names, see
  :func:`~cytosafe.io.reader.select_plate`); ``standard_unit`` is the unit of rows
  without a ``concentration_unit`` (pg/mL when not given).
* ``source_file`` and ``source_row`` are this file and the row's line (the Excel row
  for a workbook). A file that already carried them (a table written after reading an
  instrument export) keeps them as ``origin_file`` / ``origin_row``.

Writing (:func:`write_tidy`)
----------------------------
The validated table, all schema columns in canonical order then the extras; floats
with full precision (the file reads back to the same numbers), missing values as empty
cells; ``source_file`` / ``source_row`` only when the table has them, and
``concentration_unit`` only when a curve is in another unit than pg/mL (an arbitrary unit:
the file without the column means pg/mL). CSV is UTF-8 with
``\\n`` line endings; XLSX has one sheet, ``measurements``.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cytosafe._atomic import atomic_write
from cytosafe.errors import InputError, UnitError
from cytosafe.io._text import decode_text
from cytosafe.io._values import cell_text
from cytosafe.io._workbook import save_workbook
from cytosafe.io.reader import Probe, finish, names_file, select_plate
from cytosafe.schema.measurements import MEASUREMENT_COLUMNS, to_numbers, validate_measurements
from cytosafe.schema.units import CONCENTRATION_UNIT, analyte_unit

__all__ = ["DESCRIPTION", "NAME", "SUFFIXES", "parse", "read_tidy", "sniff", "write", "write_tidy"]

NAME = "tidy"
DESCRIPTION = "a tidy measurement table, CSV or XLSX, in the schema's columns"
SUFFIXES = (".csv", ".xlsx", ".xlsm", ".tsv", ".txt")

_SCHEMA = {c.name for c in MEASUREMENT_COLUMNS}
_UNIT_COLUMN = "concentration_unit"
_CONVERTED = ("standard_concentration", "vendor_concentration")
_EXCEL = {".xlsx", ".xlsm"}
#: Cell texts of a missing signal besides an empty cell (pandas', R's and Excel users').
_MISSING = {"nan", "na", "n/a"}
#: Rows set aside for a missing signal that are named one by one in warnings.
_NAMED = 20


def _key(name: str) -> str:
    """A header name as a schema name: lower case, spaces and hyphens as underscores."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower()).strip("_")


def _records_csv(path: Path, file: str) -> list[tuple[int, list[str]]]:
    text = decode_text(path.read_bytes(), file=file)
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records = []
    end = 0
    try:
        for cells in reader:
            records.append((end + 1, [c.strip() for c in cells]))
            end = reader.line_num
    except csv.Error as exc:
        raise InputError(f"cannot be read as CSV: {exc}", file=file, row=end + 1) from None
    return records


def _records_xlsx(path: Path, file: str, sheet: str | int | None) -> list[tuple[int, list[str]]]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged file
        raise InputError(f"cannot be opened as an Excel workbook: {exc}", file=file) from None
    try:
        names = list(book.sheetnames)
        if sheet is None:
            name = names[0]
        elif isinstance(sheet, int) and not isinstance(sheet, bool):
            if not 0 <= sheet < len(names):
                raise InputError(
                    f"the workbook has no sheet number {sheet}",
                    file=file,
                    field="sheet",
                    expected=f"0 to {len(names) - 1} ({', '.join(names)})",
                )
            name = names[sheet]
        elif str(sheet) in names:
            name = str(sheet)
        else:
            raise InputError(
                f"the workbook has no sheet '{sheet}'",
                file=file,
                field="sheet",
                expected="one of " + ", ".join(names),
            )
        ws = book[name]
        return [
            (i, [cell_text(v) for v in row])
            for i, row in enumerate(
                ws.iter_rows(min_row=1, max_row=max(ws.max_row, 1), values_only=True), start=1
            )
        ]
    finally:
        book.close()


def sniff(probe: Probe) -> bool:
    """A header naming ``well`` and ``signal``, or any ``.xlsx`` workbook.

    Asked last by :func:`cytosafe.io.detect_format`: a workbook that is neither an MSD nor
    a Bio-Plex export is taken for a tidy table.
    """
    if probe.is_xlsx:
        return True
    header = probe.first_line.replace('"', "").lower()
    return "signal" in header and "well" in header


def has_tidy_header(probe: Probe) -> bool:
    """The file opens as a tidy table: a text header, or the first row of a workbook's
    first sheet (the sheet :func:`read_tidy` reads), naming ``well`` and ``signal``.
    :func:`cytosafe.io.registry.detect_format` takes such a file for tidy before asking
    the readers' refusals, which look for other vendors' columns and lines that a tidy
    table may also carry (an ``R12: RP1 Median`` column, a line of ``=``)."""
    if probe.is_xlsx:
        for rows in probe.sheets.values():  # the first sheet only
            for row in rows:
                cells = {str(c).strip().lower() for c in row if c is not None and str(c).strip()}
                if cells:
                    return {"well", "signal"} <= cells
            return False
        return False
    header = [c.strip().strip('"').lower() for c in re.split(r"[,;\t]", probe.first_line)]
    return "well" in header and "signal" in header


def read_tidy(
    path,
    *,
    sheet: str | int | None = None,
    study_id: str | None = None,
    plate_id: str | None = None,
    sample_map=None,
    standard_unit: str | None = None,
) -> pd.DataFrame:
    """Read a tidy measurement table from CSV or XLSX and validate it.

    Parameters
    ----------
    path : str or Path
        A ``.csv`` (or ``.txt``/``.tsv``) file, or an ``.xlsx``/``.xlsm`` workbook.
    sheet : str or int, optional
        Workbook sheet, by name or 0-based number; the first sheet by default. Not
        allowed for text files.
    study_id, plate_id : str, optional
        Override the file's study and plate (module notes).
    sample_map : DataFrame or path, optional
        Culture metadata joined with :func:`cytosafe.io.samples.annotate`.
    standard_unit : str, optional
        Unit of the concentrations of rows without a ``concentration_unit``; default
        pg/mL. A mass unit is converted to pg/mL, an arbitrary unit (IU/mL, ...) kept.

    Returns
    -------
    pandas.DataFrame
        The table validated by
        :func:`~cytosafe.schema.measurements.validate_measurements`, in file order, with
        ``source_file`` and ``source_row`` (the 1-based line, header = its line).

    Raises
    ------
    InputError
        Naming file, line, well and column: a missing file or sheet, no header, a
        truncated or misaligned row, a duplicated column, an unknown
        ``concentration_unit`` (:class:`~cytosafe.errors.UnitError`), no row with a
        signal, and every breach of the schema (:class:`~cytosafe.errors.SchemaError`).

    Warns
    -----
    DataWarning
        For each row set aside because its signal is missing, naming the file, row, well
        and analyte (module notes).

    Examples
    --------
    >>> table = read_tidy("examples/cra-study/tidy/measurements.csv")  # doctest: +SKIP
    """
    table = parse(
        path, sheet=sheet, study_id=study_id, plate_id=plate_id, standard_unit=standard_unit
    )
    return finish(table, source=path, sample_map=sample_map)


@names_file
def parse(
    path,
    *,
    study_id: str | None = None,
    plate_id: str | None = None,
    standard_unit: str | None = None,
    sheet: str | int | None = None,
) -> pd.DataFrame:
    """The raw table of a tidy file (the reader contract); :func:`read_tidy` validates it."""
    path = Path(path)
    file = str(path)
    if standard_unit is not None:
        analyte_unit(standard_unit, file=file, field="standard_unit")
    if not path.is_file():
        raise InputError("file not found", file=file)
    if path.suffix.lower() in _EXCEL:
        records = _records_xlsx(path, file, sheet)
    else:
        if sheet is not None:
            raise InputError("sheet= applies to Excel workbooks only", file=file, field="sheet")
        records = _records_csv(path, file)
    records = [(line, cells) for line, cells in records if any(cells)]
    if not records:
        raise InputError("the file is empty", file=file, expected="a header row of column names")

    header_line, header = records[0]
    header_width = len(header)  # with its trailing empty cells, as every line is written
    while header and not header[-1]:
        header.pop()
    names: list[str] = []
    for pos, raw in enumerate(header):
        if not raw:
            raise InputError(
                f"column {pos + 1} of the header has no name",
                file=file,
                row=header_line,
                expected="a name for every column",
            )
        name = _key(raw) if _key(raw) in _SCHEMA | {_UNIT_COLUMN} else raw
        if name in names:
            raise InputError(
                f"column '{raw}' appears twice in the header",
                file=file,
                row=header_line,
                field=raw,
                expected="each column once",
            )
        names.append(name)
    width = len(names)
    well_pos = names.index("well") if "well" in names else None

    lines: list[int] = []
    rows: list[list[str]] = []
    for line, cells in records[1:]:
        where: dict[str, object] = {"file": file, "row": line}
        if well_pos is not None and well_pos < len(cells) and cells[well_pos]:
            where["well"] = cells[well_pos]
        if len(cells) < width:
            raise InputError(
                f"the row has {len(cells)} cells, the header {width}: the file is truncated",
                field=header[len(cells)],
                expected="every row as wide as the header",
                **where,
            )
        if any(cells[width:]) or len(cells) > header_width:
            # Even an empty extra cell: a decimal comma in a comma-separated file splits a
            # number in two and shifts the rest of the row into the wrong columns.
            raise InputError(
                f"the row has more cells than the header ({width})",
                expected="every row as wide as the header (a value with an unquoted comma, "
                "or a decimal comma in a comma-separated file?)",
                **where,
            )
        rows.append(cells[:width])
        lines.append(line)
    if not rows:
        raise InputError("the table has a header but no rows", file=file, row=header_line)

    table = pd.DataFrame(rows, columns=names)
    table = table.where(table != "", None)
    for name in names:
        if table[name].isna().all():
            table[name] = np.nan  # an empty column, as validation adds an absent one
        elif name not in _SCHEMA and name != _UNIT_COLUMN:
            table[name] = _infer_numeric(table[name])
    for old, new in (("source_file", "origin_file"), ("source_row", "origin_row")):
        if old in table.columns:
            if table[old].notna().any():
                table[new] = table.pop(old)
                if new == "origin_row":
                    table[new] = _infer_numeric(table[new])
            else:
                table = table.drop(columns=old)
    table["source_file"] = file
    table["source_row"] = lines

    if standard_unit is not None:
        if _UNIT_COLUMN not in table.columns:
            table[_UNIT_COLUMN] = None
        table[_UNIT_COLUMN] = table[_UNIT_COLUMN].fillna(standard_unit)
    if _UNIT_COLUMN in table.columns:
        table = _stored_units(table, file)
    if study_id is not None:
        table["study_id"] = study_id
    table = select_plate(table, plate_id, file=file)
    table, pending = _set_aside_missing_signals(table, file)
    table.attrs["warnings"] = pending
    return table


def _set_aside_missing_signals(table: pd.DataFrame, file: str) -> tuple[pd.DataFrame, list[str]]:
    """The rows with a signal, and a warning naming each row set aside without one."""
    if "signal" not in table.columns:
        return table, []  # validation names the missing column
    raw = table["signal"]
    text = raw.astype(object).where(raw.notna(), "").astype(str).str.strip()
    missing = (text == "") | text.str.lower().isin(_MISSING)
    if not missing.any():
        return table, []
    if missing.all():
        raise InputError(
            "no row has a signal",
            file=file,
            field="signal",
            expected="a non-negative number in the signal column",
        )
    gone = table[missing]
    messages = []
    for row in gone.head(_NAMED).itertuples(index=False):
        well = getattr(row, "well", None) or "?"
        analyte = getattr(row, "analyte", None) or "?"
        messages.append(
            f"{file}, row {row.source_row}, well {well}, analyte {analyte}: the signal is "
            "missing; the row is set aside (not quantified) and the rest of the file goes on"
        )
    if len(gone) > _NAMED:
        rows = ", ".join(str(r) for r in gone["source_row"].iloc[_NAMED:].tolist())
        messages.append(
            f"{file}: {len(gone) - _NAMED} more row(s) without a signal set aside: rows {rows}"
        )
    return table[~missing].reset_index(drop=True), messages


def _infer_numeric(values: pd.Series) -> pd.Series:
    """An extra column as numbers when every value is one (integers as ``Int64``)."""
    present = values.dropna()
    if present.empty:
        return values
    numbers = to_numbers(present)
    if numbers.isna().any():
        return values
    if present.astype(str).str.fullmatch(r"[+-]?\d+").all():
        return pd.to_numeric(values).astype("Int64")
    return to_numbers(values).astype(float)


def _stored_units(table: pd.DataFrame, file: str) -> pd.DataFrame:
    """Each row's concentrations in its stored unit (:func:`analyte_unit`): mass units
    converted to pg/mL, arbitrary units kept; ``concentration_unit`` then names it."""
    units = table[_UNIT_COLUMN]
    stored = units.astype(object).copy()
    factors = pd.Series(1.0, index=table.index)
    cache: dict[str, tuple[str, float]] = {}
    for pos, unit in enumerate(units.tolist()):
        if pd.isna(unit):
            continue
        if unit not in cache:
            where: dict[str, object] = {"file": file, "row": int(table["source_row"].iat[pos])}
            if "well" in table.columns and pd.notna(table["well"].iat[pos]):
                where["well"] = str(table["well"].iat[pos])
            try:
                cache[unit] = analyte_unit(unit)
            except UnitError as exc:
                raise exc.located(field=_UNIT_COLUMN, **where) from None
        stored.iat[pos], factors.iat[pos] = cache[unit]
    table[_UNIT_COLUMN] = stored
    for column in _CONVERTED:
        if column in table.columns:
            values = to_numbers(table[column])
            # Text that is not a number is left for validation to report, with its line.
            ok = values.notna()
            if ok.equals(table[column].notna()):
                table[column] = values * factors
            else:
                converted = table[column].astype(object).copy()
                converted[ok] = (values[ok] * factors[ok]).to_numpy()
                table[column] = converted
    return table


def write_tidy(measurements: pd.DataFrame, path) -> Path:
    """Write a measurement table as a tidy CSV or XLSX file (chosen by the suffix).

    Parameters
    ----------
    measurements : pandas.DataFrame
        A measurement table; it is validated first, so only valid tables are written.
    path : str or Path
        ``.csv`` or ``.xlsx``; the file is replaced atomically.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InputError
        The suffix is neither ``.csv`` nor ``.xlsx``, or the table is not valid.

    Notes
    -----
    ``read_tidy(write_tidy(table, p))`` returns the same table (``source_file`` and
    ``source_row`` then name ``p``; earlier ones become ``origin_file``/``origin_row``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".xlsx"}:
        raise InputError(
            f"cannot write a tidy table as '{path.suffix}'",
            file=str(path),
            expected="a .csv or .xlsx file name",
        )
    table = validate_measurements(measurements)
    for column in ("source_file", "source_row"):
        if table[column].isna().all():
            table = table.drop(columns=column)
    if (table["concentration_unit"] == CONCENTRATION_UNIT).all():
        table = table.drop(columns="concentration_unit")  # pg/mL, what a file without it means
    # Categoricals and nullable integers as plain values; missing as empty cells.
    out = pd.DataFrame(
        {
            c: table[c].astype(object).where(table[c].notna(), None)
            if not pd.api.types.is_float_dtype(table[c])
            else table[c]
            for c in table.columns
        }
    )
    if suffix == ".csv":
        atomic_write(
            path,
            lambda p: out.to_csv(p, index=False, lineterminator="\n", encoding="utf-8"),
        )
    else:
        atomic_write(path, lambda p: _write_xlsx(out, p))
    return path


write = write_tidy


def _write_xlsx(table: pd.DataFrame, path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "measurements"
    sheet.append(list(table.columns))
    for row in table.itertuples(index=False, name=None):
        sheet.append([_xlsx_value(v) for v in row])
    save_workbook(book, path)


def _xlsx_value(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
