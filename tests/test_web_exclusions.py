"""Excluding standard points in the web app (issue 12, item 8): the REST API (SQLite and
PostgreSQL) and the quantification page's form, with its reason, CSRF and role checks,
and a re-run that refits with the exclusions; the page says which calibration convention
each plate got (item 2)."""

from __future__ import annotations

import io
import json
import re
from html import unescape
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

import store_backends
from cytosafe.store import (
    Analysis,
    AuditEntry,
    Store,
    add_to_group,
    audit_entries,
    create_user,
    list_exclusions,
    load_measurements,
    sign_off,
    verify_audit,
)
from cytosafe.web import Settings, create_app
from cytosafe.workflows import run_quantification, store_quantification
from store_templates import store_template

postgres_cluster = store_backends.postgres_cluster

MSD = Path(__file__).resolve().parents[1] / "examples" / "cra-study" / "msd"
STUDY = "EX-1"
PASSWORD = "correct horse battery"
USERS = {
    "root": ("admin", None),
    "dora": ("study_director", "lab-a"),
    "ana": ("analyst", "lab-a"),
    "vic": ("viewer", "lab-a"),
    "olga": ("analyst", "lab-b"),
}
ANALYTES = ["GM-CSF", "IFN-g", "IL-10", "IL-1b", "IL-2", "IL-6", "IL-8", "TNF"]


def _users(store: Store) -> None:
    for name, (role, group) in USERS.items():
        by = None if name == "root" else "root"
        create_user(store, name, role=role, password=PASSWORD, by=by)
        if group:
            add_to_group(store, name, group, by="root")


def _sample_map() -> bytes:
    table = pd.read_csv(MSD / "samples.csv", dtype=str, keep_default_na=False)
    return table[table["plate_id"] == "MSD-01"].to_csv(index=False).encode()


def _upload() -> list:
    return [
        ("files", ("plate_MSD-01.csv", (MSD / "plate_MSD-01.csv").read_bytes(), "text/csv")),
        ("sample_map", ("samples.csv", _sample_map(), "text/csv")),
    ]


def _count(store: Store, model) -> int:
    with store.reader() as session:
        return session.scalar(select(func.count()).select_from(model))


def _excluded(store: Store) -> set[tuple[str, str, str | None]]:
    return {
        (r.well, r.analyte, r.exclusion_reason)
        for r in list_exclusions(store, STUDY).itertuples(index=False)
    }


# --- the REST API ---------------------------------------------------------------------------


# Exclusions and quantifications grade nothing: no compute worker process to spawn.
NOTHING_GRADED = Settings(compute_workers=0)


