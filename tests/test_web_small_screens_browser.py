"""Small screens and offline use (issue 15, item 5), in Debian's Chromium through Playwright.

* At 390 px the navigation folds under a Menu button and no page is wider than the
  window (tables scroll inside their card).
* ``/docs`` (Swagger UI) and ``/redoc`` load nothing from another host: their files come
  from this server (the fastapi-offline package's copies), or, without that package,
  ``/docs`` is a plain list of the endpoints.
* The app has a favicon (``/favicon.svg``; ``/favicon.ico`` too), an SVG.
* A report made in the web app from stored plates names their files, never
  ``<DataFrame>`` (issue 15 "Why" 6).

Screenshots go to tests/artifacts/ (git-ignored). The server is tests/test_web_pages.py's
live server.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from cytosafe.report.hazard import CHROMIUM, CHROMIUM_ARGS
from cytosafe.web.offline_docs import DOCS_ASSETS
from test_web_pages import MSD, PASSWORD, _sample_map, live_server, users_template

#: The fixtures of tests/test_web_pages.py this module uses (pytest finds them by name).
FIXTURES = (live_server, users_template)
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PHONE = (390, 844)
PAGES = ("/studies", "/assays", "/aop", "/reference", "/account")


def _sign_in(page, base: str) -> None:
    page.goto(f"{base}/sign-in")
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/studies")


def _watch(page, base: str) -> tuple[list[str], list[str]]:
    """Console errors and requests to any other host than the server."""
    errors: list[str] = []
    foreign: list[str] = []
    host = urlsplit(base).netloc
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "request",
        lambda r: (
            foreign.append(r.url)
            if urlsplit(r.url).scheme in ("http", "https") and urlsplit(r.url).netloc != host
            else None
        ),
    )
    return errors, foreign


def test_the_favicon_is_an_svg_served_here(live_server):
    for path in ("/favicon.svg", "/favicon.ico"):
        r = httpx.get(live_server + path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("image/svg+xml")
        assert r.text.startswith("<svg") and "</svg>" in r.text
    page = httpx.get(live_server + "/sign-in").text
    assert '<link rel="icon" href="/favicon.svg" type="image/svg+xml">' in page


def test_api_docs_load_nothing_from_another_host(live_server):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    for path in ("/docs", "/redoc"):
        text = httpx.get(live_server + path, follow_redirects=True).text
        assert "cdn.jsdelivr.net" not in text and "fonts.googleapis.com" not in text, path
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for path in ("/docs", "/redoc"):
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                errors, foreign = _watch(page, live_server)
                page.goto(live_server + path)
                if DOCS_ASSETS is not None and path == "/docs":
                    expect(page.locator(".swagger-ui .info .title")).to_contain_text(
                        "CytoSafe API", timeout=30_000
                    )
                    expect(page.locator(".opblock-summary-path").first).to_be_visible()
                elif DOCS_ASSETS is not None:
                    expect(page.locator("h1").first).to_contain_text("CytoSafe API", timeout=30_000)
                else:  # without fastapi-offline: the plain list of endpoints
                    expect(page.locator("table.data")).to_contain_text("/api/token")
                page.wait_for_timeout(500)
                page.screenshot(path=ARTIFACTS / f"docs{path.replace('/', '-')}-1440.png")
                assert foreign == [], foreign
                assert errors == [], errors
                page.close()
        finally:
            browser.close()


def test_pages_fit_a_phone_and_the_menu_folds(live_server):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width, height in ((1440, 900), PHONE):
                page = browser.new_context(viewport={"width": width, "height": height}).new_page()
                errors, foreign = _watch(page, live_server)
                _sign_in(page, live_server)
                menu = page.locator("nav.toc > ol")
                if width == PHONE[0]:
                    expect(menu).to_be_hidden()
                    page.click("label.nav-button")
                    expect(menu).to_be_visible()
                    expect(page.locator("nav.toc a[href='/assays']")).to_be_visible()
                    page.screenshot(path=ARTIFACTS / "nav-menu-open-390.png")
                    page.click("label.nav-button")
                    expect(menu).to_be_hidden()
                else:
                    expect(menu).to_be_visible()
                    expect(page.locator("label.nav-button")).to_be_hidden()
                for path in PAGES:
                    page.goto(live_server + path)
                    wide = page.evaluate("document.documentElement.scrollWidth")
                    assert wide <= width, f"{path} is {wide} px wide at {width} px"
                    page.screenshot(path=ARTIFACTS / f"page{path.replace('/', '-')}-{width}.png")
                assert foreign == [], foreign
                assert errors == [], errors
        finally:
            browser.close()


def test_a_report_made_in_the_web_app_names_its_input_files(live_server):
    with httpx.Client(base_url=live_server, timeout=300) as client:
        r = client.post("/api/token", data={"username": "ana", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = client.post(
            "/api/studies", json={"code": "SS-QNT", "group": "lab-a", "kind": "cra"}, headers=auth
        )
        assert r.status_code == 201, r.text
        one = [
            ("files", ("plate_MSD-01.csv", (MSD / "plate_MSD-01.csv").read_bytes(), "text/csv")),
            ("sample_map", ("samples.csv", _sample_map("MSD-01"), "text/csv")),
        ]
        assert client.post("/api/studies/SS-QNT/plates", files=one, headers=auth).status_code == 201
        r = client.post("/api/studies/SS-QNT/analyses/quantification", json={}, headers=auth)
        analysis = r.json()["id"]
        for _ in range(1200):
            status = client.get(f"/api/analyses/{analysis}", headers=auth).json()["status"]
            if status not in ("queued", "running"):
                break
            time.sleep(0.5)
        assert status == "completed", status
        report = client.get(f"/api/analyses/{analysis}/report", headers=auth)
        assert report.status_code == 200
    text = report.text
    assert "&lt;DataFrame&gt;" not in text and "<DataFrame>" not in text
    header = text.split('id="overview"', 1)[1].split("</dl>", 1)[0]
    assert "plate_MSD-01.csv" in header


@pytest.mark.parametrize("path", ["/favicon.svg"])
def test_the_favicon_is_the_reports_icon(path):
    here = Path(__file__).resolve().parents[1] / "src" / "cytosafe"
    web = (here / "web" / "static" / "favicon.svg").read_text(encoding="utf-8")
    report = (here / "report" / "templates" / "favicon.svg").read_text(encoding="utf-8")
    assert web == report
