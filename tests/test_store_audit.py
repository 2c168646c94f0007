"""The audit trail (hash chain, append-only) and sign-off immutability, on SQLite and
PostgreSQL."""

from __future__ import annotations

import pytest
import typer
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

import store_backends
from cytosafe.cli.store import audit_verify
from cytosafe.errors import InputError
from cytosafe.store import (
    AnalysisTable,
    AuditEntry,
    AuditError,
    AuthorizationError,
    Measurement,
    SignedOffError,
    add_report,
    audit_entries,
    edit_measurement,
    head,
    load_table,
    set_status,
    sign_off,
    verify_audit,
    verify_tables,
)
from cytosafe.workflows import store_quantification
from store_backends import quantified, seeded

postgres_cluster = store_backends.postgres_cluster
backend = store_backends.backend
store = store_backends.store


@pytest.fixture(scope="module")
def result():
    return quantified()


@pytest.fixture
def analysed(store, result):
    """A seeded store with one quantification (analysis 1) by bob."""
    seeded(store)
    analysis = store_quantification(store, result, user="bob", report="<html>v1</html>")
    return store, analysis


def _tamper(store, sql: str) -> None:
    """Run ``sql`` on ``audit_log`` with its guard trigger out of the way, as an attacker
    with database access would."""
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
            conn.exec_driver_sql(sql)
            conn.exec_driver_sql("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
        else:
            conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
            conn.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
            conn.exec_driver_sql(sql)


def test_every_change_is_recorded_with_who_what_and_when(analysed):
    store, analysis = analysed
    entries = audit_entries(store)
    assert [(e["actor"], e["action"], e["object_type"]) for e in entries] == [
        ("ada", "create", "user"),
        ("ada", "create", "user"),
        ("ada", "create", "user"),
        ("ada", "create", "study"),
        ("bob", "import", "plate"),
        ("bob", "import", "analysis"),
    ]
    last = entries[-1]
    assert last["object_id"] == str(analysis.id)
    assert set(last["details"]["tables"]) == {t.name for t in analysis.tables}
    assert last["at"].endswith("+00:00")
    assert [e["seq"] for e in entries] == list(range(1, 7))
    assert verify_audit(store) is None
    assert head(store) == (6, last["hash"])


def test_audit_chain_detects_an_edited_row(analysed):
    store, _ = analysed
    _tamper(store, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 5")
    broken = verify_audit(store)
    assert (broken.seq, broken.reason) == (
        5,
        "content does not match its hash (the entry was edited)",
    )


def test_audit_chain_detects_a_deleted_row(analysed):
    store, _ = analysed
    _tamper(store, "DELETE FROM audit_log WHERE seq = 3")
    broken = verify_audit(store)
    assert broken.seq == 4 and "an entry is missing" in broken.reason


def test_audit_chain_detects_a_rehashed_row(analysed):
    # Recomputing an edited entry's own hash is not enough: the next entry's link breaks.
    store, _ = analysed
    from cytosafe.store.audit import entry_hash

    with store.reader() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.seq == 4))
    entry.actor = "mallory"
    forged = entry_hash(entry)
    _tamper(store, f"UPDATE audit_log SET actor = 'mallory', hash = '{forged}' WHERE seq = 4")
    broken = verify_audit(store)
    assert (broken.seq, broken.reason) == (5, "prev_hash does not match the previous entry's hash")


@pytest.mark.parametrize(
    "sql", ["UPDATE audit_log SET actor = 'mallory' WHERE seq = 1", "DELETE FROM audit_log"]
)
def test_database_trigger_refuses_update_and_delete_on_the_audit_log(analysed, sql):
    store, _ = analysed
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.exec_driver_sql(sql)
    assert verify_audit(store) is None
    assert head(store)[0] == 6


def test_store_api_refuses_to_change_or_delete_audit_entries(analysed):
    store, _ = analysed
    with pytest.raises(AuditError), store.session() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.seq == 1))
        entry.actor = "mallory"
    with pytest.raises(AuditError), store.session() as session:
        session.delete(session.scalar(select(AuditEntry).where(AuditEntry.seq == 1)))
    with pytest.raises(AuditError), store.session() as session:
        session.execute(update(AuditEntry).values(actor="mallory"))
    assert verify_audit(store) is None


def test_audit_verify_command_reports_intact_and_broken_chains(analysed):
    store, _ = analysed
    app = typer.Typer()
    app.command()(audit_verify)
    url = store.url.render_as_string(hide_password=False)
    ok = CliRunner().invoke(app, ["--database", url])
    assert ok.exit_code == 0, ok.output
    assert f"audit trail intact: 6 entries, head {head(store)[1]}" in ok.output
    _tamper(store, "UPDATE audit_log SET details = '{}' WHERE seq = 2")
    bad = CliRunner().invoke(app, ["--database", url])
    assert bad.exit_code == 1
    assert "audit trail BROKEN at audit entry 2" in bad.output


