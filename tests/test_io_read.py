"""``cytosafe.io.read``: one entry point that recognises each export by its content."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

from cytosafe.errors import InputError
from cytosafe.io import detect_format, read, read_bioplex, read_msd, read_tidy, read_xponent
from real_exports import real

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("tidy-data-4.csv", "msd"),
        ("pone.0187901.s001.csv", "xponent"),
        ("Flexmap_v433091_V540cLIA_NB-swarupap-5107580-0033_20241018_102647 (002) (3).csv",
         "xponent"),
        ("pnLINCO20070302A.xls", "bioplex"),
        ("10JAN07_plate_1.xls", "bioplex"),
    ],
)  # fmt: skip
def test_real_exports_are_recognised_whatever_their_name(tmp_path, name, fmt):
    # The extension says little (.csv is MSD, xPONENT or tidy): the content decides, so a
    # renamed file is still recognised.
    renamed = tmp_path / "export.dat"
    shutil.copy(real(name), renamed)
    assert detect_format(real(name)) == fmt
    assert detect_format(renamed) == fmt


def test_read_gives_what_the_format_reader_gives():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the readers' DataWarnings are tested with them
        pairs = [
            (read(real("tidy-data-4.csv")), read_msd(real("tidy-data-4.csv"))),
            (read(real("pnLINCO20070302A.xls")), read_bioplex(real("pnLINCO20070302A.xls"))),
            (read(FIXTURES / "xponent" / "small_plate.csv"),
             read_xponent(FIXTURES / "xponent" / "small_plate.csv")),
        ]  # fmt: skip
    for got, want in pairs:
        pd.testing.assert_frame_equal(got, want)


def test_a_tidy_table_round_trips_through_read(tmp_path):
    msd = read_msd(FIXTURES / "msd" / "two_plates.csv", study_id="CRA-9")
    path = tmp_path / "tidy.csv"
    from cytosafe.io import write_tidy

    write_tidy(msd, path)
    assert detect_format(path) == "tidy"
    got = read(path, study_id="CRA-10")
    assert (got["study_id"] == "CRA-10").all()
    pd.testing.assert_frame_equal(
        got.drop(columns=["study_id", "source_file", "source_row", "origin_file", "origin_row"]),
        read_tidy(path).drop(
            columns=["study_id", "source_file", "source_row", "origin_file", "origin_row"]
        ),
    )


def test_an_msd_workbook_is_recognised_by_its_sheet(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "Exp_Data_Tbl"
    book.save(tmp_path / "dw.xlsx")
    assert detect_format(tmp_path / "dw.xlsx") == "msd"


def test_a_plate_map_is_not_mistaken_for_an_export():
    with pytest.raises(InputError, match="not a format CytoSafe recognises") as info:
        read(FIXTURES / "platemap" / "il6_plate_map_plater.csv")
    assert "il6_plate_map_plater.csv" in str(info.value)
    assert "--plate-map" in str(info.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match="file not found") as info:
        read(tmp_path / "nowhere.csv")
    assert "nowhere.csv" in str(info.value)


def test_writers_leave_ordinary_permissions_and_no_temporary_file(tmp_path):
    import os

    from cytosafe.io import write_msd, write_tidy, write_xponent

    table = read_xponent(FIXTURES / "xponent" / "small_plate.csv")
    mask = os.umask(0o022)
    try:
        for path in (
            write_tidy(table, tmp_path / "t.csv"),
            write_tidy(table, tmp_path / "t.xlsx"),
            write_xponent(table, tmp_path / "x.csv"),
            write_msd(read_msd(FIXTURES / "msd" / "two_plates.csv"), tmp_path / "m.csv"),
        ):
            assert path.stat().st_mode & 0o777 == 0o644, path  # not mkstemp's 0o600
    finally:
        os.umask(mask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv", "t.csv", "t.xlsx", "x.csv"]


def test_the_top_level_api_names_the_whole_steps():
    import cytosafe
    from cytosafe.quantification import quantify

    assert cytosafe.quantify is quantify and cytosafe.read is read
    assert {"quantify", "read"} <= set(dir(cytosafe))
    with pytest.raises(AttributeError, match="no attribute 'quantfy'"):
        cytosafe.quantfy  # noqa: B018 (a typo must not pass silently)
