"""MSD Discovery Workbench exports: read into the tidy table, and write in the vendor's layout.

MSD (Meso Scale Discovery) imagers read electrochemiluminescence (ECL) counts per spot
of multi-spot plates; Discovery Workbench (DW) joins them to the plate layout (sample
names, calibrator concentrations, dilutions), fits the standard curves and exports a
*data table*: one row per well x spot (assay). The layout below was studied on the real
DW 4.0.12 export ``tidy-data-4.csv`` (codeasmanuscript/code-along ``data/``, CC BY 4.0;
read from ``../shared/data/real-exports/``, never copied). Lines are 1-based::

    Name,Value,,,...                      <- line 1: key-value preamble, every row padded
    User,Administrator,,,...                 with commas to the table's width
    Creation Time,01/20/2016 13:39:14 EST
    Read Time,...    Layout,...    Type,96 Multi-Spot 4
    Wells Per Row,12    Wells Per Col,8    Spots Per Well,4    Stack ID,0
    Barcode1,...    Barcode2,N/A    Barcode3,N/A    Plate #,N/A
    Model,...    Serial #,1.30013E+12     <- re-saved by Excel: scientific notation
    Version,4.0.12 (LSR_4_0_12)    Orient,0    Comments,
    ,,,...                                <- two empty rows
    <experiment>: Experiment Data Table   <- the section title
    Plate Name,Sample,Assay,Well,Spot,Dilution,Concentration,Signal,Adjusted Signal,
      Mean,Adj. Sig. Mean,CV,% Recovery,% Recovery Mean,Calc. Concentration,
      Calc. Conc. Mean,Calc. Conc. CV
    Plate_25E5MAPB94,S001,Adiponectin,A01,1,,0.0128,356,356,330,329.5,11.37...

Other layouts DW writes, and how this reader takes them (each checked against public
files or parsers):

* **Per-plate sections**: a single-cell title line holding the plate name
  (``Plate_2BO40AW287``) above a header without ``Plate Name`` (tests of the MSD
  Workbench parser of Benchling-Open-Source/allotropy, MIT:
  ``tests/parsers/msd_workbench/testdata/msd_workbench_test_1.csv``, ``_test_2.csv``).
  The title becomes ``plate_id``; several sections make several plates. :func:`sniff`
  recognises a file that opens with such a title above a header naming ``Sample``,
  ``Assay``, ``Well`` and ``Signal``.
* **Optional columns** of DW's column chooser: ``Detection Range`` (``In Detection
  Range``, ``Below/Above Detection Range``, ``Below/Above Fit Curve Range``),
  ``Fit Statistic: RSquared``, ``Std. Deviation``, ``Detection Limits: Calc. Low/High``,
  ``Sample Group`` (``Standards``, ``Blanks``, ...), ``Excluded`` and ``Dilution
  Factor`` / ``Standard Concentration`` for ``Dilution`` / ``Concentration`` (allotropy,
  same tests; the column lists of public DW post-processing scripts such as the CDC
  MSDShinyQC ``validate_excel.R``). Columns are found by name in any order;
  unknown columns are ignored.
* **Excel export**: the sheet ``Exp_Data_Tbl`` of a DW ``.xlsx`` (title row, then the
  header row; MSDShinyQC ``process_excel_files.R`` reads it with ``skip = 1``), or the
  first sheet holding a data-table header. ``source_row`` is the Excel row.
* **Older per-type sections** titled ``<group>: <assay>`` (``Unknown: IL-6 (Human)``)
  above a header without ``Assay`` (``Sample,Well,Signal,Mean,Std. Deviation,CV,Calc.
  Concentration,...``; documented in a public 2013 MSD post-processing script): the
  assay and the sample group come from the title, the plate from the file name.
* Tab-separated text (``.txt``) as well as CSV; UTF-8 or Windows-1252; CRLF or LF.
* **Not supported**: the instrument's raw plate files (MESO QuickPlex / SECTOR
  ``.txt`` with ``==========Data====`` grids, read by allotropy's ``methodical_mind``
  parser). They hold ECL counts per well and spot but no sample names, calibrator
  concentrations or assays; reading one raises an :class:`~cytosafe.errors.InputError`
  that says to export the data table from Discovery Workbench instead.

How the table is read
---------------------
* ``signal`` is **Signal**, the raw ECL count (the *Adjusted Signal*, kept as the
  ``adjusted_signal`` extra, is Signal after DW's optional background correction; it
  equals Signal in every public export we found). ``plate_id`` is **Plate Name** (else
  the section title, else the file name), ``analyte`` **Assay**, ``sample_id``
  **Sample**, ``source_row`` the line of the row.
* ``sample_type``, in order: a recognised ``Sample Group`` / ``Sample Type`` column
  (``Standards``/``Calibrators`` -> standard, ``Blanks`` -> blank, ``Controls`` ->
  control, ``Unknowns``/``Samples`` -> sample) or per-type section title; else DW's
  default names: ``S001``... (also ``STD-01``, ``Standard 1``, ``CAL-01``,
  ``Calibrator 1``) is a ``standard``, ``Blank`` (``Blank1``, ``Blk``) a ``blank``,
  ``C1``/``C001`` (``Control 1``, ``Ctrl1``, ``QC1``) a ``control``; every other name
  (``U001``... and user names) is a ``sample``. A calibrator whose Concentration is 0 is
  MSD's zero calibrator (the kits' diluent-only level, e.g. ``S008`` in allotropy's test
  file) and becomes a ``blank``. A calibrator *without* a Concentration is an error. A
  sample map overrides any of this (e.g. a renamed calibrator: its Concentration is kept
  in ``standard_concentration``, so setting ``sample_type`` is enough).
* ``standard_concentration`` is **Concentration** (calibrators; controls' expected
  value) in ``standard_unit`` (DW writes numbers without a unit; default pg/mL): a mass
  unit converted to pg/mL, an arbitrary unit (IU/mL, U/mL, AU/mL, ...) kept as written
  (:func:`~cytosafe.schema.units.analyte_unit`); ``concentration_unit`` names the unit
  stored.
* ``dilution_factor`` is **Dilution** (empty = 1, as DW writes it for calibrators);
  ``replicate`` numbers the wells that share plate, assay and sample name in reading
  order (A01, A02, ..., B01), so it does not depend on DW's row order; ``exclude`` is
  **Excluded** when exported.
* Extras, after the schema's columns: ``vendor_concentration`` (in
  ``concentration_unit``) and
  ``vendor_flag``, **Calc. Concentration** parsed by
  :func:`~cytosafe.io._values.parse_vendor_value` (DW writes ``NaN`` where the signal is
  outside the fitted curve; with a ``Detection Range`` column that says ``Below/Above
  Fit Curve Range`` the flag becomes ``below_range``/``above_range``); ``spot``;
  ``adjusted_signal``; ``detection_range`` when exported.
* ``DataFrame.attrs``: ``header`` (the preamble keys and values), ``experiment`` (the
  name before ``: Experiment Data Table``), ``layout`` and, for Excel, ``sheet``.

What Discovery Workbench computes (checked on ``tidy-data-4.csv``)
-----------------------------------------------------------------
* **Curve fit**: a 4PL fitted to the *mean* Adjusted Signal of each calibrator level with
  weights 1/y² (y = that mean) reproduces every Calc. Concentration of the file to
  within 5e-7 (relative); the same fit on individual wells misses by ~0.1 %, an
  unweighted one by ~10 %. Public DW "Plate Analysis Properties" dumps show the same
  defaults (``Algorithm: FourPL``, ``Weighting: 1/y^2``). Signals are back-fitted one
  well at a time.
* **Mean** is the mean Signal of the wells that share plate, sample and assay, rounded to
  an integer (half up: 329.5 -> 330); **Adj. Sig. Mean** the unrounded mean Adjusted
  Signal; **CV** = 100 x SD (n - 1) / Adj. Sig. Mean. **% Recovery** = 100 x Calc.
  Concentration / Concentration for calibrators and controls (empty for the zero
  calibrator and for samples); **Calc. Conc. Mean**, **Calc. Conc. CV** and **% Recovery
  Mean** likewise per group, ``NaN`` as soon as one well of the group is ``NaN``
  (allotropy's ``msd_workbench_test_1.csv``).
* **Dilution**: DW multiplies Calc. Concentration by the layout's Dilution (MSD kit
  inserts), so ``vendor_concentration`` is the concentration in the undiluted sample,
  like the other readers' -- not verifiable on the public file, whose Dilutions are all 1.
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cytosafe._atomic import atomic_write_bytes
from cytosafe.errors import DataWarning, InputError
from cytosafe.io._text import decode_text
from cytosafe.io._values import (
    cell_text,
    export_time,
    number_text,
    vendor_value,
    written_unit,
)
from cytosafe.io.reader import Probe, finish, names_file, select_plate
from cytosafe.schema.measurements import validate_measurements
from cytosafe.schema.units import analyte_unit
from cytosafe.schema.wells import PLATE_FORMATS, normalize_well, plate_format_for, well_index

__all__ = [
    "DESCRIPTION",
    "MSD_COLUMNS",
    "MSD_PREAMBLE_KEYS",
    "NAME",
    "SUFFIXES",
    "parse",
    "read_msd",
    "sniff",
    "write",
    "write_msd",
]

NAME = "msd"
DESCRIPTION = "an MSD Discovery Workbench data-table export (CSV, tab-separated text or XLSX)"
SUFFIXES = (".csv", ".txt", ".xlsx")

#: How Discovery Workbench calibrates, the default of ``cytosafe quantify`` for its
#: exports (a user's explicit option overrides a field). Source: the module notes (4PL,
#: weights 1/y^2, reproducing every Calc. Concentration of ``tidy-data-4.csv``; DW's
#: "Plate Analysis Properties" ``Algorithm: FourPL``, ``Weighting: 1/y^2``); the zero
#: calibrator and blanks enter the fit as concentration 0, on the raw ECL signal.
CALIBRATION = {
    "software": "MSD Discovery Workbench",
    "model": "4PL",
    "weighting": "1/y2",
    "blank": "zero_standard",
    "signal": "ECL signal (blanks as the zero standard)",
    "source": "Discovery Workbench: Algorithm FourPL, Weighting 1/y^2 (module notes)",
}

#: The columns of a Discovery Workbench 4.0 "Experiment Data Table", in DW's order.
MSD_COLUMNS = (
    "Plate Name",
    "Sample",
    "Assay",
    "Well",
    "Spot",
    "Dilution",
    "Concentration",
    "Signal",
    "Adjusted Signal",
    "Mean",
    "Adj. Sig. Mean",
    "CV",
    "% Recovery",
    "% Recovery Mean",
    "Calc. Concentration",
    "Calc. Conc. Mean",
    "Calc. Conc. CV",
)

#: The keys of DW 4.0's preamble, in its order (the real export, lines 1-19).
MSD_PREAMBLE_KEYS = (
    "Name",
    "User",
    "Creation Time",
    "Read Time",
    "Layout",
    "Type",
    "Wells Per Row",
    "Wells Per Col",
    "Spots Per Well",
    "Stack ID",
    "Barcode1",
    "Barcode2",
    "Barcode3",
    "Plate #",
    "Model",
    "Serial #",
    "Version",
    "Orient",
    "Comments",
)

_TITLE_SUFFIX = "experiment data table"

# Header names (lower case, single spaces) -> the reader's field. Aliases are the names
# other DW versions and column choices use for the same quantity.
_COLUMN_FIELDS = {
    "plate name": "plate",
    "sample": "sample",
    "assay": "assay",
    "well": "well",
    "spot": "spot",
    "dilution": "dilution",
    "dilution factor": "dilution",
    "concentration": "concentration",
    "standard concentration": "concentration",
    "expected concentration": "concentration",
    "signal": "signal",
    "adjusted signal": "adjusted_signal",
    "calc. concentration": "calc",
    "detection range": "detection_range",
    "sample group": "group",
    "sample type": "group",
    "excluded": "excluded",
}

# Sample groups as DW names them in "Sample Group" and in per-type section titles.
_GROUPS = (
    ("standard", "standard"),
    ("calibrator", "standard"),
    ("blank", "blank"),
    ("control", "control"),
    ("unknown", "sample"),
    ("sample", "sample"),
)

# DW's default sample names (S001 calibrators, C001 controls, U001 unknowns, Blank) and
# the spellings labs type into the layout instead (STD-01, CAL-01, Control 1, QC1).
_STANDARD_NAME = re.compile(r"^(?:s\d+|(?:std|standard|cal|calibrator)[\s_.-]*\d+)$", re.IGNORECASE)
_BLANK_NAME = re.compile(r"^(?:blank|blk)[\s_.-]*\d*$", re.IGNORECASE)
_CONTROL_NAME = re.compile(r"^(?:c[\s_.-]?\d+|(?:ctrl|control|qc)[\s_.-]*\d*)$", re.IGNORECASE)

_TRUTHY = {"true", "yes", "y", "1", "x", "excluded"}


# --------------------------------------------------------------------------- loading


@dataclass
class _Record:
    """One row of the file: its 1-based line (Excel row) and its cells, stripped."""

    line: int
    cells: list[str]

    @property
    def empty(self) -> bool:
        return not any(self.cells)

    @property
    def filled(self) -> list[str]:
        return [c for c in self.cells if c]


def _load_xlsx(path: Path, file: str) -> tuple[list[_Record], str]:
    """The rows of DW's ``Exp_Data_Tbl`` sheet (or the first sheet with a data table)."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged file
        raise InputError(f"cannot be opened as an Excel workbook: {exc}", file=file) from None
    try:
        names = list(book.sheetnames)
        # DW names its data sheet Exp_Data_Tbl; look there first.
        order = sorted(names, key=lambda n: n.strip().lower() != "exp_data_tbl")
        first: tuple[list[_Record], str] | None = None
        for name in order:
            sheet = book[name]
            records = [
                _Record(i, [cell_text(v, non_finite="NaN", datetime_sep=" ") for v in row])
                for i, row in enumerate(
                    sheet.iter_rows(min_row=1, max_row=max(sheet.max_row, 1), values_only=True),
                    start=1,
                )
            ]
            if first is None:
                first = (records, name)
            if any(_is_header(r) for r in records):
                return records, name
        assert first is not None
        return first
    finally:
        book.close()


