"""The reader contract, run over every registered reader (``cytosafe.io.READERS``).

Like scikit-learn's ``check_estimator``: a reader added to the registry is covered by
these tests without a line here. Each reader must

* declare the contract (``NAME``, ``DESCRIPTION``, ``sniff``, ``parse`` with the keyword
  options ``study_id``, ``plate_id``, ``standard_unit``);
* round-trip a measurement table through its writer: written in the vendor layout,
  recognised by :func:`cytosafe.io.detect_format` as its own, read back by
  :func:`cytosafe.io.read` with the same values in the measurement columns;
* refuse bad input with an :class:`~cytosafe.errors.InputError` naming the file and the
  row where the bad value is;
* return the schema's columns (:data:`cytosafe.schema.MEASUREMENT_COLUMNS`), validated.

A reader without a writer must be listed in :data:`NO_WRITER` with the reason; it is then
exempt from the writer-based tests, never silently skipped.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytosafe.errors import InputError
from cytosafe.io import READERS, Probe, detect_format, get_reader, read, read_plate
from cytosafe.io.platemap import read_plate as read_matrix_plate
from cytosafe.io.registry import READER_MODULES
from cytosafe.schema import MEASUREMENT_COLUMNS, validate_measurements

#: Readers without a writer: name -> why the vendor layout has none. Empty today: every
#: registered reader writes its layout.
NO_WRITER: dict[str, str] = {}

#: Readers whose files have no rows: name -> why; their errors name the well instead (the
#: house rule is "file, row or well, and field"), and the test checks it is the bad well.
LOCATED_BY_WELL: dict[str, str] = {
    "asm": "ASM JSON is a document tree, not a table of lines: a reading is found by its "
    "plate and well",
}

#: One signal the bad-input test finds in the written file and spoils.
MARKER = 4321.125
MARKER_WELL = "B04"  # where plate_table() puts it
STUDY = "CRA-CONTRACT"
PLATE = "P-CONTRACT"
COMPARED = ["sample_type", "signal", "standard_concentration", "dilution_factor"]

NAMES = sorted(READERS)
WRITERS = [n for n in NAMES if n not in NO_WRITER]


def plate_table() -> pd.DataFrame:
    """One plate, two analytes: 7 standards and 2 blanks, a kit control, 4 samples at 1:2,
    each in duplicate; ``MARKER`` is one sample's signal."""
    rows = []
    for a, analyte in enumerate(("IL-6", "TNF")):
        scale = 1.0 + a

        def add(well, stype, signal, conc=np.nan, sid=None, dil=1.0, analyte=analyte):
            rows.append(
                {
                    "study_id": STUDY,
                    "plate_id": PLATE,
                    "well": well,
                    "analyte": analyte,
                    "sample_type": stype,
                    "standard_concentration": conc,
                    "signal": signal,
                    "dilution_factor": dil,
                    "sample_id": sid,
                }
            )

        for k in range(7):
            conc = 10000.0 / 4**k
            for r in (1, 2):
                add(
                    f"{'ABCDEFG'[k]}0{r}", "standard", round(30000.0 / (k + 1) * scale + r, 3), conc
                )
        add("H01", "blank", 19.5 * scale)
        add("H02", "blank", 20.5 * scale)
        for r in (1, 2):
            add(f"H0{2 + r}", "control", 812.25 * scale + r, 400.0, "Control1")
        for n, sid in enumerate(("D1-MED", "D1-CD3", "D2-MED", "D2-CD3")):
            for r in (1, 2):
                signal = (
                    MARKER if (analyte, n, r) == ("IL-6", 1, 2) else 150.5 * (n + 1) * scale + r
                )
                add(f"{'ABCD'[n]}0{2 + r}", "sample", signal, sid=sid, dil=2.0)
    return pd.DataFrame(rows)


def written(name: str, folder: Path) -> Path:
    """``plate_table()`` written by reader ``name``'s writer, named with its first suffix."""
    reader = get_reader(name)
    suffix = getattr(reader, "SUFFIXES", ("",))[0]
    path = folder / f"contract_{name}{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # writers' notes on what the layout cannot hold
        reader.write(plate_table(), path)
    return path


def read_quietly(path: Path, **options) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the readers' DataWarnings are tested with them
        return read(path, **options)


# --------------------------------------------------------------------------- declaration


def test_the_registry_holds_every_reader_module_once():
    assert list(READERS) == [m.NAME for m in READER_MODULES]
    assert len(set(READERS)) == len(READER_MODULES)


