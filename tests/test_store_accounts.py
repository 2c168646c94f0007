"""Account changes in the store, on SQLite and PostgreSQL: each is one audit entry that
covers the user (and every token it revoked), so ``verify_audit`` stays intact and a
change made behind the store's back is found; the last active admin cannot be demoted or
deactivated, also when two admins demote each other at the same moment."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import select, update

import store_backends
from cytosafe.errors import ConflictError, InputError
from cytosafe.store import User, audit_entries, create_user, issue_token, token_user, verify_audit
from cytosafe.store.users import (
    WEB_SESSION,
    change_password,
    remove_from_group,
    set_password,
    update_user,
)

postgres_cluster = store_backends.postgres_cluster
backend = store_backends.backend
store = store_backends.store

PASSWORD = "correct horse battery"
NEW = "violet kettle orbit lantern"


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch):
    """argon2id at its smallest cost: what is checked here does not depend on it."""
    from argon2 import PasswordHasher

    import cytosafe.store.users as store_users

    monkeypatch.setattr(
        store_users, "_hasher", lambda: PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


def test_a_change_of_password_is_audited_and_covers_the_sessions_it_ends(store):
    create_user(store, "ada", role="admin", password=PASSWORD, must_change_password=True)
    web = issue_token(store, "ada", name=WEB_SESSION)
    script = issue_token(store, "ada", name="password sign-in")
    mine = issue_token(store, "ada", name=WEB_SESSION)
    with pytest.raises(InputError, match="same as the current"):
        change_password(store, "ada", PASSWORD, PASSWORD)
    outcome = change_password(store, "ada", PASSWORD, NEW, keep_token=mine)
    assert outcome == {"sessions_ended": 1, "tokens_revoked": 0}
    assert token_user(store, web) is None
    assert token_user(store, script) is not None and token_user(store, mine) is not None
    entry = audit_entries(store, object_type="user")[-1]
    assert entry["details"]["was_required"] is True
    assert len(entry["details"]["covers"]) == 2  # the user and the ended session
    assert verify_audit(store) is None


def test_a_password_changed_behind_the_stores_back_is_found(store):
    create_user(store, "ada", role="admin", password=PASSWORD)
    set_password(store, "ada", NEW, by="ada")
    with store.session() as session:
        session.execute(update(User).where(User.username == "ada").values(password_hash="x"))
    problem = verify_audit(store)
    assert problem is not None and "user 'ada'" in str(problem)


def test_an_admin_reset_ends_every_token_and_flags_the_user(store):
    create_user(store, "root", role="admin", password=PASSWORD)
    create_user(store, "bob", role="analyst", password=PASSWORD, by="root")
    token = issue_token(store, "bob")
    set_password(store, "bob", NEW, by="root")
    assert token_user(store, token) is None
    with store.reader() as session:
        bob = session.scalar(select(User).where(User.username == "bob"))
        assert bob.must_change_password and bob.password_changed_at is not None
    assert verify_audit(store) is None


def test_the_last_active_admin_stays(store):
    create_user(store, "root", role="admin")
    for change in ({"role": "viewer"}, {"active": False}):
        with pytest.raises(ConflictError, match="last active admin"):
            update_user(store, "root", by="root", **change)
    create_user(store, "eve", role="admin", by="root")
    update_user(store, "eve", by="root", active=False)
    with pytest.raises(ConflictError):  # an inactive admin does not count
        update_user(store, "root", by="root", role="analyst")
    update_user(store, "eve", by="root", active=True)
    update_user(store, "root", by="root", role="analyst")
    assert not remove_from_group(store, "eve", "nowhere", by="eve")
    assert verify_audit(store) is None


def _demote_each_other(store) -> list[str]:
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(actor: str, target: str) -> None:
        barrier.wait(60)
        try:
            update_user(store, target, by=actor, role="viewer")
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("conflict")
        except Exception as exc:  # a deadlock or a crash: the test says which
            outcomes.append(f"{type(exc).__name__}: {exc}")

    threads = [
        threading.Thread(target=demote, args=("ann", "ben")),
        threading.Thread(target=demote, args=("ben", "ann")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return outcomes


def test_two_admins_demoting_each_other_at_once_leave_one_admin(store):
    create_user(store, "ann", role="admin")
    create_user(store, "ben", role="admin", by="ann")
    for _ in range(8):  # without the row locks, PostgreSQL lost both about one time in three
        outcomes = _demote_each_other(store)
        assert Counter(outcomes) == {"ok": 1, "conflict": 1}, outcomes
        with store.reader() as session:
            admins = session.scalars(select(User.username).where(User.role == "admin")).all()
        assert len(admins) == 1
        update_user(store, "ben" if admins == ["ann"] else "ann", by=admins[0], role="admin")
    assert verify_audit(store) is None
