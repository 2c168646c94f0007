"""Plate maps and reader matrices (``cytosafe.io.platemap``): layouts, round trips, errors.

Layout sources (details in the module docstring of ``cytosafe.io.platemap``):

* grid plate maps follow the R package ``plater`` 1.0.5 (rOpenSci, github.com/ropensci/plater:
  ``R/read_plate.R``, ``R/convert_plate_to_column.R``, vignette ``plater-basics.Rmd``);
* reader matrices follow what plate-reader software writes, studied on the public test
  exports of Benchling's ``allotropy`` (MIT): BioTek Gen5 text
  (``tests/parsers/agilent_gen5/testdata/absorbance/240411_172731_BNCH2345883_abs450_96well_
  non_numeric_values.txt``, ``.../endpoint_wavelength_measurement_labels.txt``) and Thermo
  SkanIt XLSX (``tests/parsers/thermo_skanit/testdata/luciferase_assay_example.xlsx``).

The fixtures in ``tests/fixtures/platemap/`` were written for these tests in those layouts
(their numbers are invented); every other file is written into a temporary directory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cytosafe.errors import InputError, SchemaError, UnitError
from cytosafe.io.platemap import (
    READING_COLUMNS,
    join_plate_map,
    read_plate,
    read_plate_map,
    read_reader_matrix,
    write_plate_map,
    write_reader_matrix,
)
from cytosafe.schema.measurements import (
    MEASUREMENT_COLUMNS,
    SAMPLE_TYPES,
    TREATMENT_ROLES,
    validate_measurements,
)
from cytosafe.schema.wells import PLATE_FORMATS, well_name

FIXTURES = Path(__file__).parent / "fixtures" / "platemap"
GEN5 = FIXTURES / "gen5_il6_od450.txt"  # Gen5 text export layout, IL-6 ELISA at 450 nm
PLATER_MAP = FIXTURES / "il6_plate_map_plater.csv"  # plater grid, with Excel's artefacts

# The measurement columns a plate map + matrix pair carries (source_* locate the reading).
COMPARED = [c.name for c in MEASUREMENT_COLUMNS if c.name not in ("source_file", "source_row")]


# --------------------------------------------------------------------------- helpers


def elisa_plate(plate_id: str = "ELISA-01", analytes: tuple[str, ...] = ("IL-6",)):
    """An IL-6 sandwich ELISA plate like the example study's: standards 1:2 from 600 pg/mL
    in duplicate (A-G, columns 1-2), blanks (H1-H2), whole-blood supernatants in duplicate
    (columns 3-6), a kit control with its expected concentration (H11); the rest empty."""
    rows = []
    levels = [600 / 2**k for k in range(7)]
    donors = [f"D0{k}" for k in range(1, 9)]
    treatments = [("medium", "negative_control", 0.0, None), ("TA-1", "test", 10.0, "ug/mL")]
    for a_i, analyte in enumerate(analytes):
        for r in range(8):
            for c in range(2):
                well = well_name(r, c)
                if r < 7:
                    meta = dict(
                        sample_type="standard",
                        standard_concentration=levels[r],
                        sample_id=f"STD{r + 1}",
                    )
                else:
                    meta = dict(sample_type="blank", sample_id="Blank")
                rows.append(
                    dict(
                        well=well,
                        analyte=analyte,
                        replicate=c + 1,
                        **meta,
                        signal=round(2.4 * 0.55**r + 0.04 + 0.01 * c + a_i, 4),
                    )
                )
            for t, (treatment, role, conc, unit) in enumerate(treatments):
                for c in range(2):
                    well = well_name(r, 2 + 2 * t + c)
                    rows.append(
                        dict(
                            well=well,
                            analyte=analyte,
                            sample_type="sample",
                            donor_id=donors[r],
                            treatment=treatment,
                            treatment_role=role,
                            treatment_concentration=conc,
                            treatment_unit=unit,
                            assay_format="whole_blood",
                            incubation_h=24.0,
                            replicate=c + 1,
                            dilution_factor=2.0 if t == 0 else 20.0,
                            sample_id=f"{donors[r]}-WB-{treatment}",
                            signal=round(0.05 + 0.11 * r * t + 0.003 * c + a_i, 4),
                        )
                    )
        rows.append(
            dict(
                well="H11",
                analyte=analyte,
                sample_type="control",
                standard_concentration=250.0,
                sample_id="QC-high",
                signal=1.1 + a_i,
            )
        )
    table = pd.DataFrame(rows)
    table.insert(0, "study_id", "CRA-EX-001")
    table.insert(1, "plate_id", plate_id)
    return validate_measurements(table)


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def grid(name: str, values: dict[str, object], fmt: int = 96, sep: str = ",") -> list[str]:
    """A plater layout: name and column numbers, then one line per row letter."""
    n_rows, n_cols = PLATE_FORMATS[fmt]
    lines = [sep.join([name, *map(str, range(1, n_cols + 1))])]
    for r in range(n_rows):
        cells = [
            "" if (v := values.get(well_name(r, c))) is None else str(v) for c in range(n_cols)
        ]
        lines.append(sep.join([chr(ord("A") + r), *cells]))
    return lines


def small_map(tmp_path: Path, wells=("A01", "A02", "B01")) -> Path:
    """A long plate map: two standards and a blank."""
    lines = ["well,sample_type,standard_concentration"]
    for k, w in enumerate(wells):
        lines.append(f"{w},{'standard' if k < 2 else 'blank'},{'100' if k < 2 else ''}")
    return write(tmp_path / "map.csv", lines)


def small_matrix(tmp_path: Path, values: dict[str, object], name: str = "IL-6", fmt: int = 96):
    return write(tmp_path / "plate7.csv", grid(name, values, fmt))


def names(err: InputError, *, file, row=None, well=None, field=None) -> None:
    """The error says where: file, line, well and field."""
    assert err.file == str(file)
    assert err.row == row
    assert err.well == well
    assert err.field == field


def sort(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(["analyte", "well"], kind="stable").reset_index(drop=True)


def assert_same(back: pd.DataFrame, table: pd.DataFrame) -> None:
    """Same values and dtypes; a column empty on both sides may differ in dtype, because
    validate_measurements leaves an all-missing text column as it finds it (float NaN when
    added, object None when given)."""
    back, table = sort(back)[COMPARED], sort(table)[COMPARED]
    empty = [c for c in COMPARED if back[c].isna().all() and table[c].isna().all()]
    pd.testing.assert_frame_equal(
        back.drop(columns=empty), table.drop(columns=empty), check_exact=True
    )


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("layout", ["grid", "long"])
@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_the_elisa_plate_reads_back_identically(tmp_path, layout, suffix):
    plate = elisa_plate()
    write_plate_map(plate, tmp_path / f"plate_map{suffix}", layout=layout)
    write_reader_matrix(plate, tmp_path / f"reader_matrix{suffix}")
    back = read_plate(
        tmp_path / f"plate_map{suffix}", tmp_path / f"reader_matrix{suffix}", study_id="CRA-EX-001"
    )
    pd.testing.assert_frame_equal(back[COMPARED], plate[COMPARED], check_exact=True)
    # the plate keeps its id although the matrix file is called otherwise (the map carries it)
    assert set(back["plate_id"]) == {"ELISA-01"}


def test_every_reading_is_traced_to_its_matrix_line_and_plate_map_line(tmp_path):
    plate = elisa_plate()
    write_plate_map(plate, tmp_path / "map.csv", layout="long")
    write_reader_matrix(plate, tmp_path / "matrix.csv")
    back = read_plate(tmp_path / "map.csv", tmp_path / "matrix.csv", study_id="S")
    h11 = back.set_index("well").loc["H11"]
    assert h11["source_file"] == str(tmp_path / "matrix.csv")
    assert h11["source_row"] == 9  # header line 1, row A line 2, ..., row H line 9
    assert h11["plate_map_file"] == str(tmp_path / "map.csv")
    assert h11["plate_map_row"] == 1 + 1 + list(plate["well"]).index("H11")


def test_several_analytes_round_trip_one_block_each(tmp_path):
    plate = elisa_plate(analytes=("IL-6", "IFN-γ", "TNF-α"))
    write_plate_map(plate, tmp_path / "map.csv")
    write_reader_matrix(plate, tmp_path / "matrix.csv")
    text = (tmp_path / "matrix.csv").read_text(encoding="utf-8").splitlines()
    assert [ln.split(",")[0] for ln in text if ln.endswith(",12")] == ["IL-6", "IFN-γ", "TNF-α"]
    back = read_plate(tmp_path / "map.csv", tmp_path / "matrix.csv", study_id="CRA-EX-001")
    pd.testing.assert_frame_equal(back[COMPARED], plate[COMPARED], check_exact=True)


def test_written_grids_have_plater_shape(tmp_path):
    # plater's read_plate cuts a file into layouts of (rows + 1) lines separated by one
    # blank line: (lines + 1) / (rows + 2) must be whole (calculate_number_of_plates).
    plate = elisa_plate(analytes=("IL-6", "IL-8"))
    for path in (
        write_plate_map(plate, tmp_path / "map.csv"),
        write_reader_matrix(plate, tmp_path / "matrix.csv"),
    ):
        lines = path.read_text(encoding="utf-8").splitlines()
        assert (len(lines) + 1) % (8 + 2) == 0
        assert all(ln == "" for ln in lines[9::10])
        assert all(ln.split(",")[1:] == [str(k) for k in range(1, 13)] for ln in lines[::10])


TEXT = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_./ ,",
    min_size=1,
    max_size=8,
).filter(lambda s: s.strip().lower() not in {"na", "nan", "n/a", ""})
NUMBER = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def plates(draw):
    """A random plate: 96 or 384 wells, some used, 1-3 analytes, any metadata."""
    fmt = draw(st.sampled_from(sorted(PLATE_FORMATS)))
    n_rows, n_cols = PLATE_FORMATS[fmt]
    every = [well_name(r, c) for r in range(n_rows) for c in range(n_cols)]
    wells = sorted(draw(st.lists(st.sampled_from(every), min_size=1, max_size=30, unique=True)))
    analytes = draw(
        st.lists(
            st.sampled_from(["IL-6", "IFN-γ", "TNF-α", "IL-2", "IL-10"]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    meta = {}
    for well in wells:
        stype = draw(st.sampled_from(SAMPLE_TYPES))
        m = {
            "sample_type": stype,
            "sample_id": draw(st.none() | TEXT),
            "replicate": draw(st.none() | st.integers(1, 4)),
        }
        if stype == "standard" or (stype == "control" and draw(st.booleans())):
            m["standard_concentration"] = draw(NUMBER)
        if stype == "sample":
            conc = draw(st.none() | NUMBER)
            m.update(
                donor_id=draw(TEXT),
                treatment=draw(st.none() | TEXT),
                treatment_role=draw(st.none() | st.sampled_from(TREATMENT_ROLES)),
                treatment_concentration=conc,
                treatment_unit=None if conc is None else draw(st.sampled_from(["ug/mL", "nM"])),
                assay_format=draw(st.none() | st.sampled_from(["whole_blood", "pbmc_aqueous"])),
                incubation_h=draw(st.none() | st.sampled_from([4.0, 24.0, 48.0])),
                dilution_factor=draw(st.none() | st.floats(1, 1000)),
            )
        meta[well] = m
    signal = st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False)
    rows = [
        {"well": w, "analyte": a, "signal": draw(signal), **meta[w]}
        for a in analytes
        for w in wells
    ]
    table = pd.DataFrame(rows)
    table.insert(0, "study_id", "S")
    table.insert(1, "plate_id", draw(TEXT))
    return fmt, validate_measurements(table)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plate=plates(), layout=st.sampled_from(["grid", "long"]))
def test_any_plate_reads_back_identically(plate, layout):
    fmt, table = plate
    with tempfile.TemporaryDirectory() as tmp:
        write_plate_map(table, Path(tmp, "map.csv"), layout=layout, plate_format=fmt)
        write_reader_matrix(table, Path(tmp, "m.csv"), plate_format=fmt)
        back = read_plate(Path(tmp, "map.csv"), Path(tmp, "m.csv"), study_id="S")
        assert read_reader_matrix(Path(tmp, "m.csv")).attrs["plate_format"] == fmt
    assert_same(back, table)


def test_a_384_well_plate_round_trips_as_16_by_24_grids(tmp_path):
    plate = elisa_plate()
    plate["well"] = plate["well"].map(lambda w: {"H11": "P24", "A01": "I13"}.get(w, w))
    write_plate_map(plate, tmp_path / "map.csv")
    write_reader_matrix(plate, tmp_path / "m.csv")
    lines = (tmp_path / "m.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 17 and lines[0].endswith(",24") and lines[16].startswith("P,")
    back = read_plate(tmp_path / "map.csv", tmp_path / "m.csv", study_id="CRA-EX-001")
    assert_same(back, plate)


def test_reader_matrix_signals_round_trip_exactly(tmp_path):
    plate = elisa_plate(analytes=("IL-6", "IL-8"))
    plate["signal"] = plate["signal"] / 3  # numbers with 17 significant digits
    write_reader_matrix(plate, tmp_path / "m.csv")
    back = read_reader_matrix(tmp_path / "m.csv")
    assert list(back.columns) == ["well", "analyte", "signal", "source_file", "source_row"]
    assert back["signal"].tolist() == plate["signal"].tolist()
    assert back[["well", "analyte"]].values.tolist() == plate[["well", "analyte"]].values.tolist()
    # a workbook keeps 16 significant digits (openpyxl writes %.16g; Excel shows 15)
    write_reader_matrix(plate, tmp_path / "m.xlsx")
    in_book = read_reader_matrix(tmp_path / "m.xlsx")["signal"].to_numpy()
    assert in_book == pytest.approx(plate["signal"].to_numpy(), rel=1e-15)


# --------------------------------------------------------------------------- plate maps


def test_long_and_grid_plate_maps_give_the_same_table(tmp_path):
    plate = elisa_plate()
    write_plate_map(plate, tmp_path / "grid.csv", layout="grid")
    write_plate_map(plate, tmp_path / "long.csv", layout="long")
    grid_map, long_map = (
        read_plate_map(tmp_path / "grid.csv"),
        read_plate_map(tmp_path / "long.csv"),
    )
    drop = ["source_file", "source_row"]
    pd.testing.assert_frame_equal(grid_map.drop(columns=drop), long_map.drop(columns=drop))
    write_reader_matrix(plate, tmp_path / "m.csv")
    from_grid = read_plate(tmp_path / "grid.csv", tmp_path / "m.csv", study_id="S")
    from_long = read_plate(tmp_path / "long.csv", tmp_path / "m.csv", study_id="S")
    pd.testing.assert_frame_equal(from_grid[COMPARED], from_long[COMPARED])


def test_plater_grid_as_spreadsheets_save_it(tmp_path):
    # The fixture has Excel's trailing empty cells and a line of commas between layouts
    # (plater-basics.Rmd); here also lower-case, space-padded row letters (plater trims
    # them), NA cells (plater reads NA as empty) and two blank lines between layouts.
    text = PLATER_MAP.read_text(encoding="utf-8").replace("\nC,", "\n c ,")
    text = text.replace(",,,,,,,,,,,,,\n", "\n\n", 1)
    text = text.replace(
        "E,standard,standard,sample,sample,,", "E,standard,standard,sample,sample,NA,"
    )
    text = text.replace("D,,,D04,", "D,,,NA,")  # donor_id of D03
    plate_map = read_plate_map(write(tmp_path / "map.csv", [text.rstrip("\n")]))
    assert plate_map.attrs["layout"] == "grid" and plate_map.attrs["plate_format"] == 96
    assert len(plate_map) == 32  # 14 standards, 2 blanks, 16 samples
    assert "E05" in {w for _, w in plate_map.attrs["empty_wells"]}
    wells = plate_map.set_index("well")
    assert pd.isna(wells.loc["D03", "donor_id"]) and wells.loc["D04", "donor_id"] == "D04"
    assert tuple(wells.loc["C02", ["sample_type", "standard_concentration", "sample_id"]]) == (
        "standard",
        150.0,
        "STD3",
    )
    assert wells.loc["C02", "source_row"] == 4  # its line in the sample_type layout


def test_a_long_map_may_use_plater_well_names_and_xlsx(tmp_path):
    # plater's tidy output names the well column "Wells" and writes A01; A1 is accepted too.
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Wells", "Sample Type", "Standard Concentration", "concentration_unit"])
    sheet.append(["A1", "standard", 0.5, "ng/mL"])
    sheet.append(["A02", "standard", 500, None])
    sheet.append(["B1", "Blank", None, None])
    book.save(tmp_path / "map.xlsx")
    plate_map = read_plate_map(tmp_path / "map.xlsx")
    assert list(plate_map["well"]) == ["A01", "A02", "B01"]
    assert list(plate_map["source_row"]) == [2, 3, 4]
    matrix = small_matrix(tmp_path, {"A01": 1.5, "A02": 1.4, "B01": 0.05})
    table = read_plate(tmp_path / "map.xlsx", matrix, study_id="S")
    # ng/mL converted; a well without a unit takes standard_unit (pg/mL)
    assert table["standard_concentration"].tolist()[:2] == [500.0, 500.0]


def test_standard_unit_applies_to_wells_without_a_concentration_unit(tmp_path):
    matrix = small_matrix(tmp_path, {"A01": 1.5, "A02": 1.4, "B01": 0.05})
    table = read_plate(small_map(tmp_path), matrix, study_id="S", standard_unit="ng/mL")
    assert table["standard_concentration"].tolist()[:2] == [1e5, 1e5]


def test_an_arbitrary_concentration_unit_is_kept_as_written(tmp_path):
    # Issue 12, item 9: IU/mL does not convert to a mass; the map's wells without a unit
    # (the blank, the samples) take their curve's.
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Wells", "Sample Type", "Standard Concentration", "concentration_unit"])
    sheet.append(["A1", "standard", 0.5, "iu/ml"])
    sheet.append(["A02", "standard", 500, "IU/mL"])
    sheet.append(["B1", "Blank", None, None])
    book.save(tmp_path / "map.xlsx")
    matrix = small_matrix(tmp_path, {"A01": 1.5, "A02": 1.4, "B01": 0.05})
    table = read_plate(tmp_path / "map.xlsx", matrix, study_id="S")
    assert table["standard_concentration"].tolist()[:2] == [0.5, 500.0]
    assert set(table["concentration_unit"]) == {"IU/mL"}
    same = read_plate(small_map(tmp_path), matrix, study_id="S", standard_unit="U/mL")
    assert set(same["concentration_unit"]) == {"U/mL"}


def test_a_grid_blank_sample_type_marks_a_well_empty_whatever_the_reader_saw(tmp_path):
    # The Gen5 fixture holds OVRFLW in G10, a well the plater map leaves blank.
    table = read_plate(PLATER_MAP, GEN5, study_id="S", analyte="IL-6")
    assert len(table) == 32 and "G10" not in set(table["well"])
    assert table["plate_id"].unique().tolist() == ["gen5_il6_od450"]  # the matrix stem
    assert table.set_index("well").loc["H01", "sample_type"] == "blank"


def test_a_long_map_marks_unused_wells_empty(tmp_path):
    lines = [
        "well,sample_type,standard_concentration",
        "A01,standard,100",
        "A02,standard,100",
        "B01,blank,",
        "B02,empty,",
        "B03,,",
    ]
    matrix = small_matrix(tmp_path, {"A01": 1, "A02": 1, "B01": 0.1, "B02": "OVRFLW", "B03": 9})
    table = read_plate(write(tmp_path / "map.csv", lines), matrix, study_id="S")
    assert list(table["well"]) == ["A01", "A02", "B01"]


def test_one_long_map_may_describe_several_plates(tmp_path):
    lines = ["plate_id,well,sample_type,standard_concentration"]
    lines += [f"{p},A01,standard,100" for p in ("plate6", "plate7")] + ["plate7,A02,blank,"]
    plate_map = write(tmp_path / "map.csv", lines)
    matrix = small_matrix(tmp_path, {"A01": 1.0, "A02": 0.1})  # plate7.csv
    table = read_plate(plate_map, matrix, study_id="S")  # the plate named like the file
    assert set(table["plate_id"]) == {"plate7"} and list(table["well"]) == ["A01", "A02"]
    with pytest.raises(InputError) as err:
        read_plate(plate_map, matrix, study_id="S", plate_id="plate9")
    names(err.value, file=plate_map, field="plate_id")


def test_plate_id_is_the_matrix_stem_unless_given(tmp_path):
    matrix = small_matrix(tmp_path, {"A01": 1.5, "A02": 1.4, "B01": 0.05})
    assert set(read_plate(small_map(tmp_path), matrix, study_id="S")["plate_id"]) == {"plate7"}
    given_id = read_plate(small_map(tmp_path), matrix, study_id="S", plate_id="P-7")
    assert set(given_id["plate_id"]) == {"P-7"}
    assert set(read_plate(small_map(tmp_path), matrix, study_id=None)["study_id"]) == {"unassigned"}


def test_a_plate_map_dataframe_is_accepted(tmp_path):
    matrix = small_matrix(tmp_path, {"A01": 1.5, "A02": 1.4, "B01": 0.05})
    frame = pd.DataFrame(
        {
            "well": ["A1", "A2", "B1"],
            "sample_type": ["standard"] * 2 + ["blank"],
            "standard_concentration": [100, 100, None],
        }
    )
    from_frame = read_plate(frame, matrix, study_id="S")
    from_file = read_plate(small_map(tmp_path), matrix, study_id="S")
    pd.testing.assert_frame_equal(from_frame[COMPARED], from_file[COMPARED])
    again = read_plate(read_plate_map(small_map(tmp_path)), matrix, study_id="S")
    pd.testing.assert_frame_equal(again[COMPARED], from_file[COMPARED])


# --------------------------------------------------------------------------- reader matrices


def test_gen5_text_export(tmp_path):
    # Preamble, "Results", an empty top-left cell, the read label right of every row; CRLF.
    lines = GEN5.read_text(encoding="cp1252").splitlines()
    clean = write(tmp_path / "gen5.txt", [ln.replace("OVRFLW", "0.044") for ln in lines])
    table = read_reader_matrix(clean, analyte="IL-6")
    assert len(table) == 96 and set(table["analyte"]) == {"IL-6"}
    assert table.loc[0].to_dict() == {
        "well": "A01",
        "analyte": "IL-6",
        "signal": 2.412,
        "source_file": str(clean),
        "source_row": 30,
    }
    assert table.attrs["plate_format"] == 96


def test_skanit_style_workbook_with_a_unit_in_the_corner(tmp_path):
    # SkanIt: title lines, then a grid whose top-left cell is the unit (RLU) and whose
    # column numbers are stored as 1.0, 2.0, ...
    book = openpyxl.Workbook()
    sheet = book.active
    for title in (
        "Measurement results",
        "experiment.skax",
        " ",
        "Luminescence 1",
        " ",
        "Plate 1",
        " ",
    ):
        sheet.append([title])
    sheet.append(["RLU", *[float(k) for k in range(1, 13)]])
    for r in range(8):
        sheet.append([chr(ord("A") + r), *[100.0 * (r + 1) + c for c in range(12)]])
    book.save(tmp_path / "skanit.xlsx")
    table = read_reader_matrix(tmp_path / "skanit.xlsx", analyte="IL-6")
    assert set(table["analyte"]) == {"IL-6"} and table["signal"].iat[13] == 201.0
    assert table["source_row"].iat[0] == 9
    assert set(read_reader_matrix(tmp_path / "skanit.xlsx")["analyte"]) == {"RLU"}


def test_a_block_may_be_named_on_the_line_above(tmp_path):
    lines = ["Analyte: IL-6", *grid("", {"A01": 1.0})]
    lines += ["", "IL-8", *grid("<>", {"A01": 2.0})]  # Tecan writes <> in the corner
    matrix = write(tmp_path / "m.csv", lines)
    assert read_reader_matrix(matrix)["analyte"].tolist() == ["IL-6", "IL-8"]
    only = read_reader_matrix(matrix, analyte="IL-8")  # several blocks: analyte selects
    assert only[["analyte", "signal"]].values.tolist() == [["IL-8", 2.0]]


def test_tab_and_semicolon_files_with_decimal_commas(tmp_path):
    for sep in ("\t", ";"):
        matrix = write(
            tmp_path / "m.txt", grid("IL-6", {"A01": "0,105", "H12": "1,5E+01"}, sep=sep)
        )
        assert read_reader_matrix(matrix)["signal"].tolist() == [0.105, 15.0]


def test_blank_and_na_cells_are_no_reading(tmp_path):
    matrix = write(tmp_path / "m.csv", grid("IL-6", {"A01": 1.0, "A02": "NA", "A03": "NaN"}))
    assert read_reader_matrix(matrix)["well"].tolist() == ["A01"]


# --------------------------------------------------------------------------- errors
# Each bad input is an InputError naming the file, the 1-based line, the well and the field.


@pytest.mark.parametrize(
    ("header", "n_rows", "row", "field"),
    [
        ("IL-6," + ",".join(map(str, range(1, 11))), 8, 1, "plate_format"),  # 8 x 10
        ("IL-6," + ",".join(map(str, range(1, 13))), 9, 1, "plate_format"),  # 9 x 12 (A-I)
        ("IL-6," + ",".join(map(str, range(1, 13))), 7, 1, "plate_format"),  # 7 x 12 (A-G)
        ("IL-6," + ",".join(map(str, range(1, 17))), 16, 1, "plate_format"),  # 16 x 16
    ],
)
def test_a_grid_that_is_not_8x12_or_16x24(tmp_path, header, n_rows, row, field):
    n_cols = len(header.split(",")) - 1
    lines = [header] + [",".join([chr(ord("A") + r)] + ["0.1"] * n_cols) for r in range(n_rows)]
    path = write(tmp_path / "m.csv", lines)
    with pytest.raises(InputError, match="not a plate") as err:
        read_reader_matrix(path)
    names(err.value, file=path, row=row, field=field)


def test_row_letters_out_of_order(tmp_path):
    lines = grid("IL-6", {"A01": 1.0})
    lines[2], lines[3] = lines[3], lines[2]  # A, C, B, ...
    path = write(tmp_path / "m.csv", lines)
    with pytest.raises(InputError, match="row letters out of order") as err:
        read_reader_matrix(path)
    names(err.value, file=path, row=3, field="row")


def test_a_row_letter_missing(tmp_path):
    lines = grid("IL-6", {"A01": 1.0, "D05": 0.7})
    lines[4] = lines[4][1:]  # row D without its letter
    path = write(tmp_path / "m.csv", lines)
    with pytest.raises(InputError, match="where row D belongs") as err:
        read_reader_matrix(path)
    names(err.value, file=path, row=5, field="row")


def test_gen5_reads_interleaved_in_one_table_are_refused(tmp_path):
    # endpoint_wavelength_measurement_labels.txt: a second line per row, without a letter
    lines = ["Results", "\t" + "\t".join(map(str, range(1, 13)))]
    for r in range(8):
        lines += [
            "\t".join([chr(65 + r), *["0.1"] * 12, "280"]),
            "\t".join(["", *["0.2"] * 12, "325"]),
        ]
    path = write(tmp_path / "gen5.txt", lines)
    with pytest.raises(InputError, match="several reads interleaved") as err:
        read_reader_matrix(path, analyte="IL-6")
    names(err.value, file=path, row=4, field="row")


@pytest.mark.parametrize(
    ("numbers", "message"),
    [
        ([1, 2, 4, 3, *range(5, 13)], "'4' where column 3 belongs"),
        ([1, 2, 3, "", *range(5, 13)], "a blank cell where column 4 belongs"),
    ],
)
def test_column_numbers_out_of_order_or_missing(tmp_path, numbers, message):
    lines = grid("IL-6", {"A01": 1.0})
    lines[0] = ",".join(["IL-6", *map(str, numbers)])
    path = write(tmp_path / "m.csv", lines)
    with pytest.raises(InputError, match=message) as err:
        read_reader_matrix(path)
    names(err.value, file=path, row=1, field="column")


def test_values_right_of_the_grid(tmp_path):
    lines = grid("IL-6", {"A01": 1.0})
    lines[2] += ",0.7"  # a 13th value in row B only: not a read label
    path = write(tmp_path / "m.csv", lines)
    with pytest.raises(InputError, match="beyond column 12") as err:
        read_reader_matrix(path)
    names(err.value, file=path, row=3, field="column")


@pytest.mark.parametrize("text", ["OVRFLW", "1.2.3", "<0.05"])
def test_a_non_numeric_signal_names_the_well(tmp_path, text):
    path = small_matrix(tmp_path, {"A01": 1.0, "C07": text})
    with pytest.raises(InputError, match="is not a number") as err:
        read_reader_matrix(path)
    names(err.value, file=path, row=4, well="C07", field="signal")


def test_a_negative_signal_names_the_well(tmp_path):
    path = small_matrix(tmp_path, {"A01": 1.0, "H12": -0.003})
    with pytest.raises(InputError, match="negative") as err:
        read_reader_matrix(path)
    names(err.value, file=path, row=9, well="H12", field="signal")


def test_a_non_numeric_signal_in_a_used_well_stops_read_plate(tmp_path):
    path = small_matrix(tmp_path, {"A01": "OVRFLW", "A02": 1.0, "B01": 0.1})
    with pytest.raises(InputError, match="saturated") as err:
        read_plate(small_map(tmp_path), path, study_id="S")
    names(err.value, file=path, row=2, well="A01", field="signal")


def test_duplicate_blocks_in_a_matrix(tmp_path):
    path = write(tmp_path / "m.csv", [*grid("IL-6", {"A01": 1}), "", *grid("IL-6", {"A01": 2})])
    with pytest.raises(InputError, match="two blocks are named 'IL-6'") as err:
        read_reader_matrix(path)
    names(err.value, file=path, row=11, field="analyte")


def test_duplicate_layouts_in_a_grid_plate_map(tmp_path):
    lines = [*grid("sample_type", {"A01": "blank"}), "", *grid("Sample Type", {"A01": "blank"})]
    path = write(tmp_path / "map.csv", lines)
    with pytest.raises(InputError, match="two blocks are named 'sample_type'") as err:
        read_plate_map(path)
    names(err.value, file=path, row=11, field="layout name")


def test_an_unnamed_block_needs_the_analyte(tmp_path):
    path = write(tmp_path / "m.csv", grid("", {"A01": 1.0}))
    with pytest.raises(InputError, match="does not name its analyte") as err:
        read_reader_matrix(path)
    names(err.value, file=path, row=1, field="analyte")


def test_duplicate_wells_in_a_long_plate_map(tmp_path):
    path = write(tmp_path / "map.csv", ["well,sample_type", "A01,blank", "B01,blank", "a1,blank"])
    with pytest.raises(InputError, match=r"appears twice .*first at line 2") as err:
        read_plate_map(path)
    names(err.value, file=path, row=4, well="A01", field="well")


def test_a_well_with_values_but_no_sample_type(tmp_path):
    lines = [*grid("sample_type", {"A01": "blank"}), "", *grid("donor_id", {"B05": "D01"})]
    path = write(tmp_path / "map.csv", lines)
    with pytest.raises(InputError, match="has a donor_id but no sample type") as err:
        read_plate_map(path)
    names(err.value, file=path, row=3, well="B05", field="sample_type")


def test_an_unknown_sample_type_names_its_layout_line(tmp_path):
    lines = [*grid("donor_id", {"A01": "D01"}), "", *grid("sample_type", {"A01": "unknown"})]
    path = write(tmp_path / "map.csv", lines)
    with pytest.raises(SchemaError, match="unknown sample type") as err:
        read_plate_map(path)
    names(err.value, file=path, row=12, well="A01", field="sample_type")


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        ("concentration_unit", "pg/furlong", "unknown concentration unit"),
        ("concentration_unit", "nM", "molar unit"),
        ("treatment_unit", "spoonfuls", "unknown concentration unit"),
    ],
)
def test_unknown_units(tmp_path, column, value, match):
    lines = [
        f"well,sample_type,standard_concentration,{column}",
        "A01,standard,100,",
        f"A02,standard,100,{value}",
    ]
    path = write(tmp_path / "map.csv", lines)
    with pytest.raises(UnitError, match=match) as err:
        read_plate_map(path)
    names(err.value, file=path, row=3, well="A02", field=column)


def test_an_unknown_standard_unit_argument(tmp_path):
    matrix = small_matrix(tmp_path, {"A01": 1.5, "A02": 1.4, "B01": 0.05})
    with pytest.raises(UnitError) as err:
        read_plate(small_map(tmp_path), matrix, study_id="S", standard_unit="pg/furlong")
    assert err.value.field == "standard_unit"


def test_a_384_well_map_on_a_96_well_matrix(tmp_path):
    plate_map = small_map(tmp_path, wells=("A01", "A02", "I13"))
    matrix = small_matrix(tmp_path, {"A01": 1.5, "A02": 1.4})
    with pytest.raises(InputError, match="which the 96-well reader matrix") as err:
        read_plate(plate_map, matrix, study_id="S")
    names(err.value, file=plate_map, row=4, well="I13", field="well")


def test_a_384_well_grid_map_on_a_96_well_matrix(tmp_path):
    plate_map = write(tmp_path / "map.csv", grid("sample_type", {"A01": "blank"}, fmt=384))
    matrix = small_matrix(tmp_path, {"A01": 0.05})
    with pytest.raises(InputError, match="384-well layout") as err:
        read_plate(plate_map, matrix, study_id="S")
    names(err.value, file=plate_map, field="plate_format")


def test_a_blank_matrix_cell_where_the_map_expects_a_sample(tmp_path):
    matrix = small_matrix(tmp_path, {"A01": 1.5, "B01": 0.05})  # A02 not read
    with pytest.raises(InputError, match="no reading for analyte IL-6") as err:
        read_plate(small_map(tmp_path), matrix, study_id="S")
    names(err.value, file=matrix, row=2, well="A02", field="signal")


def test_a_blank_cell_in_one_analyte_block_only(tmp_path):
    matrix = write(
        tmp_path / "plate7.csv",
        [*grid("IL-6", {"A01": 1, "A02": 1, "B01": 0}), "", *grid("IL-8", {"A01": 1, "B01": 0})],
    )
    with pytest.raises(InputError, match="no reading for analyte IL-8") as err:
        read_plate(small_map(tmp_path), matrix, study_id="S")
    names(err.value, file=matrix, row=12, well="A02", field="signal")


def test_a_reading_in_a_well_the_map_does_not_mention(tmp_path):
    matrix = small_matrix(tmp_path, {"A01": 1.5, "A02": 1.4, "B01": 0.05, "E05": 0.04})
    with pytest.raises(InputError, match="does not say what it holds") as err:
        read_plate(small_map(tmp_path), matrix, study_id="S")
    names(err.value, file=matrix, row=6, well="E05", field="well")


def test_a_negative_reading_in_a_used_well_stops_read_plate(tmp_path):
    matrix = small_matrix(tmp_path, {"A01": 1.5, "A02": 1.4, "B01": -0.004})
    with pytest.raises(InputError, match="below zero") as err:
        read_plate(small_map(tmp_path), matrix, study_id="S")
    names(err.value, file=matrix, row=3, well="B01", field="signal")


# --------------------------------------------------------------------------- the join


def readings_of(plate: pd.DataFrame, source: str = "plate7.csv") -> pd.DataFrame:
    """A plate's signals as the table of readings join_plate_map takes."""
    return pd.DataFrame(
        {
            "well": plate["well"],
            "analyte": plate["analyte"],
            "signal": plate["signal"],
            "problem": None,
            "source_file": source,
            "source_row": pd.array([pd.NA] * len(plate), dtype="Int64"),
        }
    )


