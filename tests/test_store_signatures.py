"""Electronic signatures of analyses (issue 14, item 3 and defect 14), on SQLite and
PostgreSQL: the password again at each signature, a meaning from the configured list
(21 CFR 11.50(a)(3): "the meaning (such as review, approval, responsibility, or
authorship) associated with the signature"), a bounded comment, several signatures per
analysis with the final one closing it, no self-approval when asked, append-only rows,
and ``cytosafe audit verify`` vouching for them."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

import store_backends
from cytosafe.errors import InputError
from cytosafe.store import (
    Analysis,
    AuthorizationError,
    SignedOffError,
    audit_entries,
    chain_heads,
    create_study,
    create_user,
    verify_audit,
)
from cytosafe.store.audit import canonical_json
from cytosafe.store.models import Signature
from cytosafe.store.signatures import (
    NO_SELF_APPROVAL_ENV,
    SignatureRefused,
    check_meaning,
    comment_limit,
    list_signatures,
    meanings,
    no_self_approval,
    sign,
)
from cytosafe.workflows import store_quantification
from store_backends import STUDY, quantified
from store_templates import store_template

postgres_cluster = store_backends.postgres_cluster
backend = store_backends.backend
store = store_backends.store

PASSWORD = "quiet harbour lantern 42"


@pytest.fixture(scope="module")
def result():
    return quantified()


def _build(store, result):
    create_user(store, "ada", role="study_director", password=PASSWORD, display_name="Ada Lovelace")
    create_user(store, "bob", role="analyst", password=PASSWORD, by="ada")
    create_user(store, "dan", role="study_director", password=PASSWORD, by="ada")
    create_study(store, STUDY, user="ada")
    return store_quantification(store, result, user="bob", report="<html>v1</html>")


@pytest.fixture(scope="module")
def template(result):
    # Three argon2id hashes and a stored quantification: built once per backend.
    return store_template(lambda store: _build(store, result))


@pytest.fixture
def analysed(backend, tmp_path, template):
    """A store with a study director ``ada`` (Ada Lovelace), an analyst ``bob``, a second
    director ``dan``, all with a password, and one completed quantification run by bob:
    each test its own copy of the module's template store (the analysis object is the
    detached one the build returned, which the store functions only read)."""
    with template.copy(backend, tmp_path) as (store, analysis):
        yield store, analysis


def _status(store, analysis) -> str:
    with store.reader() as session:
        return session.get(Analysis, analysis.id).status


# --- the configured meanings -----------------------------------------------------------


def test_the_meanings_are_the_configured_authored_reviewed_approved_and_only_approval_is_final():
    assert list(meanings()) == ["authored", "reviewed", "approved"]
    assert [m.final for m in meanings().values()] == [False, False, True]
    assert meanings()["approved"].roles == ("study_director", "admin")
    assert check_meaning(" Approved ").key == "approved"  # the label, any case


def test_a_meaning_not_configured_is_an_input_error_naming_the_field_and_the_list():
    with pytest.raises(InputError, match="not a meaning") as err:
        check_meaning("x" * 20_000_000)  # the 20 MB "meaning" of defect 14
    assert err.value.field == "meaning"
    assert err.value.expected == "authored | reviewed | approved"
    assert len(str(err.value)) < 300
    with pytest.raises(InputError, match="no meaning chosen"):
        check_meaning("")


def test_self_approval_is_allowed_by_default_and_forbidden_by_the_environment(monkeypatch):
    monkeypatch.delenv(NO_SELF_APPROVAL_ENV, raising=False)
    assert no_self_approval() is False
    monkeypatch.setenv(NO_SELF_APPROVAL_ENV, "1")
    assert no_self_approval() is True


# --- signing ---------------------------------------------------------------------------


def test_authored_reviewed_approved_each_a_row_and_only_approval_signs_off(analysed):
    store, analysis = analysed
    first = sign(store, analysis, user="bob", password=PASSWORD, meaning="authored")
    assert _status(store, analysis) == "completed"
    sign(store, analysis, user="dan", password=PASSWORD, meaning="reviewed", comment="QC read")
    assert _status(store, analysis) == "completed"
    last = sign(store, analysis, user="ada", password=PASSWORD, meaning="approved")
    assert _status(store, analysis) == "signed_off"
    with store.reader() as session:
        row = session.get(Analysis, analysis.id)
        assert row.signed_off_by_id == last.user_id
    shown = list_signatures(store, analysis)
    assert [(s["username"], s["meaning"]) for s in shown] == [
        ("bob", "authored"),
        ("dan", "reviewed"),
        ("ada", "approved"),
    ]
    assert shown[1]["comment"] == "QC read"
    assert shown[2]["name"] == "Ada Lovelace" and shown[0]["name"] == "bob"
    assert shown[0]["signed_at"].tzinfo is not None
    assert first.signed_sha256 == shown[0]["signed_sha256"]
    assert verify_audit(store) is None


def test_the_signed_sha256_is_the_hash_of_the_tables_and_report_the_audit_entry_holds(analysed):
    store, analysis = analysed
    signature = sign(store, analysis, user="ada", password=PASSWORD, meaning="approved")
    entry = audit_entries(store, object_type="analysis", object_id=analysis.id)[-1]
    assert entry["action"] == "sign-off"
    details = entry["details"]
    assert details["signature"] == signature.id and details["meaning"] == "approved"
    recomputed = hashlib.sha256(canonical_json(details["signed"]).encode()).hexdigest()
    assert recomputed == signature.signed_sha256 == details["signed_sha256"]
    assert set(details["signed"]["tables"]) == {t.name for t in analysis.tables}
    report = hashlib.sha256(b"<html>v1</html>").hexdigest()
    assert [r["sha256"] for r in details["signed"]["reports"]] == [report]
    assert f"signature:{signature.id}" in details["covers"]
    # A sign-off writes the chain's head down (a truncated tail is found against it).
    assert chain_heads(store)[-1]["reason"] == f"sign-off of analysis {analysis.id}"


def test_a_wrong_password_is_refused_audited_and_signs_nothing(analysed):
    store, analysis = analysed
    before = len(audit_entries(store))
    heads = chain_heads(store)
    with pytest.raises(SignatureRefused, match="password of 'ada' is wrong"):
        sign(store, analysis, user="ada", password="not my password at all", meaning="approved")
    assert _status(store, analysis) == "completed"
    assert list_signatures(store, analysis) == []
    entries = audit_entries(store)
    assert len(entries) == before + 1
    refused = entries[-1]
    assert (refused["actor"], refused["object_id"]) == ("ada", str(analysis.id))
    assert refused["action"] == "sign-refused"
    assert refused["details"]["outcome"] == "refused"
    assert refused["details"]["reason"] == "wrong password"
    assert "not my password" not in json.dumps(refused)
    # A refusal signed nothing: no chain head "sign-off of analysis N" is written for it.
    assert chain_heads(store) == heads
    assert verify_audit(store) is None


def test_a_user_without_a_password_cannot_sign(analysed):
    store, analysis = analysed
    create_user(store, "local", role="study_director", by="ada")  # as the CLI creates them
    with pytest.raises(SignatureRefused):
        sign(store, analysis, user="local", password="", meaning="approved")


def test_a_comment_is_bounded_and_the_error_names_the_field(analysed):
    store, analysis = analysed
    limit = comment_limit()
    assert limit == 500
    with pytest.raises(InputError, match="501 characters") as err:
        sign(store, analysis, user="ada", password=PASSWORD, meaning="approved",
             comment="x" * (limit + 1))  # fmt: skip
    assert err.value.field == "comment"
    assert list_signatures(store, analysis) == []
    sign(store, analysis, user="ada", password=PASSWORD, meaning="reviewed", comment="y" * limit)
    assert list_signatures(store, analysis)[0]["comment"] == "y" * limit


def test_an_unknown_meaning_is_refused_before_the_password_is_checked(analysed):
    store, analysis = analysed
    before = len(audit_entries(store))
    with pytest.raises(InputError) as err:
        sign(store, analysis, user="ada", password="wrong", meaning="approved, and more")
    assert err.value.field == "meaning"
    assert len(audit_entries(store)) == before


def test_an_analyst_may_author_but_not_approve(analysed):
    store, analysis = analysed
    with pytest.raises(AuthorizationError, match="sign analyses as 'approved'"):
        sign(store, analysis, user="bob", password=PASSWORD, meaning="approved")
    assert _status(store, analysis) == "completed"


def test_one_signer_signs_one_meaning_once(analysed):
    store, analysis = analysed
    sign(store, analysis, user="dan", password=PASSWORD, meaning="reviewed")
    with pytest.raises(InputError, match="already signed") as err:
        sign(store, analysis, user="dan", password=PASSWORD, meaning="reviewed")
    assert err.value.field == "meaning"


def test_an_approved_analysis_takes_no_further_signature(analysed):
    store, analysis = analysed
    sign(store, analysis, user="ada", password=PASSWORD, meaning="approved")
    with pytest.raises(SignedOffError):
        sign(store, analysis, user="dan", password=PASSWORD, meaning="reviewed")


def test_no_self_approval_refuses_the_creator_and_the_author(analysed, result, monkeypatch):
    store, analysis = analysed
    # ada created this one, and dan authored it: neither may approve it when forbidden.
    mine = store_quantification(store, result, user="ada", previous=analysis)
    sign(store, mine, user="dan", password=PASSWORD, meaning="authored")
    for who in ("ada", "dan"):
        with pytest.raises(AuthorizationError, match="self-approval"):
            sign(store, mine, user=who, password=PASSWORD, meaning="approved",
                 forbid_self_approval=True)  # fmt: skip
    monkeypatch.setenv(NO_SELF_APPROVAL_ENV, "1")
    with pytest.raises(AuthorizationError, match="self-approval"):
        sign(store, mine, user="ada", password=PASSWORD, meaning="approved")
    assert _status(store, mine) == "completed"
    # bob's analysis: ada neither created nor authored it.
    sign(store, analysis, user="ada", password=PASSWORD, meaning="approved")
    assert _status(store, analysis) == "signed_off"
    # Off (the default), the creator may approve their own.
    monkeypatch.delenv(NO_SELF_APPROVAL_ENV)
    sign(store, mine, user="ada", password=PASSWORD, meaning="approved")
    assert _status(store, mine) == "signed_off"


def test_a_queued_analysis_cannot_be_signed(analysed):
    store, _ = analysed
    from cytosafe.store import import_analysis

    queued = import_analysis(store, "quantification", {}, study=STUDY, user="bob",
                             settings={}, status="queued")  # fmt: skip
    with pytest.raises(InputError, match="is queued") as err:
        sign(store, queued, user="bob", password=PASSWORD, meaning="authored")
    assert err.value.field == "status"


# --- append-only and tamper-evident ----------------------------------------------------


def test_the_database_refuses_to_change_or_delete_a_signature(analysed):
    store, analysis = analysed
    sign(store, analysis, user="bob", password=PASSWORD, meaning="authored")
    for sql in ("UPDATE signatures SET meaning = 'approved'", "DELETE FROM signatures"):
        with pytest.raises(DBAPIError, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(text(sql))
    assert [s["meaning"] for s in list_signatures(store, analysis)] == ["authored"]


def _tamper(store, sql: str) -> None:
    """Run ``sql`` on ``signatures`` with its guard triggers out of the way, as an
    attacker with database access would."""
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql("ALTER TABLE signatures DISABLE TRIGGER signatures_append_only")
            conn.exec_driver_sql(sql)
            conn.exec_driver_sql("ALTER TABLE signatures ENABLE TRIGGER signatures_append_only")
        else:
            conn.exec_driver_sql("DROP TRIGGER signatures_no_update")
            conn.exec_driver_sql("DROP TRIGGER signatures_no_delete")
            conn.exec_driver_sql(sql)


def test_audit_verify_finds_a_signature_whose_meaning_was_changed(analysed):
    store, analysis = analysed
    signature = sign(store, analysis, user="bob", password=PASSWORD, meaning="authored")
    _tamper(store, f"UPDATE signatures SET meaning = 'approved' WHERE id = {signature.id}")
    found = verify_audit(store)
    assert found is not None and found.kind == "data"
    assert found.object == f"signature:{signature.id}"
    assert f"signature {signature.id} (approved) of analysis {analysis.id} by 'bob'" in str(found)


def test_audit_verify_finds_a_deleted_signature(analysed):
    store, analysis = analysed
    signature = sign(store, analysis, user="bob", password=PASSWORD, meaning="authored")
    _tamper(store, f"DELETE FROM signatures WHERE id = {signature.id}")
    found = verify_audit(store)
    assert found is not None and found.object == f"signature:{signature.id}"
    assert "was deleted" in str(found)


def test_audit_verify_finds_a_signature_written_behind_the_stores_back(analysed):
    store, analysis = analysed
    with store.engine.begin() as conn:
        ada = conn.execute(text("SELECT id FROM users WHERE username = 'ada'")).scalar()
        conn.execute(
            text(
                "INSERT INTO signatures (analysis_id, user_id, meaning, signed_at) "
                "VALUES (:a, :u, 'approved', CURRENT_TIMESTAMP)"
            ),
            {"a": analysis.id, "u": ada},
        )
    found = verify_audit(store)
    assert found is not None and found.kind == "uncovered"
    with store.reader() as session:
        forged = session.scalar(select(Signature.id))
    assert found.object == f"signature:{forged}"


# --- cytosafe store sign ---------------------------------------------------------------


def test_cytosafe_store_sign_asks_the_password_and_refuses_a_wrong_one(
    tmp_path, result, monkeypatch
):
    import getpass

    from typer.testing import CliRunner

    from cytosafe.cli import app
    from cytosafe.store import Store

    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    with Store(url) as s:
        create_user(s, "ada", role="study_director", password=PASSWORD)
        create_user(s, "bob", role="analyst", password=PASSWORD, by="ada")
        create_study(s, STUDY, user="ada")
        analysis = store_quantification(s, result, user="bob").id
    base = ["store", "sign", str(analysis), "--database", url]
    runner = CliRunner()
    wrong = runner.invoke(app, [*base, "--meaning", "approved", "--user", "ada",
                                "--password-stdin"], input="not the password\n")  # fmt: skip
    assert wrong.exit_code == 2
    assert "password of 'ada' is wrong" in wrong.output
    unknown = runner.invoke(app, [*base, "--meaning", "owned", "--user", "ada"])
    assert unknown.exit_code == 2 and "meaning" in unknown.output
    asked = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt: asked.append(prompt) or PASSWORD)
    authored = runner.invoke(app, [*base, "--meaning", "authored", "--user", "bob"])
    assert authored.exit_code == 0, authored.output
    assert asked == ["Password of bob (to sign): "]
    approved = runner.invoke(app, [*base, "--meaning", "approved", "--comment", "ok",
                                   "--user", "ada", "--password-stdin"],
                             input=PASSWORD + "\n")  # fmt: skip
    assert approved.exit_code == 0, approved.output
    assert "signed by ada as 'approved'" in approved.output
    assert "status signed_off" in approved.output
    with Store(url) as s:
        assert [x["meaning"] for x in list_signatures(s, analysis)] == ["authored", "approved"]
        assert verify_audit(s) is None
