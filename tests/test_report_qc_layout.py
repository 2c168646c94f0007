"""The QC report's plate QC table on a desktop and a phone, in Debian's Chromium through
Playwright.

Bioanalysts reported that on a multi-analyte Bio-Plex plate the plate QC table was wider
than a 1440 px screen (its last columns, Controls, vs printed % and Reasons, only in
reach through a scroll bar at the foot of the table's box), and that one long reason made
its row several screens tall (LabKey's IgA-Biotin plate 02-14A22, whose Blank curve's
reason and the vendor's note run to ~480 characters in a column ~130 px wide: a row
~680 px tall). Checked here on the real Bio-Plex export 10JAN07_plate_1 (27 cytokines,
with the vendor's printed curves, so every column of the table is there), one of whose
curves is given that long reason:

* at 1440 px the page does not scroll sideways and the whole table fits its box (every
  column in view, no sideways scroll inside it either);
* at 390 px the page does not scroll sideways (the table may scroll inside its box);
* no row is taller than :data:`MAX_ROW_PX`: a long reason shows its first four lines and
  a visible control (its ``<details>`` summary, "show all") that shows the rest; on paper it
  is printed in full;
* numbers are right-aligned;
* every other table of the report fits its box at 1440 px too (the Flags table, ten flag
  columns beside plate, analyte and wells, was 1296 px in a 1150 px box on this plate), and
  at 390 px each table whose box scrolls sideways says so in a hint above it.

Screenshots go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from cytosafe.report.hazard import CHROMIUM, CHROMIUM_ARGS
from cytosafe.report.qc import render_qc_report
from real_exports import real

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DESKTOP = (1440, 900)
PHONE = (390, 844)
#: The tallest a plate QC row may be: a fifth of the desktop window, so that at least five
#: curves are in view at once (the complaint was a row several screens tall).
MAX_ROW_PX = DESKTOP[1] / 5
#: The reasons CytoSafe gives the Blank curve of LabKey's IgA-Biotin Bio-Plex plate
#: 02-14A22 (commonAssays luminex/test/sampledata), the longest of the real exports: its
#: own fit's and, in the report, the vendor's printed curve's.
LONG_REASON = (
    "curve fit degenerate (inflection c = 1.715e+09 more than 3 decades beyond the "
    "concentrations (5e-05-500); asymptote d = 7.661e+08 more than 100 signal ranges beyond "
    "the observed signal (4-305)); no standard levels meet the acceptance criteria"
)
LONG_VENDOR = (
    "inflection c = 5.562e+06 more than 3 decades beyond the concentrations (5e-05-500); "
    "asymptote d = 3e+06 more than 100 signal ranges beyond the observed signal (0-295)"
)

#: What the page shows of the plate QC table (run in the browser).
MEASURE = """() => {
  const table = document.getElementById('qc-table');
  const wrap = table.closest('.table-wrap');
  const rows = [...table.tBodies[0].rows];
  const long = [...table.querySelectorAll('td.reason')].find(td => td.textContent.includes('4-305'));
  const text = long.querySelector('.reason-text') || long;
  return {
    page: document.documentElement.scrollWidth,
    window: window.innerWidth,
    wrapScroll: wrap.scrollWidth,
    wrapClient: wrap.clientWidth,
    tableRight: table.getBoundingClientRect().right,
    tallest: Math.max(...rows.map(r => r.getBoundingClientRect().height)),
    rows: rows.length,
    numbers: [...table.querySelectorAll('td.n, th.n')].map(c => getComputedStyle(c).textAlign),
    hidden: text.scrollHeight - text.clientHeight,
    control: !!long.querySelector('summary') &&
      long.querySelector('summary').getBoundingClientRect().height > 0,
  };
}"""

#: Every data table of the page, its box, its tallest row, and the text a details.more
#: leaves out, with whether its control is in view (run in the browser).
TABLES = """() => {
  const seen = el => el.getBoundingClientRect().height > 0;
  return {
    page: document.documentElement.scrollWidth,
    window: window.innerWidth,
    tables: [...document.querySelectorAll('table.data')].filter(seen).map(t => {
      const box = t.closest('.table-wrap');
      const hint = box.previousElementSibling;
      const key = t.querySelector('tbody td.key');
      return {
        name: t.id || t.dataset.format || t.tHead.rows[0].cells[0].textContent.trim(),
        table: t.scrollWidth,
        boxScroll: box.scrollWidth,
        box: box.clientWidth,
        tallest: Math.max(...[...t.rows].map(r => r.getBoundingClientRect().height)),
        hint: !!hint && hint.classList.contains('scroll-hint') && seen(hint),
        sticky: key ? getComputedStyle(key).position : null,
      };
    }),
    numbers: [...document.querySelectorAll('table.data td.n, table.data th.n')]
      .map(c => getComputedStyle(c).textAlign),
    cut: [...document.querySelectorAll('details.more')].filter(seen).map(d => {
      const text = d.querySelector('.reason-text');
      return {hidden: text.scrollHeight - text.clientHeight, open: d.open,
              control: seen(d.querySelector('.cue'))};
    }),
  };
}"""


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, int]:
    """The QC report of 10JAN07_plate_1 with the long reason on its first curve."""
    from cytosafe.quantification import quantify

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reader's DataWarnings are tested with it
        result = quantify([real("10JAN07_plate_1.xls")])
    qc = result.calibration.qc
    first = qc.index[0]
    qc.loc[first, "qc_reasons"] = LONG_REASON
    qc.loc[first, "vendor_fit_reason"] = LONG_VENDOR
    qc.loc[first, "qc_pass"] = False
    assert qc["vendor_difference"].notna().any()  # the "vs printed %" column is there
    path = tmp_path_factory.mktemp("qc-layout") / "report.html"
    path.write_text(render_qc_report(result), encoding="utf-8")
    return path, len(qc)


def _measure(browser, path: Path, size: tuple[int, int], name: str, *, media: str = "screen"):
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    try:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri(), wait_until="load")
        page.emulate_media(media=media)
        page.locator("#qc-table").scroll_into_view_if_needed()
        page.locator("#plate-qc").screenshot(path=str(ARTIFACTS / f"qc-layout-{name}.png"))
        seen = page.evaluate(MEASURE)
        # Every table of the report, each plate's standards opened (the first is).
        page.evaluate("document.querySelectorAll('details.plate').forEach(d => d.open = true)")
        page.evaluate(
            "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )
        tables = page.evaluate(TABLES)
        opened = None
        if media == "screen" and seen["control"]:
            # The visible control shows the whole reason.
            page.locator("#qc-table td.reason summary").first.click()
            opened = page.evaluate(MEASURE)
        assert errors == []
        return seen, opened, tables
    finally:
        page.close()


@pytest.fixture(scope="module")
def seen(report):
    from playwright.sync_api import sync_playwright

    path, _ = report
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            return {
                "desktop": _measure(browser, path, DESKTOP, "1440"),
                "phone": _measure(browser, path, PHONE, "390"),
                "print": _measure(browser, path, DESKTOP, "print", media="print"),
            }
        finally:
            browser.close()


def test_the_whole_table_fits_a_1440_px_screen(report, seen):
    shown, _, _ = seen["desktop"]
    assert shown["rows"] == report[1]
    assert shown["page"] <= shown["window"] == DESKTOP[0]
    # every column in view: the table's box does not scroll sideways either
    assert shown["wrapScroll"] <= shown["wrapClient"]
    assert shown["tableRight"] <= DESKTOP[0]


def test_the_page_does_not_scroll_sideways_on_a_phone(seen):
    shown, _, _ = seen["phone"]
    assert shown["page"] <= shown["window"] == PHONE[0]


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_a_long_reason_keeps_its_row_short_and_shows_in_full_on_request(seen, screen):
    shown, opened, _ = seen[screen]
    assert shown["tallest"] <= MAX_ROW_PX
    assert shown["control"]  # the rest of the reason is behind a visible control ...
    assert opened is not None and opened["hidden"] <= 1  # ... that shows all of it


def test_a_long_reason_is_printed_in_full(seen):
    shown, _, _ = seen["print"]
    assert shown["hidden"] <= 1


def test_every_table_of_the_report_fits_its_box_on_a_1440_px_screen(seen):
    """The Flags table too: ten flag columns beside plate, analyte and wells (1296 px in a
    1150 px box on the real Bio-Plex plate, before their names wrapped)."""
    _, _, shown = seen["desktop"]
    names = [t["name"] for t in shown["tables"]]
    assert "qc-table" in names and "flags-table" in names and "Setting" in names
    wide = [
        (t["name"], t["table"], t["box"])
        for t in shown["tables"]
        if max(t["table"], t["boxScroll"]) > t["box"]
    ]
    assert wide == []
    assert [(t["name"], t["tallest"]) for t in shown["tables"] if t["tallest"] > MAX_ROW_PX] == []


def test_on_a_phone_a_table_that_scrolls_in_its_box_says_so(seen):
    _, _, shown = seen["phone"]
    scrolling = [t for t in shown["tables"] if t["boxScroll"] > t["box"]]
    assert {"qc-table", "flags-table"} <= {t["name"] for t in scrolling}
    assert [t["name"] for t in scrolling if not t["hint"]] == []
    # the per-curve tables keep their analyte in view
    assert {t["name"]: t["sticky"] for t in scrolling if t["sticky"]} == {
        "qc-table": "sticky",
        "flags-table": "sticky",
    }


def test_numbers_are_right_aligned(seen):
    shown, _, _ = seen["desktop"]
    assert shown["numbers"] and set(shown["numbers"]) == {"right"}