def test_read_plate_is_the_matrix_readings_joined_to_the_map(tmp_path):
    plate = elisa_plate(analytes=("IL-6", "IL-8"))
    write_plate_map(plate, tmp_path / "map.csv")
    write_reader_matrix(plate, tmp_path / "matrix.csv")
    from_files = read_plate(tmp_path / "map.csv", tmp_path / "matrix.csv", study_id="CRA-EX-001")
    joined = join_plate_map(readings_of(plate), tmp_path / "map.csv", study_id="CRA-EX-001")
    assert list(READING_COLUMNS) == list(readings_of(plate).columns)
    assert_same(joined, from_files)
    assert_same(joined, plate)
    assert joined["plate_map_row"].notna().all()
    assert joined["source_file"].eq("plate7.csv").all() and joined["source_row"].isna().all()


def test_the_join_keeps_extras_and_the_map_names_the_samples(tmp_path):
    plate = elisa_plate()
    write_plate_map(plate, tmp_path / "map.csv")
    readings = readings_of(plate).assign(sample_id="from the file", wavelength_nm=450.0)
    table = join_plate_map(readings, tmp_path / "map.csv", study_id="S")
    assert table["sample_id"].tolist() == plate["sample_id"].tolist()
    assert (table["wavelength_nm"] == 450.0).all()
    assert list(table.columns).index("wavelength_nm") > list(table.columns).index("plate_map_row")