def _load(path: Path) -> tuple[list[_Record], str | None]:
    """All records of a DW export (CSV, tab-separated text or Excel) and the sheet read."""
    file = str(path)
    if not path.is_file():
        raise InputError("file not found", file=file)
    if path.suffix.lower() in {".xlsx", ".xlsm"}:
        return _load_xlsx(path, file)
    # DW runs on Windows; non-ASCII sample names may come as Windows-1252.
    text = decode_text(path.read_bytes(), file=file)
    if "==========Data" in text:
        raise InputError(RAW_PLATE_FILE, file=file, expected=RAW_PLATE_REMEDY)
    lines = [ln for ln in text.splitlines()[:60] if ln.strip()]
    delimiter = "\t" if sum("\t" in ln for ln in lines) > sum("," in ln for ln in lines) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[_Record] = []
    end = 0
    try:
        for cells in reader:
            records.append(_Record(end + 1, [c.strip() for c in cells]))
            end = reader.line_num
    except csv.Error as exc:
        raise InputError(f"cannot be read as CSV: {exc}", file=file, row=end + 1) from None
    return records, None


# --------------------------------------------------------------------------- sections


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _is_header(record: _Record) -> bool:
    # A cell that normalises to "signal" holds that word as lowercase text, so a line
    # without all three words is no header: most lines are refused without normalising
    # each cell (issue 16, item 4: this test runs on every line of every export).
    text = "\n".join(record.cells).lower()
    if "signal" not in text or "well" not in text or "sample" not in text:
        return False
    names = {_norm(c) for c in record.cells}
    return {"sample", "well", "signal"} <= names


