"""Bio-Plex Manager Excel reports: the two real exports, the equations, and every error.

The real reports (Bio-Plex Manager 4.1, from LabKey/commonAssays, Apache-2.0) are read
from ``../shared/data/real-exports/`` and never copied; every other workbook here is
written by these tests, in the same layout, into a temporary directory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from cytosafe.errors import DataWarning, InputError, UnitError
from cytosafe.io.bioplex import read_bioplex, read_bioplex_equations, write_bioplex
from real_exports import REAL, real

LINCO = REAL / "pnLINCO20070302A.xls"  # 13 cytokines, 4PL, replicate groups, no blanks
PLATE = REAL / "10JAN07_plate_1.xls"  # 27 cytokines, 5PL, blanks, samples 1:4, OOR flags


# --------------------------------------------------------------------------- writing reports

COLUMNS = ["Analyte", "Type", "Well", "Outlier", "Description", "FI", "FI - Bkgd", "Std Dev",
           "%CV", "Obs Conc", "Exp Conc", "(Obs/Exp) * 100", "Conc in Range", "Group", "Ratio",
           "Dilution", "Bead Count", "Sampling Errors"]  # fmt: skip
LEGEND = [
    "***Value not available / --- = Designated as an outlier",
    "*Value extrapolated beyond standard range",
    "OOR = Out of Range / OOR> = Out of Range Above  / OOR< = Out of Range Below",
]


@dataclass
class Curve:
    """Bio-Plex's printed curve: FI - Bkgd = d + (a - d) / (1 + (x / c)^b)^g."""

    a: float = 25000.0
    b: float = -1.1
    c: float = 900.0
    d: float = 15.0
    g: float = 0.8

    def fi(self, x):
        return self.d + (self.a - self.d) / (1 + (np.asarray(x) / self.c) ** self.b) ** self.g

    def conc(self, y):
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.asarray(y, dtype=float)
            return self.c * (((self.a - self.d) / (y - self.d)) ** (1 / self.g) - 1) ** (1 / self.b)

    def printed(self) -> str:
        sign = "-" if self.d >= 0 else "+"
        return (
            f"Std. Curve: FI = {self.d:g} + ({self.a:g} {sign} {abs(self.d):g}) / "
            f"((1 + (Conc / {self.c:g})^{self.b:g}))^{self.g:g}"
        )


@dataclass
class Sheet:
    """One analyte sheet: header lines, data tables (columns + row dicts), footer lines."""

    name: str
    header: list[str]
    blocks: list[tuple[list[str], list[dict]]]
    footer: list[str] = field(default_factory=list)

    def rows(self, block: int = 0) -> list[dict]:
        return self.blocks[block][1]

    def row(self, type_label: str, n: int = 0) -> dict:
        return [r for r in self.rows() if r["Type"] == type_label][n]


