"""Bio-Plex Manager's one-sheet report: every analyte side by side, one block per data type.

Besides the report of one sheet per analyte (:mod:`cytosafe.io.bioplex`), Bio-Plex
Manager's report table is met with all analytes on one sheet. The one public example is
``inst/extdata/synthetic_bioplex.xlsx`` of mini-pw/SerolyzeR, a synthetic file in the
layout its ``read_bioplex_format`` reads (1-based sheet rows)::

    File Name: plate1.rbx                      <- "Key: value" header lines in column A
    Acquisition Date: 04-Dec-2026, 10:00 AM
    Plate ID: ...
    <blank row>
    |      |             | IL-6 (12) | TNF (33)    <- the analyte of each column below
    Type | Well | Description | FI  | FI          <- the block's data type over each column
    B    | A1   |             | 31.5 | 28.0
    S1   | A2   | ...         | ... | ...          <- one row per well (or replicate group)
    <blank row>
    |      |             | IL-6 (12) | TNF (33)
    Type | Well | Description | Bead Count | Bead Count
    ...

Each block repeats the wells; its data type is named as the per-analyte report names
its column (``FI``, ``Bead Count`` in the example; SerolyzeR maps ``FI``, ``FI - Bkgd``
and ``Bead Count``), and is read as that column is (see :mod:`cytosafe.io.bioplex`):
``Obs Conc``, ``Exp Conc``, ``Dilution``, ``Std Dev``, ... by the same names (no public
example has those blocks, so their names are the per-analyte report's). A column whose
label above is empty belongs to the analyte on its left (a label merged over several
columns), unless that analyte has its data type already: then the label is missing, and
the column and row are named in an error. The blocks are joined by the row's Type and Well, and each analyte becomes the
analyte sheet it would have been in the per-analyte report, so that both layouts are read
by one set of rules.

What a calibration needs is the standards' expected concentrations: the public example
has only ``FI`` and ``Bead Count`` blocks, and its standards' Description is a dilution
of a standard serum (``1/100``), not a concentration. A one-sheet report whose standards
have no ``Exp Conc`` is refused, naming the layout and what to export instead.

Nothing is passed over in silence: a block skipped leaves its data type unread, and a
skipped ``Dilution`` block left every sample's concentration 1/4 of its value without a
word. So a row with Type and Well cells that is no block header the reader can read
(text over the key columns, no analyte label, an Analyte column) is an error naming the
row and why, and so is a block data type the reader does not know: it knows the
per-analyte report's column names (``_COLUMNS``; ``Dilution Factor`` is none of them,
nor does LabKey/commonAssays ``LuminexExcelParser`` read it, so no report is known to
print it and it is refused, not guessed to be ``Dilution``) and passes over the four
that report's reader does not read either (:data:`_IGNORED`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cytosafe.errors import InputError
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
    _text,
    _where_sheet,
)

__all__ = [
    "KNOWN_TYPES",
    "LAYOUT",
    "REMEDY",
    "analyte_sheets",
    "find_header",
    "is_wide",
    "sheet_error",
]

#: How error messages name this layout.
LAYOUT = (
    "a Bio-Plex Manager report with all analytes on one sheet (analytes side by side, one "
    "block of wells per data type)"
)
#: What to export instead when the layout lacks what a calibration needs.
REMEDY = (
    "the Bio-Plex Manager report table exported to Excel with one sheet per analyte, whose "
    "columns include Type, Well, FI, FI - Bkgd, Obs Conc and Exp Conc (the layout CytoSafe "
    "reads), or this layout with an Exp Conc block"
)

_STANDARD = re.compile(r"^E?S\d*$")
_KEYS = ("Type", "Well", "Description")
_FIELDS = {name for name in _COLUMNS.values() if name not in ("Analyte", *_KEYS)}


@dataclass
class _Column:
    """One data column of a block: its index, analyte label, data type and unit."""

    index: int
    analyte: str
    field: str | None  # None: a data type the reader leaves unread (see _IGNORED)
    unit: str | None
    header: str = ""  # the block header cell as printed
    known: bool = True  # False: a data type the reader does not know (an error)
    labelled: bool = True  # False: no analyte label above it (its left neighbour's)


#: Data types of the per-analyte report that are read from neither layout, and why (the
#: per-analyte report's columns as :mod:`cytosafe.io.bioplex` documents them, after
#: LabKey/commonAssays ``LuminexExcelParser``, which knows the same names): a block of
#: one of them is passed over; any other name is refused rather than dropped unread.
_IGNORED = {
    "(Obs/Exp) * 100": "Obs Conc over Exp Conc, recomputed from both",
    "Conc in Range": "Obs Conc within the curve's range, recomputed from the fit",
    "Group": "empty in the reports studied",
    "Ratio": "empty in the reports studied",
}
_IGNORED_NORM = {_norm(k) for k in _IGNORED}
#: The block data types read, as the per-analyte report spells them (its column names).
KNOWN_TYPES = tuple(dict.fromkeys(v for v in _COLUMNS.values() if v in _FIELDS))


def _data_type(value: object) -> tuple[str | None, str | None, bool]:
    """A block header cell -> (field name, unit printed in it, known), e.g. 'Exp Conc
    (pg/mL)' -> ('Exp Conc', 'pg/mL', True); a data type left unread on purpose (see
    :data:`_IGNORED`) -> (None, None, True); any other -> (None, None, False)."""
    text = _DASH.sub(" - ", _norm(value))
    unit = None
    m = re.match(r"^(obs conc|exp conc)\s*\((.+)\)$", text)
    if m:
        raw = _text(value)
        text, unit = m.group(1), raw[raw.rfind("(") + 1 : -1].strip()
    name = _COLUMNS.get(text)
    if name in _FIELDS:
        return name, unit, True
    return None, None, text in _IGNORED_NORM


def _scan_header(
    rows: list[list[object]], r: int
) -> tuple[dict[str, int], list[_Column]] | str | None:
    """Sheet row ``r`` (0-based) as a one-sheet block header: None if it holds no ``Type``
    and ``Well`` cells; else its key columns and data columns, or why it is no block
    header (a sentence naming the cell)."""
    row = rows[r]
    keys: dict[str, int] = {}
    analyte: int | None = None
    for idx, value in enumerate(row):
        if isinstance(value, str):
            norm = _norm(value)
            if norm == "analyte" and analyte is None:
                analyte = idx
            for key in _KEYS:
                if norm == key.lower() and key not in keys:
                    keys[key] = idx
    if "Type" not in keys or "Well" not in keys:
        return None
    if analyte is not None:
        return (
            f"it has an Analyte column ({_column_letter(analyte)}), as the data header of "
            "the per-analyte report has, not analyte labels in the row above"
        )
    if r == 0:
        return "it is the sheet's first row, with no row of analyte labels above it"
    above = rows[r - 1]
    start = max(keys.values()) + 1
    for i in range(min(start, len(above))):
        if _text(above[i]):
            return (
                f"the row above it (row {r}), which should name the analyte over each data "
                f"column, holds '{_text(above[i])}' in column {_column_letter(i)}, over the "
                "Type, Well and Description columns"
            )
    columns: list[_Column] = []
    label = ""
    for idx in range(start, len(row)):
        if not _text(row[idx]):
            continue
        own = _text(above[idx]) if idx < len(above) else ""
        label = own or label
        if not label:
            return (
                f"its data column {_column_letter(idx)} ('{_text(row[idx])}') has no analyte "
                f"label in the row above (row {r}), nor has any column on its left"
            )
        field, unit, known = _data_type(row[idx])
        columns.append(_Column(idx, label, field, unit, _text(row[idx]), known, bool(own)))
    if not columns:
        return "it has no data column after Type, Well and Description"
    return keys, columns


def find_header(rows: list[list[object]], r: int) -> tuple[dict[str, int], list[_Column]] | None:
    """Whether sheet row ``r`` (0-based) heads a one-sheet block: ``Type`` and ``Well``
    (and ``Description``) cells, no ``Analyte`` column, the row above holding analyte
    labels over the data columns after them, and at least one data type the reader reads.
    Returns the key columns and data columns (which :func:`analyte_sheets` checks)."""
    found = _scan_header(rows, r)
    if not isinstance(found, tuple) or not any(c.field for c in found[1]):
        return None
    return found


_ONE_COLUMN_EACH = (
    "one column per analyte and data type, each under its analyte's label (a label over "
    "several columns names them all only when they hold different data types)"
)


def _column_problem(columns: list[_Column], r: int) -> InputError | None:
    """Why the data columns of the block header on sheet row ``r`` (0-based) cannot be
    read (an error without its file), or None."""
    for col in columns:
        if not col.known:
            ignored = "; ".join(f"{k} ({why})" for k, why in _IGNORED.items())
            return InputError(
                f"column {_column_letter(col.index)} holds the data type '{col.header}', "
                f"which CytoSafe does not know (it passes over {ignored}); a block it "
                "does not know is refused rather than left unread",
                row=r + 1,
                field=col.header,
                expected=f"a block of one of: {', '.join(KNOWN_TYPES)}",
            )
    seen: dict[tuple[str, str], _Column] = {}
    for col in columns:
        if col.field is None:
            continue
        first = seen.setdefault((col.analyte, col.field), col)
        if first is col:
            continue
        a, b = _column_letter(first.index), _column_letter(col.index)
        if not col.labelled:
            return InputError(
                f"column {b} ({col.header}) has no analyte label in row {r}, above its "
                f"block header (row {r + 1}); unlabelled it would be {col.analyte}'s, "
                f"whose {col.field} is column {a} already",
                row=r,
                field=col.field,
                expected=f"the analyte's label over column {b}: {_ONE_COLUMN_EACH}",
            )
        return InputError(
            f"columns {a} and {b} both hold {col.analyte}'s {col.field}",
            row=r + 1,
            field=col.field,
            expected=_ONE_COLUMN_EACH,
        )
    return None


def is_wide(rows: list[list[object]]) -> bool:
    """Whether a sheet's rows hold a one-sheet block (see :func:`find_header`)."""
    return any(
        find_header(rows, r) is not None
        for r in range(1, len(rows))
        # a cheap first test (most rows hold no 'Type' cell), then the full one
        if any(isinstance(v, str) and v.strip().lower() == "type" for v in rows[r])
    )


