"""``cytosafe monitor`` (issue 17, items 2 and 3): a watched folder (new and changed files,
remembered by path and SHA-256), a FHIR server polled with ``_lastUpdated`` (a small
FastAPI stub started here), alerts to the store (audited, scoped to a clinical study), to
stdout as JSON lines and to a webhook (retries with backoff, a timeout; a stub server)."""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest
from fastapi import FastAPI, Request
from typer.testing import CliRunner

from cytosafe.cli import app
from cytosafe.clinical.monitor import ALERT_DISCLAIMER, Monitor
from cytosafe.errors import InputError
from cytosafe.store import Store, create_study, create_user, verify_audit
from cytosafe.store.monitor import acknowledge_alert, list_alerts, record_alerts
from cytosafe.workflows.monitor import (
    FHIRServerSource,
    FolderSource,
    MonitorRun,
    post_alerts,
    run_monitor,
)
from live_server import free_port, serve_app

runner = CliRunner()
COLS = ["patient_id", "time", "item", "value", "unit"]


def _csv(path, *rows):
    pd.DataFrame(list(rows), columns=COLS).to_csv(path, index=False)
    return path


DAY0 = [
    ("P1", "2024-05-01T08:00:00Z", "infusion", "axi-cel", ""),
    ("P1", "2024-05-01T09:00:00Z", "temperature", "36.9", "C"),
    ("P2", "2024-05-01T10:00:00Z", "infusion", "axi-cel", ""),
]
FEVER = ("P1", "2024-05-02T08:00:00Z", "temperature", "38.6", "C")


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    create_user(s, "nurse", role="analyst", password="correct horse battery")
    create_study(s, "WARD-1", user="nurse", kind="clinical")
    return s


