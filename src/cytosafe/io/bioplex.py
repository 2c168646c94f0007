"""Bio-Rad Bio-Plex Manager Excel reports: one sheet per analyte, read into the tidy table.

Bio-Plex Manager (4.x writes BIFF8 ``.xls``, 6.x ``.xlsx``; both are read, recognised by
their content, not their extension) exports a *report table* with one worksheet per
analyte. Each analyte sheet is laid out as follows (1-based sheet rows; studied on the
Bio-Plex Manager 4.1 reports ``pnLINCO20070302A.xls`` and ``10JAN07_plate_1.xls`` of
LabKey/commonAssays, Apache-2.0, and on the layouts LabKey's ``LuminexExcelParser``
accepts)::

    File Name: G:\\...\\plate1.rbx           <- "Key: value" header lines in column A
    Analyte: IL-6 (12)                       <- analyte name and bead region
    Acquisition Date: 02-Mar-2007, 01:03 PM
    Plate ID: PLATE1_3-2-07                  <- may be empty
    ...                                      (Reader Serial Number, RP1 PMT, Signed By, ...)
    <blank row>
    Analyte | Type | Well | Outlier | Description | FI | FI - Bkgd | Std Dev | %CV |
        Obs Conc | Exp Conc | (Obs/Exp) * 100 | Conc in Range | Group | Ratio | Dilution |
        [Bead Count] | Sampling Errors    <- the data header (column set varies by version)
    IL-6 (12) | S1 | C1,D1 | 0 | | 43.3 | 43.3 | 3.18 | 7.36 | 0.15 | 0.13 | 115 | ...
    ...                                      <- one row per well, or per replicate group
    <blank row>                              (a second header + block may follow)
    legend lines ("*** Value not available / --- = Designated as an outlier", ...)
    Regression Type: Logistic - 5PL
    Std. Curve: FI = -8.49859 + (20147.9 + 8.49859) / ((1 + (Conc / 409.762)^-0.738017))^1.4408
    FitProb. = 0.3347, ResVar. = 0.9308

What the columns mean, and how they are read:

* **Type** is the well's role and replicate-group label: ``S<n>`` standard (``ES<n>`` is
  read as a standard too, as LabKey does), ``B`` blank / background, ``C<n>`` control,
  ``X<n>`` (or ``U<n>``) unknown sample. Mapped to ``sample_type`` ``standard``,
  ``blank``, ``control``, ``sample``; any other label is an error. A standard whose
  ``Exp Conc`` is 0 is the zero calibrator and becomes a ``blank`` (the schema's rule).
* **Analyte** (and the ``Analyte:`` line) is the vendor's name with the bead region in
  parentheses: ``Hu IL-12(p70) (75)`` -> ``analyte`` ``Hu IL-12(p70)``, ``bead_region``
  75. The vendor's spelling is kept; a row naming another analyte than its sheet is an
  error. Two sheets whose names differ only by region (one antigen on two bead sets,
  ``MyAnalyte (1)``, ``MyAnalyte (2)`` in LabKey/commonAssays ``WithBlankBead.xls``) keep
  their full names, so they stay two analytes.
* **Description** is the sample name -> ``sample_id`` of samples and controls (the Type
  label when empty; Excel's numeric IDs such as ``275001.0`` are read as ``275001``).
  Standards and blanks get their Type label (``S3``, ``B``) as ``sample_id``, because
  their Description names the standard series, the same for every level.
* **Well** is one well (``A1``) in a per-well table, or the replicate wells of a group
  (``C1,D1``) in a summary table, where ``FI`` is the group's *mean* and ``Std Dev`` /
  ``%CV`` its spread. A group row is kept as one row (Bio-Plex printed one measurement,
  and copying the mean into every well would fake replicates with zero variance):
  ``well`` is the first well listed, ``wells`` all of them, ``n_wells`` their number.
  When a sheet has both a per-well and a summary table, the per-well rows are used and
  every well of the summary must be among them.
* **FI** is the raw median fluorescence intensity -> ``signal``; ``FI - Bkgd`` (FI minus
  the mean FI of the blank wells; it can be negative) -> ``net_signal``. ``---`` (the
  analyst designated the well/group an outlier) and ``***`` (value not available) mean
  no FI exists: such rows are not read, a :class:`~cytosafe.errors.DataWarning` names
  them, and ``DataFrame.attrs["skipped"]`` lists them. Anything else that is not a
  non-negative number is an error.
* **Obs Conc** is Bio-Plex's back-calculated concentration, *already multiplied by the
  Dilution*, read with :func:`~cytosafe.io._values.parse_vendor_value` into
  ``vendor_concentration`` (in ``concentration_unit``) and ``vendor_flag`` (``OOR <`` / ``OOR >`` -> below /
  above range, ``*1.55`` -> extrapolated, ``***`` / empty -> missing).
* **Exp Conc** is the nominal concentration of a standard (and the expected value of a
  control; a control's 0 is read as no expected value, as LabKey's sample report, where
  ``(Obs/Exp) * 100`` is then ``***``, suggests) ->
  ``standard_concentration`` in the stored unit: a mass unit converted to pg/mL, an
  arbitrary unit (IU/mL, U/mL, AU/mL, ...) kept as written
  (:func:`~cytosafe.schema.units.analyte_unit`), named by ``concentration_unit``; the
  printed number stays in ``exp_conc`` and its unit as printed (canonical spelling) in
  ``exp_conc_unit``.
* **Dilution** (``4`` or ``1:4``) -> ``dilution_factor`` (1 when the table has no such
  column; a table without it that has another column naming a dilution, ``Dilution
  Factor`` say, is an error rather than read undiluted); **Bead Count** -> ``bead_count``
  (summary tables have none); **Outlier** -> ``outlier``; **Std Dev**, **%CV** ->
  ``fi_sd``, ``fi_cv``; **Sampling Errors** -> ``sampling_errors``. ``(Obs/Exp) * 100``,
  ``Conc in Range``, ``Group`` and ``Ratio`` are derived or empty and not read.

The same report table exported with *all analytes on one sheet* (analytes side by side,
one block of wells per data type: ``FI``, ``Bead Count``, ...) is read by
:mod:`cytosafe.io.bioplex_wide`, which turns each analyte's columns into the analyte sheet
above, so both layouts follow the rules here. It prints no standard curve, and a one-sheet
report without an ``Exp Conc`` block (the public example, SerolyzeR's
``synthetic_bioplex.xlsx``) is refused, naming the layout and what to export instead.

Units: Bio-Plex's report does not print the concentration unit in the versions studied.
The unit is taken, in this order, from the analyte sheet (a header such as ``Exp Conc
(pg/mL)`` or a ``...Units...: pg/mL`` header line), from a *Project Template* sheet in
the workbook (the SCHARP/LabKey upload template that labs fill in; its row "Units of
Concentration"), or from the ``standard_unit`` argument (``cytosafe quantify
--standard-unit``). A unit in the file that disagrees with ``standard_unit`` is an error,
as is no unit at all when the report has concentrations.

The standard curve (see :func:`read_bioplex_equations`): Bio-Plex fits ``FI - Bkgd``
(not FI) against the concentration in the well, ::

    FI - Bkgd = d + (a - d) / (1 + (Conc / c)^b)^g          (4PL: g = 1)

and prints it with the numbers substituted, ``d`` first. Its fitted slope ``b`` is
negative for a rising curve, so ``d`` is the response at zero concentration and ``a``
the response at infinite concentration (the reverse of the ``a``/``d`` naming of
:mod:`cytosafe.curves.models`, where ``b > 0``). ``Obs Conc`` = ``Dilution`` x the
inverse, ``c * (((a - d) / (y - d))^(1/g) - 1)^(1/b)``, evaluated at the printed
``FI - Bkgd`` of the row. This reproduces every in-range ``Obs Conc`` of both studied
reports to the precision the numbers are printed with (``tests/test_io_bioplex.py``).
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from cytosafe._atomic import atomic_write
from cytosafe.errors import DataWarning, InputError
from cytosafe.io._bioplex_sheets import (
    _COLUMNS,
    _DASH,
    _HEADER_LINE,
    _AnalyteSheet,
    _Block,
    _column_letter,
    _is_empty,
    _norm,
    _Sheet,
    _split_wells,
    _text,
    _where_sheet,
)
from cytosafe.io._text import short_error
from cytosafe.io._values import export_time, parse_vendor_value, written_unit
from cytosafe.io.reader import Probe, finish, names_file
from cytosafe.schema.measurements import validate_measurements
from cytosafe.schema.units import CONCENTRATION_UNIT, analyte_unit, canonical_unit, is_arbitrary
from cytosafe.schema.wells import normalize_well

__all__ = [
    "BIOPLEX_COLUMNS",
    "DESCRIPTION",
    "NAME",
    "SUFFIXES",
    "parse",
    "read_bioplex",
    "read_bioplex_equations",
    "refuse",
    "sniff",
    "write",
    "write_bioplex",
]

NAME = "bioplex"
DESCRIPTION = "a Bio-Rad Bio-Plex Manager report (.xls or .xlsx)"
SUFFIXES = (".xlsx", ".xls")

#: How Bio-Plex Manager calibrates, the default of ``cytosafe quantify`` for its reports
#: (a user's explicit option overrides a field). Source: the printed ``Regression Type``
#: and ``Std. Curve`` of each analyte sheet (see the module notes and
#: :func:`read_bioplex_equations`): the regression the report prints, ``"printed"`` here
#: (the 4PL, or a 5PL in the family the printed slope's sign says: negative, the mirror
#: 5PL), fitted to FI - Bkgd. Its weights are 1/FI^2 of the *raw* FI (measured on
#: ``10JAN07_plate_1.xls``: median 0.5 % against Obs Conc, where 1/(FI - Bkgd)^2 gives
#: 1.4 %; the report does not print its weighting). A fit to FI - Bkgd with weights 1/FI^2
#: is the fit to FI with weights 1/y^2, the constant background being absorbed by the
#: asymptotes (same slope, inflection and asymmetry; the same back-calculated
#: concentrations), so the convention fits FI with the blanks ``"ignore"``-d. The 5PL's
#: asymmetry ``g`` is kept in [0.1, 10], the range of every printed Bio-Plex 5PL (its own
#: G-CSF curve of ``10JAN07_plate_1.xls`` sits on g = 0.1;
#: :func:`cytosafe.curves.fit.fit_curves` ``bounds``).
CALIBRATION = {
    "software": "Bio-Rad Bio-Plex Manager",
    "model": "printed",
    "weighting": "1/y2",
    "blank": "ignore",
    "asymmetry_bounds": (0.1, 10.0),
    "signal": "FI (equivalent to FI - Bkgd weighted by 1/FI^2)",
    "source": "Bio-Plex Manager report: Regression Type and Std. Curve per analyte",
}

#: Default ``study_id`` when none is given (an export does not know its study).
DEFAULT_STUDY_ID = "unassigned"

_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # BIFF8 .xls lives in an OLE2 container
_ZIP_MAGIC = b"PK\x03\x04"  # .xlsx / .xlsm are zip packages

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_TYPE = re.compile(r"^(ES|S|B|C|X|U)(\d*)$")
_SAMPLE_TYPE = {"ES": "standard", "S": "standard", "B": "blank", "C": "control"}
_REGION = re.compile(r"^(.*?\S)\s*\((\d+)\)\s*$")
_SKIP_MARKERS = {"---": "outlier", "***": "not available"}
_CURVE = re.compile(
    rf"^\s*FI\s*=\s*(?P<d>{_NUM})\s*\+\s*\(\s*(?P<a>{_NUM})\s*(?P<op>[-+])\s*(?P<d2>{_NUM})\s*\)"
    rf"\s*/\s*(?P<outer>\(\s*)?\(\s*1\s*\+\s*\(\s*Conc\s*/\s*(?P<c>{_NUM})\s*\)\s*\^\s*"
    rf"(?P<b>{_NUM})\s*\)(?:\s*\)\s*\^\s*(?P<g>{_NUM}))?\s*$",
    re.IGNORECASE,
)
_FIT_STATS = re.compile(
    rf"FitProb\.?\s*=\s*(?P<p>{_NUM})\s*,\s*ResVar\.?\s*=\s*(?P<r>{_NUM})", re.IGNORECASE
)

_REQUIRED_COLUMNS = ("Type", "Well", "FI")


# --------------------------------------------------------------------------- workbook


def _load_workbook(path: Path) -> list[_Sheet]:
    """Every worksheet of an .xls or .xlsx file, told apart by the file's first bytes."""
    if not path.is_file():
        raise InputError("file not found", file=str(path))
    with path.open("rb") as fh:
        magic = fh.read(8)
    if magic.startswith(_OLE2_MAGIC):
        return _load_xls(path)
    if magic.startswith(_ZIP_MAGIC):
        return _load_xlsx(path)
    raise InputError(
        "not a Bio-Plex Manager report: the file is not an Excel workbook",
        file=str(path),
        expected="a Bio-Plex Manager Excel report (.xls or .xlsx)",
    )


