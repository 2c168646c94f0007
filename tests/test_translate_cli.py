"""The translate faces: `cytosafe mabel` and `cytosafe simulate`, and the HTML report.

The commands are registered here on a local Typer app with the CLI's error reporting
(:func:`cytosafe.cli.reporting_errors`), as :mod:`cytosafe.cli` registers them.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
import typer
from typer.testing import CliRunner

from cytosafe.cli import EXIT_INPUT_ERROR, reporting_errors
from cytosafe.cli.translate import mabel_command, simulate_command
from cytosafe.report.page import figure_specs

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "translate" / "ta1_regimens.toml"

app = typer.Typer()
app.command("mabel")(reporting_errors(mabel_command))
app.command("simulate")(reporting_errors(simulate_command))
runner = CliRunner()

SMALL = """
title = "small (SIMULATED)"
simulated = true
[simulation]
days = 16
subjects = 8
output_hours = 6
[potency]
ec50 = 1.0
unit = "ug/mL"
[[regimen]]
name = "flat"
doses = [{day = 1, amount = 10, unit = "mg", route = "iv", infusion_hours = 4},
         {day = 8, amount = 10, unit = "mg", route = "iv", infusion_hours = 4}]
[[regimen]]
name = "step"
target_dose = 10
doses = [{day = 1, amount = 0.5, unit = "mg", route = "iv", infusion_hours = 4},
         {day = 8, amount = 10, unit = "mg", route = "iv", infusion_hours = 4}]
[search]
target_dose = 10
unit = "mg"
by_day = 8
first_fractions = [0.05]
intervals_days = [3.0, 7.0]
max_priming_doses = 1
subjects = 5
"""


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(textwrap.dedent(SMALL), encoding="utf-8")
    return path


def test_simulate_writes_every_table_and_the_report(small, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["simulate", str(small), "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    assert names == {
        "comparison.csv",
        "per_dose.csv",
        "time_courses.csv",
        "subjects.csv",
        "parameters.csv",
        "search.csv",
        "settings.json",
        "report.html",
    }
    comparison = pd.read_csv(out / "comparison.csv")
    assert list(comparison["regimen"]) == ["flat", "step"]
    assert comparison.set_index("regimen").loc["step", "time_to_target_day"] == 8
    settings = json.loads((out / "settings.json").read_text())
    assert settings["simulated"] is True and settings["potency"]["plasma_ec50_ng_ml"] == 1000.0
    assert len(pd.read_csv(out / "subjects.csv")) == 16  # 8 subjects x 2 regimens


def test_report_is_self_contained_and_its_figures_are_valid_plotly(small, tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(app, ["simulate", str(small), "--out", str(out), "-q"]).exit_code == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "SIMULATED EXAMPLE" in html
    assert 'id="comparison-table"' in html and 'id="search-table"' in html
    assert not re.search(r'<script[^>]+src="http', html)  # no network
    specs = figure_specs(html)  # the written report is packed
    from figure_checks import axis_problems

    assert not [p for fig_id, spec in specs.items() for p in axis_problems(fig_id, spec)]
    assert len(specs) == 3
    for spec in specs.values():
        go.Figure(spec)  # raises on an invalid figure
    # one median line and a 90% band (two bound traces) per regimen in the time courses
    first = next(iter(specs.values()))
    assert len(first["data"]) == 3 * 2


def test_simulate_bad_regimen_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(SMALL.replace("amount = 0.5", "amount = -0.5"), encoding="utf-8")
    out = tmp_path / "out"
    result = runner.invoke(app, ["simulate", str(bad), "--out", str(out)])
    assert result.exit_code == EXIT_INPUT_ERROR
    assert "error:" in result.output and "regimen[2].doses[1].amount" in result.output
    assert str(bad) in result.output
    assert not out.exists()  # nothing half-written


def test_example_runs_with_the_potency_table_of_the_quantify_step(tmp_path):
    potency = pd.DataFrame(
        {
            "study_id": "S",
            "assay_format": "whole_blood",
            "incubation_h": 24.0,
            "donor_id": ["D1", "D2"],
            "treatment": "TA-1",
            "analyte": "IL-6",
            "treatment_unit": "ug/mL",
            "status": "response",
            "ec50": [0.5, 2.0],
            "ec20": [0.2, 0.8],
            "ecx_percent": 20.0,
        }
    )
    pot = tmp_path / "potency.csv"
    potency.to_csv(pot, index=False)
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "simulate",
            str(EXAMPLE),
            "--out",
            str(out),
            "--subjects",
            "6",
            "--no-search",
            "--potency",
            str(pot),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    settings = json.loads((out / "settings.json").read_text())
    assert settings["potency"]["in_vitro_ec50"] == pytest.approx(1.0)  # geomean of 0.5 and 2
    assert "whole_blood (IL-6)" in settings["potency"]["source"]
    assert not (out / "search.csv").exists()


def test_mabel_prints_every_approach_and_writes_tables(tmp_path):
    out = tmp_path / "mabel"
    result = runner.invoke(
        app,
        [
            "mabel",
            "--ecx",
            "20",
            "--ecx-unit",
            "ng/mL",
            "--kd",
            "0.9",
            "--occupancy",
            "10",
            "--mw",
            "100",
            "--noael",
            "50",
            "--species",
            "rat",
            "--dose",
            "0.1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "MABEL (in vitro potency)" in result.output and "FDA 2005" in result.output
    summary = pd.read_csv(out / "fih_dose.csv").set_index("approach")
    assert summary.loc["MABEL (in vitro potency)", "dose_ug_per_kg"] == pytest.approx(0.8)
    assert summary.loc["MABEL (receptor occupancy)", "dose_ug_per_kg"] == pytest.approx(0.4)
    assert summary.loc["NOAEL / MRSD (FDA 2005)", "dose_ug_per_kg"] == pytest.approx(
        50 / 6.2 / 10 * 1000
    )
    steps = pd.read_csv(out / "fih_steps.csv")
    assert "receptor occupancy at a dose" in set(steps["approach"])
    refs = pd.read_csv(out / "references.csv")
    assert {"FDA 2005", "Clark 1933"} <= set(refs["key"])


def test_mabel_from_the_potency_table(tmp_path):
    potency = pd.DataFrame(
        {
            "assay_format": ["pbmc_aqueous"] * 2,
            "incubation_h": 24.0,
            "donor_id": ["D1", "D2"],
            "treatment": "TA-1",
            "analyte": "TNF",
            "treatment_unit": "ug/mL",
            "status": "response",
            "ec20": [0.1, 0.4],
            "ec50": [0.3, 1.0],
            "ecx_percent": 20.0,
        }
    )
    pot = tmp_path / "potency.csv"
    potency.to_csv(pot, index=False)
    result = runner.invoke(
        app,
        ["mabel", "--potency", str(pot), "--treatment", "TA-1", "-q", "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == 0, result.output
    # EC20 geomean 0.2 ug/mL = 200 ng/mL x 40 mL/kg = 8 ug/kg
    assert pd.read_csv(tmp_path / "o" / "fih_dose.csv")["dose_ug_per_kg"].item() == pytest.approx(
        8.0
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ecx", "-3"], "field 'ecx'"),
        (["--kd", "1", "--dose", "700", "--dose-unit", "mg/kg"], "typed as mg/kg"),
        (["--noael", "5"], "needs its species"),
        ([], "nothing to compute"),
        (["--kd", "1", "--occupancy", "150"], "--occupancy"),
    ],
)
def test_mabel_bad_input(args, message):
    result = runner.invoke(app, ["mabel", *args])
    assert result.exit_code == EXIT_INPUT_ERROR
    assert message in result.output
