"""The study journey in a real browser (issue 15, "How it is checked"): Debian's Chromium
through Playwright against a live uvicorn server. Sign in, create a study, upload an export
without its sample map, look at the plate, attach the map, type a design into the form,
quantify, and run the hazard analysis from the stored design; then grade a cohort from
SDTM domains on two scales ticked in the picker.

Screenshots at 1440×900 and 390×844 go to ``tests/artifacts/`` (git-ignored) for people
to look at; the test asserts that none of the study pages is wider than its viewport and
that the browser logged no error.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from cytosafe.report.hazard import CHROMIUM, CHROMIUM_ARGS
from cytosafe.store import (
    Store,
    add_to_group,
    create_study,
    create_user,
    load_measurements,
    verify_audit,
)
from cytosafe.web import create_app
from live_server import serve_app

ROOT = Path(__file__).resolve().parents[1]
MSD = ROOT / "examples" / "cra-study" / "msd"
ARTIFACTS = ROOT / "tests" / "artifacts"
PASSWORD = "correct horse battery"
WIDTHS = {"desktop": (1440, 900), "phone": (390, 844)}
CODE = "WEB-J-001"
COHORT = "WEB-CO-001"
#: The design typed into the form: (name, role, concentrations, unit, matched control).
DESIGN = (
    ("medium", "negative_control", "0", "", ""),
    ("anti-CD3", "positive_control", "1", "ug/mL", ""),
    ("TA-1", "test", "0.01, 0.1, 1, 10, 100", "ug/mL", "medium"),
    ("TA-2", "test", "0.01, 0.1, 1, 10, 100", "ug/mL", "medium"),
)


@pytest.fixture(scope="module")
def live(tmp_path_factory):

    folder = tmp_path_factory.mktemp("journey")
    store = Store(f"sqlite:///{folder / 'store.sqlite3'}")
    create_user(store, "root", role="admin", password=PASSWORD)
    create_user(store, "ana", role="analyst", password=PASSWORD, by="root")
    add_to_group(store, "ana", "lab-a", by="root")
    app = create_app(store)
    base, stop = serve_app(app)
    create_study(store, COHORT, user="ana", kind="clinical", group="lab-a")
    samples = pd.read_csv(MSD / "samples.csv", dtype=str, keep_default_na=False)
    sample_map = folder / "samples_MSD-01.csv"
    samples[samples["plate_id"] == "MSD-01"].to_csv(sample_map, index=False)
    yield base, app, store, sample_map
    stop()
    store.close()


def _wide(page) -> int:
    """How far the page is wider than its viewport (0: it fits)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def _shoot(page, name: str, shots: list[str], widths: dict[str, int]) -> None:
    """A full-page screenshot at each width, and the page's overflow at each."""
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(150)
        widths[f"{name}-{label}"] = _wide(page)
        path = ARTIFACTS / f"study-{name}-{label}.png"
        page.screenshot(path=path, full_page=True)
        shots.append(path.name)
    page.set_viewport_size({"width": 1440, "height": 900})