def test_the_join_reads_the_plate_the_map_names_from_readings_of_several(tmp_path):
    plate = elisa_plate(plate_id="P2")
    write_plate_map(plate, tmp_path / "map.csv")
    other = readings_of(plate).assign(plate_id="P1", signal=9.0)
    readings = pd.concat([other, readings_of(plate).assign(plate_id="P2")], ignore_index=True)
    table = join_plate_map(readings, tmp_path / "map.csv", study_id="CRA-EX-001")
    assert_same(table, plate)
    two = readings_of(plate.iloc[:1]).assign(plate_id=["P1"], signal=[9.0])
    two = pd.concat([two, two.assign(plate_id="P2", signal=8.0)], ignore_index=True)
    long_map = write(tmp_path / "long.csv", ["well,sample_type", "A01,blank"])
    with pytest.raises(InputError, match="holds plates P1, P2") as err:
        join_plate_map(two, long_map, study_id="S")
    names(err.value, file="plate7.csv", field="plate_id")
    named = join_plate_map(two, long_map, study_id="S", plate_id="P1")
    assert named["plate_id"].unique().tolist() == ["P1"] and named["signal"].tolist() == [9.0]


def test_the_join_refuses_a_problem_only_where_the_map_uses_the_well(tmp_path):
    plate = elisa_plate()
    write_plate_map(plate, tmp_path / "map.csv")
    readings = readings_of(plate)
    unused = pd.DataFrame(
        {"well": ["A12"], "analyte": ["IL-6"], "signal": [np.nan], "problem": ["OVRFLW"]}
    ).assign(source_file="plate7.csv", source_row=pd.NA)
    # A12 is blank in the grid map: empty, so whatever the reader saw there is moot.
    assert len(join_plate_map(pd.concat([readings, unused]), tmp_path / "map.csv", study_id="S"))
    used = readings.assign(problem=np.where(readings["well"] == "B01", "OVRFLW", None))
    with pytest.raises(InputError, match=r"OVRFLW \(analyte IL-6\)") as err:
        join_plate_map(used, tmp_path / "map.csv", study_id="S")
    names(err.value, file="plate7.csv", well="B01", field="signal")
    nothing = readings.assign(
        signal=np.where(readings["well"] == "C03", np.nan, readings["signal"])
    )
    with pytest.raises(InputError, match="no reading for analyte IL-6, but the plate map") as err:
        join_plate_map(nothing, tmp_path / "map.csv", study_id="S")
    names(err.value, file="plate7.csv", well="C03", field="signal")
    with pytest.raises(InputError, match="no reading for analyte IL-6") as err:
        join_plate_map(readings[readings["well"] != "D04"], tmp_path / "map.csv", study_id="S")
    names(err.value, file="plate7.csv", well="D04", field="signal")


