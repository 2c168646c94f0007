"""Exclusions in the store are audited events (issue 12, item 8), on SQLite and PostgreSQL.

A stored study's wells are excluded (and restored) by PLATE:WELL[:ANALYTE] with a reason,
in one transaction that marks the measurements, records one audit entry per exclusion,
updates the plate's fingerprint, and is refused under a signed-off analysis; the reasons
come back with the measurements, so quantifying the stored study writes them into
``standards.csv`` and ``settings.json`` exactly as quantifying the files with
``--exclude`` does. The command line (``cytosafe store exclude|include``) is tested here
too, through the same error reporting as the other commands.
"""

from __future__ import annotations

import pandas as pd
import pytest
import typer
from sqlalchemy import func, inspect, select
from typer.testing import CliRunner

import store_backends
from cytosafe.curves.exclusions import parse_exclusions
from cytosafe.errors import InputError
from cytosafe.store import (
    AuditEntry,
    AuthorizationError,
    Measurement,
    Plate,
    SignedOffError,
    Store,
    audit_entries,
    edit_measurement,
    exclude_wells,
    include_wells,
    list_exclusions,
    load_measurements,
    sign_off,
    verify_audit,
)
from cytosafe.store.studies import plate_sha256
from cytosafe.workflows import quantification_settings, run_quantification, store_quantification
from store_backends import ELISA, STUDY, empty_database_url, seeded
from store_templates import store_template

postgres_cluster = store_backends.postgres_cluster
backend = store_backends.backend
store = store_backends.store

PLATE = "ELISA-01"


def _two_analytes() -> pd.DataFrame:
    """The example ELISA plate read for IL-6 and, with other signals, TNF: a well then
    holds two measurements."""
    il6 = pd.read_csv(ELISA)
    tnf = il6.assign(analyte="TNF", signal=il6["signal"] * 0.8)
    return pd.concat([il6, tnf], ignore_index=True)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return _two_analytes()


@pytest.fixture(scope="module")
def first_run(table):
    return run_quantification([table])


def _build(store: Store, first_run):
    seeded(store)
    return store_quantification(store, first_run, user="bob")


@pytest.fixture(scope="module")
def template(first_run):
    # The stored quantification (a Parquet blob per table, every measurement) once per backend.
    return store_template(lambda store: _build(store, first_run))


@pytest.fixture
def stored(backend, tmp_path, template):
    """A seeded store with the two-analyte plate quantified (analysis 1, by bob): each
    test its own copy of the module's template store (the analysis object is the
    detached one the build returned, which the tests only read)."""
    with template.copy(backend, tmp_path) as (store, analysis):
        yield store, analysis


def _count(store: Store, model) -> int:
    with store.reader() as session:
        return session.scalar(select(func.count()).select_from(model))


def _fingerprint(store: Store) -> str:
    with store.reader() as session:
        return session.scalar(select(Plate.measurements_sha256).where(Plate.code == PLATE))


def _excluded(store: Store) -> set[tuple[str, str, str | None]]:
    return {
        (r.well, r.analyte, r.exclusion_reason)
        for r in list_exclusions(store, STUDY).itertuples(index=False)
    }


# --- exclude ------------------------------------------------------------------------------


def test_a_well_without_an_analyte_is_excluded_for_every_analyte_and_audited(stored):
    store, _ = stored
    before = _fingerprint(store)
    events = exclude_wells(
        store, STUDY, parse_exclusions(["ELISA-01:A1=bubble seen in the well"]), user="bob"
    )
    assert _excluded(store) == {
        ("A01", "IL-6", "bubble seen in the well"),
        ("A01", "TNF", "bubble seen in the well"),
    }
    entry = audit_entries(store)[-1]
    assert (entry["actor"], entry["action"], entry["object_type"]) == ("bob", "exclude", "plate")
    assert entry["at"]  # when: the entry's time
    details = entry["details"]
    assert (details["plate"], details["well"], details["analyte"]) == (PLATE, "A01", None)
    assert details["analytes"] == ["IL-6", "TNF"]
    assert details["reason"] == "bubble seen in the well"
    assert details["previous"] == {"IL-6": None, "TNF": None}
    # The entry also records the plate's fingerprint as committed (issue 14, item 2).
    covers = details.pop("covers")
    assert list(covers) == [f"plate:{entry['object_id']}"] and len(covers.popitem()[1]) == 64
    assert details == {**events[0], "measurements_sha256": _fingerprint(store)}
    # The fingerprint covers the change, and is the one the stored table gives.
    assert _fingerprint(store) != before
    assert _fingerprint(store) == plate_sha256(load_measurements(store, STUDY))
    assert verify_audit(store) is None


