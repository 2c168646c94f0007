"""The study report (HTML and PDF), the analyze() API and the `cytosafe analyze` command.

The browser test opens the report in Debian's Chromium driven by Playwright (one launch
for the whole module): it must render without console errors, with its plots drawn, and
print to a PDF.
"""

from __future__ import annotations

import json
from pathlib import Path

import plotly.graph_objects as go
import pytest
import typer
from typer.testing import CliRunner

from cytosafe import analyze
from cytosafe.cli import reporting_errors
from cytosafe.cli.analyze import analyze_command
from cytosafe.hazard.simulate import SimTreatment, default_treatments, simulate_study
from cytosafe.io.tidy import write_tidy
from cytosafe.report.hazard import CHROMIUM, CHROMIUM_ARGS, render_hazard_report, write_hazard_pdf
from cytosafe.report.page import figure_specs

STUDY = """
[study]
id = "SIM-001"
title = "SIMULATED report test study"

[[treatment]]
name = "medium"
role = "negative_control"

[[treatment]]
name = "isotype"
role = "isotype_control"
concentrations = [10.0]
unit = "ug/mL"

[[treatment]]
name = "anti-CD3"
role = "positive_control"
concentrations = [1.0]
unit = "ug/mL"

[[treatment]]
name = "TA-hot"
role = "test"

[[treatment]]
name = "TA-cold"
role = "test"

[analysis]
inputs = ["measurements.csv"]
model = "4PL"
"""


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("study")
    m, _, _ = simulate_study(
        n_donors=4, treatments=default_treatments(4), analytes=("IL-2", "IL-6", "TNF"), seed=3
    )
    write_tidy(m, folder / "measurements.csv")
    (folder / "study.toml").write_text(STUDY, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def analysed(study_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "analysis"
    return analyze(study_dir / "study.toml", out=out), out


def _figures(html: str) -> dict:
    # The written report is packed (gzip + base64); figure_specs reads either form.
    return figure_specs(html)


def test_analyze_writes_every_table_and_the_report(analysed):
    result, out = analysed
    names = {p.name for p in out.iterdir()}
    assert {
        "responses.csv",
        "summary.csv",
        "hazard.csv",
        "ranking.csv",
        "qc.csv",
        "settings.json",
        "report.html",
    } <= names
    assert not any(n.startswith(".") for n in names)
    settings = json.loads((out / "settings.json").read_text())
    assert settings["hazard"]["rule_set"]["name"] == "fold2_above_lloq"
    assert settings["valid_for_hazard_calling"] is True
    assert set(result.hazard.hazard["hazard_class"]) == {"high", "negative"}


def test_report_has_every_section_and_valid_plotly_figures(analysed):
    _, out = analysed
    html = (out / "report.html").read_text(encoding="utf-8")
    for section in (
        "summary",
        "design",
        "controls",
        "plate-qc",
        "heatmap",
        "dots",
        "potency",
        "statistics",
        "ranking",
        "methods",
        "references",
    ):
        assert f'id="{section}"' in html
    assert 'id="per-analyte-table"' in html and 'id="ranking-table"' in html
    figs = _figures(html)
    kinds = {t["type"] for spec in figs.values() for t in spec["data"]}
    assert {"heatmap", "scatter"} <= kinds
    for spec in figs.values():
        go.Figure(spec)  # raises on anything outside the Plotly schema
    assert "http://" not in html.split("<script>")[0] and "<script src" not in html
    assert "fold2_above_lloq" in html and "censored" in html
    assert "Benjamini" in html and "Wilcoxon" in html and "EC20" in html


def test_report_is_byte_identical_for_the_same_result(analysed):
    result, _ = analysed
    assert render_hazard_report(result) == render_hazard_report(result)


def test_report_states_warnings_and_invalidity():
    treatments = default_treatments(3)
    treatments[2] = SimTreatment("anti-CD3", "positive_control", (1.0,))  # does not respond
    m, design, _ = simulate_study(
        n_donors=3, treatments=treatments, analytes=("IL-6", "TNF"), seed=9
    )
    from cytosafe.curves.calibration import CalibrationSettings
    from cytosafe.hazard import assess_hazard
    from cytosafe.hazard.pipeline import AnalysisResult
    from cytosafe.quantification import quantify

    q = quantify(m, settings=CalibrationSettings(model="4PL"))
    html = render_hazard_report(AnalysisResult(q, assess_hazard(q, design)))
    assert "NOT VALID for hazard calling" in html
    assert "positive control anti-CD3 failed" in html


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("analyze")(reporting_errors(analyze_command))

    @app.callback()
    def main() -> None:  # a group, so that "analyze" is a subcommand as in cytosafe.cli
        pass

    return app


def test_cli_analyze_writes_the_output_directory(study_dir, tmp_path):
    out = tmp_path / "cli-out"
    res = CliRunner().invoke(_app(), ["analyze", str(study_dir / "study.toml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "report.html").is_file() and (out / "hazard.csv").is_file()
    assert "TA-hot" in res.output and "high" in res.output


def test_cli_analyze_bad_study_file_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "study.toml"
    bad.write_text(
        '[study]\nid = "X"\n[[treatment]]\nname = "TA"\nrole = "test"\n', encoding="utf-8"
    )
    res = CliRunner().invoke(_app(), ["analyze", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "no negative control" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_cli_analyze_unknown_rule_set_is_an_input_error(study_dir, tmp_path):
    res = CliRunner().invoke(
        _app(),
        [
            "analyze",
            str(study_dir / "study.toml"),
            "--out",
            str(tmp_path / "o"),
            "--rule-set",
            "nope",
        ],
    )
    assert res.exit_code == 2 and "unknown responder rule set 'nope'" in res.output


def test_report_renders_in_chromium_without_console_errors_and_prints_to_pdf(analysed, tmp_path):
    from playwright.sync_api import sync_playwright

    _, out = analysed
    html_path = out / "report.html"
    n_figures = len(_figures(html_path.read_text(encoding="utf-8")))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(html_path.as_uri(), wait_until="load")
            page.locator("#heatmap").scroll_into_view_if_needed()  # figures draw when seen
            page.wait_for_selector("#heatmap .js-plotly-plot", state="attached", timeout=20000)
            page.evaluate("() => window.csDrawAll()")
            drawn = page.locator(".plot .main-svg").count()
            assert page.locator(".js-plotly-plot").count() == n_figures
            assert drawn >= n_figures
            assert page.locator("#heatmap .heatmaplayer").count() >= 1
            assert page.locator("#dots .scatterlayer .trace").count() >= 4  # a line per donor
            assert page.locator("[data-hazard]").count() == 2
            assert errors == []
            page.close()
            pdf = write_hazard_pdf(html_path, tmp_path / "report.pdf", browser=browser)
        finally:
            browser.close()
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-" and len(data) > 50_000