def _load_xls(path: Path) -> list[_Sheet]:
    try:
        import xlrd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("reading .xls reports needs xlrd>=2.0 (pip install xlrd)") from exc
    # xlrd prints its complaints about a damaged file (to stdout by default): they go to
    # a log of our own, and the file's failure is one InputError. Ragged rows hold only
    # the cells a row has, so a damaged dimension record (65,536 rows x 256 columns
    # declared) costs nothing for the cells that are not there (issue 14: linear time).
    log = io.StringIO()
    try:
        book = xlrd.open_workbook(str(path), logfile=log, verbosity=0, ragged_rows=True)
        sheets = []
        for sh in book.sheets():
            rows = []
            for r in range(sh.nrows):
                values: list[object] = []
                for ctype, value in zip(sh.row_types(r), sh.row_values(r), strict=True):
                    if ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                        values.append(None)
                    elif ctype == xlrd.XL_CELL_ERROR:
                        values.append(xlrd.error_text_from_code.get(value, "#ERROR"))
                    else:
                        values.append(value)
                rows.append(values)
            sheets.append(_Sheet(sh.name, rows))
    except Exception as exc:  # xlrd raises several unrelated types on corrupt input
        raise InputError(
            f"cannot be read as an .xls workbook: {short_error(exc)}", file=str(path)
        ) from None
    return sheets


