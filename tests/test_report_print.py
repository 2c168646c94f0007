"""The example hazard report on paper (issue 15, items 4 and "Why" 6): the PDF that
``cytosafe analyze --pdf`` prints is checked page by page with poppler's ``pdftotext``.

* No page is only a table: the long tables are left to their CSV files (with a note
  saying where their rows are), so every page carries prose, a heading or a figure beside
  whatever table it holds. A page counts as only a table when, after taking away every
  word of the printed tables, fewer than :data:`MIN_OTHER_WORDS` words are left.
* No control or menu is printed: no tab bar, filter box, contents menu, Plotly mode bar or
  dropdown (Plotly draws its menus' arrow as "▼").
* Every figure is printed (drawn, not left empty by lazy loading), legends whole.

``pdftotext`` comes with Debian's ``poppler-utils`` (``apt-get install poppler-utils``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cytosafe import analyze
from cytosafe.report.hazard import CHROMIUM, CHROMIUM_ARGS
from cytosafe.report.page import figure_specs

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "examples" / "cra-study" / "study.toml"
#: A page with fewer words than this outside the printed tables is only a table.
MIN_OTHER_WORDS = 12

PDFTOTEXT = shutil.which("pdftotext")


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z][A-Za-z0-9\-]+", text)


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    assert PDFTOTEXT, "pdftotext is missing: apt-get install poppler-utils"
    out = tmp_path_factory.mktemp("print") / "analysis"
    analyze(STUDY, out=out, pdf=True)
    pdf = out / "report.pdf"
    n = int(
        re.search(
            r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(pdf)], capture_output=True,
                                               text=True, check=True).stdout
        ).group(1)
    )  # fmt: skip
    pages = [
        subprocess.run(
            [PDFTOTEXT, "-f", str(i), "-l", str(i), "-layout", str(pdf), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for i in range(1, n + 1)
    ]
    # What the page holds on paper: the printed tables' words, the controls' texts.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 718, "height": 1000})
            page.goto((out / "report.html").as_uri(), wait_until="load")
            page.emulate_media(media="print")
            page.evaluate("() => window.csDrawAll(true)")
            seen = page.evaluate(
                """() => {
                const shown = el => el.getClientRects().length > 0;
                return {
                  tables: Array.from(document.querySelectorAll("table")).filter(shown)
                    .map(t => t.innerText),
                  tabs: Array.from(document.querySelectorAll(".tablist"))
                    .map(b => Array.from(b.querySelectorAll("button")).map(x => x.innerText.trim())),
                  placeholders: Array.from(document.querySelectorAll("input[placeholder]"))
                    .map(i => i.placeholder),
                  nav: Array.from(document.querySelectorAll("nav.toc a")).map(a => a.textContent.trim()),
                  navsub: Array.from(document.querySelectorAll("nav.toc .sub")).map(a => a.textContent.trim()),
                  plots: document.querySelectorAll(".plot[data-fig]").length,
                  drawn: Array.from(document.querySelectorAll(".plot[data-fig]")).filter(shown)
                    .filter(p => p.querySelector(".main-svg")).length,
                  shownPlots: Array.from(document.querySelectorAll(".plot[data-fig]")).filter(shown).length,
                  clipped: Array.from(document.querySelectorAll(".plot[data-fig] .legend")).filter(l => {
                    const box = l.getBoundingClientRect(), svg = l.closest(".main-svg").getBoundingClientRect();
                    return box.right > svg.right + 1 || box.bottom > svg.bottom + 1 || box.left < svg.left - 1;
                  }).length,
                };
              }"""
            )
            # The same report on a phone: nothing wider than the window, the contents one row.
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.goto((out / "report.html").as_uri(), wait_until="load")
            phone.evaluate("() => window.csDrawAll()")
            seen["phone"] = phone.evaluate(
                """() => ({width: document.documentElement.scrollWidth,
                          nav: document.querySelector("nav.toc").getBoundingClientRect().height})"""
            )
        finally:
            browser.close()
    return pages, seen, figure_specs((out / "report.html").read_text(encoding="utf-8"))


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_the_pdf_has_pages(printed):
    pages, _, _ = printed
    assert len(pages) >= 5


def test_no_page_is_only_a_table(printed):
    pages, seen, _ = printed
    table_words = {w.lower() for t in seen["tables"] for w in _words(t)}
    only_tables = []
    for number, text in enumerate(pages, 1):
        other = [w for w in _words(text) if w.lower() not in table_words]
        if len(other) < MIN_OTHER_WORDS:
            only_tables.append((number, len(other), _squash(text)[:160]))
    assert not only_tables


def test_long_tables_are_left_to_their_csv_files(printed):
    pages, seen, _ = printed
    text = "\n".join(pages)
    assert "Not printed:" in text and "summary.csv" in text
    for table in seen["tables"]:
        assert table.count("\n") < 60  # rows; the long ones are not printed


def test_no_control_or_menu_is_printed(printed):
    pages, seen, _ = printed
    text = _squash("\n".join(pages))
    assert "▼" not in text and "◄" not in text and "►" not in text  # Plotly's menu arrows
    for labels in seen["tabs"]:
        if len(labels) > 1:
            assert _squash(" ".join(labels)) not in text, labels
    for placeholder in seen["placeholders"]:
        assert placeholder not in text
    assert seen["nav"] and _squash(" ".join(seen["nav"][:4])) not in text
    for sub in seen["navsub"]:
        assert sub not in text
    for mode_bar in ("Download plot", "Autoscale", "Reset axes", "Toggle Spike Lines"):
        assert mode_bar not in text


def test_every_figure_is_drawn_on_paper_with_its_legend_whole(printed):
    _, seen, _ = printed
    assert seen["shownPlots"] >= seen["plots"] > 0
    assert seen["drawn"] == seen["shownPlots"]
    assert seen["clipped"] == 0


def test_every_axis_and_colour_bar_names_its_quantity_and_unit(printed):
    from figure_checks import axis_problems

    _, _, specs = printed
    problems = [p for fig_id, spec in specs.items() for p in axis_problems(fig_id, spec)]
    assert not problems


def test_the_report_fits_a_phone(printed):
    _, seen, _ = printed
    assert seen["phone"]["width"] <= 390
    assert seen["phone"]["nav"] < 200  # the contents as one scrolling row, not a screenful
