"""Fault tests: a crash in the middle of an import leaves nothing behind; concurrent
imports into one study lose nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

import store_backends
from cytosafe.errors import InputError
from cytosafe.store import (
    Analysis,
    AnalysisTable,
    AuditEntry,
    Measurement,
    Plate,
    Report,
    audit_entries,
    load_measurements,
    verify_audit,
)
from cytosafe.store import analyses as store_analyses
from cytosafe.store import audit as store_audit
from cytosafe.workflows import store_quantification
from store_backends import STUDY, quantified, seeded

postgres_cluster = store_backends.postgres_cluster
backend = store_backends.backend
store = store_backends.store

MODELS = (Plate, Measurement, Analysis, AnalysisTable, Report, AuditEntry)


@pytest.fixture(scope="module")
def results():
    """The example ELISA plate quantified under four plate ids."""
    return [quantified(f"ELISA-{i:02d}") for i in range(1, 5)]


def _counts(store) -> dict[str, int]:
    with store.reader() as session:
        return {m.__name__: session.scalar(select(func.count()).select_from(m)) for m in MODELS}


class Crash(RuntimeError):
    """The simulated failure (power cut, killed worker, full disk)."""


def test_a_crash_after_measurements_and_analysis_were_written_leaves_nothing(
    store, results, monkeypatch
):
    seeded(store)
    store_quantification(store, results[0], user="bob")
    before = _counts(store)
    written = {}

    def crash(session, analysis, content, name):
        # By now the plate, its measurements, the analysis and its tables are in the
        # database (flushed), inside the import's transaction.
        session.flush()
        written["plates"] = session.scalar(select(func.count()).select_from(Plate))
        raise Crash("the worker died while writing the report")

    monkeypatch.setattr(store_analyses, "_add_report", crash)
    with pytest.raises(Crash):
        store_quantification(store, results[1], user="bob", report="<html></html>")
    assert written["plates"] == before["Plate"] + 1  # the crash did come mid-import
    assert _counts(store) == before
    assert verify_audit(store) is None
    assert sorted(load_measurements(store, STUDY)["plate_id"].unique()) == ["ELISA-01"]


def test_a_crash_while_writing_the_audit_entry_rolls_back_the_import(store, results, monkeypatch):
    seeded(store)
    before = _counts(store)

    def crash(entry):
        raise Crash("crashed while chaining the audit entry")

    monkeypatch.setattr(store_audit, "entry_hash", crash)
    with pytest.raises(Crash):
        store_quantification(store, results[0], user="bob")
    monkeypatch.undo()
    assert _counts(store) == before
    # The store is usable afterwards and the chain continues where it was.
    store_quantification(store, results[0], user="bob")
    assert verify_audit(store) is None


def test_concurrent_imports_into_one_study_lose_no_data(store, results):
    seeded(store)
    start = threading.Barrier(len(results))
    errors: list[BaseException] = []
    analyses = []

    def work(result):
        try:
            start.wait()
            analyses.append(store_quantification(store, result, user="bob"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(a.version for a in analyses) == [1, 2, 3, 4]
    counts = _counts(store)
    assert counts["Plate"] == 4
    assert counts["Measurement"] == sum(len(r.measurements) for r in results)
    assert counts["AnalysisTable"] == 4 * 6
    stored = load_measurements(store, STUDY)
    assert sorted(stored["plate_id"].unique()) == ["ELISA-01", "ELISA-02", "ELISA-03", "ELISA-04"]
    imports = [e for e in audit_entries(store) if e["object_type"] == "analysis"]
    assert sorted(int(e["object_id"]) for e in imports) == sorted(a.id for a in analyses)
    assert verify_audit(store) is None  # one chain, not forked


def test_a_background_analysis_is_completed_in_one_step(store, results):
    from cytosafe.store import complete_analysis, import_analysis, load_table, set_status

    seeded(store)
    job = import_analysis(
        store,
        "quantification",
        {},
        study=STUDY,
        user="bob",
        settings={"model": "5PL"},
        status="queued",
    )
    set_status(store, job, "running", user="bob", message="fitting")
    before = _counts(store)
    with pytest.raises(InputError, match="result table 'qc' is a list"):
        complete_analysis(store, job, {"curves": results[0].curves, "qc": []}, user="bob")
    assert _counts(store) == before
    done = complete_analysis(
        store, job, {"qc": results[0].qc}, user="bob", measurements=results[0].measurements
    )
    assert done.status == "completed" and [p.code for p in done.plates] == ["ELISA-01"]
    assert len(load_table(store, job, "qc")) == len(results[0].qc)
    with pytest.raises(InputError, match="is completed"):
        complete_analysis(store, job, {"curves": results[0].curves}, user="bob")
    assert [(e["action"], e["object_type"]) for e in audit_entries(store)][-4:] == [
        ("import", "analysis"),
        ("status", "analysis"),
        ("import", "plate"),
        ("status", "analysis"),
    ]
    assert verify_audit(store) is None
