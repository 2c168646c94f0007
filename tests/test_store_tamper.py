"""Tamper-evident data, not only a tamper-evident log (issue 14, item 2 and defect 8), on
SQLite and PostgreSQL.

Each tampering is done as an attacker with database access would: raw SQL, the guard
triggers dropped or disabled first. ``verify_audit`` (and ``cytosafe audit verify``) must
name the object that no longer matches the fingerprint its last audit entry recorded;
an untampered store verifies intact.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import typer
from sqlalchemy import select, text
from typer.testing import CliRunner

import store_backends
from cytosafe.cli.store import audit_head, audit_verify
from cytosafe.errors import InputError
from cytosafe.store import (
    AuditEntry,
    Plate,
    Store,
    audit_entries,
    audit_problems,
    chain_heads,
    create_study,
    create_user,
    exclude_wells,
    head,
    import_grades,
    import_observations,
    issue_token,
    parse_heads,
    sign_off,
    verify_audit,
)
from cytosafe.store.models import Study, User
from cytosafe.workflows import store_quantification
from store_backends import STUDY, quantified, seeded
from store_templates import store_template

postgres_cluster = store_backends.postgres_cluster
backend = store_backends.backend
store = store_backends.store

COHORT = "COHORT-T"
PLATE = "ELISA-02"  # the plate no signed-off analysis read: its wells can be excluded


@pytest.fixture(scope="module")
def result():
    return quantified()


def _build(store, result):
    seeded(store)
    create_user(store, "dan", role="study_director", by="ada")
    create_study(store, COHORT, user="ada", kind="clinical", group="lab-t")
    analysis = store_quantification(store, result, user="bob", report="<html>v1</html>")
    # Quantified again (v2) and signed off; the plate a third run read stays editable.
    signed = store_quantification(store, result, user="bob", previous=analysis)
    sign_off(store, signed, user="ada")
    store_quantification(store, quantified(PLATE), user="bob")
    exclude_wells(
        store,
        STUDY,
        [{"plate_id": PLATE, "well": "A1", "reason": "bubble in the well"}],
        user="bob",
    )
    observations = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P2"],
            "time": ["2024-06-28T08:00:00", "2024-06-28T12:00:00", "2024-06-29T08:00:00"],
            "item": ["infusion", "temperature", "temperature"],
            "value": ["CAR-T", "39.2", "38.1"],
            "unit": [None, "C", "C"],
        }
    )
    import_observations(store, observations, study=COHORT, user="bob")
    grades = pd.DataFrame(
        {
            "patient_id": ["P1"],
            "time": ["2024-06-28T12:00:00"],
            "scale": ["astct2019"],
            "grade": [1],
            "criterion": ["fever >= 38.0 C"],
        }
    )
    grading = import_grades(store, grades, study=COHORT, user="bob", settings={"scale": "astct"})
    issue_token(store, "vic")
    return {"analysis": analysis, "signed": signed, "grading": grading}


@pytest.fixture(scope="module")
def template(result):
    # Three quantifications, a sign-off, observations and grades: built once per backend.
    return store_template(lambda store: _build(store, result))


@pytest.fixture
def full(backend, tmp_path, template):
    """A store holding one of everything the chain fingerprints: users, a group, a CRA
    study with a quantified plate (an excluded well), a clinical study with observations
    and a grading run, a token, and a signed-off analysis: each test its own copy of the
    module's template store (chain included; the objects are the detached ones the
    build returned, which the tests only read)."""
    with template.copy(backend, tmp_path) as (store, made):
        yield store, made


def _sql(store: Store, *statements: str, drop: tuple[str, ...] = ()) -> None:
    """Run ``statements`` with the guard triggers ``drop`` out of the way (SQLite: dropped;
    PostgreSQL: every trigger of the tables named is disabled, then enabled again)."""
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            for table in drop:
                conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
            for statement in statements:
                conn.exec_driver_sql(statement)
            for table in drop:
                conn.exec_driver_sql(f"ALTER TABLE {table} ENABLE TRIGGER ALL")
        else:
            for table in drop:
                names = conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
                    (table,),
                ).scalars()
                for name in list(names):
                    conn.exec_driver_sql(f"DROP TRIGGER {name}")
            for statement in statements:
                conn.exec_driver_sql(statement)


def _last_entry(store: Store, object_type: str, object_id: int) -> int:
    return audit_entries(store, object_type=object_type, object_id=object_id)[-1]["seq"]


def _plate_id(store: Store) -> int:
    with store.reader() as session:
        return session.scalar(select(Plate.id).where(Plate.code == PLATE))


def _cli(command):
    app = typer.Typer()
    app.command()(command)
    return app


def test_an_untampered_store_verifies_intact(full):
    store, _ = full
    assert audit_problems(store) == []
    assert verify_audit(store) is None
    # Every entry about a fingerprinted object records its hash.
    entries = audit_entries(store)
    covered = [e for e in entries if e["object_type"] in ("plate", "analysis", "user")]
    assert covered and all(len(e["details"]["covers"]) >= 1 for e in covered)


def test_update_measurements_is_found_naming_the_plate(full):
    store, _ = full
    plate = _plate_id(store)
    seq = _last_entry(store, "plate", plate)
    _sql(store, f"UPDATE measurements SET signal = signal * 1.01 WHERE plate_id = {plate}")
    broken = verify_audit(store)
    assert (broken.kind, broken.object) == ("data", f"plate:{plate}")
    assert str(broken) == (
        f"plate {PLATE} of study {STUDY}: measurements changed since audit entry {seq} (exclude)"
    )


@pytest.mark.parametrize("change", ["exclude = NOT exclude", "exclusion_reason = 'forged reason'"])
def test_a_changed_exclusion_is_found(full, change):
    store, _ = full
    plate = _plate_id(store)
    _sql(store, f"UPDATE measurements SET {change} WHERE plate_id = {plate} AND well = 'A01'")
    assert verify_audit(store).object == f"plate:{plate}"


def test_an_edited_observation_is_found(full):
    store, _ = full
    with store.reader() as session:
        study = session.scalar(text(f"SELECT id FROM studies WHERE code = '{COHORT}'"))
    seq = _last_entry(store, "observations", study)
    _sql(store, "UPDATE observations SET value = '37.0' WHERE value = '39.2'")
    broken = verify_audit(store)
    assert str(broken) == (
        f"the observations of study {COHORT}: observations changed since audit entry {seq} (import)"
    )


def test_a_deleted_observation_is_found(full):
    store, _ = full
    _sql(store, "DELETE FROM observations WHERE value = '38.1'")
    assert "the observations of study COHORT-T" in str(verify_audit(store))


def test_a_changed_role_is_found(full):
    store, _ = full
    with store.reader() as session:
        vic = session.scalar(text("SELECT id FROM users WHERE username = 'vic'"))
    seq = _last_entry(store, "user", vic)
    _sql(store, "UPDATE users SET role = 'admin' WHERE username = 'vic'")
    broken = verify_audit(store)
    assert str(broken) == (
        f"user 'vic': account (role, password or status) changed since audit entry {seq} (create)"
    )


def test_a_replaced_password_hash_is_found(full):
    store, _ = full
    _sql(store, "UPDATE users SET password_hash = 'forged' WHERE username = 'ada'")
    assert str(verify_audit(store)).startswith("user 'ada': account")


def test_an_unsigned_analysis_is_found(full):
    # The trigger that guards signed-off analyses dropped, the status set back.
    store, made = full
    signed = made["signed"].id
    seq = _last_entry(store, "analysis", signed)
    _sql(
        store,
        "UPDATE analyses SET status = 'completed', signed_off_by_id = NULL, "
        f"signed_off_at = NULL WHERE id = {signed}",
        drop=("analyses",),
    )
    broken = verify_audit(store)
    assert str(broken) == (
        f"analysis {signed} (quantification v2 of study {STUDY}): record, sign-off, tables or "
        f"report changed since audit entry {seq} (sign-off)"
    )


def test_a_result_table_rewritten_with_a_matching_hash_is_found(full):
    # Content and its sha256 column forged together: verify_tables cannot see it.
    store, made = full
    analysis = made["analysis"].id
    other = f"FROM analysis_tables WHERE analysis_id = {analysis} AND name = 'curves'"
    _sql(
        store,
        f"UPDATE analysis_tables SET content = (SELECT content {other}), "
        f"sha256 = (SELECT sha256 {other}) WHERE analysis_id = {analysis} AND name = 'qc'",
    )
    assert verify_audit(store).object == f"analysis:{analysis}"


def test_a_replaced_report_and_a_changed_grade_are_found(full):
    store, made = full
    analysis = made["analysis"].id
    _sql(
        store,
        "UPDATE reports SET content = (SELECT content FROM analysis_tables WHERE "
        f"analysis_id = {analysis} AND name = 'qc') WHERE analysis_id = {analysis}",
    )
    _sql(store, "UPDATE grades SET grade = 3")
    objects = [p.object for p in audit_problems(store)]
    assert objects == [f"analysis:{made['analysis'].id}", f"analysis:{made['grading'].id}"]


def test_objects_written_behind_the_stores_back_are_found(full):
    store, _ = full
    _sql(
        store,
        "INSERT INTO users (username, role, active, created_at) "
        "VALUES ('mallory', 'admin', true, CURRENT_TIMESTAMP)",
    )
    broken = verify_audit(store)
    assert broken.kind == "uncovered"
    assert str(broken) == (
        "user 'mallory': not covered by any audit entry (written behind the store's back)"
    )


def test_a_member_added_in_sql_changes_the_group(full):
    store, _ = full
    _sql(
        store,
        "INSERT INTO group_members (group_id, user_id) SELECT g.id, u.id FROM groups g, users u "
        "WHERE g.name = 'lab-t' AND u.username = 'vic'",
    )
    assert str(verify_audit(store)).startswith("group 'lab-t': members changed")


def test_a_deleted_plate_is_found(full):
    store, _ = full
    # Also a way to hide a plate: the analysis that read it loses the link.
    plate = _plate_id(store)
    _sql(
        store,
        f"DELETE FROM analysis_plates WHERE plate_id = {plate}",
        f"DELETE FROM measurements WHERE plate_id = {plate}",
        f"DELETE FROM plates WHERE id = {plate}",
        drop=("analysis_plates",),
    )
    reasons = [str(p) for p in audit_problems(store)]
    assert any(r.startswith(f"plate {plate}: was deleted since audit entry") for r in reasons)


# --- a truncated tail -------------------------------------------------------------------


def _truncate(store: Store, keep: int) -> None:
    _sql(store, f"DELETE FROM audit_log WHERE seq > {keep}", drop=("audit_log",))


def test_each_sign_off_writes_the_chain_head(full):
    store, made = full
    heads = chain_heads(store)
    assert len(heads) == 1 and heads[0]["reason"] == f"sign-off of analysis {made['signed'].id}"
    entry = audit_entries(store, object_type="analysis", object_id=made["signed"].id)[-1]
    assert (heads[0]["seq"], heads[0]["hash"]) == (entry["seq"], entry["hash"])


def test_a_truncated_tail_is_found_against_the_head_of_the_sign_off(full):
    store, _ = full
    signed = chain_heads(store)[0]["seq"]
    _truncate(store, signed - 1)
    broken = verify_audit(store)
    assert broken.kind == "head"
    assert f"the chain ends at entry {signed - 1} but reached entry {signed}" in str(broken)
    assert "removed from its tail" in str(broken)


def test_a_truncated_tail_is_found_against_a_head_written_out(full):
    # The attacker also truncates audit_heads: the head kept outside the database holds.
    store, _ = full
    issue_token(store, "ada")  # an entry after the last sign-off
    count, digest = head(store)
    _truncate(store, count - 1)
    # Without the head, only the token left without its entry shows it.
    assert verify_audit(store).kind == "uncovered"
    broken = verify_audit(store, heads=[(count, digest)])
    assert broken.kind == "head" and f"reached entry {count}" in str(broken)
    broken = verify_audit(store, heads=[(None, digest)])
    assert f"the chain no longer reaches the head {digest}" in str(broken)
    _sql(store, "DELETE FROM audit_heads", drop=("audit_heads",))
    assert verify_audit(store, heads=[(count, digest)]).kind == "head"


def test_the_heads_file_gets_a_line_at_each_sign_off(backend, tmp_path, result):
    heads_file = tmp_path / "heads.jsonl"
    fresh = store_backends.new_store(backend, tmp_path)
    fresh.close()
    s = Store(fresh.url, heads_file=heads_file)
    seeded(s)
    analysis = store_quantification(s, result, user="bob")
    sign_off(s, analysis, user="ada")
    lines = heads_file.read_text().splitlines()
    assert len(lines) == 1
    written = json.loads(lines[0])
    assert (written["seq"], written["hash"]) == head(s)
    assert parse_heads(heads_file.read_text()) == [head(s)]
    s.close()


def test_audit_head_and_verify_head_on_the_command_line(full, tmp_path):
    store, _ = full
    url = store.url.render_as_string(hide_password=False)
    out = tmp_path / "heads.jsonl"
    printed = CliRunner().invoke(_cli(audit_head), ["--database", url, "--out", str(out)])
    assert printed.exit_code == 0, printed.output
    count, digest = head(store)
    assert printed.output.strip() == f"{count} {digest}"
    ok = CliRunner().invoke(_cli(audit_verify), ["--database", url, "--head", str(out)])
    assert ok.exit_code == 0, ok.output
    assert "every stored object matches its recorded fingerprint" in ok.output
    _truncate(store, count - 1)
    bad = CliRunner().invoke(_cli(audit_verify), ["--database", url, "--head", str(out)])
    assert bad.exit_code == 1
    assert f"audit trail BROKEN: the chain ends at entry {count - 1}" in bad.output
    bad = CliRunner().invoke(_cli(audit_verify), ["--database", url, "--head", f"{count}:{digest}"])
    assert bad.exit_code == 1


def test_the_verify_command_names_the_changed_plate(full):
    store, _ = full
    url = store.url.render_as_string(hide_password=False)
    _sql(store, "UPDATE measurements SET signal = 1")
    _sql(store, "UPDATE users SET role = 'admin' WHERE username = 'vic'")
    bad = CliRunner().invoke(_cli(audit_verify), ["--database", url])
    assert bad.exit_code == 1
    lines = bad.output.splitlines()
    assert lines[0].startswith("audit trail BROKEN: user 'vic': account")
    assert any(line.startswith("also: plate ELISA-01 of study") for line in lines)


@pytest.mark.parametrize("value", ["", "12", "12 xyz", '{"seq": 1}', "1 2 " + "a" * 64])
def test_a_malformed_head_is_an_input_error(value):
    with pytest.raises(InputError, match="head"):
        parse_heads(value, source="--head")


def test_the_head_of_an_empty_chain_is_always_reached(store):
    assert head(store) == (0, "0" * 64)
    assert verify_audit(store, heads=[head(store), (None, "0" * 64)]) is None
    assert verify_audit(store, heads=[(1, "0" * 64)]).kind == "head"


def test_heads_are_read_in_every_written_form():
    digest = "ab" * 32
    text = f"7 {digest}\n7:{digest}\n{digest.upper()}\n" + json.dumps({"seq": 7, "hash": digest})
    assert parse_heads(text) == [(7, digest), (7, digest), (None, digest), (7, digest)]


# --- stores made before the data were fingerprinted -------------------------------------


def test_an_upgraded_store_gets_a_baseline_entry_covering_every_object(full):
    store, _ = full
    store.downgrade("0004")
    # Written at 0004, behind no one's back: the baseline vouches for it as found.
    _sql(
        store,
        "INSERT INTO users (username, role, active, created_at) "
        "VALUES ('legacy', 'viewer', true, CURRENT_TIMESTAMP)",
    )
    before = head(store)[0]
    store.upgrade()
    entries = audit_entries(store)
    assert len(entries) == before + 1
    baseline = entries[-1]
    assert (baseline["actor"], baseline["action"], baseline["user_id"]) == (
        "cytosafe",
        "baseline",
        None,
    )
    assert f"schema upgrade 0004 -> {store.revision()}" in baseline["details"]["reason"]
    assert any(k.startswith("plate:") for k in baseline["details"]["covers"])
    assert verify_audit(store) is None
    _sql(store, "UPDATE users SET role = 'admin' WHERE username = 'legacy'")
    assert str(verify_audit(store)).startswith("user 'legacy': account")
    with store.reader() as session:
        assert session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())) == before + 1


def test_a_design_changed_behind_the_stores_back_is_found_naming_the_study(full):
    from cytosafe.store.studies import save_design

    store, _ = full
    design = {"study": {"code": STUDY, "title": "Example CRA"}, "treatment": [{"name": "mAb"}]}
    study = save_design(store, STUDY, design, user="bob")
    assert verify_audit(store) is None
    seq = _last_entry(store, "study", study.id)
    forged = json.dumps({**design, "treatment": [{"name": "another mAb"}]})
    _sql(store, f"UPDATE studies SET design = '{forged}' WHERE code = '{STUDY}'")
    broken = verify_audit(store)
    assert (broken.kind, broken.object) == ("data", f"study:{study.id}")
    assert STUDY in str(broken) and f"since audit entry {seq}" in str(broken)


def test_a_design_added_in_sql_to_a_study_without_one_is_found(full):
    store, _ = full
    with store.reader() as session:
        cohort = session.scalar(select(Study.id).where(Study.code == COHORT))
    _sql(store, f"""UPDATE studies SET design = '{{"study": {{}}}}' WHERE id = {cohort}""")
    broken = verify_audit(store)
    assert (broken.kind, broken.object) == ("data", f"study:{cohort}")
    assert COHORT in str(broken)


def test_a_study_without_a_design_hashes_as_before_revision_0006(full):
    """A NULL design adds nothing to the fingerprint: what a store recorded before 0006
    (code, title, kind, group, creator) still matches after its upgrade."""
    import hashlib

    from cytosafe.store import integrity

    store, _ = full
    with store.reader() as session:
        row = session.execute(
            select(
                Study.id, Study.code, Study.title, Study.kind, Study.group_id, Study.created_by_id
            ).where(Study.code == COHORT)
        ).one()
        now = integrity.fingerprints(session, "study", [row.id])[row.id]
    line = json.dumps(list(row), separators=(",", ":"), ensure_ascii=False) + "\n"
    assert now == hashlib.sha256(line.encode("utf-8")).hexdigest()


def test_a_refused_signature_writes_no_chain_head_even_as_an_old_sign_off_entry(full):
    """Stores written before the ``sign-refused`` action recorded a refusal as ``sign-off``
    with ``outcome: refused``; neither form writes a head (it signed nothing)."""
    from cytosafe.store.audit import record

    store, ids = full
    before = chain_heads(store)
    for action in ("sign-refused", "sign-off"):
        with store.session() as session:
            ada = session.scalar(select(User).where(User.username == "ada"))
            details = {"outcome": "refused", "reason": "wrong password", "meaning": "approved"}
            record(session, action, "analysis", ids["analysis"].id, user=ada, details=details)
    assert chain_heads(store) == before
    assert [e["action"] for e in audit_entries(store)[-2:]] == ["sign-refused", "sign-off"]
    assert verify_audit(store) is None