def _header_lines(rows: list[list[object]], end: int) -> dict[str, tuple[str, int]]:
    """The ``Key: value`` lines in column A before the first block (as the per-analyte
    report's header lines)."""
    header: dict[str, tuple[str, int]] = {}
    for r in range(end):
        first = _text(rows[r][0]) if rows[r] else ""
        m = _HEADER_LINE.match(first) if first else None
        if m and m.group(1).lower() not in header:
            header[m.group(1).lower()] = (m.group(2), r + 1)
    return header


@dataclass
class _Cells:
    """One well (or replicate group) of one analyte, gathered from every block."""

    type_label: object
    well: object
    description: object
    row: int  # the sheet row of its FI (or first) cell
    values: dict[str, object]
    rows: dict[str, int]  # data type -> the sheet row its value is on


def analyte_sheets(sheet: _Sheet, path: Path) -> list[_AnalyteSheet]:
    """The analyte sheets the one-sheet report ``sheet`` stands for, one per analyte, each
    with one data table of the columns Analyte, Type, Well, Description and the data types
    of its blocks (the per-analyte report's layout; :mod:`cytosafe.io.bioplex`).

    Raises
    ------
    InputError
        A row of Type and Well cells that is no readable block header (why is named); a
        block data type the reader does not know; a data column without its analyte label
        or two columns of one analyte and data type (named by column letter);
        a well listed twice in one block, or in a block but not in the analyte's FI block;
        an analyte without an FI column; standards without an ``Exp Conc`` block (the
        layout and what to export instead are named).
    """
    rows = sheet.rows
    where = _where_sheet(path, sheet.name)
    first_header: int | None = None
    analytes: dict[str, dict[tuple[str, str], _Cells]] = {}
    fields: dict[str, dict[str, int]] = {}  # analyte -> data type -> its header row
    units: dict[str, dict[str, str]] = {}
    r = 0
    while r < len(rows):
        found = _scan_header(rows, r)
        if found is None:
            r += 1
            continue
        if isinstance(found, str):
            # A row of Type and Well cells in a one-sheet report is a block header; one
            # that cannot be read is refused (skipping it dropped its block unread).
            raise InputError(
                f"this is {LAYOUT}, and row {r + 1} holds Type and Well cells as a block "
                f"header does, but is no block header CytoSafe can read: {found}",
                file=where,
                row=r + 1,
                expected="over each block: a row naming the analyte over each data column "
                "(nothing over Type, Well and Description), then the row Type | Well | "
                "Description | the data type of each column",
            )
        keys, columns = found
        problem = _column_problem(columns, r)
        if problem is not None:
            raise problem.located(file=where)
        header_row = r + 1
        first_header = header_row if first_header is None else first_header
        r += 1
        while r < len(rows) and not _is_empty(rows[r]):
            vals = rows[r]
            key_cells = [vals[keys[k]] if k in keys and keys[k] < len(vals) else None
                         for k in _KEYS]  # fmt: skip
            if not _text(key_cells[0]) and not _text(key_cells[1]):
                break  # the next block's analyte row, or a line below the table
            key = (_norm(key_cells[0]), re.sub(r"\s+", "", _norm(key_cells[1])))
            for col in columns:
                if col.field is None:
                    continue
                cells = analytes.setdefault(col.analyte, {})
                fields.setdefault(col.analyte, {}).setdefault(col.field, header_row)
                if col.unit:
                    units.setdefault(col.analyte, {})[col.field] = col.unit
                entry = cells.get(key)
                if entry is None:
                    entry = cells[key] = _Cells(*key_cells, r + 1, {}, {})
                elif col.field in entry.values:
                    raise InputError(
                        f"{col.analyte}: well '{_text(key_cells[1])}' ({_text(key_cells[0])}) "
                        f"is listed twice in the {col.field} block (first at row "
                        f"{entry.rows[col.field]})",
                        file=where,
                        row=r + 1,
                        field="Well",
                        expected="each well once per block",
                    )
                entry.values[col.field] = vals[col.index] if col.index < len(vals) else None
                entry.rows[col.field] = r + 1
                if col.field == "FI":
                    entry.row = r + 1
            r += 1
    if first_header is None:  # pragma: no cover - callers pass sheets is_wide() accepted
        return []

    header = _header_lines(rows, first_header - 2)
    out: list[_AnalyteSheet] = []
    for analyte, cells in analytes.items():
        have = fields[analyte]
        if "FI" not in have:
            raise InputError(
                f"analyte '{analyte}' has no FI block",
                file=where,
                row=min(have.values()),
                field="FI",
                expected=f"an FI block with a column for every analyte, in {LAYOUT}",
            )
        for entry in cells.values():
            if "FI" not in entry.values:
                missing = min(entry.rows, key=entry.rows.get)
                raise InputError(
                    f"{analyte}: well '{_text(entry.well)}' ({_text(entry.type_label)}) is in "
                    f"the {missing} block but not in the FI block",
                    file=where,
                    row=entry.rows[missing],
                    field="Well",
                    expected="the same wells in every block",
                )
        standards = [e for e in cells.values() if _STANDARD.match(_text(e.type_label).upper())]
        if standards and "Exp Conc" not in have:
            blocks = ", ".join(dict.fromkeys(f for a in fields.values() for f in a))
            labels = [_text(e.type_label) for e in standards]
            raise InputError(
                f"this is {LAYOUT}; its blocks ({blocks}) include no Exp Conc, so the "
                f"standards of {analyte} ({labels[0]} to {labels[-1]}) have no expected "
                "concentration to calibrate with",
                file=where,
                row=first_header,
                field="Exp Conc",
                expected=REMEDY,
            )
        order = ["FI", *sorted(f for f in have if f != "FI")]
        columns = {"Analyte": 0, "Type": 1, "Well": 2, "Description": 3}
        columns.update({f: 4 + i for i, f in enumerate(order)})
        block = _Block(have["FI"], columns, dict(units.get(analyte, {})))
        for entry in cells.values():
            vals = [analyte, entry.type_label, entry.well, entry.description]
            vals += [entry.values.get(f) for f in order]
            block.rows.append((entry.row, vals))
            block.field_rows[entry.row] = dict(entry.rows)
        label_row = have["FI"] - 1
        out.append(
            _AnalyteSheet(sheet.name, {**header, "analyte": (analyte, label_row)}, [block], {})
        )
    if not out:
        raise InputError(
            f"this is {LAYOUT}, but its blocks have no data row",
            file=where,
            row=first_header,
            field="FI",
            expected="rows of wells under each block header",
        )
    return out


def sheet_error(error: InputError, block: _Block) -> InputError:
    """``error`` of a row of a one-sheet analyte table, moved to the sheet row its field's
    value is on (the table's row is the well's FI row; Exp Conc is in another block)."""
    rows = block.field_rows.get(error.row or -1, {})
    field = error.field
    if field not in rows or rows[field] == error.row:
        return error
    return type(error)(
        error.message,
        file=error.file,
        row=rows[field],
        well=error.well,
        field=error.field,
        expected=error.expected,
    )
