"""Bio-Plex Manager's one-sheet report (all analytes side by side) and INTELLIFLEX's CSV.

Both came up in the 2026-12-04 survey of public exports. The one-sheet report
(SerolyzeR's ``inst/extdata/synthetic_bioplex.xlsx``: blocks of FI and Bead Count, one
column per analyte, the analyte named in the row above) was taken by the tidy reader,
whose message about the header misled; a ``.xls`` of it went to the per-analyte rules,
which took its sheet for one analyte named after the sheet, the first column of each block
its values. Luminex INTELLIFLEX's own CSV (allotropy's ``luminex_intelliflex_*.csv``,
SerolyzeR's ``random_intelliflex.csv``) was "not a format CytoSafe recognises". Every
workbook and CSV here is typed in the layout with synthetic values; nothing is copied from
the public files.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from cytosafe.cli import app
from cytosafe.errors import DataWarning, InputError
from cytosafe.io import detect_format, read
from cytosafe.io.bioplex import read_bioplex_equations, write_bioplex
from cytosafe.quantification import quantify

#: (analyte label as Bio-Plex prints it, scale of its concentrations and signals)
ANALYTES = (("IL-6 (25)", 1.0), ("TNF-a (36)", 2.0))
BACKGROUND = 30.0
DILUTION = 4.0
SAMPLES_IN_WELL = (20.0, 150.0, 900.0, 2500.0)  # pg/mL in the well, times the scale
EXAMPLE_TIDY = (
    Path(__file__).resolve().parents[1] / "examples" / "cra-study" / "tidy" / "measurements.csv"
)


def net_fi(conc: float, scale: float) -> float:
    """A rising 4PL (bottom 5, top 20,000 x scale, EC50 300 x scale, slope 1.1)."""
    c, h = 300.0 * scale, 1.1
    return 5.0 + (20000.0 * scale - 5.0) * conc**h / (c**h + conc**h)


def plate() -> list[dict]:
    """The wells: 7 standards in duplicate, 2 blanks, a control pair, 4 samples at 1:4."""
    wells = []
    for k in range(7):
        for col in (1, 2):
            wells.append({"type": f"S{k + 1}", "well": f"{'ABCDEFG'[k]}{col}",
                          "description": "Standard1", "conc": 5000.0 / 3**k, "dil": 1.0})  # fmt: skip
    for col in (1, 2):
        wells.append({"type": "B", "well": f"H{col}", "description": "", "conc": 0.0, "dil": 1.0})
    for row in "AB":
        wells.append({"type": "C1", "well": f"{row}3", "description": "Kit control",
                      "conc": 400.0, "dil": 1.0, "expected": 400.0})  # fmt: skip
    for n, conc in enumerate(SAMPLES_IN_WELL, start=1):
        wells.append({"type": f"X{n}", "well": f"{'CDEF'[n - 1]}3",
                      "description": f"serum {n}", "conc": conc, "dil": DILUTION})  # fmt: skip
    return wells


def value(well: dict, data_type: str, scale: float, r: int) -> object:
    """One cell of a block: the well's value of ``data_type`` for one analyte."""
    conc = well["conc"] * scale
    net = net_fi(conc, scale) if conc > 0 else 0.0
    standard = well["type"].startswith("S")
    if data_type == "FI":
        return round(BACKGROUND + net + (0.5 if well["type"] == "B" and r else 0.0), 3)
    if data_type == "FI - Bkgd":
        return round(net, 3)
    if data_type == "Exp Conc":
        if standard:
            return conc
        return well["expected"] * scale if "expected" in well else None
    if data_type == "Obs Conc":
        return "OOR <" if well["type"] == "B" else round(conc * well["dil"], 4)
    if data_type == "Bead Count":
        return 50 + r
    if data_type == "Dilution":
        return well["dil"]
    raise AssertionError(data_type)


DATA_TYPES = ("FI", "FI - Bkgd", "Obs Conc", "Exp Conc", "Bead Count", "Dilution")


