"""Luminex xPONENT CSV exports: read into the tidy table, and write in the vendor's layout.

xPONENT (Luminex 100/200, FLEXMAP 3D, MAGPIX) exports a batch as one CSV with several
sections. The layout below was studied on two real exports (read from
``../shared/data/real-exports/``, never copied): ``pone.0187901.s001.csv`` (xPONENT 3.1,
LX100/LX200, 30 cytokines, S1 file of Sanz et al., PLOS ONE 12:e0187901, CC BY 4.0) and
``Flexmap_v433091_..._102647 (002) (3).csv`` (xPONENT 4.3, FLEXMAP 3D, raw signals only,
Benchling-Open-Source/allotropy test data, MIT); variants were checked against the public
parsers of allotropy (``luminex_xponent_reader.py``) and mini-pw/SerolyzeR
(``parser-xponent.R``). Lines are 1-based::

    Program,xPONENT,,LX100/LX200           <- line 1: what makes a file an xPONENT export
    Build,3.1.871.0
    Date,26/02/2014,16:07                  <- the PC's locale: day-first (3.1 file),
    SN,...                                    month-first with AM/PM (4.3 file)
    Batch,plate_1                          <- "Session" in some versions -> plate_id
    ProtocolName,Example STUDY             -> study_id
    ...                                    (Protocol*, Batch*, calibration, lot info)
    Samples,91,Min Events,100,Per Bead
    Results
    DataType:,Median                       <- one block per data type
    Location,Sample,FGF,IL1B,...,Total Events
    "1(1,A1)",Background0,21,20.5,...,4683 <- Location = acquisition index(plate,well)
    ...
    DataType:,Net MFI                      (same rows; Median minus the mean Median of the
    DataType:,Count                         Background wells), Count (beads per region),
    DataType:,Result                        Result (concentrations), Range, Avg Net MFI,
    ...                                     Avg Result, %CV Replicates, % Recovery, Comments
    DataType:,Units
    Analyte:,FGF,IL1B,...                  <- per-analyte blocks: Units, Per Bead Count,
    BeadID:,12,13,...                         Analysis Types, Analysis Coefficients, R^2
    Units:,pg/mL,pg/mL,...
    DataType:,Standard Expected Concentration
    Reagent,FGF,IL1B,...                   <- one row per standard (control) name
    Standard1,3450,8150,...
    DataType:,Dilution Factor
    Location,Sample,Dilution Factor
    "2(1,B1)",Control1,2                   <- empty for standards and background (= 1)
    DataType:,Audit Logs / Warnings/Errors
    -- CRC --                              <- the trailer: a file without it is truncated
    CRC32: 53B2478C

Every row is padded with empty cells to the width of the widest row, and only cells that
hold a comma are quoted. xPONENT 4.x separates blocks with blank (all-empty) rows; 3.1
does not. The 4.3 file has CRLF line endings; the 3.1 file as stored has LF.

Variants seen in public exports (mini-pw/SerolyzeR ``inst/extdata/external/``): MAGPIX
exports of xPONENT 4.2 quote every cell and pad nothing, so a well without a dilution
factor is ``"1(1,A1)","Background0"`` (read as empty, = 1); xPONENT 3.1 writes the
Dilution Factor header twice (``Location,Sample,1``: skipped); a batch stopped early
lists in Dilution Factor wells no acquisition block has (set aside with a warning naming
them; in any other block a well the Median block lacks is still an error).

How the table is read
---------------------
* ``signal`` is the **Median** block (raw median fluorescence intensity, MFI);
  ``bead_count`` the **Count** block; ``source_row`` the line of the Median row.
  ``Total Events`` (all beads acquired in the well) is not an analyte: it becomes the
  ``total_events`` extra.
* ``well`` and plate come from ``Location`` (``1(1,A1)``; zero-padded ``A01`` and any row
  order are accepted). A batch that spans several plates (``(2,A1)``) becomes plate IDs
  ``<Batch>_plate1``, ``<Batch>_plate2``, ...
* ``sample_id`` is the **Sample** column. ``sample_type`` is inferred from it, in order:
  a name listed in the *Standard Expected Concentration* block is a ``standard``, one in
  the *Control Expected Concentration* block a ``control``; otherwise xPONENT's default
  names decide: ``Standard<n>`` (or ``Std<n>``) -> ``standard``, ``Background<n>`` /
  ``Background`` / ``Blank<n>`` -> ``blank``, ``Control<n>`` -> ``control``; everything
  else (``Unknown<n>`` and user names) is a ``sample``. A standard whose expected
  concentration is 0 is the zero calibrator and becomes a ``blank``. A sample map
  overrides any of these.
* ``standard_concentration`` of standards (and of controls: their expected value) is the
  block's number in the analyte's **Units**: a mass unit converted to pg/mL, an arbitrary
  unit (IU/mL, U/mL, AU/mL, ...) kept as written
  (:func:`~cytosafe.schema.units.analyte_unit`); ``concentration_unit`` names the unit
  stored. The unit is needed only when the file holds concentrations of that analyte;
  then an unknown unit is a :class:`~cytosafe.errors.UnitError`, a missing one is taken
  from ``standard_unit``, and neither is an error. (MFI-only exports write ``Bead`` or
  nothing there.)
* ``dilution_factor`` is the **Dilution Factor** block (empty = 1); ``replicate`` numbers
  the wells that share a sample name, in plate order (column by column, as xPONENT
  acquires), so it does not depend on the row order of the file.
* Extras, after the schema's columns: ``net_signal`` (Net MFI), ``vendor_concentration``
  (in ``concentration_unit``) and ``vendor_flag`` (the **Result** block parsed by
  :func:`~cytosafe.io._values.parse_vendor_value`: ``< 0.105`` below range, ``> 5850``
  above, ``*1.55`` extrapolated, ``NaN`` missing), each when its block exists;
  ``bead_region`` (BeadID) when listed; ``total_events``; ``standard_flag`` when the file
  has standards (``"non_monotonic"`` on a standard that breaks its series, see below).
* ``DataFrame.attrs``: ``header`` (the key-value lines), ``analysis`` (per analyte: the
  analysis type and printed curve coefficients, R^2), ``skipped`` (wells without a
  Median) and ``non_monotonic_standards``.

What xPONENT computes (verified on the 3.1 export, all 30 analytes): ``Net MFI`` =
Median - mean Median of the ``Background`` wells; the *Logistic 5P* curve is fitted to
**Net MFI** against the concentration in the well, ::

    NetMFI = A + (B - A) / (1 + (x / C)^D)^F          (D < 0 for a rising curve)

with ``A..F`` the printed *Analysis Coefficients*; ``Result`` = Dilution Factor x the
inverse of that curve at the well's Net MFI, i.e. a concentration in the *undiluted*
sample (standards have no dilution). ``vendor_concentration`` therefore already includes
the dilution, as Bio-Plex's ``Obs Conc``.

Values xPONENT writes that are not numbers: a ``NaN`` (or empty) Median means the
region was not acquired in that well (seen in real 4.x exports); such well x analyte
pairs are not read, a :class:`~cytosafe.errors.DataWarning` names them and
``attrs["skipped"]`` lists them. Any other Median that is not a non-negative number is an
error. Numbers re-saved by Excel (``1.30013E+12``) are read as numbers.

The decimal-comma trap: in the 3.1 export, every analyte has one *Standard Expected
Concentration* whose decimal point was lost in a decimal-comma round trip (``215625`` for
215.625; a value with three decimals read with ``.`` as the thousands separator; the
software itself used 215.625, as its ``% Recovery`` shows). A standard series that is not
monotonic in its dilution steps is therefore never used silently: the reader warns
(:class:`~cytosafe.errors.DataWarning`), names each standard that breaks the order (the
one furthest from the series' geometric trend) with the value that would fit, and sets
its ``standard_flag`` to ``"non_monotonic"``. The number is kept as printed: deciding
that it is a typo is the analyst's call.

The CRC32 of the trailer is not checked: its algorithm is not published, and the
checksums of both real files (one re-saved with LF line endings) match no plain CRC-32
of their content.
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cytosafe._atomic import atomic_write_bytes
from cytosafe.errors import InputError
from cytosafe.io._text import decode_text
from cytosafe.io._values import export_time, number_text, parse_vendor_value
from cytosafe.io.reader import Probe, finish, names_file
from cytosafe.schema.measurements import to_numbers, validate_measurements
from cytosafe.schema.units import (
    CONCENTRATION_UNIT,
    analyte_unit,
    canonical_unit,
)
from cytosafe.schema.wells import normalize_well, plate_format_for, well_index

__all__ = [
    "DESCRIPTION",
    "NAME",
    "SUFFIXES",
    "check",
    "parse",
    "read_xponent",
    "sniff",
    "write",
    "write_xponent",
]

NAME = "xponent"
DESCRIPTION = "a Luminex xPONENT CSV export (3.x, 4.x)"
SUFFIXES = (".csv",)

#: How xPONENT calibrates, the default of ``cytosafe quantify`` for its exports (a user's
#: explicit option overrides a field). Source: the 3.1 export studied here (see the module
#: notes): its *Analysis Types* block says ``Logistic 5P``, the curve is fitted to **Net
#: MFI** (Median minus the mean Median of the Background wells, i.e. blanks subtracted).
#: The model is ``"printed"``: each curve in the family its printed coefficients say (the
#: sign of ``D``; ``D < 0`` on every curve of that export, the mirror 5PL family of
#: :mod:`cytosafe.curves.models`), and ``5PL-auto`` for a *Logistic 5P* printed without
#: coefficients: xPONENT's slope may take either sign, so its own least squares keeps the
#: better of the two forms (:func:`cytosafe.quantification.plate_conventions`); weights
#: 1/y^2 reproduce the ``Result`` block (median
#: 0.4 %, ``benchmarks/bench_real_exports.py``), xPONENT does not print its weighting.
#: Its 1/y^2 weights use ``max(|Net MFI|, 1)`` (``weight_floor`` 1 MFI): with that rule
#: our fit reaches the weighted RSS of the printed coefficients (measured on IL8, IL2,
#: EGF, IL5), where the smallest-positive-response rule lets the near-zero Net MFI of the
#: lowest standards dominate and misses IL8, IL2, EGF and IL15 by 10-25 %.
CALIBRATION = {
    "software": "Luminex xPONENT",
    "model": "printed",
    "weighting": "1/y2",
    "weight_floor": 1.0,
    "blank": "subtract",
    "signal": "Net MFI (Median minus the mean Background Median)",
    "source": "xPONENT 3.1 export: Analysis Types 'Logistic 5P', Net MFI, signed slope D",
}

_LOCATION = re.compile(r"^(\d+)\s*\(\s*(\d+)\s*,\s*([A-Za-z]\s*\d+)\s*\)$")
_STANDARD = re.compile(r"^(?:standard|std)\s*(\d+)$", re.IGNORECASE)
_CONTROL = re.compile(r"^control\s*(\d+)$", re.IGNORECASE)
_BLANK = re.compile(r"^(?:background|blank)\s*\d*$", re.IGNORECASE)

# Blocks with one row per well ("Location,Sample,...") that the reader uses.
_MEDIAN, _NET, _COUNT, _RESULT, _DILUTION = (
    "Median",
    "Net MFI",
    "Count",
    "Result",
    "Dilution Factor",
)
_SEC, _CEC = "Standard Expected Concentration", "Control Expected Concentration"
_TRAILER = "-- CRC --"

#: Missing-number spellings xPONENT writes in numeric blocks.
_NO_NUMBER = {"", "nan"}

#: Protocol settings the writer puts in the header (not data; documented, fixed).
_PER_BEAD = 50  # beads per region; xPONENT protocols commonly acquire 50


# --------------------------------------------------------------------------- low level


@dataclass
class _Record:
    """One CSV record: its 1-based line and its cells (stripped)."""

    line: int
    cells: list[str]

    @property
    def first(self) -> str:
        return self.cells[0] if self.cells else ""

    @property
    def blank(self) -> bool:
        return all(c == "" for c in self.cells)


def _trim(cells: list[str]) -> list[str]:
    """Cells without the empty padding xPONENT appends to every row."""
    end = len(cells)
    while end and cells[end - 1] == "":
        end -= 1
    return cells[:end]


def _not_xponent(file: str, found: str) -> InputError:
    return InputError(
        f"not a Luminex xPONENT export: line 1 is '{found[:60].replace(chr(0), '')}'",
        file=file,
        row=1,
        field="Program",
        expected="a CSV exported by xPONENT, whose first line is 'Program,xPONENT,...'",
    )


def _load(path: Path) -> list[_Record]:
    """All records of the file; the first must be xPONENT's ``Program,xPONENT`` line."""
    file = str(path)
    if not path.is_file():
        raise InputError("file not found", file=file)
    # xPONENT runs on Windows; non-ASCII text (e.g. 'µl') may come as Windows-1252.
    raw = path.read_bytes()
    try:
        text = decode_text(raw, file=file)
    except InputError:
        head = decode_text(raw[:4096], file=file, partial=True).split("\n", 1)[0]
        if head.replace('"', "").startswith("Program"):
            raise  # an xPONENT export with binary damage: the decoder's message
        raise _not_xponent(file, head.strip()) from None
    first_line = text.split("\n", 1)[0].strip().strip("\r")
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[_Record] = []
    try:
        for cells in reader:
            records.append(_Record(reader.line_num, [c.strip() for c in cells]))
    except csv.Error as exc:
        if not records:
            raise _not_xponent(file, first_line) from None
        raise InputError(f"cannot be read as CSV: {exc}", file=file, row=reader.line_num) from None
    if not records or records[0].first != "Program":
        if first_line.replace('"', "").startswith("Program;"):
            raise InputError(
                "a semicolon-separated xPONENT export (written under a decimal-comma "
                "locale) is not supported: its numbers are ambiguous",
                file=file,
                row=1,
                field="Program",
                expected="an export with ',' separators and '.' decimals (English locale)",
            )
        raise _not_xponent(file, first_line)
    if not any("xponent" in c.lower() for c in records[0].cells[1:3]):
        raise _not_xponent(file, first_line)
    return records


