"""One run, the same tables, whichever face started it (issue 13, "How it is checked").

The example study's plates MSD-01 and MSD-02 are quantified three ways: by the command
line (``cytosafe quantify``), by ``cytosafe store import`` of the same exports, and by
the web app's background job over the plates uploaded through the REST API. The three
must name the same tables and hold the same rows. The one column allowed to differ is
``source_file``: the web app keeps an upload's file name without the server's temporary
folder, where the command line keeps the path the user typed.

The web app passes only the options the user set (issue 12, item 2): its form left at
"vendor convention" fits each plate as the command line does without options, and an
option it sets overrides every plate's convention as ``--model`` does. Wells excluded in
the store with a reason refit as ``cytosafe quantify --exclude`` refits them (item 8).
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cytosafe.cli import app
from cytosafe.store import Store, add_to_group, create_user, load_table
from cytosafe.web import create_app
from cytosafe.workflows import (
    ANALYSIS_TABLES,
    QUANTIFICATION_FILES,
    QUANTIFICATION_TABLES,
    quantification_tables,
    run_quantification,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cra-study" / "msd"
PLATES = ("MSD-01", "MSD-02")
STUDY = "CRA-EX-001"
PASSWORD = "correct horse battery"

#: Keys that order each table the same way, whichever way its rows were stored.
KEYS = ["plate_id", "analyte", "well", "sample_id", "sample_type", "donor_id", "treatment"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    table = pd.read_csv(EXAMPLES / "samples.csv", dtype=str, keep_default_na=False)
    table[table["plate_id"].isin(PLATES)].to_csv(folder / "samples.csv", index=False)
    return [EXAMPLES / f"plate_{p}.csv" for p in PLATES], folder / "samples.csv"


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """A table as its CSV file reads back, without provenance, in a fixed row order."""
    frame = pd.read_csv(io.StringIO(frame.to_csv(index=False)))
    frame = frame.drop(columns=["source_file"], errors="ignore")
    keys = [k for k in KEYS if k in frame.columns]
    rest = [c for c in frame.columns if c not in keys]
    return frame.sort_values(keys + rest, kind="stable", na_position="first").reset_index(drop=True)


@pytest.fixture(scope="module")
def by_cli(exports, tmp_path_factory):
    files, sample_map = exports
    out = tmp_path_factory.mktemp("cli") / "q"
    args = ["quantify", *map(str, files), "--sample-map", str(sample_map), "--study-id", STUDY]
    args += ["--out", str(out), "-q"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == sorted(QUANTIFICATION_FILES)
    return {name: pd.read_csv(out / f"{name}.csv") for name in QUANTIFICATION_TABLES}


@pytest.fixture(scope="module")
def by_store_import(exports, tmp_path_factory):
    files, sample_map = exports
    database = tmp_path_factory.mktemp("store") / "store.sqlite3"
    args = ["store", "import", *map(str, files), "--sample-map", str(sample_map)]
    args += ["--study", STUDY, "--create-study", "--user", "ana", "--database", str(database)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    store = Store(f"sqlite:///{database}")
    try:
        return {name: load_table(store, 1, name) for name in QUANTIFICATION_TABLES}
    finally:
        store.close()


@pytest.fixture(scope="module")
def web(exports, tmp_path_factory):
    """The web app with the study's plates uploaded through the REST API, and ana's
    bearer token."""
    files, sample_map = exports
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('web') / 'store.sqlite3'}")
    create_user(store, "root", role="admin", password=PASSWORD)
    create_user(store, "ana", role="analyst", password=PASSWORD, by="root")
    add_to_group(store, "ana", "lab-a", by="root")
    try:
        with TestClient(create_app(store)) as client:
            r = client.post("/api/token", data={"username": "ana", "password": PASSWORD})
            auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
            r = client.post("/api/studies", json={"code": STUDY, "group": "lab-a"}, headers=auth)
            assert r.status_code == 201, r.text
            upload = [("files", (p.name, p.read_bytes(), "text/csv")) for p in files]
            upload.append(("sample_map", ("samples.csv", sample_map.read_bytes(), "text/csv")))
            r = client.post(f"/api/studies/{STUDY}/plates", files=upload, headers=auth)
            assert r.status_code == 201, r.text
            yield client, auth
    finally:
        store.close()


def _web_run(client: TestClient, auth: dict, body: dict) -> tuple[dict, dict]:
    """A quantification job of the web app: its analysis (settings) and its tables."""
    r = client.post(f"/api/studies/{STUDY}/analyses/quantification", json=body, headers=auth)
    assert r.status_code == 202, r.text
    analysis = r.json()["id"]
    client.app.state.jobs.wait(analysis, timeout=600)
    done = client.get(f"/api/analyses/{analysis}", headers=auth).json()
    assert done["status"] == "completed", done
    assert sorted(t["name"] for t in done["tables"]) == sorted(QUANTIFICATION_TABLES)
    return done, {
        name: pd.read_parquet(
            io.BytesIO(
                client.get(
                    f"/api/analyses/{analysis}/tables/{name}",
                    params={"format": "parquet"},
                    headers=auth,
                ).content
            )
        )
        for name in QUANTIFICATION_TABLES
    }


@pytest.fixture(scope="module")
def by_web_job(web):
    done, tables = _web_run(*web, {})
    # No option set: none passed on, each plate its reader's convention (issue 12, item 2).
    assert done["settings"]["options"] == {}
    return tables


@pytest.mark.parametrize("name", QUANTIFICATION_TABLES)
def test_the_cli_the_store_import_and_the_web_job_write_the_same_table(
    name, by_cli, by_store_import, by_web_job
):
    cli = _canonical(by_cli[name])
    assert len(cli) > 0
    for face, other in (("store import", by_store_import), ("web job", by_web_job)):
        other = _canonical(other[name])
        assert sorted(other.columns) == sorted(cli.columns), face
        pd.testing.assert_frame_equal(other[cli.columns], cli, check_dtype=False, rtol=1e-12)


def test_curves_carry_the_qc_verdict_and_flag_counts_in_every_face(by_cli):
    # The drift that started this: analyze and the web app wrote curves without them.
    assert {"qc_pass", "qc_reasons", "n_below_lloq", "n_above_uloq"} <= set(by_cli["curves"])


def test_analysis_tables_hold_every_quantification_table():
    assert set(QUANTIFICATION_TABLES) <= set(ANALYSIS_TABLES)


def test_the_workflow_refuses_an_output_path_that_is_a_file_before_reading(tmp_path):
    from cytosafe.errors import InputError

    target = tmp_path / "a-file"
    target.write_text("not a directory")
    with pytest.raises(InputError, match="not a directory"):
        run_quantification([tmp_path / "missing.csv"], out=target)
    assert target.read_text() == "not a directory"


def test_quantification_tables_come_in_the_documented_order(exports):
    result = run_quantification(exports[0][:1])
    assert tuple(quantification_tables(result)) == QUANTIFICATION_TABLES


# --- the web form passes only the options the user set (issue 12, item 2) ------------------


def _curves(tables: dict) -> pd.DataFrame:
    return _canonical(tables["curves"])


def test_the_web_form_left_at_vendor_convention_fits_as_the_cli_without_options(web, by_cli):
    client, _ = web
    r = client.post("/sign-in", data={"username": "ana", "password": PASSWORD})
    assert r.status_code == 200
    page = client.get(f"/studies/{STUDY}").text
    csrf = page.split('name="csrf" value="', 1)[1][:64]
    # What a browser sends for the form as it loads: every option empty.
    assert '<option value="" selected>Vendor convention (per plate)</option>' in page
    form = {"csrf": csrf, "model": "", "weighting": "", "blank": "", "covariance": ""}
    r = client.post(f"/studies/{STUDY}/quantify", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    analysis = int(r.headers["location"].rsplit("/", 1)[1])
    client.app.state.jobs.wait(analysis, timeout=600)
    curves = pd.read_parquet(
        io.BytesIO(client.get(f"/analyses/{analysis}/tables/curves.parquet").content)
    )
    cli = _curves(by_cli)
    assert set(cli["model"]) == {"4PL"}  # MSD Discovery Workbench: 4PL, 1/y2
    pd.testing.assert_frame_equal(_canonical(curves)[cli.columns], cli, check_dtype=False)
    shown = client.get(f"/analyses/{analysis}").text
    assert "No options set: each plate was calibrated with its reader" in shown
    assert "MSD Discovery Workbench&#39;s convention" in shown


def test_an_option_set_in_the_web_app_applies_to_every_plate_as_in_the_cli(web, exports):
    # 5PL and 1/y2 are also the calibration defaults: chosen on purpose, they must still
    # override the plate's convention (the old form sent them always, and they were lost).
    files, sample_map = exports
    done, tables = _web_run(*web, {"model": "5PL", "weighting": "1/y2"})
    assert done["settings"]["options"] == {"model": "5PL", "weighting": "1/y2"}
    for convention in done["settings"]["conventions"]:
        assert convention["model"] == "5PL"
        assert "overridden by the options model=5PL, weighting=1/y2" in convention["applied"]
    cli = run_quantification(
        files, sample_map=sample_map, study_id=STUDY, options={"model": "5PL", "weighting": "1/y2"}
    )
    expected = _canonical(quantification_tables(cli)["curves"])
    pd.testing.assert_frame_equal(_curves(tables)[expected.columns], expected, check_dtype=False)


# --- exclusions in the store, as the files' (issue 12, item 8) --------------------------------


def test_wells_excluded_in_the_store_refit_as_the_cli_exclude_does(web, exports, tmp_path):
    import json

    files, sample_map = exports
    client, auth = web
    reason = "bubble seen in the well"
    body = {"wells": [{"plate_id": "MSD-01", "well": "A01", "analyte": "IL-6", "reason": reason}]}
    r = client.post(f"/api/studies/{STUDY}/exclusions", json=body, headers=auth)
    assert r.status_code == 200, r.text
    try:
        done, tables = _web_run(client, auth, {})
    finally:
        r = client.post(f"/api/studies/{STUDY}/exclusions/restore", json=body, headers=auth)
        assert r.status_code == 200, r.text
    out = tmp_path / "q"
    args = ["quantify", *map(str, files), "--sample-map", str(sample_map), "--study-id", STUDY]
    args += ["--exclude", f"MSD-01:A01:IL-6={reason}", "--out", str(out), "-q"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    for name in ("standards", "curves", "concentrations"):
        cli = _canonical(pd.read_csv(out / f"{name}.csv"))
        pd.testing.assert_frame_equal(
            _canonical(tables[name])[cli.columns], cli, check_dtype=False, rtol=1e-12
        )
    settings = json.loads((out / "settings.json").read_text())
    assert done["settings"]["exclusions"] == settings["exclusions"]
    assert done["settings"]["excluded_wells"] == settings["excluded_wells"]
    assert [w["exclusion_reason"] for w in settings["excluded_wells"]] == [reason]
