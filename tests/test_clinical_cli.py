"""``cytosafe grade`` (registered here on a private Typer app, as cli.py will register it)."""

from __future__ import annotations

import json

import pandas as pd
import typer
from typer.testing import CliRunner

from cytosafe.cli import reporting_errors
from cytosafe.cli.grade import grade_command
from cytosafe.workflows import GRADING_FILES as GRADE_OUTPUT_FILES
from test_clinical_grading import cohort

app = typer.Typer()
app.command("grade")(reporting_errors(grade_command))
app.command("noop")(lambda: None)  # keeps "grade" a subcommand
runner = CliRunner()


def test_grade_writes_every_output(tmp_path):
    obs = tmp_path / "obs.csv"
    cohort().to_csv(obs, index=False)
    out = tmp_path / "res"
    res = runner.invoke(
        app, ["grade", str(obs), "--scale", "astct2019", "--scale", "lee2014", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == sorted(GRADE_OUTPUT_FILES)
    patients = pd.read_csv(out / "patients.csv")
    assert len(patients) == 8 and set(patients["scale"]) == {"astct2019", "lee2014"}
    assert "scale_version" in pd.read_csv(out / "timeline.csv").columns
    assert json.loads((out / "settings.json").read_text())["command"] == "grade"
    assert "Scales and sources" in (out / "report.html").read_text()


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    obs = tmp_path / "obs.csv"
    bad = cohort()
    bad.loc[3, "value"] = "60"
    bad.loc[3, "item"] = "temperature"
    bad.loc[3, "unit"] = "C"
    bad.to_csv(obs, index=False)
    out = tmp_path / "res"
    res = runner.invoke(app, ["grade", str(obs), "--out", str(out)])
    assert res.exit_code == 2
    assert "row 5" in res.output and "impossible temperature" in res.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_report_figures_are_valid_plotly_and_cite_the_scales(tmp_path):
    import re

    import plotly.graph_objects as go

    from cytosafe.clinical import grade
    from cytosafe.report.clinical import render_clinical_report

    html = render_clinical_report(grade(cohort(), ["astct2019", "mskcc"]))
    specs = json.loads(re.search(r'id="cs-figures">(.*?)</script>', html, re.S).group(1))
    assert len(specs) == 4  # one timeline per patient
    for spec in specs.values():
        go.Figure(spec)
    assert "Biol Blood Marrow Transplant. 2019;25(4):625-638" in html
    assert "N Engl J Med. 2018;378(5):449-459" in html
    assert html == render_clinical_report(grade(cohort(), ["astct2019", "mskcc"]))  # byte-stable