def test_one_audit_entry_per_exclusion_and_only_the_analyte_named(stored):
    store, _ = stored
    n = _count(store, AuditEntry)
    exclusions = parse_exclusions(["ELISA-01:B01:IL-6=pipetting error", "ELISA-01:b2:TNF=clot"])
    exclude_wells(store, STUDY, exclusions, user="bob")
    assert _excluded(store) == {("B01", "IL-6", "pipetting error"), ("B02", "TNF", "clot")}
    entries = audit_entries(store)
    assert len(entries) == n + 2
    assert [(e["details"]["well"], e["details"]["analytes"]) for e in entries[-2:]] == [
        ("B01", ["IL-6"]),
        ("B02", ["TNF"]),
    ]
    assert verify_audit(store) is None


def test_excluding_again_keeps_the_latest_reason_and_records_the_previous(stored):
    store, _ = stored
    exclude_wells(store, STUDY, parse_exclusions("ELISA-01:A01:IL-6=bubble"), user="bob")
    exclude_wells(store, STUDY, parse_exclusions("ELISA-01:A01:IL-6=bubble, confirmed"), user="ada")
    assert _excluded(store) == {("A01", "IL-6", "bubble, confirmed")}
    entry = audit_entries(store)[-1]
    assert entry["actor"] == "ada"
    assert entry["details"]["previous"] == {"IL-6": "bubble"}


def test_the_reasons_come_back_with_the_measurements(stored):
    store, _ = stored
    assert "exclusion_reason" not in load_measurements(store, STUDY).columns  # none yet
    exclude_wells(store, STUDY, parse_exclusions("ELISA-01:A02:IL-6=bubble"), user="bob")
    table = load_measurements(store, STUDY)
    marked = table[table["exclude"]]
    assert marked[["well", "analyte", "exclusion_reason"]].values.tolist() == [
        ["A02", "IL-6", "bubble"]
    ]
    assert table.loc[~table["exclude"], "exclusion_reason"].isna().all()


def test_a_stored_study_quantifies_its_exclusions_exactly_as_the_files_do(stored, table):
    store, first = stored
    wanted = ["ELISA-01:A01:IL-6=bubble seen in the well", "ELISA-01:C02=pipetting error"]
    exclude_wells(store, STUDY, parse_exclusions(wanted), user="bob")
    from_store = run_quantification([load_measurements(store, STUDY)])
    from_files = run_quantification([table], exclusions=wanted)
    order = ["plate_id", "analyte", "nominal", "excluded"]
    pd.testing.assert_frame_equal(
        from_store.calibration.standards.sort_values(order).reset_index(drop=True),
        from_files.calibration.standards.sort_values(order).reset_index(drop=True),
        check_dtype=False,
    )
    stored_settings, file_settings = (quantification_settings(r) for r in (from_store, from_files))
    assert stored_settings["exclusions"] == file_settings["exclusions"]
    assert stored_settings["excluded_wells"] == file_settings["excluded_wells"]
    reasons = {
        (w["well"], w["analyte"]): w["exclusion_reason"] for w in stored_settings["excluded_wells"]
    }
    assert reasons == {
        ("A01", "IL-6"): "bubble seen in the well",
        ("C02", "IL-6"): "pipetting error",
        ("C02", "TNF"): "pipetting error",
    }
    # Storing the refit reuses the plate: the fingerprint of what it read is the stored one.
    second = store_quantification(store, from_store, user="bob", previous=first)
    assert [p.code for p in second.plates] == [PLATE]
    assert _count(store, Plate) == 1
    assert verify_audit(store) is None


def test_the_refit_changes_only_the_curves_the_exclusions_touch(stored, first_run):
    store, _ = stored
    exclude_wells(store, STUDY, parse_exclusions("ELISA-01:A01:IL-6=bubble"), user="bob")
    refit = run_quantification([load_measurements(store, STUDY)]).calibration.curves
    before = first_run.calibration.curves
    tnf = [refit[refit["analyte"] == "TNF"], before[before["analyte"] == "TNF"]]
    pd.testing.assert_frame_equal(*(t.reset_index(drop=True) for t in tnf), check_dtype=False)
    il6 = [refit[refit["analyte"] == "IL-6"], before[before["analyte"] == "IL-6"]]
    assert il6[0]["c"].iloc[0] != il6[1]["c"].iloc[0]


