"""Tidy measurement tables as CSV and XLSX: the contract of read_tidy and write_tidy.

A tidy file is the measurement table of ``cytosafe.schema.measurements`` written as it
is: schema column names in the header, one row per well x analyte. Every file here is
written by the tests (with :func:`write_tidy`, pandas or openpyxl) into a temporary
folder; bad inputs are good files edited line by line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cytosafe.errors import DataWarning, InputError, SchemaError, UnitError
from cytosafe.io.msd import read_msd, write_msd
from cytosafe.io.tidy import read_tidy, write_tidy
from cytosafe.schema.measurements import MEASUREMENT_COLUMNS, validate_measurements

CANONICAL = [c.name for c in MEASUREMENT_COLUMNS]
NOT_COMPARED = ["source_file", "source_row"]


def study_table() -> pd.DataFrame:
    """A small CRA plate: calibrators, a blank, and donor x treatment supernatants."""
    rows = []
    for analyte, top in (("IL-6", 2500.0), ("IFN-g", 1000.0)):
        for level in range(5):
            for rep in (1, 2):
                rows.append(
                    {
                        "sample_type": "standard",
                        "sample_id": f"S{level + 1:03d}",
                        "well": f"{'ABCDE'[level]}{rep:02d}",
                        "standard_concentration": top / 4**level,
                        "replicate": rep,
                        "analyte": analyte,
                    }
                )
        for rep in (1, 2):
            rows.append(
                {
                    "sample_type": "blank",
                    "sample_id": "Blank",
                    "well": f"H{rep:02d}",
                    "replicate": rep,
                    "analyte": analyte,
                }
            )
        for k, (donor, treatment, role, conc) in enumerate(
            [
                ("D01", "medium", "negative_control", 0.0),
                ("D01", "anti-CD3", "positive_control", 1.0),
                ("D02", "TA-1", "test", 10.0),
            ]
        ):
            for rep in (1, 2):
                rows.append(
                    {
                        "sample_type": "sample",
                        "sample_id": f"{donor}-{treatment}",
                        "well": f"{'ABC'[k]}{2 + rep:02d}",
                        "replicate": rep,
                        "analyte": analyte,
                        "donor_id": donor,
                        "treatment": treatment,
                        "treatment_role": role,
                        "treatment_concentration": conc,
                        "treatment_unit": "ug/mL" if conc else np.nan,
                        "assay_format": "whole_blood",
                        "incubation_h": 24.0,
                        "dilution_factor": 2.0,
                    }
                )
    table = pd.DataFrame(rows)
    table.insert(0, "plate_id", "P-01")
    table.insert(0, "study_id", "CRA-1")
    rng = np.random.default_rng(1)
    table["signal"] = np.round(rng.uniform(50, 2e6, len(table)), 1)
    table["vendor_concentration"] = rng.uniform(0, 3000, len(table))
    table.loc[::7, "vendor_concentration"] = np.nan
    return validate_measurements(table)


def compare(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Schema columns identical, dtypes included; extras equal in value."""
    columns = [c for c in CANONICAL if c not in NOT_COMPARED]
    pd.testing.assert_frame_equal(a[columns], b[columns])
    extras = [c for c in a.columns if c not in CANONICAL]
    assert list(b.columns[len(CANONICAL) :]) == extras

    def plain(t: pd.DataFrame) -> pd.DataFrame:  # None and NaN both mean "missing"
        return t[extras].astype(object).where(t[extras].notna(), None)

    pd.testing.assert_frame_equal(plain(a), plain(b), check_dtype=False)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_round_trip_gives_back_the_same_table(tmp_path, suffix):
    table = study_table()
    path = write_tidy(table, tmp_path / f"m{suffix}")
    assert path == tmp_path / f"m{suffix}"
    back = read_tidy(path)
    compare(table, back)
    assert (back["source_file"] == str(path)).all()


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_round_trip_of_an_msd_export_keeps_extras_and_origin(tmp_path, suffix):
    msd = read_msd(write_msd(study_table(), tmp_path / "plate.csv"), study_id="CRA-1")
    back = read_tidy(write_tidy(msd, tmp_path / f"tidy{suffix}"))
    compare(msd, back.drop(columns=["origin_file", "origin_row"]))
    # the instrument export stays traceable: its file and line come along
    assert (back["origin_file"] == msd["source_file"]).all()
    assert (back["origin_row"] == msd["source_row"]).all()