def _load_xlsx(path: Path) -> list[_Sheet]:
    import openpyxl

    book = None
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        # Read-only sheets are parsed while their rows are read: damaged XML fails here.
        sheets = [
            _Sheet(ws.title, [list(row) for row in ws.iter_rows(values_only=True)])
            for ws in book.worksheets
        ]
    except Exception as exc:  # zipfile, XML, KeyError, InvalidFileException, ...
        raise InputError(
            f"cannot be read as an .xlsx workbook: {short_error(exc)}", file=str(path)
        ) from None
    finally:
        if book is not None:
            book.close()
    return sheets


# --------------------------------------------------------------------------- cells


def _number(value: object) -> float:
    """A plain number, or NaN for anything else (empty, markers, text)."""
    if isinstance(value, bool):
        return math.nan
    number, flag = parse_vendor_value(value)
    return number if flag is None else math.nan


# --------------------------------------------------------------------------- sheet layout


def _header_cells(
    row: list[object],
) -> tuple[dict[str, int], dict[str, str], dict[int, str]] | None:
    """The column map of a data-table header row, its units and the header cells not
    known (column -> text), or None if the row is not one."""
    columns: dict[str, int] = {}
    units: dict[str, str] = {}
    unread: dict[int, str] = {}
    for idx, value in enumerate(row):
        if not isinstance(value, str):
            continue  # every header label is text (a damaged sheet has many empty cells)
        text = _DASH.sub(" - ", _norm(value))
        unit = None
        m = re.match(r"^(obs conc|exp conc)\s*\((.+)\)$", text)
        if m:
            text, unit = m.group(1), _text(value)[_text(value).rfind("(") + 1 : -1].strip()
        name = _COLUMNS.get(text)
        if name and name not in columns:
            columns[name] = idx
            if unit:
                units[name] = unit
        elif not name and text:
            unread[idx] = _text(value)
    if all(c in columns for c in _REQUIRED_COLUMNS):
        return columns, units, unread
    return None


def _parse_sheet(sheet: _Sheet) -> _AnalyteSheet | None:
    """Split a sheet into header lines, data tables and footer; None if not Bio-Plex."""
    header: dict[str, tuple[str, int]] = {}
    footer: dict[str, tuple[str, int]] = {}
    blocks: list[_Block] = []
    rows = sheet.rows
    r = 0
    while r < len(rows):
        found = _header_cells(rows[r])
        if found:
            columns, units, unread = found
            block = _Block(r + 1, columns, units, unread=unread)
            r += 1
            while r < len(rows) and not _is_empty(rows[r]) and not _header_cells(rows[r]):
                block.rows.append((r + 1, rows[r]))
                r += 1
            blocks.append(block)
            continue
        first = _text(rows[r][0]) if rows[r] else ""
        lowered = first.lower()
        if lowered.startswith("regression type"):
            footer["regression type"] = (first.split(":", 1)[-1].strip(), r + 1)
        elif lowered.startswith("std. curve") or lowered.startswith("std curve"):
            footer["std. curve"] = (first.split(":", 1)[-1].strip(), r + 1)
        elif lowered.startswith("fitprob"):
            footer["fitprob"] = (first, r + 1)
        elif first and not blocks:
            m = _HEADER_LINE.match(first)
            if m and m.group(1).lower() not in header:
                header[m.group(1).lower()] = (m.group(2), r + 1)
        r += 1
    # The "Analyte:" header line marks a Bio-Plex analyte sheet even when its table is
    # missing (an error the caller reports); a table alone is enough, too.
    if not blocks and "analyte" not in header:
        return None
    return _AnalyteSheet(sheet.name, header, blocks, footer)


def _template_unit(sheets: list[_Sheet], path: Path) -> tuple[str, str] | None:
    """The 'Units of Concentration' of a Project Template sheet: (unit, where) or None."""
    found: list[tuple[str, str]] = []
    for sheet in sheets:
        value_col = None
        for r, row in enumerate(sheet.rows):
            if not any(isinstance(v, str) for v in row):
                continue  # both labels looked for are text
            cells = [_norm(v) for v in row]
            if value_col is None and "value" in cells:
                value_col = cells.index("value")
            if "units of concentration" in cells:
                pos = cells.index("units of concentration")
                candidates = row[value_col:] if value_col is not None else row[pos + 1 :]
                unit = next((_text(v) for v in candidates if _text(v)), "")
                if unit:
                    found.append((unit, f"{path} (sheet '{sheet.name}', row {r + 1})"))
    distinct = {canonical_unit(u, file=w, field="Units of Concentration") for u, w in found}
    if len(distinct) > 1:
        raise InputError(
            "the workbook declares different units of concentration: "
            + ", ".join(f"'{u}' at {w}" for u, w in found),
            file=str(path),
            field="Units of Concentration",
            expected="one unit per report",
        )
    return found[0] if found else None


def _sheet_unit(sheet: _AnalyteSheet, path: Path) -> tuple[str, str] | None:
    """A unit printed on the analyte sheet itself (header line or column header)."""
    where = _where_sheet(path, sheet.name)
    units = [(value, key) for key, (value, _row) in sheet.header.items() if "unit" in key and value]
    units += [(u, name) for block in sheet.blocks for name, u in block.units.items()]
    distinct = {canonical_unit(u, file=where, field=f) for u, f in units}
    if len(distinct) > 1:
        raise InputError(
            "the sheet prints different concentration units: "
            + ", ".join(f"'{u}' ({f})" for u, f in units),
            file=where,
            field="Exp Conc",
            expected="one unit per sheet",
        )
    return units[0] if units else None


def _split_region(text: str) -> tuple[str, float]:
    """'Hu IL-12(p70) (75)' -> ('Hu IL-12(p70)', 75): analyte name and bead region."""
    m = _REGION.match(text)
    if m:
        return m.group(1), float(m.group(2))
    return text.strip(), math.nan


def _analyte_sheets(sheets: list[_Sheet], path: Path) -> list[_AnalyteSheet]:
    from cytosafe.io import bioplex_wide

    # A one-sheet report's block header also names Type, Well and FI: it is told apart
    # (the analyte row above its data columns) before the per-analyte rules see it.
    parsed = []
    for sheet in sheets:
        if bioplex_wide.is_wide(sheet.rows):
            parsed.extend(bioplex_wide.analyte_sheets(sheet, path))
        elif (one := _parse_sheet(sheet)) is not None:
            parsed.append(one)
    if not parsed:
        raise InputError(
            "not a Bio-Plex Manager report: no sheet has an 'Analyte:' header line, a "
            "data table with Type, Well and FI columns, or analytes side by side over "
            "Type, Well and FI blocks",
            file=str(path),
            expected="a Bio-Plex Manager report table exported to Excel",
        )
    for sheet in parsed:
        if not sheet.blocks:
            row = sheet.header["analyte"][1]
            raise InputError(
                "the analyte sheet has no data table (no header row with Type, Well and FI "
                f"columns after the 'Analyte:' line at row {row})",
                file=_where_sheet(path, sheet.name),
                field="Type/Well/FI",
                expected="a header row 'Analyte, Type, Well, ..., FI, FI - Bkgd, ...'",
            )
    _name_analytes(parsed)
    return parsed


def _name_analytes(sheets: list[_AnalyteSheet]) -> None:
    """Each sheet's analyte name and bead region. The name drops the region, except where
    two bead regions carry one name ('MyAnalyte (1)' and 'MyAnalyte (2)': one antigen
    coupled to two bead sets): those keep their full names, as two analytes must."""
    split = [_split_region(sheet.analyte_text) for sheet in sheets]
    regions: dict[str, set[float]] = {}
    for name, region in split:
        if math.isfinite(region):
            regions.setdefault(_norm(name), set()).add(region)
    for sheet, (name, region) in zip(sheets, split, strict=True):
        shared = len(regions.get(_norm(name), ())) > 1
        sheet.analyte = f"{name} ({region:g})" if shared else name
        sheet.region = region