def test_the_study_journey_from_unmapped_exports_to_a_hazard_call(live, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from test_io_sdtm import domains as sdtm_domains

    sdtm = sdtm_domains.__wrapped__(tmp_path)

    base, app, store, sample_map = live
    ARTIFACTS.mkdir(exist_ok=True)
    shots: list[str] = []
    widths: dict[str, int] = {}
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.on(
                "console",
                lambda m: (
                    errors.append(f"{m.text} {m.location.get('url', '')}".strip())
                    if m.type == "error"
                    else None
                ),
            )
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on(
                "response",
                lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )

            # Sign in and create the study.
            page.goto(f"{base}/sign-in")
            page.fill("input[name=username]", "ana")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r"/studies$"))
            page.fill("input[name=code]", CODE)
            page.fill("input[name=title]", "Journey study")
            page.fill("input[name=group]", "lab-a")
            page.locator("form:has(input[name=code]) button[type=submit]").click()
            page.wait_for_url(re.compile(f"/studies/{CODE}$"))

            # Upload the export without its map.
            page.set_input_files("input[name=files]", str(MSD / "plate_MSD-01.csv"))
            page.locator("form:has(input[name=files]) button[type=submit]").click()
            expect(page.get_by_role("status")).to_contain_text("Stored plates: MSD-01.")

            # The plate: every sample well still without a donor.
            page.get_by_role("link", name=re.compile("MSD-01")).first.click()
            page.wait_for_url(re.compile(r"/plates/MSD-01"))
            expect(page.locator("table.plate td.sample.unmapped").first).to_be_visible()
            _shoot(page, "plate-unmapped", shots, widths)

            # Attach the map from the study page.
            page.goto(f"{base}/studies/{CODE}")
            form = page.locator("form#attach-map")
            form.locator("input[name=sample_map]").set_input_files(str(sample_map))
            form.locator("input[name=reason]").fill("map sent by the lab")
            form.locator("button[type=submit]").click()
            expect(page.get_by_role("status")).to_contain_text("Sample map attached (MSD-01")
            page.goto(f"{base}/studies/{CODE}/plates/MSD-01?analyte=IL-6")
            assert page.locator("table.plate td.sample.unmapped").count() == 0
            well = page.locator("table.plate td.sample").first
            well.hover()
            assert "donor D0" in well.get_attribute("data-info")
            _shoot(page, "plate-mapped", shots, widths)

            # Type the design into the form.
            page.goto(f"{base}/studies/{CODE}/design")
            rows = page.locator("table.design[aria-label=Treatments] tbody tr")
            for i, (name, role, conc, unit, control) in enumerate(DESIGN):
                row = rows.nth(i)
                row.locator("input[name=t_name]").fill(name)
                row.locator("select[name=t_role]").select_option(role)
                row.locator("input[name=t_conc]").fill(conc)
                row.locator("input[name=t_unit]").fill(unit)
                row.locator("input[name=t_formats]").fill("whole_blood")
                row.locator("input[name=t_control]").fill(control)
            formats = page.locator("table.design.formats tbody tr").first
            formats.locator("input[name=f_name]").fill("whole_blood")
            formats.locator("input[name=f_incubation]").fill("24")
            page.locator("form#design button[type=submit]").click()
            expect(page.get_by_role("status")).to_contain_text("Design saved: 4 treatments.")
            _shoot(page, "design", shots, widths)

            # Quantify, then the hazard analysis from the stored design.
            page.goto(f"{base}/studies/{CODE}")
            _shoot(page, "study", shots, widths)
            page.locator("form[action$='/quantify'] button[type=submit]").click()
            page.wait_for_url(re.compile(r"/analyses/\d+$"))
            quantification = int(page.url.rsplit("/", 1)[1])
            app.state.jobs.wait(quantification, timeout=600)
            page.goto(f"{base}/studies/{CODE}")
            page.locator("form#hazard-design button[type=submit]").click()
            page.wait_for_url(re.compile(r"/analyses/\d+$"))
            hazard = int(page.url.rsplit("/", 1)[1])
            app.state.jobs.wait(hazard, timeout=600)
            status = page.request.get(f"{base}/analyses/{hazard}/status").json()
            assert status["status"] == "completed", status
            page.goto(f"{base}/analyses/{hazard}")
            expect(page.get_by_text("TA-1").first).to_be_visible()

            # A cohort graded from SDTM domains, on two scales ticked in the picker.
            page.goto(f"{base}/studies/{COHORT}/observations")
            page.set_input_files("input[name=files]", [str(p) for p in sdtm.values()])
            page.check("input[name=scales][value=lee2014]")
            page.locator("#upload-observations details.more summary").click()
            page.fill("input[name=product]", "SIM-CEL")
            _shoot(page, "observations", shots, widths)
            page.locator("form:has(input[name=files]) button[type=submit]").click()
            expect(page.get_by_role("status")).to_contain_text("observations and graded them")
            for label, (width, height) in WIDTHS.items():
                page.set_viewport_size({"width": width, "height": height})
                path = ARTIFACTS / f"study-hazard-analysis-{label}.png"
                page.screenshot(path=path, full_page=True)
                shots.append(path.name)
        finally:
            browser.close()

    # The browser's own request for /favicon.ico is not a page of this journey (the
    # favicon is issue 15's item 5, served by the app when it has one).
    assert [e for e in errors if not e.endswith("/favicon.ico")] == [], errors
    assert {k: v for k, v in widths.items() if v > 0} == {}, widths
    assert all((ARTIFACTS / name).stat().st_size > 5_000 for name in shots)
    table = load_measurements(store, CODE)
    assert table.loc[table["sample_type"].astype(str) == "sample", "donor_id"].notna().all()
    assert verify_audit(store) is None