# --------------------------------------------------------------------------- sections


@dataclass
class _Block:
    """A ``DataType:`` block: its name, line, header row and data rows."""

    name: str
    line: int
    header: list[str] = field(default_factory=list)
    header_line: int | None = None
    rows: list[_Record] = field(default_factory=list)
    header_width: int = 0  # cells of the header line, trailing empty ones included


def _read_header(records: list[_Record], file: str) -> tuple[dict[str, tuple[list[str], int]], int]:
    """The key-value lines before ``Results`` and the index of the ``Results`` record."""
    header: dict[str, tuple[list[str], int]] = {}
    for i, rec in enumerate(records):
        if rec.first == "Results":
            return header, i
        if rec.first == "DataType:":
            break
        if rec.first and rec.first not in header:
            header[rec.first] = (_trim(rec.cells[1:]), rec.line)
    raise InputError(
        f"no 'Results' line: the export ends at line {records[-1].line} before its data "
        "(truncated, or not a results export)",
        file=file,
        row=records[-1].line,
        field="Results",
        expected="a 'Results' line followed by 'DataType:' blocks",
    )


def _read_blocks(
    records: list[_Record], start: int, file: str
) -> tuple[dict[str, _Block], _Record | None]:
    """The ``DataType:`` blocks after ``Results``, and the ``-- CRC --`` record if any."""
    blocks: dict[str, _Block] = {}
    current: _Block | None = None
    i = start + 1
    while i < len(records):
        rec = records[i]
        if rec.first == _TRAILER:
            return blocks, rec
        if rec.first == "DataType:":
            name = rec.cells[1] if len(rec.cells) > 1 else ""
            if not name:
                raise InputError(
                    "a 'DataType:' line names no block",
                    file=file,
                    row=rec.line,
                    field="DataType",
                    expected="DataType:,<block name>",
                )
            if name in blocks:
                raise InputError(
                    f"block '{name}' appears twice (first at line {blocks[name].line})",
                    file=file,
                    row=rec.line,
                    field=name,
                    expected="each DataType block once",
                )
            current = _Block(name, rec.line)
            blocks[name] = current
            nxt = records[i + 1] if i + 1 < len(records) else None
            if nxt is not None and not nxt.blank and nxt.first not in ("DataType:", _TRAILER):
                current.header, current.header_line = _trim(nxt.cells), nxt.line
                current.header_width = len(nxt.cells)
                i += 2
                continue
        elif rec.blank:
            current = None  # xPONENT 4.x closes every block with an empty row
        elif current is None:
            raise InputError(
                f"line '{','.join(_trim(rec.cells))[:60]}' is outside any 'DataType:' block",
                file=file,
                row=rec.line,
                expected="every data row inside a 'DataType:' block",
            )
        else:
            if current.header_width and len(rec.cells) > current.header_width:
                # xPONENT writes every line equally wide: a wider line has a cell split in
                # two, a decimal comma ('0,105') shifting the row's values (issue 14).
                raise InputError(
                    f"the line has {len(rec.cells)} cells, the header of block "
                    f"'{current.name}' {current.header_width}: a decimal comma in a "
                    "comma-separated file?",
                    file=file,
                    row=rec.line,
                    field=current.name,
                    expected="an export with ',' separators and '.' decimals (English locale)",
                )
            current.rows.append(rec)
        i += 1
    return blocks, None


