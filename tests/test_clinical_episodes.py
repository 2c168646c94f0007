"""Episodes joined across the episode gap: an episode ends only after a documented period
(default 24 h, ``[common.episode_gap_hours]``) afebrile AND off vasopressors AND off
oxygen support. The sources set no such period (ASTCT 2019 defines onset, not
resolution); the gap is a documented, configurable CytoSafe choice."""

from __future__ import annotations

import json

import pytest

from cytosafe.clinical import episodes, grade
from cytosafe.errors import InputError
from test_clinical_scales import series


def two_fevers(quiet_hours: float, *extra: tuple):
    """Fever at 10 h, afebrile from 12 h, fever again ``quiet_hours`` after 12 h."""
    return series(
        (10, "temperature", 38.5, "C"),
        (12, "temperature", 37.0, "C"),
        (12 + quiet_hours, "temperature", 38.4, "C"),
        (12 + quiet_hours + 2, "temperature", 36.8, "C"),
        *extra,
    )


def test_23_hours_afebrile_joins_one_episode():
    res = grade(two_fevers(23))
    eps = episodes(res.timeline)
    assert eps[["onset_hours", "end_hours", "duration_hours"]].values.tolist() == [[10, 37, 27]]
    assert res.patients["n_episodes"].iat[0] == 1
    assert res.patients["duration_hours"].iat[0] == 27


def test_24_hours_afebrile_ends_the_episode():
    res = grade(two_fevers(24))
    eps = episodes(res.timeline)
    assert eps[["onset_hours", "end_hours"]].values.tolist() == [[10, 12], [36, 38]]
    assert eps["resolution_documented"].tolist() == [True, False]
    assert res.patients["n_episodes"].iat[0] == 2
    assert res.patients["duration_hours"].iat[0] == 4


def test_a_single_afebrile_reading_does_not_split():
    obs = series(
        (10, "temperature", 38.5, "C"),
        (14, "temperature", 37.2, "C"),
        (18, "temperature", 38.9, "C"),
    )
    assert episodes(grade(obs).timeline)["onset_hours"].tolist() == [10]


def test_afebrile_on_oxygen_is_not_quiet():
    """Afebrile from 12 h but on a nasal cannula until 40 h: the quiet period begins at
    40 h, so a fever at 60 h (20 h later) is the same episode even though 48 h passed
    without fever."""
    obs = two_fevers(
        48,
        (11, "oxygen_device", "nasal_cannula", ""),
        (11, "oxygen_flow", 2, "L/min"),
        (40, "oxygen_device", "room_air", ""),
    )
    assert grade(obs, "lee2014").patients["n_episodes"].iat[0] == 1
    assert grade(obs, "lee2014", episode_gap_hours=12).patients["n_episodes"].iat[0] == 2


def test_off_vasopressors_is_part_of_the_quiet_period():
    obs = two_fevers(30, (11, "norepinephrine", 5, "ug/min"), (20, "norepinephrine", 0, "ug/min"))
    # afebrile from 12 h, but the vasopressor runs until 20 h: quiet 20 h -> 42 h = 22 h
    assert grade(obs, "ctcae5").patients["n_episodes"].iat[0] == 1


def test_icans_episodes_keep_splitting_at_every_grade_0():
    obs = series((30, "ice_score", 5, ""), (34, "ice_score", 10, ""), (38, "ice_score", 6, ""))
    assert grade(obs, "icans").patients["n_episodes"].iat[0] == 2


@pytest.mark.parametrize("bad", [-1, "soon", float("nan")])
def test_a_bad_gap_is_an_input_error_naming_the_option(bad):
    with pytest.raises(InputError) as exc:
        grade(two_fevers(10), episode_gap_hours=bad)
    assert exc.value.field == "episode_gap_hours"


def test_the_gap_is_recorded_in_the_settings(tmp_path):
    from cytosafe.workflows import run_grading

    obs = tmp_path / "obs.csv"
    two_fevers(20).to_csv(obs, index=False)
    res = run_grading(obs, ["astct2019", "icans"], out=tmp_path / "out", episode_gap_hours=12)
    assert res.settings["astct2019"]["episode_gap_hours"] == 12
    saved = json.loads((tmp_path / "out" / "settings.json").read_text())
    assert saved["episode_gap_hours"] == 12
    assert saved["settings"]["astct2019"]["episode_gap_hours"] == 12
    assert res.patients.set_index("scale").loc["astct2019", "n_episodes"] == 2
