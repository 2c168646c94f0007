"""Issue 15's journeys, walked as users walk them: Debian's Chromium through Playwright
against one live server, clicking and typing (only the users are made beforehand).

1. An analyst signs in, creates a study, uploads the example MSD exports without their
   sample map, then attaches the map.
2. She types the design into the form, quantifies, clicks a standard point in a curve's
   figure to exclude it with a reason and refits, and runs the hazard analysis from the
   stored design.
3. She compares the test articles; a study director signs the hazard analysis off with
   his password entered again; the results stay visible, with the signature manifest;
   the Excel workbook (an About sheet and the tables) and the PDF are downloaded.
4. A cohort is graded from SDTM domains uploaded in the browser; its page draws the
   swimmer plot.
5. The MABEL and regimen-simulation pages.

Every page is photographed at 1440×900 and 390×844 under ``tests/artifacts/journeys/``
(git-ignored) for people to look at; the tests assert that no page is wider than its
viewport and that the browser logged no error. One server and one Chromium serve the
module; the journeys run in file order and each builds on the one before.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cytosafe.report.hazard import CHROMIUM, CHROMIUM_ARGS
from cytosafe.store import Store, load_measurements, verify_audit
from cytosafe.web import create_app
from live_server import serve_app
from test_web_pages import MSD, PASSWORD, _users
from test_web_signatures_browser import _pdf_text
from test_web_study_browser import _wide

ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "journeys"
WIDTHS = {"desktop": (1440, 900), "phone": (390, 844)}
CODE = "JRN-CRA-001"
COHORT = "JRN-CRS-001"
FORMATS = ("whole_blood", "pbmc_aqueous", "pbmc_high_density")
#: The example study's design as typed into the form (examples/cra-study/study.toml):
#: name, role, concentrations, unit, formats, matched control, expected to respond in.
DESIGN = (
    ("medium", "negative_control", "0", "", ", ".join(FORMATS), "", ""),
    ("vehicle", "vehicle", "0", "", "whole_blood, pbmc_aqueous", "", ""),
    ("isotype_IgG1", "isotype_control", "10", "ug/mL", ", ".join(FORMATS), "medium", ""),
    ("anti-CD3", "positive_control", "1", "ug/mL", ", ".join(FORMATS), "medium", ""),
    ("CD28-SA", "positive_control", "10", "ug/mL", ", ".join(FORMATS), "medium",
     "pbmc_high_density"),
    ("TA-1", "test", "0.01, 0.1, 1, 10, 100", "ug/mL", "whole_blood, pbmc_aqueous", "vehicle",
     ""),
    ("TA-2", "test", "0.01, 0.1, 1, 10, 100", "ug/mL", "whole_blood, pbmc_aqueous", "vehicle",
     ""),
)  # fmt: skip
REASON = "bubble seen in the well"
#: Minutes an analysis may take on a loaded two-core machine.
RUN_MS = 900_000


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One live server (tests/test_web_pages.py's users: the analyst ana and the study
    director dora of lab-a) and one Chromium for the whole module."""
    from playwright.sync_api import sync_playwright

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('journeys') / 'store.sqlite3'}")
    _users(store)
    base, stop = serve_app(create_app(store))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield {"base": base, "store": store, "browser": browser}
        browser.close()
    stop()
    store.close()


