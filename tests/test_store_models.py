"""The store: schema migrations, models, transactional imports, round trips (SQLite and
PostgreSQL)."""

from __future__ import annotations

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select

import store_backends
from cytosafe.errors import InputError, SchemaError
from cytosafe.schema.measurements import MEASUREMENT_COLUMNS
from cytosafe.store import (
    Analysis,
    AuditEntry,
    Grade,
    Measurement,
    Observation,
    Plate,
    Store,
    User,
    create_study,
    create_user,
    default_url,
    import_grades,
    import_measurements,
    import_observations,
    load_measurements,
    load_table,
    verify_audit,
    verify_password,
)
from cytosafe.store.database import resolve_url
from cytosafe.store.models import Base
from cytosafe.workflows import quantification_tables, store_quantification
from store_backends import STUDY, empty_database_url, quantified, seeded

# The shared fixtures (one PostgreSQL cluster for the session; a store per backend).
postgres_cluster = store_backends.postgres_cluster
backend = store_backends.backend
store = store_backends.store

TABLES = set(Base.metadata.tables)


@pytest.fixture(scope="module")
def result():
    return quantified()


def _count(store, model) -> int:
    with store.reader() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_migrations_from_an_empty_database_up_down_and_up_again(backend, tmp_path):
    s = Store(empty_database_url(backend, tmp_path), upgrade=False)
    assert s.revision() is None
    assert not TABLES & set(inspect(s.engine).get_table_names())
    s.upgrade()
    assert s.revision() == "0006"
    assert TABLES <= set(inspect(s.engine).get_table_names())
    with s.engine.connect() as conn:  # the migrations build exactly what the models say
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    s.downgrade("base")
    assert s.revision() is None
    assert not TABLES & set(inspect(s.engine).get_table_names())
    s.upgrade()
    seeded(s)  # the re-created schema, triggers included, works
    assert verify_audit(s) is None
    s.close()


def test_opening_a_store_upgrades_an_empty_database(backend, tmp_path):
    with Store(empty_database_url(backend, tmp_path)) as s:
        assert s.revision() == "0006"


def test_measurement_model_holds_every_tidy_column():
    stored = set(Measurement.__table__.columns.keys())
    tidy = {c.name for c in MEASUREMENT_COLUMNS} - {"study_id", "plate_id"}
    assert tidy <= stored


def test_default_database_is_sqlite_in_the_user_data_directory(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.delenv("CYTOSAFE_DATABASE_URL", raising=False)
    assert (
        default_url() == f"sqlite:///{platformdirs.user_data_path('cytosafe') / 'cytosafe.sqlite3'}"
    )
    monkeypatch.setenv("CYTOSAFE_DATABASE_URL", "postgresql://lab@db/cytosafe")
    assert resolve_url(None).drivername == "postgresql+psycopg"
    assert resolve_url(tmp_path / "x.sqlite3").get_backend_name() == "sqlite"


@pytest.mark.parametrize("url", ["mysql://lab@db/cytosafe", "postgresql://:::"])
def test_an_unsupported_database_url_is_an_input_error(url):
    with pytest.raises(InputError, match="database"):
        resolve_url(url)


def test_passwords_are_argon2id_hashes(store):
    seeded(store)
    create_user(store, "eve", role="admin", password="correct horse", by="ada")
    with store.reader() as session:
        ada = session.scalar(select(User).where(User.username == "eve"))
        bob = session.scalar(select(User).where(User.username == "bob"))
    assert ada.password_hash.startswith("$argon2id$")
    assert "correct horse" not in ada.password_hash
    assert verify_password(ada, "correct horse")
    assert not verify_password(ada, "wrong")
    assert not verify_password(bob, "")  # no password: cannot sign in


def test_quantification_round_trip_keeps_every_table_and_setting(store, result):
    seeded(store)
    analysis = store_quantification(store, result, user="bob", report="<html>QC</html>")
    assert (analysis.kind, analysis.version, analysis.status) == ("quantification", 1, "completed")
    assert analysis.settings["calibration"]["model"] == result.calibration.settings.model
    assert analysis.settings["potency"]["ecx"] == result.potency_settings.ecx
    assert analysis.cytosafe_version
    assert analysis.inputs[0]["measurements_sha256"]  # a DataFrame input is fingerprinted
    for name, frame in {
        "concentrations": result.concentrations,
        # the curves table every face writes: the fit joined with its QC verdict and counts
        "curves": quantification_tables(result)["curves"],
        "qc": result.qc,
        "potency": result.potency,
        "samples": result.calibration.samples,
        "standards": result.calibration.standards,
    }.items():
        pd.testing.assert_frame_equal(
            load_table(store, analysis.id, name), frame.reset_index(drop=True), check_dtype=False
        )
    stored = load_measurements(store, STUDY)
    pd.testing.assert_frame_equal(
        stored.sort_values(["plate_id", "well", "analyte"]).reset_index(drop=True),
        result.measurements.sort_values(["plate_id", "well", "analyte"]).reset_index(drop=True),
        check_dtype=False,  # an all-empty column comes back as object, not float
    )


def test_the_same_plate_imported_again_is_reused(store, result):
    seeded(store)
    store_quantification(store, result, user="bob")
    second = store_quantification(store, result, user="bob")
    assert second.version == 2
    assert _count(store, Plate) == 1
    assert _count(store, Measurement) == len(result.measurements)


def test_a_plate_with_different_measurements_is_refused_and_nothing_written(store, result):
    seeded(store)
    import_measurements(store, result.measurements, user="bob")
    changed = result.measurements.copy()
    changed.loc[0, "signal"] += 1.0
    entries = _count(store, AuditEntry)
    with pytest.raises(InputError, match="already in study 'CRA-EX-001' with different"):
        store_quantification(
            store, quantified().__class__(**{**vars(result), "measurements": changed}), user="bob"
        )
    assert _count(store, Analysis) == 0
    assert _count(store, AuditEntry) == entries


def test_measurements_of_another_study_are_refused(store, result):
    seeded(store)
    create_study(store, "OTHER", user="ada")
    with pytest.raises(InputError, match="belongs to study 'CRA-EX-001', not 'OTHER'"):
        import_measurements(store, result.measurements, study="OTHER", user="bob")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"study": "NOPE", "user": "bob"}, "unknown study 'NOPE'"),
        ({"user": "nobody"}, "unknown or inactive user 'nobody'"),
        ({"user": None}, "every change must be attributed"),
    ],
)
def test_bad_import_arguments_are_input_errors(store, result, kwargs, message):
    seeded(store)
    with pytest.raises(InputError, match=message):
        store_quantification(store, result, **kwargs)
    assert _count(store, Plate) == 0