@pytest.mark.parametrize("name", NAMES)
def test_reader_declares_the_contract(name):
    reader = READERS[name]
    assert reader.NAME == name
    assert isinstance(reader.DESCRIPTION, str) and reader.DESCRIPTION
    assert callable(reader.sniff) and callable(reader.parse)
    params = inspect.signature(reader.parse).parameters
    for option in ("study_id", "plate_id", "standard_unit"):
        assert option in params, f"{name}.parse lacks {option}="
        assert params[option].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[option].default is None, f"{name}.parse: {option} must default to None"
    assert callable(getattr(reader, "write", None)) or name in NO_WRITER, (
        f"reader {name} has no write(): give it one, or list it in NO_WRITER with the reason"
    )


def test_exemptions_name_registered_readers_only():
    assert set(NO_WRITER) <= set(READERS)
    assert set(LOCATED_BY_WELL) <= set(READERS)


def test_an_unknown_reader_name_lists_the_known_ones():
    with pytest.raises(InputError, match="unknown export format 'nope'") as info:
        get_reader("nope")
    assert all(name in str(info.value) for name in READERS)
    with pytest.raises(InputError, match="unknown export format"):
        read(Path(__file__), format="nope")


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("name", WRITERS)
def test_writer_output_is_recognised_as_its_own_format(name, tmp_path):
    path = written(name, tmp_path)
    assert READERS[name].sniff(Probe.of(path))
    assert detect_format(path) == name


@pytest.mark.parametrize("name", WRITERS)
def test_round_trip_through_the_writer_keeps_the_measurements(name, tmp_path):
    table = validate_measurements(plate_table())
    back = read_quietly(written(name, tmp_path), study_id=STUDY)
    key = ["plate_id", "well", "analyte"]
    want = table.set_index(key).sort_index()
    got = back.set_index(key).sort_index()
    assert got.index.equals(want.index), f"{name}: other wells or analytes came back"
    assert (got["study_id"] == STUDY).all()
    assert got["sample_type"].astype(str).tolist() == want["sample_type"].astype(str).tolist()
    np.testing.assert_array_equal(got["signal"], want["signal"])
    np.testing.assert_allclose(
        got["standard_concentration"].where(want["sample_type"] == "standard"),
        want["standard_concentration"].where(want["sample_type"] == "standard"),
        rtol=1e-12,
    )
    np.testing.assert_allclose(got["dilution_factor"], want["dilution_factor"], rtol=1e-12)


@pytest.mark.parametrize("name", WRITERS)
def test_the_schema_columns_come_out_validated(name, tmp_path):
    back = read_quietly(written(name, tmp_path))
    schema = [c.name for c in MEASUREMENT_COLUMNS]
    assert list(back.columns[: len(schema)]) == schema
    again = validate_measurements(back)
    pd.testing.assert_frame_equal(again[schema], back[schema])


@pytest.mark.parametrize("name", WRITERS)
def test_the_keyword_options_mean_the_same_for_every_reader(name, tmp_path):
    path = written(name, tmp_path)
    back = read_quietly(path, format=name, study_id="S-9", plate_id="P-9", standard_unit="pg/mL")
    assert set(back["study_id"]) == {"S-9"}
    assert set(back["plate_id"]) == {"P-9"}
    assert set(back["source_file"]) == {str(path)}


# --------------------------------------------------------------------------- bad input


def spoil(path: Path) -> None:
    """Replace the cell that holds ``MARKER`` with text that is not a number."""
    if path.suffix.lower() in {".xlsx", ".xlsm"}:
        import openpyxl

        book = openpyxl.load_workbook(path)
        hits = 0
        for sheet in book.worksheets:
            for row in sheet.iter_rows():
                for cell in row:
                    if cell.value == MARKER or cell.value == repr(MARKER):
                        cell.value = "abc"
                        hits += 1
        book.save(path)
    else:
        text = path.read_text(encoding="utf-8-sig")
        hits = text.count(repr(MARKER))
        path.write_text(text.replace(repr(MARKER), '"abc"'), encoding="utf-8")
    assert hits, f"the marker signal {MARKER} is not in {path.name}"


def row_holds_the_spoiled_cell(path: Path, row: int) -> bool:
    if path.suffix.lower() in {".xlsx", ".xlsm"}:
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True)
        try:
            return any(
                "abc" in [c for c in next(s.iter_rows(min_row=row, max_row=row, values_only=True))]
                for s in book.worksheets
                if s.max_row and s.max_row >= row
            )
        finally:
            book.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    return 0 < row <= len(lines) and "abc" in lines[row - 1]