# --- refusals: nothing half-written ---------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            ["ELISA-01:A01:IL-6=bubble", "ELISA-01:Z99=typo"],
            "exclusion 'ELISA-01:Z99' matches no well",
        ),
        (["ELISA-01:A01:IL-8=not measured"], "exclusion 'ELISA-01:A01:IL-8' matches no well"),
        (["ELISA-99:A01=wrong plate"], "exclusion 'ELISA-99:A01' matches no well: study"),
    ],
)
def test_an_exclusion_that_matches_no_well_is_named_and_nothing_is_written(
    stored, entries, message
):
    store, _ = stored
    before = (_fingerprint(store), _count(store, AuditEntry))
    with pytest.raises(InputError, match=message):
        exclude_wells(store, STUDY, parse_exclusions(entries), user="bob")
    assert _excluded(store) == set()
    assert (_fingerprint(store), _count(store, AuditEntry)) == before


def test_an_exclusion_without_a_reason_or_a_well_is_refused(stored):
    store, _ = stored
    with pytest.raises(InputError, match="needs a plate, a well and a reason") as caught:
        exclude_wells(store, STUDY, [{"plate_id": PLATE, "well": "A01", "reason": " "}], user="bob")
    assert (caught.value.row, caught.value.field) == (1, "reason")
    with pytest.raises(InputError, match="no column") as caught:
        exclude_wells(store, STUDY, [{"plate_id": PLATE, "reason": "x"}], user="bob")
    assert caught.value.field == "well"
    with pytest.raises(InputError, match="no exclusions given"):
        exclude_wells(store, STUDY, parse_exclusions(None), user="bob")
    assert _excluded(store) == set()


def test_a_viewer_may_not_exclude(stored):
    store, _ = stored
    with pytest.raises(AuthorizationError, match="may not exclude wells"):
        exclude_wells(store, STUDY, parse_exclusions("ELISA-01:A01=bubble"), user="vic")
    assert _excluded(store) == set()


def test_a_plate_read_by_a_signed_off_analysis_refuses_exclusions(stored):
    store, analysis = stored
    sign_off(store, analysis, user="ada")
    before = (_fingerprint(store), _count(store, AuditEntry))
    with pytest.raises(SignedOffError, match="read by signed-off analysis"):
        exclude_wells(store, STUDY, parse_exclusions("ELISA-01:A01=bubble"), user="bob")
    with pytest.raises(SignedOffError, match="read by signed-off analysis"):
        include_wells(store, STUDY, parse_exclusions("ELISA-01:A01=re-read"), user="bob")
    assert _excluded(store) == set()
    assert (_fingerprint(store), _count(store, AuditEntry)) == before
    assert verify_audit(store) is None


def test_a_failed_exclusion_inside_a_callers_transaction_leaves_nothing(stored):
    store, _ = stored
    with pytest.raises(InputError), store.session() as session:
        exclude_wells(session, STUDY, parse_exclusions("ELISA-01:A01=bubble"), user="bob")
        exclude_wells(session, STUDY, parse_exclusions("ELISA-01:Z1=typo"), user="bob")
    assert _excluded(store) == set()
    assert verify_audit(store) is None


# --- include ------------------------------------------------------------------------------


def test_including_restores_the_wells_and_their_fingerprint_audited(stored):
    store, _ = stored
    original = _fingerprint(store)
    exclude_wells(store, STUDY, parse_exclusions("ELISA-01:A01=bubble"), user="bob")
    include_wells(store, STUDY, parse_exclusions("ELISA-01:A01:TNF=re-read: no bubble"), user="bob")
    assert _excluded(store) == {("A01", "IL-6", "bubble")}
    entry = audit_entries(store)[-1]
    assert entry["action"] == "include"
    assert entry["details"]["reason"] == "re-read: no bubble"
    assert entry["details"]["previous"] == {"TNF": "bubble"}
    # Without an analyte, every excluded analyte of the well comes back.
    include_wells(store, STUDY, parse_exclusions("ELISA-01:A1=re-read: no bubble"), user="bob")
    assert _excluded(store) == set()
    assert audit_entries(store)[-1]["details"]["analytes"] == ["IL-6"]
    assert _fingerprint(store) == original
    assert "exclusion_reason" not in load_measurements(store, STUDY).columns
    assert verify_audit(store) is None


def test_including_a_well_that_is_not_excluded_is_refused(stored):
    store, _ = stored
    n = _count(store, AuditEntry)
    with pytest.raises(InputError, match="'ELISA-01:A01' is not excluded"):
        include_wells(store, STUDY, parse_exclusions("ELISA-01:A01=why not"), user="bob")
    assert _count(store, AuditEntry) == n