def test_a_malformed_measurement_table_is_refused_naming_the_field(store, result):
    seeded(store)
    with pytest.raises(SchemaError, match="signal"):
        import_measurements(store, result.measurements.drop(columns="signal"), user="bob")
    assert _count(store, Measurement) == 0


def test_observations_and_grades_are_stored_per_patient(store):
    seeded(store)
    create_study(store, "COHORT", user="ada", kind="clinical")
    observations = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P2"],
            "time": ["2024-06-28T08:00:00", "2024-06-28T12:00:00", "2024-06-29T08:00:00+02:00"],
            "item": ["infusion", "temperature", "temperature"],
            "value": ["CAR-T", 39.2, 38.1],
            "unit": [None, "C", "C"],
        }
    )
    assert import_observations(store, observations, study="COHORT", user="bob") == 3
    grades = pd.DataFrame(
        {
            "patient_id": ["P1", "P2"],
            "time": ["2024-06-28T12:00:00", "2024-06-29T06:00:00"],
            "scale": ["astct2019", "astct2019"],
            "grade": [1, 1],
            "criterion": ["fever >= 38.0 C", "fever >= 38.0 C"],
        }
    )
    analysis = import_grades(
        store, grades, study="COHORT", user="bob", settings={"scale": "astct2019"}
    )
    assert analysis.kind == "grading"
    assert _count(store, Observation) == 3
    assert _count(store, Grade) == 2
    with store.reader() as session:
        times = session.scalars(select(Observation.time).order_by(Observation.id)).all()
    assert times[2].replace(tzinfo=None).hour == 6  # stored in UTC
    bad = observations.assign(time=["yesterday", "2024-06-28T12:00:00", "2024-06-28T12:00:00"])
    with pytest.raises(InputError, match="row 2, field 'time'"):
        import_observations(store, bad, study="COHORT", user="bob")
    assert _count(store, Observation) == 3


def _cli():
    import typer

    from cytosafe.cli import reporting_errors
    from cytosafe.cli.store import store_import

    app = typer.Typer()
    app.command()(reporting_errors(store_import))
    return app


def test_store_import_command_stores_a_results_directory_or_exports(store, tmp_path):
    from typer.testing import CliRunner

    from cytosafe.cli import app as cytosafe_app
    from store_backends import ELISA

    url = store.url.render_as_string(hide_password=False)
    out = tmp_path / "results"
    done = CliRunner().invoke(cytosafe_app, ["quantify", str(ELISA), "--out", str(out), "-q"])
    assert done.exit_code == 0, done.output
    refused = CliRunner().invoke(_cli(), [str(out), "--database", url, "--user", "ada"])
    assert refused.exit_code == 2
    assert "unknown study 'CRA-EX-001'" in refused.output
    assert _count(store, User) == 0  # the failed command left nothing, not even its user
    stored = CliRunner().invoke(
        _cli(), [str(out), "--database", url, "--user", "ada", "--create-study"]
    )
    assert stored.exit_code == 0, stored.output
    assert (
        "stored quantification v1 of study CRA-EX-001 as analysis 1 (1 plate(s))" in stored.output
    )
    again = CliRunner().invoke(
        _cli(), [str(ELISA), "--database", url, "--user", "ada", "--previous", "1"]
    )
    assert again.exit_code == 0, again.output
    assert "v2" in again.output
    with store.reader() as session:
        second = session.get(Analysis, 2)
        assert second.previous_id == 1
        assert second.inputs[0]["sha256"] and second.inputs[0]["name"] == str(ELISA)
    assert _count(store, Plate) == 1  # the CSV results and the export hold the same plate
    assert verify_audit(store) is None
