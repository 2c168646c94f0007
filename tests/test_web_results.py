"""Results pages that answer first (issue 15, item 1): a hazard analysis opens with its
calls (class badges, a one-line reason each, indeterminate calls and invalid formats
said plainly), a quantification with its QC per analyte, a grading with the cohort's
incidence; figures next; raw tables last, collapsed, with units in the headers and
readable values (no NaT, False, None, nan or Python lists on any results page). A signed
analysis shows all of it, read-only, and can be compared. The cohort page opens with
the incidence table, a swimmer plot and a grade-by-day heatmap.

The study, plates and analyses are those of tests/test_web_pages.py (its fixtures)."""

from __future__ import annotations

import json
import re
from html import unescape

import pandas as pd
import pytest

from cytosafe.clinical.summary import cohort_summary, incidence
from cytosafe.store import sign_off
from cytosafe.web.tables import cell, column_units, readable
from test_web_pages import (
    OBSERVATIONS,
    PASSWORD,
    _flash,
    _stored,
    hazard_analysis,
    quantified,
    site,
    users_template,
)

#: The fixtures of tests/test_web_pages.py this module uses (pytest finds them by name).
FIXTURES = (site, quantified, hazard_analysis, users_template)

#: Words and marks a reader must never see on a results page.
REPRS = (r"\bNaT\b", r"\bFalse\b", r"\bTrue\b", r"\bNone\b", r"\bnan\b", r"\[\'", r"\{\'")


