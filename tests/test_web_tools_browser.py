"""The MABEL and regimen-simulation pages in a real browser (issue 15, items 2 and 5):
Debian's Chromium through Playwright against a live server, at desktop (1440 x 900) and
phone (390 x 844) widths. Each page answers first, is no wider than its viewport (tables
scroll inside their card), raises no console error, and the simulation's figure is drawn
with its legend clear of the plot area. Screenshots go to ``tests/artifacts/`` (git-ignored)
for people to look at."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from cytosafe.report.hazard import CHROMIUM, CHROMIUM_ARGS
from cytosafe.store import Store, create_user
from cytosafe.web import create_app
from live_server import serve_app

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PASSWORD = "correct horse battery"
WIDTHS = {"desktop": (1440, 900), "phone": (390, 844)}


@pytest.fixture(scope="module")
def live(tmp_path_factory):

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('tools') / 'store.sqlite3'}")
    create_user(store, "root", role="admin", password=PASSWORD)
    create_user(store, "vic", role="viewer", password=PASSWORD, by="root")
    app = create_app(store)
    base, stop = serve_app(app)
    yield base
    stop()
    store.close()


def _sign_in(page, base: str) -> None:
    page.goto(f"{base}/sign-in")
    page.fill("input[name=username]", "vic")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/studies$"))


def _no_wider_than_viewport(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("window.innerWidth")
    assert width <= viewport, f"{page.url}: {width} px wide in a {viewport} px viewport"


def test_mabel_and_simulation_pages_at_desktop_and_phone_widths(live):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    base = live
    no_favicon = httpx.get(f"{base}/favicon.ico").status_code == 404
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, (width, height) in WIDTHS.items():
                context = browser.new_context(viewport={"width": width, "height": height})
                page = context.new_page()
                errors: list[str] = []
                page.on(
                    "console",
                    lambda m, seen=errors: (
                        m.type == "error" and seen.append(f"{m.text} [{m.location.get('url', '')}]")
                    ),
                )
                page.on("pageerror", lambda exc, seen=errors: seen.append(str(exc)))
                failed: list[str] = []
                page.on(
                    "response",
                    lambda r, seen=failed: r.status >= 400 and seen.append(f"{r.status} {r.url}"),
                )
                _sign_in(page, base)

                # MABEL: the form, filled in and sent; the answer comes first.
                page.goto(f"{base}/mabel")
                page.fill("input[name=ecx]", "0.35")
                page.select_option("select[name=ecx_unit]", "ug/mL")
                page.fill("input[name=kd]", "1")
                page.fill("input[name=noael]", "10")
                page.select_option("select[name=species]", "monkey")
                page.click("#form button[type=submit]")
                answer = page.locator("#answer .answer")
                expect(answer).to_contain_text("Recommended starting dose")
                expect(answer).to_contain_text("MABEL (receptor occupancy)")
                top = page.evaluate("document.querySelector('#answer').getBoundingClientRect().top")
                assert top < height, "the answer is not on the first screen"
                _no_wider_than_viewport(page)
                page.screenshot(path=ARTIFACTS / f"mabel-{name}.png", full_page=True)

                # A bad input: the message names the field.
                page.goto(f"{base}/mabel?ecx=abc")
                expect(page.get_by_role("alert")).to_contain_text("ECx of the most sensitive")
                expect(page.locator("input[name=ecx][aria-invalid=true]")).to_have_count(1)
                _no_wider_than_viewport(page)

                # Simulation: the example regimens, fewer subjects, simulated.
                page.goto(f"{base}/simulate")
                expect(page.locator(".simulated")).to_contain_text("SIMULATED")
                page.fill("input[name=subjects]", "60")
                page.click("#form button[type=submit]")
                expect(page.locator("#comparison tbody tr")).to_have_count(3)
                plot = page.locator("#simulation-figure")
                plot.scroll_into_view_if_needed()
                expect(plot.locator(".main-svg").first).to_be_visible(timeout=30_000)
                # The legend sits above the plot area: it covers neither axis.
                legend = plot.locator(".legend").bounding_box()
                area = plot.locator(".nsewdrag").first.bounding_box()
                assert legend["y"] + legend["height"] <= area["y"] + 1, (legend, area)
                # The comparison table scrolls inside its card, not the page.
                wrap = page.evaluate(
                    "(() => { const w = document.querySelector('#comparison-wrap');"
                    " return [w.clientWidth, w.scrollWidth, getComputedStyle(w).overflowX]; })()"
                )
                assert wrap[2] == "auto", wrap
                _no_wider_than_viewport(page)
                page.screenshot(path=ARTIFACTS / f"simulate-{name}.png", full_page=True)

                # The one page answered 422 on purpose (the bad input) logs its status.
                errors = [e for e in errors if not e.endswith("/mabel?ecx=abc]")]
                if no_favicon:
                    # Until the app has a favicon (issue 15, item 5) Chromium's own request
                    # for it is a 404; once it has one, this allows nothing.
                    errors = [e for e in errors if not e.endswith("/favicon.ico]")]
                assert errors == [], (errors, failed)
                context.close()
        finally:
            browser.close()
    for name in WIDTHS:
        for what in ("mabel", "simulate"):
            assert (ARTIFACTS / f"{what}-{name}.png").stat().st_size > 10_000
