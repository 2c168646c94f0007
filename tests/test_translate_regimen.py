"""Regimen files: what is accepted, and clear errors naming file, field and dose for the rest."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cytosafe.errors import InputError
from cytosafe.translate import load_regimen_file, run_regimen_file

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "translate" / "ta1_regimens.toml"

HEAD = """
title = "test"
[simulation]
days = 21
subjects = 12
"""

FLAT = """
[[regimen]]
name = "flat"
doses = [{day = 1, amount = 10, unit = "mg", route = "iv", infusion_hours = 4}]
"""


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "regimens.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def _error(tmp_path: Path, body: str) -> InputError:
    path = _write(tmp_path, body)
    with pytest.raises(InputError) as info:
        load_regimen_file(path)
    assert str(path) in str(info.value)  # every error names the file
    return info.value


def test_example_regimen_file_is_valid_and_labelled_simulated():
    spec = load_regimen_file(EXAMPLE)
    assert spec.simulated and "SIMULATED" in spec.title
    assert spec.regimens[0].name == "flat 10 mg weekly"
    step = spec.regimens[1]
    assert step.time_to_target_days() == 15
    assert spec.search is not None and spec.search.by_day == 15


def test_days_hours_and_units_are_read(tmp_path):
    spec = load_regimen_file(
        _write(
            tmp_path,
            HEAD
            + """
        [[regimen]]
        name = "mixed"
        doses = [
          {day = 1, amount = 100, unit = "ug/kg", route = "sc"},
          {day = 2, hour = 6, amount = 1, unit = "mg", route = "iv", infusion_hours = 2},
        ]
        """,
        )
    )
    d1, d2 = spec.regimens[0].doses
    assert (d1.time_h, d1.route, d1.infusion_hours) == (0.0, "sc", 0.0)
    assert (d2.time_h, d2.infusion_hours) == (30.0, 2.0)
    sched = spec.regimens[0].schedule(body_weight_kg=80.0)
    assert sched.amounts_ug.tolist() == pytest.approx([8000.0, 1000.0])


def test_negative_dose_names_file_field_and_dose(tmp_path):
    err = _error(
        tmp_path,
        HEAD
        + """
        [[regimen]]
        name = "flat"
        doses = [{day = 1, amount = 1, unit = "mg"}, {day = 8, amount = -10, unit = "mg"}]
        """,
    )
    assert err.field == "regimen[1].doses[2].amount"
    assert "dose 2 of regimen 'flat'" in str(err) and "negative" in str(err)


def test_mg_per_kg_unit_mistake_is_caught(tmp_path):
    err = _error(
        tmp_path,
        HEAD
        + """
        [[regimen]]
        name = "oops"
        doses = [{day = 1, amount = 700, unit = "mg/kg"}]
        """,
    )
    assert err.field == "regimen[1].doses[1].unit"
    assert "typed as mg/kg" in str(err)


def test_unknown_dose_unit(tmp_path):
    err = _error(
        tmp_path,
        HEAD
        + """
        [[regimen]]
        doses = [{day = 1, amount = 7, unit = "mL"}]
        """,
    )
    assert err.field == "regimen[1].doses[1].unit" and "unknown dose unit" in str(err)


def test_overlapping_doses_are_refused(tmp_path):
    err = _error(
        tmp_path,
        HEAD
        + """
        [[regimen]]
        name = "overlap"
        doses = [
          {day = 1, amount = 1, unit = "mg", infusion_hours = 24},
          {day = 1, hour = 12, amount = 1, unit = "mg", infusion_hours = 1},
        ]
        """,
    )
    assert err.field == "regimen[1].doses[2].day"
    assert "overlaps dose 1" in str(err)


def test_doses_out_of_order_are_refused(tmp_path):
    err = _error(
        tmp_path,
        HEAD
        + """
        [[regimen]]
        doses = [{day = 8, amount = 1, unit = "mg"}, {day = 1, amount = 1, unit = "mg"}]
        """,
    )
    assert "comes before dose 1" in str(err)


def test_parameter_outside_physical_range(tmp_path):
    err = _error(
        tmp_path,
        HEAD
        + FLAT
        + """
        [parameters]
        f_sc = 1.5
        """,
    )
    assert err.field == "parameters.f_sc" and "outside its physical range" in str(err)
    err = _error(
        tmp_path,
        HEAD
        + FLAT
        + """
        [parameters]
        cl = -0.1
        """,
    )
    assert err.field == "parameters.cl"


def test_unknown_parameter_and_section(tmp_path):
    assert (
        _error(tmp_path, HEAD + FLAT + "[parameters]\nclearance = 1\n").field
        == "parameters.clearance"
    )
    assert _error(tmp_path, HEAD + FLAT + "[dosing]\nx = 1\n").field == "dosing"


def test_dose_after_the_simulated_days(tmp_path):
    err = _error(
        tmp_path,
        HEAD
        + """
        [[regimen]]
        doses = [{day = 30, amount = 1, unit = "mg"}]
        """,
    )
    assert err.field == "regimen[1].doses[1].day" and "simulated" in str(err)


def test_sc_dose_with_infusion_and_bad_route(tmp_path):
    assert "SC with an infusion" in str(
        _error(
            tmp_path,
            HEAD
            + """
        [[regimen]]
        doses = [{day = 1, amount = 1, unit = "mg", route = "sc", infusion_hours = 2}]
        """,
        )
    )
    assert (
        _error(
            tmp_path,
            HEAD
            + """
        [[regimen]]
        doses = [{day = 1, amount = 1, unit = "mg", route = "oral"}]
        """,
        ).field
        == "regimen[1].doses[1].route"
    )


def test_missing_regimen_and_bad_model(tmp_path):
    assert _error(tmp_path, HEAD).field == "regimen"
    assert (
        _error(tmp_path, HEAD + FLAT + '[model]\nstimulation = "linear"\n').field
        == "model.stimulation"
    )
    assert (
        _error(tmp_path, HEAD + FLAT + "[model]\ncompartments = 3\n").field == "model.compartments"
    )


def test_potency_without_unit_and_ec50_set_twice(tmp_path):
    assert _error(tmp_path, HEAD + FLAT + "[potency]\nec50 = 1\n").field == "potency.unit"
    err = _error(
        tmp_path, HEAD + FLAT + '[potency]\nec50 = 1\nunit = "ug/mL"\n[parameters]\nec50 = 100\n'
    )
    assert err.field == "parameters.ec50"


def test_potency_sets_the_plasma_ec50(tmp_path):
    path = _write(
        tmp_path,
        HEAD
        + FLAT
        + """
        [model]
        in_vitro_to_plasma = 2.0
        [potency]
        ec50 = 0.5
        unit = "ug/mL"
        """,
    )
    run = run_regimen_file(path, search=False)
    assert run.potency["plasma_ec50_ng_ml"] == pytest.approx(1000.0)  # 500 ng/mL x 2
    assert run.typical["ec50"] == pytest.approx(1000.0)


def test_not_toml(tmp_path):
    err = _error(tmp_path, "title = \n")
    assert "not valid TOML" in str(err)


def test_trimer_needs_an_ec50_on_the_rising_limb(tmp_path):
    path = _write(
        tmp_path,
        HEAD
        + FLAT
        + """
        [model]
        stimulation = "trimer"
        [parameters]
        ec50 = 5000.0
        kd_target = 1.0
        kd_cd3 = 50.0
        """,
    )
    with pytest.raises(InputError, match="trimer maximum") as info:
        run_regimen_file(path, search=False)
    assert info.value.field == "parameters.ec50" and str(path) in str(info.value)