@pytest.mark.parametrize("name", WRITERS)
def test_bad_input_names_the_file_and_the_row(name, tmp_path):
    path = written(name, tmp_path)
    spoil(path)
    with pytest.raises(InputError) as info:
        read_quietly(path, format=name, study_id=STUDY)
    err = info.value
    assert path.name in str(err), f"{name}: the error does not name the file: {err}"
    if name in LOCATED_BY_WELL:
        assert err.well == MARKER_WELL and f"well {MARKER_WELL}" in str(err), (
            f"{name}: the error does not name the bad well {MARKER_WELL}: {err}"
        )
        return
    assert err.row is not None and f"row {err.row}" in str(err), (
        f"{name}: the error does not name the row: {err}"
    )
    assert row_holds_the_spoiled_cell(path, err.row), f"{name}: row {err.row} is not the bad one"


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_file_is_named(name, tmp_path):
    with pytest.raises(InputError, match="not found") as info:
        read(tmp_path / "nowhere.dat", format=name)
    assert "nowhere.dat" in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_sniff_does_not_claim_a_plate_map(name):
    plate_map = Path(__file__).parent / "fixtures" / "platemap" / "il6_plate_map_plater.csv"
    assert not READERS[name].sniff(Probe.of(plate_map))


# --------------------------------------------------------------------------- closing steps


def test_read_validates_with_a_sample_map_too(tmp_path):
    """Every reader's table is validated after the sample-map join, whichever reader."""
    path = written("tidy", tmp_path)
    smap = pd.DataFrame(
        {"sample_id": ["D1-MED", "D1-CD3", "D2-MED", "D2-CD3", "Control1"],
         "treatment_role": ["negative_control", "positive_control", "negative_control",
                            "bogus", None]}
    )  # fmt: skip
    with pytest.raises(InputError, match="unknown treatment role 'bogus'"):
        read(path, sample_map=smap)


def test_a_sample_map_may_supply_what_the_export_lacks(tmp_path):
    """Validation runs after the join: a standard's concentration may come from the map."""
    table = plate_table()
    table.loc[table["sample_type"] == "standard", "standard_concentration"] = np.nan
    table.loc[table["sample_type"] == "standard", "sample_type"] = "sample"
    table.loc[table["sample_id"].isna() & (table["sample_type"] == "sample"), "sample_id"] = (
        "STD-" + table["well"]
    )
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    wells = sorted(table.loc[table["sample_id"].str.startswith("STD-", na=False), "well"].unique())
    smap = pd.DataFrame(
        {
            "sample_id": ["STD-" + w for w in wells]
            + ["D1-MED", "D1-CD3", "D2-MED", "D2-CD3", "Control1"],
            "sample_type": ["standard"] * len(wells) + [None] * 5,
            "standard_concentration": [1000.0] * len(wells) + [None] * 5,
        }
    )
    got = read(path, sample_map=smap)
    assert (got["sample_type"] == "standard").sum() == len(wells) * 2


def test_warnings_come_after_a_valid_read_only(tmp_path):
    """A reader's warnings wait in attrs until the table is valid (xPONENT's skipped wells)."""
    table = plate_table()
    path = get_reader("xponent").write(table[table["analyte"] == "IL-6"], tmp_path / "x.csv")
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(repr(MARKER), "NaN", 1), encoding="utf-8")
    with pytest.warns(Warning, match="no Median"):
        got = read(path)
    assert "warnings" not in got.attrs and got.attrs["skipped"]


@pytest.mark.parametrize("reader", ["reader matrix", "plate-reader export"])
def test_read_plate_ends_through_the_same_closing_steps(reader):
    """Both joins of a plate map (:func:`cytosafe.io.platemap.join_plate_map`): the Gen5
    export's grid read as a reader matrix, and the export itself, which
    :func:`cytosafe.io.read_plate` sends through ASM (whose readings have no lines: the
    ``LOCATED_BY_WELL`` exemption; the plate map's line locates every well)."""
    fixtures = Path(__file__).parent / "fixtures" / "platemap"
    if reader == "reader matrix":
        join = read_matrix_plate
    else:
        join = read_plate
    got = join(
        fixtures / "il6_plate_map_plater.csv",
        fixtures / "gen5_il6_od450.txt",
        study_id="S",
        analyte="IL-6",
    )
    schema = [c.name for c in MEASUREMENT_COLUMNS]
    assert list(got.columns[: len(schema)]) == schema
    pd.testing.assert_frame_equal(validate_measurements(got)[schema], got[schema])
    assert got["source_file"].notna().all() and got["plate_map_row"].notna().all()
    if reader == "reader matrix":
        assert got["source_row"].notna().all()
    else:
        assert got["source_row"].isna().all()