def test_the_join_stores_a_negative_signal_as_zero_only_when_told(tmp_path):
    from cytosafe.errors import DataWarning

    plate = elisa_plate()
    write_plate_map(plate, tmp_path / "map.csv")
    readings = readings_of(plate)
    readings.loc[readings["well"] == "H01", "signal"] = -0.002
    with pytest.raises(InputError, match="below zero") as err:
        join_plate_map(readings, tmp_path / "map.csv", study_id="S")
    names(err.value, file="plate7.csv", well="H01", field="signal")
    with pytest.warns(DataWarning, match=r"1 reading\(s\) below zero stored as 0.0.*H01 IL-6"):
        table = join_plate_map(readings, tmp_path / "map.csv", study_id="S", below_zero="zero")
    assert table.set_index("well").loc["H01", "signal"] == 0.0


@pytest.mark.parametrize("column", ["signal", "analyte", "study_id"])
def test_a_plate_map_cannot_set_what_the_reader_knows(tmp_path, column):
    path = write(tmp_path / "map.csv", [f"well,sample_type,{column}", "A01,blank,1"])
    with pytest.raises(InputError, match=f"cannot set '{column}'") as err:
        read_plate_map(path)
    names(err.value, file=path, row=1, field=column)


def test_a_grid_plate_map_holds_layouts_only(tmp_path):
    path = write(tmp_path / "map.csv", [*grid("sample_type", {"A01": "blank"}), "notes: x"])
    with pytest.raises(InputError, match="not part of a plate-shaped layout") as err:
        read_plate_map(path)
    names(err.value, file=path, row=10)


