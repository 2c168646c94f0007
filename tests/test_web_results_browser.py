"""The results pages in a real browser (Debian's Chromium through Playwright), at desktop
(1440 x 900) and phone (390 x 844) widths: a hazard analysis opens with its calls, a
click on a standard point of a quantification's curve ticks its checkbox in the
exclusion form, and the cohort page draws its swimmer plot and heatmap; no page is wider
than the viewport and the console shows no error (issue 15, item 1, "How it is checked").

Screenshots go to tests/artifacts/ (git-ignored) for people to look at. The server is
tests/test_web_pages.py's live server; the data go in through the REST API."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from cytosafe.report.hazard import CHROMIUM, CHROMIUM_ARGS
from test_web_pages import (
    MSD,
    OBSERVATIONS,
    PASSWORD,
    STUDY_FILE,
    _sample_map,
    live_server,
    users_template,
)

#: The fixtures of tests/test_web_pages.py this module uses (pytest finds them by name).
FIXTURES = (live_server, users_template)
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
WIDTHS = {"desktop": (1440, 900), "phone": (390, 844)}


def _wait(client: httpx.Client, auth: dict, analysis: int) -> None:
    for _ in range(1200):
        status = client.get(f"/api/analyses/{analysis}", headers=auth).json()["status"]
        if status not in ("queued", "running"):
            assert status == "completed", status
            return
        time.sleep(0.5)
    pytest.fail(f"analysis {analysis} did not finish")


@pytest.fixture
def results(live_server):  # the fixture imported above
    """A hazard analysis of the example study, a quantification of one plate and a graded
    cohort, made through the API by the analyst ana (lab-a)."""
    with httpx.Client(base_url=live_server, timeout=300) as client:
        r = client.post("/api/token", data={"username": "ana", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        made = {}
        for code, kind in (("CRA-EX-001", "cra"), ("RB-QNT", "cra"), ("RB-COH", "clinical")):
            r = client.post(
                "/api/studies", json={"code": code, "group": "lab-a", "kind": kind}, headers=auth
            )
            assert r.status_code == 201, r.text
        plates = [
            ("files", (p.name, p.read_bytes(), "text/csv")) for p in sorted(MSD.glob("plate_*.csv"))
        ]
        plates.append(
            ("sample_map", ("samples.csv", (MSD / "samples.csv").read_bytes(), "text/csv"))
        )
        r = client.post("/api/studies/CRA-EX-001/plates", files=plates, headers=auth)
        assert r.status_code == 201, r.text
        study = [("study_file", ("study.toml", STUDY_FILE.read_bytes(), "application/toml"))]
        r = client.post("/api/studies/CRA-EX-001/analyses/hazard", files=study, headers=auth)
        assert r.status_code == 202, r.text
        made["hazard"] = r.json()["id"]
        one = [
            ("files", ("plate_MSD-01.csv", (MSD / "plate_MSD-01.csv").read_bytes(), "text/csv")),
            ("sample_map", ("samples.csv", _sample_map("MSD-01"), "text/csv")),
        ]
        r = client.post("/api/studies/RB-QNT/plates", files=one, headers=auth)
        assert r.status_code == 201, r.text
        r = client.post("/api/studies/RB-QNT/analyses/quantification", json={}, headers=auth)
        made["quantification"] = r.json()["id"]
        observations = [("file", ("observations.csv", OBSERVATIONS.read_bytes(), "text/csv"))]
        r = client.post("/api/studies/RB-COH/observations", files=observations, headers=auth)
        assert r.status_code == 201, r.text
        for analysis in made.values():
            _wait(client, auth, analysis)
    return live_server, made


def _sign_in(page, base: str) -> None:
    page.goto(f"{base}/sign-in")
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/studies")


def _fits(page, width: int, what: str) -> None:
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"{what} is {wide} px wide at {width} px"


def test_results_pages_at_desktop_and_phone_widths_in_chromium(results):
    from playwright.sync_api import expect, sync_playwright

    base, made = results
    ARTIFACTS.mkdir(exist_ok=True)
    shots = []
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
                        seen.append(f"{m.text} {m.location}") if m.type == "error" else None
                    ),
                )
                page.on("pageerror", lambda exc, seen=errors: seen.append(str(exc)))
                _sign_in(page, base)

                # A hazard analysis opens with its calls.
                page.goto(f"{base}/analyses/{made['hazard']}")
                expect(page.locator("#hazard .call-card").first).to_be_visible()
                expect(page.locator("#hazard .call-card")).to_have_count(2)  # TA-1, TA-2
                _fits(page, width, "the hazard analysis page")
                shots.append(ARTIFACTS / f"results-hazard-{name}.png")
                page.screenshot(path=shots[-1], full_page=True)

                # A quantification: a click on a standard point ticks its checkbox.
                page.goto(f"{base}/analyses/{made['quantification']}")
                expect(page.locator("#qc-summary tbody tr")).to_have_count(8)
                curve = page.locator("details.curve").first
                curve.locator("summary").click()
                plot = curve.locator(".plot[data-std]")
                plot.scroll_into_view_if_needed()
                point = plot.locator(".scatterlayer .trace path.point").first
                expect(point).to_be_visible(timeout=30_000)
                expect(curve.locator("input[name=wells]:checked")).to_have_count(0)
                box = point.bounding_box()
                page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                ticked = curve.locator("input[name=wells]:checked")
                expect(ticked).to_have_count(1)
                # The box ticked is the point's: the figure rings it in its "ticked" trace.
                state = plot.evaluate(
                    """el => ({ticked: el.data.find(t => t.meta === "ticked"),
                               points: el.data.filter(t => t.customdata)})"""
                )
                assert len(state["ticked"]["x"]) == 1
                tid = ticked.get_attribute("id")
                owner = next(t for t in state["points"] if tid in t["customdata"])
                at = owner["customdata"].index(tid)
                assert (owner["x"][at], owner["y"][at]) == (
                    state["ticked"]["x"][0],
                    state["ticked"]["y"][0],
                )
                _fits(page, width, "the quantification page")
                shots.append(ARTIFACTS / f"results-quantification-{name}.png")
                page.screenshot(path=shots[-1], full_page=True)
                # A second click unticks it (the screenshot may have scrolled the page).
                plot.scroll_into_view_if_needed()
                box = point.bounding_box()
                page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                expect(ticked).to_have_count(0)

                # The cohort page: incidence, then the swimmer plot and the heatmap.
                page.goto(f"{base}/studies/RB-COH")
                expect(page.locator("#incidence-table tbody tr")).to_have_count(1)
                for figure in ("#swimmer", "#grade-heatmap"):
                    page.locator(figure).scroll_into_view_if_needed()
                    expect(page.locator(f"{figure} .main-svg").first).to_be_visible(timeout=30_000)
                _fits(page, width, "the cohort page")
                shots.append(ARTIFACTS / f"results-cohort-{name}.png")
                page.screenshot(path=shots[-1], full_page=True)

                # A browser asks for /favicon.ico by itself while the layout names no icon;
                # the icon is the layout's business (issue 15, item 5), not these pages'.
                assert [e for e in errors if "/favicon.ico'" not in e] == [], errors
                context.close()
        finally:
            browser.close()
    assert all(s.stat().st_size > 20_000 for s in shots)