def test_an_edit_of_exclude_keeps_its_reason_as_the_exclusion_reason(stored):
    store, _ = stored
    with store.reader() as session:
        row = session.scalar(
            select(Measurement).where(Measurement.well == "A01", Measurement.analyte == "IL-6")
        )
    edit_measurement(store, row.id, user="bob", reason="outlier by Grubbs", exclude=True)
    assert _excluded(store) == {("A01", "IL-6", "outlier by Grubbs")}
    edit_measurement(store, row.id, user="bob", reason="not an outlier", exclude=False)
    assert _excluded(store) == set()
    assert verify_audit(store) is None


# --- the schema -----------------------------------------------------------------------------


def test_a_store_of_the_previous_version_upgrades_keeping_its_plates(backend, tmp_path, table):
    s = Store(empty_database_url(backend, tmp_path), upgrade=False)
    s.upgrade("0003")
    with s.engine.begin() as conn:  # what an older CytoSafe stored: no reason column
        assert "exclusion_reason" not in {
            c["name"] for c in inspect(conn).get_columns("measurements")
        }
    s.upgrade()
    seeded(s)
    first = run_quantification([table])
    store_quantification(s, first, user="bob")
    exclude_wells(s, STUDY, parse_exclusions("ELISA-01:A01=bubble"), user="bob")
    assert _excluded(s) == {("A01", "IL-6", "bubble"), ("A01", "TNF", "bubble")}
    s.downgrade("0003")  # and back: the column goes, the rest stays
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM measurements").scalar() == len(table)
    s.close()


# --- the command line -------------------------------------------------------------------------


def _cli() -> typer.Typer:
    """``cytosafe store``: the real command group, as ``cytosafe store ...`` runs it."""
    from cytosafe.cli import store_app

    return store_app


def test_store_exclude_and_include_commands(store, tmp_path):
    url = store.url.render_as_string(hide_password=False)
    cli = _cli()
    done = CliRunner().invoke(
        cli, ["import", str(ELISA), "--create-study", "--user", "ana", "--database", url]
    )
    assert done.exit_code == 0, done.output
    listed = tmp_path / "exclusions.csv"
    listed.write_text("plate_id,well,analyte,reason\nELISA-01,B01,IL-6,clot in the tip\n")
    args = ["exclude", STUDY, "--exclude", "ELISA-01:A01:IL-6=bubble seen", "--exclusions"]
    done = CliRunner().invoke(cli, [*args, str(listed), "--user", "ana", "--database", url])
    assert done.exit_code == 0, done.output
    assert "excluded ELISA-01:A01 (IL-6): bubble seen" in done.output
    assert "excluded ELISA-01:B01 (IL-6): clot in the tip" in done.output
    assert "2 measurement(s) excluded in study CRA-EX-001" in done.output
    assert _excluded(store) == {("A01", "IL-6", "bubble seen"), ("B01", "IL-6", "clot in the tip")}
    assert [e["actor"] for e in audit_entries(store) if e["action"] == "exclude"] == ["ana", "ana"]
    # A typo is named, exits 2, and writes nothing (not even the other exclusion).
    n = _count(store, AuditEntry)
    args = ["exclude", STUDY, "--exclude", "ELISA-01:C01=ok", "--exclude", "ELISA-01:Z01=typo"]
    done = CliRunner().invoke(cli, [*args, "--user", "ana", "--database", url])
    assert done.exit_code == 2
    assert done.output.startswith("error: well Z01")
    assert "exclusion 'ELISA-01:Z01' matches no well" in done.output
    assert _count(store, AuditEntry) == n
    # No wells named: a usage error.
    done = CliRunner().invoke(cli, ["exclude", STUDY, "--user", "ana", "--database", url])
    assert done.exit_code == 2 and "--exclude" in done.output
    done = CliRunner().invoke(
        cli,
        ["include", STUDY, "--include", "ELISA-01:A01=re-read", "--user", "ana", "--database", url],
    )
    assert done.exit_code == 0, done.output
    assert "restored ELISA-01:A01 (IL-6): re-read" in done.output
    assert _excluded(store) == {("B01", "IL-6", "clot in the tip")}
    assert verify_audit(store) is None


def test_store_import_of_a_results_directory_keeps_the_reasons(store, tmp_path):
    from cytosafe.cli import app as cytosafe_app

    url = store.url.render_as_string(hide_password=False)
    out = tmp_path / "results"
    args = ["quantify", str(ELISA), "--exclude", "ELISA-01:A01=bubble", "--out", str(out), "-q"]
    done = CliRunner().invoke(cytosafe_app, args)
    assert done.exit_code == 0, done.output
    args = ["import", str(out), "--create-study", "--user", "ana", "--database", url]
    done = CliRunner().invoke(_cli(), args)
    assert done.exit_code == 0, done.output
    assert _excluded(store) == {("A01", "IL-6", "bubble")}
    assert verify_audit(store) is None