def write_wide(
    path: Path,
    data_types=DATA_TYPES,
    *,
    merged: bool = False,
    edit=None,
    wells: list[dict] | None = None,
) -> Path:
    """The one-sheet report: header lines, then per data type a block (the analyte row,
    ``Type | Well | Description | <data type> per analyte``, a row per well, a blank row).
    ``merged``: one block holding every data type, each analyte's label once over its
    columns. ``edit(rows)`` may change the sheet's rows before they are saved."""
    wells = plate() if wells is None else wells
    rows: list[list[object]] = [
        ["File Name: C:\\Bio-Plex\\wide plate.rbx"],
        ["Acquisition Date: 04-Dec-2026, 10:00 AM"],
        ["Reader Serial Number: LX-SYNTHETIC"],
        ["Plate ID: WIDE-1"],
        [],
    ]
    groups = [list(data_types)] if merged else [[t] for t in data_types]
    for types in groups:
        above: list[object] = [None, None, None]
        header: list[object] = ["Type", "Well", "Description"]
        for label, _scale in ANALYTES:
            for i, data_type in enumerate(types):
                above.append(label if (i == 0 or not merged) else None)
                header.append(data_type)
        rows += [above, header]
        for r, well in enumerate(wells):
            line = [well["type"], well["well"], well["description"] or None]
            for _label, scale in ANALYTES:
                line += [value(well, t, scale, r) for t in types]
            rows.append(line)
        rows.append([])
    rows.append(["***Value not available / --- = Designated as an outlier"])
    if edit is not None:
        edit(rows)
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Report"
    for r, line in enumerate(rows, start=1):
        for c, cell in enumerate(line, start=1):
            if cell is not None:
                ws.cell(r, c, cell)
    book.save(path)
    return path


def quietly(path: Path, **options) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return read(path, standard_unit="pg/mL", **options)


def block_header_row(data_type: str) -> int:
    """The sheet row of ``data_type``'s block header in :func:`write_wide`'s layout."""
    return 5 + 2 + DATA_TYPES.index(data_type) * (len(plate()) + 3)


# --------------------------------------------------------------------------- reading


def test_the_one_sheet_report_is_recognised_as_bioplex(tmp_path):
    assert detect_format(write_wide(tmp_path / "wide.xlsx")) == "bioplex"


def test_every_analyte_and_well_is_read_from_its_blocks(tmp_path):
    path = write_wide(tmp_path / "wide.xlsx")
    table = quietly(path)
    wells = plate()
    assert len(table) == len(wells) * len(ANALYTES)
    assert set(table["plate_id"]) == {"WIDE-1"}
    assert list(dict.fromkeys(table["analyte"])) == ["IL-6", "TNF-a"]
    for label, scale in ANALYTES:
        part = table[table["analyte"] == label.split(" (")[0]].reset_index(drop=True)
        assert set(part["bead_region"]) == {int(label[-3:-1])}
        for r, well in enumerate(wells):
            got = part.iloc[r]
            assert got["type_label"] == well["type"]
            assert got["signal"] == value(well, "FI", scale, r)
            assert got["net_signal"] == value(well, "FI - Bkgd", scale, r)
            assert got["bead_count"] == 50 + r
            assert got["dilution_factor"] == well["dil"]
            if well["type"].startswith("S"):
                assert got["sample_type"] == "standard"
                assert got["standard_concentration"] == pytest.approx(well["conc"] * scale)
            if well["type"].startswith("X"):
                assert got["sample_id"] == well["description"]
                assert got["vendor_concentration"] == pytest.approx(
                    well["conc"] * scale * DILUTION, rel=1e-6
                )
            # the row of its FI cell: FI is the first block
            assert got["source_row"] == block_header_row("FI") + 1 + r
    blanks = table[table["type_label"] == "B"]
    assert set(blanks["sample_type"]) == {"blank"}
    assert set(blanks["vendor_flag"]) == {"below_range"}
    controls = table[table["type_label"] == "C1"]
    assert sorted(set(controls["standard_concentration"])) == [400.0, 800.0]


def test_the_one_sheet_report_reads_as_its_per_analyte_report(tmp_path):
    # The same plate written one sheet per analyte reads back with the same measurements.
    wide = quietly(write_wide(tmp_path / "wide.xlsx"))
    per_analyte = quietly(write_bioplex(wide, tmp_path / "per_analyte.xlsx"))
    columns = ["well", "analyte", "sample_type", "signal", "standard_concentration",
               "dilution_factor", "bead_count", "net_signal", "vendor_concentration"]  # fmt: skip
    key = ["analyte", "well"]
    pd.testing.assert_frame_equal(
        wide[columns].sort_values(key).reset_index(drop=True),
        per_analyte[columns].sort_values(key).reset_index(drop=True),
    )


def test_an_analyte_label_over_several_columns_names_each_of_them(tmp_path):
    # One block of every data type, each analyte named once over its columns (merged cells).
    merged = quietly(write_wide(tmp_path / "merged.xlsx", merged=True))
    blocks = quietly(write_wide(tmp_path / "blocks.xlsx"))
    columns = ["well", "analyte", "signal", "net_signal", "standard_concentration",
               "vendor_concentration", "bead_count", "dilution_factor"]  # fmt: skip
    pd.testing.assert_frame_equal(merged[columns], blocks[columns])


