"""A study's journeys in the web app (issue 15, item 2): exports uploaded without their
sample map get it later, a plate is deleted, a plate's layout is shown, the design is
entered in a form (a study file imported and exported) and the hazard analysis runs from
the stored design; each change is audited and ``verify_audit`` stays intact, and a plate
read by a signed-off analysis is refused (409)."""

from __future__ import annotations

import io
import re
import tomllib

import pandas as pd
import pytest

import test_web_pages as web_pages
from cytosafe.store import load_measurements, sign_off, verify_audit
from test_web_pages import MSD, PASSWORD, STUDY_FILE, _flash, _sample_map

site = web_pages.site  # the pages' site: users of two groups, one app and store
users_template = web_pages.users_template  # the users' template store the site copies


def _export(name: str = "MSD-01") -> tuple[str, tuple[str, bytes, str]]:
    path = MSD / f"plate_{name}.csv"
    return ("files", (path.name, path.read_bytes(), "text/csv"))


def _map(content: bytes, name: str = "samples.csv"):
    return [("sample_map", (name, content, "text/csv"))]


def _new_study(users, code: str, *plates: str) -> None:
    ana = users["ana"]
    r = ana.post("/studies", {"code": code, "group": "lab-a"})
    assert r.status_code == 200, _flash(r.text)
    r = ana.post(f"/studies/{code}/plates", files=[_export(p) for p in plates])
    assert r.status_code == 201, _flash(r.text)