def _visible(html: str) -> str:
    """The text of a page a reader sees: no scripts, styles, tags or attributes."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.DOTALL)
    return unescape(re.sub(r"<[^>]+>", " ", html))


def _reprs(html: str) -> list[str]:
    text = _visible(html)
    return [m.group(0) for p in REPRS for m in re.finditer(p, text)]


def _section(html: str, section_id: str) -> str:
    return html.split(f'<section id="{section_id}"', 1)[1].split("</section>", 1)[0]


def _order(html: str, *ids: str) -> list[int]:
    return [html.index(f'<section id="{i}"') for i in ids]


@pytest.fixture(scope="module")
def graded(site):
    """Cohort CO-R01 (lab-a): the example observations uploaded and graded on its page."""
    _, _, users = site
    ana = users["ana"]
    r = ana.post("/studies", {"code": "CO-R01", "kind": "clinical", "group": "lab-a"})
    assert r.status_code == 200, r.text
    files = [("file", ("observations.csv", OBSERVATIONS.read_bytes(), "text/csv"))]
    r = ana.post("/studies/CO-R01/observations", files=files)
    assert r.status_code == 201, _flash(r.text)
    return int(re.search(r"grading analysis <a href=\"/analyses/(\d+)\"", r.text).group(1))


@pytest.fixture(scope="module")
def signed(site, hazard_analysis, graded):
    """The hazard analysis and the grading, signed off by the study director."""
    _, store, _ = site
    for analysis in (hazard_analysis, graded):
        sign_off(store, analysis, user="dora", meaning="approved")
    return hazard_analysis, graded


@pytest.fixture(scope="module")
def signed_quantification(site, quantified):
    """A second quantification of PG-001, signed off."""
    app, store, users = site
    r = users["ana"].post("/studies/PG-001/quantify", {"model": "4PL"}, follow_redirects=False)
    assert r.status_code == 303, _flash(r.text)
    analysis = int(r.headers["location"].rsplit("/", 1)[1])
    app.state.jobs.wait(analysis, timeout=600)
    sign_off(store, analysis, user="dora", meaning="approved")
    return analysis


# --- one helper for every table -----------------------------------------------------------


def test_a_cell_reads_as_text_never_as_a_python_repr():
    assert [cell(v) for v in (None, float("nan"), pd.NaT, pd.NA, "", "  ")] == ["—"] * 6
    assert (cell(False), cell(True)) == ("no", "yes")
    assert cell(["yes for CD28 superagonism", "weak for FcγR"]) == (
        "yes for CD28 superagonism, weak for FcγR"
    )
    assert cell({"cd28": "yes"}) == "cd28: yes"
    assert cell(pd.Timestamp("2024-06-28 08:00")) == "2024-06-28 08:00"
    assert (cell(24.0), cell(0.012345), cell(7513904.3), cell(12)) == (
        "24",
        "0.01235",
        "7,513,904",
        "12",
    )


def test_a_header_names_the_unit_the_table_gives():
    frame = pd.DataFrame(
        {
            "lloq": [0.15],
            "concentration_unit": ["pg/mL"],
            "treatment_concentration": [10.0],
            "treatment_unit": ["ug/mL"],
            "onset_hours": [42.0],
            "cv": [3.0],
            "flags": ["above_uloq;extrapolated"],
            "qc_pass": [True],
        }
    )
    assert column_units(frame) == {
        "lloq": "pg/mL",
        "treatment_concentration": "ug/mL",
        "onset_hours": "h",
        "cv": "%",
    }
    shown = readable(frame)
    assert shown["headers"][:3] == [
        "lloq (pg/mL)",
        "concentration_unit",
        "treatment_concentration (ug/mL)",
    ]
    assert shown["rows"] == [
        ["0.15", "pg/mL", "10", "ug/mL", "42", "3", "above_uloq, extrapolated", "yes"]
    ]
    # Two units in one column: each row keeps its own, the header names none.
    two = frame.assign(concentration_unit=["IU/mL"])._append(frame, ignore_index=True)
    assert "lloq" not in column_units(two)


# --- a hazard analysis opens with its calls ---------------------------------------------


def test_a_hazard_analysis_opens_with_its_calls_then_qc_figures_and_tables_last(
    site,
    hazard_analysis,
):
    _, _, users = site
    vic = users["vic"]
    page = vic.get(f"/analyses/{hazard_analysis}").text
    hazard = _stored(vic, hazard_analysis, "hazard")
    # The calls come first, the raw tables last.
    calls, qc, report, tables = _order(page, "hazard", "qc", "report", "tables")
    assert calls < qc < report < tables
    section = _section(page, "hazard")
    shown = {
        (unescape(a), unescape(f), unescape(c))
        for a, block in re.findall(
            r'<div class="call-card" data-article="([^"]+)">(.*?)</div>\n</div>', section, re.S
        )
        for f, c in re.findall(
            r'data-format="([^"]+)">.*?<span class="badge [a-z]*"[^>]*>([^<]+)</span>', block, re.S
        )
    }
    expected = {
        (r.treatment, r.assay_format.replace("_", " ") + f" · {r.incubation_h:g} h", r.hazard_class)
        for r in hazard.itertuples()
    }
    assert shown == expected
    # One line of reason each: TA-1 is high for the cytokines that met the class.
    ta1 = hazard[(hazard["treatment"] == "TA-1") & (hazard["hazard_class"] == "high")].iloc[0]
    first = ta1["analytes"].split()[0]
    assert re.search(
        rf"\d+ cytokine\(s\) meet the high condition: {re.escape(first)}, ", unescape(section)
    )
    assert "No class condition met; at most 0/8 donors respond in any cytokine" in section
    # Indeterminate donor calls are said, with what they could change.
    open_class = hazard[hazard["class_could_be"].fillna("").str.contains(" ")].iloc[0]
    classes = " and ".join(open_class["class_could_be"].split())
    assert f"censored values leave the class open between {classes}" in section
    # The positive controls of each format, those not expected to respond said so.
    assert "not expected" in section and "passed" in section
    # Raw tables: collapsed, each with its downloads.
    raw = _section(page, "tables")
    assert raw.count('<details class="raw"') == len(re.findall(r"data-table=", raw)) >= 10
    assert '<details class="raw" open' not in raw
    assert f'href="/analyses/{hazard_analysis}/tables/hazard.csv"' in raw


def test_an_invalid_format_says_which_positive_control_failed():
    from cytosafe.web.results import hazard_summary

    hazard = pd.DataFrame(
        [
            {
                "assay_format": "whole_blood", "incubation_h": 24.0, "treatment": "TA-9",
                "hazard_class": "invalid", "valid": False, "class_rule": "positive control failed",
                "analytes": "", "n_donors": 8, "max_responders": 3,
                "reason": "Not called: the positive control anti-CD3 failed in whole blood 24 h "
                "(2/8 donors respond); the assay could not have shown a release.",
                "n_indeterminate": 0, "indeterminate_by_analyte": "", "class_could_be": "",
            }
        ]
    )  # fmt: skip
    controls = pd.DataFrame(
        [
            {"assay_format": "whole_blood", "incubation_h": 24.0, "treatment": "anti-CD3",
             "expected": True, "passed": False, "reason": "2/8 donors respond (≥ 50% required)"},
        ]
    )  # fmt: skip
    out = hazard_summary(hazard, controls)
    (call,) = out["articles"][0]["calls"]
    assert (call["cls"], call["valid"], call["style"]) == ("invalid", False, "fail")
    assert call["line"] == (
        "Not called: the positive control anti-CD3 failed in whole blood 24 h (2/8 donors respond)"
    )
    assert out["n_invalid"] == 1
    assert out["formats"][0]["controls"][0]["state"] == "failed"
    # A format without a positive control expected to respond says so.
    alone = hazard_summary(hazard.assign(hazard_class="negative", valid=True), controls.iloc[:0])
    assert "ability to show a release is not verified" in alone["formats"][0]["missing"]


def test_a_quantification_opens_with_qc_per_analyte_before_any_table(site, quantified):
    _, _, users = site
    vic = users["vic"]
    page = vic.get(f"/analyses/{quantified}").text
    qc = _stored(vic, quantified, "qc")
    first_table = page.index("<table")
    assert page.index('<section id="qc"') < first_table < page.index('id="qc-summary"') + 20
    body = _section(page, "qc").split("<tbody>", 1)[1]
    rows = {
        unescape(re.sub(r"<[^>]+>", "", cells[0])): [re.sub(r"<[^>]+>", "", c) for c in cells]
        for cells in (
            re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
        )
    }
    assert set(rows) == set(qc["analyte"])
    for analyte, g in qc.groupby("analyte"):
        n = g["n_samples"].sum()
        below = 100 * (g["share_below_lloq"] * g["n_samples"]).sum() / n
        _, curves, passed, failed, shown_below, _, _ = rows[analyte]
        assert (int(curves), int(passed), int(failed)) == (
            len(g),
            int(g["qc_pass"].sum()),
            int((~g["qc_pass"]).sum()),
        )
        assert shown_below == ("0%" if below == 0 else f"{below:.1f}%")
    # Units in the raw QC table's header.
    raw = page.split('data-table="qc"', 1)[1].split("</details>", 1)[0]
    assert "<th>lloq (pg/mL)</th>" in raw and "<th>qc_pass</th>" in raw
    assert re.search(r"<td>(yes|no)</td>", raw)


def test_each_curve_has_a_figure_whose_standard_points_carry_their_checkbox(
    site,
    quantified,
):
    _, _, users = site
    page = users["ana"].get(f"/analyses/{quantified}").text
    figures = json.loads(
        re.search(
            r'<script type="application/json" id="cs-figures">(.*?)</script>', page, re.S
        ).group(1)
    )
    plots = re.findall(r'<div class="plot" data-std="(fig\d+)"', page)
    assert len(plots) == 8 and set(plots) == set(figures)  # 8 analytes on MSD-01
    boxes = set(re.findall(r"name=\"wells\" value='[^']*' id=\"([^\"]+)\"", page))
    points = {i for f in figures.values() for t in f["data"] for i in t.get("customdata") or []}
    assert points and points <= boxes  # every standard point ticks a checkbox of the form
    names = {t["name"] for f in figures.values() for t in f["data"]}
    assert "in the fit" in names and "ticked in the form" in names
    assert '<script src="/scripts/results.js"></script>' in page
    js = users["ana"].get("/scripts/results.js")
    assert js.headers["content-type"].startswith("text/javascript")
    assert "plotly_click" in js.text


# --- signed analyses: everything, read-only -----------------------------------------------


def test_a_signed_hazard_analysis_shows_its_results_read_only_and_compares(site, signed):
    _, _, users = site
    hazard_analysis, _ = signed
    for who in ("vic", "ana", "dora"):
        r = users[who].get(f"/analyses/{hazard_analysis}")
        assert r.status_code == 200
        page = r.text
        assert '<span class="badge pass">signed off</span>' in page
        for section in ("hazard", "qc", "report", "tables"):
            assert f'<section id="{section}"' in page, (who, section)
        assert 'class="call-card"' in page
        assert f'href="/analyses/{hazard_analysis}/report?download=true"' in page
        assert f'href="/analyses/{hazard_analysis}/tables/hazard.csv"' in page
        assert "/exclusions" not in page and "re-run" not in page.lower()
    compare = users["vic"].get(f"/analyses/{hazard_analysis}/compare")
    assert compare.status_code == 200
    assert re.search(r'<section id="calls">', compare.text)


def test_a_signed_quantification_shows_qc_figures_and_no_exclusion_form(
    site, signed_quantification
):
    _, _, users = site
    page = users["ana"].get(f"/analyses/{signed_quantification}").text
    assert '<span class="badge pass">signed off</span>' in page
    assert 'id="qc-summary"' in page and 'data-std="fig1"' in page
    assert 'id="standards"' in page and 'id="report"' in page and 'id="tables"' in page
    assert 'name="wells"' not in page and "/exclusions" not in page


def test_a_signed_grading_shows_the_incidence_and_the_figures(site, signed):
    _, _, users = site
    _, graded_analysis = signed
    page = users["vic"].get(f"/analyses/{graded_analysis}").text
    assert _order(page, "incidence", "figures", "tables") == sorted(
        _order(page, "incidence", "figures", "tables")
    )
    assert 'id="incidence-table"' in page and 'id="swimmer"' in page


# --- no Python on any results page --------------------------------------------------------


def test_no_results_page_shows_nat_false_none_nan_or_a_python_list(
    site,
    hazard_analysis,
    quantified,
    graded,
):
    _, _, users = site
    vic = users["vic"]
    urls = [
        f"/analyses/{hazard_analysis}",
        f"/analyses/{quantified}",
        f"/analyses/{graded}",
        f"/analyses/{hazard_analysis}/compare",
        "/studies/CO-R01",
        "/studies/CRA-EX-001",
        "/assays?modality=cd28_superagonist",
        "/assays?modality=cd3_bispecific&target=CD20",
    ]
    for url in urls:
        r = vic.get(url)
        assert r.status_code == 200, url
        assert _reprs(r.text) == [], url


def test_the_raw_tables_open_with_every_table_and_readable_cells(site, graded):
    _, _, users = site
    page = users["vic"].get(f"/analyses/{graded}").text
    raw = _section(page, "tables")
    names = re.findall(r'data-table="([^"]+)"', raw)
    assert set(names) >= {"grades", "patients", "cohort"}
    patients = raw.split('data-table="patients"', 1)[1].split("</details>", 1)[0]
    assert "<th>onset_hours (h)</th>" in patients
    # A patient without CRS has no onset and no time of its maximum grade: "—".
    assert re.search(
        r"<td>SIM-0001</td><td>astct2019</td><td>2019/v2</td><td>0</td><td>—</td>", patients
    )


# --- the cohort page ----------------------------------------------------------------------


def test_the_cohort_page_opens_with_incidence_then_swimmer_and_heatmap(site, graded):
    _, _, users = site
    vic = users["vic"]
    page = vic.get("/studies/CO-R01").text
    incidence_at, figures_at, patients_at = _order(
        page, "incidence", "cohort-figures", "per-patient"
    )
    assert incidence_at < figures_at < patients_at
    patients = _stored(vic, graded, "patients")
    expected = cohort_summary(patients)
    table = _section(page, "incidence")
    cells = [
        unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", table, re.S)
    ]
    n = len(patients)
    any_grade = int((patients["max_grade"] >= 1).sum())
    severe = int((patients["max_grade"] >= 3).sum())
    pct, lo, hi = incidence(any_grade, n)
    spct, slo, shi = incidence(severe, n)
    onset = expected.set_index("measure").loc["median onset, hours"]
    assert cells[:7] == [
        "astct2019",
        "2019/v2",
        str(n),
        f"{any_grade}/{n} ({pct:.1f}%)",
        f"{lo:.1f}–{hi:.1f}%",
        f"{severe}/{n} ({spct:.1f}%)",
        f"{slo:.1f}–{shi:.1f}%",
    ]
    assert cells[8] == f"{onset['median']:g} h ({onset['min']:g}–{onset['max']:g})"
    # The example cohort's published-style figures: 48/60 any grade, 18/60 grade >= 3.
    assert (any_grade, severe, n) == (48, 18, 60)
    figures = json.loads(
        re.search(
            r'<script type="application/json" id="cs-figures">(.*?)</script>', page, re.S
        ).group(1)
    )
    swimmer = figures[re.search(r'data-fig="(fig\d+)" id="swimmer"', page).group(1)]
    heatmap = figures[re.search(r'data-fig="(fig\d+)" id="grade-heatmap"', page).group(1)]
    lanes = {y for t in swimmer["data"] if t["type"] == "bar" for y in t["y"]}
    assert lanes == set(patients["patient_id"])  # every patient has a lane
    assert {t["name"] for t in swimmer["data"]} >= {"no CRS", "grade 1", "grade 4", "death"}
    (heat,) = heatmap["data"]
    assert (
        heat["type"] == "heatmap" and heat["y"] == swimmer["layout"]["yaxis"]["categoryarray"][::-1]
    )
    worst = patients.sort_values("max_grade").iloc[-1]
    row = heat["z"][heat["y"].index(worst["patient_id"])]
    assert max(v for v in row if v is not None) == worst["max_grade"]
    assert '<script src="/static/plotly.min.js"></script>' in page


def test_the_qc_summary_counts_failed_curves_and_warns_when_most_samples_are_below_lloq():
    from cytosafe.web.results import qc_summary

    qc = pd.DataFrame(
        {
            "analyte": ["IL-6", "IL-6", "IL-10"],
            "qc_pass": [True, False, True],
            "qc_reasons": ["", "LLOQ above the lowest standard; blank CV 30%", ""],
            "n_samples": [10, 30, 10],
            "share_below_lloq": [0.0, 0.8, 0.1],
            "share_above_uloq": [0.0, 0.0, 0.2],
        }
    )
    curves = pd.DataFrame(
        {"analyte": ["IL-6", "IL-6", "IL-10"], "n_high_cv": [2, 1, 0], "n_extrapolated": [0, 0, 1]}
    )
    il6, il10 = qc_summary(qc, curves)  # in natural order: IL-6 before IL-10
    assert il6["analyte"] == "IL-6" and il10["analyte"] == "IL-10"
    # 24 of IL-6's 40 samples are below its LLOQ: 60%, most of them, though one curve passed.
    assert (il6["n_curves"], il6["passed"], il6["failed"], il6["below"]) == (2, 1, 1, "60.0%")
    assert il6["mostly_below"] and not il10["mostly_below"]
    assert il6["flags"] == [
        "LLOQ above the lowest standard (1 curve)",
        "blank CV 30% (1 curve)",
        "3 wells high replicate CV",
    ]
    assert (il10["below"], il10["above"], il10["flags"]) == (
        "10.0%",
        "20.0%",
        ["1 well extrapolated"],
    )


def test_the_recommender_page_reads_as_text_with_cd69_cd25_as_activation_markers(site):
    _, _, users = site
    r = users["vic"].get("/assays", params={"modality": "cd3_bispecific", "target": "CD20"})
    assert r.status_code == 200 and _reprs(r.text) == []
    panel = dict(re.findall(r'<li data-kind="([a-z_]+)"><b>[^<]+</b>: ([^<]+)<br>', r.text))
    assert "CD69" in panel["activation_markers"] and "CD25" in panel["activation_markers"]
    assert "CD69" not in panel["soluble"] and "IL-6" in panel["soluble"]
    # A format's mechanisms by name, with how well it detects each, never by their key.
    from cytosafe.assays.knowledge import load_knowledge_base

    name = load_knowledge_base().mechanisms["myeloid_amplification"].name
    text = _visible(r.text)
    assert f"{name}: " in text and "myeloid_amplification" not in text


# --- pages read on a desktop and on a phone (journey findings 1-8) ------------------------


def _table(html: str, table_id: str) -> str:
    return html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]


def _opening_tag(html: str, table_id: str) -> str:
    start = html.rindex("<table", 0, html.index(f'id="{table_id}"'))
    return html[start : html.index(">", start) + 1]


def _cards_on_a_phone(html: str, table_id: str) -> list[list[str]]:
    """The data-label of every cell of a table, row by row, after checking that the table
    is one that CSS stacks into cards on a phone: its first cell (the row's name) heads
    the card and carries no label, every other cell carries one (the compare page's bare
    ``<td data-call>`` is labelled "Hazard class" by the CSS)."""
    assert re.search(r'class="data[^"]*\bstack\b', _opening_tag(html, table_id)), table_id
    table = _table(html, table_id)
    heads = re.findall(r"<th\b", table.split("</thead>", 1)[0])
    rows = re.findall(r"<tr\b[^>]*>(.*?)</tr>", table.split("<tbody>", 1)[1], re.S)
    assert rows, table_id
    labels = []
    for row in rows:
        cells = re.findall(r"<td\b([^>]*)>", row)
        assert len(cells) == len(heads), (table_id, cells)
        named = [re.search(r'data-label="([^"]+)"', c) for c in cells]
        assert named[0] is None, (table_id, cells[0])
        labels.append(
            [
                "Hazard class" if c.strip() == "data-call" else unescape(m.group(1))
                for c, m in zip(cells[1:], named[1:], strict=True)
            ]
        )
    return labels


@pytest.fixture(scope="module")
def approved_grading(site):
    """Cohort CO-R02 graded and approved by dora with her password (a manifest to show)."""
    from cytosafe.store.signatures import sign

    _, store, users = site
    r = users["ana"].post("/studies", {"code": "CO-R02", "kind": "clinical", "group": "lab-a"})
    assert r.status_code == 200, r.text
    files = [("file", ("observations.csv", OBSERVATIONS.read_bytes(), "text/csv"))]
    r = users["ana"].post("/studies/CO-R02/observations", files=files)
    assert r.status_code == 201, _flash(r.text)
    analysis = int(re.search(r"grading analysis <a href=\"/analyses/(\d+)\"", r.text).group(1))
    sign(store, analysis, user="dora", password=PASSWORD, meaning="approved", comment="ok")
    return analysis


def test_a_phone_reads_the_qc_manifest_calls_and_incidence_tables_as_labelled_cards(
    site, signed, approved_grading
):
    """Journey findings 5, 6 and 8 (and the incidence, the simulation's comparison): at
    390 px these tables are cards, each headed by the row's name, every other cell led by
    its column's name (web.css stacks ``table.data.stack`` rows and writes each cell's
    data-label before it)."""
    _, _, users = site
    hazard_analysis, _ = signed
    vic = users["vic"]
    page = vic.get(f"/analyses/{hazard_analysis}").text
    qc = _cards_on_a_phone(page, "qc-summary")
    assert qc[0] == ["Curves", "Passed", "Failed", "Samples < LLOQ", "Samples > ULOQ", "Flags"]
    compare = vic.get(f"/analyses/{hazard_analysis}/compare").text
    calls = _cards_on_a_phone(compare, "calls-table")
    assert calls[0] == [
        "Format",
        "Hazard class",
        "Cytokines",
        "Most responders",
        "Rank",
        "Condition, reason",
    ]
    # The per-cytokine and potency tables have grouped headers (one group per test
    # article), so each cell's label names its group and column.
    articles = re.findall(r'name="articles" value="([^"]+)" checked', compare)
    assert articles
    for table_id, first in (
        ("per-cytokine", " · responders"),
        ("potency-table", " · responding fits"),
    ):
        assert re.search(r'class="data[^"]*\bstack\b', _opening_tag(compare, table_id))
        rows = re.findall(
            r"<tr\b[^>]*>(.*?)</tr>", _table(compare, table_id).split("<tbody>", 1)[1], re.S
        )
        assert rows, table_id
        for row in rows:
            cells = re.findall(r"<td\b([^>]*)>", row)
            labels = [re.search(r'data-label="([^"]+)"', c) for c in cells]
            assert labels[0] is None, (table_id, cells[0])
            assert all(labels[1:]), (table_id, cells)
            assert unescape(labels[1].group(1)) in (articles[0], articles[0] + first)
    graded_page = vic.get(f"/analyses/{approved_grading}").text
    assert _cards_on_a_phone(graded_page, "signature-manifest") == [
        ["User name", "Date and time", "Meaning", "Comment"]
    ]
    study_page = vic.get("/studies/CO-R02").text
    assert _cards_on_a_phone(study_page, "analyses")[0] == [
        "Kind",
        "Version",
        "Status",
        "By",
        "Created",
    ]
    for where in (graded_page, study_page):
        (incidence_row,) = _cards_on_a_phone(where, "incidence-table")
        assert incidence_row[0] == "Version" and incidence_row[-1] == "Median duration"
        # At desktop width its long headers wrap, its numbers do not (findings 2 and 3).
        assert re.search(r'class="data fit\b', _opening_tag(where, "incidence-table"))
    css = vic.get("/static/web.css").text
    phone = css.split("@media (max-width: 720px)")[-1]
    assert "table.data.stack td::before { content: attr(data-label);" in phone
    assert 'td[data-call]:not([data-label])::before { content: "Hazard class"; }' in phone
    assert "table.data.fit th { white-space: normal;" in css


def test_a_signed_analysis_says_it_is_signed_off_and_final_once(site, approved_grading):
    """Journey finding 4: the manifest and the read-only note said it twice."""
    _, _, users = site
    page = users["vic"].get(f"/analyses/{approved_grading}").text
    text = " ".join(_visible(page.split('<section id="incidence"', 1)[0]).split())
    assert text.count("Signed off:") == 1, text
    assert "Signed off: the results below are final and read-only" in text
    # The manifest prints each signature's meaning (its statement may say "final") and no
    # second note of its own that the analysis is signed off and final.
    manifest = " ".join(_visible(_section(page, "signatures")).split())
    assert "Signed off" not in manifest and "the analysis is final" not in manifest
    assert "The report and its PDF print this manifest." in manifest


def test_the_heatmap_caption_says_day_0_is_before_the_infusion(site, graded):
    """Journey finding 1: the heatmap's x axis starts at day 0, the observations before the
    infusion (grade_heatmap clips every negative hour to day 0)."""
    from cytosafe.web.cohort import grade_heatmap

    _, _, users = site
    caption = "day 0 is before the infusion, day 1 the first 24 h after it"
    for path in ("/studies/CO-R01", f"/analyses/{graded}"):
        page = users["vic"].get(path).text
        fig = page.split("<b>Highest grade per day", 1)[1].split('id="grade-heatmap"', 1)[0]
        assert caption in fig, path
    grades = pd.DataFrame(
        {"patient_id": ["P1"] * 4, "hours": [-80.0, -2.0, 0.0, 30.0], "grade": [0, 1, 2, 3]}
    )
    patients = pd.DataFrame({"patient_id": ["P1"], "max_grade": [3], "onset_hours": [0.0]})
    (heat,) = grade_heatmap(grades, patients)["data"]
    # Both grades before the infusion fall on day 0 (the higher kept), hour 0 on day 1.
    assert heat["x"] == [0, 1, 2] and heat["z"] == [[1, 2, 3]]


def test_the_exclusion_bar_keeps_its_names_when_a_phone_shortens_its_words(site, quantified):
    """Journey finding 7: at 390 px the bar hides the words a phone has no room for, as
    visually hidden text, so that the field and the buttons keep their full names."""
    _, _, users = site
    page = users["ana"].get(f"/analyses/{quantified}").text
    bar = page.split('<div class="form-bar">', 1)[1].split("</div>", 1)[0]
    names = [
        " ".join(_visible(x).split())
        for x in re.findall(r"<(?:label|button)\b.*?</(?:label|button)>", bar, re.S)
    ]
    assert names == [
        "Reason (required)",
        "re-run the quantification",
        "Exclude ticked",
        "Restore ticked",
    ]
    css = users["ana"].get("/static/web.css").text
    phone = css.split("@media (max-width: 720px)")[-1]
    assert (
        "#exclusions-form .form-bar .lbl, #exclusions-form .form-bar .wide { position: absolute;"
        in phone
    )
