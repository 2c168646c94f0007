"""The hazard report's tables on a desktop and a phone, in Debian's Chromium through Playwright.

On a 1440 px screen three of the example report's tables were wider than their box (the
statistics table 1160 px in a 1150 px box, the ranking 1366 px, the reference library's
performance 1156 px), so their last columns were only in reach through a scroll bar at the
foot of the box, and a ranking row was 194 px tall. Checked here on the example study's
report (examples/cra-study), one of whose curves is given the longest reason of the real
exports (the QC report's layout test's, LabKey's IgA-Biotin Blank curve), as its plate QC
table takes the QC report's treatment:

* at 1440 px every table fits its box (no sideways scroll inside it, nor of the page) and no
  row is taller than :data:`MAX_ROW_PX`;
* at 390 px the page does not scroll sideways; a table box that does says so in a visible
  hint just above it, and the plate QC table holds its analyte column in view;
* no text is cut short without a visible control (details.more's "show all") that shows
  all of it;
* numbers are right-aligned.

Screenshots go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cytosafe import analyze
from cytosafe.report.hazard import CHROMIUM, CHROMIUM_ARGS, render_hazard_report
from test_report_qc_layout import DESKTOP, LONG_REASON, MAX_ROW_PX, PHONE, TABLES

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "examples" / "cra-study" / "study.toml"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, int]:
    """The example study's hazard report, its first curve given LONG_REASON."""
    result = analyze(STUDY)
    qc = result.quantification.calibration.qc
    qc.loc[qc.index[0], "qc_reasons"] = LONG_REASON
    qc.loc[qc.index[0], "qc_pass"] = False
    page = render_hazard_report(result)
    path = tmp_path_factory.mktemp("hazard-layout") / "report.html"
    path.write_text(page, encoding="utf-8")
    return path, page.count('<table class="data')


def _measure(browser, path: Path, size: tuple[int, int], name: str) -> tuple[dict, dict]:
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    try:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri(), wait_until="load")
        for section in ("plate-qc", "statistics", "ranking", "reference"):
            page.locator(f"#{section}").screenshot(
                path=str(ARTIFACTS / f"hazard-layout-{section}-{name}.png")
            )
        seen = page.evaluate(TABLES)
        # Every control that cuts a text short shows all of it when clicked.
        for summary in page.locator("details.more:not([data-fits]) > summary").all():
            summary.click()
        opened = page.evaluate(TABLES)
        assert errors == []
        return seen, opened
    finally:
        page.close()


@pytest.fixture(scope="module")
def seen(report):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            return {
                "desktop": _measure(browser, report[0], DESKTOP, "1440"),
                "phone": _measure(browser, report[0], PHONE, "390"),
            }
        finally:
            browser.close()


def test_every_table_fits_its_box_on_a_1440_px_screen(report, seen):
    shown, _ = seen["desktop"]
    assert len(shown["tables"]) == report[1] >= 10  # all of them measured
    assert shown["page"] <= shown["window"] == DESKTOP[0]
    wide = [
        (t["name"], t["table"], t["box"])
        for t in shown["tables"]
        if max(t["table"], t["boxScroll"]) > t["box"]
    ]
    assert wide == []


def test_no_row_is_taller_than_a_fifth_of_a_1440_px_screen(seen):
    shown, _ = seen["desktop"]
    tall = [(t["name"], t["tallest"]) for t in shown["tables"] if t["tallest"] > MAX_ROW_PX]
    assert tall == []


def test_the_page_does_not_scroll_sideways_on_a_phone_and_a_scrolling_table_says_so(seen):
    shown, _ = seen["phone"]
    assert shown["page"] <= shown["window"] == PHONE[0]
    scrolling = [t for t in shown["tables"] if t["boxScroll"] > t["box"]]
    assert scrolling  # the check below has tables to check
    assert [t["name"] for t in scrolling if not t["hint"]] == []
    # the plate QC table keeps its analyte in view
    (qc,) = [t for t in scrolling if t["name"] == "qc-table"]
    assert qc["sticky"] == "sticky"


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_text_cut_short_has_a_visible_control_that_shows_all_of_it(seen, screen):
    shown, opened = seen[screen]
    cut = [c for c in shown["cut"] if c["hidden"] > 1]
    if screen == "phone":
        assert cut  # the long reason in its narrow column at least (on a desktop it fits)
    assert all(c["control"] and not c["open"] for c in cut)
    # clicked, each shows all of its text
    assert len(opened["cut"]) == len(shown["cut"])
    assert [c for c in opened["cut"] if c["hidden"] > 1] == []


def test_numbers_are_right_aligned(seen):
    shown, _ = seen["desktop"]
    assert shown["numbers"] and set(shown["numbers"]) == {"right"}
