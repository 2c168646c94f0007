"""Plate maps and reader matrices: ELISA-style plates of 96 and 384 wells.

An absorbance (or luminescence, fluorescence) plate reader knows one number per well and
nothing else. What each well held — standard, blank, sample, which donor and treatment —
is written by the scientist in a **plate map**. :func:`read_plate` joins the two into the
validated tidy measurement table (:mod:`cytosafe.schema.measurements`), by
:func:`join_plate_map`: the one join of a plate map with a table of readings, which
:func:`cytosafe.io.asm.read_asm_plate` uses for SoftMax Pro, Gen5 and ASM exports too
(:func:`cytosafe.io.read_plate` chooses between the two from the file's content).

Plate geometry follows ANSI/SLAS 4-2004 (:data:`~cytosafe.schema.wells.PLATE_FORMATS`):
96 wells are rows A-H x columns 1-12, 384 wells rows A-P x columns 1-24. Wells are stored
as ``A01``.

Plate maps
----------
A plate map comes in two forms; :func:`read_plate_map` tells them apart by the first
non-blank line (column numbers ``1, 2, ...`` after the first cell mean a grid).

**Long form** (CSV, TSV or XLSX): a header line, then one line per well. Columns (header
names are matched case-insensitively, spaces read as ``_``)::

    well, sample_type, standard_concentration, concentration_unit, donor_id, treatment,
    treatment_role, treatment_concentration, treatment_unit, assay_format, incubation_h,
    replicate, dilution_factor, sample_id, plate_id

``well`` (``Wells``, the column name of R ``plater``'s tidy output, is accepted) and
``sample_type`` are required; the others are optional and mean what the schema says.
``concentration_unit`` is the unit of ``standard_concentration`` (default: the
``standard_unit`` argument of :func:`read_plate`); mass units are converted to pg/mL,
arbitrary units (IU/mL, U/mL, AU/mL, ...) kept as written
(:func:`~cytosafe.schema.units.analyte_unit`).
``plate_id`` names the plate a line belongs to, so one long map may describe several
plates. Any other column is kept as an extra column of the measurement table. Columns that
only the reader matrix can know (``analyte``, ``signal``, ...) are refused.

**Grid form**, the ``plater`` format (R package ``plater`` 1.0.5, rOpenSci, GPL-3;
``R/read_plate.R``, ``R/convert_plate_to_column.R`` and the vignette
``plater-basics.Rmd`` of github.com/ropensci/plater, https://docs.ropensci.org/plater/):
a CSV holding one plate-shaped *layout* per variable::

    sample_type,1,2,3,...,12          <- top-left cell: the variable's name;
    A,standard,standard,blank,...        the rest of the row: column numbers 1..12 (1..24)
    B,standard,standard,sample,...    <- first cell: the row letter, A..H (A..P)
    ...
    H,sample,sample,,...              <- a blank cell: no value for that well
    ,,,,,,,,,,,,                      <- a blank line (or a line of commas) between layouts
    donor_id,1,2,3,...,12
    ...

As in ``plater``: row letters are case-insensitive and may be padded with spaces; the plate
size follows from the column numbers; ``NA`` reads as a blank cell; a well blank in every
layout is empty. Stricter than ``plater``, because a silent fix here would change which
sample a number belongs to: every layout needs a name (``plater`` calls an unnamed one
``values``), two layouts may not share a name (``plater`` appends ``.2``), and every
layout must have the same size. More lenient, to accept what spreadsheets save: several
blank lines between layouts, and empty cells right of the grid (Excel's "blank" cells,
which ``plater``'s documentation warns about). Tab- and semicolon-separated grids, and
grids on the first sheet of an XLSX workbook, are read too.

Empty wells. A well is **empty** — not used, whatever the reader measured there — when the
map marks it so: in a grid, the well's ``sample_type`` cell is blank; in a long map, the
well's line has ``sample_type`` blank or ``empty``. A well the map *describes* has a
sample type. Everything else is an error, because the alternative is a silently dropped or
silently invented measurement:

* a well with plate-map values but no sample type (a forgotten ``sample_type``);
* a reading in a well the map neither describes nor marks empty (only possible with a long
  map, which need not list every well: list the unused wells as ``empty``);
* a described well with no reading (a blank matrix cell), or outside the reader's plate (a
  384-well map on a 96-well matrix).

Reader matrices
---------------
:func:`read_reader_matrix` reads plate-shaped signal grids, one *block* per analyte, from
CSV, TSV, semicolon-separated text or the first sheet of an XLSX workbook. A block is a
row of column numbers (``1..12`` or ``1..24``) followed by the rows ``A..H`` or ``A..P``,
each a row letter and one cell per column — the ``plater`` layout, and the shape that
plate-reader software writes for spreadsheets. Studied on public exports (test data of
Benchling's ``allotropy``, MIT, github.com/Benchling-Open-Source/allotropy,
``tests/parsers/...``):

* **Agilent BioTek Gen5** text export (``agilent_gen5/testdata/absorbance/
  240411_172731_BNCH2345883_abs450_96well_non_numeric_values.txt``): tab-separated, a
  preamble (``Software Version``, ``Plate Number``, ``Procedure Details``), a line
  ``Results``, a header row with an empty top-left cell, rows ``A..H`` and, right of the
  grid, the read's label (``abs450:450``); non-numeric cells such as ``OVRFLW`` (detector
  saturated) and ``MISSED``. Read: the preamble is skipped and the trailing label ignored.
  Not read here: several reads interleaved in one table (``endpoint_wavelength_
  measurement_labels.txt``: a second line per row with no row letter). Given to
  :func:`cytosafe.io.read_plate`, a Gen5 export is read through ASM instead
  (:mod:`cytosafe.io.asm`: every read, wavelengths, the reference subtraction).
* **Thermo SkanIt** XLSX (``thermo_skanit/testdata/luciferase_assay_example.xlsx``): title
  lines (``Plate 1``), then a grid whose top-left cell holds the signal unit (``RLU``) and
  whose column numbers Excel stores as ``1.0, 2.0, ...``. Read; pass ``analyte=``, since
  the block's name is a unit.
* **Molecular Devices SoftMax Pro** "plate format" text (``moldev_softmax_pro/testdata/
  MD_SMP_absorbance_endpoint_example01.txt``): rows carry no row letters and a
  temperature column precedes the grid; not read here (no row letters to check the grid
  against), but :func:`cytosafe.io.read_plate` reads it through ASM
  (:mod:`cytosafe.io.asm`).

The analyte of a block is, in this order: the block's top-left cell (``plater``'s rule;
the writers put it there); else the line just above the header, when it holds a single
cell (``IL-6``, ``Analyte: IL-6``) other than a generic section title (``Results``);
else the ``analyte`` argument. For a one-block file ``analyte=`` names the block whatever
its name (a Gen5 or SkanIt export); with several blocks it selects the block of that
name. Each cell is one signal: a number (``0.105``, ``1.3E+02``; a decimal comma in files
separated by tabs or semicolons that write no decimal point, read with a
:class:`~cytosafe.errors.DataWarning`; a file mixing ``0,105`` and ``0.105`` is an error, as
is a line of a comma-separated file wider than its grid's header, where a decimal comma
split a cell in two), or blank / ``NA`` / ``NaN`` for no reading. Anything
else, and a negative number, is an error naming the well (in :func:`read_plate`, only in
a well the map uses): the schema stores raw, non-negative readings (export raw, not
blank-subtracted, optical densities).

Errors are :class:`~cytosafe.errors.InputError` (or its subclasses ``SchemaError``,
``UnitError``) naming the file, the 1-based line (the sheet row in a workbook), the well
and the field. Nothing partial is returned, and the writers write a file whole or not at
all.

Writers. :func:`write_plate_map` (grid or long) and :func:`write_reader_matrix` write one
plate of a measurement table in the forms above (``.xlsx`` for a workbook, anything else
as CSV), such that :func:`read_plate` reads the same table back. The plate map carries
``plate_id``, so a plate keeps its identifier even when the matrix file is named
otherwise.
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

import numpy as np
import pandas as pd

from cytosafe._atomic import atomic_write
from cytosafe.errors import DataWarning, InputError
from cytosafe.io._text import decode_text
from cytosafe.io._values import floor_at_zero, number_text
from cytosafe.io._workbook import save_workbook
from cytosafe.io.reader import _caller_stacklevel, finish
from cytosafe.schema.measurements import MEASUREMENT_COLUMNS, validate_measurements
from cytosafe.schema.units import analyte_unit, canonical_unit
from cytosafe.schema.wells import (
    PLATE_FORMATS,
    normalize_well,
    plate_format_for,
    well_index,
    well_name,
)

__all__ = [
    "PLATE_MAP_COLUMNS",
    "READING_COLUMNS",
    "join_plate_map",
    "read_plate",
    "read_plate_map",
    "read_reader_matrix",
    "write_plate_map",
    "write_reader_matrix",
]

#: Default ``study_id`` when none is given (a plate does not know its study).
DEFAULT_STUDY_ID = "unassigned"

#: The fields a plate map may set, in the order the writers put them.
PLATE_MAP_COLUMNS = (
    "plate_id",
    "sample_type",
    "standard_concentration",
    "concentration_unit",
    "donor_id",
    "treatment",
    "treatment_role",
    "treatment_concentration",
    "treatment_unit",
    "assay_format",
    "incubation_h",
    "replicate",
    "dilution_factor",
    "sample_id",
)
_NUMERIC_FIELDS = (
    "standard_concentration",
    "treatment_concentration",
    "incubation_h",
    "replicate",
    "dilution_factor",
)
# What only the reader (or read_plate's arguments) knows; a plate map setting it is a mistake.
_NOT_IN_MAP = {
    "study_id",
    "analyte",
    "signal",
    "bead_count",
    "source_file",
    "source_row",
    "plate_map_file",
    "plate_map_row",
}
_SCHEMA_FIELDS = {c.name for c in MEASUREMENT_COLUMNS}
_WELL_HEADERS = {"well", "wells"}  # plater's tidy output names its well column "Wells"
_EMPTY_TYPES = {"", "empty"}
# Cells meaning "no value": blank, R's NA (plater reads it as NA), and the NaN/#N/A of
# instrument software and Excel.
_MISSING = {"", "na", "nan", "n/a", "#n/a"}
# Section titles above a grid that name the section, not the analyte (Gen5's "Results").
_GENERIC_TITLES = {"results", "result", "data", "raw data", "values", "matrix", "plate"}
_TOP_LEFT_NO_NAME = {"", "<>"}  # Tecan i-control writes "<>" in the corner
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+([eE][+-]?\d+)?$")
_ROW_LETTER = re.compile(r"^[A-Pa-p]$")
_SIGNAL_HINTS = {
    "OVRFLW": " (Gen5 writes OVRFLW when the reading saturated the detector)",
    "MISSED": " (Gen5 writes MISSED when a well was not read)",
}
_EXPECTED_GRID = "8 rows A-H of 12 columns (96 wells) or 16 rows A-P of 24 columns (384 wells)"
_FORMAT_BY_COLUMNS = {n_cols: fmt for fmt, (_, n_cols) in PLATE_FORMATS.items()}


# --------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class _Line:
    """One line of a text file (or row of a sheet): 1-based number and stripped cells."""

    number: int
    cells: tuple[str, ...]  # trailing empty cells dropped
    width: int = 0  # cells before the trailing empty ones were dropped

    @property
    def blank(self) -> bool:
        return not self.cells

    def cell(self, i: int) -> str:
        return self.cells[i] if i < len(self.cells) else ""


@dataclass(frozen=True)
class _Sheet:
    """A file read as lines of cells."""

    source: str
    lines: tuple[_Line, ...]
    decimal_comma: bool  # files separated by tabs or semicolons may write 0,105


def _cell_text(value: object) -> str:
    """A workbook cell as the text a CSV export of it would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _format_number(float(value))
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return str(value).strip()


