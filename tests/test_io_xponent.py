"""Luminex xPONENT CSV: the two real exports, the writer, the round trip, and every error.

The real exports are read from ``../shared/data/real-exports/`` and never copied (see
SOURCES.md there): ``pone.0187901.s001.csv`` (xPONENT 3.1, S1 file of Sanz et al., PLOS
ONE 12:e0187901, CC BY 4.0) and the FLEXMAP 3D export of xPONENT 4.3 from
Benchling-Open-Source/allotropy (MIT). Every other file here is written by
:func:`write_xponent` -- into a temporary directory, or, for the one golden fixture,
into ``tests/fixtures/xponent/`` -- and the bad inputs are that file edited line by line.
Layout facts cited in comments are from those two real exports ("3.1 file", "4.3 file").
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cytosafe.errors import DataWarning, InputError, UnitError
from cytosafe.io.xponent import read_xponent, write_xponent
from cytosafe.schema.measurements import validate_measurements
from real_exports import REAL, real

XPONENT_31 = REAL / "pone.0187901.s001.csv"
FLEXMAP_43 = (
    REAL / "Flexmap_v433091_V540cLIA_NB-swarupap-5107580-0033_20241018_102647 (002) (3).csv"
)
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "xponent"
GOLDEN = FIXTURES / "small_plate.csv"
EPOCH = "1709136000"  # 2024-02-28 16:00 UTC: fixed date for byte-identical fixtures

# Columns an xPONENT file holds (the rest of the schema needs a sample map).
HELD = [
    "study_id",
    "plate_id",
    "well",
    "analyte",
    "sample_type",
    "standard_concentration",
    "signal",
    "dilution_factor",
    "sample_id",
    "bead_count",
]
NOT_COMPARED = ["source_file", "source_row"]


def read_quietly(path: Path, **kwargs) -> pd.DataFrame:
    """Read, ignoring the DataWarnings (tested on their own)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return read_xponent(path, **kwargs)


@pytest.fixture(scope="module")
def real31() -> pd.DataFrame:
    return read_quietly(real(XPONENT_31))


@pytest.fixture(scope="module")
def flexmap() -> pd.DataFrame:
    return read_xponent(real(FLEXMAP_43))


# --------------------------------------------------------------------------- a small plate

ANALYTES = ("IL-6", "TNF")
STANDARDS = {"IL-6": [5000.0, 1250.0, 312.5, 78.125], "TNF": [2000.0, 500.0, 125.0, 31.25]}


def signal_of(conc: float, top: float) -> float:
    """A rising 4PL in MFI (what a bead assay reads), rounded to xPONENT's half units."""
    return round(2 * (15 + (top - 15) / (1 + (1500 / max(conc, 1e-9)) ** 1.1))) / 2


def small_plate() -> pd.DataFrame:
    """16 wells as xPONENT names them: Standard1..4 in duplicate (A1-D2), Background0
    (E1, E2), Control1/Control2 (F1, F2), samples in G/H (one name holds a comma)."""
    layout = [
        (f"{r}{c}", f"Standard{i + 1}", "standard") for c in (1, 2) for i, r in enumerate("ABCD")
    ]
    layout += [("E1", "Background0", "blank"), ("E2", "Background0", "blank")]
    layout += [("F1", "Control1", "control"), ("F2", "Control2", "control")]
    layout += [
        ("G1", "D01-MED", "sample"),
        ("H1", "D01-CD3", "sample"),
        ("G2", "D01-MED", "sample"),
        ("H2", "D02, anti-CD3", "sample"),
    ]
    truth = {"D01-MED": 4.0, "D01-CD3": 900.0, "D02, anti-CD3": 2400.0}
    rows = []
    for n, (well, name, stype) in enumerate(layout):
        for j, analyte in enumerate(ANALYTES):
            top = 20000.0 if analyte == "IL-6" else 15000.0
            std = None
            dil = 1.0
            if stype == "standard":
                std = STANDARDS[analyte][int(name[8:]) - 1]
                x = std
            elif stype == "control":
                std = 800.0 if name == "Control1" else 60.0
                x = std / 2
                dil = 2.0
            elif stype == "sample":
                dil = 2.0
                x = truth[name] * (1 + j) / dil
            else:
                x = 0.0
            rows.append(
                {
                    "study_id": "CRA-001",
                    "plate_id": "LX-01",
                    "well": well,
                    "analyte": analyte,
                    "sample_type": stype,
                    "standard_concentration": std,
                    "signal": signal_of(x, top),
                    "dilution_factor": dil,
                    "sample_id": name,
                    "bead_count": float(40 + (7 * n + 3 * j) % 50),
                }
            )
    return validate_measurements(pd.DataFrame(rows))


def write(table: pd.DataFrame, path: Path, **kwargs) -> Path:
    old = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    try:
        return write_xponent(table, path, **kwargs)
    finally:
        if old is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old


@pytest.fixture
def plate_file(tmp_path: Path) -> Path:
    return write(small_plate(), tmp_path / "LX-01.csv")