# --------------------------------------------------------------------------- rows


def _cell(block: _Block, vals: list[object], name: str) -> object:
    col = block.columns.get(name)
    if col is None or col >= len(vals):
        return None
    return vals[col]


def _read_fi(value: object, where: dict) -> float | str:
    """The FI of a row: a float, or the skip reason for '---' / '***'."""
    text = _text(value)
    if text in _SKIP_MARKERS:
        return _SKIP_MARKERS[text]
    if text == "":
        raise InputError("FI is empty", field="FI", expected="a non-negative number", **where)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        fi = float(value)
    else:
        # Text that is a plain number (Excel's "number stored as text") is accepted; a
        # decimal comma ('43,3') is not guessed at.
        fi = float(text) if re.fullmatch(_NUM, text) else None
        if fi is None:
            raise InputError(
                f"FI '{text}' is not a number",
                field="FI",
                expected="a non-negative number, or '---' / '***' for no value",
                **where,
            )
    if not math.isfinite(fi) or fi < 0:
        raise InputError(
            f"FI {text} is negative or not finite",
            field="FI",
            expected="a non-negative number (raw fluorescence intensity)",
            **where,
        )
    return fi


def _read_dilution(value: object, where: dict) -> float:
    text = _text(value)
    if text == "":
        return 1.0
    if text.startswith("1:"):
        text = text[2:].strip()
    dil = _number(value if isinstance(value, (int, float)) else text)
    if not math.isfinite(dil) or dil <= 0:
        raise InputError(
            f"dilution '{_text(value)}' is not a positive number",
            field="Dilution",
            expected="a number > 0 such as 4 or 1:4 (1 = neat)",
            **where,
        )
    return dil


def _choose_blocks(sheet: _AnalyteSheet, path: Path) -> list[_Block]:
    """Per-well tables when present (summary tables then only restate them)."""
    per_well = [b for b in sheet.blocks if not b.is_summary]
    summary = [b for b in sheet.blocks if b.is_summary]
    if not per_well or not summary:
        return sheet.blocks
    covered = set()
    for block in per_well:
        for _, vals in block.rows:
            covered.update(_split_wells(_cell(block, vals, "Well")))
    for block in summary:
        for row, vals in block.rows:
            wells = _split_wells(_cell(block, vals, "Well"))
            missing = [w for w in wells if w not in covered]
            if missing:
                raise InputError(
                    "the summary table lists well(s) " + ", ".join(missing) + " that the "
                    "per-well table of the same sheet lacks",
                    file=_where_sheet(path, sheet.name),
                    row=row,
                    well=missing[0],
                    field="Well",
                    expected="every well of a replicate group also in the per-well table",
                )
    return per_well


def _sheet_records(sheet: _AnalyteSheet, path: Path, seen: dict, skipped: list[dict]) -> list[dict]:
    """One record per data row of an analyte sheet (skipped rows go to ``skipped``)."""
    records: list[dict] = []
    replicate_count: dict[str, int] = {}
    for block in _choose_blocks(sheet, path):
        try:
            _block_records(block, sheet, path, seen, skipped, records, replicate_count)
        except InputError as exc:
            if not block.field_rows:
                raise
            from cytosafe.io.bioplex_wide import sheet_error

            # A one-sheet report's row is its FI row; the bad value may sit in another block.
            raise sheet_error(exc, block) from None
    return records


def _block_records(
    block: _Block,
    sheet: _AnalyteSheet,
    path: Path,
    seen: dict,
    skipped: list[dict],
    records: list[dict],
    replicate_count: dict[str, int],
) -> None:
    """The records of one data table of an analyte sheet (see :func:`_sheet_records`)."""
    analyte_text = sheet.analyte_text
    analyte, region = sheet.analyte, sheet.region
    file_where = _where_sheet(path, sheet.name)
    if "Dilution" not in block.columns:
        # Without a Dilution column every well is read undiluted; a dilution column under
        # another name would be dropped and the samples read too low without a word.
        for idx, text in block.unread.items():
            if "dilution" in text.lower():
                raise InputError(
                    f"column {_column_letter(idx)} ('{text}') is not a column CytoSafe reads, and the "
                    "table has no Dilution column: its samples would be read undiluted",
                    file=file_where,
                    row=block.header_row,
                    field=text,
                    expected="the dilutions in a column headed 'Dilution', as Bio-Plex "
                    "Manager prints it",
                )
    for row, vals in block.rows:
        where = {"file": file_where, "row": row}
        raw_wells = _split_wells(_cell(block, vals, "Well"))
        if not raw_wells:
            raise InputError(
                "well is empty", field="Well", expected="a well such as A1 or C1,D1", **where
            )
        try:
            wells = [normalize_well(w) for w in raw_wells]
        except InputError as exc:  # name the report's column, as every error here does
            raise InputError(exc.message, field="Well", expected=exc.expected, **where) from None
        where["well"] = wells[0]

        type_label = _text(_cell(block, vals, "Type")).upper()
        m = _TYPE.match(type_label)
        if not m:
            raise InputError(
                f"unknown well type '{type_label}'" if type_label else "well type is empty",
                field="Type",
                expected="S<n> (standard), B (blank), C<n> (control), X<n> or U<n> (sample)",
                **where,
            )
        sample_type = _SAMPLE_TYPE.get(m.group(1), "sample")

        row_analyte = _text(_cell(block, vals, "Analyte"))
        if row_analyte and _norm(row_analyte) != _norm(analyte_text):
            raise InputError(
                f"the row names analyte '{row_analyte}' on the sheet of '{analyte_text}'",
                field="Analyte",
                expected=f"'{analyte_text}' (one analyte per sheet)",
                **where,
            )
        for well in wells:
            key = (analyte, well)
            if key in seen:
                first_sheet, first_row = seen[key]
                raise InputError(
                    f"duplicate well x analyte: {analyte} in well {well} already has a "
                    f"row (sheet '{first_sheet}', row {first_row})",
                    field="Well",
                    expected="one row per well x analyte",
                    **{**where, "well": well},
                )
            seen[key] = (sheet.name, row)

        fi = _read_fi(_cell(block, vals, "FI"), where)
        if isinstance(fi, str):
            skipped.append(
                {"sheet": sheet.name, "row": row, "well": ",".join(wells),
                 "type_label": type_label, "analyte": analyte, "reason": fi}
            )  # fmt: skip
            continue

        exp_conc = _number(_cell(block, vals, "Exp Conc"))
        if sample_type == "standard":
            if not math.isfinite(exp_conc):
                raise InputError(
                    f"standard {type_label} has no expected concentration",
                    field="Exp Conc",
                    expected="the nominal concentration of the standard",
                    **where,
                )
            if exp_conc < 0:
                raise InputError(
                    f"standard {type_label} has a negative expected concentration {exp_conc}",
                    field="Exp Conc",
                    expected="a concentration >= 0",
                    **where,
                )
            if exp_conc == 0:
                sample_type = "blank"  # the zero calibrator
        obs_value, obs_flag = parse_vendor_value(_cell(block, vals, "Obs Conc"))
        bead_count = _number(_cell(block, vals, "Bead Count"))
        if bead_count < 0:
            raise InputError(
                f"bead count {bead_count:g} is negative",
                field="Bead Count",
                expected="a count >= 0",
                **where,
            )
        outlier = _number(_cell(block, vals, "Outlier"))
        description = _text(_cell(block, vals, "Description"))
        sampling = _text(_cell(block, vals, "Sampling Errors"))
        if len(wells) == 1:
            replicate_count[type_label] = replicate_count.get(type_label, 0) + 1
            replicate = replicate_count[type_label]
        else:
            replicate = math.nan  # a group mean is not one replicate
        if sample_type in ("standard", "blank") or not description:
            sample_id = type_label  # Description names the series, not the level
        else:
            sample_id = description
        records.append(
            {
                "analyte": analyte,
                "well": wells[0],
                "sample_type": sample_type,
                "signal": fi,
                "dilution_factor": _read_dilution(_cell(block, vals, "Dilution"), where),
                "sample_id": sample_id,
                "bead_count": bead_count,
                "replicate": replicate,
                "source_row": row,
                "net_signal": _number(_cell(block, vals, "FI - Bkgd")),
                "exp_conc": exp_conc,
                "_obs_conc": obs_value,
                "vendor_flag": obs_flag,
                "fi_sd": _number(_cell(block, vals, "Std Dev")),
                "fi_cv": _number(_cell(block, vals, "%CV")),
                "wells": ",".join(wells),
                "n_wells": len(wells),
                "type_label": type_label,
                "description": description or None,
                "outlier": (outlier != 0) if math.isfinite(outlier) else None,
                "sampling_errors": sampling or None,
                "bead_region": region,
                "source_sheet": sheet.name,
            }
        )


