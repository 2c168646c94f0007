"""The QC report: one self-contained, deterministic HTML file with every section and figure."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from cytosafe.curves import get_model
from cytosafe.report import render_qc_report, write_qc_report

HOSTILE = "<img src=x onerror=alert('cytosafe')>"
LEVELS = 10000 / 4.0 ** np.arange(8)  # 8 standards, 1:4 from 10,000 pg/mL
ROWS = "ABCDEFGH"
SECTIONS = (
    "overview",
    "settings",
    "plate-qc",
    "curves",
    "standards",
    "plate-maps",
    "flags",
    "potency",
    "methods",
    "references",
)


def simulate_study(
    n_plates: int = 3,
    analytes: tuple[str, ...] = ("IL-6", "TNF", "IFN-g"),
    *,
    seed: int = 0,
    hostile: str | None = None,
    control_recovery: float = 1.0,
) -> pd.DataFrame:
    """A cytokine release assay on 96-well plates, one plate per three donors.

    Each plate x analyte has 8 standards in duplicate, 2 blanks, a kit control in
    duplicate, and per donor a 5-point test-article series, a 4-point anti-CD3 positive
    control and a medium negative control, in duplicate; signals follow a 5PL with 5%
    multiplicative noise, released cytokine a 4PL in treatment concentration.
    ``control_recovery`` scales the kit control's true concentration (1 = on target).
    """
    rng = np.random.default_rng(seed)
    five, four = get_model("5PL"), get_model("4PL")
    rows = []
    for k in range(n_plates):
        plate = f"P{k + 1}"
        donors = [f"D{3 * k + j + 1}" for j in range(3)]
        for ai, analyte in enumerate(analytes):
            p = np.array([[40.0 + 10 * ai, 1.1, 900.0 * (1 + 0.3 * ai), 45000.0, 0.8]])
            wells = iter(f"{ROWS[i // 12]}{i % 12 + 1:02d}" for i in range(96))

            def add(kind, conc, rep, p=p, wells=wells, plate=plate, analyte=analyte, **extra):
                s = five.f(np.array([[conc]]), p)[0, 0] * np.exp(0.05 * rng.standard_normal())
                rows.append(dict(study_id="CRA-01", plate_id=plate, well=next(wells), analyte=analyte,
                                 sample_type=kind, signal=max(s, 0.0), replicate=rep, **extra))  # fmt: skip

            for c in LEVELS:
                for r in (1, 2):
                    add("standard", c, r, standard_concentration=c)
            for r in (1, 2):
                add("blank", 0.0, r)
            for r in (1, 2):
                add("control", 500.0 * control_recovery, r, standard_concentration=500.0,
                    sample_id="kit control")  # fmt: skip
            for di, donor in enumerate(donors):
                ec50 = 0.3 * 3**di * (1 + ai)
                for treatment, role, concs in (
                    ("TA-1", "test", (0.01, 0.1, 1, 10, 100)),
                    ("anti-CD3", "positive_control", (0.001, 0.01, 0.1, 1)),
                    ("medium", "negative_control", (0.0,)),
                ):
                    for c in concs:
                        if role == "negative_control":
                            true = 15.0
                        else:
                            e = ec50 if role == "test" else ec50 / 30
                            true = four.f(np.array([[c]]), np.array([[15.0, 1.2, e, 3000.0]]))[0, 0]
                        name = f"{donor} {treatment} {c:g}"
                        if hostile and k == 0 and di == 0 and role == "negative_control":
                            name = hostile
                        for r in (1, 2):
                            add("sample", true, r, sample_id=name, donor_id=donor, treatment=treatment,
                                treatment_role=role, treatment_concentration=c, treatment_unit="ug/mL",
                                assay_format="whole_blood", incubation_h=24.0)  # fmt: skip
    return pd.DataFrame(rows)


def quantify_study(df: pd.DataFrame, **kwargs):
    from cytosafe.quantification import quantify

    return quantify(df, **kwargs)


@pytest.fixture(scope="module")
def result():
    return quantify_study(simulate_study(hostile=HOSTILE))


@pytest.fixture(scope="module")
def page(result) -> str:
    return render_qc_report(result)


def figures(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="cs-figures">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def test_report_is_one_self_contained_file_with_plotly_inlined_once(page):
    banner = get_plotlyjs()[:40]  # "/**\n* plotly.js vX.Y.Z\n* Copyright ..."
    assert page.startswith("<!DOCTYPE html>")
    assert page.count(banner) == 1
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"<link[^>]*stylesheet", page)
    assert "@import" not in page.split(banner)[0]  # no fetched CSS either


def test_report_has_every_section_in_the_table_of_contents(page):
    for section in SECTIONS:
        assert f'id="{section}"' in page
        assert f'href="#{section}"' in page


def test_header_records_version_inputs_settings_and_references(result, page):
    from cytosafe import __version__

    assert f"CytoSafe {__version__}" in page
    assert "CRA-01" in page
    # A table passed in memory is named as such, never by its Python type (issue 15: web
    # reports listed "Input files: <DataFrame>").
    assert "&lt;DataFrame&gt;" not in page and "<DataFrame>" not in page
    assert "a measurement table in memory" in page or "read from a table in memory" in page
    assert result.calibration.fit.model.formula in page
    for text in ("80-120% of nominal", "75-125% at the LLOQ and ULOQ", "CV ≤ 20%", "35 beads"):
        assert text in page
    for ref in ("ICH M10", "Bioanalytical Method Validation", "DeSilva B", "Gottschalk PG",
                "Ritz C", "Motulsky H"):  # fmt: skip
        assert ref in page


def test_every_plate_and_analyte_has_a_standard_curve_figure(result, page):
    specs = figures(page)
    shown = set(
        re.findall(r'data-fig="(fig\d+)" data-plate="([^"]+)" data-analyte="([^"]+)"', page)
    )
    curves = result.calibration.curves
    expected = set(zip(curves["plate_id"], curves["analyte"], strict=True))
    assert {(p, a) for _, p, a in shown} == expected
    for fig_id, _, _ in shown:
        traces = specs[fig_id]["data"]
        assert any(t.get("name", "").endswith("fit") for t in traces)
        assert any(t.get("name", "").startswith("standards") for t in traces)
        assert specs[fig_id]["layout"]["xaxis"]["type"] == "log"


def test_every_figure_is_valid_plotly(page):
    specs = figures(page)
    assert len(specs) >= 9 + 2 * 3  # curves, then a signal and a flag map per plate
    for spec in specs.values():
        go.Figure(spec)  # raises on an attribute Plotly does not know


def test_plate_maps_cover_every_plate_with_a_menu_per_analyte(result, page):
    specs = figures(page)
    maps = re.findall(r'class="plot map" id="(fig\d+)"', page)
    assert len(maps) == 2 * result.calibration.wells["plate_id"].nunique()
    signal = specs[maps[0]]
    labels = [b["label"] for b in signal["layout"]["updatemenus"][0]["buttons"]]
    assert labels == sorted(result.calibration.wells["analyte"].unique())
    assert np.array(signal["data"][0]["z"], dtype=float).shape == (8, 12)


def test_hostile_sample_name_is_escaped_everywhere(page):
    assert HOSTILE not in page
    assert "onerror=alert('cytosafe')>" not in page
    assert "\\u0026lt;img src=x onerror" in page  # present, as inert escaped text


def test_two_runs_on_the_same_input_give_byte_identical_reports(result, tmp_path):
    again = quantify_study(simulate_study(hostile=HOSTILE))
    a = write_qc_report(result, tmp_path / "a.html")
    b = write_qc_report(again, tmp_path / "b.html")
    assert a.read_bytes() == b.read_bytes()
    assert "<dt>Generated</dt>" not in a.read_text(encoding="utf-8")  # no wall clock


def test_generation_time_appears_only_when_passed(result):
    page = render_qc_report(result, generated="2024-05-01T12:00")
    assert "<dt>Generated</dt><dd>2024-05-01T12:00</dd>" in page


def test_a_directory_path_gets_report_html(result, tmp_path):
    assert write_qc_report(result, tmp_path) == tmp_path / "report.html"


def test_plate_qc_and_flags_tables_have_a_row_per_curve(result, page):
    n = len(result.calibration.qc)
    qc_table = page.split('id="qc-table"')[1].split("</table>")[0]
    assert qc_table.count("<tr>") - 1 == n  # minus the header row
    flags = page.split('id="flags"')[1].split("</table>")[0]
    assert flags.count("<tr>") - 2 == n  # minus header and total rows


def test_failing_kit_control_fails_the_curve_with_its_reason():
    res = quantify_study(simulate_study(1, ("IL-6",), control_recovery=2.0))
    page = render_qc_report(res)
    assert not res.calibration.qc["qc_pass"].any()
    assert '<span class="badge fail">fail</span>' in page
    assert "kit controls outside recovery limits" in page


def test_potency_table_and_a_figure_per_treatment_and_analyte(result, page):
    table = page.split('id="potency-table"')[1].split("</table>")[0]
    assert table.count("<tr>") - 1 == len(result.potency)
    pot = re.findall(r'data-fig="(fig\d+)" data-treatment="([^"]+)" data-analyte="([^"]+)"', page)
    expected = {(t, a) for t in ("TA-1", "anti-CD3") for a in ("IL-6", "TNF", "IFN-g")}
    assert {(t, a) for _, t, a in pot} == expected
    spec = figures(page)[pot[0][0]]
    assert spec["layout"]["xaxis"]["type"] == "log"
    assert any("4PL" in t.get("name", "") for t in spec["data"])  # fitted donor curves


def test_methods_are_generated_from_the_settings(page):
    methods = page.split('id="methods"')[1].split("</section>")[0]
    assert "five-parameter logistic" in methods
    assert "EC50 and the relative EC20" in methods
    assert 'href="#ref-1"' in methods  # citations link to the references


def test_a_5pl_potency_fit_is_named_described_and_drawn_as_a_5pl():
    from cytosafe.curves.potency import PotencySettings

    res = quantify_study(
        simulate_study(1, ("IL-6",)), potency_settings=PotencySettings(model="5PL")
    )
    page = render_qc_report(res)
    potency = page.split('id="potency"')[1].split("</section>")[0]
    assert "5PL concentration–response fit" in potency and "4PL" not in potency
    methods = page.split('id="methods"')[1].split("</section>")[0]
    assert "a five-parameter log-logistic model" in methods
    row = res.potency[res.potency["status"] == "response"].iloc[0]
    pot = re.findall(r'data-fig="(fig\d+)" data-treatment="([^"]+)" data-analyte="IL-6"', page)
    fig = dict((t, f) for f, t in pot)[row["treatment"]]
    curve = next(t for t in figures(page)[fig]["data"] if t.get("name") == f"{row['donor_id']} 5PL")
    model = get_model("5PL")
    p = row[["bottom", "slope", "midpoint", "top", "asymmetry"]].to_numpy(dtype=float)[None]
    x = np.array(curve["x"], dtype=float)
    np.testing.assert_allclose(curve["y"], model.f(x[None], p)[0], rtol=1e-3)


def test_a_10_plate_8_analyte_study_stays_under_15_mb():
    analytes = ("IL-6", "TNF", "IFN-g", "IL-2", "IL-8", "IL-10", "IL-1b", "GM-CSF")
    page = render_qc_report(quantify_study(simulate_study(10, analytes)))
    assert len(page.encode("utf-8")) < 15_000_000
    assert len(figures(page)) == 10 * 8 + 2 * 10 + 2 * 8  # curves, plate maps, potency


def test_every_axis_and_colour_bar_names_its_quantity_and_unit(page):
    from figure_checks import axis_problems

    problems = [p for fig_id, spec in figures(page).items() for p in axis_problems(fig_id, spec)]
    assert not problems


def test_header_lists_each_input_with_its_sha256(result, tmp_path):
    import hashlib

    from cytosafe.report.page import input_files, plate_inputs

    export = tmp_path / "plate_1.csv"
    export.write_bytes(b"well,signal\nA1,1\n")
    (listed,) = input_files([export])
    assert listed["sha256"] == hashlib.sha256(export.read_bytes()).hexdigest()
    assert listed["bytes"] == export.stat().st_size
    # A report made from stored plates lists what the store kept: each plate's file name
    # and the fingerprint of its measurements, saying what that digest covers.
    stored = plate_inputs([("CRA-01", "plate_CRA-01.csv", "ab" * 32)])
    page = render_qc_report(result, inputs=stored)
    header = page.split('id="overview"', 1)[1].split("</dl>", 1)[0]
    assert "plate_CRA-01.csv" in header and "ab" * 32 in header
    assert "SHA-256 of its stored measurements" in header