def _api(site, name: str = "ana") -> dict:
    _, _, users = site
    r = users[name].client.post("/api/token", data={"username": name, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


# --- sample maps ------------------------------------------------------------------------------


def test_a_plate_uploaded_without_its_map_gets_it_through_the_study_page(site):
    _, store, users = site
    ana = users["ana"]
    _new_study(users, "JR-MAP", "MSD-01")
    assert load_measurements(store, "JR-MAP")["donor_id"].isna().all()
    # The dead end of issue 15: the same export again, with its map, is refused...
    r = ana.post("/studies/JR-MAP/plates", files=[_export(), *_map(_sample_map("MSD-01"))])
    assert r.status_code == 422 and "already in study" in _flash(r.text)[0]
    assert "Attach or replace a sample map" in _flash(r.text)[0]  # the way out
    # ...and the map is attached to the stored plate instead, as the page asks.
    page = ana.get("/studies/JR-MAP").text
    assert 'action="/studies/JR-MAP/sample-map"' in page
    assert "MSD-01: 60 sample wells without donor or treatment" in page
    r = ana.post(
        "/studies/JR-MAP/sample-map",
        {"plate": "", "reason": "map arrived from the lab"},
        files=_map(_sample_map("MSD-01")),
    )
    assert r.status_code == 200, _flash(r.text)
    assert _flash(r.text)[0].startswith("Sample map attached (MSD-01: ")
    assert 'id="unmapped"' not in r.text
    table = load_measurements(store, "JR-MAP")
    samples = table[table["sample_type"].astype(str) == "sample"]
    assert samples["donor_id"].notna().all() and samples["treatment"].notna().all()
    assert verify_audit(store) is None


def test_a_bad_map_is_a_422_naming_file_row_and_field_and_changes_nothing(site):
    _, store, users = site
    _new_study(users, "JR-BAD", "MSD-01")
    auth = _api(site)
    client = users["ana"].client
    good = pd.read_csv(io.BytesIO(_sample_map("MSD-01")), dtype=str)
    twice = pd.concat([good, good.iloc[[3]]]).to_csv(index=False).encode()
    r = client.post("/api/studies/JR-BAD/sample-map", files=_map(twice, "twice.csv"), headers=auth)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["file"] == "twice.csv" and error["field"] == "sample_id"
    assert error["row"] == len(good) + 2  # the repeated line, after the header
    comma = good.copy()
    comma.loc[0, "treatment_concentration"] = "2,5"
    r = client.post(
        "/api/studies/JR-BAD/sample-map",
        files=_map(comma.to_csv(index=False, sep=";").encode(), "comma.csv"),
        headers=auth,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "treatment_concentration"
    other = good.assign(plate_id="MSD-77").to_csv(index=False).encode()
    r = client.post("/api/studies/JR-BAD/sample-map", files=_map(other), headers=auth)
    assert r.status_code == 422 and "MSD-77" in r.json()["detail"]
    assert load_measurements(store, "JR-BAD")["donor_id"].isna().all()


def test_the_api_attaches_a_study_wide_map_to_every_plate_it_names(site):
    _, store, users = site
    _new_study(users, "JR-TWO", "MSD-01", "MSD-02")
    client = users["ana"].client
    auth = _api(site)
    r = client.post(
        "/api/studies/JR-TWO/sample-map",
        files=_map(_sample_map("MSD-01", "MSD-02")),
        data={"reason": "both plates"},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    assert [d["plate"] for d in r.json()] == ["MSD-01", "MSD-02"]
    # A map without plate_id on a study of two plates: say which plate.
    no_plate = pd.read_csv(io.BytesIO(_sample_map("MSD-01")), dtype=str)
    no_plate = no_plate.drop(columns="plate_id").to_csv(index=False).encode()
    r = client.post("/api/studies/JR-TWO/sample-map", files=_map(no_plate), headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "plate_id"
    r = client.post(
        "/api/studies/JR-TWO/sample-map",
        files=_map(no_plate),
        data={"plate": "MSD-01"},
        headers=auth,
    )
    assert r.status_code == 200 and r.json()[0]["n_changed"] == 0  # the same map again
    assert verify_audit(store) is None


# --- plate layout and deletion ------------------------------------------------------------------


def test_the_plate_layout_shows_every_well_by_sample_type_with_its_culture(site):
    _, _, users = site
    _new_study(users, "JR-LAY", "MSD-01")
    users["ana"].post("/studies/JR-LAY/sample-map", files=_map(_sample_map("MSD-01")))
    r = users["ana"].client.get("/api/studies/JR-LAY/plates/MSD-01/layout", headers=_api(site))
    grid = r.json()
    assert grid["size"] == 96 and len(grid["cells"]) == 8 and len(grid["cells"][0]) == 12
    assert set(grid["counts"]) <= {"standard", "blank", "control", "sample"}
    assert grid["counts"]["standard"] > 0 and grid["counts"]["sample"] > 0
    samples = [c for row in grid["cells"] for c in row if c["type"] == "sample"]
    assert all("donor D0" in c["title"] for c in samples)
    assert all(f"{grid['analyte']}: signal" in c["title"] for c in samples)
    html = users["vic"].get("/studies/JR-LAY/plates/MSD-01?analyte=TNF").text
    assert html.count('data-well="') == 96 and '<option value="TNF" selected>' in html
    assert "Delete plate" not in html  # a viewer changes nothing
    assert users["vic"].get("/studies/JR-LAY/plates/NOPE").status_code == 404


def test_a_plate_is_deleted_after_a_typed_confirmation_and_audited(site):
    _, store, users = site
    _new_study(users, "JR-DEL", "MSD-01", "MSD-02")
    ana = users["ana"]
    assert (
        'action="/studies/JR-DEL/plates/MSD-02/delete"'
        in ana.get("/studies/JR-DEL/plates/MSD-02").text
    )
    r = ana.post("/studies/JR-DEL/plates/MSD-02/delete", {"reason": "duplicate", "confirm": "x"})
    assert r.status_code == 422 and "to confirm" in _flash(r.text)[0]
    assert set(load_measurements(store, "JR-DEL")["plate_id"]) == {"MSD-01", "MSD-02"}
    r = ana.post(
        "/studies/JR-DEL/plates/MSD-02/delete", {"reason": "duplicate", "confirm": "MSD-02"}
    )
    assert r.status_code == 200 and _flash(r.text)[0].startswith("Plate MSD-02 deleted")
    assert set(load_measurements(store, "JR-DEL")["plate_id"]) == {"MSD-01"}
    r = users["vic"].client.delete(
        "/api/studies/JR-DEL/plates/MSD-01", params={"reason": "x"}, headers=_api(site, "vic")
    )
    assert r.status_code == 403
    assert verify_audit(store) is None


def test_after_sign_off_the_map_and_the_deletion_are_refused_with_409(site):
    app, store, users = site
    _new_study(users, "JR-SIGN", "MSD-01")
    ana = users["ana"]
    ana.post("/studies/JR-SIGN/sample-map", files=_map(_sample_map("MSD-01")))
    r = ana.post("/studies/JR-SIGN/quantify", {"model": "4PL"}, follow_redirects=False)
    analysis = int(r.headers["location"].rsplit("/", 1)[1])
    app.state.jobs.wait(analysis, timeout=600)
    sign_off(store, analysis, user="dora")
    auth = _api(site)
    r = ana.client.delete(
        "/api/studies/JR-SIGN/plates/MSD-01", params={"reason": "tidy"}, headers=auth
    )
    assert r.status_code == 409 and "signed-off analysis" in r.json()["detail"]
    r = ana.client.post(
        "/api/studies/JR-SIGN/sample-map", files=_map(_sample_map("MSD-01")), headers=auth
    )
    assert r.status_code == 409
    r = ana.post(
        "/studies/JR-SIGN/sample-map", {"plate": "MSD-01"}, files=_map(_sample_map("MSD-01"))
    )
    assert r.status_code == 409 and "signed-off analysis" in _flash(r.text)[0]
    page = ana.get("/studies/JR-SIGN/plates/MSD-01").text
    assert f"Read by signed-off analysis {analysis}" in page and "Type <b>" not in page
    r = ana.post("/studies/JR-SIGN/plates/MSD-01/delete", {"reason": "x", "confirm": "MSD-01"})
    assert r.status_code == 409
    assert verify_audit(store) is None


# --- the study design -----------------------------------------------------------------------------

FORM = {
    "title": "Form study",
    "donors": "D01, D02",
    "t_name": ["medium", "anti-CD3", "TA-1", ""],
    "t_role": ["negative_control", "positive_control", "test", ""],
    "t_conc": ["0", "1", "0.1, 1, 10", ""],
    "t_unit": ["", "ug/mL", "ug/mL", ""],
    "t_formats": ["whole_blood", "whole_blood", "whole_blood", ""],
    "t_control": ["", "", "medium", ""],
    "t_expect": ["", "whole_blood", "", ""],
    "t_benchmark": ["", "", "", ""],
    "t_description": ["", "", "bispecific", ""],
    "f_name": ["whole_blood", ""],
    "f_code": ["WB", ""],
    "f_incubation": ["24", ""],
    "f_description": ["", ""],
    "rule_set": "fold2_above_lloq",
}


def test_the_design_form_stores_the_study_files_tables_audited(site):
    _, store, users = site
    ana = users["ana"]
    assert ana.post("/studies", {"code": "JR-DES", "group": "lab-a"}).status_code == 200
    assert "No design yet" in ana.get("/studies/JR-DES").text
    assert 'name="t_name"' in ana.get("/studies/JR-DES/design").text
    r = ana.post("/studies/JR-DES/design", FORM)
    assert r.status_code == 200 and _flash(r.text) == ["Design saved: 3 treatments."]
    auth = _api(site)
    design = ana.client.get("/api/studies/JR-DES/design", headers=auth).json()
    assert design["study"] == {"id": "JR-DES", "title": "Form study", "donors": ["D01", "D02"]}
    ta1 = design["treatment"][2]
    assert ta1 == {
        "name": "TA-1",
        "role": "test",
        "concentrations": [0.1, 1.0, 10.0],
        "unit": "ug/mL",
        "formats": ["whole_blood"],
        "negative_control": "medium",
        "description": "bispecific",
    }
    assert design["treatment"][1]["expect_response_in"] == ["whole_blood"]
    assert design["format"] == [{"name": "whole_blood", "code": "WB", "incubation_h": 24.0}]
    text = ana.get("/studies/JR-DES/design.toml").text
    assert tomllib.loads(text) == design  # the export reads back to the stored design
    assert verify_audit(store) is None


def test_the_form_refuses_what_cytosafe_analyze_refuses_naming_the_field(site):
    _, _, users = site
    ana = users["ana"]
    ana.post("/studies", {"code": "JR-DES2", "group": "lab-a"})
    bad = {**FORM, "t_control": ["", "", "anti-CD3", ""]}
    r = ana.post("/studies/JR-DES2/design", bad)
    assert r.status_code == 422
    assert "matched control 'anti-CD3' of 'TA-1' has role 'positive_control'" in _flash(r.text)[0]
    assert 'value="TA-1"' in r.text  # the form keeps what was typed
    r = ana.post("/studies/JR-DES2/design", {**FORM, "t_conc": ["0", "1", "0.1, ten", ""]})
    assert r.status_code == 422 and "'ten' is not a number (treatment 'TA-1')" in _flash(r.text)[0]
    no_negative = {**FORM, "t_role": ["vehicle", "positive_control", "test", ""]}
    no_negative["t_control"] = ["", "", "", ""]
    r = ana.post("/studies/JR-DES2/design", no_negative)
    assert r.status_code == 422 and "no negative control" in _flash(r.text)[0]
    r = ana.client.put(
        "/api/studies/JR-DES2/design",
        json={"treatment": [{"name": "TA-1", "role": "test"}]},
        headers=_api(site),
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "role"
    assert ana.get("/studies/JR-DES2/design.toml").status_code == 404


def test_a_study_file_for_another_id_fills_the_form_and_says_so(site):
    _, _, users = site
    ana = users["ana"]
    ana.post("/studies", {"code": "JR-IMP", "group": "lab-a"})
    upload = [("study_file", ("study.toml", STUDY_FILE.read_bytes(), "application/toml"))]
    r = ana.post("/studies/JR-IMP/design/import", files=upload)
    assert r.status_code == 200
    notice = _flash(r.text)[0]
    assert "is for study 'CRA-EX-001'; it is used as the design of this study, 'JR-IMP'" in notice
    assert "inputs and sample_map were left out" in notice
    assert 'value="CD28-SA"' in r.text and 'value="pbmc_high_density"' in r.text
    assert "No design is stored yet" in r.text  # imported into the form, not stored
    r = ana.client.post(
        "/api/studies/JR-IMP/design/import",
        files=[("study_file", ("study.toml", b"[study\nid = 1", "text/plain"))],
        headers=_api(site),
    )
    assert r.status_code == 422 and r.json()["error"]["row"] == 1


def test_the_hazard_analysis_runs_from_the_stored_design(site):
    app, store, users = site
    _new_study(users, "JR-HAZ", "MSD-01")
    ana = users["ana"]
    ana.post("/studies/JR-HAZ/sample-map", files=_map(_sample_map("MSD-01")))
    r = ana.client.post(
        "/api/studies/JR-HAZ/design/import",
        files=[("study_file", ("study.toml", STUDY_FILE.read_bytes(), "application/toml"))],
        headers=_api(site),
    )
    assert r.status_code == 200 and r.json()["design"]["study"]["id"] == "JR-HAZ"
    page = ana.get("/studies/JR-HAZ").text
    assert 'action="/studies/JR-HAZ/hazard-design"' in page
    r = ana.post("/studies/JR-HAZ/hazard-design", follow_redirects=False)
    assert r.status_code == 303, _flash(r.text)
    analysis = int(r.headers["location"].rsplit("/", 1)[1])
    app.state.jobs.wait(analysis, timeout=600)
    out = ana.get(f"/analyses/{analysis}/status").json()
    assert out["status"] == "completed", out
    settings = ana.client.get(f"/api/analyses/{analysis}", headers=_api(site)).json()
    assert settings["kind"] == "hazard"
    # The same example study file, uploaded as it is (id CRA-EX-001), runs as JR-HAZ.
    upload = [("study_file", ("study.toml", STUDY_FILE.read_bytes(), "application/toml"))]
    r = ana.post("/studies/JR-HAZ/hazard", files=upload)
    assert r.status_code == 202, _flash(r.text)
    assert "is for study 'CRA-EX-001'; it was run as this study, 'JR-HAZ'" in _flash(r.text)[0]
    second = int(_flash(r.text)[0].rsplit("Analysis ", 1)[1].split()[0])
    app.state.jobs.wait(second, timeout=600)
    assert ana.get(f"/analyses/{second}/status").json()["status"] == "completed"
    assert verify_audit(store) is None


@pytest.mark.parametrize("code", ["JR-NODESIGN"])
def test_without_a_design_the_run_from_design_is_a_404(site, code):
    _, _, users = site
    _new_study(users, code, "MSD-01")
    r = users["ana"].client.post(f"/api/studies/{code}/analyses/hazard/design", headers=_api(site))
    assert r.status_code == 404


# --- observations of a clinical study --------------------------------------------------------


def test_the_observations_upload_picks_scales_and_reads_sdtm_and_fhir(site, tmp_path):
    from cytosafe.data import load
    from test_io_fhir import entries as fhir_entries
    from test_io_fhir import write as write_bundle
    from test_io_sdtm import STUDY as SDTM_STUDY
    from test_io_sdtm import domains as sdtm_domains

    _, store, users = site
    ana = users["ana"]
    ana.post("/studies", {"code": "JR-CO", "group": "lab-a", "kind": "clinical"})
    page = ana.get("/studies/JR-CO/observations").text
    offered = re.findall(r'name="scales" value="([a-z0-9]+)"', page)
    assert offered == list(load("clinical_scales.toml")["scale"])  # the data file's scales
    domains = sdtm_domains.__wrapped__(tmp_path)
    files = [
        ("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in domains.values()
    ]
    r = ana.post(
        "/studies/JR-CO/observations",
        {"scales": ["astct2019", "lee2014"], "product": "SIM-CEL"},
        files=files,
    )
    assert r.status_code == 201, _flash(r.text)
    analysis = int(re.search(r"analysis (\d+)", _flash(r.text)[0]).group(1))
    out = ana.client.get(f"/api/analyses/{analysis}", headers=_api(site)).json()
    assert out["settings"]["scales"] == ["astct2019", "lee2014"]
    patients = ana.client.get(
        f"/api/analyses/{analysis}/tables/patients", params={"format": "json"}, headers=_api(site)
    )
    assert {p["patient_id"] for p in patients.json()} == {f"{SDTM_STUDY}-001", f"{SDTM_STUDY}-002"}
    bundle = write_bundle(tmp_path, fhir_entries.__wrapped__())
    r = ana.post(
        "/studies/JR-CO/observations",
        {"scales": ["astct2019"], "product": "SIM-CEL"},
        files=[("files", ("bundle.json", bundle.read_bytes(), "application/json"))],
    )
    assert r.status_code == 201, _flash(r.text)
    assert verify_audit(store) is None


def test_observations_that_cannot_be_graded_are_a_422_naming_the_file(site, tmp_path):
    from test_io_sdtm import domains as sdtm_domains

    _, _, users = site
    ana = users["ana"]
    ana.post("/studies", {"code": "JR-CO2", "group": "lab-a", "kind": "clinical"})
    dm = sdtm_domains.__wrapped__(tmp_path)["dm"]
    r = ana.post(
        "/studies/JR-CO2/observations",
        {"scales": ["astct2019"]},
        files=[("files", ("dm.xpt", dm.read_bytes(), "application/octet-stream"))],
    )
    assert r.status_code == 422 and "no VS domain" in _flash(r.text)[0]
    r = ana.post(
        "/studies/JR-CO2/observations",
        {"scales": ["astct2019"]},
        files=[("files", ("xx.xpt", dm.read_bytes(), "application/octet-stream"))],
    )
    assert r.status_code == 422 and "'xx.xpt' is not an SDTM domain" in _flash(r.text)[0]
    csv = (MSD.parents[1] / "crs-cohort" / "observations.csv").read_bytes()
    r = ana.post(
        "/studies/JR-CO2/observations",
        {"scales": ["astct2019", "nope"]},
        files=[("files", ("observations.csv", csv, "text/csv"))],
    )
    assert r.status_code == 422 and "nope" in _flash(r.text)[0]
    assert "No graded observations yet." in ana.get("/studies/JR-CO2").text