def _resolve_unit(
    sheet: _AnalyteSheet,
    path: Path,
    template: tuple[str, str] | None,
    standard_unit: str | None,
) -> tuple[str | None, str]:
    """(unit, where it was read) for one sheet; a file/argument conflict is an error."""
    declared = _sheet_unit(sheet, path)
    where = _where_sheet(path, sheet.name)
    if declared is None and template is not None:
        declared = template
        where = template[1]
    if declared is not None:
        if standard_unit is not None and canonical_unit(standard_unit) != canonical_unit(
            declared[0]
        ):
            raise InputError(
                f"the report declares concentrations in '{declared[0]}' ({where}) but "
                f"standard_unit='{standard_unit}' was given",
                file=str(path),
                field="standard_unit",
                expected=f"standard_unit='{declared[0]}' or None",
            )
        return declared[0], where
    return standard_unit, "the standard_unit argument"


# --------------------------------------------------------------------------- public API


def sniff(probe: Probe) -> bool:
    """A BIFF8 ``.xls`` (the only ``.xls`` export CytoSafe reads), or an ``.xlsx`` with a
    sheet whose first rows hold an ``Analyte:`` line or the block header of the one-sheet
    report (:mod:`cytosafe.io.bioplex_wide`: analytes side by side over Type, Well and a
    data type), which would otherwise fall to the tidy reader. A workbook holding Luminex
    INTELLIFLEX's table is refused by :func:`refuse`, which the registry asks before the
    tidy reader (:func:`cytosafe.io.registry.detect_format`)."""
    if probe.is_ole2:
        return True
    for rows in probe.sheets.values():
        for row in rows:
            cells = [str(c).strip() for c in row if c is not None]
            if cells and cells[0].startswith("Analyte:"):
                return True
    from cytosafe.io.bioplex_wide import is_wide

    if any(is_wide([list(row) for row in rows]) for rows in probe.sheets.values()):
        return True
    return False


#: Luminex INTELLIFLEX's own CSV (one row per well; per bead region ``R25: RP1 MEDIAN``,
#: ``R25: RP1 COUNT``, ... columns, after ``INSTRUMENT TYPE``, ``WELL LOCATION``, ``SAMPLE
#: ID``): the layout of allotropy's ``luminex_intelliflex_single_dataset.csv`` and
#: ``luminex_intelliflex_v2_2.csv`` (Benchling-Open-Source/allotropy
#: ``tests/parsers/luminex_intelliflex/testdata``) and SerolyzeR's
#: ``inst/extdata/random_intelliflex.csv``; allotropy also lists the same table as a
#: workbook (``luminex_intelliflex_v2_2_excel.xlsx``), whose header is looked for in the
#: first :data:`_INTELLIFLEX_SHEET_ROWS` rows of each sheet. None of them has a column
#: for a standard's expected concentration; the same runs exported by xPONENT
#: (allotropy's ``luminex_intelliflex_example_01.csv``, first line
#: ``Program,xPONENT,,Intelliflex``) are read by :mod:`cytosafe.io.xponent`.
_INTELLIFLEX_REGION = re.compile(r"^R\d+:\s*RP\d+\s+\S")
#: Rows of each sheet searched for the header (a title line or two may stand above it).
_INTELLIFLEX_SHEET_ROWS = 5
_INTELLIFLEX = (
    "this is a Luminex INTELLIFLEX {form} (one row per well, a 'R<region>: RP1 MEDIAN' "
    "column per bead region), which CytoSafe does not read"
)
INTELLIFLEX_CSV = _INTELLIFLEX.format(form="CSV export")
INTELLIFLEX_XLSX = _INTELLIFLEX.format(form="export saved as a workbook")
INTELLIFLEX_REMEDY = (
    "the batch exported by xPONENT as its CSV (first line 'Program,xPONENT'; xPONENT writes "
    "it for INTELLIFLEX runs too), with the standards' expected concentrations; or a tidy "
    "CSV with columns well, analyte, sample_type, signal, standard_concentration"
)


def _intelliflex_message(row: Iterable[object], message: str) -> str | None:
    """``message``, completed, for a header row of INTELLIFLEX's table; else None."""
    cells = [str(c).strip().strip('"').strip().upper() for c in row if c is not None]
    if not {"INSTRUMENT TYPE", "WELL LOCATION"} <= set(cells):
        return None
    if not any(_INTELLIFLEX_REGION.match(c) for c in cells):
        return None
    if not any("CONC" in c or "EXPECTED" in c for c in cells):
        message += ": it has no column for the standards' expected concentrations"
    return message


def refuse(probe: Probe) -> tuple[str, str] | None:
    """A Luminex INTELLIFLEX export, its CSV or the same table in a workbook: named, with
    what to export instead (the ``refuse`` hook of :mod:`cytosafe.io.reader`, asked before
    the tidy reader that takes every workbook, unless the file opens as a tidy table:
    :func:`cytosafe.io.registry.detect_format`). Its public
    examples carry no expected concentrations of standards, so no calibration could be
    made from one."""
    if probe.is_ole2:
        return None
    if probe.is_xlsx:
        rows: list[Iterable[object]] = [
            row for sheet in probe.sheets.values() for row in sheet[:_INTELLIFLEX_SHEET_ROWS]
        ]
    else:
        rows = [probe.lines[0].split(",")] if probe.lines else []
    form = INTELLIFLEX_XLSX if probe.is_xlsx else INTELLIFLEX_CSV
    for row in rows:
        message = _intelliflex_message(row, form)
        if message is not None:
            return message, INTELLIFLEX_REMEDY
    return None