def write_report(path: Path, sheets: list[Sheet], *, template_unit: str | None = None) -> Path:
    """Write ``sheets`` as a Bio-Plex Manager report (.xlsx), cell by cell."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    if template_unit is not None:
        ws = book.create_sheet("Project Template")
        for r, values in enumerate(
            [
                ["Row #", "Field", "SCHARP Field Name", "Type", "Length", "VALUE"],
                [2, "Network", "NETWORK", "Character", 8, "CRA"],
                [10, "Units of Concentration", "UNITS", "Character", 5, template_unit],
            ],
            start=1,
        ):
            for c, value in enumerate(values, start=1):
                ws.cell(r, c, value)
    for sheet in sheets:
        ws = book.create_sheet(sheet.name)
        r = 1
        for line in sheet.header:
            ws.cell(r, 1, line)
            r += 1
        r += 1  # the blank row before the table
        for columns, rows in sheet.blocks:
            for c, name in enumerate(columns, start=1):
                ws.cell(r, c, name)
            r += 1
            for values in rows:
                for c, name in enumerate(columns, start=1):
                    if values.get(name) is not None:
                        ws.cell(r, c, values[name])
                r += 1
            r += 1  # blank row after each table
        for line in sheet.footer:
            ws.cell(r, 1, line)
            r += 1
    book.save(path)
    return path


STANDARDS = [10000 / 4**k for k in range(7)]  # pg/mL in the well, S1..S7
SAMPLES = [("D1 medium", 3.0), ("D1 anti-CD3", 120.0), ("D2 medium", 5.0), ("D2 anti-CD3", 800.0)]


def analyte_sheet(
    analyte: str = "IL-6 (12)",
    curve: Curve | None = None,
    *,
    plate: str = "CRA-P01",
    background: float = 20.0,
    columns: list[str] | None = None,
) -> Sheet:
    """A per-well Bio-Plex table: 7 standards, 2 blanks, a kit control, 4 samples at 1:4."""
    curve = curve or Curve()
    rows: list[dict] = []

    def add(type_label, wells, conc_in_well, *, desc=None, dilution=1, exp=None, beads=60):
        for i, well in enumerate(wells):
            signal = curve.fi(conc_in_well) if conc_in_well > 0 else 0.0
            fi = round(background + signal * (1.02 if i else 0.98), 1)
            net = round(fi - background, 1)
            obs = curve.conc(net) * dilution
            rows.append(
                {"Analyte": analyte, "Type": type_label, "Well": well, "Outlier": 0,
                 "Description": desc, "FI": fi, "FI - Bkgd": net,
                 "Obs Conc": round(float(obs), 2) if np.isfinite(obs) else "OOR <",
                 "Exp Conc": exp, "Dilution": dilution, "Bead Count": beads + 3 * i}
            )  # fmt: skip

    # Blanks read exactly the background (19 and 21), like Bio-Plex's B wells.
    for i, well in enumerate(["H11", "H12"]):
        fi = background + (-1 if i == 0 else 1)
        rows.append({"Analyte": analyte, "Type": "B", "Well": well, "Outlier": 0, "FI": fi,
                     "FI - Bkgd": fi, "Dilution": 1, "Bead Count": 70})  # fmt: skip
    for k, conc in enumerate(STANDARDS):
        row = "ABCDEFG"[k]
        add(f"S{k + 1}", [f"{row}1", f"{row}2"], conc, desc="Standard1", exp=conc)
    add("C1", ["H1", "H2"], 400.0, desc="Kit control", exp=400.0)
    for n, (desc, conc) in enumerate(SAMPLES, start=1):
        row = "ABCD"[n - 1]
        add(f"X{n}", [f"{row}3", f"{row}4"], conc, desc=desc, dilution=4)
    return Sheet(
        name=analyte,
        header=[
            "File Name: C:\\Bio-Plex Manager\\CRA-P01.rbx",
            f"Analyte: {analyte}",
            "Acquisition Date: 14-Mar-2024, 10:02 AM",
            "Reader Serial Number: LX0000000000",
            f"Plate ID: {plate}",
            "RP1 PMT (Volts): 600.00",
            "RP1 Target: 4000",
        ],
        blocks=[(columns or COLUMNS, rows)],
        footer=[
            *LEGEND,
            "",
            "Regression Type: Logistic - 5PL",
            curve.printed(),
            "FitProb. = 0.7000, ResVar. = 0.3000",
        ],
    )


@pytest.fixture
def report(tmp_path):
    """Write a report from sheets (default: IL-6 and TNF-alpha) and return its path."""

    def make(sheets=None, name="CRA-P01.xlsx", **kwargs) -> Path:
        if sheets is None:
            sheets = [analyte_sheet(), analyte_sheet("TNF-alpha (40)", Curve(c=1500.0))]
        return write_report(tmp_path / name, sheets, **kwargs)

    return make


# --------------------------------------------------------------------------- real reports


@pytest.fixture(scope="module")
def linco() -> pd.DataFrame:
    with pytest.warns(DataWarning, match="5 row"):
        return read_bioplex(real(LINCO))


@pytest.fixture(scope="module")
def plate() -> pd.DataFrame:
    with pytest.warns(DataWarning, match="307 row"):
        return read_bioplex(real(PLATE))


def test_linco_has_thirteen_analytes_one_per_sheet(linco):
    assert linco["analyte"].nunique() == 13
    assert linco["source_sheet"].nunique() == 13
    assert "IL-1b" in set(linco["analyte"]) and "TNF-alpha" in set(linco["analyte"])
    assert linco.attrs["ignored_sheets"] == ["Project Template"]
    assert linco["bead_region"].min() == 1 and linco["bead_region"].max() == 40


def test_linco_reads_every_replicate_group_with_an_fi(linco):
    # 13 sheets x 47 groups (7 standards, 40 samples); the S5 group of five analytes
    # was designated an outlier ('---') and has no FI.
    assert len(linco) == 13 * 47 - 5
    skipped = pd.DataFrame(linco.attrs["skipped"])
    assert set(skipped["type_label"]) == {"S5"} and set(skipped["reason"]) == {"outlier"}
    assert sorted(skipped["analyte"]) == sorted(["IL-4", "IL-5", "IL-6", "IL-7", "IL-10"])


def test_linco_wells_are_replicate_pairs(linco):
    il1b = linco[linco["analyte"] == "IL-1b"]
    wells = {w for group in il1b["wells"] for w in group.split(",")}
    assert len(il1b) == 47 and len(wells) == 93  # 46 pairs and one single well
    single = il1b[il1b["n_wells"] == 1].iloc[0]
    assert (single["well"], single["type_label"], single["replicate"]) == ("B06", "X13", 1)
    assert il1b.loc[il1b["n_wells"] == 2, "replicate"].isna().all()
    first = il1b.iloc[0]
    assert (first["well"], first["wells"], first["source_row"]) == ("C01", "C01,D01", 10)
    assert (first["fi_sd"], first["fi_cv"]) == (3.18, 7.36)


def test_linco_standards_have_concentrations_in_pg_per_ml(linco):
    std = linco[(linco["analyte"] == "IL-1b") & (linco["sample_type"] == "standard")]
    assert std["standard_concentration"].tolist() == [0.13, 0.64, 3.2, 16.0, 80.0, 400.0, 2000.0]
    assert std["sample_id"].tolist() == [f"S{k}" for k in range(1, 8)]
    # The unit comes from the workbook's Project Template ("pg/ml").
    assert set(linco["exp_conc_unit"]) == {"pg/mL"}
    assert set(linco["concentration_unit"]) == {"pg/mL"}
    assert set(linco["sample_type"]) == {"standard", "sample"}
    assert (linco["sample_type"] == "standard").sum() == 13 * 7 - 5


def test_linco_plate_samples_and_dilution(linco):
    assert set(linco["plate_id"]) == {"PLATE1_3-2-07"}
    assert set(linco["study_id"]) == {"unassigned"}
    assert (linco["dilution_factor"] == 1).all()
    il1b = linco[linco["analyte"] == "IL-1b"].set_index("type_label")
    # Descriptions Excel stored as numbers are read as the identifiers they are.
    assert il1b.loc["X3", "sample_id"] == "275001"
    assert il1b.loc["X6", "sample_id"] == "275-12M"
    assert (il1b.loc["X1", "signal"], il1b.loc["X1", "vendor_concentration"]) == (1960.8, 37.53)


def test_plate_has_27_analytes_blanks_and_standards(plate):
    assert plate["analyte"].nunique() == 27
    assert plate.attrs["ignored_sheets"] == ["Project Template"]
    counts = plate.groupby("analyte", observed=True)["sample_type"].value_counts().unstack()
    assert (counts["blank"] == 1).all()
    il1b = plate[(plate["analyte"] == "Hu IL-1b") & (plate["sample_type"] == "standard")]
    # S1 and S2 are outliers ('---'): six of the eight levels have an FI.
    assert il1b["type_label"].tolist() == ["S3", "S4", "S5", "S6", "S7", "S8"]
    assert il1b["standard_concentration"].tolist() == [2371.69, 592.92, 148.23, 37.06, 9.26, 2.32]
    rows = plate[plate["analyte"] == "Hu IL-1b"]
    assert len(rows) == 48 - 2 - 10  # 48 groups, S1/S2 outliers, X30-X39 not available
    assert rows["n_wells"].eq(2).all() and len({*",".join(rows["wells"]).split(",")}) == 72


def test_plate_skips_outliers_and_unavailable_values(plate):
    skipped = pd.DataFrame(plate.attrs["skipped"])
    assert skipped["reason"].value_counts().to_dict() == {"not available": 270, "outlier": 37}
    assert len(plate) == 27 * 48 - 307


def test_plate_samples_are_diluted_one_in_four(plate):
    samples = plate[plate["sample_type"] == "sample"]
    assert len(samples) > 0 and (samples["dilution_factor"] == 4).all()
    others = plate[plate["sample_type"] != "sample"]
    assert (others["dilution_factor"] == 1).all()
    assert set(plate["plate_id"]) == {"10JAN07_plate_1"}  # Plate ID is empty: the file name


def test_plate_net_signal_is_fi_minus_the_blank(plate):
    blank = plate[plate["sample_type"] == "blank"].set_index("analyte")["signal"]
    rest = plate[plate["sample_type"] != "blank"]
    background = rest["signal"] - rest["net_signal"]
    # FI, FI - Bkgd and the blank's FI are each rounded to one decimal when printed.
    assert np.allclose(background, rest["analyte"].map(blank), rtol=0, atol=0.1 + 1e-9)
    assert (blank > 0).all()


def test_plate_vendor_flags(plate):
    flags = plate["vendor_flag"].value_counts().to_dict()
    assert flags["extrapolated"] > 0 and flags["below_range"] > 0
    x1 = plate[(plate["analyte"] == "Hu IL-1b") & (plate["type_label"] == "X1")].iloc[0]
    assert (x1["vendor_concentration"], x1["vendor_flag"]) == (3.42, "extrapolated")
    oor = plate[plate["vendor_flag"] == "below_range"]
    assert oor["vendor_concentration"].isna().all()


# --------------------------------------------------------------------------- equations


def test_linco_equations_are_4pl():
    eq = read_bioplex_equations(real(LINCO))
    assert len(eq) == 13 and set(eq["regression_type"]) == {"4PL"} and (eq["g"] == 1).all()
    il1b = eq.set_index("analyte").loc["IL-1b"]
    assert (il1b["a"], il1b["b"], il1b["c"], il1b["d"]) == (16123.9, -1.05775, 247.786, 36.9094)
    assert (il1b["fit_prob"], il1b["res_var"], il1b["source_row"]) == (0.834, 0.2882, 66)


def test_plate_equations_are_5pl_with_negative_lower_asymptotes():
    eq = read_bioplex_equations(real(PLATE))
    assert len(eq) == 27 and set(eq["regression_type"]) == {"5PL"}
    il1b = eq.set_index("analyte").loc["Hu IL-1b"]
    # '(20147.9 + 8.49859)' is (a - d) with d = -8.49859.
    assert (il1b["a"], il1b["b"], il1b["c"], il1b["d"], il1b["g"]) == (
        20147.9, -0.738017, 409.762, -8.49859, 1.4408,
    )  # fmt: skip
    assert (eq["b"] < 0).all() and eq["g"].between(0.0999, 10).all()


def bioplex_conc(net_signal, eq):
    """Bio-Plex's back-calculation: the inverse of its printed curve (in the well)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (eq["a"] - eq["d"]) / (net_signal - eq["d"])
        return eq["c"] * (ratio ** (1 / eq["g"]) - 1) ** (1 / eq["b"])


