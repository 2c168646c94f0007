"""The ward pages without a browser (issue 17, item 4): who may see and acknowledge, the
study list, the ward's JSON, its event stream's format, and refusals (a CRA study has no
ward; a forged form is refused; an alert is acknowledged once). The event stream itself
is exercised in Chromium (test_web_ward_browser.py)."""

from __future__ import annotations

import html
import json
import re

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from cytosafe.clinical.monitor import ALERT_DISCLAIMER, Monitor
from cytosafe.store import Store, add_to_group, create_study, create_user, import_observations
from cytosafe.store.monitor import list_alerts, record_alerts
from cytosafe.web import Settings, create_app

PASSWORD = "correct horse battery"
ROWS = pd.DataFrame(
    [("P1", "2024-05-01T08:00:00Z", "infusion", "axi-cel", ""),
     ("P1", "2024-05-02T08:00:00Z", "temperature", "38.6", "C"),
     ("P1", "2024-05-02T08:00:00Z", "spo2", "91", "%"),
     ("P1", "2024-05-02T09:00:00Z", "oxygen_device", "nasal_cannula", ""),
     ("P2", "2024-05-01T10:00:00Z", "infusion", "axi-cel", "")],
    columns=["patient_id", "time", "item", "value", "unit"],
)  # fmt: skip


@pytest.fixture
def app(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    create_user(store, "root", role="admin", password=PASSWORD)
    create_user(store, "clin", role="analyst", password=PASSWORD, by="root")
    create_user(store, "vic", role="viewer", password=PASSWORD, by="root")
    for name in ("clin", "vic"):
        add_to_group(store, name, "unit", by="root")
    create_study(store, "WARD-1", user="clin", kind="clinical", group="unit")
    create_study(store, "CRA-1", user="clin", kind="cra", group="unit")
    import_observations(store, ROWS, study="WARD-1", user="clin", source="feed.csv")
    alerts = Monitor().process({"feed.csv": ROWS}).alerts
    record_alerts(store, [a.as_dict() for a in alerts], study="WARD-1", user="clin")
    return create_app(store, settings=Settings())


def _client(app, name):
    client = TestClient(app)
    r = client.post("/sign-in", data={"username": name, "password": PASSWORD})
    assert r.status_code in (200, 303), r.text
    return client


def test_the_ward_lists_clinical_studies_and_says_predictions_support_judgement(app):
    c = _client(app, "vic")
    page = c.get("/ward")
    assert page.status_code == 200 and ALERT_DISCLAIMER in html.unescape(page.text)
    assert "/studies/WARD-1/ward" in page.text and "/studies/CRA-1/ward" not in page.text
    assert 'href="/ward"' in page.text  # the navigation link


def test_a_ward_row_per_patient_with_grade_alerts_and_vital_signs(app):
    c = _client(app, "vic")
    page = c.get("/studies/WARD-1/ward?scale=astct2019")
    assert page.status_code == 200 and ALERT_DISCLAIMER in html.unescape(page.text)
    assert '<script src="/ward.js"></script>' in page.text
    assert 'data-can-ack="0"' in page.text  # a viewer sees alerts, cannot acknowledge
    ward = json.loads(re.search(r'id="ward-data">(.*?)</script>', page.text, re.S).group(1))
    rows = {r["patient_id"]: r for r in ward["patients"]}
    assert rows["P1"]["grade"] == 2 and rows["P1"]["since_infusion"] == "day 1 + 1 h"
    assert {a["kind"] for a in rows["P1"]["alerts"]} == {"grade_increase", "vital_sign"}
    assert [v["label"] for v in rows["P1"]["vitals"]] == ["T", "SpO2", "O2"]
    assert rows["P2"]["alerts"] == [] and rows["P2"]["grade"] == 0  # the infusion row
    assert ward["note"] == ALERT_DISCLAIMER
    assert c.get("/studies/WARD-1/ward/state").json()["patients"] == ward["patients"]


def test_a_cra_study_has_no_ward_and_an_unknown_scale_is_refused(app):
    c = _client(app, "clin")
    assert c.get("/studies/CRA-1/ward").status_code == 404
    assert c.get("/studies/WARD-1/ward?scale=nope").status_code == 422
    assert TestClient(app).get("/studies/WARD-1/ward/state").status_code == 401


def test_acknowledging_needs_an_analyst_and_the_form_token(app):
    store = app.state.store
    (first, *_) = list_alerts(store, "WARD-1")
    url = f"/studies/WARD-1/ward/alerts/{first['id']}/acknowledge"
    viewer = _client(app, "vic")
    page = viewer.get("/studies/WARD-1/ward").text
    token = re.search(r'data-csrf="([0-9a-f]+)"', page).group(1)
    assert viewer.post(url, data={"csrf": token}).status_code == 403
    clin = _client(app, "clin")
    assert clin.post(url, data={"csrf": "forged"}).status_code == 403
    token = re.search(r'data-csrf="([0-9a-f]+)"', clin.get("/studies/WARD-1/ward").text).group(1)
    r = clin.post(url, data={"csrf": token}, headers={"accept": "application/json"})
    assert r.status_code == 200 and r.json()["acknowledged"] == first["id"]
    assert clin.post(url, data={"csrf": token}).status_code == 409
    assert first["id"] not in [a["id"] for a in list_alerts(store, "WARD-1", active_only=True)]
