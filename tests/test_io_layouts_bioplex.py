"""Bio-Plex Manager layouts met in public reports (2026-12-04 survey).

One antigen coupled to two bead sets gives two analyte sheets whose names differ only by
bead region, ``MyAnalyte (1)`` and ``MyAnalyte (2)`` (``WithBlankBead.xls`` of
LabKey/commonAssays ``luminex/test/sampledata/luminex/``). The reader dropped the region
from both, so the second sheet's wells collided with the first's and the report was
refused as holding duplicate wells. The workbook here is typed in the report's layout;
nothing is copied from the public file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import openpyxl

from cytosafe.errors import DataWarning
from cytosafe.io import read
from cytosafe.io.bioplex import read_bioplex_equations

COLUMNS = ["Analyte", "Type", "Well", "Description", "FI", "FI - Bkgd", "Obs Conc", "Exp Conc"]
STANDARDS = [5000.0, 1250.0, 312.5, 78.1, 19.5, 4.9]


def sheet_rows(label: str, top: float) -> list[list[object]]:
    rows: list[list[object]] = [[label, "B", "H12", "", 40.0, 40.0, None, None]]
    for i, conc in enumerate(STANDARDS, start=1):
        fi = 40 + top * conc / (conc + 600.0)
        rows.append([label, f"S{i}", f"{'ABCDEF'[i - 1]}1", "Standard1", fi, fi - 40, conc, conc])
    for j, fi in enumerate((300.0, 2400.0, 9000.0), start=1):
        rows.append([label, f"X{j}", f"A{j + 2}", f"serum {j}", fi, fi - 40, 10.0 * j, None])
    return rows


def write_report(path: Path, analytes: list[tuple[str, float]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for label, top in analytes:
        ws = book.create_sheet(label)
        for r, line in enumerate([f"File Name: {path.stem}", f"Analyte: {label}",
                                  "Acquisition Date: 04-Dec-2026, 10:00 AM",
                                  "Plate ID: Survey Plate"], start=1):  # fmt: skip
            ws.cell(r, 1, line)
        for c, name in enumerate(COLUMNS, start=1):
            ws.cell(6, c, name)
        for r, values in enumerate(sheet_rows(label, top), start=7):
            for c, value in enumerate(values, start=1):
                if value is not None:
                    ws.cell(r, c, value)
    book.save(path)
    return path


def quietly(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return read(path, standard_unit="pg/mL")


def test_one_name_on_two_bead_regions_makes_two_analytes(tmp_path):
    path = write_report(tmp_path / "two-beads.xlsx",
                        [("MyAnalyte (1)", 30000.0), ("MyAnalyte (2)", 24000.0),
                         ("IL-6 (12)", 20000.0)])  # fmt: skip
    table = quietly(path)
    assert set(table["analyte"]) == {"MyAnalyte (1)", "MyAnalyte (2)", "IL-6"}
    regions = table.drop_duplicates("analyte").set_index("analyte")["bead_region"]
    assert regions.to_dict() == {"MyAnalyte (1)": 1, "MyAnalyte (2)": 2, "IL-6": 12}
    assert len(table) == 3 * 10
    # the two bead sets keep their own signals
    a1 = table[(table["analyte"] == "MyAnalyte (1)") & (table["well"] == "A01")]["signal"]
    a2 = table[(table["analyte"] == "MyAnalyte (2)") & (table["well"] == "A01")]["signal"]
    assert float(a1.iloc[0]) > float(a2.iloc[0])
    # the printed equations name the analytes as the table does, so they join
    eq = read_bioplex_equations(path)
    assert set(eq["analyte"]) == set(table["analyte"])


def test_names_without_a_clash_still_drop_the_region(tmp_path):
    path = write_report(tmp_path / "one-bead.xlsx",
                        [("MyAnalyte (1)", 30000.0), ("Other (2)", 24000.0)])  # fmt: skip
    assert set(quietly(path)["analyte"]) == {"MyAnalyte", "Other"}