@pytest.fixture(scope="module")
def users_template():
    # The users (argon2id hashes, seconds) made once per backend; each fixture that
    # starts from them gets its own copy of the store.
    return store_template(_users)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory):
    """Study EX-1 (lab-a) with plate MSD-01 uploaded through the API; tokens per user."""
    if request.param == "postgresql":
        request.getfixturevalue("postgres_cluster")
    users = request.getfixturevalue("users_template")
    with (
        users.copy(request.param, tmp_path_factory.mktemp("api")) as (store, _),
        TestClient(create_app(store, settings=NOTHING_GRADED)) as client,
    ):
        auth = {}
        for name in USERS:
            r = client.post("/api/token", data={"username": name, "password": PASSWORD})
            auth[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = client.post("/api/studies", json={"code": STUDY, "group": "lab-a"}, headers=auth["ana"])
        assert r.status_code == 201, r.text
        r = client.post(f"/api/studies/{STUDY}/plates", files=_upload(), headers=auth["ana"])
        assert r.status_code == 201, r.text
        yield client, store, auth


def _wells(*items: tuple) -> dict:
    keys = ("plate_id", "well", "analyte", "reason")
    return {"wells": [dict(zip(keys, item, strict=True)) for item in items]}


def test_an_analyst_excludes_a_standard_point_with_its_reason(api):
    client, store, auth = api
    body = _wells(("MSD-01", "A01", "IL-6", "bubble seen in the well"))
    r = client.post(f"/api/studies/{STUDY}/exclusions", json=body, headers=auth["ana"])
    assert r.status_code == 200, r.text
    [event] = r.json()
    assert (event["plate_id"], event["well"], event["analyte"]) == ("MSD-01", "A01", "IL-6")
    assert (event["analytes"], event["reason"]) == (["IL-6"], "bubble seen in the well")
    listed = client.get(f"/api/studies/{STUDY}/exclusions", headers=auth["vic"])
    assert listed.status_code == 200
    assert listed.json() == [
        {
            "plate_id": "MSD-01",
            "well": "A01",
            "analyte": "IL-6",
            "sample_type": "standard",
            "standard_concentration": 2500.0,
            "reason": "bubble seen in the well",
        }
    ]
    entry = audit_entries(store)[-1]
    assert (entry["actor"], entry["action"]) == ("ana", "exclude")
    assert entry["details"]["measurements_sha256"] == event["measurements_sha256"]
    r = client.post(f"/api/studies/{STUDY}/exclusions/restore", json=body, headers=auth["ana"])
    assert r.status_code == 200, r.text
    assert audit_entries(store)[-1]["action"] == "include"
    assert client.get(f"/api/studies/{STUDY}/exclusions", headers=auth["vic"]).json() == []
    assert verify_audit(store) is None


def test_a_well_without_an_analyte_is_excluded_for_every_analyte(api):
    client, store, auth = api
    body = {"wells": [{"plate_id": "MSD-01", "well": "B1", "reason": "plate edge leak"}]}
    r = client.post(f"/api/studies/{STUDY}/exclusions", json=body, headers=auth["ana"])
    assert r.status_code == 200, r.text
    assert sorted(r.json()[0]["analytes"]) == ANALYTES
    assert {a for w, a, _ in _excluded(store) if w == "B01"} == set(ANALYTES)
    r = client.post(f"/api/studies/{STUDY}/exclusions/restore", json=body, headers=auth["ana"])
    assert r.status_code == 200, r.text
    assert _excluded(store) == set()


@pytest.mark.parametrize(
    ("who", "status"), [("vic", 403), ("olga", 404), (None, 401)], ids=["viewer", "other", "anon"]
)
def test_only_an_analyst_of_the_group_excludes(api, who, status):
    client, store, auth = api
    n = _count(store, AuditEntry)
    body = _wells(("MSD-01", "A01", "IL-6", "bubble"))
    headers = auth[who] if who else {}
    for path in ("exclusions", "exclusions/restore"):
        r = client.post(f"/api/studies/{STUDY}/{path}", json=body, headers=headers)
        assert r.status_code == status, r.text
    assert _count(store, AuditEntry) == n
    assert _excluded(store) == set()


def test_a_well_that_does_not_exist_is_422_naming_it_and_nothing_is_written(api):
    client, store, auth = api
    n = _count(store, AuditEntry)
    body = _wells(("MSD-01", "A01", "IL-6", "bubble"), ("MSD-01", "Z99", None, "typo"))
    r = client.post(f"/api/studies/{STUDY}/exclusions", json=body, headers=auth["ana"])
    assert r.status_code == 422
    assert "exclusion 'MSD-01:Z99' matches no well" in r.json()["detail"]
    assert r.json()["error"]["well"] == "Z99"
    r = client.post(
        f"/api/studies/{STUDY}/exclusions/restore", json=_wells(("MSD-01", "A01", None, "x")),
        headers=auth["ana"],
    )  # fmt: skip
    assert r.status_code == 422
    assert "'MSD-01:A01' is not excluded" in r.json()["detail"]
    assert _count(store, AuditEntry) == n
    assert _excluded(store) == set()


@pytest.mark.parametrize("reason", ["", "   "])
def test_an_exclusion_without_a_reason_is_422(api, reason):
    client, store, auth = api
    body = _wells(("MSD-01", "A01", "IL-6", reason))
    r = client.post(f"/api/studies/{STUDY}/exclusions", json=body, headers=auth["ana"])
    assert r.status_code == 422
    assert "reason" in r.text
    assert _excluded(store) == set()


def test_the_quantification_request_lists_optional_options_in_openapi(api):
    client, _, _ = api
    schema = client.get("/openapi.json").json()["components"]["schemas"]["QuantifyIn"]
    for name in ("model", "weighting", "blank", "covariance"):
        assert schema["properties"][name].get("default") is None
        assert "vendor convention" in schema["properties"][name]["description"]
    assert "required" not in schema


def test_a_plate_read_by_a_signed_off_analysis_is_409(api):
    # Last in the module: the signed-off analysis locks the plate for good.
    client, store, auth = api
    result = run_quantification([load_measurements(store, STUDY)])
    analysis = store_quantification(store, result, user="ana", study=STUDY)
    sign_off(store, analysis, user="dora")
    n = _count(store, AuditEntry)
    body = _wells(("MSD-01", "A01", "IL-6", "bubble"))
    r = client.post(f"/api/studies/{STUDY}/exclusions", json=body, headers=auth["ana"])
    assert r.status_code == 409
    assert f"read by signed-off analysis {analysis.id}" in r.json()["detail"]
    assert _count(store, AuditEntry) == n
    assert verify_audit(store) is None


# --- the quantification page --------------------------------------------------------------


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]{64})"', html).group(1)