@st.composite
def tables(draw):
    n = draw(st.integers(1, 12))
    values = st.floats(0, 1e7, allow_nan=False, allow_infinity=False)
    return validate_measurements(
        pd.DataFrame(
            {
                "study_id": "S",
                "plate_id": draw(st.sampled_from(["P1", "plate 2", "Plate, 3"])),
                "well": [f"A{i + 1:02d}" for i in range(n)],
                "analyte": draw(st.sampled_from(["IL-6", "TNF", "IFN-γ"])),
                "sample_type": "sample",
                "signal": draw(st.lists(values, min_size=n, max_size=n)),
                "sample_id": draw(
                    st.lists(
                        st.text("ab ,;\"'-é0", min_size=1, max_size=6).filter(str.strip),
                        min_size=n,
                        max_size=n,
                    )
                ),
                "dilution_factor": draw(
                    st.lists(st.sampled_from([1.0, 2.0, 2.5, 1e-3 + 1]), min_size=n, max_size=n)
                ),
            }
        )
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(table=tables(), suffix=st.sampled_from([".csv", ".xlsx"]))
def test_round_trip_property(table, suffix, tmp_path):
    table = table.assign(sample_id=table["sample_id"].str.strip())
    compare(table, read_tidy(write_tidy(table, tmp_path / f"p{suffix}")))


# --------------------------------------------------------------------------- the writer


def test_writer_writes_canonical_columns_then_extras(tmp_path):
    path = write_tidy(study_table(), tmp_path / "m.csv")
    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    canonical = [c for c in CANONICAL if c not in NOT_COMPARED]
    assert header == [*canonical, "vendor_concentration"]  # no empty source columns
    # (and no concentration_unit: every curve is in pg/mL, what a file without it means)
    assert b"\r\n" not in path.read_bytes()


def test_writer_refuses_other_suffixes(tmp_path):
    with pytest.raises(InputError, match=r"cannot write a tidy table as '\.txt'") as err:
        write_tidy(study_table(), tmp_path / "m.txt")
    assert err.value.file == str(tmp_path / "m.txt")


def test_writer_validates_first_and_writes_nothing_on_error(tmp_path):
    bad = study_table()
    bad.loc[3, "signal"] = -1.0
    with pytest.raises(SchemaError, match="negative"):
        write_tidy(bad, tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()


def test_xlsx_has_one_sheet_called_measurements(tmp_path):
    import openpyxl

    path = write_tidy(study_table(), tmp_path / "m.xlsx")
    assert openpyxl.load_workbook(path).sheetnames == ["measurements"]


def test_xlsx_parts_are_canonical_xml_whatever_serialiser_openpyxl_used(tmp_path):
    # openpyxl writes through lxml when it is installed and through xml.etree otherwise;
    # canonical XML is one text for one document, so the file is the same on every machine.
    import zipfile
    from xml.etree.ElementTree import canonicalize

    path = write_tidy(study_table(), tmp_path / "m.xlsx")
    with zipfile.ZipFile(path) as book:
        parts = {n: book.read(n) for n in book.namelist() if n.endswith((".xml", ".rels"))}
    assert "xl/worksheets/sheet1.xml" in parts
    for name, data in parts.items():
        assert canonicalize(data).encode() == data, name


def test_xlsx_is_byte_identical_under_source_date_epoch(tmp_path, monkeypatch):
    import openpyxl

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1737115200")  # 2025-01-17T12:00:00Z
    first = write_tidy(study_table(), tmp_path / "a.xlsx").read_bytes()
    second = write_tidy(study_table(), tmp_path / "b.xlsx").read_bytes()
    assert first == second
    props = openpyxl.load_workbook(tmp_path / "a.xlsx").properties
    assert str(props.created) == str(props.modified) == "2025-01-17 12:00:00"


def test_a_validated_table_validates_again_unchanged():
    # pandas 2 refused to write text into the treatment_role categorical of a table
    # validated once.
    table = study_table()
    pd.testing.assert_frame_equal(validate_measurements(table), table)


def test_numbers_written_as_text_read_back_exactly(tmp_path):
    # pandas 2's fast text parser reads "0.0010000000000000002" as 0.001.
    text = MINIMAL.replace("S,P,A1,IL-6,standard,100,5000", "S,P,A1,IL-6,standard,100,5000.1")
    text = text.replace(",1200\n", ",0.0010000000000000002\n")
    text = text.replace("standard,100,", "standard,0.30000000000000004,")
    table = read_tidy(_csv(tmp_path, text))
    assert table["signal"].tolist() == [5000.1, 80.0, 0.0010000000000000002]
    assert table["standard_concentration"].iat[0] == 0.30000000000000004
    with_unit = (
        text.replace("signal\n", "signal,concentration_unit\n")
        .replace("5000.1\n", "5000.1,ng/mL\n")
        .replace("80\n", "80,\n")
        .replace("0.0010000000000000002\n", "0.0010000000000000002,\n")
    )
    converted = read_tidy(_csv(tmp_path, with_unit, name="u.csv"))
    assert converted["standard_concentration"].iat[0] == 0.30000000000000004 * 1000


# --------------------------------------------------------------------------- the reader


def _csv(tmp_path: Path, text: str, name: str = "t.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


MINIMAL = (
    "study_id,plate_id,well,analyte,sample_type,standard_concentration,signal\n"
    "S,P,A1,IL-6,standard,100,5000\n"
    "S,P,A2,IL-6,blank,,80\n"
    "S,P,B1,IL-6,sample,,1200\n"
)


def test_reader_adds_the_optional_columns_and_source_lines(tmp_path):
    table = read_tidy(_csv(tmp_path, MINIMAL))
    # The schema's columns, then the unit of the concentrations (pg/mL when none is given).
    assert list(table.columns) == [*CANONICAL, "concentration_unit"]
    assert set(table["concentration_unit"]) == {"pg/mL"}
    assert list(table["source_row"]) == [2, 3, 4]  # the header is line 1
    assert list(table["well"]) == ["A01", "A02", "B01"]
    assert (table["dilution_factor"] == 1).all()


def test_header_names_match_ignoring_case_spaces_and_hyphens(tmp_path):
    text = MINIMAL.replace(
        "study_id,plate_id,well,analyte,sample_type,standard_concentration,signal",
        "Study ID,PLATE-ID, Well ,Analyte,Sample Type,Standard Concentration,Signal",
    )
    compare(read_tidy(_csv(tmp_path, MINIMAL)), read_tidy(_csv(tmp_path, text, "u.csv")))


def test_unknown_columns_are_kept_as_extras(tmp_path):
    lines = MINIMAL.splitlines()
    text = "\n".join([lines[0] + ",Operator,od_630"] + [ln + ",x,0.1" for ln in lines[1:]])
    table = read_tidy(_csv(tmp_path, text))
    assert list(table.columns[-2:]) == ["Operator", "od_630"]
    assert list(table["Operator"]) == ["x", "x", "x"]
    assert table["od_630"].dtype == float


def test_blank_lines_are_skipped_and_lines_still_counted(tmp_path):
    text = MINIMAL.replace("S,P,A2", "\nS,P,A2")
    assert list(read_tidy(_csv(tmp_path, text))["source_row"]) == [2, 4, 5]


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_separated_files(tmp_path, delimiter):
    text = MINIMAL.replace(",", delimiter)
    compare(read_tidy(_csv(tmp_path, MINIMAL)), read_tidy(_csv(tmp_path, text, "d.csv")))


def test_byte_order_mark_and_windows_1252(tmp_path):
    bom = read_tidy(_csv(tmp_path, "\ufeff" + MINIMAL, "bom.csv"))
    assert "study_id" in bom.columns
    latin = read_tidy(_csv(tmp_path, MINIMAL.replace("S,P,B1", "Sé,P,B1"), "w.csv", "cp1252"))
    assert latin["study_id"].iat[2] == "Sé"


def test_concentration_unit_converts_each_row_to_pg_per_ml(tmp_path):
    text = (
        "study_id,plate_id,well,analyte,sample_type,standard_concentration,signal,concentration_unit,vendor_concentration\n"
        "S,P,A1,IL-6,standard,2.5,5000,ng/mL,2.4\n"
        "S,P,A2,IL-6,standard,625,2000,pg/ml,600\n"
        "S,P,A3,IL-6,standard,0.000156,900,ug/mL,\n"
        "S,P,B1,IL-6,sample,,1200,,30\n"
    )
    table = read_tidy(_csv(tmp_path, text))
    np.testing.assert_allclose(table["standard_concentration"][:3], [2500.0, 625.0, 156.0])
    np.testing.assert_allclose(table["vendor_concentration"], [2400.0, 600.0, np.nan, 30.0])
    assert table["concentration_unit"].tolist() == ["pg/mL"] * 4  # all converted


# --------------------------------------------------------------------------- Excel


def test_xlsx_sheet_by_name_and_by_number(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "notes"
    book.active.append(["this sheet is not the table"])
    sheet = book.create_sheet("plate 1")
    for line in MINIMAL.splitlines():
        sheet.append([float(c) if c.isdigit() else (c or None) for c in line.split(",")])
    book.save(tmp_path / "b.xlsx")
    by_name = read_tidy(tmp_path / "b.xlsx", sheet="plate 1")
    by_number = read_tidy(tmp_path / "b.xlsx", sheet=1)
    compare(by_name, by_number)
    compare(read_tidy(_csv(tmp_path, MINIMAL)), by_name)
    assert list(by_name["source_row"]) == [2, 3, 4]  # Excel rows


def test_error_missing_sheet(tmp_path):
    write_tidy(study_table(), tmp_path / "m.xlsx")
    with pytest.raises(InputError, match="no sheet 'plates'") as err:
        read_tidy(tmp_path / "m.xlsx", sheet="plates")
    assert err.value.field == "sheet" and "measurements" in str(err.value)
    with pytest.raises(InputError, match="no sheet number 3"):
        read_tidy(tmp_path / "m.xlsx", sheet=3)


def test_error_sheet_for_a_csv(tmp_path):
    with pytest.raises(InputError, match="Excel workbooks only"):
        read_tidy(_csv(tmp_path, MINIMAL), sheet=0)


# --------------------------------------------------------------------------- errors


def check(exc: InputError, path: Path, *, row=None, well=None, field=None) -> None:
    text = str(exc)
    assert exc.file == str(path) and str(path) in text
    if row is not None:
        assert exc.row == row and f"row {row}" in text
    if well is not None:
        assert exc.well == well and f"well {well}" in text
    if field is not None:
        assert exc.field == field and f"field '{field}'" in text


def test_error_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found") as err:
        read_tidy(tmp_path / "none.csv")
    check(err.value, tmp_path / "none.csv")


def test_error_empty_file(tmp_path):
    path = _csv(tmp_path, "\n\n")
    with pytest.raises(InputError, match="empty") as err:
        read_tidy(path)
    check(err.value, path)


def test_error_header_without_rows(tmp_path):
    path = _csv(tmp_path, MINIMAL.splitlines()[0] + "\n")
    with pytest.raises(InputError, match="no rows") as err:
        read_tidy(path)
    check(err.value, path, row=1)


def test_error_missing_required_column(tmp_path):
    path = _csv(tmp_path, MINIMAL.replace(",signal", ",od"))
    with pytest.raises(SchemaError, match=r"missing required column.*signal") as err:
        read_tidy(path)
    check(err.value, path)


def test_error_truncated_row(tmp_path):
    path = _csv(tmp_path, MINIMAL + "S,P,B2,IL-6")
    with pytest.raises(InputError, match="truncated") as err:
        read_tidy(path)
    check(err.value, path, row=5, well="B2", field="sample_type")


def test_error_row_with_more_cells_than_the_header(tmp_path):
    path = _csv(tmp_path, MINIMAL.replace("S,P,B1,IL-6,sample,,1200", "S,P,B1,IL-6,sample,,1,200"))
    with pytest.raises(InputError, match="more cells than the header") as err:
        read_tidy(path)
    check(err.value, path, row=4, well="B1")


def test_error_duplicated_column(tmp_path):
    path = _csv(tmp_path, MINIMAL.replace("signal\n", "Signal,signal\n"))
    with pytest.raises(InputError, match="appears twice") as err:
        read_tidy(path)
    check(err.value, path, row=1, field="signal")


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ("S,P,B1,IL-6,sample,,1200", "S,P,B1,IL-6,sample,,lots", "signal", "not a number"),
        ("S,P,B1,IL-6,sample,,1200", "S,P,B1,IL-6,sample,,-3", "signal", "negative"),
        (
            "S,P,B1,IL-6,sample,,1200",
            "S,P,B1,IL-6,unknown,,1200",
            "sample_type",
            "unknown sample type",
        ),
        (
            "S,P,A1,IL-6,standard,100,5000",
            "S,P,A1,IL-6,standard,,5000",
            "standard_concentration",
            "no nominal",
        ),
    ],
)
def test_error_bad_values_name_row_well_and_field(tmp_path, old, new, field, message):
    path = _csv(tmp_path, MINIMAL.replace(old, new))
    line = 2 + MINIMAL.splitlines()[1:].index(old)
    with pytest.raises(SchemaError, match=message) as err:
        read_tidy(path)
    check(err.value, path, row=line, field=field)
    assert err.value.well in ("A01", "B01")


@pytest.mark.parametrize("missing", ["", "NaN", "NA", "n/a"])
def test_a_row_without_a_signal_is_set_aside_with_a_warning(tmp_path, missing):
    # Issue 12, item 6: as xPONENT and DW skip a well without a reading, one empty signal
    # no longer stops the file; the warning names the file, row, well and analyte.
    text = MINIMAL.replace("S,P,A2,IL-6,blank,,80", f"S,P,A2,IL-6,blank,,{missing}")
    path = _csv(tmp_path, text)
    with pytest.warns(DataWarning) as caught:
        table = read_tidy(path)
    assert table["well"].tolist() == ["A01", "B01"]
    assert table["source_row"].tolist() == [2, 4]
    (message,) = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert message.startswith(f"{path}, row 3, well A2, analyte IL-6: the signal is missing")
    assert "set aside" in message


def test_rows_without_a_signal_beyond_the_named_ones_are_counted(tmp_path):
    rows = "".join(f"S,P,{'DEF'[k // 12]}{k % 12 + 1},IL-6,sample,,\n" for k in range(25))
    path = _csv(tmp_path, MINIMAL + rows)
    with pytest.warns(DataWarning) as caught:
        table = read_tidy(path)
    assert len(table) == 3
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(messages) == 21  # 20 rows named one by one, then the rest counted
    assert (
        messages[-1] == f"{path}: 5 more row(s) without a signal set aside: rows 25, 26, 27, 28, 29"
    )


def test_error_no_row_has_a_signal(tmp_path):
    text = MINIMAL.replace(",5000\n", ",\n").replace(",80\n", ",\n").replace(",1200\n", ",\n")
    path = _csv(tmp_path, text)
    with pytest.raises(InputError, match="no row has a signal") as err:
        read_tidy(path)
    check(err.value, path, field="signal")


def test_error_duplicate_well_and_analyte(tmp_path):
    path = _csv(tmp_path, MINIMAL.replace("S,P,A2,IL-6", "S,P,A01,IL-6"))
    with pytest.raises(SchemaError, match="duplicate well") as err:
        read_tidy(path)
    check(err.value, path, row=3, well="A01", field="well")


@pytest.mark.parametrize(
    ("unit", "message"), [("pg/furlong", "unknown concentration unit"), ("nM", "molar")]
)
def test_error_bad_concentration_unit(tmp_path, unit, message):
    text = MINIMAL.replace("signal\n", "signal,concentration_unit\n")
    text = (
        text.replace("5000\n", f"5000,{unit}\n")
        .replace("80\n", "80,\n")
        .replace("1200\n", "1200,\n")
    )
    path = _csv(tmp_path, text)
    with pytest.raises(UnitError, match=message) as err:
        read_tidy(path)
    check(err.value, path, row=2, well="A1", field="concentration_unit")
