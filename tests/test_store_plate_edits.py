"""A stored plate's sample map attached later, a plate deleted and a study's design stored
(issue 15, item 2), on SQLite and PostgreSQL: each is one audited transaction that leaves
``verify_audit`` intact, each is refused once a signed-off analysis read the plate, and
the edited data stay tamper-evident."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlalchemy import func, select

import store_backends
from cytosafe.errors import InputError
from cytosafe.store import (
    AnalysisTable,
    Measurement,
    Plate,
    SignedOffError,
    audit_entries,
    import_measurements,
    load_measurements,
    sign_off,
    verify_audit,
)
from cytosafe.store.studies import annotate_plate, delete_plate, plate_sha256, save_design
from cytosafe.workflows import store_quantification
from store_backends import ELISA, STUDY, seeded

postgres_cluster = store_backends.postgres_cluster
backend = store_backends.backend
store = store_backends.store

PLATE = "ELISA-01"


def _unmapped() -> pd.DataFrame:
    """The example ELISA plate as exported without its sample map: no culture columns."""
    table = pd.read_csv(ELISA)
    for column in ("donor_id", "treatment", "treatment_role", "treatment_concentration"):
        if column in table.columns:
            table[column] = None
    return table


@pytest.fixture
def plate(store):
    seeded(store)
    import_measurements(store, _unmapped(), study=STUDY, user="bob")
    return store


def _quantified(store):
    """The stored plate quantified as it is (without its map)."""
    import cytosafe

    return cytosafe.quantify(load_measurements(store, STUDY))


def _mapped(store) -> pd.DataFrame:
    """The stored plate with the example's culture columns joined back (what the web app
    gets from :func:`cytosafe.io.samples.annotate`)."""
    stored = load_measurements(store, STUDY, plates=[PLATE])
    example = pd.read_csv(ELISA).set_index(["well", "analyte"])
    keys = pd.MultiIndex.from_arrays([stored["well"], stored["analyte"]])
    for column in ("donor_id", "treatment", "treatment_role", "treatment_concentration"):
        stored[column] = example[column].reindex(keys).to_numpy()
    return stored


def test_attaching_a_sample_map_is_an_audited_edit_that_verifies(plate):
    before = load_measurements(plate, STUDY, plates=[PLATE])
    assert before["donor_id"].isna().all()
    done = annotate_plate(
        plate, STUDY, PLATE, _mapped(plate), user="bob", reason="map found", source="map.csv"
    )
    after = load_measurements(plate, STUDY, plates=[PLATE])
    samples = after["sample_type"].astype(str) == "sample"
    assert done["n_changed"] == int(samples.sum()) > 0
    assert {"donor_id", "treatment", "treatment_role"} <= set(done["fields"])
    assert after.loc[samples, "donor_id"].notna().all()
    with plate.reader() as session:
        stored = session.scalar(select(Plate.measurements_sha256).where(Plate.code == PLATE))
    assert stored == plate_sha256(after) == done["measurements_sha256"]
    entry = audit_entries(plate, object_type="plate")[-1]
    assert entry["action"] == "edit" and entry["details"]["change"] == "sample map"
    assert entry["details"]["reason"] == "map found"
    assert entry["details"]["old_measurements_sha256"] != stored
    assert verify_audit(plate) is None


def test_a_map_that_changes_signals_or_wells_is_refused_and_writes_nothing(plate):
    table = _mapped(plate)
    table.loc[table.index[0], "signal"] = table["signal"].iloc[0] + 1
    with pytest.raises(InputError, match="signal") as info:
        annotate_plate(plate, STUDY, PLATE, table, user="bob", reason="x", source="map.csv")
    assert info.value.file == "map.csv" and info.value.well
    with pytest.raises(InputError, match="wells of plate"):
        annotate_plate(plate, STUDY, PLATE, _mapped(plate).iloc[1:], user="bob", reason="x")
    assert load_measurements(plate, STUDY)["donor_id"].isna().all()
    assert verify_audit(plate) is None


def test_an_attached_map_stays_tamper_evident(plate):
    annotate_plate(plate, STUDY, PLATE, _mapped(plate), user="bob", reason="map")
    with plate.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE measurements SET donor_id = 'D99' WHERE donor_id IS NOT NULL")
    broken = verify_audit(plate)
    assert broken is not None and broken.kind == "data" and PLATE in broken.reason


def test_deleting_a_plate_keeps_the_analyses_tables_and_verifies(plate):
    analysis = store_quantification(plate, _quantified(plate), user="bob").id
    with plate.reader() as session:
        tables = session.scalar(
            select(func.count())
            .select_from(AnalysisTable)
            .where(AnalysisTable.analysis_id == analysis)
        )
    done = delete_plate(plate, STUDY, PLATE, user="bob", reason="wrong plate uploaded")
    assert done["analyses_unlinked"] == [analysis] and done["n_measurements"] > 0
    with plate.reader() as session:
        assert session.scalar(select(func.count()).select_from(Plate)) == 0
        assert session.scalar(select(func.count()).select_from(Measurement)) == 0
        assert (
            session.scalar(
                select(func.count())
                .select_from(AnalysisTable)
                .where(AnalysisTable.analysis_id == analysis)
            )
            == tables
        )
    entry = audit_entries(plate, object_type="plate")[-1]
    assert entry["action"] == "delete" and entry["details"]["change"] == "delete"
    assert entry["details"]["reason"] == "wrong plate uploaded"
    assert verify_audit(plate) is None


def test_after_sign_off_the_plate_can_neither_get_a_map_nor_be_deleted(plate):
    analysis = store_quantification(plate, _quantified(plate), user="bob").id
    sign_off(plate, analysis, user="ada")
    with pytest.raises(SignedOffError, match="signed-off analysis"):
        annotate_plate(plate, STUDY, PLATE, _mapped(plate), user="bob", reason="late map")
    with pytest.raises(SignedOffError, match="cannot be deleted"):
        delete_plate(plate, STUDY, PLATE, user="bob", reason="tidy up")
    assert load_measurements(plate, STUDY)["donor_id"].isna().all()
    assert verify_audit(plate) is None


def test_edits_need_a_reason_an_analyst_and_an_existing_plate(plate):
    with pytest.raises(InputError, match="reason"):
        delete_plate(plate, STUDY, PLATE, user="bob", reason=" ")
    with pytest.raises(InputError, match="no plate 'NOPE'"):
        delete_plate(plate, STUDY, "NOPE", user="bob", reason="x")
    from cytosafe.store import AuthorizationError

    with pytest.raises(AuthorizationError):
        delete_plate(plate, STUDY, PLATE, user="vic", reason="x")


def test_a_stored_design_is_audited_with_its_sha256(plate):
    design = {"study": {"id": STUDY}, "treatment": [{"name": "medium", "role": "negative_control"}]}
    save_design(plate, STUDY, design, user="bob")
    save_design(plate, STUDY, design, user="bob")  # unchanged: no second entry
    entries = [e for e in audit_entries(plate, object_type="study") if e["action"] == "edit"]
    assert len(entries) == 1
    import hashlib

    from cytosafe.store.audit import canonical_json

    digest = hashlib.sha256(canonical_json(design).encode()).hexdigest()
    assert entries[0]["details"]["design_sha256"] == digest
    with plate.reader() as session:
        from cytosafe.store import Study

        stored = session.scalar(select(Study.design).where(Study.code == STUDY))
    assert json.loads(json.dumps(stored)) == design
    assert verify_audit(plate) is None
