"""Laboratory results reach the store from web uploads (issue 17, items 1 and 5): SDTM LB
(``lb.xpt``) and a FHIR Bundle's laboratory Observations are read as ``cytosafe grade``
reads them (:func:`cytosafe.workflows.grading.read_clinical_input`), through the page's
upload and the API's, so that the stored observations hold what the predictors read
(Hay et al., Blood 2017;130:2295: MCP-1 within 36 h of the infusion). Fixtures are those of
tests/test_clinical_lab_inputs.py (LB written by pyreadstat)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cytosafe.store import Observation, Patient, Store, Study, add_to_group, create_user
from cytosafe.web import create_app
from test_clinical_lab_inputs import _lab, sdtm_with_lb  # noqa: F401  (fixture)
from test_io_fhir import LOCAL_SYSTEM, entries, obs, write  # noqa: F401  (fixture)
from test_io_sdtm import STUDY, domains  # noqa: F401  (fixture)

PASSWORD = "correct horse battery"


@pytest.fixture
def site(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    create_user(store, "root", role="admin", password=PASSWORD)
    create_user(store, "ana", role="analyst", password=PASSWORD, by="root")
    add_to_group(store, "ana", "lab-a", by="root")
    with TestClient(create_app(store)) as client:
        r = client.post("/api/token", data={"username": "ana", "password": PASSWORD})
        token = {"Authorization": f"Bearer {r.json()['access_token']}"}
        for code in ("LAB-PAGE", "LAB-API", "LAB-FHIR"):
            r = client.post("/api/studies", json={"code": code, "kind": "clinical",
                                                  "group": "lab-a"}, headers=token)  # fmt: skip
            assert r.status_code == 201, r.text
        yield client, store, token
    store.close()


def _labs(store: Store, code: str) -> dict[tuple[str, str], tuple[str, str, str]]:
    with store.reader() as session:
        rows = session.execute(
            select(Patient.code, Observation.item, Observation.value, Observation.unit,
                   Observation.source_file)
            .join(Patient, Patient.id == Observation.patient_id)
            .join(Study, Study.id == Patient.study_id)
            .where(Study.code == code, Observation.item.in_(("mcp1", "crp")))
        ).all()  # fmt: skip
    return {(p, item): (value, unit, source) for p, item, value, unit, source in rows}


def test_an_lb_domain_uploaded_on_the_page_is_stored_for_the_predictors(site, sdtm_with_lb):  # noqa: F811
    client, store, _ = site
    r = client.post("/sign-in", data={"username": "ana", "password": PASSWORD})
    assert r.status_code == 200, r.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', r.text).group(1)
    files = [
        (
            "files",
            (f"{d}.xpt", (sdtm_with_lb / f"{d}.xpt").read_bytes(), "application/octet-stream"),
        )
        for d in ("dm", "vs", "ex", "lb")
        if (sdtm_with_lb / f"{d}.xpt").exists()
    ]
    assert "lb.xpt" in [f[1][0] for f in files]
    r = client.post("/studies/LAB-PAGE/observations", files=files,
                    data={"csrf": csrf, "scales": "astct2019", "product": "SIM-CEL"})  # fmt: skip
    assert r.status_code == 201, r.text[-2000:]
    labs = _labs(store, "LAB-PAGE")
    # LB's MCP-1 as reported, CRP in the unit stored with it (9.5 mg/dL = 95 mg/L), each
    # named by its file
    assert labs[(f"{STUDY}-001", "mcp1")][:2] == ("2100", "pg/mL")
    value, unit, _ = labs[(f"{STUDY}-001", "crp")]
    assert (float(value), unit) == (95.0, "mg/L")
    assert labs[(f"{STUDY}-002", "mcp1")][2] == "lb.xpt"


def test_the_sdtm_api_takes_lb_under_any_file_name(site, sdtm_with_lb):  # noqa: F811
    client, store, token = site
    files = {
        d: (f"{d}-export.xpt", (sdtm_with_lb / f"{d}.xpt").read_bytes(), "application/octet-stream")
        for d in ("dm", "vs", "lb")
    }
    r = client.post("/api/studies/LAB-API/observations/sdtm", files=files,
                    data={"product": "SIM-CEL"}, headers=token)  # fmt: skip
    assert r.status_code == 201, r.text
    labs = _labs(store, "LAB-API")
    assert float(labs[(f"{STUDY}-001", "mcp1")][0]) == 2100.0
    assert float(labs[(f"{STUDY}-002", "mcp1")][0]) == 500.0
    assert labs[(f"{STUDY}-002", "mcp1")][2] == "lb-export.xpt"  # the file as uploaded


def test_fhir_laboratory_observations_are_stored(site, tmp_path, entries):  # noqa: F811
    client, store, token = site
    entries = [
        *entries,
        _lab(21, "p1", "2024-05-02T14:00:00Z", "mcp1", 1500, "pg/mL", system=LOCAL_SYSTEM),
        _lab(22, "p1", "2024-05-02T14:00:00Z", "1988-5", 12.0, "mg/L"),
    ]
    bundle = write(tmp_path, entries)
    r = client.post("/api/studies/LAB-FHIR/observations/fhir", data={"product": "SIM-CEL"},
                    files=[("bundle", ("bundle.json", bundle.read_bytes(), "application/json"))],
                    headers=token)  # fmt: skip
    assert r.status_code == 201, r.text
    labs = _labs(store, "LAB-FHIR")
    assert float(labs[("p1", "mcp1")][0]) == 1500.0
    assert float(labs[("p1", "crp")][0]) == 12.0
    assert labs[("p1", "crp")][2] == "bundle.json"
    # The grading report names the uploaded file with its SHA-256 (issue 15).
    import hashlib

    report = client.get(f"/api/analyses/{r.json()['analysis']}/report", headers=token).text
    assert "bundle.json" in report
    assert hashlib.sha256(bundle.read_bytes()).hexdigest() in report