@dataclass
class _Section:
    """A data table: its title, header and rows, and what the title says."""

    title: str | None
    title_line: int | None
    header: _Record
    rows: list[_Record] = field(default_factory=list)
    plate: str | None = None
    assay: str | None = None
    group: str | None = None
    experiment: str | None = None


def _group_type(text: str) -> str | None:
    """The sample type a DW sample group names (``Standards`` -> standard), if any."""
    word = _norm(text)
    for prefix, stype in _GROUPS:
        if word.startswith(prefix):
            return stype
    return None


def _read_title(section: _Section) -> None:
    """What the section title says: experiment, plate, or sample group and assay."""
    title = section.title
    if title is None:
        return
    if _norm(title).endswith(_TITLE_SUFFIX):
        section.experiment = title[: -len(_TITLE_SUFFIX)].strip().rstrip(":").strip() or None
        return
    head, sep, tail = title.partition(":")
    if sep and tail.strip() and _group_type(head) is not None:
        section.group = _group_type(head)
        section.assay = tail.strip()
        return
    section.plate = title


def _sections(records: list[_Record], file: str) -> tuple[list[_Section], dict[str, str], bool]:
    """Split the file into data-table sections; also return the preamble.

    The third value says whether the file looked like a DW export (a ``Name,Value``
    preamble or a data-table title) even if no header was found: then it is truncated.
    """
    sections: list[_Section] = []
    preamble: dict[str, str] = {}
    known_keys = {_norm(k) for k in MSD_PREAMBLE_KEYS}
    looks_like_dw = bool(records) and [_norm(c) for c in records[0].filled[:2]] == ["name", "value"]
    pending: _Record | None = None  # the last single-cell line: a title candidate
    # The index of the first non-empty record at or after each index, found in one pass
    # from the end, so that looking ahead past a lone cell costs nothing per line (a tail
    # of lone cells made the earlier scan of the rest of the file quadratic: issue 14).
    next_filled = [len(records)] * (len(records) + 1)
    for j in range(len(records) - 1, -1, -1):
        next_filled[j] = j if not records[j].empty else next_filled[j + 1]
    i = 0
    while i < len(records):
        record = records[i]
        if _is_header(record):
            title = None
            if pending is not None and _norm(pending.cells[0]) not in known_keys:
                title = pending.cells[0]
            section = _Section(title, pending.line if title else None, record)
            _read_title(section)
            i += 1
            while i < len(records):
                row = records[i]
                if row.empty or _is_header(row):
                    break
                if len(row.filled) == 1 and row.cells[0] and i + 1 < len(records):
                    # A lone cell followed by a header opens the next section.
                    nxt = next_filled[i + 1]
                    if nxt < len(records) and _is_header(records[nxt]):
                        break
                section.rows.append(row)
                i += 1
            sections.append(section)
            pending = None
            continue
        if not record.empty:
            filled = record.filled
            if len(filled) == 1 and record.cells[0]:
                pending = record
                if _norm(record.cells[0]).endswith(_TITLE_SUFFIX):
                    looks_like_dw = True
            else:
                pending = None
        i += 1
    first = (sections[0].title_line or sections[0].header.line) if sections else None
    for record in records:
        if first is not None and record.line >= first:
            break
        if record.cells and record.cells[0] and len(record.filled) <= 2:
            value = record.cells[1] if len(record.cells) > 1 else ""
            preamble.setdefault(record.cells[0], value)
    return sections, preamble, looks_like_dw