def test_a_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found") as err:
        read_reader_matrix(tmp_path / "nope.csv")
    names(err.value, file=tmp_path / "nope.csv")


def test_writers_refuse_two_plates_and_write_nothing(tmp_path):
    both = pd.concat([elisa_plate("P1"), elisa_plate("P2")], ignore_index=True)
    for writer in (write_plate_map, write_reader_matrix):
        with pytest.raises(InputError, match="holds 2 plates") as err:
            writer(both, tmp_path / "out.csv")
        assert err.value.field == "plate_id"
    assert list(tmp_path.iterdir()) == []


def test_a_plate_map_needs_one_value_per_well_across_analytes(tmp_path):
    plate = elisa_plate(analytes=("IL-6", "IL-8"))
    plate.loc[(plate["analyte"] == "IL-8") & (plate["well"] == "C03"), "donor_id"] = "D99"
    with pytest.raises(InputError, match="differ between analytes") as err:
        write_plate_map(plate, tmp_path / "map.csv")
    assert (err.value.well, err.value.field) == ("C03", "donor_id")
    assert not (tmp_path / "map.csv").exists()


def test_nothing_partial_is_returned_on_a_late_error(tmp_path):
    # The bad cell is the very last one; the reader raises instead of returning 95 wells.
    values = {well_name(r, c): 0.1 for r in range(8) for c in range(12)}
    values["H12"] = "x"
    path = small_matrix(tmp_path, values)
    with pytest.raises(InputError) as err:
        read_reader_matrix(path)
    names(err.value, file=path, row=9, well="H12", field="signal")