def lines_of(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8").split("\r\n")


def edit(path: Path, change: Callable[[list[str]], list[str]]) -> Path:
    """Rewrite ``path`` with ``change`` applied to its lines (CRLF kept)."""
    path.write_bytes("\r\n".join(change(lines_of(path))).encode("utf-8"))
    return path


def line_no(path: Path, block: str, starts: str) -> int:
    """1-based line of the first row of ``block`` that starts with ``starts``."""
    lines = lines_of(path)
    begin = lines.index(next(x for x in lines if x.startswith(f"DataType:,{block},")))
    return next(i for i in range(begin, len(lines)) if lines[i].startswith(starts)) + 1


def _set_cell(path: Path, block: str, location: str, column: int, value: str) -> int:
    row = line_no(path, block, location)
    lines = lines_of(path)
    cells = lines[row - 1].split(",")
    cells[column + 1] = value  # +1: the quoted Location "n(1,A1)" splits in two
    lines[row - 1] = ",".join(cells)
    path.write_bytes("\r\n".join(lines).encode())
    return row


def comparable(df: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    out = df.drop(columns=NOT_COMPARED) if columns is None else df[columns]
    return out.sort_values(["well", "analyte"]).reset_index(drop=True)


# =========================================================================== real exports


def test_real_31_reads_30_cytokines_in_96_wells(real31):
    # 3.1 file: Median block of 96 Locations x 30 analytes, plus a 'Total Events' column.
    assert real31["analyte"].nunique() == 30
    assert real31["well"].nunique() == 96
    assert len(real31) == 96 * 30
    assert real31["analyte"].iloc[:3].tolist() == ["FGF", "IL1B", "G-CSF"]
    assert "Total Events" not in set(real31["analyte"])


def test_real_31_header_gives_plate_and_study(real31):
    # 3.1 file: "Batch,plate_1" and "ProtocolName,Example STUDY".
    assert set(real31["plate_id"]) == {"plate_1"}
    assert set(real31["study_id"]) == {"Example STUDY"}
    assert real31.attrs["header"]["Build"] == ["3.1.871.0"]


def test_real_31_median_count_and_location(real31):
    # 3.1 file, line 64: "1(1,A1)",Background0,21,20.5,... and Count 189,164,...
    a1 = real31[(real31["well"] == "A01") & (real31["analyte"] == "FGF")].iloc[0]
    assert (a1["signal"], a1["bead_count"], a1["source_row"]) == (21.0, 189.0, 64)
    assert a1["sample_id"] == "Background0" and a1["sample_type"] == "blank"
    assert a1["total_events"] == 4683
    il1b = real31[(real31["well"] == "A01") & (real31["analyte"] == "IL1B")].iloc[0]
    assert il1b["signal"] == 20.5 and il1b["net_signal"] == -0.25  # Net MFI may be negative
    # 100 beads per region were asked for; the Warnings/Errors block names the one well
    # ("1,B9") where a region "did not reach the maximum count".
    short = real31[real31["bead_count"] < 100]
    assert short[["well", "analyte", "bead_count"]].values.tolist() == [["B09", "G-CSF", 98.0]]


def test_real_31_sample_types_inferred_from_xponent_names(real31):
    per_well = real31.drop_duplicates("well").set_index("well")
    counts = per_well["sample_type"].value_counts()
    # Standard1..16 (Standard1 twice), Control1..3 (twice each), Background0 twice.
    assert (counts["standard"], counts["control"], counts["blank"]) == (17, 6, 2)
    assert counts["sample"] == 96 - 17 - 6 - 2
    assert per_well.loc["A02", "sample_id"] == "Standard1"
    assert per_well.loc[["A02", "H04"], "replicate"].tolist() == [1, 2]


def test_real_31_standards_have_expected_concentrations_in_pg_per_ml(real31):
    # 3.1 file: Units block "pg/mL"; Standard1 FGF 3450, Standard16 FGF 0.10528564453125.
    std = real31[(real31["sample_type"] == "standard") & (real31["analyte"] == "FGF")]
    by_name = std.drop_duplicates("sample_id").set_index("sample_id")["standard_concentration"]
    assert by_name["Standard1"] == 3450.0
    assert by_name["Standard16"] == 0.10528564453125
    assert std["dilution_factor"].eq(1.0).all()  # empty in the Dilution Factor block
    control = real31[(real31["sample_id"] == "Control1") & (real31["analyte"] == "FGF")]
    assert control["standard_concentration"].tolist() == [1150.0, 1150.0]
    assert control["dilution_factor"].tolist() == [2.0, 2.0]
    samples = real31[real31["sample_type"] == "sample"]
    assert samples["standard_concentration"].isna().all()
    assert samples["dilution_factor"].eq(2.0).all()


def test_real_31_vendor_results_with_flags(real31):
    def cell(well, analyte):
        return real31[(real31["well"] == well) & (real31["analyte"] == analyte)].iloc[0]

    # 3.1 file Result block: C1 FGF "< 0.10528564453125", E12 IL6 "> 5850", A1 "NaN".
    assert (cell("C01", "FGF")["vendor_concentration"], cell("C01", "FGF")["vendor_flag"]) == (
        0.10528564453125,
        "below_range",
    )
    assert (cell("E12", "IL6")["vendor_concentration"], cell("E12", "IL6")["vendor_flag"]) == (
        5850.0,
        "above_range",
    )
    assert math.isnan(cell("A01", "FGF")["vendor_concentration"])
    assert cell("A01", "FGF")["vendor_flag"] == "missing"
    assert pd.isna(cell("B01", "FGF")["vendor_flag"])  # a plain number: no flag
    assert cell("B01", "FGF")["vendor_concentration"] == pytest.approx(993.625341838801)


def test_real_31_vendor_result_is_dilution_times_the_5pl_inverse_of_net_mfi(real31):
    """What xPONENT fits, and how Result relates to dilution (module notes).

    Net MFI = A + (B - A) / (1 + (x / C)^D)^F with the printed Analysis Coefficients;
    Result = Dilution Factor x x. Checked on every in-range well of six analytes.
    """
    for analyte in ("FGF", "IL1B", "G-CSF", "IL10", "IL13", "IL6"):
        p = real31.attrs["analysis"][analyte]
        assert p["analysis_type"] == "Logistic 5P"
        rows = real31[(real31["analyte"] == analyte) & real31["vendor_flag"].isna()]
        y = rows["net_signal"].to_numpy()
        with np.errstate(invalid="ignore"):
            x = p["C"] * (((p["B"] - p["A"]) / (y - p["A"])) ** (1 / p["F"]) - 1) ** (1 / p["D"])
        ok = np.isfinite(x)
        assert ok.sum() > 20
        expected = rows["dilution_factor"].to_numpy()[ok] * x[ok]
        assert np.allclose(rows["vendor_concentration"].to_numpy()[ok], expected, rtol=1e-6)
        # ... and the curve was fitted to Net MFI, not to the Median: Net MFI = Median
        # minus the mean Median of the two Background0 wells.
        blanks = real31[(real31["analyte"] == analyte) & (real31["sample_type"] == "blank")]
        assert np.allclose(rows["signal"] - blanks["signal"].mean(), rows["net_signal"])


def test_real_31_non_monotonic_standard_series_warns():
    # 3.1 file: "Standard5,215625,..." where the series needs 215.625 (decimal point
    # lost in a decimal-comma round trip); one such standard in each of the 30 analytes.
    with pytest.warns(DataWarning, match="not monotonic") as record:
        table = read_xponent(real(XPONENT_31))
    message = next(str(w.message) for w in record if "not monotonic" in str(w.message))
    assert str(XPONENT_31) in message
    assert "FGF Standard5 = 215625 after Standard4 = 431.25" in message
    assert "215.625 would fit" in message
    found = table.attrs["non_monotonic_standards"]
    assert len(found) == 30 and len({f["analyte"] for f in found}) == 30
    flagged = table[table["standard_flag"] == "non_monotonic"]
    fgf = flagged[flagged["analyte"] == "FGF"]
    assert fgf["sample_id"].tolist() == ["Standard5"] and fgf["well"].tolist() == ["H06"]
    assert flagged["sample_type"].eq("standard").all()
    # The number is kept as printed: deciding it is a typo is the analyst's call.
    assert fgf["standard_concentration"].iloc[0] == 215625.0


def test_real_flexmap_43_reads_96_wells_by_14_analytes(flexmap):
    # 4.3 file: CRLF, blank rows between blocks, month-first dates, Analysis Off,
    # empty Net MFI and Units, 'Unknown1..96' names, no Result block.
    assert flexmap["well"].nunique() == 96
    assert flexmap["analyte"].nunique() == 14
    assert len(flexmap) == 96 * 14
    assert set(flexmap["sample_type"]) == {"sample"}
    assert set(flexmap["plate_id"]) == {"NB-swarupap-5107580-0033"}
    assert set(flexmap["study_id"]) == {"HPV9PlusFlexmap"}
    a1 = flexmap[(flexmap["well"] == "A01") & (flexmap["analyte"] == "HPV 6")].iloc[0]
    assert (a1["signal"], a1["bead_count"], a1["source_row"]) == (164.0, 39.0, 54)
    assert a1["sample_id"] == "Unknown1" and a1["bead_region"] == 25
    assert flexmap["net_signal"].isna().all()
    assert flexmap["dilution_factor"].eq(1.0).all()
    assert "vendor_concentration" not in flexmap.columns
    assert "standard_flag" not in flexmap.columns


# =========================================================================== round trip


def test_round_trip_of_the_real_31_export(real31, tmp_path):
    again = read_quietly(write(real31, tmp_path / "again.csv"))
    pd.testing.assert_frame_equal(comparable(real31), comparable(again))


def test_round_trip_of_the_real_flexmap_export(flexmap, tmp_path):
    again = read_xponent(write(flexmap, tmp_path / "again.csv"))
    pd.testing.assert_frame_equal(comparable(flexmap), comparable(again))


def test_round_trip_of_a_written_plate(plate_file):
    table = small_plate()
    again = read_xponent(plate_file)
    pd.testing.assert_frame_equal(comparable(table, HELD), comparable(again, HELD))
    # xPONENT computes Net MFI = Median - mean Median of the Background wells.
    blank = again[again["sample_type"] == "blank"].groupby("analyte")["signal"].mean()
    expected_net = again["signal"] - again["analyte"].map(blank)
    assert np.allclose(again["net_signal"], expected_net)


def test_round_trip_numbers_replicates_in_plate_order(plate_file):
    table = read_xponent(plate_file).drop_duplicates("well").set_index("well")
    assert table.loc[["G01", "G02"], "replicate"].tolist() == [1, 2]  # D01-MED twice
    assert table.loc[["A01", "A02"], "replicate"].tolist() == [1, 2]  # Standard1 twice


def _sample_names():
    reserved = re.compile(r"^(standard|std|control)\s*\d+$|^(background|blank)\s*\d*$", re.I)
    alphabet = st.characters(whitelist_categories=("Lu", "Ll", "Nd"), whitelist_characters="-_ ,.")
    return (
        st.text(alphabet, min_size=1, max_size=12)
        .map(str.strip)
        .filter(lambda s: s and not reserved.match(s))
    )


VENDOR = st.one_of(
    st.just((math.nan, "missing")),
    st.just((math.nan, "below_range")),
    st.just((math.nan, "above_range")),
    st.tuples(
        st.floats(0, 1e7, allow_nan=False, allow_subnormal=False),
        st.sampled_from([None, "below_range", "above_range", "extrapolated"]),
    ),
)


@st.composite
def plates(draw):
    """A plate of random size and content, in the roles and names xPONENT writes."""
    n_a = draw(st.integers(1, 4))
    analytes = [f"A{j}-{draw(st.sampled_from(['IL', 'TNF', 'IFN g']))}" for j in range(n_a)]
    n_std = draw(st.integers(0, 5))
    names = draw(st.lists(_sample_names(), min_size=1, max_size=12))
    roles = [("standard", f"Standard{i + 1}") for i in range(n_std)]
    roles += [("blank", "Background0")] * draw(st.integers(0, 2))
    roles += [("control", f"Control{i + 1}") for i in range(draw(st.integers(0, 2)))]
    roles += [("sample", n) for n in names]
    wells = [f"{'ABCDEFGH'[i % 8]}{i // 8 + 1:02d}" for i in range(len(roles))]
    top = draw(st.floats(10, 1e5))
    with_vendor = draw(st.booleans())
    signal = st.floats(0, 1e5, allow_nan=False, allow_subnormal=False)
    rows = []
    for well, (stype, name) in zip(wells, roles, strict=True):
        dil = 1.0 if stype in ("standard", "blank") else draw(st.sampled_from([1.0, 2.0, 4.0, 2.5]))
        for j in range(n_a):
            conc = None
            if stype == "standard":
                conc = top / 3.0 ** (int(name[8:]) - 1) * (j + 1)
            elif stype == "control":
                conc = draw(st.one_of(st.none(), st.floats(0.5, 1e4)))
            row = {
                "study_id": "S",
                "plate_id": "P-1",
                "well": well,
                "analyte": analytes[j],
                "sample_type": stype,
                "standard_concentration": conc,
                "signal": draw(signal),
                "dilution_factor": dil,
                "sample_id": name,
                "bead_count": float(draw(st.integers(0, 500))),
            }
            if with_vendor:
                row["vendor_concentration"], row["vendor_flag"] = draw(VENDOR)
            rows.append(row)
    return validate_measurements(pd.DataFrame(rows))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=plates())
def test_round_trip_property_any_plate(table):
    with tempfile.TemporaryDirectory() as tmp:
        again = read_xponent(write(table, Path(tmp) / "p.csv"))
    columns = HELD + (["vendor_concentration", "vendor_flag"] if "vendor_flag" in table else [])
    pd.testing.assert_frame_equal(comparable(table, columns), comparable(again, columns))


def test_signals_of_17_digits_read_back_exactly(tmp_path):
    # pandas 2 parses about one in five such texts one ulp off (4031.7929591279244 among
    # them); the reader reads the digits as written, whatever the pandas version.
    table = small_plate()
    table["signal"] = [4031.7929591279244 + k * 1.1 for k in range(len(table))]
    again = read_xponent(write(table, tmp_path / "p.csv"))
    got = again.set_index(["well", "analyte"])["signal"]
    want = table.set_index(["well", "analyte"])["signal"]
    assert (got.loc[want.index] == want).all()


def test_writer_names_standards_controls_and_blanks_as_xponent_does(tmp_path):
    # A table from another reader: standards 'S1'..'S4', blank 'Blank', control 'QC-high'.
    table = small_plate()
    rename = {f"Standard{i}": f"S{5 - i}" for i in range(1, 5)}  # S4 is the highest
    rename |= {"Background0": "zero", "Control1": "QC-high", "Control2": "QC-low"}
    table["sample_id"] = table["sample_id"].replace(rename)
    again = read_xponent(write(table, tmp_path / "p.csv")).drop_duplicates("well")
    names = again.set_index("well")["sample_id"]
    # xPONENT numbers standards from the highest concentration down.
    assert names[["A01", "B01", "C01", "D01"]].tolist() == [f"Standard{i}" for i in range(1, 5)]
    assert names[["E01", "E02"]].tolist() == ["Background0", "Background0"]
    assert names[["F01", "F02"]].tolist() == ["Control1", "Control2"]
    assert names["H02"] == "D02, anti-CD3"


def test_writer_fills_unnamed_samples_as_unknowns(tmp_path):
    table = small_plate()
    table.loc[table["sample_type"] == "sample", "sample_id"] = np.nan
    again = read_xponent(write(table, tmp_path / "p.csv")).drop_duplicates("well")
    assert again[again["sample_type"] == "sample"]["sample_id"].tolist() == [
        "Unknown1",
        "Unknown2",
        "Unknown3",
        "Unknown4",
    ]


# =========================================================================== writer layout


def test_golden_fixture_is_what_the_writer_writes(tmp_path):
    """The committed fixture pins the exact layout; regenerate it with
    ``.venv/bin/python tests/test_io_xponent.py`` after a deliberate layout change."""
    assert GOLDEN.is_file(), f"{GOLDEN} is missing; run .venv/bin/python {__file__}"
    written = write(small_plate(), tmp_path / "small_plate.csv")
    assert written.read_bytes() == GOLDEN.read_bytes(), (
        f"write_xponent no longer writes {GOLDEN}; if the change is deliberate, run "
        f".venv/bin/python {__file__}"
    )


def test_fixture_has_crlf_line_endings_and_the_crc_trailer():
    data = GOLDEN.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n") > 0  # every line ends in CRLF
    lines = data.split(b"\r\n")
    assert lines[-1] == b""  # the last line is terminated too
    assert lines[-3].startswith(b"-- CRC --,")
    crc = re.fullmatch(rb"CRC32: ([0-9A-F]{8}),*", lines[-2])
    assert crc, lines[-2]
    body = data[: data.index(b"-- CRC --")]
    assert int(crc.group(1), 16) == zlib.crc32(body)


def test_writer_lays_out_blocks_as_xponent_31():
    text = GOLDEN.read_bytes().decode("utf-8")
    lines = text.split("\r\n")[:-1]
    # 3.1 file: every row padded to one width; the first line names the program.
    assert len({line.count(",") for line in lines if '"' not in line}) == 1
    assert lines[0].startswith("Program,xPONENT,,LX100/LX200,")
    assert lines[1].startswith("Build,3.1.871.0,")
    assert lines[2].startswith("Date,28/02/2024,16:00,")  # day-first, as the 3.1 file
    assert lines[4].startswith("Batch,LX-01,") and lines[9].startswith("ProtocolName,CRA-001,")
    assert any(x.startswith("BatchStartTime,28/02/2024 16:00:00,") for x in lines)
    blocks = [x.split(",")[1] for x in lines if x.startswith("DataType:,")]
    assert blocks == [
        "Median",
        "Net MFI",
        "Count",
        "Units",
        "Standard Expected Concentration",
        "Control Expected Concentration",
        "Per Bead Count",
        "Dilution Factor",
        "Analysis Types",
        "Audit Logs",
        "Warnings/Errors",
    ]
    median = lines.index(next(x for x in lines if x.startswith("DataType:,Median,")))
    assert lines[median - 1].startswith("Results,")
    assert lines[median + 1] == "Location,Sample,IL-6,TNF,Total Events,,"  # padded
    # Location as n(1,A1), quoted because it holds a comma; wells column by column.
    assert lines[median + 2].startswith('"1(1,A1)",Standard1,')
    assert lines[median + 3].startswith('"2(1,B1)",Standard2,')
    assert lines[median + 10].startswith('"9(1,A2)",Standard1,')
    # Only cells with commas are quoted: the sample "D02, anti-CD3" is.
    assert any(x.startswith('"16(1,H2)","D02, anti-CD3",') for x in lines)
    # 3.1 file: standards and background leave the Dilution Factor empty.
    dil = lines.index(next(x for x in lines if x.startswith("DataType:,Dilution Factor,")))
    assert lines[dil + 1].startswith("Location,Sample,Dilution Factor,")
    assert lines[dil + 2].startswith('"1(1,A1)",Standard1,,')
    assert lines[dil + 7].startswith('"6(1,F1)",Control1,2,')


def test_writer_adds_the_result_block_for_vendor_concentrations(tmp_path):
    table = small_plate()
    table["vendor_concentration"] = np.where(table["sample_type"] == "blank", np.nan, 12.5)
    table["vendor_flag"] = np.where(table["sample_type"] == "blank", "missing", None)
    table.loc[0, ["vendor_concentration", "vendor_flag"]] = [0.25, "below_range"]
    table.loc[1, ["vendor_concentration", "vendor_flag"]] = [np.nan, "above_range"]
    path = write(table, tmp_path / "p.csv")
    lines = lines_of(path)
    blocks = [x.split(",")[1] for x in lines if x.startswith("DataType:,")]
    assert blocks[:4] == ["Median", "Net MFI", "Count", "Result"]
    result = line_no(path, "Result", '"1(1,A1)"')
    assert lines[result - 1].startswith('"1(1,A1)",Standard1,< 0.25,OOR >,')
    again = read_xponent(path)
    columns = ["well", "analyte", "vendor_concentration", "vendor_flag"]
    pd.testing.assert_frame_equal(comparable(table, columns), comparable(again, columns))


def test_writer_refuses_several_plates(tmp_path):
    table = small_plate()
    table.loc[table["well"] == "H02", "plate_id"] = "LX-02"
    with pytest.raises(InputError, match="one plate") as err:
        write_xponent(table, tmp_path / "p.csv")
    assert err.value.field == "plate_id"
    assert not (tmp_path / "p.csv").exists()


def test_writer_refuses_a_sample_named_like_a_standard(tmp_path):
    table = small_plate()
    table.loc[table["well"] == "G01", "sample_id"] = "Standard9"
    with pytest.raises(InputError, match="read back as a standard") as err:
        write_xponent(table, tmp_path / "p.csv")
    assert (err.value.well, err.value.field) == ("G01", "sample_id")


def test_writer_refuses_two_concentrations_for_one_standard_level(tmp_path):
    table = small_plate()
    table.loc[(table["well"] == "A02") & (table["analyte"] == "TNF"), "standard_concentration"] = (
        7.0
    )
    with pytest.raises(InputError, match="two expected concentrations of TNF") as err:
        write_xponent(table, tmp_path / "p.csv")
    assert err.value.well == "A02"


# =========================================================================== reader options


def test_sample_map_joins_culture_metadata(plate_file, tmp_path):
    smap = pd.DataFrame(
        {
            "sample_id": ["D01-MED", "D01-CD3", "D02, anti-CD3", "Control1", "Control2"],
            "donor_id": ["D01", "D01", "D02", None, None],
            "treatment": ["medium", "anti-CD3", "anti-CD3", None, None],
            "treatment_role": [
                "negative_control",
                "positive_control",
                "positive_control",
                None,
                None,
            ],
        }
    )
    table = read_xponent(plate_file, sample_map=smap)
    g1 = table[table["well"] == "G01"].iloc[0]
    assert (g1["donor_id"], g1["treatment"], g1["treatment_role"]) == (
        "D01",
        "medium",
        "negative_control",
    )
    path = tmp_path / "map.csv"
    smap.to_csv(path, index=False)
    assert read_xponent(plate_file, sample_map=path)["donor_id"].notna().sum() == 4 * 2


def test_study_and_plate_arguments_override_the_header(plate_file):
    table = read_xponent(plate_file, study_id="OTHER", plate_id="P9")
    assert set(table["study_id"]) == {"OTHER"} and set(table["plate_id"]) == {"P9"}


def test_study_defaults_to_the_file_name_without_protocol_name(plate_file):
    edit(
        plate_file, lambda ls: [re.sub(r"^ProtocolName,CRA-001,", "ProtocolName,,", x) for x in ls]
    )
    assert set(read_xponent(plate_file)["study_id"]) == {"LX-01"}


def test_standard_unit_is_used_when_the_units_block_is_empty(plate_file):
    # 4.3 file: "Units:,,,," -- an MFI-only export; here with standards, kit in ng/mL.
    edit(plate_file, lambda ls: [re.sub(r"^Units:,pg/mL,pg/mL,", "Units:,,,", x) for x in ls])
    with pytest.raises(InputError, match="no unit") as err:
        read_xponent(plate_file)
    assert err.value.file == str(plate_file) and err.value.field == "Units: IL-6"
    table = read_xponent(plate_file, standard_unit="ng/mL")
    std1 = table[(table["sample_id"] == "Standard1") & (table["analyte"] == "IL-6")]
    assert std1["standard_concentration"].tolist() == [5000.0 * 1000, 5000.0 * 1000]


def test_units_are_converted_to_pg_per_ml(plate_file):
    edit(plate_file, lambda ls: [re.sub(r"^Units:,pg/mL,", "Units:,ng/mL,", x) for x in ls])
    table = read_xponent(plate_file)
    il6 = table[(table["sample_id"] == "Standard4") & (table["analyte"] == "IL-6")]
    tnf = table[(table["sample_id"] == "Standard4") & (table["analyte"] == "TNF")]
    assert il6["standard_concentration"].iloc[0] == 78.125 * 1000
    assert tnf["standard_concentration"].iloc[0] == 31.25
    assert set(table["concentration_unit"]) == {"pg/mL"}  # ng/mL is stored in pg/mL


def test_standard_unit_that_contradicts_the_file_is_an_error(plate_file):
    with pytest.raises(InputError, match="standard_unit") as err:
        read_xponent(plate_file, standard_unit="ng/mL")
    assert err.value.field == "Units: IL-6"


def test_nan_median_is_skipped_with_a_warning(plate_file):
    # Real 4.x exports write NaN (or nothing) for a region not acquired in a well
    # (allotropy test data, luminex_xPONENT_nan_bead_count.csv).
    row = _set_cell(plate_file, "Median", '"7(1,G1)"', 2, "NaN")
    with pytest.warns(DataWarning, match=rf"line {row} well G01 IL-6 \(NaN\)"):
        table = read_xponent(plate_file)
    assert len(table) == 16 * 2 - 1
    assert table.attrs["skipped"] == [
        {"row": row, "well": "G01", "sample_id": "D01-MED", "analyte": "IL-6", "value": "NaN"}
    ]


def test_unsorted_zero_padded_locations_are_read(plate_file):
    # Wells as A01 and rows in any order (SOURCES.md); replicates still in plate order.
    def change(lines):
        out = [re.sub(r'^"(\d+)\(1,([A-H])(\d)\)"', r'"\1(1,\g<2>0\3)"', x) for x in lines]
        start = next(i for i, x in enumerate(out) if x.startswith("Location,Sample,")) + 1
        out[start : start + 16] = out[start : start + 16][::-1]
        return out

    expected = read_xponent(plate_file)
    edit(plate_file, change)
    table = read_xponent(plate_file)
    assert table["well"].iloc[0] == "H02"  # file order kept
    pd.testing.assert_frame_equal(comparable(expected), comparable(table))


def test_excel_resaved_numbers_are_read(plate_file):
    _set_cell(plate_file, "Median", '"1(1,A1)"', 2, "1.30013E+4")
    table = read_xponent(plate_file)
    assert (
        table[(table["well"] == "A01") & (table["analyte"] == "IL-6")]["signal"].iloc[0] == 13001.3
    )


def test_lf_line_endings_and_blank_rows_between_blocks_are_read(plate_file):
    # 3.1 file as stored: LF; 4.3 file: an empty row closes every block.
    expected = read_xponent(plate_file)
    text = plate_file.read_bytes().decode().replace("\r\n", "\n")
    text = re.sub(r"\n(DataType:,)", r"\n,,,,\n\1", text)
    plate_file.write_bytes(text.encode())
    pd.testing.assert_frame_equal(comparable(expected), comparable(read_xponent(plate_file)))


def test_a_batch_over_two_plates_gets_one_plate_id_per_plate(plate_file):
    # Location is index(plate,well): "9(2,A1)" is well A1 of the batch's second plate.
    def change(lines):
        return [re.sub(r'^"(\d+)\(1,([A-H])2\)"', r'"\1(2,\g<2>1)"', x) for x in lines]

    edit(plate_file, change)
    table = read_xponent(plate_file)
    assert sorted(set(table["plate_id"])) == ["LX-01_plate1", "LX-01_plate2"]
    second = table[table["plate_id"] == "LX-01_plate2"].drop_duplicates("well")
    assert second.set_index("well").loc["H01", "sample_id"] == "D02, anti-CD3"


def test_zero_expected_concentration_makes_a_standard_the_zero_calibrator(plate_file):
    edit(plate_file, lambda ls: [re.sub(r"^Standard4,78.125,", "Standard4,0,", x) for x in ls])
    table = read_xponent(plate_file)
    d1 = table[table["well"] == "D01"].set_index("analyte")
    assert (d1.loc["IL-6", "sample_type"], d1.loc["TNF", "sample_type"]) == ("blank", "standard")
    assert math.isnan(d1.loc["IL-6", "standard_concentration"])


# =========================================================================== bad input


def assert_names(
    err: pytest.ExceptionInfo, path: Path, row: int | None, well: str | None, field: str
) -> None:
    """The error names the file, the 1-based line, the well and the field -- in its text."""
    exc = err.value
    assert isinstance(exc, InputError)
    assert (exc.file, exc.row, exc.well, exc.field) == (str(path), row, well, field)
    text = str(exc)
    assert str(path) in text and f"field '{field}'" in text
    if row is not None:
        assert f"row {row}" in text
    if well is not None:
        assert f"well {well}" in text


def test_error_not_an_xponent_file(tmp_path):
    path = tmp_path / "tidy.csv"
    path.write_text("study_id,plate_id,well,analyte,signal\nS,P,A1,IL-6,12\n")
    with pytest.raises(InputError, match="not a Luminex xPONENT export") as err:
        read_xponent(path)
    assert_names(err, path, 1, None, "Program")


def test_error_not_an_xponent_file_binary(tmp_path):
    path = tmp_path / "plate.xlsx"
    path.write_bytes(b"PK\x03\x04\x00\x00binary\x00content")
    with pytest.raises(InputError, match="not a Luminex xPONENT export"):
        read_xponent(path)


def test_error_semicolon_separated_export(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("Program;xPONENT;;LX100/LX200\nBuild;3.1.871.0\n")
    with pytest.raises(InputError, match="semicolon-separated"):
        read_xponent(path)


def test_error_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_xponent(tmp_path / "nope.csv")


def test_error_truncated_inside_the_median_block(plate_file):
    cut = line_no(plate_file, "Median", '"5(1,E1)"')
    edit(plate_file, lambda ls: ls[: cut - 1])
    with pytest.raises(InputError, match=r"no 'DataType:,Count' block.*truncated") as err:
        read_xponent(plate_file)
    assert_names(err, plate_file, cut - 1, None, "Count")


def test_error_median_block_cut_short(plate_file):
    # The Median block lost its last row; the Count block still lists the well.
    row = line_no(plate_file, "Median", '"16(1,H2)"')
    edit(plate_file, lambda ls: ls[: row - 1] + ls[row:])
    count_row = line_no(plate_file, "Count", '"16(1,H2)"')
    with pytest.raises(InputError, match="Median block is cut short") as err:
        read_xponent(plate_file)
    assert_names(err, plate_file, count_row, "H02", "Median")


def test_error_missing_count_header(plate_file):
    header = line_no(plate_file, "Count", "Location,Sample,")
    edit(plate_file, lambda ls: ls[: header - 1] + ls[header:])
    with pytest.raises(
        InputError, match=r"'Count' block .* has no 'Location,Sample,\.\.\.' header"
    ) as err:
        read_xponent(plate_file)
    assert_names(err, plate_file, header, None, "Count")


def test_error_missing_crc_trailer(plate_file):
    edit(plate_file, lambda ls: [x for x in ls if not x.startswith(("-- CRC --", "CRC32:"))])
    with pytest.raises(InputError, match="without xPONENT's '-- CRC --' trailer") as err:
        read_xponent(plate_file)
    assert err.value.field == "-- CRC --" and err.value.file == str(plate_file)


def test_error_blank_row_splitting_a_block(plate_file):
    # An empty row closes a block (4.3 file); rows after it would be silently lost.
    row = line_no(plate_file, "Median", '"9(1,A2)"')
    edit(plate_file, lambda ls: [*ls[: row - 1], ",,,,,,", *ls[row - 1 :]])
    with pytest.raises(InputError, match="outside any 'DataType:' block") as err:
        read_xponent(plate_file)
    assert err.value.row == row + 1 and err.value.file == str(plate_file)


def test_error_row_with_fewer_cells_than_its_header(plate_file):
    row = line_no(plate_file, "Median", '"2(1,B1)"')
    edit(
        plate_file,
        lambda ls: [",".join(x.split(",")[:4]) if i == row - 1 else x for i, x in enumerate(ls)],
    )
    with pytest.raises(InputError, match="the row has 3 cells but the Median header") as err:
        read_xponent(plate_file)
    assert_names(err, plate_file, row, "B01", "Median: TNF")


def test_error_row_with_more_values_than_its_header(plate_file):
    row = line_no(plate_file, "Count", '"3(1,C1)"')
    edit(
        plate_file,
        lambda ls: [x.rstrip(",") + ",99,99" if i == row - 1 else x for i, x in enumerate(ls)],
    )
    with pytest.raises(InputError, match="values beyond the header") as err:
        read_xponent(plate_file)
    assert_names(err, plate_file, row, "C01", "Count")


def test_error_non_numeric_median(plate_file):
    row = _set_cell(plate_file, "Median", '"3(1,C1)"', 3, "n/a?")
    with pytest.raises(InputError, match="median fluorescence 'n/a\\?' is not a number") as err:
        read_xponent(plate_file)
    assert_names(err, plate_file, row, "C01", "Median: TNF")


def test_error_negative_median(plate_file):
    row = _set_cell(plate_file, "Median", '"10(1,B2)"', 2, "-12.5")
    with pytest.raises(InputError, match=r"median fluorescence '-12\.5' is negative") as err:
        read_xponent(plate_file)
    assert_names(err, plate_file, row, "B02", "Median: IL-6")


def test_error_negative_bead_count(plate_file):
    row = _set_cell(plate_file, "Count", '"4(1,D1)"', 2, "-3")
    with pytest.raises(InputError, match="bead count '-3' is negative") as err:
        read_xponent(plate_file)
    assert_names(err, plate_file, row, "D01", "Count: IL-6")


def test_error_bad_dilution_factor(plate_file):
    row = _set_cell(plate_file, "Dilution Factor", '"7(1,G1)"', 2, "0")
    with pytest.raises(InputError, match="dilution factor '0' is not positive") as err:
        read_xponent(plate_file)
    assert_names(err, plate_file, row, "G01", "Dilution Factor")


def test_error_duplicate_location(plate_file):
    row = line_no(plate_file, "Median", '"2(1,B1)"')
    edit(
        plate_file,
        lambda ls: [
            x.replace('"2(1,B1)"', '"2(1,A1)"') if i == row - 1 else x for i, x in enumerate(ls)
        ],
    )
    with pytest.raises(InputError, match="duplicate Location") as err:
        read_xponent(plate_file)
    assert_names(err, plate_file, row, "A01", "Location")
    assert f"already read at line {row - 1}" in str(err.value)


def test_error_unknown_unit(plate_file):
    edit(plate_file, lambda ls: [re.sub(r"^Units:,pg/mL,", "Units:,IU/furlong,", x) for x in ls])
    units_row = line_no(plate_file, "Units", "Units:")
    with pytest.raises(UnitError, match="unknown concentration unit 'IU/furlong'") as err:
        read_xponent(plate_file)
    assert_names(err, plate_file, units_row, None, "Units: IL-6")


def test_arbitrary_units_pass_through_unconverted_and_labelled(plate_file):
    # Issue 12, item 9: IU/mL is kept as written (no factor to a mass without the
    # analyte's WHO International Standard), and never taken for pg/mL.
    edit(plate_file, lambda ls: [re.sub(r"^Units:,pg/mL,", "Units:,iu/ml,", x) for x in ls])
    table = read_xponent(plate_file)
    il6 = table[(table["sample_id"] == "Standard4") & (table["analyte"] == "IL-6")]
    tnf = table[(table["sample_id"] == "Standard4") & (table["analyte"] == "TNF")]
    assert il6["standard_concentration"].iloc[0] == 78.125
    assert set(il6["concentration_unit"]) == {"IU/mL"}
    assert set(tnf["concentration_unit"]) == {"pg/mL"}


def test_standard_unit_may_be_an_arbitrary_unit(plate_file):
    edit(plate_file, lambda ls: [re.sub(r"^Units:,pg/mL,pg/mL,", "Units:,,,", x) for x in ls])
    table = read_xponent(plate_file, standard_unit="AU/mL")
    std1 = table[(table["sample_id"] == "Standard1") & (table["analyte"] == "IL-6")]
    assert std1["standard_concentration"].tolist() == [5000.0, 5000.0]
    assert set(table["concentration_unit"]) == {"AU/mL"}


def test_error_standard_without_expected_concentration(plate_file):
    edit(plate_file, lambda ls: [x for x in ls if not x.startswith("Standard3,")])
    with pytest.raises(InputError, match="no expected concentration of IL-6") as err:
        read_xponent(plate_file)
    assert_names(
        err,
        plate_file,
        line_no(plate_file, "Median", '"3(1,C1)"'),
        "C01",
        "Standard Expected Concentration: IL-6",
    )


def test_error_sample_names_disagree_between_blocks(plate_file):
    row = line_no(plate_file, "Count", '"8(1,H1)"')
    edit(
        plate_file,
        lambda ls: [
            x.replace("D01-CD3", "D01-CD4") if i == row - 1 else x for i, x in enumerate(ls)
        ],
    )
    with pytest.raises(InputError, match="Sample 'D01-CD4' differs") as err:
        read_xponent(plate_file)
    assert_names(err, plate_file, row, "H01", "Sample")


def test_nothing_partial_is_returned_on_error(plate_file):
    _set_cell(plate_file, "Median", '"16(1,H2)"', 3, "oops")
    result = None
    with pytest.raises(InputError):
        result = read_xponent(plate_file)
    assert result is None


if __name__ == "__main__":  # regenerate the golden fixture after a deliberate change
    FIXTURES.mkdir(parents=True, exist_ok=True)
    print(write(small_plate(), GOLDEN))