def read_bioplex(
    path,
    *,
    study_id: str | None = None,
    plate_id: str | None = None,
    sample_map=None,
    standard_unit: str | None = None,
) -> pd.DataFrame:
    """Read a Bio-Plex Manager Excel report into the validated tidy measurement table.

    Parameters
    ----------
    path : str or Path
        The report, ``.xls`` (Bio-Plex Manager 4-5, BIFF8) or ``.xlsx`` (Bio-Plex Manager
        6, or a report re-saved by Excel); the format is recognised from the content.
    study_id : str, optional
        Study identifier; defaults to ``"unassigned"`` (a report does not know its study).
    plate_id : str, optional
        Plate identifier; defaults to the report's ``Plate ID:`` line, else the file name
        without extension. Sheets that print different plate IDs need it.
    sample_map : DataFrame or path, optional
        Culture metadata joined with :func:`cytosafe.io.samples.annotate` (keyed by
        ``sample_id``, i.e. the report's Description, or by ``well``).
    standard_unit : str, optional
        Unit of ``Exp Conc`` / ``Obs Conc`` when the workbook declares none (e.g.
        ``"pg/mL"``, or an arbitrary unit such as ``"IU/mL"``, kept as written). A unit in
        the workbook that differs from it is an error.

    Returns
    -------
    pandas.DataFrame
        One row per well x analyte -- per replicate group when the report only prints
        group means (see the module notes) -- validated by
        :func:`~cytosafe.schema.measurements.validate_measurements`. Extras after the
        schema columns: ``concentration_unit`` (the stored unit), ``net_signal``
        (FI - Bkgd), ``vendor_concentration`` (Obs Conc, dilution included, in
        ``concentration_unit``), ``vendor_flag``, ``exp_conc`` (as printed) and its
        ``exp_conc_unit`` (canonical spelling), ``fi_sd``, ``fi_cv``, ``wells``,
        ``n_wells``, ``type_label`` (S1, X12, B), ``description``, ``outlier``,
        ``sampling_errors``, ``bead_region``, ``source_sheet``. ``attrs["skipped"]``
        lists rows without an FI, ``attrs["ignored_sheets"]`` sheets that are not
        analyte sheets (e.g. a Project Template).

    Raises
    ------
    InputError
        Naming the file and sheet, the 1-based sheet row, the well and the field: not
        an Excel file or no Bio-Plex analyte sheet; an analyte sheet without a data
        table; an FI that is not a non-negative number; an unknown well type; the same
        well twice for one analyte; a standard without ``Exp Conc``; a bad dilution; an
        unknown, conflicting or missing concentration unit
        (:class:`~cytosafe.errors.UnitError`). Nothing is returned on error.

    Warns
    -----
    DataWarning
        When rows carry no FI (``---`` outlier, ``***`` not available) and are not read.

    Examples
    --------
    >>> table = read_bioplex("plate1.xls", study_id="CRA-001")  # doctest: +SKIP
    >>> table[["well", "analyte", "sample_type", "signal", "vendor_concentration"]]  # doctest: +SKIP
    """
    table = parse(path, study_id=study_id, plate_id=plate_id, standard_unit=standard_unit)
    return finish(table, source=path, sample_map=sample_map)


@names_file
def parse(
    path,
    *,
    study_id: str | None = None,
    plate_id: str | None = None,
    standard_unit: str | None = None,
) -> pd.DataFrame:
    """The raw table of a Bio-Plex report (the reader contract); :func:`read_bioplex`
    validates it. Its warning waits in ``attrs["warnings"]``."""
    path = Path(path)
    if standard_unit is not None:
        analyte_unit(standard_unit, file=str(path), field="standard_unit")
    sheets = _load_workbook(path)
    analyte_sheets = _analyte_sheets(sheets, path)
    template = _template_unit(sheets, path)

    seen: dict = {}
    skipped: list[dict] = []
    records: list[dict] = []
    printed_plates: dict[str, str] = {}
    for sheet in analyte_sheets:
        sheet_records = _sheet_records(sheet, path, seen, skipped)
        printed = sheet.header.get("plate id", ("", 0))[0]
        if printed:
            printed_plates.setdefault(printed, sheet.name)
        needs_unit = any(
            math.isfinite(r["exp_conc"]) or math.isfinite(r["_obs_conc"]) for r in sheet_records
        )
        unit, unit_where = _resolve_unit(sheet, path, template, standard_unit)
        if needs_unit and unit is None:
            raise InputError(
                "the report has concentrations but declares no unit",
                file=_where_sheet(path, sheet.name),
                field="Exp Conc",
                expected="the kit's unit given as standard_unit='pg/mL' (cytosafe quantify "
                "--standard-unit pg/mL; IU/mL, U/mL, AU/mL are kept as written), or a unit in "
                "the workbook",
            )
        stored, factor = (
            analyte_unit(unit, file=unit_where, field="concentration unit")
            if unit
            else (None, math.nan)
        )
        for rec in sheet_records:
            has_expected = rec["sample_type"] == "standard" or (
                rec["sample_type"] == "control" and rec["exp_conc"] > 0
            )  # a control's 0 means no expected value was entered
            rec["standard_concentration"] = rec["exp_conc"] * factor if has_expected else np.nan
            rec["vendor_concentration"] = rec.pop("_obs_conc") * factor
            rec["concentration_unit"] = stored
            rec["exp_conc_unit"] = canonical_unit(unit) if unit else None
        records.extend(sheet_records)

    if not records:
        raise InputError(
            "the report has no row with an FI value",
            file=str(path),
            field="FI",
            expected="at least one well with a fluorescence intensity",
        )
    if plate_id is None:
        if len(printed_plates) > 1:
            raise InputError(
                "the sheets print different Plate IDs: "
                + ", ".join(f"'{p}' (sheet '{s}')" for p, s in printed_plates.items()),
                file=str(path),
                field="Plate ID",
                expected="one plate per report, or pass plate_id=",
            )
        plate_id = next(iter(printed_plates), path.stem)

    table = pd.DataFrame.from_records(records)
    table.insert(0, "study_id", study_id or DEFAULT_STUDY_ID)
    table.insert(1, "plate_id", plate_id)
    table["source_file"] = str(path)
    extras = ["concentration_unit", "net_signal", "vendor_concentration", "vendor_flag",
              "exp_conc", "exp_conc_unit", "fi_sd", "fi_cv", "wells", "n_wells", "type_label",
              "description", "outlier", "sampling_errors", "bead_region", "source_sheet"]  # fmt: skip
    table = table[[c for c in table.columns if c not in extras] + extras]
    table["bead_region"] = table["bead_region"].astype("Int64")

    pending = []
    if skipped:
        listed = "; ".join(
            f"sheet '{s['sheet']}' row {s['row']} ({s['type_label']}, {s['well']}: {s['reason']})"
            for s in skipped[:5]
        )
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        pending.append(
            f"{path}: {len(skipped)} row(s) have no FI ('---' = designated an outlier, "
            f"'***' = value not available) and were not read: {listed}{more}"
        )
    table.attrs["warnings"] = pending
    table.attrs["skipped"] = skipped
    analyte_names = {s.name for s in analyte_sheets}
    table.attrs["ignored_sheets"] = [s.name for s in sheets if s.name not in analyte_names]
    return table