def with_equations(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    eq = read_bioplex_equations(path)[["analyte", "a", "b", "c", "d", "g"]]
    return table.merge(eq, on="analyte", validate="many_to_one")


@pytest.mark.parametrize("which", ["linco", "plate"])
def test_vendor_obs_conc_is_reproduced_from_the_printed_equation(which, request):
    """Obs Conc = Dilution x inverse(FI - Bkgd), within 0.1% of the printed precision.

    FI - Bkgd is printed with one decimal and Obs Conc with two, so the exact value lies
    anywhere in the interval the printed FI - Bkgd +- 0.05 maps to; near the lower
    asymptote that interval is wide (a printed 34.0 is 0.016 above d). Every in-range
    value lies within that interval widened by 0.1% and half a printed unit, and the
    median deviation from the printed FI - Bkgd is below 0.1%.
    """
    path = real(LINCO if which == "linco" else PLATE)
    rows = with_equations(request.getfixturevalue(which), path)
    rows = rows[rows["vendor_flag"].isna()]
    assert len(rows) > 500
    dil, vendor = rows["dilution_factor"], rows["vendor_concentration"]
    ours = bioplex_conc(rows["net_signal"], rows) * dil
    low = (bioplex_conc(rows["net_signal"] - 0.05, rows) * dil).fillna(0.0)  # below d: 0
    high = (bioplex_conc(rows["net_signal"] + 0.05, rows) * dil).fillna(np.inf)  # above a
    inside = (vendor >= low * (1 - 1e-3) - 0.005) & (vendor <= high * (1 + 1e-3) + 0.005)
    assert inside.all(), rows.loc[~inside, ["analyte", "type_label", "net_signal"]]
    assert np.median(np.abs(ours - vendor) / vendor) < 1e-3


def test_bioplex_fits_fi_minus_background_and_multiplies_by_dilution(plate):
    rows = with_equations(plate, real(PLATE))
    rows = rows[rows["vendor_flag"].isna()]
    vendor = rows["vendor_concentration"]

    def median_error(signal, dilution):
        return np.nanmedian(np.abs(bioplex_conc(signal, rows) * dilution - vendor) / vendor)

    assert median_error(rows["net_signal"], rows["dilution_factor"]) < 1e-3
    assert median_error(rows["signal"], rows["dilution_factor"]) > 0.1  # raw FI: wrong
    samples = rows["sample_type"] == "sample"
    assert samples.any()
    assert median_error(rows["net_signal"][samples], 1.0) > 0.5  # dilution is included


def test_extrapolated_values_follow_the_same_curve(plate):
    rows = with_equations(plate, real(PLATE))
    rows = rows[rows["vendor_flag"] == "extrapolated"]
    ours = bioplex_conc(rows["net_signal"], rows) * rows["dilution_factor"]
    err = np.abs(ours - rows["vendor_concentration"]) / rows["vendor_concentration"]
    assert len(rows) > 100 and np.nanmedian(err) < 2e-3


# --------------------------------------------------------------------------- xlsx layout


def xls_to_xlsx(source: Path, target: Path) -> Path:
    """Re-save a real .xls report as .xlsx in a temporary directory (as Excel would)."""
    import xlrd

    book = xlrd.open_workbook(str(source))
    out = openpyxl.Workbook()
    out.remove(out.active)
    for sh in book.sheets():
        ws = out.create_sheet(sh.name)
        for r in range(sh.nrows):
            for c in range(sh.ncols):
                if sh.cell_type(r, c) not in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                    ws.cell(r + 1, c + 1, sh.cell_value(r, c))
    out.save(target)
    return target


@pytest.mark.parametrize("source", [LINCO, PLATE], ids=["linco", "plate"])
def test_the_same_report_saved_as_xlsx_reads_the_same(source, tmp_path):
    xlsx = xls_to_xlsx(real(source), tmp_path / (source.stem + ".xlsx"))
    with pytest.warns(DataWarning):
        from_xls = read_bioplex(source)
    with pytest.warns(DataWarning):
        from_xlsx = read_bioplex(xlsx)
    pd.testing.assert_frame_equal(
        from_xls.drop(columns="source_file"), from_xlsx.drop(columns="source_file")
    )
    pd.testing.assert_frame_equal(
        read_bioplex_equations(source).drop(columns="source_file"),
        read_bioplex_equations(xlsx).drop(columns="source_file"),
    )


def test_per_well_report_with_bead_counts(report):
    table = read_bioplex(report(template_unit="pg/mL"), study_id="CRA-001")
    assert len(table) == 2 * (2 + 14 + 2 + 8)
    assert table["analyte"].unique().tolist() == ["IL-6", "TNF-alpha"]
    assert (table["n_wells"] == 1).all() and table["bead_count"].notna().all()
    il6 = table[table["analyte"] == "IL-6"].set_index("well")
    assert il6.loc["A01", "bead_count"] == 60 and il6.loc["A02", "bead_count"] == 63
    assert (il6.loc["A01", "replicate"], il6.loc["A02", "replicate"]) == (1, 2)
    assert il6.loc["A01", "sample_id"] == "S1" and il6.loc["A01", "description"] == "Standard1"
    assert il6.loc["A03", "sample_id"] == "D1 medium" and il6.loc["A03", "dilution_factor"] == 4
    assert il6.loc["H01", "sample_type"] == "control"
    assert il6.loc["H01", "standard_concentration"] == 400.0
    assert (il6.loc["H11", "sample_type"], il6.loc["H11", "sample_id"]) == ("blank", "B")
    assert set(table["study_id"]) == {"CRA-001"} and set(table["plate_id"]) == {"CRA-P01"}
    assert il6.loc["A01", "source_sheet"] == "IL-6 (12)" and il6.loc["H11", "source_row"] == 10


def test_per_well_report_obs_conc_matches_the_equation(report):
    path = report(template_unit="pg/mL")
    rows = with_equations(read_bioplex(path), path)
    rows = rows[rows["vendor_flag"].isna() & (rows["sample_type"] != "blank")]
    ours = bioplex_conc(rows["net_signal"], rows) * rows["dilution_factor"]
    assert np.allclose(ours, rows["vendor_concentration"], rtol=1e-3, atol=0.005)


def test_units_are_converted_to_pg_per_ml(report):
    table = read_bioplex(report(template_unit="ng/mL"))
    std = table[(table["analyte"] == "IL-6") & (table["type_label"] == "S1")]
    assert std["exp_conc"].tolist() == [10000.0, 10000.0]
    assert std["standard_concentration"].tolist() == [1e7, 1e7]
    assert set(table["exp_conc_unit"]) == {"ng/mL"}  # as printed
    assert set(table["concentration_unit"]) == {"pg/mL"}  # as stored
    x = table[(table["analyte"] == "IL-6") & (table["type_label"] == "X2")]
    assert (x["vendor_concentration"] > 1000 * 120 * 4 * 0.9).all()


def test_unit_printed_in_the_column_header_is_used(report):
    columns = [("Exp Conc (ng/mL)" if c == "Exp Conc" else c) for c in COLUMNS]
    sheet = analyte_sheet(columns=columns)
    for row in sheet.rows():
        row["Exp Conc (ng/mL)"] = row.pop("Exp Conc", None)
    path = report([sheet])
    table = read_bioplex(path)
    assert table.loc[table["type_label"] == "S7", "standard_concentration"].iloc[
        0
    ] == pytest.approx(STANDARDS[6] * 1000)


def test_standard_unit_argument_when_the_workbook_declares_none(report):
    table = read_bioplex(report(), standard_unit="pg/ml")
    assert table.loc[table["type_label"] == "S1", "standard_concentration"].iloc[0] == 10000.0


def test_summary_and_per_well_tables_use_the_wells(report):
    sheet = analyte_sheet()
    per_well = sheet.rows()
    summary = []
    for label in dict.fromkeys(r["Type"] for r in per_well):
        group = [r for r in per_well if r["Type"] == label]
        fi = float(np.mean([r["FI"] for r in group]))
        summary.append({**group[0], "Well": ",".join(r["Well"] for r in group), "FI": fi,
                        "Bead Count": None})  # fmt: skip
    sheet.blocks = [(COLUMNS, summary), (COLUMNS, per_well)]
    table = read_bioplex(report([sheet]), standard_unit="pg/mL")
    assert len(table) == len(per_well) and (table["n_wells"] == 1).all()
    assert table["bead_count"].notna().all()


def test_summary_only_report_keeps_one_row_per_group(report):
    sheet = analyte_sheet()
    groups: dict[str, dict] = {}
    for r in sheet.rows():
        if r["Type"] in groups:
            groups[r["Type"]]["Well"] += "," + r["Well"]
        else:
            groups[r["Type"]] = dict(r)
    sheet.blocks = [(COLUMNS, list(groups.values()))]
    table = read_bioplex(report([sheet]), standard_unit="pg/mL")
    assert len(table) == len(groups) and (table["n_wells"] == 2).all()
    assert table["replicate"].isna().all()
    assert table.set_index("type_label").loc["S1", "wells"] == "A01,A02"


def test_text_dilution_and_zero_calibrator(report):
    sheet = analyte_sheet()
    for r in sheet.rows():
        if r["Type"] == "X1":
            r["Dilution"] = "1:10"
        if r["Type"] == "S7":
            r["Exp Conc"] = 0
    table = read_bioplex(report([sheet]), standard_unit="pg/mL").set_index("well")
    assert table.loc["A03", "dilution_factor"] == 10
    assert table.loc["G01", "sample_type"] == "blank"  # S7 at 0 is the zero calibrator
    assert math.isnan(table.loc["G01", "standard_concentration"])


def test_sample_map_adds_culture_metadata(report, tmp_path):
    smap = pd.DataFrame(
        {
            "sample_id": [name for name, _ in SAMPLES] + ["Kit control"],
            "donor_id": ["D1", "D1", "D2", "D2", None],
            "treatment": ["medium", "anti-CD3", "medium", "anti-CD3", None],
            "treatment_role": ["negative_control", "positive_control"] * 2 + [None],
        }
    )
    table = read_bioplex(report(), standard_unit="pg/mL", sample_map=smap)
    x2 = table[table["sample_id"] == "D1 anti-CD3"]
    assert len(x2) == 4 and set(x2["treatment_role"]) == {"positive_control"}
    assert table.loc[table["sample_type"] == "standard", "donor_id"].isna().all()


# --------------------------------------------------------------------------- errors


def test_error_not_an_excel_workbook(tmp_path):
    path = tmp_path / "plate.xls"
    path.write_text("Analyte,Type,Well,FI\nIL-6,X1,A1,100\n")
    with pytest.raises(InputError, match="not a Bio-Plex Manager report") as err:
        read_bioplex(path)
    assert err.value.file == str(path)


def test_error_workbook_without_a_bioplex_sheet(tmp_path):
    path = tmp_path / "other.xlsx"
    book = openpyxl.Workbook()
    book.active.append(["Sample", "Well", "Value"])
    book.active.append(["S1", "A1", 12.0])
    book.save(path)
    with pytest.raises(InputError, match="not a Bio-Plex Manager report"):
        read_bioplex(path)
    with pytest.raises(InputError, match="not a Bio-Plex Manager report"):
        read_bioplex_equations(path)


def test_error_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_bioplex(tmp_path / "absent.xls")


def test_error_analyte_sheet_without_data_header(report):
    broken = analyte_sheet("IL-10 (23)")
    broken.blocks = []
    path = report([analyte_sheet(), broken])
    with pytest.raises(InputError, match="no data table") as err:
        read_bioplex(path, standard_unit="pg/mL")
    assert "sheet 'IL-10 (23)'" in str(err.value) and str(path) in str(err.value)


def test_error_header_without_fi_column(report):
    sheet = analyte_sheet(columns=[c for c in COLUMNS if c != "FI"])
    with pytest.raises(InputError, match="no data table"):
        read_bioplex(report([sheet]), standard_unit="pg/mL")


@pytest.mark.parametrize(
    ("value", "message"),
    [("abc", "FI 'abc' is not a number"), ("43,3", "is not a number"), (-5.0, "negative"),
     ("OOR >", "not a number"), (None, "FI is empty")],
)  # fmt: skip
def test_error_fi_not_a_non_negative_number(report, value, message):
    sheet = analyte_sheet()
    sheet.row("X2", 1)["FI"] = value  # well B04, sheet row 10 + 2 + 14 + 2 + 3
    path = report([sheet])
    with pytest.raises(InputError, match=message) as err:
        read_bioplex(path, standard_unit="pg/mL")
    e = err.value
    assert (e.row, e.well, e.field) == (31, "B04", "FI")
    assert e.file == f"{path} (sheet 'IL-6 (12)')"
    assert "row 31, well B04, field 'FI'" in str(e)


def test_error_duplicate_well_in_a_sheet(report):
    sheet = analyte_sheet()
    sheet.row("X4", 1)["Well"] = "D3"  # X4 lists D3 twice
    with pytest.raises(InputError, match="duplicate well x analyte") as err:
        read_bioplex(report([sheet]), standard_unit="pg/mL")
    assert (err.value.row, err.value.well, err.value.field) == (35, "D03", "Well")
    assert "row 34" in str(err.value)


def test_error_duplicate_analyte_across_sheets(report):
    twin = analyte_sheet()
    twin.name = "IL-6 (12) copy"
    with pytest.raises(InputError, match="duplicate well x analyte") as err:
        read_bioplex(report([analyte_sheet(), twin]), standard_unit="pg/mL")
    assert "sheet 'IL-6 (12) copy'" in err.value.file
    assert "sheet 'IL-6 (12)', row 10" in str(err.value)


def test_error_summary_group_missing_from_per_well_table(report):
    sheet = analyte_sheet()
    summary = [{**sheet.row("X1"), "Well": "A3,A4,A5"}]
    sheet.blocks = [(COLUMNS, summary), sheet.blocks[0]]
    with pytest.raises(InputError, match="per-well table") as err:
        read_bioplex(report([sheet]), standard_unit="pg/mL")
    assert err.value.well == "A5"


def test_error_unknown_unit_in_the_workbook(report):
    with pytest.raises(UnitError, match="unknown concentration unit 'IU/furlong'") as err:
        read_bioplex(report(template_unit="IU/furlong"))
    assert "sheet 'Project Template', row 3" in err.value.file
    assert err.value.field == "Units of Concentration"


def test_an_arbitrary_unit_in_the_workbook_is_kept_as_written(report):
    # Issue 12, item 9: IU/mL has no factor to a mass without the analyte's own WHO
    # International Standard; the values stay in IU/mL, labelled, never taken for pg/mL.
    table = read_bioplex(report(template_unit="IU/mL"))
    std = table[(table["analyte"] == "IL-6") & (table["type_label"] == "S1")]
    assert std["standard_concentration"].tolist() == std["exp_conc"].tolist() == [1e4, 1e4]
    assert set(table["concentration_unit"]) == {"IU/mL"}
    assert set(table["exp_conc_unit"]) == {"IU/mL"}


def test_standard_unit_argument_may_be_an_arbitrary_unit(report):
    table = read_bioplex(report(), standard_unit="au/ml")
    assert set(table["concentration_unit"]) == {"AU/mL"}
    std = table[(table["analyte"] == "IL-6") & (table["type_label"] == "S1")]
    assert std["standard_concentration"].tolist() == [1e4, 1e4]


def test_error_unknown_standard_unit_argument(report):
    with pytest.raises(UnitError, match="unknown concentration unit 'pg/furlong'") as err:
        read_bioplex(report(), standard_unit="pg/furlong")
    assert err.value.field == "standard_unit"


def test_error_molar_unit_for_cytokine_concentrations(report):
    with pytest.raises(UnitError, match="molar unit"):
        read_bioplex(report(), standard_unit="nM")


def test_error_no_unit_anywhere(report):
    with pytest.raises(InputError, match="declares no unit") as err:
        read_bioplex(report())
    assert err.value.field == "Exp Conc" and "standard_unit" in str(err.value)
    assert "--standard-unit" in err.value.expected  # the CLI's option is named


def test_error_unit_conflicts_with_argument(report):
    with pytest.raises(InputError, match="declares concentrations in 'pg/mL'") as err:
        read_bioplex(report(template_unit="pg/mL"), standard_unit="ng/mL")
    assert err.value.field == "standard_unit"


def test_error_unknown_well_type(report):
    sheet = analyte_sheet()
    sheet.row("X1")["Type"] = "R1"
    with pytest.raises(InputError, match="unknown well type 'R1'") as err:
        read_bioplex(report([sheet]), standard_unit="pg/mL")
    assert (err.value.row, err.value.well, err.value.field) == (28, "A03", "Type")


def test_error_standard_without_expected_concentration(report):
    sheet = analyte_sheet()
    sheet.row("S3")["Exp Conc"] = None
    with pytest.raises(InputError, match="standard S3 has no expected") as err:
        read_bioplex(report([sheet]), standard_unit="pg/mL")
    assert (err.value.row, err.value.well, err.value.field) == (16, "C01", "Exp Conc")


def test_error_bad_dilution(report):
    sheet = analyte_sheet()
    sheet.row("X1")["Dilution"] = 0
    with pytest.raises(InputError, match="dilution '0' is not a positive number") as err:
        read_bioplex(report([sheet]), standard_unit="pg/mL")
    assert err.value.field == "Dilution"


def test_error_dilution_column_under_another_name(report):
    # 'Dilution Factor' was dropped unread and the samples at 1:4 read undiluted, 4x low.
    columns = [("Dilution Factor" if c == "Dilution" else c) for c in COLUMNS]
    sheet = analyte_sheet(columns=columns)
    for row in sheet.rows():
        row["Dilution Factor"] = row.pop("Dilution", None)
    path = report([sheet])
    with pytest.raises(InputError, match=r"column P \('Dilution Factor'\) is not a column") as err:
        read_bioplex(path, standard_unit="pg/mL")
    assert err.value.file == f"{path} (sheet 'IL-6 (12)')"
    assert err.value.row == 9  # the table's header row
    assert err.value.field == "Dilution Factor" and "'Dilution'" in err.value.expected


def test_error_bad_well(report):
    sheet = analyte_sheet()
    sheet.row("X1")["Well"] = "Z99"
    with pytest.raises(InputError, match="not a well name") as err:
        read_bioplex(report([sheet]), standard_unit="pg/mL")
    assert (err.value.row, err.value.well, err.value.field) == (28, None, "Well")


def test_error_row_of_another_analyte(report):
    sheet = analyte_sheet()
    sheet.row("X1")["Analyte"] = "IL-8 (20)"
    with pytest.raises(InputError, match="names analyte 'IL-8 \\(20\\)'") as err:
        read_bioplex(report([sheet]), standard_unit="pg/mL")
    assert err.value.field == "Analyte"


def test_error_sheets_of_different_plates(report):
    path = report([analyte_sheet(), analyte_sheet("IL-8 (20)", plate="CRA-P02")])
    with pytest.raises(InputError, match="different Plate IDs"):
        read_bioplex(path, standard_unit="pg/mL")
    table = read_bioplex(path, standard_unit="pg/mL", plate_id="P1")
    assert set(table["plate_id"]) == {"P1"}


def test_error_unreadable_equation(report):
    sheet = analyte_sheet()
    sheet.footer[-2] = "Std. Curve: FI = 15 + (25000 - 15) / ((1 + (Conc / 900)^-1.1"
    with pytest.raises(InputError, match="cannot read the 5PL standard curve") as err:
        read_bioplex_equations(report([sheet]))
    assert (err.value.row, err.value.field) == (42, "Std. Curve")


def test_error_equation_whose_d_terms_disagree(report):
    sheet = analyte_sheet()
    sheet.footer[-2] = "Std. Curve: FI = 15 + (25000 - 16) / ((1 + (Conc / 900)^-1.1))^0.8"
    with pytest.raises(InputError, match="cannot read"):
        read_bioplex_equations(report([sheet]))


def test_other_regressions_are_reported_without_coefficients(report):
    sheet = analyte_sheet()
    sheet.footer[-3] = "Regression Type: Linear"
    sheet.footer[-2] = "Std. Curve: FI = 12.5 * Conc + 3"
    eq = read_bioplex_equations(report([sheet])).iloc[0]
    assert eq["regression_type"] == "Linear" and eq["equation"] == "FI = 12.5 * Conc + 3"
    assert np.isnan([eq["a"], eq["b"], eq["c"], eq["d"], eq["g"]]).all()


def test_synthetic_equation_round_trips(report):
    eq = read_bioplex_equations(report()).set_index("analyte")
    assert eq.loc["IL-6", ["a", "b", "c", "d", "g"]].tolist() == [25000.0, -1.1, 900.0, 15.0, 0.8]
    assert eq.loc["TNF-alpha", "c"] == 1500.0 and eq.loc["IL-6", "bead_region"] == 12


# --------------------------------------------------------------------------- writer


def test_a_real_report_round_trips_through_write_bioplex(plate, tmp_path):
    # Every value the report holds per well comes back; standards are renamed S1.. by their
    # concentration (the real report's S1 has no FI, so its levels start at S2).
    path = write_bioplex(plate, tmp_path / "again.xlsx")
    back = read_bioplex(path)
    columns = ["plate_id", "well", "analyte", "sample_type", "signal", "net_signal",
               "standard_concentration", "dilution_factor", "bead_count", "bead_region",
               "vendor_concentration", "vendor_flag"]  # fmt: skip
    key = ["analyte", "well"]
    pd.testing.assert_frame_equal(
        back[columns].sort_values(key).reset_index(drop=True),
        plate[columns].sort_values(key).reset_index(drop=True),
    )
    samples = plate["sample_type"].isin(["sample", "control"])
    assert (
        back.loc[samples.to_numpy(), "sample_id"].tolist()
        == plate.loc[samples, "sample_id"].tolist()
    )


def test_write_bioplex_writes_the_concentration_unit_in_the_column_headers(report, tmp_path):
    table = read_bioplex(report(), standard_unit="pg/mL")
    path = write_bioplex(table, tmp_path / "ng.xlsx", standard_unit="ng/mL")
    back = read_bioplex(path).sort_values(["analyte", "well"]).reset_index(drop=True)
    table = table.sort_values(["analyte", "well"]).reset_index(drop=True)
    assert back["exp_conc_unit"].unique().tolist() == ["ng/mL"]
    np.testing.assert_allclose(back["standard_concentration"], table["standard_concentration"])
    np.testing.assert_allclose(back["exp_conc"] * 1000, table["exp_conc"])


def test_write_bioplex_refuses_two_plates(report, tmp_path):
    table = read_bioplex(report(), standard_unit="pg/mL")
    two = pd.concat([table, table.assign(plate_id="OTHER")], ignore_index=True)
    with pytest.raises(InputError, match="one plate"):
        write_bioplex(two, tmp_path / "two.xlsx")