def test_a_changed_result_table_is_found(analysed):
    store, analysis = analysed
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE analysis_tables SET content = :c WHERE analysis_id = :a AND name = 'qc'"),
            {"c": b"forged", "a": analysis.id},
        )
    assert verify_tables(store) == [f"analysis {analysis.id} table 'qc'"]


# --- sign-off and versions ------------------------------------------------------------


def test_a_viewer_or_analyst_cannot_sign_off(analysed):
    store, analysis = analysed
    for user in ("vic", "bob"):
        with pytest.raises(AuthorizationError, match="study_director, admin"):
            sign_off(store, analysis, user=user)


def test_signed_off_analysis_refuses_modification_through_the_api(analysed):
    store, analysis = analysed
    signed = sign_off(store, analysis, user="ada", meaning="approved for the study report")
    assert signed.status == "signed_off" and signed.signed_off_at is not None
    with pytest.raises(SignedOffError):
        set_status(store, analysis, "failed", user="ada")
    with pytest.raises(SignedOffError):
        add_report(store, analysis, "<html>forged</html>", user="ada")
    with pytest.raises(SignedOffError):
        sign_off(store, analysis, user="ada")
    with pytest.raises(SignedOffError), store.session() as session:
        table = session.scalar(select(AnalysisTable).where(AnalysisTable.name == "qc"))
        table.content = b"forged"
    with pytest.raises(SignedOffError), store.session() as session:
        session.add(
            AnalysisTable(
                analysis_id=analysis.id, name="extra", columns=[], n_rows=0, sha256="0", content=b""
            )
        )
    assert load_table(store, analysis, "qc").shape[0] > 0
    assert audit_entries(store)[-1]["action"] == "sign-off"
    assert verify_audit(store) is None


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE analyses SET settings = '{}' WHERE id = {id}",
        "DELETE FROM analyses WHERE id = {id}",
        "UPDATE analysis_tables SET content = NULL WHERE analysis_id = {id}",
        "DELETE FROM analysis_tables WHERE analysis_id = {id}",
        "DELETE FROM reports WHERE analysis_id = {id}",
        "INSERT INTO analysis_tables (analysis_id, name, format, columns, n_rows, sha256, content) "
        "VALUES ({id}, 'x', 'parquet', '[]', 0, '0', '')",
    ],
)
def test_database_triggers_refuse_modifying_a_signed_off_analysis(analysed, sql):
    store, analysis = analysed
    sign_off(store, analysis, user="ada")
    with pytest.raises(DBAPIError, match="signed off"), store.engine.begin() as conn:
        conn.exec_driver_sql(sql.replace("{id}", str(analysis.id)))


def test_reanalysis_creates_a_new_version_and_leaves_the_signed_off_one(analysed, result):
    store, first = analysed
    sign_off(store, first, user="ada")
    second = store_quantification(store, result, user="bob", previous=first, note="4PL")
    assert (second.version, second.previous_id, second.status) == (2, first.id, "completed")
    entry = audit_entries(store, object_type="analysis", object_id=second.id)[0]
    assert (entry["action"], entry["details"]["previous"]) == ("re-analysis", first.id)
    with store.reader() as session:
        from cytosafe.store import Analysis

        assert session.get(Analysis, first.id).status == "signed_off"
    with pytest.raises(InputError, match="is not a quantification analysis of study"):
        store_quantification(store, result, user="bob", previous=999)


def test_measurement_edits_are_audited_and_refused_once_signed_off(analysed):
    store, analysis = analysed
    with store.reader() as session:
        row_id = session.scalar(select(Measurement.id).order_by(Measurement.id).limit(1))
        old = session.get(Measurement, row_id).exclude
    with pytest.raises(InputError, match="needs a reason"):
        edit_measurement(store, row_id, user="bob", reason=" ", exclude=True)
    with pytest.raises(InputError, match="cannot edit field"):
        edit_measurement(store, row_id, user="bob", reason="typo", well="B01")
    with pytest.raises(AuthorizationError):
        edit_measurement(store, row_id, user="vic", reason="outlier", exclude=True)
    edit_measurement(store, row_id, user="bob", reason="pipetting error noted", exclude=not old)
    entry = audit_entries(store)[-1]
    assert entry["action"] == "edit"
    assert entry["details"]["old"] == {"exclude": old}
    assert entry["details"]["reason"] == "pipetting error noted"
    sign_off(store, analysis, user="ada")
    with pytest.raises(SignedOffError, match="signed-off analysis"):
        edit_measurement(store, row_id, user="bob", reason="again", exclude=old)
    assert verify_audit(store) is None
