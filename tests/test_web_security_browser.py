"""The security headers in a real browser (issue 14, item 5): a self-contained report,
shown on its own and inside the analysis page, runs Plotly and its own scripts in Chromium
under its content security policy with no violation, and the pages (the compare page loads
Plotly from this server) raise none either; the sign-in lockout page, at desktop and
phone widths."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pandas as pd
import pytest

from cytosafe.report.hazard import CHROMIUM, CHROMIUM_ARGS
from cytosafe.store import Store, add_to_group, create_user
from cytosafe.web import Settings, create_app
from live_server import serve_app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MSD = EXAMPLES / "cra-study" / "msd"
PASSWORD = "correct horse battery"
WIDTHS = {"desktop": (1440, 900), "phone": (390, 844)}
# Every CSP violation of the page and its frames, as the browser reports it to the page.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  (window.top.__csp || window.__csp).push(e.violatedDirective + " " + (e.blockedURI || ""));
});
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A live server with a quantified study (its QC report stored)."""

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('live') / 'store.sqlite3'}")
    create_user(store, "root", role="admin", password=PASSWORD)
    create_user(store, "ana", role="analyst", password=PASSWORD, by="root")
    add_to_group(store, "ana", "lab-a", by="root")
    app = create_app(store, settings=Settings(sign_in_account_attempts=3))
    base, stop = serve_app(app)
    base = base
    with httpx.Client(base_url=base, timeout=120) as client:
        r = client.post("/api/token", data={"username": "ana", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = client.post("/api/studies", json={"code": "CSP-001", "group": "lab-a"}, headers=auth)
        assert r.status_code == 201, r.text
        table = pd.read_csv(MSD / "samples.csv", dtype=str, keep_default_na=False)
        samples = table[table["plate_id"] == "MSD-01"].to_csv(index=False).encode()
        files = [
            ("files", ("plate_MSD-01.csv", (MSD / "plate_MSD-01.csv").read_bytes(), "text/csv")),
            ("sample_map", ("samples.csv", samples, "text/csv")),
        ]
        r = client.post("/api/studies/CSP-001/plates", files=files, headers=auth)
        assert r.status_code == 201, r.text
        r = client.post("/api/studies/CSP-001/analyses/quantification", json={}, headers=auth)
        analysis = r.json()["id"]
        app.state.jobs.wait(analysis, timeout=600)
        assert client.get(f"/api/analyses/{analysis}", headers=auth).json()["status"] == (
            "completed"
        )
    yield base, analysis
    stop()
    store.close()


def _sign_in(page, base: str) -> None:
    page.goto(f"{base}/sign-in")
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/studies$"))


def test_a_report_runs_under_its_csp_alone_and_in_the_analysis_page(live, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, analysis = live
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, (width, height) in WIDTHS.items():
                context = browser.new_context(viewport={"width": width, "height": height})
                context.add_init_script(RECORD_VIOLATIONS)
                page = context.new_page()
                console: list[str] = []
                errors: list[str] = []
                page.on("console", lambda m, seen=console: seen.append(m.text))
                page.on("pageerror", lambda exc, seen=errors: seen.append(str(exc)))
                _sign_in(page, base)

                # The report on its own: its inline scripts ran (the "js" class, the
                # figures drawn by Plotly). It is stored packed: plotly.js unpacked and
                # run from a blob: URL, allowed by the policy's 'strict-dynamic'.
                served = page.goto(f"{base}/analyses/{analysis}/report")
                assert 'id="cs-plotly-packed"' in served.text()
                assert "'strict-dynamic'" in served.headers["content-security-policy"]
                expect(page.locator("html.js")).to_have_count(1)
                first = page.locator(".plot[data-fig]").first
                first.scroll_into_view_if_needed()
                expect(first.locator(".main-svg").first).to_be_visible(timeout=30_000)
                page.screenshot(path=shots / f"report-{name}.png")
                assert page.evaluate("window.__csp") == []

                # Inside the analysis page, framed from the same origin.
                page.goto(f"{base}/analyses/{analysis}")
                frame = page.frame_locator("iframe.report")
                expect(frame.locator("html.js")).to_have_count(1, timeout=30_000)
                plot = frame.locator(".plot[data-fig]").first
                plot.scroll_into_view_if_needed()
                expect(plot.locator(".main-svg").first).to_be_visible(timeout=30_000)
                page.screenshot(path=shots / f"analysis-{name}.png", full_page=True)

                assert page.evaluate("window.__csp") == []
                policies = ("Content Security Policy", "Permissions-Policy")
                assert not [m for m in console if any(p in m for p in policies)], console
                assert errors == []
                context.close()
        finally:
            browser.close()
    assert all(f.stat().st_size > 10_000 for f in shots.iterdir())


def test_the_sign_in_lockout_page_at_desktop_and_phone_widths(live, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, _ = live
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.add_init_script(RECORD_VIOLATIONS)
            for attempt in range(4):  # three wrong passwords, then the right one
                page.goto(f"{base}/sign-in")
                page.fill("input[name=username]", "root")
                page.fill("input[name=password]", PASSWORD if attempt == 3 else "not it at all")
                page.click("button[type=submit]")
            alert = page.get_by_role("alert")
            expect(alert).to_contain_text("Too many sign-in attempts")
            expect(page.locator("input[name=username]")).to_be_visible()
            page.screenshot(path=tmp_path / "lockout-desktop.png")
            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=tmp_path / "lockout-phone.png", full_page=True)
            assert page.evaluate("window.__csp") == []
        finally:
            browser.close()
    for name in ("lockout-desktop.png", "lockout-phone.png"):
        assert (tmp_path / name).stat().st_size > 5_000


def test_the_api_docs_load_from_this_server_with_no_violation(live, tmp_path):
    # Swagger UI and ReDoc are served locally (offline_docs): they draw with no request to
    # another host and no CSP violation, at desktop and phone widths.
    from playwright.sync_api import expect, sync_playwright

    base, _ = live
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, (width, height) in WIDTHS.items():
                context = browser.new_context(viewport={"width": width, "height": height})
                context.add_init_script(RECORD_VIOLATIONS)
                page = context.new_page()
                console: list[str] = []
                hosts: set[str] = set()
                page.on("console", lambda m, seen=console: seen.append(m.text))
                page.on("request", lambda r, seen=hosts: seen.add(r.url.split("/")[2]))
                page.goto(f"{base}/docs")
                expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=30_000)
                page.screenshot(path=tmp_path / f"docs-{name}.png")
                assert page.evaluate("window.__csp") == []
                page.goto(f"{base}/redoc")
                title = page.get_by_role("heading", name=re.compile(r"^CytoSafe API"))
                expect(title).to_be_visible(timeout=30_000)
                page.screenshot(path=tmp_path / f"redoc-{name}.png")
                assert page.evaluate("window.__csp") == []
                assert hosts <= {base.split("/")[2]}, hosts
                assert not [m for m in console if "Content Security Policy" in m], console
                context.close()
        finally:
            browser.close()
