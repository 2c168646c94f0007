"""The ward view in Chromium (issue 17, item 4): a new observation processed by the monitor
into the store makes its alert appear on an open ward page without a reload (server-sent
events), at phone width (390 px) without sideways scrolling; acknowledging it is audited.
The page says that predictions and alerts support a clinician's judgement."""

from __future__ import annotations

import pandas as pd
import pytest

from cytosafe.clinical.monitor import ALERT_DISCLAIMER, Monitor
from cytosafe.report.hazard import CHROMIUM, CHROMIUM_ARGS
from cytosafe.store import Store, add_to_group, audit_entries, create_study, create_user
from cytosafe.store.monitor import list_alerts
from cytosafe.web import Settings, create_app
from cytosafe.workflows.monitor import FolderSource, MonitorRun
from live_server import serve_app

PASSWORD = "correct horse battery"
COLS = ["patient_id", "time", "item", "value", "unit"]


@pytest.fixture
def ward(tmp_path):

    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    create_user(store, "root", role="admin", password=PASSWORD)
    create_user(store, "clin", role="analyst", password=PASSWORD, by="root")
    add_to_group(store, "clin", "car-t-unit", by="root")
    create_study(store, "WARD-1", user="clin", kind="clinical", group="car-t-unit")
    folder = tmp_path / "feed"
    folder.mkdir()
    pd.DataFrame(
        [("P1", "2024-05-01T08:00:00Z", "infusion", "axi-cel", ""),
         ("P1", "2024-05-01T09:00:00Z", "temperature", "36.9", "C"),
         ("P1", "2024-05-01T09:00:00Z", "systolic_bp", "118", "mmHg"),
         ("P2", "2024-05-01T10:00:00Z", "infusion", "axi-cel", ""),
         ("P2", "2024-05-01T11:00:00Z", "spo2", "97", "%")],
        columns=COLS,
    ).to_csv(folder / "day0.csv", index=False)  # fmt: skip
    run = MonitorRun(Monitor(), FolderSource(folder), store=store, study="WARD-1", user="clin")
    assert run.step() is not None
    app = create_app(store, settings=Settings())
    base, stop = serve_app(app)
    yield base, store, folder, run
    stop()


@pytest.mark.parametrize("width", [390, 1280])
def test_a_new_observation_raises_an_alert_on_the_open_ward_without_reload(ward, width):
    from playwright.sync_api import expect, sync_playwright

    base, store, folder, run = ward
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 844})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/sign-in")
            page.fill("input[name=username]", "clin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.goto(f"{base}/studies/WARD-1/ward")
            expect(page.locator("p.disclaimer")).to_contain_text(ALERT_DISCLAIMER)
            expect(page.locator("tr[data-patient=P1]")).to_be_visible()
            expect(page.locator("#live")).to_contain_text("live", timeout=15_000)
            assert page.locator("[data-alert]").count() == 0
            page.evaluate("window.__sameDocument = true")

            pd.DataFrame(
                [("P1", "2024-05-02T06:00:00Z", "temperature", "38.7", "C")], columns=COLS
            ).to_csv(folder / "day1.csv", index=False)
            update = run.step()  # the monitor reads the new file into the store
            assert {a.kind for a in update.alerts} == {"grade_increase", "vital_sign"}

            row = page.locator("tr[data-patient=P1]")
            expect(row.locator("[data-alert]")).to_have_count(2, timeout=15_000)
            expect(row.locator(".alert.vital_sign")).to_contain_text("fever 38.7 C")
            expect(row.locator("td.grade")).to_contain_text("1")
            assert page.evaluate("window.__sameDocument") is True  # no reload
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            assert errors == []

            # acknowledging: audited, and the alert leaves the active list
            row.locator(".alert.vital_sign button").click()
            expect(page.locator("tr[data-patient=P1] [data-alert]")).to_have_count(
                1, timeout=15_000
            )
        finally:
            browser.close()
    active = list_alerts(store, "WARD-1", active_only=True)
    assert [a["kind"] for a in active] == ["grade_increase"]
    acks = [e for e in audit_entries(store) if e["action"] == "status"]
    assert acks and acks[-1]["object_type"] == "monitor_alert" and acks[-1]["actor"] == "clin"
