"""MSD Discovery Workbench layouts met in public exports (2026-12-04 survey).

A DW data table exported plate by plate opens with a lone title line holding the plate
name (``Plate_2BO40AW287``, padded with commas to the table's width) above a header
without ``Plate Name`` (``tests/parsers/msd_workbench/testdata/msd_workbench_test_1.csv``
of Benchling-Open-Source/allotropy). :func:`cytosafe.io.msd.read_msd` read it, but the
registry did not recognise it, so ``cytosafe quantify FILE`` refused it. The fixture is
typed here in that layout; nothing is copied from the public file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from cytosafe.errors import DataWarning, InputError
from cytosafe.io import detect_format, read

HEADER = ("Sample,Assay,Well,Spot,Dilution,Concentration,Signal,Adjusted Signal,Mean,"
          "Adj. Sig. Mean,CV,Calc. Concentration,Calc. Conc. Mean")  # fmt: skip


def table_rows() -> list[str]:
    rows = []
    conc = [2500.0, 625.0, 156.25, 39.06, 9.77, 2.44, 0.61]
    for i, c in enumerate(conc):
        signal = round(60 + 90000 * c / (c + 900.0))
        for col in (1, 2):
            rows.append(f"S00{i + 1},IL-6,{'ABCDEFG'[i]}0{col},1,,{c},{signal},{signal},"
                        f"{signal},{signal},1.0,{c},{c}")  # fmt: skip
    for col in (1, 2):
        rows.append(f"S008,IL-6,H0{col},1,,0,58,58,58,58,1.0,,")
    for j, signal in enumerate((1500, 7200, 30100)):
        for col in (3, 4):
            rows.append(f"U00{j + 1},IL-6,{'ABC'[j]}0{col},1,2,,{signal},{signal},{signal},"
                        f"{signal},1.0,,")  # fmt: skip
    return rows


def write(tmp_path: Path, title: str, sep: str = ",", name: str = "plate.csv") -> Path:
    width = HEADER.count(",")
    lines = [title + "," * width, HEADER, *table_rows()]
    path = tmp_path / name
    path.write_text("\r\n".join(line.replace(",", sep) for line in lines) + "\r\n")
    return path


def test_a_per_plate_data_table_is_recognised_and_read(tmp_path):
    path = write(tmp_path, "Plate_7QX2ZB0001")
    assert detect_format(path) == "msd"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        table = read(path)
    assert set(table["plate_id"]) == {"Plate_7QX2ZB0001"}
    counts = table["sample_type"].value_counts()
    assert (counts["standard"], counts["sample"], counts["blank"]) == (14, 6, 2)
    assert set(table.loc[table["sample_type"] == "sample", "dilution_factor"]) == {2.0}


def test_a_tab_separated_per_plate_table_is_recognised(tmp_path):
    path = write(tmp_path, "Plate_7QX2ZB0001", sep="\t", name="plate.txt")
    assert detect_format(path) == "msd"


def test_a_tidy_table_under_a_title_line_is_not_taken_for_dw(tmp_path):
    # A tidy table names no Assay column: a title above it does not make it a DW table.
    path = tmp_path / "tidy.csv"
    path.write_text("My study\nplate_id,well,analyte,sample_type,signal\nP1,A01,IL-6,sample,10\n")
    try:
        fmt = detect_format(path)
    except InputError:
        fmt = None
    assert fmt != "msd"


def test_a_title_line_alone_is_not_recognised(tmp_path):
    path = tmp_path / "title.csv"
    path.write_text("Plate_7QX2ZB0001,,,\n")
    with pytest.raises(InputError, match="not a format CytoSafe recognises"):
        detect_format(path)
