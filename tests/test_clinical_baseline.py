"""Clinical input (issue 14, item 13 of "Why"): time zones and the pre-infusion baseline.

* A patient whose times mix ISO 8601 times with and without a UTC offset was shifted
  silently; it is an error naming file, rows and field unless a time zone is given.
* A fever 8 days before the infusion was graded as CRS (onset -192 h; cohort incidence
  80.0 % -> 81.7 %). CRS is a syndrome *after* an immune effector cell therapy (ASTCT
  2019: Lee et al., Biol Blood Marrow Transplant 2019;25:625-638), so observations before
  the infusion are kept as baseline, reported, and never graded.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from cytosafe.cli import reporting_errors
from cytosafe.cli.grade import grade_command
from cytosafe.clinical import grade
from cytosafe.errors import DataWarning, InputError
from cytosafe.schema.observations import read_observations, validate_observations

COHORT = Path(__file__).parents[1] / "examples" / "crs-cohort" / "observations.csv"

app = typer.Typer()
app.command("grade")(reporting_errors(grade_command))
app.command("noop")(lambda: None)  # keeps "grade" a subcommand
runner = CliRunner()


def _obs(rows):
    return pd.DataFrame(rows, columns=["patient_id", "time", "item", "value", "unit"])


def _incidence(result):
    c = result.cohort
    return float(c.loc[c["measure"] == "any grade", "percent"].iat[0])


# --- time zones ---------------------------------------------------------------------


MIXED = [
    ("P1", "2024-03-01T08:00:00", "infusion", "axi-cel", ""),
    ("P1", "2024-03-01T12:00:00+01:00", "temperature", "37.0", "C"),
    ("P1", "2024-03-02T08:00:00", "temperature", "38.6", "C"),
    ("P2", "2024-03-01T08:00:00Z", "infusion", "axi-cel", ""),
    ("P2", "2024-03-02T08:00:00+00:00", "temperature", "38.6", "C"),
]


def test_a_patient_mixing_times_with_and_without_an_offset_is_an_error_naming_the_rows(
    tmp_path,
):
    path = tmp_path / "obs.csv"
    _obs(MIXED).to_csv(path, index=False)
    with pytest.raises(InputError) as err:
        read_observations(path)
    e = err.value
    assert e.file == str(path) and e.field == "time" and e.row == 2
    assert "patient 'P1'" in e.message
    assert "with a UTC offset (rows 3)" in e.message and "without one (rows 2, 4)" in e.message
    assert "--timezone" in e.expected
    with pytest.raises(InputError, match="mixes times"):
        grade(path)
    with pytest.raises(InputError, match="mixes times"):  # not set aside silently either
        grade(path, errors="quarantine")


def test_a_time_zone_localises_the_times_without_an_offset():
    obs = validate_observations(_obs(MIXED), timezone="Europe/Berlin").table
    p1 = obs[obs["patient_id"] == "P1"].set_index("item", append=True)["time"]
    # 08:00 in Berlin in March (CET, UTC+1) is 07:00 UTC; 12:00+01:00 is 11:00 UTC
    assert list(obs.loc[obs["patient_id"] == "P1", "time"].astype(str)) == [
        "2024-03-01 07:00:00",
        "2024-03-01 11:00:00",
        "2024-03-02 07:00:00",
    ]
    assert len(p1) == 3
    # the patient written with offsets throughout is unchanged
    assert list(obs.loc[obs["patient_id"] == "P2", "time"].astype(str)) == [
        "2024-03-01 08:00:00",
        "2024-03-02 08:00:00",
    ]
    result = grade(_obs(MIXED), timezone="Europe/Berlin")
    tl = result.timeline
    assert (tl["patient_id"] == "P1").sum() == 3  # one row per time, not doubled
    p1 = result.patients.set_index("patient_id").loc["P1"]
    assert p1["onset_hours"] == 24.0 and p1["max_grade"] == 1


def test_daylight_saving_is_applied_and_a_skipped_local_time_is_an_error():
    summer = _obs(
        [
            ("P1", "2024-07-01T08:00:00", "infusion", "axi-cel", ""),
            ("P1", "2024-07-01T12:00:00+00:00", "temperature", "37.0", "C"),
        ]
    )
    t = validate_observations(summer, timezone="Europe/Berlin").table["time"].astype(str)
    assert list(t) == ["2024-07-01 06:00:00", "2024-07-01 12:00:00"]  # CEST, UTC+2
    skipped = _obs([("P1", "2024-03-31T02:30:00", "infusion", "axi-cel", "")])
    with pytest.raises(InputError, match="daylight-saving") as err:
        validate_observations(skipped, source="obs.csv", timezone="Europe/Berlin")
    assert err.value.row == 2 and err.value.field == "time"


def test_an_unknown_time_zone_is_an_error_naming_the_option():
    with pytest.raises(InputError) as err:
        validate_observations(_obs(MIXED), timezone="Mars/Olympus_Mons")
    assert err.value.field == "timezone"


def test_times_all_with_or_all_without_an_offset_need_no_time_zone():
    rows = [r for r in MIXED if r[0] == "P2"] + [
        ("P3", "2024-03-01T08:00:00", "infusion", "axi-cel", ""),
        ("P3", "2024-03-02", "temperature", "37.0", "C"),  # a date alone is no offset
    ]
    t = validate_observations(_obs(rows)).table
    assert list(t.loc[t["patient_id"] == "P3", "time"].astype(str)) == [
        "2024-03-01 08:00:00",
        "2024-03-02 00:00:00",
    ]


def test_cli_timezone_option(tmp_path):
    obs = tmp_path / "obs.csv"
    _obs(MIXED).to_csv(obs, index=False)
    res = runner.invoke(app, ["grade", str(obs), "--out", str(tmp_path / "a")])
    assert res.exit_code != 0 and "mixes times" in res.output
    assert not (tmp_path / "a").exists()
    out = tmp_path / "b"
    res = runner.invoke(app, ["grade", str(obs), "--timezone", "Europe/Berlin", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "settings.json").read_text())["timezone"] == "Europe/Berlin"


# --- baseline -----------------------------------------------------------------------


def _cohort_with_baseline_fever():
    df = pd.read_csv(COHORT, dtype=str, keep_default_na=False)
    first = grade(df).patients
    pid = first.loc[first["max_grade"] == 0, "patient_id"].iat[0]
    infusion = pd.Timestamp(df.loc[(df.patient_id == pid) & (df.item == "infusion"), "time"].iat[0])
    before = (infusion - pd.Timedelta(days=8)).isoformat()
    extra = pd.DataFrame([{"patient_id": pid, "time": before, "item": "temperature",
                           "value": "38.9", "unit": "C"}])  # fmt: skip
    return pd.concat([df, extra], ignore_index=True), pid


def test_a_fever_eight_days_before_the_infusion_is_baseline_not_crs():
    df, pid = _cohort_with_baseline_fever()
    with pytest.warns(DataWarning, match=f"fever before the infusion.*{pid}"):
        result = grade(df)
    p = result.patients.set_index("patient_id")
    assert p.loc[pid, "max_grade"] == 0
    assert pd.isna(p.loc[pid, "onset_hours"]) and p.loc[pid, "n_episodes"] == 0
    assert bool(p.loc[pid, "baseline_fever"])
    assert p.loc[pid, "baseline_max_temperature_c"] == 38.9
    assert _incidence(result) == 80.0  # as without the baseline fever (was 81.7)
    tl = result.timeline
    row = tl[(tl["patient_id"] == pid) & tl["baseline"]]
    assert len(row) == 1 and row["hours"].iat[0] == -192.0 and row["grade"].iat[0] == 0
    assert row["criterion"].iat[0].startswith("baseline fever")
    assert not p.drop(index=pid)["baseline_fever"].any()


def test_the_example_cohort_grades_as_before_and_has_no_baseline():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        result = grade(COHORT)
    assert _incidence(result) == 80.0
    assert not result.timeline["baseline"].any()
    assert not result.patients["baseline_fever"].any()
    assert result.patients["baseline_max_temperature_c"].isna().all()


def test_a_baseline_fever_does_not_carry_past_the_infusion():
    """Fever 2 h before the infusion, next temperature 10 h after: hour 0 is not febrile."""
    obs = _obs(
        [
            ("P1", "2024-03-01T06:00:00", "temperature", "39.0", "C"),
            ("P1", "2024-03-01T08:00:00", "infusion", "axi-cel", ""),
            ("P1", "2024-03-01T09:00:00", "systolic_bp", "120", "mmHg"),
            ("P1", "2024-03-01T18:00:00", "temperature", "37.1", "C"),
        ]
    )
    with pytest.warns(DataWarning):
        result = grade(obs, ["astct2019", "lee2014", "ctcae5", "penn", "mskcc", "cartox"])
    assert (result.patients["max_grade"] == 0).all()
    tl = result.timeline
    after = tl[~tl["baseline"]]
    assert after.loc[after["hours"] < 10, "temperature_c"].isna().all()


def test_a_baseline_fever_does_not_unmask_fever_for_later_treatment():
    """ASTCT drops the fever requirement only after treatment of CRS with fever; a fever
    before the infusion is not that, so hypotension without fever after tocilizumab is not
    graded."""
    obs = _obs(
        [
            ("P1", "2024-03-01T06:00:00", "temperature", "39.0", "C"),
            ("P1", "2024-03-01T08:00:00", "infusion", "axi-cel", ""),
            ("P1", "2024-03-01T08:00:00", "temperature", "36.8", "C"),
            ("P1", "2024-03-01T10:00:00", "tocilizumab", "8", "mg/kg"),
            ("P1", "2024-03-01T11:00:00", "systolic_bp", "80", "mmHg"),
        ]
    )
    with pytest.warns(DataWarning):
        result = grade(obs)
    assert result.patients["max_grade"].iat[0] == 0


def test_an_afebrile_baseline_is_kept_without_a_warning():
    obs = _obs(
        [
            ("P1", "2024-02-28T08:00:00", "temperature", "36.9", "C"),
            ("P1", "2024-03-01T08:00:00", "infusion", "axi-cel", ""),
            ("P1", "2024-03-02T08:00:00", "temperature", "38.4", "C"),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        result = grade(obs)
    p = result.patients.iloc[0]
    assert not p["baseline_fever"] and p["baseline_max_temperature_c"] == 36.9
    assert p["max_grade"] == 1 and p["onset_hours"] == 24.0
    assert result.timeline["baseline"].tolist() == [True, False, False]


def test_cli_reports_a_baseline_fever(tmp_path):
    df, pid = _cohort_with_baseline_fever()
    obs = tmp_path / "obs.csv"
    df.to_csv(obs, index=False)
    out = tmp_path / "res"
    res = runner.invoke(app, ["grade", str(obs), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"baseline fever (before the infusion, not graded as CRS): {pid}" in res.output
    patients = pd.read_csv(out / "patients.csv")
    assert patients.loc[patients["baseline_fever"], "patient_id"].tolist() == [pid]
    assert json.loads((out / "settings.json").read_text())["baseline_fever_patients"] == [pid]