def test_the_one_sheet_report_prints_no_standard_curve(tmp_path):
    equations = read_bioplex_equations(write_wide(tmp_path / "wide.xlsx"))
    assert equations["analyte"].tolist() == ["IL-6", "TNF-a"]
    assert equations["regression_type"].isna().all()


def test_quantify_calibrates_the_one_sheet_report_as_the_vendor_did(tmp_path):
    # The printed Obs Conc are the concentrations the synthetic curve was made from; a
    # calibration of the standards alone must find them again.
    path = write_wide(tmp_path / "wide.xlsx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        result = quantify(path, standard_unit="pg/mL")
    wells = result.concentrations
    samples = wells[wells["sample_type"] == "sample"]
    assert len(samples) == len(SAMPLES_IN_WELL) * len(ANALYTES)
    ratio = samples["concentration"] / samples["vendor_concentration"]
    assert np.all(np.isfinite(ratio))
    assert float(np.median(np.abs(ratio - 1.0))) < 1e-3
    assert set(result.qc["qc_pass"]) == {True}


def test_cytosafe_quantify_calibrates_the_one_sheet_report(tmp_path):
    path = write_wide(tmp_path / "wide.xlsx")
    out = tmp_path / "results"
    res = CliRunner().invoke(
        app, ["quantify", str(path), "--out", str(out), "--standard-unit", "pg/mL", "--quiet"]
    )
    assert res.exit_code == 0, res.output
    conc = pd.read_csv(out / "concentrations.csv")
    assert len(conc) == len(plate()) * len(ANALYTES)
    assert conc.loc[conc["sample_type"] == "sample", "concentration"].notna().all()


# --------------------------------------------------------------------------- refused


def serolyzer_like(path: Path) -> Path:
    """The layout of the public example: FI and Bead Count blocks only, standards named by
    their dilution of a standard serum, and wells typed N1..N3."""
    wells = plate()
    for well in wells:
        if well["type"].startswith("S"):
            well["description"] = f"1/{100 * 3 ** int(well['type'][1:])}"
    wells += [{"type": f"N{n}", "well": f"G{n + 3}", "description": "", "conc": 10.0 * n,
               "dil": 1.0} for n in (1, 2, 3)]  # fmt: skip
    return write_wide(path, ("FI", "Bead Count"), wells=wells)


def test_a_one_sheet_report_without_exp_conc_is_refused_naming_the_layout(tmp_path):
    path = serolyzer_like(tmp_path / "synthetic.xlsx")
    assert detect_format(path) == "bioplex"  # not the tidy reader's misleading message
    with pytest.raises(InputError) as info:
        read(path, standard_unit="pg/mL")
    err = info.value
    assert err.file == f"{path} (sheet 'Report')"
    assert err.row == block_header_row("FI") and err.field == "Exp Conc"
    assert "all analytes on one sheet" in err.message
    assert "(FI, Bead Count) include no Exp Conc" in err.message
    assert "S1 to S7" in err.message
    assert "one sheet per analyte" in err.expected and "Exp Conc" in err.expected


def test_cytosafe_quantify_names_the_one_sheet_layout(tmp_path):
    path = serolyzer_like(tmp_path / "synthetic.xlsx")
    res = CliRunner().invoke(app, ["quantify", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code != 0
    assert "all analytes on one sheet" in res.output
    assert "Traceback" not in res.output


def test_a_standard_without_exp_conc_is_named_at_its_exp_conc_cell(tmp_path):
    first_standard = block_header_row("Exp Conc") + 1

    def spoil(rows):
        rows[first_standard - 1][3] = None  # IL-6's Exp Conc of S1 in A1

    with pytest.raises(InputError, match="standard S1 has no expected concentration") as info:
        quietly(write_wide(tmp_path / "wide.xlsx", edit=spoil))
    assert info.value.row == first_standard
    assert info.value.well == "A01" and info.value.field == "Exp Conc"


def test_a_well_missing_from_the_fi_block_is_named(tmp_path):
    last_fi = block_header_row("FI") + len(plate())

    def drop(rows):
        rows[last_fi - 1] = [None] * len(rows[last_fi - 1])  # the FI block ends a row early

    with pytest.raises(InputError, match=r"well 'F3' \(X4\) is in the .* block but not") as info:
        quietly(write_wide(tmp_path / "wide.xlsx", edit=drop))
    assert info.value.field == "Well"


def test_a_well_listed_twice_in_a_block_is_an_error(tmp_path):
    first_fi = block_header_row("FI") + 1

    def twice(rows):
        rows[first_fi][1] = rows[first_fi - 1][1]  # A1 again where A2 was

    with pytest.raises(InputError, match="listed twice in the FI block") as info:
        quietly(write_wide(tmp_path / "wide.xlsx", edit=twice))
    assert info.value.row == first_fi + 1


def test_a_word_over_the_key_columns_of_a_block_is_an_error_not_a_skipped_block(tmp_path):
    # Skipped, the Dilution block was read as no dilution: samples 4x too low, no warning.
    header = block_header_row("Dilution")

    def label(rows):
        rows[header - 2][2] = "Analyte"  # over the Description column

    path = write_wide(tmp_path / "wide.xlsx", edit=label)
    with pytest.raises(InputError) as info:
        quietly(path)
    err = info.value
    assert err.file == f"{path} (sheet 'Report')" and err.row == header
    assert f"row {header} holds Type and Well cells" in err.message
    assert f"(row {header - 1})" in err.message and "'Analyte' in column C" in err.message


def test_a_block_of_an_unknown_data_type_is_refused_naming_it(tmp_path):
    header = block_header_row("Dilution")

    def rename(rows):
        rows[header - 1][3] = rows[header - 1][4] = "Dilution Factor"

    with pytest.raises(InputError) as info:
        quietly(write_wide(tmp_path / "wide.xlsx", edit=rename))
    err = info.value
    assert err.row == header and err.field == "Dilution Factor"
    assert "column D holds the data type 'Dilution Factor'" in err.message
    assert "Dilution, Bead Count" in err.expected and "Description" not in err.expected


def test_a_block_of_a_data_type_left_unread_on_purpose_is_passed_over(tmp_path):
    # (Obs/Exp) * 100 is derived (the per-analyte reader does not read it either).
    header = block_header_row("Bead Count")

    def rename(rows):
        rows[header - 1][3] = rows[header - 1][4] = "(Obs/Exp) * 100"

    table = quietly(write_wide(tmp_path / "wide.xlsx", edit=rename))
    assert table["bead_count"].isna().all()
    assert set(table["dilution_factor"]) == {1.0, DILUTION}


def test_a_column_without_its_analyte_label_is_named(tmp_path):
    # Blank, TNF-a's Exp Conc column fell to IL-6 (the label on its left) and the error
    # said a well was listed twice, at the row it was first listed on.
    header = block_header_row("Exp Conc")

    def unlabel(rows):
        rows[header - 2][4] = None  # TNF-a's label over column E

    with pytest.raises(InputError) as info:
        quietly(write_wide(tmp_path / "wide.xlsx", edit=unlabel))
    err = info.value
    assert err.row == header - 1 and err.field == "Exp Conc"
    assert f"column E (Exp Conc) has no analyte label in row {header - 1}" in err.message
    assert "IL-6 (25)'s, whose Exp Conc is column D" in err.message
    assert "listed twice" not in err.message


def test_two_columns_labelled_with_one_analyte_and_data_type_are_named(tmp_path):
    header = block_header_row("FI")

    def relabel(rows):
        rows[header - 2][4] = rows[header - 2][3]  # both columns say IL-6 (25)

    with pytest.raises(InputError, match=r"columns D and E both hold IL-6 \(25\)'s FI") as info:
        quietly(write_wide(tmp_path / "wide.xlsx", edit=relabel))
    assert info.value.row == header


def test_a_tidy_workbook_with_type_and_well_columns_is_not_taken_for_it(tmp_path):
    path = tmp_path / "tidy.xlsx"
    book = openpyxl.Workbook()
    ws = book.active
    ws.append(["Plate 7 results"])
    ws.append(["Type", "Well", "Description", "FI", "analyte", "signal"])
    ws.append(["S1", "A1", "std", 100.0, "IL-6", 100.0])
    book.save(path)
    assert detect_format(path) == "tidy"


# --------------------------------------------------------------------------- INTELLIFLEX


def write_intelliflex(path: Path, *, regions=("R25", "R27"), title: str | None = None) -> Path:
    """INTELLIFLEX's CSV: one row per well, per region NAME/REGION/MEDIAN/COUNT columns;
    the same table in a workbook (numbers as numbers, a ``title`` line above it) when
    ``path`` ends in ``.xlsx``."""
    header = ["INSTRUMENT TYPE", "SERIAL NUMBER", "PLATE NAME", "WELL LOCATION", "WELL TYPE",
              "SAMPLE ID", "DILUTION", "TOTAL EVENTS"]  # fmt: skip
    for region in regions:
        header += [f"{region}: RP1 {k}" for k in ("ANALYTE NAME", "REGION", "MEDIAN", "COUNT")]
    lines: list[list[object]] = [header]
    for n, well in enumerate(("A1", "B1", "C1"), start=1):
        line: list[object] = [
            "INTELLIFLEX",
            "SN-0",
            "PLATE-1",
            well,
            f"U{n}",
            f"Unknown{n}",
            1,
            900,
        ]
        for k, region in enumerate(regions):
            line += [f"Analyte {k}", int(region[1:]), 1000.5 * n + k, 60]
        lines.append(line)
    if path.suffix == ".xlsx":
        book = openpyxl.Workbook()
        book.active.title = "Plate"
        if title is not None:
            book.active.append([title])
        for line in lines:
            book.active.append(line)
        book.save(path)
        return path
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(lines)
    return path


def test_an_intelliflex_csv_is_named_with_what_to_export_instead(tmp_path):
    path = write_intelliflex(tmp_path / "plate.csv")
    with pytest.raises(InputError) as info:
        read(path)
    err = info.value
    assert err.file == str(path)
    assert "Luminex INTELLIFLEX CSV export" in err.message
    assert "no column for the standards' expected concentrations" in err.message
    assert "xPONENT" in err.expected
    res = CliRunner().invoke(app, ["quantify", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code != 0 and "INTELLIFLEX" in res.output


def test_a_csv_without_region_columns_is_not_called_intelliflex(tmp_path):
    path = write_intelliflex(tmp_path / "plate.csv", regions=())
    with pytest.raises(InputError, match="not a format CytoSafe recognises"):
        read(path)


@pytest.mark.parametrize("title", [None, "Plate 1 export"])
def test_an_intelliflex_table_in_a_workbook_is_named_as_the_csv_is(tmp_path, title):
    # The tidy reader took it and said "missing required column(s): study_id, ...".
    path = write_intelliflex(tmp_path / "plate.xlsx", title=title)
    for call in (detect_format, read):
        with pytest.raises(InputError) as info:
            call(path)
        err = info.value
        assert err.file == str(path)
        assert err.message.startswith("this is a Luminex INTELLIFLEX export saved as a workbook")
        assert "no column for the standards' expected concentrations" in err.message
        assert "xPONENT" in err.expected
    res = CliRunner().invoke(app, ["quantify", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code != 0 and "INTELLIFLEX" in res.output and "study_id" not in res.output


def test_a_workbook_without_region_columns_is_not_called_intelliflex(tmp_path):
    path = write_intelliflex(tmp_path / "plate.xlsx", regions=())
    assert detect_format(path) == "tidy"


#: Columns of INTELLIFLEX's own table (the refusal's header test) that a tidy table may
#: also carry, kept from the instrument's export.
INTELLIFLEX_COLUMNS = ("Instrument Type", "Well Location", "R12: RP1 Median")


def _tidy_with(tmp_path, suffix, extra_columns=(), extra_line=None, raw_sheet=False):
    """The example's tidy table (MSD-01) with a vendor-looking column, line or sheet."""
    table = pd.read_csv(EXAMPLE_TIDY)
    table = table[table["plate_id"] == "MSD-01"].head(40)
    for column in extra_columns:
        table[column] = 1.0
    path = tmp_path / f"tidy{suffix}"
    if suffix == ".csv":
        text = table.to_csv(index=False)
        if extra_line:
            text += extra_line + "\n"
        path.write_text(text)
    else:
        with pd.ExcelWriter(path) as xl:
            table.to_excel(xl, sheet_name="data", index=False)
            if raw_sheet:  # a provenance sheet holding the instrument's own table
                pd.DataFrame([list(INTELLIFLEX_COLUMNS)]).to_excel(
                    xl, sheet_name="raw", index=False, header=False
                )
    return path


@pytest.mark.parametrize(
    ("suffix", "kwargs"),
    [
        (".csv", {"extra_columns": INTELLIFLEX_COLUMNS}),
        (".csv", {"extra_line": "==========Data"}),
        (".xlsx", {"extra_columns": INTELLIFLEX_COLUMNS}),
        (".xlsx", {"raw_sheet": True}),
    ],
)
def test_a_tidy_table_with_vendor_looking_content_is_still_tidy(tmp_path, suffix, kwargs):
    # The refusals (INTELLIFLEX's region columns, MSD's raw '==========Data' grid) are
    # asked before the catch-all tidy reader, but not for a file whose header (or first
    # sheet) names well and signal: it is a tidy table whatever else it carries.
    path = _tidy_with(tmp_path, suffix, **kwargs)
    assert detect_format(path) == "tidy"
    if "extra_line" not in kwargs:  # a trailing line of '=' is no row of a tidy table
        assert len(read(path)) == 40