def test_the_folder_monitor_reads_new_and_changed_files_once(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _csv(folder / "a.csv", *DAY0)
    ledger = tmp_path / "ledger.json"
    src = FolderSource(folder, ledger_file=ledger)
    run = MonitorRun(Monitor(), src)
    assert run.step() is not None and run.step() is None  # nothing new: nothing read
    _csv(folder / "b.csv", FEVER)
    update = run.step()
    assert [a.kind for a in update.alerts] == ["grade_increase", "vital_sign"]
    assert set(json.loads(ledger.read_text())) == {str(folder / "a.csv"), str(folder / "b.csv")}
    # a changed file: read as it now stands, the patient reprocessed from the change
    _csv(folder / "b.csv", FEVER, ("P1", "2024-05-02T09:00:00Z", "systolic_bp", "85", "mmHg"))
    update = run.step()
    assert update.late == [] and len(update.added) == 1
    assert [a.details.get("item") for a in update.alerts if a.kind == "vital_sign"] == [
        "systolic_bp"
    ]
    # restarted with the ledger: the state is rebuilt, nothing is read or raised twice
    again = FolderSource(folder, ledger_file=ledger)
    monitor = Monitor()
    monitor.process(again.replay())
    assert MonitorRun(monitor, again).step() is None
    assert monitor.patients["P1"].grade["astct2019"] == 2


def test_cli_monitor_once_prints_json_lines_and_stores_audited_alerts(tmp_path, store):
    folder = tmp_path / "in"
    folder.mkdir()
    _csv(folder / "a.csv", *DAY0, FEVER)
    res = runner.invoke(app, [
        "monitor", str(folder), "--once", "--study", "WARD-1", "--user", "nurse",
        "--database", str(tmp_path / "store.sqlite3"),
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    alerts = [x for x in lines if x["type"] == "alert"]
    assert {a["kind"] for a in alerts} == {"grade_increase", "vital_sign"}
    assert all(a["note"] == ALERT_DISCLAIMER for a in alerts)
    assert lines[-1]["type"] == "batch" and lines[-1]["note"] == ALERT_DISCLAIMER
    stored = list_alerts(store, "WARD-1")
    assert [a["patient_id"] for a in stored] == ["P1", "P1"]
    assert stored[0]["time"] == "2024-05-02T08:00:00+00:00"
    assert verify_audit(store) is None


def test_acknowledging_an_alert_is_audited_and_happens_once(store):
    (aid,) = record_alerts(
        store,
        [{"patient_id": "P1", "kind": "vital_sign", "reason": "fever 38.6 C",
          "time": "2024-05-02T08:00:00Z"}],
        study="WARD-1", user="nurse",
    )  # fmt: skip
    done = acknowledge_alert(store, aid, user="nurse", study="WARD-1")
    assert done["acknowledged"] and done["acknowledged_by"] == "nurse"
    with pytest.raises(InputError, match="already acknowledged"):
        acknowledge_alert(store, aid, user="nurse")
    assert list_alerts(store, "WARD-1", active_only=True) == []
    from cytosafe.store import audit_entries

    actions = [(e["action"], e["object_type"]) for e in audit_entries(store)]
    assert ("create", "monitor_alert") in actions and ("status", "monitor_alert") in actions


def test_alerts_of_an_unknown_kind_store_nothing(store):
    with pytest.raises(InputError, match="unknown kind"):
        record_alerts(
            store,
            [{"patient_id": "P1", "kind": "vital_sign", "reason": "x", "time": "2024-05-02"},
             {"patient_id": "P1", "kind": "gossip", "reason": "x", "time": "2024-05-02"}],
            study="WARD-1", user="nurse",
        )  # fmt: skip
    assert list_alerts(store, "WARD-1") == []


def _fhir_stub():
    """A FHIR server that answers searches with ``_lastUpdated=gt...`` or ``ge...`` over
    what it holds."""
    stub = FastAPI()
    stub.state.resources = []
    stub.state.queries = []

    @stub.get("/fhir/{kind}")
    def search(kind: str, request: Request):
        since = request.query_params.get("_lastUpdated")
        stub.state.queries.append((kind, since))
        out = [r for r in stub.state.resources if r["resourceType"] == kind]
        if since:
            t = pd.Timestamp(since[2:])
            if since.startswith("ge"):
                out = [r for r in out if pd.Timestamp(r["meta"]["lastUpdated"]) >= t]
            else:
                out = [r for r in out if pd.Timestamp(r["meta"]["lastUpdated"]) > t]
        return {"resourceType": "Bundle", "type": "searchset", "total": len(out),
                "entry": [{"resource": r} for r in out]}  # fmt: skip

    return stub


def _res(i, kind, updated, **body):
    return {"resourceType": kind, "id": f"r{i}", "meta": {"lastUpdated": updated},
            "status": "final" if kind == "Observation" else "completed",
            "subject": {"reference": "Patient/P1"}, **body}  # fmt: skip


def _temp(i, when, value, updated):
    return _res(
        i, "Observation", updated, effectiveDateTime=when,
        code={"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
        valueQuantity={"value": value, "unit": "Cel", "code": "Cel",
                       "system": "http://unitsofmeasure.org"},
    )  # fmt: skip


def test_the_fhir_server_is_polled_with_last_updated():
    stub = _fhir_stub()
    stub.state.resources += [
        _res(1, "MedicationAdministration", "2024-05-01T08:05:00Z",
             medicationCodeableConcept={"text": "SIM-CEL"},
             effectiveDateTime="2024-05-01T08:00:00Z"),
        _temp(2, "2024-05-01T12:00:00Z", 37.0, "2024-05-01T12:01:00Z"),
    ]  # fmt: skip
    base, stop = serve_app(stub, log_level="error")
    try:
        src = FHIRServerSource(f"{base}/fhir", product="SIM-CEL")
        run = MonitorRun(Monitor(), src)
        first = run.step()
        assert first is not None and run.monitor.patients["P1"].infusion is not None
        assert src.last_updated == "2024-05-01T12:01:00Z"
        assert run.step() is None  # nothing updated since
        stub.state.resources.append(_temp(3, "2024-05-02T06:00:00Z", 38.8, "2024-05-02T06:02:00Z"))
        update = run.step()
        assert update.late == [] and len(update.added) == 1
        assert {a.kind for a in update.alerts} == {"grade_increase", "vital_sign"}
        assert ("Observation", "ge2024-05-01T12:01:00Z") in stub.state.queries
        assert run.monitor.patients["P1"].grade["astct2019"] == 1
        # the fever is withdrawn at the source: the resource's rows are taken back
        wrong = _temp(3, "2024-05-02T06:00:00Z", 38.8, "2024-05-02T07:00:00Z")
        wrong["status"] = "entered-in-error"
        stub.state.resources[-1] = wrong
        update = run.step()
        assert update.late == ["P1"] and run.monitor.patients["P1"].grade["astct2019"] == 0
        assert update.revised_from["P1"] == pd.Timestamp("2024-05-02T06:00:00")
    finally:
        stop()


def test_a_resource_stamped_with_the_instant_last_seen_is_read_once():
    """``meta.lastUpdated`` is not unique: a resource stamped with the same instant as the
    last one seen, but stored after the poll, is read by the next (``ge``), and those
    already read are not read again (resource id and ``meta.versionId``); a new version
    stamped with that instant is read."""
    stub = _fhir_stub()
    same = "2024-05-01T12:01:00Z"
    infusion = _res(1, "MedicationAdministration", "2024-05-01T08:05:00Z",
                    medicationCodeableConcept={"text": "SIM-CEL"},
                    effectiveDateTime="2024-05-01T08:00:00Z")  # fmt: skip
    first = _temp(2, "2024-05-01T12:00:00Z", 37.0, same)
    first["meta"]["versionId"] = "1"
    stub.state.resources += [infusion, first]
    base, stop = serve_app(stub, log_level="error")
    try:
        src = FHIRServerSource(f"{base}/fhir", product="SIM-CEL")
        run = MonitorRun(Monitor(), src)
        assert run.step() is not None and src.last_updated == same
        assert run.step() is None  # the resource at that instant is not read twice
        # stored after the poll, stamped with the same instant: gt would miss it
        late_stamp = _temp(3, "2024-05-01T12:30:00Z", 38.9, same)
        late_stamp["meta"]["versionId"] = "1"
        stub.state.resources.append(late_stamp)
        update = run.step()
        assert update is not None and len(update.added) == 1
        assert update.added["value"].astype(float).tolist() == [38.9]
        assert run.monitor.patients["P1"].grade["astct2019"] == 1
        assert run.step() is None  # both at that instant are read, each once
        # a new version of the first, with the same instant: read, the earlier replaced
        second = _temp(2, "2024-05-01T12:00:00Z", 37.5, same)
        second["meta"]["versionId"] = "2"
        stub.state.resources[1] = second
        update = run.step()
        assert update is not None and update.late == ["P1"]
        assert run.monitor.patients["P1"].last_vitals["temperature"][1] == 38.9
        assert run.step() is None
        assert all(since == f"ge{same}" for _, since in stub.state.queries[2:])
    finally:
        stop()


def _webhook_stub(fail_first: int, delay: float = 0.0):
    stub = FastAPI()
    stub.state.received = []
    stub.state.calls = 0

    @stub.post("/hook")
    async def hook(request: Request):
        stub.state.calls += 1
        if delay:
            import asyncio

            await asyncio.sleep(delay)
        if stub.state.calls <= fail_first:
            from fastapi.responses import JSONResponse

            return JSONResponse({"detail": "busy"}, status_code=503)
        stub.state.received.append(await request.json())
        return {"ok": True}

    return stub


def test_the_webhook_is_retried_with_backoff_until_it_answers():
    stub = _webhook_stub(fail_first=2)
    base, stop = serve_app(stub, log_level="error")
    waits = []
    try:
        alerts = [{"patient_id": "P1", "kind": "vital_sign", "reason": "fever"}]
        assert post_alerts(f"{base}/hook", alerts, retries=3, backoff=0.5, sleep=waits.append)
        assert stub.state.calls == 3 and waits == [0.5, 1.0]
        body = stub.state.received[0]
        assert body["alerts"] == alerts and body["note"] == ALERT_DISCLAIMER
    finally:
        stop()


def test_a_webhook_that_does_not_answer_in_time_is_given_up_after_the_retries():
    stub = _webhook_stub(fail_first=0, delay=2.0)
    base, stop = serve_app(stub, log_level="error")
    waits = []
    try:
        ok = post_alerts(f"{base}/hook", [{"kind": "vital_sign"}], timeout=0.3, retries=2,
                         backoff=0.1, sleep=waits.append)  # fmt: skip
        assert ok is False and waits == [0.1, 0.2]
    finally:
        stop()


def test_a_refused_webhook_is_not_retried():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(400, json={"detail": "bad"})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    assert post_alerts("http://hook.test/x", [{"kind": "vital_sign"}], client=client,
                       sleep=lambda s: None) is False  # fmt: skip
    assert len(calls) == 1


def test_run_monitor_stops_after_max_batches(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _csv(folder / "a.csv", *DAY0)
    naps = []

    def nap(seconds):
        naps.append(seconds)
        _csv(folder / f"n{len(naps)}.csv", FEVER)

    run = run_monitor(MonitorRun(Monitor(), FolderSource(folder)), interval=2.0, max_batches=2,
                      sleep=nap)  # fmt: skip
    assert run.batches == 2 and naps == [2.0]


def test_a_bad_file_is_reported_and_skipped_and_the_others_are_read(tmp_path):
    import io

    folder = tmp_path / "in"
    folder.mkdir()
    _csv(folder / "a.csv", *DAY0)
    _csv(folder / "b.csv", FEVER)
    _csv(folder / "c.csv", ("P2", "2024-05-02T08:00:00Z", "temperature", "60", "C"))  # impossible
    out = io.StringIO()
    run = MonitorRun(Monitor(), FolderSource(folder), out=out)
    update = run.step()
    assert {a.patient_id for a in update.alerts} == {"P1"}
    errors = [json.loads(x) for x in out.getvalue().splitlines() if '"error"' in x]
    assert [e["source"] for e in errors] == [str(folder / "c.csv")]
    assert "c.csv" in errors[0]["error"] and "temperature" in errors[0]["error"]
    assert "P2" in run.monitor.patients and run.monitor.patients["P2"].last_vitals == {}
    assert run.step() is None and run.errors == 1  # not read again until it changes
    _csv(folder / "c.csv", ("P2", "2024-05-02T08:00:00Z", "temperature", "39.0", "C"))
    fixed = run.step()
    assert {a.patient_id for a in fixed.alerts} == {"P2"}


def test_a_batch_that_raises_leaves_the_monitor_as_it_was():
    m = Monitor()
    m.process({"a.csv": pd.DataFrame(DAY0, columns=COLS)})
    before = (m.patients["P1"].last_time, len(m.window()), tuple(m.sources))
    with pytest.raises(InputError):
        m.process({"bad.csv": pd.DataFrame([("P3", "not a time", "temperature", "37", "C")],
                                           columns=COLS)})  # fmt: skip
    assert (m.patients["P1"].last_time, len(m.window()), tuple(m.sources)) == before
    assert "P3" not in m.patients


def test_a_fhir_server_that_is_down_is_reported_and_polled_again():
    import io

    out = io.StringIO()
    run = MonitorRun(Monitor(), FHIRServerSource(f"http://127.0.0.1:{free_port()}/fhir",
                                                 timeout=1.0), out=out)  # fmt: skip
    run_monitor(run, once=True)
    line = json.loads(out.getvalue().splitlines()[0])
    assert line["type"] == "error" and "cannot reach the FHIR server" in line["error"]
    assert run.errors == 1 and run.batches == 0


def test_a_corrected_file_supersedes_its_stored_rows_and_the_ward_follows(tmp_path, store):
    """Observations are only inserted; a source corrected after it was stored must not
    leave its first reading in force: the rows it no longer holds are marked superseded
    (audited, kept), and the ward, regrading from the store, agrees with the monitor."""
    from types import SimpleNamespace

    from cytosafe.store.monitor import (
        SUPERSEDED,
        study_observations,
        superseded_count,
    )
    from cytosafe.web.pages_ward import _monitor

    folder = tmp_path / "in"
    folder.mkdir()
    _csv(folder / "a.csv", *DAY0, FEVER)
    run = MonitorRun(Monitor(), FolderSource(folder), store=store, study="WARD-1", user="nurse")
    run.step()
    ward = SimpleNamespace(state=SimpleNamespace(store=store))
    assert _monitor(ward, "WARD-1", "astct2019").patients["P1"].grade["astct2019"] == 1
    # the fever was charted in error: 36.6, not 38.6
    _csv(folder / "a.csv", *DAY0, ("P1", "2024-05-02T08:00:00Z", "temperature", "36.6", "C"))
    update = run.step()
    assert update.late == ["P1"] and len(update.removed) == 1
    assert run.monitor.patients["P1"].grade["astct2019"] == 0
    assert superseded_count(store, "WARD-1") == 1
    live = study_observations(store, "WARD-1")
    temps = live.loc[live["item"] == "temperature", "value"].astype(float).tolist()
    assert sorted(temps) == [36.6, 36.9]  # the superseded 38.6 is left out
    assert _monitor(ward, "WARD-1", "astct2019").patients["P1"].grade["astct2019"] == 0
    with store.session() as session:
        from sqlalchemy import select

        from cytosafe.store.models import AuditEntry, Observation

        kept = session.scalars(
            select(Observation).where(Observation.source_file.startswith(SUPERSEDED))
        ).all()
        assert [o.value for o in kept] == ["38.6"]  # kept, not deleted
        edits = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "edit",
                                     AuditEntry.object_type == "observations")
        ).all()  # fmt: skip
        assert len(edits) == 1 and str(kept[0].id) in edits[0].details
    assert verify_audit(store) is None
