"""CRS timelines show what sets the grade (issue 15, "Why" 7).

SIM-0024 of the shipped example cohort reaches ASTCT grade 4 on norepinephrine 7.7 ug/min
plus epinephrine 5 ug/min with BiPAP, and dies of CRS: the timeline must show each pressor on
its own lane with its dose unit, the device on the page (not only in a hover), the death,
and the 38 C / 90 mmHg lines; the page states the grade 4 criterion under the figure.
ASTCT 2019 (Lee DW et al. Biol Blood Marrow Transplant. 2019;25(4):625-638): fever
>= 38.0 C; grade 4 = hypotension needing multiple vasopressors (excluding vasopressin)
and/or positive-pressure ventilation.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cytosafe.clinical import grade, read_observations
from cytosafe.report.clinical import render_clinical_report, timeline_figure
from cytosafe.report.page import figure_specs

ROOT = Path(__file__).resolve().parents[1]
COHORT = ROOT / "examples" / "crs-cohort" / "observations.csv"


@pytest.fixture(scope="module")
def sim24(tmp_path_factory):
    rows = pd.read_csv(COHORT, dtype=str, keep_default_na=False)
    path = tmp_path_factory.mktemp("sim24") / "observations.csv"
    rows[rows["patient_id"] == "SIM-0024"].to_csv(path, index=False)
    return grade(read_observations(path), ["astct2019"])


@pytest.fixture(scope="module")
def figure(sim24):
    tl = sim24.timeline[sim24.timeline["patient_id"] == "SIM-0024"]
    return timeline_figure(tl, title="SIM-0024 · astct2019")


def test_each_vasopressor_has_its_own_lane_with_its_dose_unit(figure):
    lanes = {t["name"] for t in figure["data"] if t.get("yaxis") == "y2" and t["mode"] == "lines"}
    assert lanes == {"norepinephrine (ug/min)", "epinephrine (ug/min)"}
    labels = [
        text
        for t in figure["data"]
        if t.get("yaxis") == "y2" and t["mode"] == "text"
        for text in t["text"]
    ]
    assert "7.7 ug/min" in labels and "5 ug/min" in labels
    assert {"norepinephrine", "epinephrine"} <= set(figure["layout"]["yaxis2"]["categoryarray"])


def test_oxygen_device_is_drawn_as_a_labelled_band(figure):
    device = [t for t in figure["data"] if t.get("name") == "oxygen device"]
    assert device and device[0]["mode"] == "text" and "bipap" in device[0]["text"]
    bands = [s for s in figure["layout"]["shapes"] if s.get("yref") == "y3"]
    assert bands and bands[0]["x0"] == 112.0


def test_death_is_marked_through_every_panel(figure):
    death = [t for t in figure["data"] if t.get("name") == "death"]
    assert death and death[0]["x"] == [136.0] and death[0]["y"] == [5]
    lines = [
        s for s in figure["layout"]["shapes"] if s["type"] == "line" and s.get("yref") == "paper"
    ]
    assert [s["x0"] for s in lines] == [136.0]
    assert any("death" in a["text"] for a in figure["layout"]["annotations"])


def test_fever_and_hypotension_reference_lines(figure):
    ref = {
        (s["yref"], s["y0"])
        for s in figure["layout"]["shapes"]
        if s["type"] == "line" and s.get("xref") == "paper"
    }
    assert ref == {("y5", 38.0), ("y4", 90.0)}
    texts = {a["text"] for a in figure["layout"]["annotations"]}
    assert {"38 °C", "90 mmHg"} <= texts


def test_axes_name_their_units(figure):
    layout = figure["layout"]
    assert layout["xaxis"]["title"]["text"] == "hours after infusion"
    assert "°C" in layout["yaxis5"]["title"]["text"]
    assert "mmHg" in layout["yaxis4"]["title"]["text"]
    assert "%" in layout["yaxis3"]["title"]["text"]


def test_the_page_states_what_set_grade_4(sim24):
    html = render_clinical_report(sim24)
    assert "grade 4 from 112.0 h: grade 4:" in html
    assert "hypotension requiring multiple vasopressors" in html
    assert "positive pressure" in html
    assert len(figure_specs(html)) == 1


def test_every_axis_of_the_timeline_names_its_quantity_and_unit(figure):
    from figure_checks import axis_problems

    assert not axis_problems("timeline", figure)