def read_bioplex_equations(path) -> pd.DataFrame:
    """The standard-curve equation Bio-Plex Manager printed under each analyte sheet.

    Bio-Plex prints, e.g. ::

        Regression Type: Logistic - 5PL
        Std. Curve: FI = -8.49859 + (20147.9 + 8.49859) / ((1 + (Conc / 409.762)^-0.738017))^1.4408
        FitProb. = 0.3347, ResVar. = 0.9308

    i.e. ``FI = d + (a - d) / ((1 + (Conc / c)^b))^g`` with the coefficients substituted
    (4PL: ``FI = d + (a - d) / (1 + (Conc / c)^b)``, read with ``g = 1``); ``(a - d)`` is
    printed as ``(a + |d|)`` when ``d < 0``. Despite the ``FI`` on the left, the curve
    maps concentration *in the well* to ``FI - Bkgd``; ``Obs Conc`` is ``Dilution`` times
    ``c * (((a - d) / (FI - Bkgd - d))^(1/g) - 1)^(1/b)``. ``b`` is negative for rising
    curves, so ``d`` is the response at zero and ``a`` at infinite concentration. In the
    reports studied, Bio-Plex bounds ``g`` to [0.1, 10].

    Parameters
    ----------
    path : str or Path
        A Bio-Plex Manager report (.xls or .xlsx).

    Returns
    -------
    pandas.DataFrame
        One row per analyte sheet: ``analyte``, ``bead_region``, ``regression_type``
        (``4PL``, ``5PL``, or the printed text for other regressions, whose coefficients
        are left NaN; None when the sheet prints no curve), ``equation`` (the text after
        ``Std. Curve:``), ``a``, ``b``, ``c``, ``d``, ``g``, ``fit_prob``, ``res_var``,
        ``source_file``, ``source_sheet``, ``source_row`` (row of the equation).

    Raises
    ------
    InputError
        Not a Bio-Plex report, an analyte sheet without a data table, or a logistic
        equation that does not have the printed form above (naming sheet, row and field).
    """
    path = Path(path)
    rows = []
    for sheet in _analyte_sheets(_load_workbook(path), path):
        analyte, region = sheet.analyte, sheet.region
        reg_text, reg_row = sheet.footer.get("regression type", ("", None))
        equation, eq_row = sheet.footer.get("std. curve", ("", None))
        stats_text = sheet.footer.get("fitprob", ("", None))[0]
        where = {"file": _where_sheet(path, sheet.name), "row": eq_row or reg_row}
        m_pl = re.search(r"([45])\s*-?\s*PL", reg_text, re.IGNORECASE)
        regression = f"{m_pl.group(1)}PL" if m_pl else (reg_text or None)
        coef = dict.fromkeys("abcdg", math.nan)
        m = _CURVE.match(equation) if equation else None
        if m and bool(m.group("outer")) != bool(m.group("g")):
            m = None  # unbalanced: '((1 + ...)' without '^g', or the reverse
        if m:
            shape = "5PL" if m.group("g") else "4PL"
            if regression is None:
                regression = shape
            d = float(m.group("d"))
            d_printed = float(m.group("d2")) * (1.0 if m.group("op") == "-" else -1.0)
            if regression != shape or not math.isclose(d, d_printed, rel_tol=1e-9):
                m = None
            else:
                coef = {
                    "a": float(m.group("a")),
                    "b": float(m.group("b")),
                    "c": float(m.group("c")),
                    "d": d,
                    "g": float(m.group("g")) if m.group("g") else 1.0,
                }
        if regression in ("4PL", "5PL") and not m:
            raise InputError(
                f"cannot read the {regression} standard curve '{equation}'",
                field="Std. Curve",
                expected="FI = d + (a - d) / ((1 + (Conc / c)^b))^g"
                if regression == "5PL"
                else "FI = d + (a - d) / (1 + (Conc / c)^b)",
                **where,
            )
        stats = _FIT_STATS.search(stats_text)
        rows.append(
            {
                "analyte": analyte,
                "bead_region": region,
                "regression_type": regression,
                "equation": equation or None,
                **coef,
                "fit_prob": float(stats.group("p")) if stats else math.nan,
                "res_var": float(stats.group("r")) if stats else math.nan,
                "source_file": str(path),
                "source_sheet": sheet.name,
                "source_row": eq_row,
            }
        )
    out = pd.DataFrame(rows)
    out["bead_region"] = out["bead_region"].astype("Int64")
    out["source_row"] = out["source_row"].astype("Int64")
    return out


# --------------------------------------------------------------------------- writing

#: The data-table columns :func:`write_bioplex` writes (Bio-Plex Manager's report table;
#: the concentration columns carry the unit, a header LabKey's parser also accepts).
BIOPLEX_COLUMNS = (
    "Analyte",
    "Type",
    "Well",
    "Outlier",
    "Description",
    "FI",
    "FI - Bkgd",
    "Std Dev",
    "%CV",
    "Obs Conc",
    "Exp Conc",
    "(Obs/Exp) * 100",
    "Conc in Range",
    "Group",
    "Ratio",
    "Dilution",
    "Bead Count",
    "Sampling Errors",
)
_LEGEND = (
    "***Value not available / --- = Designated as an outlier",
    "*Value extrapolated beyond standard range",
    "OOR = Out of Range / OOR> = Out of Range Above  / OOR< = Out of Range Below",
)
_SHEET_NAME_BAD = re.compile(r"[\[\]:*?/\\]")  # characters Excel refuses in a sheet name


def _obs_cell(value: float, flag: object) -> object:
    """A vendor concentration and flag as Bio-Plex's Obs Conc cell (read back identically)."""
    has = math.isfinite(value)
    if flag == "below_range":
        return f"< {value!r}" if has else "OOR <"
    if flag == "above_range":
        return f"> {value!r}" if has else "OOR >"
    if flag == "extrapolated" and has:
        return f"*{value!r}"
    return value if has else "***"


def _bioplex_well(well: str) -> str:
    """``A01`` -> ``A1``, as Bio-Plex Manager writes wells."""
    return f"{well[0]}{int(well[1:])}"


def _type_labels(table: pd.DataFrame) -> pd.Series:
    """Bio-Plex's Type of each row: S1.. (falling concentration), B, C1.., X1.. .

    Standards are numbered per analyte by their concentration (S1 the highest, as Bio-Plex
    numbers a dilution series); controls and samples by their ``sample_id`` in order of
    appearance (one label per well when a sample has no name).
    """
    stype = table["sample_type"].astype(str)
    labels = pd.Series("B", index=table.index, dtype=object)
    std = stype == "standard"
    rank = (
        table["standard_concentration"]
        .where(std)
        .groupby(table["analyte"])
        .rank(method="dense", ascending=False)
    )
    labels[std] = "S" + rank[std].astype(int).astype(str)
    for kind, prefix in (("control", "C"), ("sample", "X")):
        mask = stype == kind
        keys = [
            sid if isinstance(sid, str) else f"\0{well}"
            for sid, well in zip(table["sample_id"][mask], table["well"][mask], strict=True)
        ]
        numbers = {k: n for n, k in enumerate(dict.fromkeys(keys), start=1)}
        labels[mask] = [f"{prefix}{numbers[k]}" for k in keys]
    return labels