class User:
    """One signed-in person in their own browser context: the console errors, failed
    loads and page widths seen on the way, and a screenshot of each page."""

    def __init__(self, site: dict, name: str) -> None:
        self.base = site["base"]
        self.context = site["browser"].new_context(
            viewport={"width": 1440, "height": 900}, accept_downloads=True
        )
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.wide: dict[str, int] = {}
        self.shots: list[Path] = []
        self.allowed: set[str] = set()
        page = self.page
        page.on(
            "console",
            lambda m: (
                self.errors.append(f"{m.text} [{m.location.get('url', '')}]")
                if m.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on(
            "response",
            lambda r: self.errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        page.goto(f"{self.base}/sign-in")
        page.fill("input[name=username]", name)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/studies$"))

    def shoot(self, name: str) -> None:
        """The page at both widths: a full-page screenshot and how far it overflows."""
        page = self.page
        # Figures are drawn as they scroll into view; a full-page shot scrolls nothing, so
        # draw them all first (report.js's csDrawAll, as printing does).
        page.evaluate("window.csDrawAll ? window.csDrawAll() : null")
        for label, (width, height) in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(200)  # Plotly redraws on resize
            # From the top: a full-page shot taken scrolled draws the sticky sidebar midway.
            page.evaluate("window.scrollTo(0, 0)")
            self.wide[f"{name}-{label}"] = _wide(page)
            path = ARTIFACTS / f"{name}-{label}.png"
            page.screenshot(path=path, full_page=True)
            self.shots.append(path)
        page.set_viewport_size({"width": 1440, "height": 900})

    def check(self) -> None:
        """No console error, no failed load but those meant, no page wider than its
        viewport, every screenshot drawn."""
        errors = [e for e in self.errors if not any(a in e for a in self.allowed)]
        assert errors == [], errors
        assert {k: v for k, v in self.wide.items() if v > 0} == {}, self.wide
        assert all(s.stat().st_size > 5_000 for s in self.shots)

    def close(self) -> None:
        self.context.close()


def _wait_for_run(page) -> int:
    """Wait on an analysis page until its run ends (the page reloads itself); its id."""
    from playwright.sync_api import expect

    page.wait_for_url(re.compile(r"/analyses/\d+$"))
    expect(page.locator("#job")).to_have_count(0, timeout=RUN_MS)
    expect(page.get_by_role("alert")).to_have_count(0)  # "The analysis failed: ..."
    return int(page.url.rsplit("/", 1)[1])


@pytest.fixture(scope="module")
def made() -> dict:
    """What the journeys made, for the journeys after them."""
    return {}


def test_1_sign_in_create_a_study_upload_without_a_map_then_attach_it(site, made, tmp_path):
    from playwright.sync_api import expect

    ana = User(site, "ana")
    page = ana.page
    try:
        ana.shoot("studies")
        page.fill("input[name=code]", CODE)
        page.fill("input[name=title]", "Journey: the example CRA study")
        page.select_option("select[name=kind]", "cra")
        page.fill("input[name=group]", "lab-a")
        page.locator("form:has(input[name=code]) button[type=submit]").click()
        page.wait_for_url(re.compile(f"/studies/{CODE}$"))

        # The exports, without their map: the study page warns before quantifying.
        plates = sorted(MSD.glob("plate_*.csv"))
        page.set_input_files("input[name=files]", [str(p) for p in plates])
        page.locator("form:has(input[name=files]) button[type=submit]").click()
        expect(page.get_by_role("status")).to_contain_text("Stored plates: MSD-01")
        expect(page.locator("#plates a.chip")).to_have_count(len(plates))
        expect(page.locator("#unmapped")).to_contain_text("without donor or treatment")
        ana.shoot("study-unmapped")

        # The map, attached afterwards from the study page.
        form = page.locator("form#attach-map")
        form.locator("input[name=sample_map]").set_input_files(str(MSD / "samples.csv"))
        form.locator("input[name=reason]").fill("map sent by the lab after the run")
        form.locator("button[type=submit]").click()
        expect(page.get_by_role("status")).to_contain_text("Sample map attached")
        expect(page.locator("#unmapped")).to_have_count(0)
        page.locator("#plates a.chip", has_text="MSD-01").click()
        page.wait_for_url(re.compile(r"/plates/MSD-01"))
        expect(page.locator("table.plate td.sample").first).to_be_visible()
        assert page.locator("table.plate td.sample.unmapped").count() == 0
        ana.shoot("plate")
        ana.check()
    finally:
        ana.close()
    made["study"] = CODE


def test_2_design_in_the_form_quantify_exclude_a_point_refit_and_run_the_hazard_analysis(
    site, made
):
    from playwright.sync_api import expect

    if "study" not in made:
        pytest.skip("journey 1 did not make the study")
    ana = User(site, "ana")
    page = ana.page
    try:
        page.get_by_role("link", name=CODE).first.click()  # the studies list
        page.wait_for_url(re.compile(f"/studies/{CODE}$"))
        page.get_by_role("link", name="Enter the design").click()
        page.wait_for_url(re.compile(r"/design$"))
        page.fill("input[name=donors]", ", ".join(f"D0{i}" for i in range(1, 9)))
        page.fill("input[name=concentration_unit]", "pg/mL")
        rows = page.locator("table.design[aria-label=Treatments] tbody tr")
        assert rows.count() >= len(DESIGN), "the form offers too few treatment rows"
        for i, (name, role, conc, unit, formats, control, expect_in) in enumerate(DESIGN):
            row = rows.nth(i)
            row.locator("input[name=t_name]").fill(name)
            row.locator("select[name=t_role]").select_option(role)
            row.locator("input[name=t_conc]").fill(conc)
            row.locator("input[name=t_unit]").fill(unit)
            row.locator("input[name=t_formats]").fill(formats)
            row.locator("input[name=t_control]").fill(control)
            row.locator("input[name=t_expect]").fill(expect_in)
        formats = page.locator("table.design.formats tbody tr")
        for i, name in enumerate(FORMATS):
            formats.nth(i).locator("input[name=f_name]").fill(name)
            formats.nth(i).locator("input[name=f_incubation]").fill("24")
        page.select_option("select[name=rule_set]", "fold2_above_lloq")
        page.fill("input[name=reference_positive_control]", "anti-CD3")
        page.locator("form#design button[type=submit]").click()
        expect(page.get_by_role("status")).to_contain_text(f"Design saved: {len(DESIGN)}")
        ana.shoot("design")

        # Quantify, with the weighting chosen under "More options".
        page.locator("header.top").get_by_role("link", name=CODE).click()
        page.wait_for_url(re.compile(f"/studies/{CODE}$"))
        ana.shoot("study-designed")
        quantify = page.locator("form[action$='/quantify']")
        quantify.locator("details.more summary").click()
        quantify.locator("select[name=weighting]").select_option("1/y2")
        quantify.locator("button[type=submit]").click()
        first = _wait_for_run(page)
        expect(page.locator("#qc-summary tbody tr").first).to_be_visible()

        # Click a standard point of the first curve: its row is ticked; exclude and refit.
        curve = page.locator("details.curve").first
        curve.locator("summary").click()
        plot = curve.locator(".plot[data-std]")
        plot.scroll_into_view_if_needed()
        point = plot.locator(".scatterlayer .trace path.point").first
        expect(point).to_be_visible(timeout=60_000)
        box = point.bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        ticked = curve.locator("input[name=wells]:checked")
        expect(ticked).to_have_count(1)
        label = ticked.get_attribute("aria-label")  # "MSD-01 A1 IL-2"
        ana.shoot("quantification")
        page.fill("#exclusions-form input[name=reason]", REASON)
        page.locator("#exclusions-form button[value=exclude]").click()
        refit = _wait_for_run(page)
        assert refit != first
        row = page.locator("table.data.points tr", has=page.get_by_label(label, exact=True))
        expect(row).to_have_class(re.compile("excluded"))
        expect(row.locator("td.why")).to_contain_text(REASON)
        ana.shoot("quantification-refitted")

        # The hazard analysis from the stored design.
        page.locator("header.top").get_by_role("link", name=CODE).click()
        page.wait_for_url(re.compile(f"/studies/{CODE}$"))
        page.locator("form#hazard-design button[type=submit]").click()
        hazard = _wait_for_run(page)
        expect(page.locator("#hazard .call-card")).to_have_count(2)  # TA-1, TA-2
        ana.shoot("hazard")
        ana.check()
    finally:
        ana.close()
    made["hazard"] = hazard


def test_3_compare_sign_off_and_download_the_workbook_and_the_pdf(site, made, tmp_path):
    from openpyxl import load_workbook
    from playwright.sync_api import expect

    if "hazard" not in made:
        pytest.skip("journey 2 did not make the hazard analysis")
    hazard = made["hazard"]
    ana = User(site, "ana")
    page = ana.page
    try:
        page.goto(f"{ana.base}/analyses/{hazard}")
        page.locator("#compare-link").click()
        page.wait_for_url(re.compile(rf"/analyses/{hazard}/compare"))
        expect(page.locator("[data-article=TA-1]").first).to_be_visible()
        expect(page.locator("[data-article=TA-2]").first).to_be_visible()
        ana.shoot("compare")
        ana.check()
    finally:
        ana.close()

    dora = User(site, "dora")
    page = dora.page
    try:
        page.goto(f"{dora.base}/analyses/{hazard}")
        page.get_by_text("Sign this analysis…").click()  # the form waits below the results
        form = page.locator("#sign-form")
        form.locator("select[name=meaning]").select_option("approved")
        form.locator("textarea[name=comment]").fill("Hazard calls approved")
        if form.locator("input[name=username]").count():
            form.locator("input[name=username]").fill("dora")
        form.locator("input[name=password]").fill(PASSWORD)
        form.locator("button[type=submit]").click()
        page.wait_for_url(re.compile(rf"/analyses/{hazard}#signatures$"))
        expect(page.locator("#signature-manifest tbody tr")).to_have_count(1)
        expect(page.locator("#signature-manifest")).to_contain_text("dora")
        expect(page.locator("#read-only")).to_be_visible()
        # Signed, the results are all still there.
        expect(page.locator("#hazard .call-card")).to_have_count(2)
        expect(page.locator("#compare-link")).to_be_visible()
        links = page.locator("#downloads [data-download]")
        expect(links.first).to_be_visible()
        dora.shoot("hazard-signed")

        with page.expect_download() as got:
            page.locator("#downloads a[data-download=xlsx]").click()
        xlsx = tmp_path / got.value.suggested_filename
        got.value.save_as(xlsx)
        book = load_workbook(xlsx, read_only=True)
        assert book.sheetnames[0] == "About", book.sheetnames
        assert len(book.sheetnames) > 2, book.sheetnames
        about = " ".join(
            str(v) for r in book["About"].iter_rows(values_only=True) for v in r if v is not None
        )
        assert "dora" in about, about[:500]
        assert any("hazard" in name.lower() for name in book.sheetnames), book.sheetnames
        book.close()

        # The PDF link opens Chromium's viewer; "Save link as" is a download of its href.
        href = page.locator("#downloads a[data-download=pdf]").get_attribute("href")
        with page.expect_download(timeout=300_000) as got:
            page.evaluate(
                "href => { const a = document.createElement('a'); a.href = href;"
                " a.download = ''; document.body.append(a); a.click(); a.remove(); }",
                href,
            )
        pdf = tmp_path / "report.pdf"
        got.value.save_as(pdf)
        assert pdf.read_bytes()[:5] == b"%PDF-"
        text = " ".join(_pdf_text(pdf).split())
        assert "Approved by dora" in text, text[:600]
        dora.check()
    finally:
        dora.close()


def test_4_grade_a_cohort_from_an_sdtm_upload_and_see_the_swimmer_plot(site, tmp_path):
    from playwright.sync_api import expect

    from test_io_sdtm import domains as sdtm_domains

    sdtm = sdtm_domains.__wrapped__(tmp_path)
    ana = User(site, "ana")
    page = ana.page
    try:
        page.fill("input[name=code]", COHORT)
        page.fill("input[name=title]", "Journey: a CAR-T cohort")
        page.select_option("select[name=kind]", "clinical")
        page.fill("input[name=group]", "lab-a")
        page.locator("form:has(input[name=code]) button[type=submit]").click()
        page.wait_for_url(re.compile(f"/studies/{COHORT}$"))
        ana.shoot("cohort-empty")
        # The SDTM domains, uploaded on the cohort page, graded on two scales of the picker.
        page.set_input_files("input[name=files]", [str(p) for p in sdtm.values()])
        page.check("input[name=scales][value=astct2019]")
        page.check("input[name=scales][value=lee2014]")
        page.locator("#upload-observations details.more summary").click()
        page.fill("input[name=product]", "SIM-CEL")  # ex.xpt also holds the conditioning
        page.locator("form:has(input[name=files]) button[type=submit]").click()
        expect(page.get_by_role("status")).to_contain_text("observations and graded them")
        # The answer is the cohort page: incidence first, then the swimmer plot.
        expect(page.locator("#incidence-table tbody tr").first).to_be_visible()
        swimmer = page.locator("#swimmer")
        swimmer.scroll_into_view_if_needed()
        expect(swimmer.locator(".main-svg").first).to_be_visible(timeout=60_000)
        ana.shoot("cohort")
        ana.check()
    finally:
        ana.close()


def test_5_the_mabel_and_simulation_pages(site):
    from playwright.sync_api import expect

    ana = User(site, "ana")
    page = ana.page
    try:
        page.get_by_role("link", name="MABEL").first.click()
        page.wait_for_url(re.compile(r"/mabel"))
        page.fill("input[name=ecx]", "0.35")
        page.select_option("select[name=ecx_unit]", "ug/mL")
        page.fill("input[name=kd]", "1")
        page.fill("input[name=noael]", "10")
        page.select_option("select[name=species]", "monkey")
        page.click("#form button[type=submit]")
        expect(page.locator("#answer .answer")).to_contain_text("Recommended starting dose")
        ana.shoot("mabel")

        page.get_by_role("link", name="Simulation").first.click()
        page.wait_for_url(re.compile(r"/simulate"))
        page.fill("input[name=subjects]", "60")
        page.click("#form button[type=submit]")
        expect(page.locator("#comparison tbody tr").first).to_be_visible()
        figure = page.locator("#simulation-figure")
        figure.scroll_into_view_if_needed()
        expect(figure.locator(".main-svg").first).to_be_visible(timeout=60_000)
        ana.shoot("simulate")
        ana.check()
    finally:
        ana.close()


def test_the_journeys_left_the_audit_trail_intact(site, made):
    if "hazard" not in made:
        pytest.skip("the journeys did not run")
    assert verify_audit(site["store"]) is None
    table = load_measurements(site["store"], CODE)
    # The map attached in the browser reached every sample well.
    assert table.loc[table["sample_type"].astype(str) == "sample", "donor_id"].notna().all()