def _flash(html: str) -> list[str]:
    return [unescape(m) for m in re.findall(r'class="flash [a-z]+"[^>]*>([^<]*)<', html)]


def _ticks(html: str) -> dict[tuple[str, str, str], str]:
    """The wells' checkboxes of the standards form: (plate, well, analyte) -> value."""
    values = [unescape(v) for v in re.findall(r"name=\"wells\" value='([^']*)'", html)]
    return {(k["plate_id"], k["well"], k["analyte"]): v for v in values for k in [json.loads(v)]}


class _Browser:
    def __init__(self, app, name: str) -> None:
        self.client = TestClient(app)
        r = self.client.post("/sign-in", data={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.csrf = _csrf(self.client.get("/studies").text)

    def get(self, url: str, **kw):
        return self.client.get(url, **kw)

    def post(self, url: str, data: dict | None = None, **kw):
        return self.client.post(url, data={"csrf": self.csrf, **(data or {})}, **kw)


@pytest.fixture(scope="module")
def site(tmp_path_factory, users_template):
    """Study EX-1 (lab-a), MSD-01 uploaded and quantified through the pages, with every
    option left at the vendor convention."""
    with (
        users_template.copy("sqlite", tmp_path_factory.mktemp("pages")) as (store, _),
        TestClient(app := create_app(store, settings=NOTHING_GRADED)),
    ):
        users = {name: _Browser(app, name) for name in ("ana", "vic", "dora")}
        ana = users["ana"]
        r = ana.post("/studies", {"code": STUDY, "group": "lab-a"})
        assert r.status_code == 200, r.text
        r = ana.post(f"/studies/{STUDY}/plates", files=_upload())
        assert r.status_code == 201, _flash(r.text)
        r = ana.post(f"/studies/{STUDY}/quantify", {"model": ""}, follow_redirects=False)
        assert r.status_code == 303, r.text
        first = int(r.headers["location"].rsplit("/", 1)[1])
        app.state.jobs.wait(first, timeout=600)
        yield app, store, users, first


def _standards(browser: _Browser, analysis: int) -> pd.DataFrame:
    r = browser.get(f"/analyses/{analysis}/tables/standards.csv")
    return pd.read_csv(io.StringIO(r.text))


def test_the_quantification_page_says_which_convention_each_plate_got(site):
    _, _, users, first = site
    page = users["vic"].get(f"/analyses/{first}").text
    section = page.split('id="conventions"', 1)[1].split("</section>", 1)[0]
    assert "No options set: each plate was calibrated with its reader" in section
    assert re.search(r"<td>MSD-01</td><td>MSD Discovery Workbench</td><td>4PL</td>"
                     r"<td>1/y2</td><td>zero_standard</td>", section)  # fmt: skip


def test_the_standard_points_are_listed_but_only_an_analyst_gets_the_form(site):
    _, _, users, first = site
    page = users["vic"].get(f"/analyses/{first}").text
    assert 'id="standards"' in page and "MSD-01</b> · IL-6" in page
    assert f'action="/analyses/{first}/exclusions"' not in page
    assert _ticks(page) == {}
    page = users["ana"].get(f"/analyses/{first}").text
    assert f'action="/analyses/{first}/exclusions"' in page
    ticks = _ticks(page)
    assert ("MSD-01", "A01", "IL-6") in ticks
    assert len(ticks) == 144  # 8 analytes x (8 standards + 1 blank) x 2 replicates
    r = users["vic"].post(f"/analyses/{first}/exclusions", {"wells": list(ticks.values())[:1],
                                                             "reason": "x"})  # fmt: skip
    assert r.status_code == 403


def test_a_form_without_its_csrf_token_or_reason_excludes_nothing(site):
    _, store, users, first = site
    ana = users["ana"]
    tick = _ticks(ana.get(f"/analyses/{first}").text)[("MSD-01", "A01", "IL-6")]
    n = _count(store, AuditEntry)
    r = ana.client.post(f"/analyses/{first}/exclusions", data={"wells": [tick], "reason": "x"})
    assert r.status_code == 403
    r = ana.post(f"/analyses/{first}/exclusions", {"wells": [tick], "reason": "  "})
    assert r.status_code == 422
    assert _flash(r.text) == ["field 'reason': an exclusion needs a reason (expected a "
                              "documented, assignable reason (ICH M10, 2022, section 8))"]  # fmt: skip
    r = ana.post(f"/analyses/{first}/exclusions", {"reason": "bubble"})
    assert r.status_code == 422
    assert "tick at least one well" in _flash(r.text)[0]
    assert _count(store, AuditEntry) == n
    assert _excluded(store) == set()


def test_an_analyst_excludes_standard_points_and_the_rerun_refits_with_the_reason(site):
    app, store, users, first = site
    ana = users["ana"]
    ticks = _ticks(ana.get(f"/analyses/{first}").text)
    chosen = [ticks[("MSD-01", "A01", "IL-6")], ticks[("MSD-01", "A02", "IL-6")]]
    r = ana.post(
        f"/analyses/{first}/exclusions",
        {"wells": chosen, "reason": "top standard saturated", "action": "exclude", "rerun": "1"},
        follow_redirects=False,
    )
    assert r.status_code == 303, _flash(r.text)
    second = int(r.headers["location"].rsplit("/", 1)[1])
    app.state.jobs.wait(second, timeout=600)
    with store.reader() as session:
        row = session.get(Analysis, second)
        assert (row.version, row.previous_id, row.status) == (2, first, "completed")
    assert _excluded(store) == {
        ("A01", "IL-6", "top standard saturated"),
        ("A02", "IL-6", "top standard saturated"),
    }
    standards = _standards(ana, second)
    left_out = standards[standards["excluded"]]
    assert left_out[["analyte", "nominal", "exclusion_reason"]].values.tolist() == [
        ["IL-6", 2500.0, "top standard saturated"]
    ]
    assert not _standards(ana, first)["excluded"].any()  # the first run is as it was
    page = ana.get(f"/analyses/{second}").text
    assert "2 well(s) were left out of this run with their reasons" in page
    assert '<span class="badge warn">2 excluded</span>' in page
    entries = [e for e in audit_entries(store) if e["action"] in ("exclude", "re-analysis")]
    assert [e["action"] for e in entries] == ["exclude", "exclude", "re-analysis"]
    assert verify_audit(store) is None


def test_a_point_restored_without_a_rerun_is_shown_as_not_yet_refitted(site):
    _, store, users, _ = site
    ana = users["ana"]
    with store.reader() as session:
        second = session.scalar(select(func.max(Analysis.id)))
    tick = _ticks(ana.get(f"/analyses/{second}").text)[("MSD-01", "A02", "IL-6")]
    r = ana.post(f"/analyses/{second}/exclusions",
                 {"wells": [tick], "reason": "re-read: not saturated", "action": "include"})  # fmt: skip
    assert r.status_code == 200
    assert _flash(r.text) == [
        "Restored 1 measurement(s) with the reason 're-read: not saturated'. "
        "Re-run the quantification to refit."
    ]
    assert "(restored; not yet refitted)" in r.text
    assert _excluded(store) == {("A01", "IL-6", "top standard saturated")}


def test_under_a_signed_off_analysis_the_form_is_gone_and_a_post_is_409(site):
    _, store, users, first = site
    with store.reader() as session:
        second = session.scalar(select(func.max(Analysis.id)))
    signed = users["dora"].post(
        f"/analyses/{second}/sign-off",
        {"meaning": "approved", "username": "dora", "password": PASSWORD},
    )
    assert signed.status_code == 200, signed.text
    ana = users["ana"]
    assert f'action="/analyses/{second}/exclusions"' not in ana.get(f"/analyses/{second}").text
    tick = _ticks(ana.get(f"/analyses/{first}").text)[("MSD-01", "B01", "IL-6")]
    n = _count(store, AuditEntry)
    r = ana.post(f"/analyses/{first}/exclusions", {"wells": [tick], "reason": "clot"})
    assert r.status_code == 409
    assert f"read by signed-off analysis {second}" in _flash(r.text)[0]
    assert _count(store, AuditEntry) == n
