"""Reports that read and print well (issue 15, item 6): one test per defect the lab found.

The shipped examples are the cases: the MSD example quantified (ECL counts, a positive
control at one concentration, curves that pass with most samples below the LLOQ), a small
simulated hazard study, the recommendation for a CD3 bispecific, the grading of the
example cohort. The browser tests open the reports in Debian's Chromium (Playwright) at
the width the PDF is printed at, with print media, as :func:`write_hazard_pdf` does.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from cytosafe import analyze
from cytosafe.hazard.simulate import default_treatments, simulate_study
from cytosafe.io.tidy import write_tidy
from cytosafe.report import render_qc_report
from cytosafe.report.hazard import CHROMIUM, CHROMIUM_ARGS, render_hazard_report
from cytosafe.report.page import figure_specs
from test_hazard_report import STUDY as HAZARD_STUDY

ROOT = Path(__file__).resolve().parents[1]
MSD = ROOT / "examples" / "cra-study" / "msd"
COHORT = ROOT / "examples" / "crs-cohort" / "observations.csv"

# tests/test_hazard_report.py's study, under its own id and a title that does not say
# "simulated" (the SIMULATED banner is tested by changing it).
STUDY = HAZARD_STUDY.replace('id = "SIM-001"', 'id = "SIM-READ"').replace(
    'title = "SIMULATED report test study"', 'title = "report readability study"'
)
assert 'id = "SIM-READ"' in STUDY and 'title = "report readability study"' in STUDY


def figures(page: str) -> dict:
    return figure_specs(page)  # plain (rendered) or packed (written) pages


def css(page: str) -> str:
    return page.split("<style>", 1)[1].split("</style>", 1)[0]


def print_rules(page: str) -> str:
    text = css(page)
    return text[text.index("@media print") :]


@pytest.fixture(scope="module")
def msd():
    """The shipped MSD example, quantified as `make demo` does."""
    from cytosafe.quantification import quantify

    files = sorted(str(p.relative_to(ROOT)) for p in MSD.glob("plate_*.csv"))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)  # sources as the demo passes them: relative paths
        result = quantify(files, sample_map=str(MSD / "samples.csv"), study_id="CRA-EX-001")
        page = render_qc_report(result)
    return result, page


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    m, _, _ = simulate_study(
        n_donors=4,
        treatments=default_treatments(4),
        analytes=("IL-2", "IL-6", "TNF", "IFN-g"),
        seed=3,
    )
    write_tidy(m, folder / "measurements.csv")
    (folder / "study.toml").write_text(STUDY, encoding="utf-8")
    out = folder / "out" / "analysis"
    result = analyze(folder / "study.toml", out=out)
    return result, out / "report.html"


def curve_card(page: str, plate: str, analyte: str) -> str:
    m = re.search(
        r'<figure class="fig"[^>]*>\s*<div class="cap">((?:(?!</figure>).)*?)'
        rf'data-plate="{re.escape(plate)}" data-analyte="{re.escape(analyte)}"(.*?)</figure>',
        page,
        re.S,
    )
    assert m, (plate, analyte)
    return m.group(0)


# --- QC report -------------------------------------------------------------------------------
def test_qc_legend_symbols_have_room_so_they_do_not_overwrite_their_label(msd):
    rules = css(msd[1])
    rule = re.search(r"\.legend i \{([^}]*)\}", rules).group(1)
    assert "min-width" in rule and not re.search(r"(?<!-)width: 1\.2em", rule)


def test_each_standard_curve_names_its_analyte_once(msd):
    page = msd[1]
    specs = figures(page)
    for fig_id, plate, analyte in re.findall(
        r'data-fig="(fig\d+)" data-plate="([^"]+)" data-analyte="([^"]+)"', page
    ):
        assert "title" not in specs[fig_id]["layout"]  # the card's caption names it
        assert f"<b>{analyte}</b>" in curve_card(page, plate, analyte)


def test_the_signal_axis_says_which_signal_the_export_holds(msd):
    page = msd[1]
    specs = figures(page)
    curves = re.findall(r'data-fig="(fig\d+)" data-plate="[^"]+" data-analyte=', page)
    assert curves
    assert {specs[f]["layout"]["yaxis"]["title"]["text"] for f in curves} == {"ECL counts"}


def test_signal_names_follow_the_vendor_conventions():
    from cytosafe.report.figures import signal_name

    # The readers' own convention texts (io/msd.py, io/xponent.py, io/bioplex.py).
    assert signal_name("ECL signal (blanks as the zero standard)", "msd") == "ECL counts"
    assert signal_name("Net MFI (Median minus the mean Background Median)") == "net MFI"
    assert signal_name("FI (equivalent to FI - Bkgd weighted by 1/FI^2)") == "FI"
    assert signal_name("signal", "xponent") == "MFI"
    assert signal_name("absorbance at 450 nm") == "OD"
    assert signal_name("signal", "tidy") == "signal as exported"


def test_a_positive_control_at_one_concentration_is_not_a_potency_count(msd):
    page = msd[1]
    potency = page.split('id="potency"')[1].split("</section>")[0]
    cards = re.findall(
        r'<div class="cap"><b>([^<]+)</b><span>(.*?)</span></div>\s*'
        r'<div class="plot pot" id="fig\d+" data-fig="fig\d+" data-treatment="([^"]+)"',
        potency,
        re.S,
    )
    controls = [c for c in cards if c[2] == "anti-CD3"]
    assert controls
    for _, caption, _ in controls:
        assert "donors respond" not in caption
        assert "single concentration 1 ug/mL: no curve" in caption
        assert re.search(r"fold change over the negative control median [\d,.]+ \(", caption)
    # A test article with a concentration series keeps its count of responding donors.
    assert any("donors respond" in c[1] for c in cards if c[2] == "TA-1")


def test_a_passing_curve_shows_its_share_below_the_lloq_and_warns_when_most_are(msd):
    result, page = msd
    qc = result.calibration.qc
    most = qc[qc["qc_pass"] & (qc["share_below_lloq"] > 0.5)].iloc[0]
    card = curve_card(page, most["plate_id"], most["analyte"])
    share = f"{100 * most['share_below_lloq']:.0f}"
    assert '<span class="badge pass">pass</span>' in card
    assert f'<span class="badge warn" data-below-lloq="{share}"' in card and "⚠" in card
    few = qc[qc["qc_pass"] & (qc["share_below_lloq"] < 0.5)].iloc[0]
    card = curve_card(page, few["plate_id"], few["analyte"])
    assert re.search(r'<span class="badge" data-below-lloq="\d+"', card) and "⚠" not in card
    # the QC table flags it too
    table = page.split('id="qc-table"')[1].split("</table>")[0]
    assert table.count("most &lt; LLOQ") == int((qc["share_below_lloq"] > 0.5).sum())


def test_wells_without_a_concentration_are_drawn_never_hidden(msd):
    result, page = msd
    assert "not shown" not in re.sub(r"<script.*?</script>", "", page, flags=re.S)
    specs = figures(page)
    wells = result.calibration.wells
    n_drawn = 0
    for fig_id, plate, analyte in re.findall(
        r'data-fig="(fig\d+)" data-plate="([^"]+)" data-analyte="([^"]+)"', page
    ):
        w = wells[(wells["plate_id"] == plate) & (wells["analyte"] == analyte)]
        w = w[w["sample_type"].isin(["sample", "control"])]
        conc = w["concentration_in_well"].astype(float)
        missing = int((~(conc > 0)).sum())  # NaN or not positive: no place on the curve
        off = [t for t in specs[fig_id]["data"] if t["name"].startswith("no concentration")]
        drawn = len(off[0]["x"]) if off else 0
        assert drawn == missing, (plate, analyte)
        if off:
            assert all("no concentration" in t for t in off[0]["text"])
            assert set(off[0]["marker"]["symbol"]) <= {
                "triangle-left-open",
                "triangle-right-open",
                "square-open",
            }
        n_drawn += drawn
    assert n_drawn >= 1  # the example has such a well


def test_qc_reports_of_the_simulated_example_say_simulated(msd):
    page = msd[1]
    banner = re.search(r'<div class="simulated" id="simulated"[^>]*>(.*?)</div>', page).group(1)
    assert "<b>SIMULATED</b>" in banner and "written by CytoSafe" in banner


def test_a_report_of_data_without_such_labels_says_nothing_of_simulation():
    from test_report_qc import quantify_study
    from test_report_qc import simulate_study as simulate_plates

    page = render_qc_report(quantify_study(simulate_plates(1, ("IL-6",))))
    assert 'id="simulated"' not in page


def test_simulated_reason_reads_only_the_datas_own_labels(tmp_path):
    from cytosafe.report.page import simulated_reason

    real = tmp_path / "run" / "plate.csv"
    real.parent.mkdir()
    real.write_text("Name,Value\nComments,operator AB\n", encoding="utf-8")
    assert simulated_reason(sources=[real], titles=["CRA-2024-007"]) == ""
    assert simulated_reason(sources=[real], flagged=True)
    assert simulated_reason(titles=["SIMULATED example study"])
    (real.parent / "README.md").write_text("# Example - SIMULATED\n", encoding="utf-8")
    assert "README" in simulated_reason(sources=[real])
    assert simulated_reason(patient_ids=["SIM-0001", "SIM-0002"])
    assert simulated_reason(patient_ids=["SIM-0001", "P-7"]) == ""


# --- hazard report ---------------------------------------------------------------------------
def test_dot_plots_join_a_donors_points_only_within_one_treatment(study):
    result, path = study
    page = path.read_text(encoding="utf-8")
    specs = figures(page)
    names = sorted(result.hazard.design.treatments, key=len, reverse=True)

    def treatment(label: str) -> str:
        return next(n for n in names if label == n or label.startswith(n + " "))

    dots = re.findall(r'class="plot dots" id="(fig\d+)"', page)
    assert dots
    gaps = 0
    for fig_id in dots:
        for trace in specs[fig_id]["data"]:
            assert "lines" in trace["mode"] and trace.get("connectgaps") is False
            segment: list[str] = []
            for x in [*trace["x"], None]:
                if x is None:
                    assert len({treatment(s) for s in segment}) <= 1, segment
                    gaps += bool(segment)
                    segment = []
                else:
                    segment.append(x)
    assert gaps > len(dots)  # several treatments per donor, each its own segment


def test_gmr_is_defined_where_it_first_appears(study):
    page = study[1].read_text(encoding="utf-8")
    body = page.split("<body>", 1)[1]
    first = body.index("GMR")
    definition = body.index('id="gmr-definition"')
    assert definition < first
    paragraph = body[definition:].split("</p>", 1)[0]
    assert "geometric mean ratio" in paragraph and "exp(mean over donors of [ln test" in paragraph


def test_hazard_report_of_a_flagged_study_says_simulated(study):
    result, path = study
    assert 'id="simulated"' not in path.read_text(encoding="utf-8")  # not flagged
    folder = path.parent.parent / "flagged"
    folder.mkdir()
    (folder / "measurements.csv").write_bytes(
        (result.hazard.design.path.parent / "measurements.csv").read_bytes()
    )
    (folder / "study.toml").write_text(
        STUDY.replace('title = "report readability study"', "simulated = true"),
        encoding="utf-8",
    )
    page = render_hazard_report(analyze(folder / "study.toml"))
    assert "<b>SIMULATED</b>" in page and "simulated = true" in page


def test_print_css_hides_controls_and_menus_and_leaves_long_tables_to_their_csv(study):
    page = study[1].read_text(encoding="utf-8")
    rules = print_rules(page)
    hidden = re.search(r"\*/\s*([^{}]*)\{ display: none !important; \}", rules).group(1)
    for selector in (".filter", ".tablist", ".modebar-container", ".menulayer",
                     ".updatemenu-container", "nav.toc"):  # fmt: skip
        assert selector in hidden
    assert re.search(r"\.print-annex > table \{ display: none; \}", rules)
    assert "table.data tr:has(> td[data-print-skip]) { display: none; }" in rules
    # A table longer than 30 rows is left to its CSV, with a note saying where it is; a
    # shorter one is printed.
    for table, csv in (("summary-table", "summary.csv"), ("potency-table", "potency.csv")):
        rows = len(result_rows(page, table))
        wrap = f'class="table-wrap print-annex">\n  <table class="data" id="{table}">'
        note = re.search(rf'data-annex="{table}">Not printed: the (\d+) rows[^<]*<code>{csv}', page)
        if rows > 30:
            assert wrap in page and int(note.group(1)) == rows
        else:
            assert wrap not in page and note is None
    assert len(result_rows(page, "summary-table")) > 30


def result_rows(page: str, table_id: str) -> list[str]:
    body = page.split(f'id="{table_id}"')[1].split("</tbody>")[0].split("<tbody>")[1]
    return re.findall(r"<tr[ >]", body)


def test_the_pdf_layout_prints_whole_figures_without_menus_or_raw_tables(study):
    """The page as write_hazard_pdf prints it: A4 width, print media, every figure drawn."""
    from playwright.sync_api import sync_playwright

    from cytosafe.report.hazard import PRINT_WIDTH_PX

    _, path = study
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": PRINT_WIDTH_PX, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri(), wait_until="load")
            page.emulate_media(media="print")
            page.evaluate("() => window.csDrawAll(true)")
            state = page.evaluate(
                """() => {
                const visible = (el) => { const r = el.getBoundingClientRect();
                  return r.width > 0 && r.height > 0 && getComputedStyle(el).display !== 'none'; };
                const clipped = [];
                document.querySelectorAll('.plot .main-svg').forEach((svg) => {
                  const box = svg.getBoundingClientRect();
                  svg.querySelectorAll('.legend, .colorbar').forEach((g) => {
                    const r = g.getBoundingClientRect();
                    if (r.width && (r.right > box.right + 1 || r.bottom > box.bottom + 1
                        || r.left < box.left - 1)) clipped.push(g.getAttribute('class'));
                  });
                });
                return {
                  menus: [...document.querySelectorAll('.updatemenu-container, .menulayer > *')]
                    .filter(visible).length,
                  controls: [...document.querySelectorAll('.filter, .tablist, nav.toc')]
                    .filter(visible).length,
                  heatmaps: document.querySelectorAll('.plot.heat.js-plotly-plot').length,
                  heatmapFigures: document.querySelectorAll('.plot.heat').length,
                  rawRows: [...document.querySelectorAll('#summary-table tbody tr')]
                    .filter(visible).length,
                  notes: [...document.querySelectorAll('[data-annex]')].filter(visible).length,
                  clipped: clipped,
                  wide: document.documentElement.scrollWidth,
                };
              }"""
            )
        finally:
            browser.close()
    assert errors == []
    assert state["menus"] == 0 and state["controls"] == 0
    assert state["clipped"] == []
    assert state["wide"] <= PRINT_WIDTH_PX
    assert state["rawRows"] == 0 and state["notes"] >= 1
    # the donor heatmap: one figure per treatment in the menu, since paper cannot switch
    specs = figures(path.read_text(encoding="utf-8"))
    heat = re.findall(r'class="plot heat" id="(fig\d+)"', path.read_text(encoding="utf-8"))
    options = sum(len(specs[f]["layout"]["updatemenus"][0]["buttons"]) for f in heat)
    assert options > len(heat)
    assert state["heatmapFigures"] == state["heatmaps"] == options


# --- recommendation, simulation, grading -----------------------------------------------------
def test_recommendation_uses_the_report_stylesheet_and_calls_cd69_cd25_activation_markers():
    from cytosafe.assays import recommend
    from cytosafe.report.assays import recommendation_html, recommendation_markdown

    rec = recommend("cd3_bispecific", target="CD20")
    page = recommendation_html(rec)
    assert "--accent:" in page and "@media print" in page  # the shared _report.css
    assert "Cytokine panel" not in page
    groups = dict(
        re.findall(r'data-kind="([a-z_]+)">\s*<h3>.*?</h3>.*?<div>(.*?)</div>', page, re.S)
    )
    assert "CD69" in groups["activation_markers"] and "CD25" in groups["activation_markers"]
    assert "CD69" not in groups["soluble"] and "CD25" not in groups["soluble"]
    assert "IL-6" in groups["soluble"]
    md = recommendation_markdown(rec)
    assert "## Cytokine panel" not in md
    assert re.search(r"\*\*T-cell activation markers\*\*: CD69, CD25", md)


def test_simulation_legends_sit_below_the_axis_and_the_comparison_headers_wrap():
    from cytosafe.report.translate import LEGEND_BELOW

    assert LEGEND_BELOW["yref"] == "container" and LEGEND_BELOW["y"] == 0
    assert LEGEND_BELOW["yanchor"] == "bottom"
    template = (ROOT / "src" / "cytosafe" / "report" / "templates" / "translate.html").read_text(
        encoding="utf-8"
    )
    assert "#comparison-table th, #per-dose-table th { white-space: normal;" in template


def test_grading_report_of_the_simulated_cohort_says_simulated():
    from cytosafe.clinical import grade
    from cytosafe.report.clinical import render_clinical_report

    obs = pd.read_csv(COHORT)
    obs = obs[obs["patient_id"].isin(obs["patient_id"].unique()[:3])]
    result = grade(obs, "astct2019")
    page = render_clinical_report(result, sources=[str(COHORT)])
    assert '<div class="simulated" id="simulated"' in page and "<b>SIMULATED</b>" in page
    plain = obs.assign(patient_id=obs["patient_id"].str.replace("SIM-", "P-"))
    assert 'id="simulated"' not in render_clinical_report(grade(plain, "astct2019"))