def write_bioplex(
    measurements: pd.DataFrame,
    path,
    *,
    standard_unit: str | None = None,
) -> Path:
    """Write a one-plate measurement table as a Bio-Plex Manager report (``.xlsx``).

    The layout is the per-well report table the reader takes (the module notes): one sheet
    per analyte, named after it, with ``Key: value`` header lines in column A (``File
    Name``, ``Analyte: <name> (<bead region>)``, ``Acquisition Date``, ``Plate ID``), a
    blank row, the data table of :data:`BIOPLEX_COLUMNS` with one row per well, a blank
    row and the legend. Type is ``S1..`` for standards by falling concentration, ``B``
    for blanks, ``C1..`` for controls and ``X1..`` for samples (one per ``sample_id``);
    Description is the control's or sample's ``sample_id``. FI is ``signal``; FI - Bkgd
    is ``net_signal`` when given, else FI minus the mean FI of the analyte's blanks (FI
    without blanks), as Bio-Plex computes it; Obs Conc is ``vendor_concentration`` with
    its ``vendor_flag`` (``OOR <``, ``*1.55``, ...), Exp Conc the standards' and controls'
    ``standard_concentration``, both in ``standard_unit``, which the two column headers
    of each sheet name (``Exp Conc (pg/mL)``); an analyte in an arbitrary unit (IU/mL,
    ...) is written in it, unconverted, and its headers say so. Std Dev, %CV, the ratio columns and the printed standard
    curve are left out: they describe a fit the table does not hold. The acquisition date
    is now, or ``SOURCE_DATE_EPOCH`` when set.

    Round trip: :func:`read_bioplex` of the file gives back the wells, analytes, sample
    types, signals, standard concentrations, dilutions, bead counts and bead regions,
    vendor concentrations and flags, and the samples' and controls' names; standards and
    blanks are named by their Type (``S1``, ``B``), as the reader names them. Not written:
    culture metadata (use a sample map) and ``exclude`` (a
    :class:`~cytosafe.errors.DataWarning` says so).

    Parameters
    ----------
    measurements : pandas.DataFrame
        A tidy measurement table of one plate (validated first).
    path : str or Path
        Where to write (``.xlsx``); the file is replaced atomically.
    standard_unit : str, optional
        Unit of the concentration columns of analytes stored in pg/mL: any mass unit
        (default pg/mL). An arbitrary unit here must be the unit of every analyte.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        The table is not valid or holds several plates, or the unit is unknown or an
        arbitrary unit other than the table's.
    """
    path = Path(path)
    table = validate_measurements(measurements).reset_index(drop=True)
    # Per analyte: the unit its sheet is written in, and the factor from the stored values.
    stored_unit = table.drop_duplicates("analyte").set_index("analyte")["concentration_unit"]
    sheet_unit: dict[str, tuple[str, float]] = {}
    for analyte, stored in stored_unit.items():
        part = table[table["analyte"] == analyte]
        sheet_unit[analyte] = written_unit(
            part,
            standard_unit if stored == CONCENTRATION_UNIT or is_arbitrary(standard_unit) else None,
            layout="a Bio-Plex sheet",
            file=str(path),
        )
    factor = table["analyte"].map({a: f for a, (_, f) in sheet_unit.items()}).astype(float)
    plates = list(dict.fromkeys(table["plate_id"]))
    if len(plates) > 1:
        raise InputError(
            f"a Bio-Plex report holds one plate; the table has {len(plates)}: "
            + ", ".join(plates[:5]),
            file=str(path),
            field="plate_id",
            expected="the rows of one plate",
        )
    if table["exclude"].any():
        warnings.warn(
            f"{int(table['exclude'].sum())} rows are marked 'exclude'; the Bio-Plex report "
            "has no column for it, so it is not written",
            DataWarning,
            stacklevel=2,
        )
    stype = table["sample_type"].astype(str)
    labels = _type_labels(table)
    signal = table["signal"].astype(float)
    blank_mean = signal.where(stype == "blank").groupby(table["analyte"]).transform("mean")
    net = signal - blank_mean.fillna(0.0)
    if "net_signal" in table.columns:
        net = pd.to_numeric(table["net_signal"], errors="coerce").astype(float).fillna(net)
    vendor = (
        pd.to_numeric(table["vendor_concentration"], errors="coerce").astype(float) / factor
        if "vendor_concentration" in table.columns
        else None
    )
    flags = table["vendor_flag"] if "vendor_flag" in table.columns else None
    expected = (table["standard_concentration"] / factor).where(stype.isin(["standard", "control"]))
    regions = (
        pd.to_numeric(table["bead_region"], errors="coerce")
        if "bead_region" in table.columns
        else pd.Series(np.nan, index=table.index)
    )
    type_rank = stype.map({"standard": 0, "blank": 1, "control": 2, "sample": 3})
    label_number = labels.str[1:].replace("", "0").astype(int)
    well_order = [int(w[1:]) * 100 + (ord(w[0]) - ord("A")) for w in table["well"]]
    order = (
        pd.DataFrame({"t": type_rank, "n": label_number, "w": well_order}, index=table.index)
        .sort_values(["t", "n", "w"], kind="stable")
        .index
    )
    stamp = export_time().strftime("%d-%b-%Y, %I:%M %p")

    def columns(unit: str) -> list[str]:
        return [f"{c} ({unit})" if c in ("Obs Conc", "Exp Conc") else c for c in BIOPLEX_COLUMNS]

    def write(target: Path) -> None:
        import openpyxl

        book = openpyxl.Workbook()
        book.remove(book.active)
        used: set[str] = set()
        for analyte in dict.fromkeys(table["analyte"]):
            rows = [i for i in order if table["analyte"].iat[i] == analyte]
            region = regions.iloc[rows].dropna().unique()
            label = f"{analyte} ({int(region[0])})" if len(region) == 1 else analyte
            name = _SHEET_NAME_BAD.sub("_", label)[:31]
            k = 1
            while name.lower() in used:
                k += 1
                name = f"{_SHEET_NAME_BAD.sub('_', label)[: 31 - len(str(k)) - 1]}~{k}"
            used.add(name.lower())
            ws = book.create_sheet(name)
            for line in (
                f"File Name: {path.stem}.rbx",
                f"Analyte: {label}",
                f"Acquisition Date: {stamp}",
                f"Plate ID: {plates[0]}",
                "Comments: written by CytoSafe write_bioplex (not acquired on an instrument)",
            ):
                ws.append([line])
            ws.append([])
            ws.append(columns(sheet_unit[analyte][0]))
            for i in rows:
                cells = {
                    "Analyte": label,
                    "Type": labels.iat[i],
                    "Well": _bioplex_well(table["well"].iat[i]),
                    "Outlier": 0,
                    "Description": table["sample_id"].iat[i]
                    if stype.iat[i] in ("control", "sample")
                    and isinstance(table["sample_id"].iat[i], str)
                    else None,
                    "FI": float(signal.iat[i]),
                    "FI - Bkgd": float(net.iat[i]) if math.isfinite(net.iat[i]) else None,
                    "Obs Conc": None
                    if vendor is None
                    else _obs_cell(
                        float(vendor.iat[i]), flags.iat[i] if flags is not None else None
                    ),
                    "Exp Conc": float(expected.iat[i]) if pd.notna(expected.iat[i]) else None,
                    "Dilution": float(table["dilution_factor"].iat[i]),
                    "Bead Count": float(table["bead_count"].iat[i])
                    if pd.notna(table["bead_count"].iat[i])
                    else None,
                }
                ws.append([cells.get(c) for c in BIOPLEX_COLUMNS])
            ws.append([])
            for line in _LEGEND:
                ws.append([line])
        book.save(target)

    atomic_write(path, write)
    return path


write = write_bioplex