# --------------------------------------------------------------------------- values


def _number(text: str, *, where: dict[str, object], what: str) -> float:
    """A plain number (Excel's ``1.30013E+12`` included), or an InputError."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{what} '{text}' is not a number", expected="a number", **where) from None
    if not math.isfinite(value):
        raise InputError(f"{what} '{text}' is not a number", expected="a number", **where)
    return value


def _infer_type(name: str, concentration: float, group: str | None) -> str | None:
    """The sample type of a DW row; ``None`` for a calibrator without a Concentration."""
    if group is None:
        if _BLANK_NAME.match(name):
            return "blank"
        if _CONTROL_NAME.match(name):
            return "control"
        if _STANDARD_NAME.match(name):
            group = "standard"
        else:
            return "sample"
    if group == "standard":
        if math.isnan(concentration):
            return None
        # MSD kits' last calibrator is diluent only: the zero calibrator is the blank.
        return "blank" if concentration == 0 else "standard"
    return group


@dataclass
class _Row:
    plate: str
    well: str
    assay: str
    sample: str
    sample_type: str
    concentration: float
    dilution: float
    signal: float
    adjusted: float
    calc: float
    flag: str | None
    spot: str
    detection_range: str
    excluded: bool
    line: int


def _rows(section: _Section, file: str, stem: str, factor: float) -> list[_Row]:
    """The rows of one section, checked cell by cell."""
    header = section.header
    width = max(i for i, c in enumerate(header.cells) if c) + 1
    columns: dict[str, int] = {}
    for pos, name in enumerate(header.cells[:width]):
        key = _COLUMN_FIELDS.get(_norm(name))
        if key is not None and key not in columns:
            columns[key] = pos
    names = {key: header.cells[pos] for key, pos in columns.items()}
    if "assay" not in columns and section.assay is None:
        raise InputError(
            "the data table has no Assay column",
            file=file,
            row=header.line,
            field="Assay",
            expected="a header with Sample, Assay, Well and Signal",
        )
    out: list[_Row] = []
    wells: dict[str, str] = {}  # well as written -> as the schema writes it (a pure function)
    for record in section.rows:
        cells = record.cells
        well_text = cells[columns["well"]] if columns["well"] < len(cells) else ""
        where: dict[str, object] = {"file": file, "row": record.line}
        if well_text:
            where["well"] = well_text
        if len(cells) < width:
            raise InputError(
                f"the row has {len(cells)} cells, the header {width}: the file is truncated",
                field=header.cells[len(cells)] or None,
                expected="every row as wide as the data-table header",
                **where,
            )
        if any(cells[width:]) or len(cells) > len(header.cells):
            raise InputError(
                f"the row has more cells than the header ({width}); a sample name with an "
                "unquoted comma?",
                expected="every row as wide as the data-table header",
                **where,
            )

        def cell(key: str, cells: list[str] = cells) -> str:
            return cells[columns[key]] if key in columns else ""

        well = wells.get(well_text)
        if well is None:
            well = wells[well_text] = normalize_well(well_text, **where)
        where["well"] = well
        plate = cell("plate") or section.plate or stem
        if "plate" in columns and not cell("plate"):
            raise InputError("Plate Name is empty", field=names["plate"], **where)
        assay = cell("assay") if "assay" in columns else (section.assay or "")
        if not assay:
            raise InputError("Assay is empty", field=names.get("assay", "Assay"), **where)
        sample = cell("sample")
        if not sample:
            raise InputError(
                "Sample is empty", field=names["sample"], expected="a sample name", **where
            )

        signal_text = cell("signal")
        if not signal_text:
            raise InputError(
                "Signal is missing",
                field=names["signal"],
                expected="an ECL count >= 0",
                **where,
            )
        signal = _number(signal_text, where={**where, "field": names["signal"]}, what="Signal")
        if signal < 0:
            raise InputError(
                f"Signal {signal_text} is negative",
                field=names["signal"],
                expected="an ECL count >= 0",
                **where,
            )
        adjusted = signal
        if cell("adjusted_signal"):
            adjusted, _ = vendor_value(
                cell("adjusted_signal"), field=names.get("adjusted_signal"), **where
            )

        conc_text = cell("concentration")
        concentration = (
            _number(
                conc_text, where={**where, "field": names["concentration"]}, what="Concentration"
            )
            * factor
            if conc_text
            else math.nan
        )
        if concentration < 0:
            raise InputError(
                f"Concentration {conc_text} is negative",
                field=names["concentration"],
                expected="a concentration >= 0",
                **where,
            )
        dil_text = cell("dilution")
        dilution = (
            _number(dil_text, where={**where, "field": names["dilution"]}, what="Dilution")
            if dil_text
            else 1.0
        )
        if dilution <= 0:
            raise InputError(
                f"Dilution {dil_text} is not positive",
                field=names["dilution"],
                expected="a dilution factor > 0 (empty = 1)",
                **where,
            )

        group = section.group
        if cell("group"):
            group = _group_type(cell("group")) or group
        stype = _infer_type(sample, concentration, group)
        if stype is None:
            raise InputError(
                f"calibrator '{sample}' has no Concentration",
                field=names.get("concentration", "Concentration"),
                expected="the calibrator's nominal concentration",
                **where,
            )

        calc, flag = (math.nan, None)
        if "calc" in columns:
            calc, flag = vendor_value(cell("calc"), field=names.get("calc"), **where)
            calc *= factor
            if math.isnan(calc):
                rng = _norm(cell("detection_range"))
                if "below fit curve" in rng:
                    flag = "below_range"
                elif "above fit curve" in rng:
                    flag = "above_range"
        out.append(
            _Row(
                plate=plate,
                well=well,
                assay=assay,
                sample=sample,
                sample_type=stype,
                concentration=concentration,
                dilution=dilution,
                signal=signal,
                adjusted=adjusted,
                calc=calc,
                flag=flag,
                spot=cell("spot"),
                detection_range=cell("detection_range"),
                excluded=_norm(cell("excluded")) in _TRUTHY,
                line=record.line,
            )
        )
    return out


def _replicates(
    plates: list[str], assays: list[str], samples: list[str], wells: list[str]
) -> np.ndarray:
    """1, 2, ... over the wells of each plate x assay x sample, in reading order (A01, A02)."""
    frame = pd.DataFrame(
        {
            "p": plates,
            "a": assays,
            "s": samples,
            "pos": [row * 100 + col for row, col in map(well_index, wells)],
        }
    )
    return frame.groupby(["p", "a", "s"], sort=False)["pos"].rank(method="first").to_numpy(int)


#: Why a raw MSD instrument plate file (MESO QuickPlex / Methodical Mind, an
#: ``==========Data`` grid) is refused, and what to export instead.
RAW_PLATE_FILE = (
    "this is a raw MSD instrument plate file (ECL counts on a plate grid, without sample "
    "names, calibrator concentrations or assays), not a Discovery Workbench data table"
)
RAW_PLATE_REMEDY = "the Experiment Data Table exported from Discovery Workbench"


def refuse(probe: Probe) -> tuple[str, str] | None:
    """A raw MSD instrument plate file: recognised as MSD's, and refused with what to
    export instead (the ``refuse`` hook of :mod:`cytosafe.io.reader`)."""
    if probe.is_ole2 or probe.is_xlsx:
        return None
    if any(line.startswith("==========Data") for line in probe.lines):
        return RAW_PLATE_FILE, RAW_PLATE_REMEDY
    return None


def sniff(probe: Probe) -> bool:
    """A DW export: its ``Exp_Data_Tbl`` sheet or data-table header in an ``.xlsx``; in
    text, the ``Name,Value`` preamble, the ``Experiment Data Table`` title, or a data-table
    header (``Sample``, ``Well``) whose signal column is named further down (a data table
    saved without its preamble; a header naming ``well`` and ``signal`` is a tidy table)."""
    if probe.is_xlsx:
        if "Exp_Data_Tbl" in probe.sheets:
            return True
        for rows in probe.sheets.values():
            for row in rows:
                names = {str(c).strip().lower() for c in row if c is not None}
                if {"sample", "well", "signal", "assay"} <= names:
                    return True
        return False
    if probe.is_ole2:
        return False
    first = probe.first_line.replace('"', "")
    if first.startswith("Name,Value") or any(
        line.strip().strip('",').endswith("Experiment Data Table") for line in probe.lines
    ):
        return True
    header = first.lower()
    if (
        "sample" in header
        and "well" in header
        and "signal" not in header
        and "signal" in "".join(probe.lines).lower()
    ):
        return True
    return _titled_table(probe.lines)


def _titled_table(lines: tuple[str, ...]) -> bool:
    """A per-plate section first: a lone title cell (``Plate_2BO40AW287``, padded with
    separators or not) above DW's data-table header, which names ``Sample``, ``Assay``,
    ``Well`` and ``Signal`` (a tidy table has no ``Assay`` column)."""
    filled = [line for line in lines if line.replace('"', "").strip(" ,;\t")]
    if len(filled) < 2:
        return False
    sep = "\t" if "\t" in filled[1] else ","
    title = [c for c in filled[0].replace('"', "").split(sep) if c.strip()]
    names = {_norm(c.strip('"')) for c in filled[1].split(sep)}
    return len(title) == 1 and {"sample", "assay", "well", "signal"} <= names


def read_msd(
    path,
    *,
    study_id: str | None = None,
    plate_id: str | None = None,
    sample_map=None,
    standard_unit: str | None = None,
) -> pd.DataFrame:
    """Read an MSD Discovery Workbench data-table export into the tidy measurement table.

    Parameters
    ----------
    path : str or Path
        The export: DW's "Experiment Data Table" as CSV (or tab-separated ``.txt``), or
        a DW Excel workbook (sheet ``Exp_Data_Tbl``). Several plates per file are read.
    study_id : str, optional
        Study identifier; defaults to the file name without extension.
    plate_id : str, optional
        Plate identifier: names the plate of a one-plate file, or keeps the plate of that
        name from a file of several (:func:`~cytosafe.io.reader.select_plate`); default
        each row's Plate Name (else the section title, else the file name).
    sample_map : DataFrame or path, optional
        Culture metadata joined with :func:`cytosafe.io.samples.annotate`, keyed by
        ``sample_id`` (the export's Sample name, optionally per ``plate_id``) or ``well``.
    standard_unit : str, optional
        Unit of DW's Concentration and Calc. Concentration columns (DW writes none); a
        mass unit is converted to pg/mL, an arbitrary unit (IU/mL, ...) kept. Default
        (``None``) pg/mL.

    Returns
    -------
    pandas.DataFrame
        One row per well x assay, validated by
        :func:`~cytosafe.schema.measurements.validate_measurements`, in the file's row
        order. Extras: ``vendor_concentration`` (in ``concentration_unit``),
        ``vendor_flag``, ``spot``,
        ``adjusted_signal``, and ``detection_range`` when exported. See the module notes
        for the rules.

    Raises
    ------
    InputError
        Naming file, line, well and column: not a DW data table; a truncated file (a row
        narrower than the header, or no data table after the preamble); a Signal that is
        missing, not a number or negative; two values for one well x assay on a plate; a
        calibrator without a Concentration; an unknown ``standard_unit``
        (:class:`~cytosafe.errors.UnitError`). Nothing is returned on error.

    Examples
    --------
    >>> table = read_msd("plate_MSD-01.csv", sample_map="samples.csv")  # doctest: +SKIP
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
    """The raw table of a DW export (the reader contract); :func:`read_msd` validates it."""
    path = Path(path)
    file = str(path)
    unit, factor = analyte_unit(standard_unit, file=file, field="standard_unit")
    records, sheet = _load(path)
    sections, preamble, looks_like_dw = _sections(records, file)
    if not sections:
        if looks_like_dw:
            last = max((r.line for r in records if not r.empty), default=1)
            raise InputError(
                "the file ends before the data table: no header row after the preamble "
                "(the file is truncated)",
                file=file,
                row=last,
                expected="a header row with Sample, Assay, Well and Signal",
            )
        first = next((r for r in records if not r.empty), None)
        raise InputError(
            "not an MSD Discovery Workbench export: no data-table header found"
            + (
                f" (line 1 reads '{','.join(first.filled[:3])}')"
                if first
                else " (the file is empty)"
            ),
            file=file,
            expected="a header row with Sample, Assay, Well and Signal",
        )
    rows: list[_Row] = []
    for section in sections:
        if not section.rows:
            raise InputError(
                "the data table has a header but no rows (the file is truncated)",
                file=file,
                row=section.header.line,
                expected="one row per well x assay under the header",
            )
        rows += _rows(section, file, path.stem, factor)

    seen: dict[tuple[str, str, str], int] = {}
    for row in rows:
        key = (row.plate, row.well, row.assay)
        if key in seen:
            raise InputError(
                f"a second {row.assay} value for this well on plate '{row.plate}' "
                f"(the first is at line {seen[key]})",
                file=file,
                row=row.line,
                well=row.well,
                field="Well",
                expected="one row per plate x well x assay",
            )
        seen[key] = row.line

    def col(name: str) -> list:
        return [getattr(r, name) for r in rows]

    sample_type = col("sample_type")
    concentration = np.asarray(col("concentration"), dtype=float)
    # A blank keeps 0 (the zero calibrator) or nothing; samples keep what DW wrote.
    table = pd.DataFrame(
        {
            "study_id": study_id if study_id is not None else path.stem,
            "plate_id": col("plate"),
            "well": col("well"),
            "analyte": col("assay"),
            "sample_type": sample_type,
            "standard_concentration": concentration,
            "replicate": _replicates(col("plate"), col("assay"), col("sample"), col("well")),
            "signal": np.asarray(col("signal"), dtype=float),
            "dilution_factor": np.asarray(col("dilution"), dtype=float),
            "exclude": col("excluded"),
            "sample_id": col("sample"),
            "source_file": file,
            "source_row": col("line"),
            "concentration_unit": unit,
        }
    )
    columns = {_COLUMN_FIELDS.get(_norm(c)) for s in sections for c in s.header.cells}
    if "calc" in columns:
        table["vendor_concentration"] = np.asarray(col("calc"), dtype=float)
        table["vendor_flag"] = pd.Series(col("flag"), dtype=object)
    spots = col("spot")
    if "spot" in columns:
        numeric = all(re.fullmatch(r"\d+", s) for s in spots)
        table["spot"] = (
            pd.array([int(s) for s in spots], dtype="Int64")
            if numeric
            else pd.Series([s or None for s in spots], dtype=object)
        )
    if "adjusted_signal" in columns:
        table["adjusted_signal"] = np.asarray(col("adjusted"), dtype=float)
    if "detection_range" in columns:
        table["detection_range"] = pd.Series(
            [s or None for s in col("detection_range")], dtype=object
        )

    table = select_plate(table, plate_id, file=file)
    experiments = [s.experiment for s in sections if s.experiment]
    if any(s.experiment for s in sections):
        layout = "experiment_data_table"
    elif any(s.group for s in sections):
        layout = "sample_group_sections"
    else:
        layout = "plate_sections"
    table.attrs = {
        "header": dict(preamble),
        "experiment": experiments[0] if experiments else None,
        "layout": layout,
        "sheet": sheet,
    }
    return table


# --------------------------------------------------------------------------- writing


def _level_names(table: pd.DataFrame, stype: str, prefix: str, *, descending: bool) -> pd.Series:
    """DW-style names (``S001``...) for rows of ``stype`` lacking a sample_id.

    Levels are ranked per plate x analyte by concentration (S001 the highest, the MSD
    kits' Calibrator 1), controls likewise; rows without a concentration share one name.
    """
    mask = table["sample_type"] == stype
    conc = table["standard_concentration"].where(mask)
    rank = (
        conc.groupby([table["plate_id"], table["analyte"]])
        .rank(method="dense", ascending=not descending)
        .fillna(1)
    )
    return (prefix + rank.astype(int).map("{:03d}".format)).where(mask)


def _sample_names(table: pd.DataFrame) -> pd.Series:
    """``U001``... for samples lacking a sample_id: one name per culture, else per well."""
    keys = [
        c
        for c in (
            "donor_id",
            "treatment",
            "treatment_concentration",
            "assay_format",
            "incubation_h",
        )
        if table[c].notna().any()
    ]
    keys = [*keys, "dilution_factor"] if keys else ["well"]
    names = pd.Series(None, index=table.index, dtype=object)
    todo = (table["sample_type"] == "sample") & table["sample_id"].isna()
    codes: dict[tuple, str] = {}
    for pos in np.flatnonzero(todo.to_numpy()):
        key = tuple(
            "" if pd.isna(v) else str(v) for v in table.loc[pos, ["plate_id", *keys]].tolist()
        )
        codes.setdefault(key, f"U{len(codes) + 1:03d}")
        names.iat[pos] = codes[key]
    return names


def _group_stats(values: pd.Series, groups: list[pd.Series]) -> tuple[pd.Series, pd.Series]:
    """Per-row group mean and CV (%), ``NaN`` when any member is ``NaN`` (as DW writes)."""
    any_nan = values.isna().groupby(groups, sort=False).transform("any").astype(bool)
    grouped = values.groupby(groups, sort=False)
    mean = grouped.transform("mean").where(~any_nan)
    sd = grouped.transform("std")  # ddof = 1; NaN for a single well
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = (100.0 * sd / mean).where((~any_nan) & (mean != 0))
    return mean, cv


def write_msd(
    measurements: pd.DataFrame,
    path,
    *,
    standard_unit: str | None = None,
    version: str = "4.0.12 (LSR_4_0_12)",
) -> Path:
    """Write measurements as a Discovery Workbench 4.0 "Experiment Data Table" CSV.

    The layout is the one of DW 4.0.12 (see the module notes): the key-value preamble
    with DW's keys, two empty rows, ``<study>: Experiment Data Table``, the 17 columns,
    every row padded to 17 cells, CRLF line endings. Plate Name is ``plate_id``, Sample
    ``sample_id``, Assay ``analyte``; Spot is the ``spot`` column, else the analyte's
    rank on its plate. Concentration (calibrators, controls' expected values, the zero
    calibrator) and Calc. Concentration (``vendor_concentration``) are written in
    ``standard_unit`` (DW writes no unit: a file in another unit than pg/mL is read back
    with that ``standard_unit``). Mean, Adj. Sig. Mean, CV, % Recovery and the Calc. Conc. means are
    computed as DW computes them; without vendor concentrations the Calc. and % Recovery
    columns are empty. Adjusted Signal is ``adjusted_signal`` when given, else Signal
    (DW's default, no background correction). ``Creation Time`` / ``Read Time`` are now,
    or ``SOURCE_DATE_EPOCH`` when set (reproducible files).

    Rows lacking a ``sample_id`` get DW's default names: calibrators ``S001``... by
    falling concentration, controls ``C001``..., blanks ``Blank``, samples ``U001``...
    (one per culture when the table says which, else one per well).

    Round trip: ``read_msd(write_msd(table, p), study_id=...)`` gives back the wells,
    analytes, sample names and types, signals, concentrations, dilutions and vendor
    concentrations (``replicate`` renumbered in reading order). Not in the DW 4.0 column
    set, hence not written: culture metadata (use a sample map), ``exclude`` (a
    :class:`~cytosafe.errors.DataWarning` says so), vendor flags other than ``NaN``.

    Parameters
    ----------
    measurements : pandas.DataFrame
        A tidy measurement table (validated first).
    path : str or Path
        Where to write; the file is replaced atomically, never half-written.
    standard_unit : str, optional
        Unit of the Concentration columns in the file: for a table in pg/mL any mass
        unit (default pg/mL); a table in an arbitrary unit (IU/mL, ...) is written in it,
        unconverted (:func:`~cytosafe.io._values.written_unit`).
    version : str
        The ``Version`` written in the preamble.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InputError
        The table is not valid, the unit unknown or not the table's arbitrary unit, the
        table in several units (DW holds none), or a sample name would read back as
        another sample type (e.g. a sample called ``S001``: DW's calibrator name).
    """
    path = Path(path)
    table = validate_measurements(measurements).reset_index(drop=True)
    _, factor = written_unit(table, standard_unit, layout="the DW data table", file=str(path))
    stype = table["sample_type"].astype(str)

    # Sample names: the table's, else DW's defaults.
    names = table["sample_id"].astype(object).where(table["sample_id"].notna(), None)
    defaults = (
        _level_names(table, "standard", "S", descending=True)
        .combine_first(_level_names(table, "control", "C", descending=True))
        .combine_first(pd.Series(np.where(stype == "blank", "Blank", None), index=table.index))
        .combine_first(_sample_names(table))
    )
    names = names.where(names.notna(), defaults)

    conc_pg = table["standard_concentration"]
    written_conc = pd.Series(np.nan, index=table.index)
    has = conc_pg.notna() & stype.isin(["standard", "control", "blank"])
    written_conc[has] = conc_pg[has] / factor
    # A zero calibrator (a blank with a calibrator's name) needs its 0 to read back.
    zero_cal = (
        (stype == "blank")
        & written_conc.isna()
        & names.map(lambda n: bool(_STANDARD_NAME.match(str(n))))
    )
    written_conc[zero_cal] = 0.0

    for pos in range(len(table)):
        name = str(names.iat[pos])
        back = _infer_type(name, float(written_conc.iat[pos]), None)
        if back != stype.iat[pos]:
            raise InputError(
                f"{stype.iat[pos]} '{name}' (plate {table['plate_id'].iat[pos]}, "
                f"{table['analyte'].iat[pos]}) would read back as "
                f"{back or 'a calibrator without a Concentration'}: Discovery Workbench "
                "sample types follow the sample names",
                row=pos + 1,
                well=str(table["well"].iat[pos]),
                field="sample_id",
                expected="S001... calibrators, Blank, C001... controls, other names for samples",
            )
    if table["exclude"].any():
        warnings.warn(
            f"{int(table['exclude'].sum())} rows are marked 'exclude'; the Discovery "
            "Workbench 4.0 data table has no column for it, so it is not written",
            DataWarning,
            stacklevel=2,
        )

    # Spot: the table's, else the analyte's rank on its plate (first appearance).
    if "spot" in table.columns and table["spot"].notna().all():
        spot = table["spot"].astype(str)
    else:
        spot = (
            table.groupby("plate_id", sort=False)["analyte"]
            .transform(lambda a: a.map({x: i + 1 for i, x in enumerate(dict.fromkeys(a))}))
            .astype(str)
        )

    signal = table["signal"].astype(float)
    adjusted = (
        table["adjusted_signal"].astype(float).fillna(signal)
        if "adjusted_signal" in table.columns
        else signal
    )
    groups = [table["plate_id"], names.astype(str), table["analyte"]]
    mean_signal, _ = _group_stats(signal, groups)
    adj_mean, cv = _group_stats(adjusted, groups)
    mean_rounded = np.floor(mean_signal + 0.5)  # DW rounds half up: 329.5 -> 330

    vendor = (
        table["vendor_concentration"].astype(float) / factor
        if "vendor_concentration" in table.columns
        else pd.Series(np.nan, index=table.index)
    )
    has_vendor = bool(vendor.notna().any())
    calc_mean = calc_cv = recovery = rec_mean = pd.Series(np.nan, index=table.index)
    if has_vendor:
        calc_mean, calc_cv = _group_stats(vendor, groups)
        with np.errstate(divide="ignore", invalid="ignore"):
            recovery = (100.0 * vendor / written_conc).where(written_conc > 0)
        rec_mean, _ = _group_stats(recovery, groups)

    dilution = table["dilution_factor"].astype(float)
    write_dilution = stype.isin(["sample", "control"]) | (dilution != 1)

    # Row order: plate, then calibrators, blanks, controls, samples, by name, assay
    # (spot) and well, as DW lists a plate's calibrators first with replicates together.
    type_rank = stype.map({"standard": 0, "blank": 1, "control": 2, "sample": 3})
    order = pd.DataFrame(
        {
            "plate": pd.factorize(table["plate_id"])[0],
            "type": type_rank,
            "name": pd.factorize(names.astype(str))[0],
            "std_name": names.astype(str).where(stype == "standard", ""),
            "assay": pd.factorize(table["analyte"])[0],
            "well": [well_index(w)[0] * 100 + well_index(w)[1] for w in table["well"]],
        }
    )
    order = order.sort_values(["plate", "type", "std_name", "name", "assay", "well"], kind="stable")

    width = len(MSD_COLUMNS)
    rows: list[list[str]] = []
    for pos in order.index:
        is_ref = pd.notna(written_conc.iat[pos])
        rows.append(
            [
                str(table["plate_id"].iat[pos]),
                str(names.iat[pos]),
                str(table["analyte"].iat[pos]),
                str(table["well"].iat[pos]),
                spot.iat[pos],
                number_text(dilution.iat[pos]) if write_dilution.iat[pos] else "",
                number_text(written_conc.iat[pos]) if is_ref else "",
                number_text(signal.iat[pos]),
                number_text(adjusted.iat[pos]),
                number_text(mean_rounded.iat[pos]),
                number_text(adj_mean.iat[pos]),
                number_text(cv.iat[pos]),
                number_text(recovery.iat[pos]) if has_vendor and written_conc.iat[pos] > 0 else "",
                number_text(rec_mean.iat[pos]) if has_vendor and is_ref else "",
                number_text(vendor.iat[pos]) if has_vendor else "",
                number_text(calc_mean.iat[pos]) if has_vendor else "",
                number_text(calc_cv.iat[pos]) if has_vendor else "",
            ]
        )

    wells = list(table["well"])
    fmt = plate_format_for(wells)
    n_rows, n_cols = PLATE_FORMATS[fmt]
    n_spots = int(pd.to_numeric(spot, errors="coerce").max()) if spot.str.isdigit().all() else 1
    spots_per_well = next((k for k in (1, 4, 7, 10) if k >= n_spots), n_spots)
    plates = list(dict.fromkeys(table["plate_id"]))
    stamp = export_time().strftime("%m/%d/%Y %H:%M:%S %Z").strip()
    experiment = str(table["study_id"].iat[0])
    preamble = {
        "Name": "Value",
        "User": "CytoSafe",
        "Creation Time": stamp,
        "Read Time": stamp,
        "Layout": "Standard",
        "Type": f"{fmt} Multi-Spot {spots_per_well}"
        if spots_per_well > 1
        else f"{fmt} Single-Spot",
        "Wells Per Row": str(n_cols),
        "Wells Per Col": str(n_rows),
        "Spots Per Well": str(spots_per_well),
        "Stack ID": "0",
        "Barcode1": plates[0] if len(plates) == 1 else "N/A",
        "Barcode2": "N/A",
        "Barcode3": "N/A",
        "Plate #": "N/A",
        "Model": "N/A",
        "Serial #": "N/A",
        "Version": version,
        "Orient": "0",
        "Comments": "written by CytoSafe write_msd",
    }

    def padded(cells: list[str]) -> list[str]:
        return cells + [""] * (width - len(cells))

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for key in MSD_PREAMBLE_KEYS:
        writer.writerow(padded([key, preamble[key]]))
    writer.writerow(padded([]))
    writer.writerow(padded([]))
    writer.writerow(padded([f"{experiment}: Experiment Data Table"]))
    writer.writerow(list(MSD_COLUMNS))
    writer.writerows(rows)

    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
    return path


write = write_msd
