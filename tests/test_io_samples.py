"""Sample maps: one study-wide map annotates several exports, each plate in its own file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytosafe.errors import InputError
from cytosafe.io import read
from cytosafe.io.registry import FORMATS, READER_MODULES, READERS
from cytosafe.io.samples import annotate, check_map_plates, read_sample_map
from cytosafe.quantification import load_measurements

STUDY = Path(__file__).resolve().parents[1] / "examples" / "cra-study" / "msd"
PLATES = sorted(STUDY.glob("plate_MSD-0*.csv"))
MAP = STUDY / "samples.csv"


def test_a_study_wide_map_annotates_each_export_with_its_own_plates():
    one = read(PLATES[0], sample_map=MAP)
    assert one["plate_id"].unique().tolist() == ["MSD-01"]
    samples = one[one["sample_type"] == "sample"]
    assert samples["donor_id"].notna().all() and samples["treatment_role"].notna().all()


def test_every_plate_of_the_map_must_be_read():
    table, _ = load_measurements(PLATES, sample_map=MAP)
    assert table["plate_id"].nunique() == len(PLATES)
    with pytest.raises(InputError, match="plate 'MSD-0") as info:
        load_measurements(PLATES[:2], sample_map=MAP)  # seven exports forgotten
    assert "samples.csv" in str(info.value) and "'plate_id'" in str(info.value)


def test_a_typo_in_a_sample_id_of_a_plate_that_was_read_is_named(tmp_path):
    smap = pd.read_csv(MAP)
    smap.loc[0, "sample_id"] = "D01-WB-MDE"
    path = tmp_path / "samples.csv"
    smap.to_csv(path, index=False)
    with pytest.raises(InputError, match="D01-WB-MDE") as info:
        read(PLATES[0], sample_map=path)
    assert "row 2" in str(info.value)


def test_a_map_without_plate_ids_needs_no_plate_check():
    smap = pd.read_csv(MAP)
    first = smap[smap["plate_id"] == "MSD-01"].drop(columns="plate_id")
    check_map_plates(first, ["MSD-01"])  # nothing to check: does not raise
    table = annotate(read(PLATES[0]), first)
    assert table["donor_id"].notna().sum() > 0


def test_a_map_is_prepared_once_and_again_when_it_changes():
    # The study's map is prepared once for all its exports (issue 16, item 4); a map
    # changed in place between two reads is checked again, with the same error as fresh.
    smap = read_sample_map(MAP)
    first = read(PLATES[0], sample_map=smap)
    again = read(PLATES[0], sample_map=smap)
    pd.testing.assert_frame_equal(first, again)
    smap.loc[smap.index[1], "sample_id"] = smap["sample_id"].iloc[0]
    with pytest.raises(InputError, match="appears more than once") as info:
        read(PLATES[0], sample_map=smap)
    assert "row 3" in str(info.value)


def test_the_registry_names_each_reader_module_by_its_name():
    assert FORMATS == tuple(m.NAME for m in READER_MODULES) == tuple(READERS)
    assert [READERS[name].NAME for name in FORMATS] == list(FORMATS)


def test_a_blank_map_cell_supplies_nothing_as_an_empty_one():
    blank, empty = read_sample_map(MAP), read_sample_map(MAP)
    row = blank.index[blank["plate_id"] == "MSD-01"][0]
    blank.loc[row, "treatment"], empty.loc[row, "treatment"] = "   ", np.nan
    with_blank, with_empty = read(PLATES[0], sample_map=blank), read(PLATES[0], sample_map=empty)
    pd.testing.assert_frame_equal(with_blank, with_empty)
    full = read(PLATES[0], sample_map=MAP)
    assert not with_blank["treatment"].equals(full["treatment"])