def _required(blocks: dict[str, _Block], name: str, records: list[_Record], file: str) -> _Block:
    if name not in blocks:
        last = records[-1].line
        raise InputError(
            f"no 'DataType:,{name}' block: the export ends at line {last} without it "
            "(truncated or incomplete)",
            file=file,
            row=last,
            field=name,
            expected=f"a complete xPONENT export with a {name} block",
        )
    return blocks[name]


# --------------------------------------------------------------------------- numbers


def _numbers(texts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised parse of vendor cells: ``(values, kind)``.

    ``kind`` is 0 for a number, 1 for no value (empty or ``NaN``), 2 for anything else.
    ``values`` is NaN where ``kind != 0``.
    """
    flat = np.asarray(texts, dtype=object).ravel()
    if flat.size == 0:
        return np.zeros(texts.shape), np.zeros(texts.shape, dtype=np.int8)
    # to_numbers: exactly the written digits (pandas 2's own parser may miss by an ulp).
    values = to_numbers(pd.Series(flat, dtype=object)).to_numpy(float, copy=True)
    lower = np.array([str(t).lower() for t in flat], dtype=object)
    missing = np.isin(lower, list(_NO_NUMBER))
    kind = np.where(missing, 1, np.where(np.isfinite(values), 0, 2)).astype(np.int8)
    for i in np.flatnonzero(kind == 2):  # rare: "1e400", "0,105" raise; markers are not numbers
        value, flag = parse_vendor_value(flat[i])
        if flag is None and math.isfinite(value):
            values[i], kind[i] = value, 0
    values[kind != 0] = np.nan
    return values.reshape(texts.shape), kind.reshape(texts.shape)


# --------------------------------------------------------------------------- well blocks


@dataclass
class _WellTable:
    """A ``Location,Sample,...`` block as arrays, rows in file order."""

    name: str
    header_line: int
    columns: list[str]
    keys: list[tuple[int, str]]  # (plate number, well)
    locations: list[str]
    samples: list[str]
    lines: np.ndarray
    values: np.ndarray  # (rows, columns) of str
    total: np.ndarray | None  # Total Events cells, or None


def _well_name(key: tuple[int, str]) -> str:
    return key[1] if key[0] == 1 else f"{key[1]} (plate {key[0]})"


def _well_table(block: _Block, file: str, plate_format: int | None) -> _WellTable:
    h = block.header
    if block.header_line is None or len(h) < 3 or h[0] != "Location" or h[1] != "Sample":
        raise InputError(
            f"the '{block.name}' block (line {block.line}) has no 'Location,Sample,...' header "
            "line (truncated or edited)",
            file=file,
            row=block.header_line or block.line + 1,
            field=block.name,
            expected="Location,Sample,<one column per analyte>",
        )
    columns = h[2:]
    total_col = None
    if columns and columns[-1].replace(" ", "").lower() == "totalevents":
        total_col = len(h) - 1
        columns = columns[:-1]
    for j, name in enumerate(columns):
        if not name or name in columns[:j]:
            raise InputError(
                f"the header names column {j + 3} '{name}'"
                + (" twice" if name else ", an empty name"),
                file=file,
                row=block.header_line,
                field=block.name,
                expected="one named column per analyte",
            )
    n = len(h)
    keys, locations, samples, lines, values, total = [], [], [], [], [], []
    seen: dict[tuple[int, str], int] = {}
    for k, rec in enumerate(block.rows):
        cells = rec.cells
        if k == 0 and cells[:2] == ["Location", "Sample"] and len(_trim(cells)) <= n:
            # xPONENT 3.1 writes the Dilution Factor block's header twice, the second time
            # with the default dilution ('Location,Sample,1'): a header, not a well.
            continue
        if len(columns) == 1 and len(cells) == 2 and _LOCATION.match(cells[0]):
            # Quoted exports (xPONENT 4.2, e.g. MAGPIX) drop the one empty value cell of a
            # single-value block ('"1(1,A1)","Background0"' in Dilution Factor): the
            # padded layout's empty cell, which means none (= 1), not a cut row.
            cells = [*cells, ""]
        match = _LOCATION.match(cells[0])
        well = None
        if match:
            try:
                well = normalize_well(match.group(3), plate_format=plate_format)
            except InputError as exc:
                raise InputError(
                    f"Location '{cells[0]}': {exc.message}",
                    file=file,
                    row=rec.line,
                    field="Location",
                    expected=exc.expected,
                ) from None
        if len(cells) < n or len(_trim(cells)) > n:
            short = len(cells) < n
            raise InputError(
                f"the row has {len(cells) if short else len(_trim(cells))} cells but the "
                f"{block.name} header (line {block.header_line}) has {n}"
                + (" (the row is cut short)" if short else " (values beyond the header)"),
                file=file,
                row=rec.line,
                well=well,
                field=f"{block.name}: {h[len(cells)]}" if short else block.name,
                expected=f"{n} cells, as the header",
            )
        if not match:
            raise InputError(
                f"'{cells[0]}' is not an xPONENT Location",
                file=file,
                row=rec.line,
                field="Location",
                expected="index(plate,well), e.g. 1(1,A1)",
            )
        key = (int(match.group(2)), well)
        if key in seen:
            raise InputError(
                f"duplicate Location '{cells[0]}': well {_well_name(key)} was already "
                f"read at line {seen[key]} of the {block.name} block",
                file=file,
                row=rec.line,
                well=well,
                field="Location",
                expected="each well once per block",
            )
        seen[key] = rec.line
        keys.append(key)
        locations.append(cells[0])
        samples.append(cells[1])
        lines.append(rec.line)
        values.append(cells[2 : 2 + len(columns)])
        total.append(cells[total_col] if total_col is not None else "")
    return _WellTable(
        name=block.name,
        header_line=block.header_line,
        columns=columns,
        keys=keys,
        locations=locations,
        samples=samples,
        lines=np.asarray(lines, dtype=np.int64),
        values=np.array(values, dtype=object).reshape(len(keys), len(columns)),
        total=np.asarray(total, dtype=object) if total_col is not None else None,
    )


def _align(
    other: _WellTable,
    med: _WellTable,
    file: str,
    *,
    by_analyte: bool,
    not_acquired: list[dict[str, object]] | None = None,
) -> np.ndarray:
    """``other``'s values in the Median block's row (and analyte) order.

    The blocks of one export list the same wells with the same sample names; a well one
    block lacks means the file was cut short or edited. The one exception is a layout
    block (``not_acquired`` given: Dilution Factor), which lists every well of the
    protocol: a complete export (it has its CRC trailer) of a batch stopped early lists
    there wells the acquisition blocks lack; they are put in ``not_acquired``, not read.
    """
    med_pos = {k: i for i, k in enumerate(med.keys)}
    pos = {k: i for i, k in enumerate(other.keys)}
    for j, key in enumerate(other.keys):
        if key not in med_pos:
            if not_acquired is not None:
                not_acquired.append(
                    {"row": int(other.lines[j]), "well": key[1], "sample_id": other.samples[j]}
                )
                continue
            raise InputError(
                f"the {other.name} block lists well {_well_name(key)}, which the Median "
                "block lacks: the Median block is cut short",
                file=file,
                row=int(other.lines[j]),
                well=key[1],
                field=_MEDIAN,
                expected="the same wells in every block",
            )
    order = []
    for i, key in enumerate(med.keys):
        j = pos.get(key)
        if j is None:
            raise InputError(
                f"the {other.name} block has no row for well {_well_name(key)} "
                f"(Median line {med.lines[i]}): the {other.name} block is cut short",
                file=file,
                row=int(med.lines[i]),
                well=key[1],
                field=other.name,
                expected="the same wells in every block",
            )
        if other.samples[j] != med.samples[i]:
            raise InputError(
                f"Sample '{other.samples[j]}' differs from '{med.samples[i]}' in the Median "
                f"block (line {med.lines[i]})",
                file=file,
                row=int(other.lines[j]),
                well=key[1],
                field="Sample",
                expected="the same sample in a well in every block",
            )
        order.append(j)
    if not by_analyte:
        return other.values[order, :1]
    missing = [a for a in med.columns if a not in other.columns]
    extra = [a for a in other.columns if a not in med.columns]
    if missing or extra:
        what = (
            f"has no column for analyte '{missing[0]}'"
            if missing
            else f"has a column '{extra[0]}' that the Median block lacks"
        )
        raise InputError(
            f"the {other.name} block {what}",
            file=file,
            row=other.header_line,
            field=f"{other.name}: {(missing or extra)[0]}",
            expected="the analytes of the Median block",
        )
    cols = [other.columns.index(a) for a in med.columns]
    return other.values[np.ix_(order, cols)]


def _check_numbers(
    values: np.ndarray,
    kind: np.ndarray,
    texts: np.ndarray,
    med: _WellTable,
    block: _Block,
    file: str,
    *,
    what: str,
    by_analyte: bool = True,
    negative_ok: bool = False,
    zero_ok: bool = True,
) -> None:
    """Raise for the first cell (in file order) that is text, or negative (or zero).

    ``values``/``kind``/``texts`` are aligned to the Median block's rows; the error names
    the line of the offending row in ``block`` itself.
    """
    bad = kind == 2
    if not negative_ok:
        bad |= (kind == 0) & ((values < 0) if zero_ok else (values <= 0))
    if not bad.any():
        return
    cells = np.argwhere(bad)
    i, j = (int(v) for v in cells[np.argsort(med.lines[cells[:, 0]], kind="stable")[0]])
    key = med.keys[i]
    row = next(
        (
            rec.line
            for rec in block.rows
            if (m := _LOCATION.match(rec.first))
            and (int(m.group(2)), normalize_well(m.group(3))) == key
        ),
        None,
    )
    problem = "not a number" if kind[i, j] == 2 else "negative" if zero_ok else "not positive"
    more = f" ({cells.shape[0] - 1} more cells like it)" if cells.shape[0] > 1 else ""
    raise InputError(
        f"{what} '{texts[i, j]}' is {problem}{more}",
        file=file,
        row=row,
        well=key[1],
        field=f"{block.name}: {med.columns[j]}" if by_analyte else block.name,
        expected="a number"
        if negative_ok
        else ("a number >= 0 (or NaN)" if zero_ok else "a number > 0 (empty = 1)"),
    )


# --------------------------------------------------------------------------- analyte blocks


def _analyte_rows(block: _Block | None) -> dict[str, tuple[dict[str, str], int]]:
    """Rows of an ``Analyte:,a1,a2,...`` block: key (lower case, no colon) -> values."""
    if block is None or not block.header or block.header[0].rstrip(":").lower() != "analyte":
        return {}
    analytes = block.header[1:]
    out: dict[str, tuple[dict[str, str], int]] = {}
    for rec in block.rows:
        key = rec.first.rstrip(":").strip().lower()
        cells = rec.cells[1 : 1 + len(analytes)]
        cells += [""] * (len(analytes) - len(cells))
        out.setdefault(key, (dict(zip(analytes, cells, strict=True)), rec.line))
    return out


def _reagent_rows(
    block: _Block | None, analytes: list[str], file: str
) -> dict[str, tuple[np.ndarray, int]]:
    """Rows of a ``Reagent,a1,a2,...`` block: name -> values aligned to ``analytes``."""
    if block is None:
        return {}
    h = block.header
    if not h or h[0] != "Reagent":
        raise InputError(
            f"the '{block.name}' block (line {block.line}) has no 'Reagent,...' header line",
            file=file,
            row=block.header_line or block.line + 1,
            field=block.name,
            expected="Reagent,<one column per analyte>",
        )
    cols = h[1:]
    idx = [cols.index(a) if a in cols else -1 for a in analytes]
    out: dict[str, tuple[np.ndarray, int]] = {}
    for rec in block.rows:
        name = rec.first
        if not name:
            continue
        if name in out:
            raise InputError(
                f"'{name}' appears twice (first at line {out[name][1]})",
                file=file,
                row=rec.line,
                field=block.name,
                expected="one row per standard or control",
            )
        cells = rec.cells[1 : 1 + len(cols)] + [""] * max(0, len(cols) - len(rec.cells) + 1)
        texts = np.array([cells[k] if k >= 0 else "" for k in idx], dtype=object)
        values, kind = _numbers(texts)
        bad = np.flatnonzero((kind == 2) | ((kind == 0) & (values < 0)))
        if bad.size:
            j = int(bad[0])
            raise InputError(
                f"expected concentration '{texts[j]}' of '{name}' is not a number >= 0",
                file=file,
                row=rec.line,
                field=f"{block.name}: {analytes[j]}",
                expected="a concentration >= 0",
            )
        out[name] = (values, rec.line)
    return out


def _analysis(blocks: dict[str, _Block], analytes: list[str]) -> dict[str, dict[str, object]]:
    """Per analyte: xPONENT's analysis type, printed curve coefficients and R^2."""
    types = _analyte_rows(blocks.get("Analysis Types")).get("analysistype", ({}, 0))[0]
    coef = _analyte_rows(blocks.get("Analysis Coefficients"))
    r2 = _analyte_rows(blocks.get("R^2")).get("value", ({}, 0))[0]
    out: dict[str, dict[str, object]] = {}
    for a in analytes:
        entry: dict[str, object] = {"analysis_type": types.get(a) or None}
        for key, (vals, _) in coef.items():
            if key.startswith("coefficient "):
                entry[key.split(" ", 1)[1].upper()] = _float(vals.get(a, ""))
        if r2:
            entry["r_squared"] = _float(r2.get(a, ""))
        out[a] = entry
    return out


def _float(text: str) -> float:
    value, flag = parse_vendor_value(text)
    return value if flag is None else math.nan


# --------------------------------------------------------------------------- standards


def _level(name: str) -> int | None:
    m = re.search(r"(\d+)\s*$", name)
    return int(m.group(1)) if m else None


def _non_monotonic(
    sec: dict[str, tuple[np.ndarray, int]], analytes: list[str]
) -> list[dict[str, object]]:
    """Standards that break the order of their dilution series, per analyte.

    The series is the Standard Expected Concentration block ordered by level number
    (``Standard1`` is xPONENT's highest). Where consecutive levels go against the
    series' main direction, the level of the pair further from the series' geometric
    trend (robust: median step, median intercept, on the log scale) is the culprit.
    """
    names = list(sec)
    levels = [_level(n) for n in names]
    if all(lv is not None for lv in levels):
        names = [n for _, n in sorted(zip(levels, names, strict=True), key=lambda t: t[0])]
    if len(names) < 3:
        return []
    matrix = np.vstack([sec[n][0] for n in names])  # (levels, analytes)
    found = []
    for j, analyte in enumerate(analytes):
        col = matrix[:, j]
        ok = np.flatnonzero(np.isfinite(col) & (col > 0))
        if ok.size < 3:
            continue
        v = col[ok]
        logv = np.log(v)
        step = np.diff(logv)
        direction = np.sign(np.median(step)) or -1.0
        breaks = np.flatnonzero(np.sign(step) != direction)
        if breaks.size == 0:
            continue
        k = np.arange(v.size)
        slope = float(np.median(step))
        resid = np.abs(logv - (np.median(logv - slope * k) + slope * k))
        culprits = sorted({int(b) if resid[b] >= resid[b + 1] else int(b) + 1 for b in breaks})
        for c in culprits:
            prev_v = v[c - 1] if c > 0 else None
            next_v = v[c + 1] if c + 1 < v.size else None
            suggestion = None
            for cand in (v[c] / 1000.0, v[c] * 1000.0):  # one lost / added thousands point
                lo_ok = prev_v is None or np.sign(cand - prev_v) == direction
                hi_ok = next_v is None or np.sign(next_v - cand) == direction
                if lo_ok and hi_ok:
                    suggestion = float(cand)
                    break
            found.append(
                {
                    "analyte": analyte,
                    "standard": names[int(ok[c])],
                    "expected_concentration": float(v[c]),
                    "previous": None if prev_v is None else float(prev_v),
                    "previous_standard": None if c == 0 else names[int(ok[c - 1])],
                    "suggested": suggestion,
                }
            )
    return found


def _g(x: float) -> str:
    return np.format_float_positional(x, unique=True, trim="-")


def _non_monotonic_message(found: list[dict[str, object]], file: str) -> str:
    parts = []
    for f in found[:6]:
        text = f"{f['analyte']} {f['standard']} = {_g(f['expected_concentration'])}"
        if f["previous_standard"]:
            text += f" after {f['previous_standard']} = {_g(f['previous'])}"
        if f["suggested"] is not None:
            text += f" ({_g(f['suggested'])} would fit: a decimal point lost in a decimal-comma round trip?)"
        parts.append(text)
    more = f"; and {len(found) - 6} more" if len(found) > 6 else ""
    analytes = len({f["analyte"] for f in found})
    return (
        f"{file}: the Standard Expected Concentration series is not monotonic in its "
        f"dilution steps for {analytes} analyte(s); {len(found)} standard(s) break the "
        "order and are flagged standard_flag='non_monotonic' (check them before fitting): "
        + "; ".join(parts)
        + more
    )


# --------------------------------------------------------------------------- sample types


def _infer_type(name: str, standards: set[str], controls: set[str]) -> str:
    """xPONENT's role of a well from its Sample name (see the module notes)."""
    if name in standards:
        return "standard"
    if name in controls:
        return "control"
    if _STANDARD.match(name):
        return "standard"
    if _BLANK.match(name):
        return "blank"
    if _CONTROL.match(name):
        return "control"
    return "sample"


def _plate_order(keys: list[tuple[int, str]]) -> np.ndarray:
    """Positions of ``keys`` sorted plate, column, row (xPONENT's acquisition order)."""
    sort_keys = [(p, well_index(w)[1], well_index(w)[0]) for p, w in keys]
    return np.array(sorted(range(len(keys)), key=sort_keys.__getitem__), dtype=np.int64)


# --------------------------------------------------------------------------- units


def _unit_factors(
    analytes: list[str],
    needed: np.ndarray,
    units: dict[str, tuple[dict[str, str], int]],
    units_block: _Block | None,
    standard_unit: str | None,
    file: str,
) -> tuple[np.ndarray, list[str]]:
    """Per analyte, the factor to its stored unit (NaN where the file holds no
    concentration) and that unit (:func:`~cytosafe.schema.units.analyte_unit`)."""
    printed, line = units.get("units", ({}, None))
    line = line or (units_block.line if units_block else None)
    factors = np.full(len(analytes), np.nan)
    stored = [CONCENTRATION_UNIT] * len(analytes)
    for j, analyte in enumerate(analytes):
        if not needed[j]:
            continue
        unit = printed.get(analyte, "")
        where = {"file": file, "row": line, "field": f"Units: {analyte}"}
        if unit and standard_unit is not None:
            if canonical_unit(unit, **where) != canonical_unit(standard_unit):
                raise InputError(
                    f"the export gives {analyte} in '{unit}' but standard_unit="
                    f"'{standard_unit}' was given",
                    expected=f"standard_unit='{unit}' or None",
                    **where,
                )
        unit = unit or standard_unit
        if not unit:
            raise InputError(
                f"the export has concentrations of {analyte} but no unit for them"
                + ("" if units_block else " (no Units block)"),
                expected="a unit in the Units block, or standard_unit='pg/mL' (the kit's unit)",
                **where,
            )
        stored[j], factors[j] = analyte_unit(unit, **where)
    return factors, stored


# --------------------------------------------------------------------------- reader


@dataclass
class _Export:
    """A parsed export: header lines, blocks, and the Median block as the row index."""

    file: str
    header: dict[str, tuple[list[str], int]]
    blocks: dict[str, _Block]
    plate_format: int | None
    med: _WellTable
    #: Wells the Dilution Factor block lists but no acquisition block has (batch stopped).
    not_acquired: list[dict[str, object]] = field(default_factory=list)

    def per_well(
        self, name: str, *, what: str, by_analyte: bool = True, **rules: bool
    ) -> np.ndarray | None:
        """Numbers of well block ``name`` in Median order (None if the block is absent)."""
        block = self.blocks.get(name)
        if block is None:
            return None
        texts = _align(
            _well_table(block, self.file, self.plate_format),
            self.med,
            self.file,
            by_analyte=by_analyte,
            not_acquired=self.not_acquired if name == _DILUTION else None,
        )
        values, kind = _numbers(texts)
        _check_numbers(
            values,
            kind,
            texts,
            self.med,
            block,
            self.file,
            what=what,
            by_analyte=by_analyte,
            **rules,
        )
        return values


def _parse(path: Path) -> _Export:
    """Read the file into header and blocks; check what every export must have."""
    file = str(path)
    records = _load(path)
    header, results_at = _read_header(records, file)
    blocks, trailer = _read_blocks(records, results_at, file)
    median_block = _required(blocks, _MEDIAN, records, file)
    _required(blocks, _COUNT, records, file)
    if trailer is None:
        raise InputError(
            f"the export ends at line {records[-1].line} without xPONENT's '{_TRAILER}' "
            "trailer: the file is truncated",
            file=file,
            row=records[-1].line,
            field=_TRAILER,
            expected="a complete export ending with '-- CRC --' and 'CRC32: ...'",
        )
    # "ProtocolPlate,Name,Current 96-well plate,Type,96,Plates,1" bounds the wells.
    plate = header.get("ProtocolPlate", ([], 0))[0]
    declared = plate[plate.index("Type") + 1] if "Type" in plate[:-1] else ""
    plate_format = int(declared) if declared in ("96", "384") else None
    med = _well_table(median_block, file, plate_format)
    if not med.keys:
        raise InputError(
            "the Median block has no rows",
            file=file,
            row=med.header_line,
            field=_MEDIAN,
            expected="one row per well",
        )
    return _Export(file, header, blocks, plate_format, med)


def _vendor_results(export: _Export) -> tuple[np.ndarray, np.ndarray] | None:
    """The Result block as (value, flag): numbers fast, flagged cells one by one."""
    block = export.blocks.get(_RESULT)
    if block is None:
        return None
    texts = _align(
        _well_table(block, export.file, export.plate_format),
        export.med,
        export.file,
        by_analyte=True,
    )
    values, kind = _numbers(texts)
    flags = np.where(kind == 1, "missing", None).astype(object)
    for i, j in np.argwhere(kind == 2):  # '< 0.105', '> 5850', '*1.55', 'OOR >', '***'
        values[i, j], flags[i, j] = parse_vendor_value(texts[i, j])
    return values, flags


def _roles_and_expected(
    samples: list[str],
    sec: dict[str, tuple[np.ndarray, int]],
    cec: dict[str, tuple[np.ndarray, int]],
    factors: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``sample_type`` and expected concentration (stored unit), both wells x analytes."""
    n_a = factors.size
    well_type = np.array([_infer_type(s, set(sec), set(cec)) for s in samples], dtype=object)
    expected = np.full((len(samples), n_a), np.nan)
    for i, (name, role) in enumerate(zip(samples, well_type, strict=True)):
        source = sec if role == "standard" else cec if role == "control" else {}
        if name in source:
            expected[i] = source[name][0] * factors
    sample_type = np.repeat(well_type[:, None], n_a, axis=1)
    sample_type[(sample_type == "standard") & (expected == 0)] = "blank"  # zero calibrator
    expected[sample_type == "blank"] = np.nan
    return sample_type, expected


def _replicates(keys: list[tuple[int, str]], samples: list[str]) -> np.ndarray:
    """1, 2, ... over the wells that share a sample name, in plate order."""
    order = _plate_order(keys)
    names = np.asarray(samples, dtype=object)[order]
    replicate = np.empty(len(keys), dtype=np.int64)
    replicate[order] = pd.Series(names).groupby(names).cumcount().to_numpy() + 1
    return replicate


def _bead_regions(export: _Export, units: dict) -> np.ndarray | None:
    """BeadID per analyte (Units or Per Bead Count block), or None if not listed."""
    rows = units.get("beadid") or _analyte_rows(export.blocks.get("Per Bead Count")).get("beadid")
    analytes = export.med.columns
    if not rows or not any(rows[0].get(a) for a in analytes):
        return None
    return _numbers(np.array([rows[0].get(a, "") for a in analytes], dtype=object))[0]


def _skipped_message(skipped: list[dict[str, object]], file: str) -> str:
    listed = "; ".join(
        f"line {s['row']} well {s['well']} {s['analyte']} ({s['value']})" for s in skipped[:5]
    )
    more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return (
        f"{file}: {len(skipped)} well x analyte pair(s) have no Median (the region was "
        f"not acquired) and were not read: {listed}{more}"
    )


def sniff(probe: Probe) -> bool:
    """xPONENT's first line, ``Program,xPONENT,...``."""
    first = probe.first_line.replace('"', "")
    return first.startswith("Program") and "xPONENT" in first


def read_xponent(
    path,
    *,
    study_id: str | None = None,
    plate_id: str | None = None,
    sample_map=None,
    standard_unit: str | None = None,
) -> pd.DataFrame:
    """Read a Luminex xPONENT CSV export into the validated tidy measurement table.

    Parameters
    ----------
    path : str or Path
        The export (xPONENT 3.x or 4.x CSV; CRLF or LF; UTF-8 or Windows-1252).
    study_id : str, optional
        Study identifier; defaults to the header's ``ProtocolName``, else the file name
        without extension.
    plate_id : str, optional
        Plate identifier; defaults to the header's ``Batch`` (``Session``), else the file
        name without extension. A batch over several plates gets ``<id>_plate<n>``.
    sample_map : DataFrame or path, optional
        Culture metadata joined with :func:`cytosafe.io.samples.annotate` (keyed by
        ``sample_id``, the export's Sample name, or by ``well``). It may also set
        ``sample_type`` or ``standard_concentration`` that the export lacks.
    standard_unit : str, optional
        Unit of the expected concentrations and Results when the Units block gives none
        (e.g. ``"pg/mL"``); a unit in the file that differs from it is an error.

    Returns
    -------
    pandas.DataFrame
        One row per well x analyte, validated by
        :func:`~cytosafe.schema.measurements.validate_measurements`, in the order of the
        Median block (analytes in its column order). Extras: ``net_signal``,
        ``vendor_concentration`` (pg/mL, dilution included), ``vendor_flag``,
        ``bead_region``, ``total_events``, ``standard_flag``; see the module notes for
        ``attrs``.

    Raises
    ------
    InputError
        Naming the file, the 1-based line, the well and the field: not an xPONENT
        export; a truncated file (no ``Results``, Median or Count block, a block without
        its header line, a block that lacks wells, no ``-- CRC --`` trailer); a row whose
        cell count differs from its header's; a Median that is not a non-negative number;
        a negative bead count; a duplicate Location; a bad dilution factor; a standard
        without an expected concentration; a missing unit or one that conflicts with
        ``standard_unit``; an unknown unit (:class:`~cytosafe.errors.UnitError`).
        Nothing is returned on error.

    Warns
    -----
    DataWarning
        When Median cells are ``NaN`` or empty (those well x analyte pairs are not read),
        and when a standard series is not monotonic in its dilution steps.

    Examples
    --------
    >>> table = read_xponent("plate_1.csv", sample_map="samples.csv")  # doctest: +SKIP
    >>> table[["well", "analyte", "sample_type", "signal", "bead_count"]]  # doctest: +SKIP
    """
    table = parse(path, study_id=study_id, plate_id=plate_id, standard_unit=standard_unit)
    return finish(table, source=path, sample_map=sample_map, check=check)


@names_file
def parse(
    path,
    *,
    study_id: str | None = None,
    plate_id: str | None = None,
    standard_unit: str | None = None,
) -> pd.DataFrame:
    """The raw table of an xPONENT export (the reader contract); :func:`read_xponent`
    validates it. Its warnings wait in ``attrs["warnings"]``."""
    path = Path(path)
    file = str(path)
    if standard_unit is not None:
        analyte_unit(standard_unit, file=file, field="standard_unit")
    export = _parse(path)
    med, blocks = export.med, export.blocks
    analytes = med.columns
    n_w, n_a = len(med.keys), len(analytes)

    signal, med_kind = _numbers(med.values)
    _check_numbers(
        signal, med_kind, med.values, med, blocks[_MEDIAN], file, what="median fluorescence"
    )
    beads = export.per_well(_COUNT, what="bead count")
    net = export.per_well(_NET, what="Net MFI", negative_ok=True)
    dilution = export.per_well(_DILUTION, what="dilution factor", by_analyte=False, zero_ok=False)
    vendor = _vendor_results(export)
    sec = _reagent_rows(blocks.get(_SEC), analytes, file)
    cec = _reagent_rows(blocks.get(_CEC), analytes, file)

    # Units matter only where the file holds concentrations of the analyte.
    needed = np.zeros(n_a, dtype=bool)
    for values, _ in (*sec.values(), *cec.values()):
        needed |= np.isfinite(values)
    if vendor is not None:
        needed |= np.isfinite(vendor[0]).any(axis=0)
    units = _analyte_rows(blocks.get("Units"))
    factors, stored_units = _unit_factors(
        analytes, needed, units, blocks.get("Units"), standard_unit, file
    )
    sample_type, expected = _roles_and_expected(med.samples, sec, cec, factors)

    plates = sorted({p for p, _ in med.keys})
    base = plate_id or _header_value(export.header, "Batch", "Session") or path.stem
    plate_ids = {p: base if len(plates) == 1 else f"{base}_plate{p}" for p in plates}

    def rep(per_well: object) -> np.ndarray:  # per well -> per well x analyte
        return np.repeat(np.asarray(per_well), n_a)

    table = pd.DataFrame(
        {
            "study_id": study_id or _header_value(export.header, "ProtocolName") or path.stem,
            "plate_id": rep([plate_ids[p] for p, _ in med.keys]),
            "well": rep([w for _, w in med.keys]),
            "analyte": np.tile(np.asarray(analytes, dtype=object), n_w),
            "sample_type": sample_type.ravel(),
            "standard_concentration": expected.ravel(),
            "replicate": rep(_replicates(med.keys, med.samples)),
            "signal": signal.ravel(),
            "dilution_factor": rep(np.full(n_w, np.nan) if dilution is None else dilution[:, 0]),
            "sample_id": rep(np.asarray(med.samples, dtype=object)),
            "bead_count": beads.ravel(),
            "source_file": file,
            "source_row": rep(med.lines),
            "concentration_unit": np.tile(np.asarray(stored_units, dtype=object), n_w),
        }
    )
    if net is not None:
        table["net_signal"] = net.ravel()
    if vendor is not None:
        table["vendor_concentration"] = (vendor[0] * factors).ravel()
        table["vendor_flag"] = vendor[1].ravel()
    regions = _bead_regions(export, units)
    if regions is not None:
        table["bead_region"] = pd.array(np.tile(regions, n_w), dtype="Int64")
    if med.total is not None:
        table["total_events"] = rep(_numbers(med.total)[0])
    found = _non_monotonic(sec, analytes) if sec else []
    if sec:
        culprits = {(f["standard"], f["analyte"]) for f in found}
        flagged = (
            np.array(
                [
                    (s, a) in culprits
                    for s, a in zip(table["sample_id"], table["analyte"], strict=True)
                ]
            )
            & (table["sample_type"] == "standard").to_numpy()
        )
        table["standard_flag"] = np.where(flagged, "non_monotonic", None)
        # Such a standard is left out of the curve fit (and reported): fitting a value that
        # breaks the series by 1000x would ruin the curve of every sample on the plate.
        table["exclude"] = flagged

    # Wells without a Median (region not acquired) are reported, not read.
    keep = (med_kind == 0).ravel()
    skipped = [
        {"row": int(r), "well": w, "sample_id": s, "analyte": a, "value": v or "(empty)"}
        for r, w, s, a, v in table.loc[~keep, ["source_row", "well", "sample_id", "analyte"]]
        .assign(v=med.values.ravel()[~keep])
        .itertuples(index=False)
    ]
    table = table[keep].reset_index(drop=True)
    if table.empty:
        raise InputError(
            "no well has a Median value (every cell is NaN or empty)",
            file=file,
            row=med.header_line,
            field=_MEDIAN,
            expected="at least one median fluorescence intensity",
        )
    table.attrs["warnings"] = [
        *([_skipped_message(skipped, file)] if skipped else []),
        *([_not_acquired_message(export.not_acquired, file)] if export.not_acquired else []),
        *([_non_monotonic_message(found, file)] if found else []),
    ]
    table.attrs["header"] = {k: list(v) for k, (v, _) in export.header.items()}
    table.attrs["analysis"] = _analysis(blocks, analytes)
    table.attrs["skipped"] = skipped
    table.attrs["non_monotonic_standards"] = found
    return table


def _not_acquired_message(wells: list[dict[str, object]], file: str) -> str:
    shown = ", ".join(f"line {w['row']} well {w['well']} ({w['sample_id']})" for w in wells[:5])
    more = f"; and {len(wells) - 5} more" if len(wells) > 5 else ""
    return (
        f"{file}: {len(wells)} well(s) of the Dilution Factor block were never acquired "
        f"(no Median row; the batch stopped early?) and are not read: {shown}{more}"
    )


def _header_value(header: dict[str, tuple[list[str], int]], *keys: str) -> str | None:
    for key in keys:
        values = header.get(key, ([], 0))[0]
        if values and values[0]:
            return values[0]
    return None


def check(table: pd.DataFrame) -> None:
    """A clearer error than the schema's for standards the export gives no value for.

    Run by :func:`~cytosafe.io.reader.finish` after the sample-map join (a map may supply
    the value). The export had a *Standard Expected Concentration* block when the table has
    its ``standard_flag`` column.
    """
    sample_type = table["sample_type"].astype(str).str.strip().str.lower()
    concentration = pd.to_numeric(table["standard_concentration"], errors="coerce")
    lacking = (sample_type == "standard") & concentration.isna()
    if not lacking.any():
        return
    sec_present = "standard_flag" in table.columns
    row = table[lacking].iloc[0]
    file = row["source_file"]
    raise InputError(
        f"well {row['well']} is the standard '{row['sample_id']}' but the export gives no "
        f"expected concentration of {row['analyte']} for it"
        + ("" if sec_present else " (it has no Standard Expected Concentration block)"),
        file=file,
        row=int(row["source_row"]),
        well=row["well"],
        field=f"{_SEC}: {row['analyte']}",
        expected="a value in the Standard Expected Concentration block, or a sample_map "
        "with standard_concentration (or sample_type) for this sample",
    )


# --------------------------------------------------------------------------- writer


def _fmt(value: object, missing: str = "NaN") -> str:
    """A number as xPONENT prints it: integers bare, else the shortest exact decimal."""
    return number_text(value, missing=missing, notation="positional")


def _result_cell(value: float, flag: object) -> str:
    """A vendor concentration and flag as xPONENT's Result cell (read back identically)."""
    has = math.isfinite(value)
    if flag == "below_range":
        return f"< {_fmt(value)}" if has else "OOR <"
    if flag == "above_range":
        return f"> {_fmt(value)}" if has else "OOR >"
    if flag == "extrapolated" and has:
        return f"*{_fmt(value)}"
    return _fmt(value)


def _per_well(table: pd.DataFrame, column: str, wells: list[str], what: str) -> list[object]:
    """One value of ``column`` per well; wells whose analytes disagree are an error."""
    values = table[column]
    groups = table.assign(_v=values.astype(object).where(values.notna(), None)).groupby(
        "well", sort=False
    )["_v"]
    first = groups.first()
    distinct = groups.agg(lambda s: len({v for v in s}))
    bad = distinct[distinct > 1]
    if not bad.empty:
        well = bad.index[0]
        seen = sorted({str(v) for v in table.loc[table["well"] == well, column]})
        raise InputError(
            f"the analytes of well {well} have different {what}s: " + ", ".join(seen),
            well=well,
            field=column,
            expected=f"one {what} per well (xPONENT writes one per well)",
        )
    return [first.get(w) for w in wells]


def _names(
    wells: list[str],
    well_type: dict[str, str],
    ids: dict[str, object],
    conc: np.ndarray,
    role: str,
    pattern: re.Pattern[str],
    prefix: str,
    descending: bool,
) -> dict[str, str]:
    """xPONENT names of the wells of ``role`` (kept when they follow xPONENT's pattern).

    Otherwise the wells are grouped by ``sample_id`` (or, without one, by their
    concentrations) and numbered ``<prefix>1..n``: standards from the highest
    concentration down, as xPONENT numbers them; controls in plate order.
    """
    mine = [i for i, w in enumerate(wells) if well_type[w] == role]
    given = [ids[wells[i]] for i in mine]
    if all(isinstance(g, str) and pattern.match(g) for g in given):
        return {wells[i]: g for i, g in zip(mine, given, strict=True)}
    groups: dict[object, list[int]] = {}
    for i, g in zip(mine, given, strict=True):
        key = g if isinstance(g, str) else tuple(np.round(conc[i], 12).tolist())
        groups.setdefault(key, []).append(i)
    keys = list(groups)
    if descending:
        level = {k: -np.nanmax(np.append(conc[groups[k]].ravel(), -np.inf)) for k in keys}
        keys.sort(key=level.__getitem__)
    return {wells[i]: f"{prefix}{n}" for n, k in enumerate(keys, start=1) for i in groups[k]}


def _header_rows(
    *,
    build: str,
    batch: str,
    study: str,
    plate_format: int,
    n_wells: int,
    analytes: int,
    analysis: bool,
) -> list[list[str]]:
    """The key-value header of an xPONENT 3.1 export, up to and including ``Results``.

    The keys and their order are the 3.1 export's; instrument settings a table does not
    know are left empty, and the calibration / reagent-lot sections are not written.
    """
    when = export_time()
    stamp = when.strftime("%d/%m/%Y %H:%M:%S")  # day-first, as the 3.1 export
    return [
        ["Program", "xPONENT", "", "LX100/LX200"],
        ["Build", build],
        ["Date", when.strftime("%d/%m/%Y"), when.strftime("%H:%M")],
        ["SN", ""],
        ["Batch", batch],
        ["Version", "1"],
        ["Operator", ""],
        ["ComputerName", ""],
        ["Country Code", ""],
        ["ProtocolName", study],
        ["ProtocolVersion", "1"],
        ["ProtocolDescription", ""],
        ["ProtocolDevelopingCompany", ""],
        ["SampleVolume", ""],
        ["DDGate", ""],
        ["SampleTimeout", ""],
        ["BatchStartTime", stamp],
        ["BatchStopTime", stamp],
        [
            "BatchDescription",
            "Written by CytoSafe from a measurement table (not acquired on an instrument)",
        ],
        [
            "ProtocolPlate",
            "Name",
            f"Current {plate_format}-well plate",
            "Type",
            str(plate_format),
            "Plates",
            "1",
        ],
        ["ProtocolMicrosphere", "Map", "100 regions", "Type", "MagPlex", "Count", str(analytes)],
        ["ProtocolAnalysis", "Type", "Quan", "Mode", "FitOfAllStandards"]
        if analysis
        else ["ProtocolAnalysis", "Off"],
        ["NormBead", "None"],
        ["ProtocolHeater", "Off"],
        ["Samples", str(n_wells), "Min Events", str(_PER_BEAD), "Per Bead"],
        ["Results"],
    ]


def _xponent_names(
    wells: list[str], well_type: dict[str, str], ids: dict[str, object], conc: np.ndarray
) -> dict[str, str]:
    """The Sample name xPONENT writes for each well (see :func:`_names`).

    Blanks are ``Background0`` unless already named like one; samples keep their
    ``sample_id`` (``Unknown<n>`` when they have none), which must not read back as
    another role.
    """
    names = _names(wells, well_type, ids, conc, "standard", _STANDARD, "Standard", True)
    names |= _names(wells, well_type, ids, conc, "control", _CONTROL, "Control", False)
    for w in wells:
        if well_type[w] == "blank":
            sid = ids[w]
            names[w] = sid if isinstance(sid, str) and _BLANK.match(sid) else "Background0"
    reserved = {names[w] for w in names}
    unknown = 0
    for w in wells:
        if well_type[w] != "sample":
            continue
        sid = ids[w]
        if not isinstance(sid, str) or not sid:
            unknown += 1
            sid = f"Unknown{unknown}"
        if sid in reserved or _STANDARD.match(sid) or _CONTROL.match(sid) or _BLANK.match(sid):
            raise InputError(
                f"sample '{sid}' would be read back as a standard, control or blank",
                well=w,
                field="sample_id",
                expected="a sample name other than Standard<n>, Std<n>, Control<n>, "
                "Background or Blank",
            )
        names[w] = sid
    return names


def write_xponent(
    measurements: pd.DataFrame, path, *, batch: str | None = None, build: str = "3.1.871.0"
) -> Path:
    """Write a one-plate measurement table as a Luminex xPONENT 3.1 CSV export.

    The file is laid out as xPONENT 3.1 writes it (the module notes; studied on
    ``pone.0187901.s001.csv``): the key-value header (``Batch`` = ``batch``,
    ``ProtocolName`` = the study, day-first dates), ``Results``, then the blocks Median,
    Net MFI, Count, Result (when the table has ``vendor_concentration``), Units (each
    analyte's ``concentration_unit``: pg/mL, or an arbitrary unit as stored),
    Standard Expected Concentration (when it has standards), Control Expected
    Concentration (when it has controls), Per Bead Count, Dilution Factor, Analysis
    Types, Audit Logs and Warnings/Errors, and the ``-- CRC --`` trailer. Rows are padded
    to one width, only cells with commas are quoted (``"1(1,A1)"``), lines end in CRLF,
    the text is UTF-8. Wells are written column by column (A1, B1, ..., H1, A2, ...), as
    xPONENT acquires them.

    What xPONENT needs that a tidy table may lack is filled in as the software does:
    standards are named ``Standard1..n`` from the highest concentration down, blanks
    ``Background0``, controls ``Control1..n`` (names that already follow these patterns
    are kept), unnamed samples ``Unknown<n>``; Net MFI, when the table has no
    ``net_signal``, is the Median minus the mean Median of the blank wells (empty without
    blanks); Total Events, without ``total_events``, is the sum of the bead counts. A
    well x analyte the table lacks is written ``NaN`` (and skipped when read back). The
    calibration and reagent-lot sections are not written (a table has none to report);
    ``BatchDescription`` says the file was written by CytoSafe. The date is now, or
    ``SOURCE_DATE_EPOCH`` when set (reproducible files). The CRC32 is the CRC-32 of the
    bytes before the trailer (xPONENT's own algorithm is not published).

    Round trip: ``read_xponent(write_xponent(table, path))`` gives back the table read
    from an xPONENT export (except ``source_file``/``source_row``); for other tables, the
    columns the format holds (wells, analytes, sample names and types, signals, bead
    counts, expected concentrations, dilutions, ``net_signal``, vendor values) come
    back, ``replicate`` renumbered in plate order; culture metadata (donor, treatment)
    needs the sample map.

    Parameters
    ----------
    measurements : pandas.DataFrame
        A tidy measurement table of one plate (validated first).
    path : str or Path
        Where to write; the file is replaced atomically (nothing half-written).
    batch : str, optional
        The ``Batch`` name (read back as ``plate_id``); defaults to the ``plate_id``.
    build : str
        The xPONENT build written in the header.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        If the table fails validation, holds several plates or studies, a well's
        analytes disagree on its sample, role or dilution, a sample's name would be read
        back as a standard, control or blank, or one standard (control) name has two
        concentrations for an analyte.

    Examples
    --------
    >>> write_xponent(table[table["plate_id"] == "LX-01"], "plate_LX-01.csv")  # doctest: +SKIP
    """
    path = Path(path)
    table = validate_measurements(measurements)
    for column, what in (("plate_id", "plate"), ("study_id", "study")):
        found = list(dict.fromkeys(table[column]))
        if len(found) > 1:
            raise InputError(
                f"an xPONENT export holds one {what}; the table has {len(found)}: "
                + ", ".join(map(str, found[:5])),
                field=column,
                expected=f"a table of one {what} (write one file per plate)",
            )
    plate_id, study = str(table["plate_id"].iat[0]), str(table["study_id"].iat[0])
    analytes = list(dict.fromkeys(table["analyte"]))
    unit_of = table.drop_duplicates("analyte").set_index("analyte")["concentration_unit"]
    wells = sorted(set(table["well"]), key=lambda w: (well_index(w)[1], well_index(w)[0]))
    n_w, n_a = len(wells), len(analytes)
    w_pos = {w: i for i, w in enumerate(wells)}
    wi = table["well"].map(w_pos).to_numpy()
    ai = table["analyte"].map({a: j for j, a in enumerate(analytes)}).to_numpy()

    def matrix(column: str) -> np.ndarray:
        out = np.full((n_w, n_a), np.nan)
        if column in table.columns:
            out[wi, ai] = pd.to_numeric(table[column], errors="coerce").to_numpy(float)
        return out

    signal, beads, conc = matrix("signal"), matrix("bead_count"), matrix("standard_concentration")
    has = np.zeros((n_w, n_a), dtype=bool)
    has[wi, ai] = True
    stype = np.full((n_w, n_a), "", dtype=object)
    stype[wi, ai] = table["sample_type"].astype(str).to_numpy()

    # One role per well: all rows alike, or standards with a zero calibrator (blank) row.
    well_type: dict[str, str] = {}
    for i, w in enumerate(wells):
        kinds = set(stype[i][has[i]])
        if kinds == {"standard", "blank"} or kinds == {"standard"}:
            well_type[w] = "standard"
        elif len(kinds) == 1:
            well_type[w] = kinds.pop()
        else:
            raise InputError(
                f"the analytes of well {w} have different sample types: "
                + ", ".join(sorted(kinds)),
                well=w,
                field="sample_type",
                expected="one role per well (a standard may be the zero calibrator of an analyte)",
            )
    ids = dict(zip(wells, _per_well(table, "sample_id", wells, "sample_id"), strict=True))
    dilution = _per_well(table, "dilution_factor", wells, "dilution factor")

    names = _xponent_names(wells, well_type, ids, conc)

    # Expected concentrations: one row per standard (control) name.
    def reagent_rows(role: str) -> list[list[str]]:
        rows: dict[str, list[str]] = {}
        for i, w in enumerate(wells):
            if well_type[w] != role:
                continue
            blank_rows = has[i] & (stype[i] == "blank")
            values = np.where(blank_rows, 0.0, conc[i])
            cells = [_fmt(v, "") for v in values]
            name = names[w]
            if name in rows:
                for j, (old, new) in enumerate(zip(rows[name], cells, strict=True)):
                    if old and new and float(old) != float(new):
                        raise InputError(
                            f"{role} '{name}' has two expected concentrations of "
                            f"{analytes[j]}: {old} and {new}",
                            well=w,
                            field="standard_concentration",
                            expected=f"one concentration per {role} level and analyte",
                        )
                    rows[name][j] = old or new
            else:
                rows[name] = cells
        ordered = sorted(rows, key=lambda n: (_level(n) is None, _level(n) or 0, n))
        return [[n, *rows[n]] for n in ordered]

    if "net_signal" in table.columns:
        net = matrix("net_signal")
        net_cells = [[_fmt(v) for v in row] for row in net]
    else:
        is_blank = np.array([well_type[w] == "blank" for w in wells])
        if is_blank.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an analyte without blanks
                background = np.nanmean(signal[is_blank], axis=0)
            net_cells = [[_fmt(v) for v in row] for row in signal - background]
        else:
            net_cells = [[""] * n_a for _ in wells]

    if "total_events" in table.columns:
        total = _per_well(table, "total_events", wells, "total events")
    else:
        total = [np.nansum(b) if np.isfinite(b).any() else None for b in beads]

    regions = [""] * n_a
    if "bead_region" in table.columns:
        per = table.dropna(subset=["bead_region"]).groupby("analyte")["bead_region"].first()
        regions = [_fmt(per.get(a), "") for a in analytes]
    std_analytes = {analytes[j] for j in np.flatnonzero((stype == "standard").any(axis=0))}

    locations = [f"{i}(1,{w[0]}{int(w[1:])})" for i, w in enumerate(wells, start=1)]
    head = ["Location", "Sample", *analytes, "Total Events"]

    def well_rows(cells: list[list[str]]) -> list[list[str]]:
        return [
            [loc, names[w], *row, _fmt(t, "")]
            for loc, w, row, t in zip(locations, wells, cells, total, strict=True)
        ]

    rows: list[list[str]] = [
        *_header_rows(
            build=build,
            batch=batch or plate_id,
            study=study,
            plate_format=plate_format_for(wells),
            n_wells=n_w,
            analytes=n_a,
            analysis=bool(std_analytes),
        ),
        ["DataType:", _MEDIAN],
        head,
        *well_rows([[_fmt(v) for v in row] for row in signal]),
        ["DataType:", _NET],
        head,
        *well_rows(net_cells),
        ["DataType:", _COUNT],
        head,
        *well_rows([[_fmt(v) for v in row] for row in beads]),
    ]
    if "vendor_concentration" in table.columns:
        vendor = matrix("vendor_concentration")
        flags = np.full((n_w, n_a), None, dtype=object)
        if "vendor_flag" in table.columns:
            flags[wi, ai] = (
                table["vendor_flag"]
                .astype(object)
                .where(table["vendor_flag"].notna(), None)
                .to_numpy()
            )
        cells = [
            [_result_cell(v, f) for v, f in zip(vrow, frow, strict=True)]
            for vrow, frow in zip(vendor, flags, strict=True)
        ]
        rows += [["DataType:", _RESULT], head, *well_rows(cells)]
    rows += [
        ["DataType:", "Units"],
        ["Analyte:", *analytes],
        ["BeadID:", *regions],
        # Each analyte's values as stored: pg/mL, or its arbitrary unit kept as written.
        ["Units:", *(str(unit_of.get(a, CONCENTRATION_UNIT)) for a in analytes)],
    ]
    if std_analytes:
        rows += [["DataType:", _SEC], ["Reagent", *analytes], *reagent_rows("standard")]
    if "control" in well_type.values():
        rows += [["DataType:", _CEC], ["Reagent", *analytes], *reagent_rows("control")]
    rows += [
        ["DataType:", "Per Bead Count"],
        ["Analyte:", *analytes],
        ["BeadID:", *regions],
        ["Per Bead:", *([str(_PER_BEAD)] * n_a)],
        ["DataType:", _DILUTION],
        ["Location", "Sample", _DILUTION],
        *[
            # xPONENT leaves the dilution of standards and background empty (3.1 export).
            [loc, names[w], "" if well_type[w] in ("standard", "blank") and d == 1 else _fmt(d, "")]
            for loc, w, d in zip(locations, wells, dilution, strict=True)
        ],
        ["DataType:", "Analysis Types"],
        ["Analyte:", *analytes],
        ["AnalysisType", *["Logistic 5P" if a in std_analytes else "None" for a in analytes]],
        ["DataType:", "Audit Logs"],
        ["UserId", "Date", "Message"],
        ["DataType:", "Warnings/Errors"],
        ["Location", "Status", "Message"],
    ]
    width = max(len(r) for r in rows)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerows(r + [""] * (width - len(r)) for r in rows)
    body = buffer.getvalue().encode("utf-8")
    crc = zlib.crc32(body) & 0xFFFFFFFF
    trailer = io.StringIO(newline="")
    csv.writer(trailer, lineterminator="\r\n").writerows(
        [[_TRAILER] + [""] * (width - 1), [f"CRC32: {crc:08X}"] + [""] * (width - 1)]
    )
    data = body + trailer.getvalue().encode("utf-8")
    return atomic_write_bytes(path, data)


write = write_xponent