def _format_number(x: float) -> str:
    """Shortest text that reads back as exactly ``x`` (``600.0`` -> ``600``; ``nan``)."""
    return number_text(x, missing=str(x))


def _delimiter(text: str) -> str:
    sample = [ln for ln in text.splitlines()[:200] if ln.strip()]
    if any("\t" in ln for ln in sample):
        return "\t"
    semis = sum(ln.count(";") for ln in sample)
    commas = sum(ln.count(",") for ln in sample)
    return ";" if semis > commas else ","


def _read_sheet(path: str | Path) -> _Sheet:
    """Read a CSV/TSV/TXT file, or the first sheet of an XLSX workbook, as lines of cells."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise InputError("file not found", file=source)
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise InputError(
            "legacy .xls workbooks are not read here",
            file=source,
            expected="the sheet saved as .xlsx or .csv",
        )
    lines: list[_Line] = []
    if suffix in {".xlsx", ".xlsm"}:
        import openpyxl

        try:
            book = openpyxl.load_workbook(path, data_only=True)
        except Exception as exc:  # openpyxl raises several unrelated types for bad files
            raise InputError(f"cannot be read as an XLSX workbook: {exc}", file=source) from None
        sheet = book.worksheets[0]
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            lines.append(_Line(number, _trim(_cell_text(v) for v in row), len(row)))
        return _Sheet(source, tuple(lines), decimal_comma=False)
    # Reader software on Windows may write UTF-16 or the ANSI code page (Gen5's "°C").
    text = decode_text(path.read_bytes(), file=source)
    delimiter = _delimiter(text)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    start = 1
    try:
        for row in reader:
            lines.append(_Line(start, _trim(c.strip() for c in row), len(row)))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(f"cannot be read as a table: {exc}", file=source, row=start) from None
    decimal_comma = delimiter != "," and _decimal_commas(lines, source)
    return _Sheet(source, tuple(lines), decimal_comma=decimal_comma)


def _decimal_commas(lines: list[_Line], source: str) -> bool:
    """Whether a file separated by tabs or semicolons writes its decimals with commas.

    A file whose numbers have decimal commas (``0,105``) and no decimal points is read
    with commas as decimal points, and a :class:`~cytosafe.errors.DataWarning` says so
    (a European Excel's CSV). A file holding both ``0,105`` and ``0.105`` is ambiguous
    (``1,234`` may be a thousands separator) and is an :class:`InputError` naming a line
    of each (issue 14: a locale is never guessed silently).
    """
    comma = point = None
    for line in lines:
        for text in line.cells:
            if comma is None and _DECIMAL_COMMA.match(text):
                comma = (line.number, text)
            elif point is None and "." in text and _NUMBER.match(text):
                point = (line.number, text)
        if comma and point:
            raise InputError(
                f"numbers are written both with a decimal comma ('{comma[1]}', line "
                f"{comma[0]}) and with a decimal point ('{point[1]}', line {point[0]}): "
                "which is a thousands separator is ambiguous",
                file=source,
                row=comma[0],
                expected="one decimal symbol for the whole file",
            )
    if comma is None:
        return False
    warnings.warn(
        f"{source}: numbers read with a decimal comma ('{comma[1]}' on line {comma[0]} "
        "as " + comma[1].replace(",", ".") + "): the file is separated by "
        "semicolons or tabs and writes no decimal point",
        DataWarning,
        stacklevel=_caller_stacklevel(),
    )
    return True


def _trim(cells: Iterable[str]) -> tuple[str, ...]:
    out = list(cells)
    while out and out[-1] == "":
        out.pop()
    return tuple(out)


def _is_missing(text: str) -> bool:
    return text.strip().lower() in _MISSING


def _as_int(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value == int(value) else None


def _as_number(text: str, decimal_comma: bool) -> float | None:
    s = text.strip()
    if decimal_comma and _DECIMAL_COMMA.match(s):
        s = s.replace(",", ".")
    return float(s) if _NUMBER.match(s) else None


# --------------------------------------------------------------------------- grid blocks


@dataclass(frozen=True)
class _Block:
    """One plate-shaped grid: its name, where it is, and the text of every well."""

    name: str  # top-left cell, or the title line above (matrices); "" when unnamed
    header: int  # line of the column numbers
    plate_format: int
    cells: tuple[tuple[str, str, int], ...]  # (well, text, line), row-major


def _is_header(line: _Line) -> bool:
    """Column numbers after the first cell (a grid's first row), starting at 1."""
    numbers = [c for c in line.cells[1:] if c != ""]
    if len(numbers) < 2:
        return False
    ints = [_as_int(c) for c in numbers]
    return all(i is not None for i in ints) and ints[0] == 1


def _parse_block(
    sheet: _Sheet, start: int, *, plate_format: int | None, allow_label: bool
) -> tuple[_Block, int]:
    """Parse the grid whose header is ``sheet.lines[start]``; return it and the next index."""
    lines, src = sheet.lines, sheet.source
    head = lines[start]
    columns = list(head.cells[1:])
    for k, text in enumerate(columns, start=1):
        if _as_int(text) != k:
            found = f"'{text}'" if text else "a blank cell"
            raise InputError(
                f"column numbers out of order or missing: {found} where column {k} belongs",
                file=src,
                row=head.number,
                field="column",
                expected="column numbers 1, 2, 3, ... 12 (96 wells) or ... 24 (384 wells)",
            )
    n_cols = len(columns)

    rows: list[_Line] = []
    i = start + 1
    while i < len(lines) and not lines[i].blank and _ROW_LETTER.match(lines[i].cell(0)):
        line = lines[i]
        expected = chr(ord("A") + len(rows))
        if line.cell(0).upper() != expected:
            raise InputError(
                f"row letters out of order or missing: '{line.cell(0)}' where row "
                f"{expected} belongs",
                file=src,
                row=line.number,
                field="row",
                expected="rows A, B, C, ... in order, one line each",
            )
        rows.append(line)
        i += 1

    n_rows_expected = PLATE_FORMATS[_FORMAT_BY_COLUMNS[n_cols]][0] if n_cols in (12, 24) else None
    if n_rows_expected is not None and len(rows) < n_rows_expected and i < len(lines):
        stop = lines[i]
        if not stop.blank and not _is_header(stop):
            # A line inside the grid without its row letter: a missing or mistyped letter.
            expected = chr(ord("A") + len(rows))
            hint = (
                " (a Gen5 table with several reads interleaved? export one read per table)"
                if stop.cell(0) == "" and rows
                else ""
            )
            raise InputError(
                f"row letters out of order or missing: '{stop.cell(0)}' where row "
                f"{expected} belongs{hint}",
                file=src,
                row=stop.number,
                field="row",
                expected="rows A, B, C, ... in order, one line each",
            )
    if n_rows_expected is None or len(rows) != n_rows_expected:
        last = f" (A-{chr(ord('A') + len(rows) - 1)})" if rows else ""
        raise InputError(
            f"the grid has {len(rows)} rows{last} of {n_cols} columns, which is not a plate",
            file=src,
            row=head.number,
            field="plate_format",
            expected=_EXPECTED_GRID,
        )
    fmt = _FORMAT_BY_COLUMNS[n_cols]
    if plate_format is not None and plate_format != fmt:
        raise InputError(
            f"the grid is a {fmt}-well plate, but plate_format={plate_format} was given",
            file=src,
            row=head.number,
            field="plate_format",
            expected=f"a {plate_format}-well grid",
        )

    # Gen5 writes the read's label (e.g. "450", "abs450:450") in the cell right of every
    # row; a label repeats on every row, data do not. Nothing else may sit right of a grid.
    beyond = [line.cells[1 + n_cols :] for line in rows]
    labels = set(beyond)
    is_label = allow_label and len(labels) == 1 and len(beyond[0]) == 1
    cells: list[tuple[str, str, int]] = []
    for r, line in enumerate(rows):
        if any(beyond[r]) and not is_label:
            raise InputError(
                f"row {line.cell(0).upper()} has values beyond column {n_cols}",
                file=src,
                row=line.number,
                field="column",
                expected=f"{n_cols} values after the row letter (and at most a read label "
                "repeated on every row)",
            )
        if line.width > head.width and not is_label:
            # Spreadsheets write every line of a CSV equally wide; a line wider than its
            # grid's header has a cell split in two: a decimal comma in a comma-separated
            # file, which would shift the row's values one well along (issue 14).
            raise InputError(
                f"row {line.cell(0).upper()} has {line.width} cells, its grid's header "
                f"{head.width}: a decimal comma ('0,105') in a comma-separated file?",
                file=src,
                row=line.number,
                field="column",
                expected="numbers with a decimal point, or the file separated by ';' or tabs",
            )
        values = list(line.cells[1 : 1 + n_cols])
        values += [""] * (n_cols - len(values))
        for c, text in enumerate(values):
            cells.append((well_name(r, c), text, line.number))
    return _Block(head.cell(0), head.number, fmt, tuple(cells)), i


def _title(sheet: _Sheet, index: int, floor: int) -> str:
    """The analyte named on the line just above a matrix header, or ''.

    ``floor`` is the first line index after the previous grid, whose rows are no title.
    """
    if index - 1 < floor or sheet.lines[index - 1].blank:
        return ""
    cells = [c for c in sheet.lines[index - 1].cells if c != ""]
    text = ""
    if len(cells) == 1:
        text = cells[0]
        key, sep, value = text.partition(":")
        if sep and key.strip().lower() == "analyte":
            text = value.strip()
    elif len(cells) == 2 and cells[0].rstrip(":").strip().lower() == "analyte":
        text = cells[1]
    return "" if text.lower() in _GENERIC_TITLES else text


def _blocks(sheet: _Sheet, *, plate_format: int | None, strict: bool, what: str) -> list[_Block]:
    """Every grid of ``sheet``. ``strict``: nothing but grids and blank lines (plater)."""
    blocks: list[_Block] = []
    i = floor = 0
    while i < len(sheet.lines):
        line = sheet.lines[i]
        if line.blank:
            i += 1
            continue
        if _is_header(line):
            block, nxt = _parse_block(sheet, i, plate_format=plate_format, allow_label=not strict)
            name = block.name.strip()
            if name in _TOP_LEFT_NO_NAME:
                name = "" if strict else _title(sheet, i, floor)
            blocks.append(_Block(name, block.header, block.plate_format, block.cells))
            i = floor = nxt
            continue
        if strict:
            raise InputError(
                "this line is not part of a plate-shaped layout",
                file=sheet.source,
                row=line.number,
                expected="layouts only: a name and column numbers 1..12 (or 1..24), rows "
                "A..H (or A..P), and a blank line between layouts",
            )
        if _ROW_LETTER.match(line.cell(0)) and any(
            _as_number(c, sheet.decimal_comma) is not None for c in line.cells[1:]
        ):
            raise InputError(
                f"row {line.cell(0).upper()} has no line of column numbers above it",
                file=sheet.source,
                row=line.number,
                field="column",
                expected="a header line with the column numbers 1..12 (or 1..24) above row A",
            )
        i += 1
    if not blocks:
        raise InputError(
            f"no plate-shaped {what} found",
            file=sheet.source,
            expected="a line of column numbers 1..12 (or 1..24) followed by rows A..H (or A..P)",
        )
    formats = {b.plate_format for b in blocks}
    if len(formats) > 1:
        other = next(b for b in blocks if b.plate_format != blocks[0].plate_format)
        raise InputError(
            f"grids of different plate sizes in one file ({blocks[0].plate_format} and "
            f"{other.plate_format} wells)",
            file=sheet.source,
            row=other.header,
            field="plate_format",
            expected="one plate per file",
        )
    return blocks


def _check_unique(blocks: Sequence[_Block], names: Sequence[str], source: str, field: str):
    seen: dict[str, int] = {}
    for block, name in zip(blocks, names, strict=True):
        if name in seen:
            raise InputError(
                f"two blocks are named '{name}' (the first at line {seen[name]})",
                file=source,
                row=block.header,
                field=field,
                expected="a distinct name in the top-left cell of every block",
            )
        seen[name] = block.header


# --------------------------------------------------------------------------- reader matrix


def _matrix_blocks(
    path: str | Path, analyte: str | None, plate_format: int | None
) -> tuple[_Sheet, list[tuple[str, _Block]]]:
    """Parse a reader matrix and name its blocks: [(analyte, block)]."""
    sheet = _read_sheet(path)
    blocks = _blocks(sheet, plate_format=plate_format, strict=False, what="signal grid")
    named = [b for b in blocks if b.name]
    _check_unique(named, [b.name for b in named], sheet.source, "analyte")
    if analyte is not None:
        analyte = str(analyte).strip()
        if not analyte:
            raise InputError("analyte is empty", file=sheet.source, field="analyte")
        if len(blocks) == 1:
            return sheet, [(analyte, blocks[0])]
        chosen = [b for b in blocks if b.name == analyte]
        if not chosen:
            names = ", ".join(f"'{b.name}'" for b in named) or "none"
            raise InputError(
                f"no block is named '{analyte}' (blocks named: {names})",
                file=sheet.source,
                field="analyte",
                expected="the analyte's name in the top-left cell of its block",
            )
        return sheet, [(analyte, chosen[0])]
    for block in blocks:
        if not block.name:
            raise InputError(
                "the block does not name its analyte",
                file=sheet.source,
                row=block.header,
                field="analyte",
                expected="the analyte in the block's top-left cell or on the line above it, "
                "or analyte=... for a one-block file",
            )
    return sheet, [(b.name, b) for b in blocks]


def _signal(text: str, sheet: _Sheet, well: str, line: int, analyte: str) -> float:
    value = _as_number(text, sheet.decimal_comma)
    if value is None:
        raise InputError(
            f"'{text}' is not a number (analyte {analyte}){_SIGNAL_HINTS.get(text.upper(), '')}",
            file=sheet.source,
            row=line,
            well=well,
            field="signal",
            expected="a non-negative number, or a blank cell for no reading",
        )
    if value < 0 or not math.isfinite(value):
        raise InputError(
            f"signal {text} is negative or not finite (analyte {analyte})",
            file=sheet.source,
            row=line,
            well=well,
            field="signal",
            expected="a raw, non-negative reading (export raw, not blank-subtracted, values)",
        )
    return value


def read_reader_matrix(
    path: str | Path, *, analyte: str | None = None, plate_format: int | None = None
) -> pd.DataFrame:
    """Read plate-shaped signal grids (one block per analyte) into one row per reading.

    Parameters
    ----------
    path:
        CSV, TSV, semicolon-separated text or XLSX (first sheet); layouts as described in
        the module documentation (plain or ``plater`` grids, BioTek Gen5 text exports,
        Thermo SkanIt workbooks).
    analyte:
        For a file with one block: the analyte it holds, whatever the block is called.
        For several blocks: read only the block of that name.
    plate_format:
        96 or 384; by default the plate size follows from the grid.

    Returns
    -------
    pandas.DataFrame
        Columns ``well, analyte, signal, source_file, source_row`` (the 1-based line of
        the well's row), blocks in file order and wells row by row. Blank cells are no
        reading and give no row. ``attrs`` holds ``plate_format`` and ``source``.

    Raises
    ------
    InputError
        Naming file, line, well and field: a grid that is not 8 x 12 or 16 x 24, row
        letters or column numbers out of order or missing, a non-numeric or negative
        signal, two blocks with the same name, a block without an analyte name.

    Examples
    --------
    >>> read_reader_matrix("il6_od450.csv", analyte="IL-6")  # doctest: +SKIP
    """
    sheet, named = _matrix_blocks(path, analyte, plate_format)
    records = []
    for name, block in named:
        for well, text, line in block.cells:
            if _is_missing(text):
                continue
            signal = _signal(text, sheet, well, line, name)
            records.append((well, name, signal, sheet.source, line))
    if not records:
        raise InputError(
            "the matrix holds no readings", file=sheet.source, field="signal", expected="numbers"
        )
    out = pd.DataFrame(records, columns=["well", "analyte", "signal", "source_file", "source_row"])
    out["source_row"] = out["source_row"].astype("Int64")
    out.attrs.update(plate_format=named[0][1].plate_format, source=sheet.source)
    return out


# --------------------------------------------------------------------------- plate map


def _field_name(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip()).lower()


@dataclass
class _RawMap:
    """A plate map as text: one dict of field -> cell text per well, with locations."""

    source: str
    layout: str  # "grid" | "long"
    fields: list[str]  # map fields in file order (well excluded)
    rows: list[dict[str, str]]  # includes "well"
    lines: list[int]  # line of each row (grid: the well's line in the sample_type layout)
    cell_lines: list[dict[str, int]]  # per row: the line of each field's cell
    field_lines: dict[str, int]  # where each field is named (header line / layout line)
    plate_format: int | None
    decimal_comma: bool


def _raw_grid_map(sheet: _Sheet, plate_format: int | None) -> _RawMap:
    blocks = _blocks(sheet, plate_format=plate_format, strict=True, what="plate map layout")
    names = []
    for block in blocks:
        if not block.name:
            raise InputError(
                "the layout has no name in its top-left cell",
                file=sheet.source,
                row=block.header,
                expected="the variable's name (e.g. sample_type) in the top-left cell",
            )
        names.append(_field_name(block.name))
    _check_unique(blocks, names, sheet.source, "layout name")
    by_well: dict[str, dict[str, str]] = {}
    lines_by_well: dict[str, dict[str, int]] = {}
    for name, block in zip(names, blocks, strict=True):
        for well, text, line in block.cells:
            by_well.setdefault(well, {"well": well})[name] = "" if _is_missing(text) else text
            lines_by_well.setdefault(well, {"well": line})[name] = line
    wells = sorted(by_well, key=well_index)
    anchor = "sample_type" if "sample_type" in names else names[0]
    return _RawMap(
        source=sheet.source,
        layout="grid",
        fields=names,
        rows=[by_well[w] for w in wells],
        lines=[lines_by_well[w][anchor] for w in wells],
        cell_lines=[lines_by_well[w] for w in wells],
        field_lines={n: b.header for n, b in zip(names, blocks, strict=True)},
        plate_format=blocks[0].plate_format,
        decimal_comma=sheet.decimal_comma,
    )


def _raw_long_map(sheet: _Sheet, plate_format: int | None) -> _RawMap:
    content = [ln for ln in sheet.lines if not ln.blank]
    head = content[0]
    names = [_field_name(c) for c in head.cells]
    for k, name in enumerate(names):
        if name == "":
            raise InputError(
                f"column {k + 1} of the header has no name",
                file=sheet.source,
                row=head.number,
                expected="a name for every column",
            )
        if names.index(name) != k:
            raise InputError(
                f"column '{name}' appears twice in the header",
                file=sheet.source,
                row=head.number,
                field=name,
                expected="each column once",
            )
    well_cols = [n for n in names if n in _WELL_HEADERS]
    if len(well_cols) != 1:
        raise InputError(
            "the plate map needs one 'well' column" if not well_cols else "two well columns",
            file=sheet.source,
            row=head.number,
            field="well",
            expected="a header line with 'well' and 'sample_type' (or a plater-style grid)",
        )
    names = ["well" if n == well_cols[0] else n for n in names]
    rows, lines, cell_lines = [], [], []
    for line in content[1:]:
        if len(line.cells) > len(names) or line.width > max(head.width, len(names)):
            # A line wider than the header, even by an empty cell, has a cell split in
            # two: a decimal comma in a comma-separated file shifts the line (issue 14).
            raise InputError(
                f"the line has {line.width} cells but the header names {len(names)} columns"
                " (a decimal comma in a comma-separated file?)",
                file=sheet.source,
                row=line.number,
                expected="one cell per header column",
            )
        row = {n: ("" if _is_missing(line.cell(k)) else line.cell(k)) for k, n in enumerate(names)}
        rows.append(row)
        lines.append(line.number)
        cell_lines.append(dict.fromkeys(names, line.number))
    return _RawMap(
        source=sheet.source,
        layout="long",
        fields=[n for n in names if n != "well"],
        rows=rows,
        lines=lines,
        cell_lines=cell_lines,
        field_lines=dict.fromkeys(names, head.number),
        plate_format=plate_format,
        decimal_comma=sheet.decimal_comma,
    )


def _relocate(exc: InputError, raw: _RawMap) -> InputError:
    """Point a validation error of a grid at the field's own layout line."""
    row = exc.row
    if raw.layout == "grid" and exc.well and exc.field:
        for cells, values in zip(raw.cell_lines, raw.rows, strict=True):
            if values.get("well") == exc.well and exc.field in cells:
                row = cells[exc.field]
                break
    return type(exc)(
        exc.message, file=raw.source, row=row, well=exc.well, field=exc.field, expected=exc.expected
    )


def _typed_map(raw: _RawMap, plate_format: int | None) -> pd.DataFrame:
    """Check a raw map field by field and return it typed, one row per described well."""
    src = raw.source
    for name in raw.fields:
        if name in _NOT_IN_MAP:
            raise InputError(
                f"a plate map cannot set '{name}'",
                file=src,
                row=raw.field_lines.get(name),
                field=name,
                expected="metadata only; analyte and signal come from the reader matrix, "
                "study_id from read_plate",
            )
    if "sample_type" not in raw.fields:
        raise InputError(
            "the plate map has no sample_type",
            file=src,
            field="sample_type",
            expected="a sample_type column (long form) or layout (grid)",
        )

    described: list[int] = []
    empty: list[tuple[str | None, str]] = []
    seen: dict[tuple[str, str], int] = {}
    fmt_for_wells = plate_format if plate_format is not None else raw.plate_format
    for pos, (row, line) in enumerate(zip(raw.rows, raw.lines, strict=True)):
        text = row.get("well", "")
        if text == "":
            if any(v != "" for k, v in row.items() if k != "well"):
                raise InputError(
                    "the well is empty", file=src, row=line, field="well", expected="e.g. A01"
                )
            continue
        well = normalize_well(text, plate_format=fmt_for_wells, file=src, row=line)
        row["well"] = well
        plate = row.get("plate_id", "")
        key = (plate, well)
        if key in seen:
            raise InputError(
                f"well {well} appears twice in the plate map (first at line {seen[key]})",
                file=src,
                row=line,
                well=well,
                field="well",
                expected="one line per well" + (" and plate" if plate else ""),
            )
        seen[key] = line
        stype = row.get("sample_type", "")
        if stype.lower() in _EMPTY_TYPES:
            filled = [
                k for k, v in row.items() if k not in {"well", "plate_id", "sample_type"} and v
            ]
            if filled:
                raise InputError(
                    f"well {well} has a {filled[0]} but no sample type",
                    file=src,
                    row=raw.cell_lines[pos].get("sample_type", line),
                    well=well,
                    field="sample_type",
                    expected="standard | blank | sample | control, or the well's other "
                    "values removed to leave it empty",
                )
            empty.append((plate or None, well))
            continue
        described.append(pos)
    if not described:
        raise InputError(
            "the plate map describes no wells",
            file=src,
            field="sample_type",
            expected="a sample type for every used well",
        )

    table = pd.DataFrame([raw.rows[p] for p in described], columns=["well", *raw.fields])
    table = table.replace("", np.nan)
    lines = [raw.lines[p] for p in described]
    if "plate_id" in table.columns:
        blank = table["plate_id"].isna().to_numpy()
        if blank.any():
            pos = int(np.flatnonzero(blank)[0])
            raise InputError(
                "plate_id is empty",
                file=src,
                row=raw.cell_lines[described[pos]].get("plate_id", lines[pos]),
                well=table["well"].iat[pos],
                field="plate_id",
                expected="the plate's identifier on every used well (or no plate_id at all)",
            )
    if raw.decimal_comma:
        for name in _NUMERIC_FIELDS:
            if name in table.columns:
                table[name] = table[name].map(
                    lambda v: (
                        v.replace(",", ".") if isinstance(v, str) and _DECIMAL_COMMA.match(v) else v
                    )
                )

    # The schema's own checks (sample types, roles, numbers, units, a standard's level),
    # run on a stand-in measurement table so that the messages name this file's lines.
    stand_in = table.drop(columns=["concentration_unit"], errors="ignore").copy()
    for name, value in (("study_id", "map"), ("analyte", "map"), ("signal", 0.0)):
        stand_in[name] = value
    if "plate_id" not in stand_in.columns:
        stand_in["plate_id"] = "map"
    stand_in["source_file"] = src
    stand_in["source_row"] = lines
    try:
        checked = validate_measurements(stand_in)
    except InputError as exc:  # SchemaError, or UnitError for treatment_unit
        raise _relocate(exc, raw) from None

    out = pd.DataFrame({"well": checked["well"]})
    for name in raw.fields:
        if name == "concentration_unit":
            out[name] = _units(table, raw, described, lines)
        elif name in _SCHEMA_FIELDS:
            out[name] = checked[name]
        else:
            out[name] = table[name]  # extras stay as written
    ordered = [c for c in PLATE_MAP_COLUMNS if c in out.columns]
    extras = [c for c in out.columns if c not in ordered and c != "well"]
    out = out[["well", *ordered, *extras]].copy()
    out["source_file"] = src
    out["source_row"] = pd.array(lines, dtype="Int64")
    order = sorted(
        range(len(out)),
        key=lambda k: (
            str(out["plate_id"].iat[k]) if "plate_id" in out else "",
            well_index(out["well"].iat[k]),
        ),
    )
    out = out.iloc[order].reset_index(drop=True)
    fmt = raw.plate_format or plate_format or plate_format_for(list(out["well"]))
    out.attrs.update(
        source=src,
        layout=raw.layout,
        plate_format=fmt,
        empty_wells=tuple(sorted(set(empty), key=lambda pw: (pw[0] or "", well_index(pw[1])))),
    )
    return out


def _units(table: pd.DataFrame, raw: _RawMap, described: list[int], lines: list[int]) -> list:
    """Canonical concentration units: mass units (converted to pg/mL when the map is
    joined) or arbitrary units (kept); molar and unknown units are refused."""
    out: list[object] = []
    for pos, value in enumerate(table["concentration_unit"].tolist()):
        if not isinstance(value, str):
            out.append(np.nan)
            continue
        where = {
            "file": raw.source,
            "row": raw.cell_lines[described[pos]].get("concentration_unit", lines[pos]),
            "well": table["well"].iat[pos],
            "field": "concentration_unit",
        }
        analyte_unit(value, **where)  # unknown or molar: UnitError naming the cell
        out.append(canonical_unit(value, **where))
    return out


def read_plate_map(path: str | Path, *, plate_format: int | None = None) -> pd.DataFrame:
    """Read a plate map, long form or ``plater`` grid, into one row per described well.

    Parameters
    ----------
    path:
        CSV, TSV or XLSX (first sheet). The form is recognised from the first non-blank
        line: column numbers mean a grid (module documentation).
    plate_format:
        96 or 384. A grid must have that size; a long map's wells must exist on it. By
        default a grid's size is its own and a long map's the smallest plate holding its
        wells.

    Returns
    -------
    pandas.DataFrame
        ``well`` (``A01``), the map's fields typed as in the measurement schema
        (``standard_concentration`` as written, with its canonical ``concentration_unit``)
        in :data:`PLATE_MAP_COLUMNS` order, any extra columns as text, then
        ``source_file`` and ``source_row`` (the well's line; in a grid, its line in the
        ``sample_type`` layout). Rows are sorted by plate and well. ``attrs`` holds
        ``source``, ``layout`` (``"grid"`` / ``"long"``), ``plate_format`` and
        ``empty_wells``, the ``(plate_id or None, well)`` pairs the map marks empty.

    Raises
    ------
    InputError
        Naming file, line, well and field: malformed grids (as for
        :func:`read_reader_matrix`), a layout without a name, two layouts or columns of
        the same name, a well listed twice, a well with values but no sample type, and
        every value the measurement schema refuses (``SchemaError``) or an unknown or
        molar concentration unit (``UnitError``; arbitrary units such as IU/mL are kept).

    Examples
    --------
    >>> plate_map = read_plate_map("il6_plate_map.csv")  # doctest: +SKIP
    >>> plate_map.attrs["empty_wells"]  # doctest: +SKIP
    """
    if plate_format is not None and plate_format not in PLATE_FORMATS:
        raise InputError(
            f"plate_format {plate_format} is not supported",
            field="plate_format",
            expected="96 or 384",
        )
    sheet = _read_sheet(path)
    first = next((ln for ln in sheet.lines if not ln.blank), None)
    if first is None:
        raise InputError("the file is empty", file=sheet.source, expected="a plate map")
    if _is_header(first):
        raw = _raw_grid_map(sheet, plate_format)
    else:
        raw = _raw_long_map(sheet, plate_format)
    return _typed_map(raw, plate_format)


def _map_from_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A plate map given as a DataFrame: as returned by :func:`read_plate_map`, or any
    long-form table (read as if it were a CSV, header on line 1)."""
    if frame.attrs.get("layout") in {"grid", "long"} and "source_row" in frame.columns:
        return frame
    columns = [str(c) for c in frame.columns]
    lines = [_Line(1, tuple(columns))]
    for k, values in enumerate(frame.itertuples(index=False), start=2):
        lines.append(_Line(k, tuple("" if _null(v) else _cell_text(v) for v in values)))
    sheet = _Sheet("<plate map DataFrame>", tuple(lines), decimal_comma=False)
    return _typed_map(_raw_long_map(sheet, None), None)


def _null(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------- the join

#: The columns of a table of readings (:func:`join_plate_map`).
READING_COLUMNS = ("well", "analyte", "signal", "problem", "source_file", "source_row")
# A problem text that says nothing was read (not that the instrument reported an error).
_NO_READING = "no reading"


def _load_map(plate_map: str | Path | pd.DataFrame) -> pd.DataFrame:
    """The plate map as :func:`read_plate_map` returns it, from a path or a table."""
    if isinstance(plate_map, pd.DataFrame):
        return _map_from_frame(plate_map)
    return read_plate_map(plate_map)


def _choose_plate(
    pmap: pd.DataFrame,
    plate_id: str | None,
    plates: list[str],
    named: bool,
    *,
    map_src: str,
    source: str,
    what: str,
) -> tuple[str, str, pd.DataFrame]:
    """The plate: its identifier, the readings' plate it was read as, and its map rows.

    ``plates`` are the readings' plates (their ``plate_id``, ``named``; else the file's
    stem).
    """
    rows = pmap
    chosen: str | None = None
    if "plate_id" in pmap.columns:
        ids = list(dict.fromkeys(pmap["plate_id"].astype(str)))
        if plate_id is not None:
            if str(plate_id) not in ids:
                raise InputError(
                    f"the plate map has no plate '{plate_id}' (it describes {', '.join(ids)})",
                    file=map_src,
                    field="plate_id",
                    expected="a plate_id that the plate map names",
                )
            chosen = str(plate_id)
        elif len(ids) == 1:
            chosen = ids[0]
        else:
            matching = [p for p in plates if p in ids]
            if len(matching) != 1:
                held = (
                    f"the {what} holds {', '.join(plates)}"
                    if named
                    else f"the {what} file name '{plates[0]}' is none of them"
                )
                raise InputError(
                    f"the plate map describes plates {', '.join(ids)}; {held}",
                    file=map_src,
                    field="plate_id",
                    expected=f"plate_id=... naming the plate the {what} was read from",
                )
            chosen = matching[0]
        rows = pmap[pmap["plate_id"].astype(str) == chosen]
    wanted = str(plate_id) if plate_id is not None else chosen
    if wanted is not None and wanted in plates:
        read_as = wanted
    elif len(plates) == 1:
        read_as = plates[0]
    else:
        raise InputError(
            f"the {what} holds plates {', '.join(plates)}"
            + (f", none called '{wanted}'" if wanted is not None else ""),
            file=source,
            field="plate_id",
            expected="plate_id=... naming one of them",
        )
    return (chosen if chosen is not None else (wanted or read_as)), read_as, rows


def join_plate_map(
    readings: pd.DataFrame,
    plate_map: str | Path | pd.DataFrame,
    *,
    study_id: str | None,
    plate_id: str | None = None,
    standard_unit: str | None = None,
    plate_format: int | None = None,
    below_zero: str = "refuse",
    what: str = "reader matrix",
) -> pd.DataFrame:
    """Join the readings of one plate-reader file to a plate map: the validated table.

    The rules of every plate-map read (:func:`read_plate`, and
    :func:`cytosafe.io.asm.read_asm_plate` for SoftMax Pro, Gen5 and ASM exports), in the
    words of the module notes: the map says what each well holds, the readings give the
    signals; a well the map marks empty is not read, whatever was measured there; a
    reading in a well the map neither describes nor marks empty, and a described well
    without a valid reading, are errors.

    Parameters
    ----------
    readings:
        One row per well and analyte that the file holds (:data:`READING_COLUMNS`):
        ``well`` (``A01``), ``analyte``, ``signal`` (NaN: no value), ``problem`` (text
        saying why the reading cannot be used, e.g. the instrument's ``OVRFLW``, or
        missing; a text starting ``no reading`` means nothing was read), ``source_file``
        (the one file read) and ``source_row`` (its line, or missing). A blank cell is a
        row with neither signal nor problem. An optional ``plate_id`` column names the
        plates of a file that holds several; without it the plate is called like the
        file (its stem). Any other column is kept as an extra column of the table
        (``sample_id``: unless the plate map names the wells' samples).
    plate_map:
        Path of a plate map (long form or ``plater`` grid), the table
        :func:`read_plate_map` returns, or any long-form table.
    study_id:
        The study; ``None`` gives ``"unassigned"`` (a reader does not know its study).
    plate_id:
        The plate. By default the one the map names (when it names one; when it names
        several, the one the readings name, or the file's stem), else the readings' one
        plate. For readings of several plates it also selects which is read.
    standard_unit:
        Unit of ``standard_concentration`` for map wells without a ``concentration_unit``
        (default pg/mL); mass units are stored in pg/mL, arbitrary units (IU/mL, ...) as
        written.
    plate_format:
        96 or 384, the plate the readings come from; by default the smallest plate
        holding their wells.
    below_zero:
        A signal below zero in a described well: ``"refuse"`` (an error: a reader matrix
        must hold raw, not blank-subtracted, values) or ``"zero"`` (stored as 0.0 with a
        :class:`~cytosafe.errors.DataWarning` naming the wells,
        :func:`~cytosafe.io._values.floor_at_zero`: optical densities and their
        reference-subtracted differences, whose noise may cross zero).
    what:
        What the readings were read from, for messages (``"reader matrix"``,
        ``"export"``).

    Returns
    -------
    pandas.DataFrame
        The table of :func:`~cytosafe.schema.measurements.validate_measurements`, after
        :func:`~cytosafe.io.reader.finish` with the map as the sample map: one row per
        described well x analyte, ``source_file`` / ``source_row`` locating the reading,
        the extras ``plate_map_file`` / ``plate_map_row`` locating the well in the map,
        then the readings' extras and any extra map columns.

    Raises
    ------
    InputError
        Naming file, line, well and field: everything :func:`read_plate_map` refuses, a
        map well outside the plate, a grid map of another plate size, a plate the map or
        the readings do not hold, a reading in a well the map neither describes nor marks
        empty, a described well without a valid reading (the reading's problem, or "no
        reading for analyte ..."), a signal below zero (``below_zero="refuse"``), an
        unknown ``standard_unit`` (``UnitError``).

    Examples
    --------
    >>> readings = pd.DataFrame({"well": ["A01", "A02"], "analyte": "IL-6",
    ...                          "signal": [1.52, 0.05], "problem": None,
    ...                          "source_file": "plate7.csv", "source_row": [2, 2]})
    >>> table = join_plate_map(readings, "plate_map.csv", study_id="S")  # doctest: +SKIP
    """
    if below_zero not in {"refuse", "zero"}:
        raise ValueError(f"below_zero must be 'refuse' or 'zero', not {below_zero!r}")
    default_unit = analyte_unit(standard_unit, field="standard_unit")
    pmap = _load_map(plate_map)
    map_src = str(pmap.attrs.get("source", "<plate map>"))
    missing_columns = [c for c in READING_COLUMNS if c not in readings.columns]
    if missing_columns or readings.empty:
        raise ValueError(
            "readings need the columns " + ", ".join(READING_COLUMNS) + " and at least one row"
        )
    source = str(readings["source_file"].iloc[0])
    pending = list(readings.attrs.get("warnings", ()))
    named = "plate_id" in readings.columns
    plates = list(dict.fromkeys(readings["plate_id"].astype(str))) if named else [Path(source).stem]
    pid, read_as, rows = _choose_plate(
        pmap, plate_id, plates, named, map_src=map_src, source=source, what=what
    )
    if named:
        readings = readings[readings["plate_id"].astype(str) == read_as]
    readings = readings.drop(columns="plate_id", errors="ignore").reset_index(drop=True)

    fmt = plate_format or plate_format_for(list(readings["well"]))
    n_rows, n_cols = PLATE_FORMATS[fmt]
    for well, line in zip(rows["well"], rows["source_row"], strict=True):
        r, c = well_index(well)
        if r >= n_rows or c >= n_cols:
            raise InputError(
                f"the plate map names well {well}, which the {fmt}-well {what} "
                f"({source}) does not have",
                file=map_src,
                row=int(line),
                well=well,
                field="well",
                expected=f"wells A01-{well_name(n_rows - 1, n_cols - 1)}",
            )
    if pmap.attrs.get("layout") == "grid" and pmap.attrs.get("plate_format") != fmt:
        raise InputError(
            f"the plate map is a {pmap.attrs.get('plate_format')}-well layout but the "
            f"{what} is a {fmt}-well plate",
            file=map_src,
            field="plate_format",
            expected=f"a plate map and a {what} of the same plate size",
        )
    described = dict(zip(rows["well"], rows["sample_type"].astype(str), strict=True))
    map_line = dict(zip(rows["well"], rows["source_row"].astype(int), strict=True))
    empty = {w for p, w in pmap.attrs.get("empty_wells", ()) if p is None or p == pid}

    readings = readings[~readings["well"].isin(empty)].reset_index(drop=True)
    _check_readings(readings, described, map_line, map_src, below_zero, what)
    used = readings[readings["well"].isin(list(described))].reset_index(drop=True)
    if below_zero == "zero":
        used, floored = floor_at_zero(used, source)
        pending += floored

    meas = used[["analyte", "well", "signal"]].copy()
    meas.insert(0, "study_id", DEFAULT_STUDY_ID if study_id is None else study_id)
    meas.insert(1, "plate_id", pid)
    meas["source_row"] = pd.array(used["source_row"], dtype="Int64")
    meas["sample_type"] = np.nan  # annotate sets it from the map
    meas["source_file"] = used["source_file"].to_numpy()
    if "sample_id" in rows.columns:
        # Set here: annotate keys on sample_id whenever a map has that column; here the
        # key is the well (and a standard's name repeats across its replicate wells).
        meas["sample_id"] = meas["well"].map(rows.set_index("well")["sample_id"])
    elif "sample_id" in used.columns:
        meas["sample_id"] = used["sample_id"].to_numpy()  # the file's own names
    meas["plate_map_file"] = map_src
    meas["plate_map_row"] = meas["well"].map(map_line).astype("Int64")
    for column in used.columns:
        if column not in meas.columns and column not in READING_COLUMNS:
            meas[column] = used[column].to_numpy()

    smap = rows.drop(
        columns=["plate_id", "sample_id", "concentration_unit", "source_file", "source_row"],
        errors="ignore",
    ).copy()
    # Each well's unit as stored (pg/mL, or an arbitrary unit as written): the map's, else
    # standard_unit's when given; a well that states none takes its curve's (validation).
    said = (
        rows["concentration_unit"]
        if "concentration_unit" in rows.columns
        else pd.Series(None, index=rows.index, dtype=object)
    )
    stored = [
        analyte_unit(u) if isinstance(u, str) else (default_unit if standard_unit else None)
        for u in said
    ]
    if any(s is not None for s in stored):
        smap["concentration_unit"] = [s[0] if s else None for s in stored]
    if "standard_concentration" in smap.columns:
        factor = np.array([s[1] if s else default_unit[1] for s in stored], dtype=float)
        smap["standard_concentration"] = rows["standard_concentration"].astype(float) * factor
    smap["_map_row"] = rows["source_row"].astype(int).to_numpy()
    meas.attrs["warnings"] = pending
    # The map is this reading's sample map: the same closing steps as every reader's.
    return finish(meas, source=source, sample_map=smap, map_source=map_src)


def _check_readings(
    readings: pd.DataFrame,
    described: dict[str, str],
    map_line: dict[str, int],
    map_src: str,
    below_zero: str,
    what: str,
) -> None:
    """The first reading (in the file's order) the map cannot take, as an InputError."""
    signal = readings["signal"].astype(float)
    problem = readings["problem"].astype(object).where(readings["problem"].notna(), None)
    said = problem.notna()
    nothing = signal.isna() & (~said | problem.astype(str).str.startswith(_NO_READING))
    is_used = readings["well"].isin(list(described))
    stray = ~is_used & ~nothing
    unusable = is_used & (said | signal.isna())
    negative = is_used & ~unusable & (signal < 0) if below_zero == "refuse" else is_used & False
    bad = (stray | unusable | negative).to_numpy()
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        row = readings.iloc[pos]
        well, analyte = row["well"], row["analyte"]
        where = {
            "file": str(row["source_file"]),
            "row": int(row["source_row"]) if pd.notna(row["source_row"]) else None,
            "well": well,
        }
        if stray.iat[pos]:
            shown = f"{signal.iat[pos]:g}" if pd.notna(signal.iat[pos]) else problem.iat[pos]
            raise InputError(
                f"the well has a reading ({shown}, analyte {analyte}) but the plate map "
                f"({map_src}) does not say what it holds",
                field="well",
                expected="a plate-map entry with the well's sample_type, or the well "
                "marked empty (a blank sample_type, or 'empty' in a long map)",
                **where,
            )
        if negative.iat[pos]:
            raise InputError(
                f"signal {signal.iat[pos]:g} is below zero (analyte {analyte})",
                field="signal",
                expected="a raw, non-negative reading (export raw, not blank-subtracted, values)",
                **where,
            )
        more = int(unusable.sum()) - 1
        text = problem.iat[pos]
        if nothing.iat[pos]:
            why = f"{text} (analyte {analyte})" if text else f"no reading for analyte {analyte}"
            message = (
                f"{why}, but the plate map (line {map_line[well]}) puts a "
                f"{described[well]} in this well"
            )
        else:
            message = f"{text} (analyte {analyte})"
        raise InputError(
            message + (f"; {more} more wells like it" if more > 0 else ""),
            field="signal",
            expected=f"a valid reading in the {what} for every well the plate map "
            "describes (mark unused wells empty in the map)",
            **where,
        )
    # A described well the file holds no row for (an export that skips unread wells).
    for analyte, group in readings.groupby("analyte", sort=False):
        lacking = sorted(set(described) - set(group["well"]), key=well_index)
        if lacking:
            well = lacking[0]
            raise InputError(
                f"no reading for analyte {analyte}, but the plate map (line "
                f"{map_line[well]}) puts a {described[well]} in this well"
                + (f" ({len(lacking) - 1} more wells like it)" if len(lacking) > 1 else ""),
                file=str(group["source_file"].iloc[0]),
                well=well,
                field="signal",
                expected=f"a reading in the {what} for every well the plate map describes",
            )


def _matrix_readings(sheet: _Sheet, named: list[tuple[str, _Block]]) -> pd.DataFrame:
    """Every cell of a reader matrix's blocks as readings (:func:`join_plate_map`)."""
    records = []
    for name, block in named:
        for well, text, line in block.cells:
            if _is_missing(text):
                records.append((well, name, np.nan, None, line))
                continue
            value = _as_number(text, sheet.decimal_comma)
            if value is None:
                hint = _SIGNAL_HINTS.get(text.upper(), "")
                records.append((well, name, np.nan, f"'{text}' is not a number{hint}", line))
            else:
                records.append((well, name, value, None, line))
    out = pd.DataFrame(records, columns=["well", "analyte", "signal", "problem", "source_row"])
    out.insert(4, "source_file", sheet.source)
    return out


def read_plate(
    plate_map: str | Path | pd.DataFrame,
    matrix: str | Path,
    *,
    study_id: str | None,
    plate_id: str | None = None,
    analyte: str | None = None,
    standard_unit: str | None = None,
) -> pd.DataFrame:
    """Join a plate map and a reader matrix into the validated tidy measurement table.

    :func:`cytosafe.io.read_plate` calls this for a reader matrix, and
    :func:`cytosafe.io.asm.read_asm_plate` for a SoftMax Pro, Gen5 or ASM export; both
    join by :func:`join_plate_map`.

    Parameters
    ----------
    plate_map:
        Path of a plate map (long form or ``plater`` grid), or the DataFrame
        :func:`read_plate_map` returns (or any long-form table).
    matrix:
        Path of a reader matrix (:func:`read_reader_matrix`), one plate, one block per
        analyte.
    study_id:
        The study; ``None`` gives ``"unassigned"`` (an export does not know its study).
    plate_id:
        The plate. By default the plate the map names in its ``plate_id`` (when it names
        one; when it names several, the one called like the matrix file), else the matrix
        file's stem.
    analyte:
        As for :func:`read_reader_matrix`: names a one-block matrix, or selects a block.
    standard_unit:
        Unit of ``standard_concentration`` for map wells without a ``concentration_unit``
        (default pg/mL); concentrations are stored in pg/mL.

    Returns
    -------
    pandas.DataFrame
        The table of :func:`~cytosafe.schema.measurements.validate_measurements`: one row
        per described well x analyte, ``source_file`` / ``source_row`` locating the
        reading in the matrix, and the extra columns ``plate_map_file`` /
        ``plate_map_row`` locating the well in the plate map (then any extra map columns).

    Raises
    ------
    InputError
        Everything :func:`read_plate_map` and :func:`read_reader_matrix` refuse, and
        what :func:`join_plate_map` refuses: a map well outside the matrix's plate, a grid
        map of another plate size than the matrix, a described well whose matrix cell is
        blank, not a number or negative, a reading in a well the map neither describes
        nor marks empty, an unknown ``standard_unit`` (``UnitError``).

    Examples
    --------
    >>> table = read_plate("plate_map.csv", "reader_matrix.csv", study_id="CRA-01")  # doctest: +SKIP
    """
    analyte_unit(standard_unit, field="standard_unit")  # before reading
    pmap = _load_map(plate_map)
    sheet, named = _matrix_blocks(Path(matrix), analyte, None)
    return join_plate_map(
        _matrix_readings(sheet, named),
        pmap,
        study_id=study_id,
        plate_id=plate_id,
        standard_unit=standard_unit,
        plate_format=named[0][1].plate_format,
    )


# --------------------------------------------------------------------------- writers


def _one_plate(measurements: pd.DataFrame, what: str) -> pd.DataFrame:
    table = validate_measurements(measurements)
    plates = list(dict.fromkeys(table["plate_id"]))
    if len(plates) > 1:
        raise InputError(
            f"the table holds {len(plates)} plates ({', '.join(plates[:5])}); a {what} holds one",
            field="plate_id",
            expected="one plate per file: write each plate_id separately",
        )
    return table


def _write_format(table: pd.DataFrame, plate_format: int | None) -> int:
    wells = list(dict.fromkeys(table["well"]))
    fmt = plate_format or plate_format_for(wells)
    if fmt not in PLATE_FORMATS:
        raise InputError(
            f"plate_format {fmt} is not supported", field="plate_format", expected="96 or 384"
        )
    n_rows, n_cols = PLATE_FORMATS[fmt]
    for well in wells:
        r, c = well_index(well)
        if r >= n_rows or c >= n_cols:
            raise InputError(
                f"well {well} is not on a {fmt}-well plate",
                well=well,
                field="plate_format",
                expected="plate_format=384",
            )
    return fmt


def _cell_value(value: object, **where: object) -> object:
    """A table value as it goes into a cell: numbers as numbers, text as text, or None."""
    if value is None or _null(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    text = str(value)
    if _is_missing(text):
        raise InputError(
            f"the value '{text}' would read back as an empty cell",
            expected="another spelling",
            **where,
        )
    return text


def _write_cells(rows: list[list[object]], path: Path) -> Path:
    """Write rows of cells to CSV (or XLSX by suffix) at once: whole or not at all."""
    path = Path(path)

    def write(tmp: Path) -> None:
        if path.suffix.lower() in {".xlsx", ".xlsm"}:
            import openpyxl

            book = openpyxl.Workbook()
            sheet = book.active
            for row in rows:
                sheet.append(list(row))
            save_workbook(book, tmp)
        else:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh, lineterminator="\n")
                writer.writerows([_csv_text(v) for v in row] for row in rows)

    return atomic_write(path, write)


def _csv_text(value: object) -> str:
    if value is None:
        return ""
    return _format_number(value) if isinstance(value, float) else str(value)


def _grid_rows(name: str, values: dict[str, object], fmt: int) -> list[list[object]]:
    n_rows, n_cols = PLATE_FORMATS[fmt]
    out: list[list[object]] = [[name, *range(1, n_cols + 1)]]
    for r in range(n_rows):
        out.append([chr(ord("A") + r), *(values.get(well_name(r, c)) for c in range(n_cols))])
    return out


def write_plate_map(
    measurements: pd.DataFrame,
    path: str | Path,
    *,
    layout: str = "grid",
    plate_format: int | None = None,
) -> Path:
    """Write the plate map of one plate of a measurement table.

    Parameters
    ----------
    measurements:
        A measurement table holding one plate (validated first). Each well's map values
        must be the same for every analyte.
    path:
        Output file: ``.xlsx`` writes a workbook, anything else CSV.
    layout:
        ``"grid"``: ``plater`` layouts, one per field; ``"long"``: one line per well.
    plate_format:
        96 or 384; by default the smallest plate holding the wells.

    Returns
    -------
    pathlib.Path
        ``path``. Written fields: ``plate_id``, ``sample_type`` and, when any well has
        one, ``standard_concentration`` (with its ``concentration_unit``: pg/mL, or the
        arbitrary unit it is stored in) and the
        other :data:`PLATE_MAP_COLUMNS`. :func:`read_plate` with the matching
        :func:`write_reader_matrix` file reads the table back.

    Examples
    --------
    >>> write_plate_map(elisa, "elisa/plate_map.csv", layout="grid")  # doctest: +SKIP
    """
    if layout not in {"grid", "long"}:
        raise InputError(
            f"unknown plate-map layout '{layout}'", field="layout", expected="'grid' or 'long'"
        )
    table = _one_plate(measurements, "plate map")
    fmt = _write_format(table, plate_format)
    table = table.assign(
        concentration_unit=np.where(
            table["standard_concentration"].notna(), table["concentration_unit"], None
        )
    )
    fields = [
        c for c in PLATE_MAP_COLUMNS if c in {"plate_id", "sample_type"} or table[c].notna().any()
    ]
    per_well = table.drop_duplicates(["well", *fields])
    twice = per_well["well"].duplicated(keep=False)
    if twice.any():
        well = per_well.loc[twice, "well"].iat[0]
        rows = per_well[per_well["well"] == well]
        field = next(f for f in fields if rows[f].astype(str).nunique() > 1)
        raise InputError(
            "the well's plate-map values differ between analytes",
            well=well,
            field=field,
            expected="one value per well for every plate-map field",
        )
    per_well = per_well.iloc[
        sorted(range(len(per_well)), key=lambda k: well_index(per_well["well"].iat[k]))
    ]
    if layout == "long":
        rows_out: list[list[object]] = [["well", *fields]]
        for values in per_well[["well", *fields]].itertuples(index=False):
            rows_out.append(
                [
                    _cell_value(v, well=values[0], field=f)
                    for f, v in zip(["well", *fields], values, strict=True)
                ]
            )
        return _write_cells(rows_out, Path(path))
    rows_out = []
    for field in fields:
        if rows_out:
            rows_out.append([])
        values = {
            w: _cell_value(v, well=w, field=field)
            for w, v in zip(per_well["well"], per_well[field], strict=True)
        }
        rows_out += _grid_rows(field, values, fmt)
    return _write_cells(rows_out, Path(path))


def write_reader_matrix(
    measurements: pd.DataFrame, path: str | Path, *, plate_format: int | None = None
) -> Path:
    """Write the signals of one plate as plate-shaped grids, one block per analyte.

    Each block is a ``plater`` layout: the analyte in the top-left cell, the column
    numbers, the rows with their letters; a blank line between blocks; a blank cell for a
    well without a reading. ``.xlsx`` writes a workbook, anything else CSV.

    Parameters
    ----------
    measurements:
        A measurement table holding one plate (validated first).
    path:
        Output file.
    plate_format:
        96 or 384; by default the smallest plate holding the wells.

    Returns
    -------
    pathlib.Path
        ``path``; :func:`read_reader_matrix` reads the signals back exactly from CSV, and
        to 16 significant digits from a workbook (openpyxl writes ``%.16g``; Excel itself
        keeps 15).

    Examples
    --------
    >>> write_reader_matrix(elisa, "elisa/reader_matrix.csv")  # doctest: +SKIP
    """
    table = _one_plate(measurements, "reader matrix")
    fmt = _write_format(table, plate_format)
    rows_out: list[list[object]] = []
    for analyte, group in table.groupby("analyte", sort=False):
        if rows_out:
            rows_out.append([])
        values = {w: float(s) for w, s in zip(group["well"], group["signal"], strict=True)}
        rows_out += _grid_rows(str(analyte), values, fmt)
    return _write_cells(rows_out, Path(path))
