"""Observation validation, episodes, summaries, concordance and the Dask path of grade()."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytosafe.clinical import cohort_summary, concordance, episodes, grade, incidence
from cytosafe.clinical.observations import validate_observations
from cytosafe.errors import InputError
from test_clinical_scales import FEVER, series


# ----------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        (("P1", "2024-05-01T10:00", "heart_rate", "90", "bpm"), "item", "unknown item"),
        (("P1", "2024-05-01T10:00", "temperature", "60", "C"), "value", "impossible temperature"),
        (("P1", "2024-05-01T10:00", "spo2", "140", "%"), "value", "impossible spo2"),
        (("P1", "2024-05-01T10:00", "temperature", "38", "K"), "unit", "not a unit of temperature"),
        (
            ("P1", "2024-05-01T10:00", "norepinephrine", "5", "mg/h"),
            "unit",
            "not a unit of norepinephrine",
        ),
        (("P1", "yesterday", "temperature", "38", "C"), "time", "ISO 8601"),
        (("P1", "2024-05-01T10:00", "oxygen_device", "tent", ""), "value", "unknown oxygen_device"),
        (("P1", "2024-05-01T10:00", "norepinephrine", "-1", "ug/min"), "value", "negative"),
        (("", "2024-05-01T10:00", "temperature", "38", "C"), "patient_id", "empty"),
    ],
)
def test_bad_rows_name_file_row_and_field(row, field, words):
    obs = pd.concat(
        [series(FEVER), pd.DataFrame([row], columns=series().columns)], ignore_index=True
    )
    with pytest.raises(InputError) as exc:
        validate_observations(obs, source="obs.csv")
    err = exc.value
    assert err.file == "obs.csv" and err.row == 4 and err.field == field
    assert words in err.message


def test_temperature_in_fahrenheit_labelled_celsius_is_impossible():
    with pytest.raises(InputError, match="impossible temperature"):
        validate_observations(series((10, "temperature", 101.3, "C")))


def test_duplicate_observation_and_second_infusion_are_errors():
    dup = series(FEVER, (10, "temperature", 38.9, "C"))
    with pytest.raises(InputError, match="duplicate observation"):
        validate_observations(dup)
    two = series((24, "infusion", "axi-cel", ""))
    with pytest.raises(InputError, match="second infusion"):
        validate_observations(two)


def test_observation_after_death_is_an_error():
    with pytest.raises(InputError, match="after the patient's death"):
        validate_observations(series((5, "death", "CRS", ""), (6, "temperature", 38.0, "C")))


def test_quarantine_keeps_good_rows_and_says_why():
    obs = series(FEVER, (11, "spo2", 140, "%"), (12, "heart_rate", 80, "bpm"))
    res = grade(obs, errors="quarantine")
    assert len(res.quarantine) == 2
    assert res.quarantine["reason"].str.contains("impossible spo2").any()
    assert res.quarantine["reason"].str.contains("unknown item").any()
    assert res.patients["max_grade"].iat[0] == 1


def test_missing_columns_and_unknown_options_and_scales():
    with pytest.raises(InputError, match="missing required column"):
        grade(series().drop(columns="unit"))
    with pytest.raises(InputError, match="unknown grading option"):
        grade(series(FEVER), options={"astct2019": {"fever": 39}})
    with pytest.raises(InputError, match="unknown grading scale"):
        grade(series(FEVER), "asbmt")


def test_per_kg_rate_converted_with_weight_or_assumed_weight_reported():
    with_w = series((1, "weight", 80, "kg"), (11, "norepinephrine", 0.25, "ug/kg/min"))
    assert grade(with_w, "lee2014").timeline["norepinephrine"].iat[-1] == pytest.approx(20.0)
    # with a fever first: Lee 2014 grades only once CRS is present (onset_requires_fever)
    no_w = series(
        FEVER, (11, "norepinephrine", 0.25, "ug/kg/min"), (15, "systolic_bp", 100, "mmHg")
    )
    row = grade(no_w, "lee2014").timeline.iloc[-1]
    assert row["norepinephrine"] == pytest.approx(17.5)  # 70 kg assumed
    assert "weight_assumed" in row["estimates"]


# ----------------------------------------------------------------------- episodes
def test_episodes_onset_duration_and_count():
    """Afebrile from 14 h to the fever at 30 h: 16 h quiet. With the default gap (24 h
    afebrile, off vasopressors and oxygen) that is one episode; with a 12 h gap, two
    (the pre-issue-17 rule split at every afebrile reading)."""
    obs = series(
        (10, "temperature", 38.2, "C"),
        (14, "temperature", 37.0, "C"),
        (30, "temperature", 38.6, "C"),
        (31, "oxygen_device", "simple_face_mask", ""),
        (40, "oxygen_device", "room_air", ""),
        (40, "temperature", 36.9, "C"),
        (40.5, "tocilizumab", 8, "mg/kg"),
    )
    res = grade(obs)
    eps = episodes(res.timeline)
    assert eps[["onset_hours", "end_hours", "peak_grade"]].values.tolist() == [[10, 40, 3]]
    p = res.patients.iloc[0]
    assert p["max_grade"] == 3 and p["onset_hours"] == 10 and p["n_episodes"] == 1
    assert p["duration_hours"] == 30 and p["hours_of_max_grade"] == 31
    assert p["treatments"] == "tocilizumab x1"
    assert not p["ongoing_at_last_observation"]

    res12 = grade(obs, episode_gap_hours=12)
    eps12 = episodes(res12.timeline, gap_hours=12)
    assert eps12[["onset_hours", "end_hours", "peak_grade"]].values.tolist() == [
        [10, 14, 1],
        [30, 40, 3],
    ]
    p12 = res12.patients.iloc[0]
    assert p12["n_episodes"] == 2 and p12["duration_hours"] == 14


def test_onset_needs_an_infusion():
    obs = series(FEVER).iloc[1:]
    assert np.isnan(grade(obs).patients["onset_hours"].iat[0])


# ----------------------------------------------------------------------- cohort
def test_clopper_pearson_interval():
    """Exact interval of 0/10: upper limit 1 - 0.025**(1/10) = 30.85%; of 5/10: 18.71-81.29%."""
    assert incidence(0, 10)[2] == pytest.approx(100 * (1 - 0.025 ** (1 / 10)), abs=1e-6)
    pct, lo, hi = incidence(5, 10)
    assert (pct, round(lo, 2), round(hi, 2)) == (50.0, 18.71, 81.29)


def cohort() -> pd.DataFrame:
    parts = [
        series(FEVER, patient="A"),
        series(
            FEVER, (11, "oxygen_device", "simple_face_mask", ""), (11, "fio2", 35, "%"), patient="B"
        ),
        series(
            FEVER,
            (11, "norepinephrine", 25, "ug/min"),
            (15, "systolic_bp", 80, "mmHg"),
            patient="C",
        ),
        series((11, "systolic_bp", 120, "mmHg"), patient="D"),
    ]
    return pd.concat(parts, ignore_index=True)


def test_cohort_table_layout():
    res = grade(cohort())
    c = res.cohort.set_index("measure")
    assert c.loc["patients", "n"] == 4
    assert c.loc["any grade", "n"] == 3 and c.loc["any grade", "percent"] == 75.0
    assert c.loc["grade >= 3", "n"] == 2
    assert c.loc["median onset, hours", "median"] == 10.0


def test_concordance_side_by_side():
    res = grade(cohort(), ["astct2019", "lee2014", "mskcc"])
    conc = concordance(res.patients).set_index("scale")
    # A: fever only -> 1 everywhere. B: face mask 35% -> ASTCT 3, Lee 2, MSKCC 2.
    # C: NE 25 ug/min >= 3 h, SBP 80 -> ASTCT 3, Lee 3 (high dose), MSKCC 4 (refractory).
    assert conc.loc["astct2019", ["grade_1", "grade_3"]].tolist() == [1, 2]
    assert conc.loc["lee2014", ["grade_1", "grade_2", "grade_3"]].tolist() == [1, 1, 1]
    assert conc.loc["mskcc", ["grade_2", "grade_4"]].tolist() == [1, 1]
    assert conc.loc["lee2014", "same_grade"] == 3 and conc.loc["lee2014", "lower"] == 1
    assert conc.loc["mskcc", "higher"] == 1 and conc.loc["mskcc", "same_diagnosis"] == 4
    assert list(cohort_summary(res.patients)["scale"].unique()) == ["astct2019", "lee2014", "mskcc"]


# ----------------------------------------------------------------------- Dask
def test_dask_dataframe_on_a_local_cluster_matches_pandas():
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster

    obs = cohort()
    expected = grade(obs, ["astct2019", "lee2014"])
    ddf = dd.from_pandas(obs, npartitions=1).shuffle("patient_id", npartitions=2)
    with (
        LocalCluster(n_workers=2, processes=False, dashboard_address=None) as cluster,
        Client(cluster),
    ):
        got = grade(ddf, ["astct2019", "lee2014"])
    key = ["scale", "patient_id", "time"]
    a = got.timeline.sort_values(key).reset_index(drop=True)
    b = expected.timeline.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_categorical=False)
    pd.testing.assert_frame_equal(
        got.patients.sort_values(["scale", "patient_id"]).reset_index(drop=True),
        expected.patients.sort_values(["scale", "patient_id"]).reset_index(drop=True),
    )


def test_dask_patient_split_across_partitions_is_an_error():
    import dask.dataframe as dd

    obs = cohort().sort_values("time").reset_index(drop=True)
    ddf = dd.from_pandas(obs, npartitions=3, sort=False)
    with pytest.raises(InputError, match="more than one partition"):
        grade(ddf)


def test_episodes_of_adjacent_patients_stay_apart():
    """Patient A is still graded at its last row and patient B at its first: two episodes."""
    a = series((10, "temperature", 38.5, "C"), (11, "oxygen_device", "cpap", ""), patient="A")
    b = series((0, "temperature", 38.1, "C"), (5, "temperature", 37.0, "C"), patient="B")
    b = b[b["item"] != "infusion"]
    eps = episodes(grade(pd.concat([a, b], ignore_index=True)).timeline)
    assert eps[["patient_id", "peak_grade", "ongoing"]].values.tolist() == [
        ["A", 4, True],
        ["B", 1, False],
    ]
    assert eps["duration_hours"].tolist() == [1.0, 5.0]
