"""Unique-constraint races answered as conflicts, never crashes (issue 14, defect 7), on
SQLite and PostgreSQL: 20 threads create the same study id or user name at once; one
succeeds, every other gets a :class:`~cytosafe.errors.ConflictError`, and the audit trail
holds one creation.

On PostgreSQL every thread passes the "already exists" check before any commits; the
unique index decides, and the store turns its violation into the conflict.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

import store_backends
from cytosafe.errors import ConflictError
from cytosafe.store import Group, Study, audit_entries, create_study, create_user, verify_audit
from store_backends import seeded

postgres_cluster = store_backends.postgres_cluster
backend = store_backends.backend
store = store_backends.store

CLIENTS = 20


def _race(action) -> Counter:
    """Run ``action(i)`` in ``CLIENTS`` threads released at once; count the outcomes
    (``"ok"``, ``"conflict"`` or the name of any other exception)."""
    barrier = threading.Barrier(CLIENTS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait(60)
        try:
            action(i)
            outcome = "ok"
        except ConflictError:
            outcome = "conflict"
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return Counter(outcomes)


def test_twenty_creations_of_one_study_give_one_study_and_conflicts(store):
    seeded(store)
    outcomes = _race(lambda i: create_study(store, "RACE-001", user="ada", group="lab-r"))
    assert outcomes == {"ok": 1, "conflict": CLIENTS - 1}
    with store.reader() as session:
        assert session.scalar(select(func.count()).where(Study.code == "RACE-001")) == 1
        assert session.scalar(select(func.count()).where(Group.name == "lab-r")) == 1
    created = [
        e for e in audit_entries(store, object_type="study") if e["details"]["code"] == "RACE-001"
    ]
    assert len(created) == 1
    assert verify_audit(store) is None


def test_twenty_creations_of_one_user_give_one_user_and_conflicts(store):
    seeded(store)
    outcomes = _race(lambda i: create_user(store, "racer", role="viewer", by="ada"))
    assert outcomes == {"ok": 1, "conflict": CLIENTS - 1}
    created = [
        e for e in audit_entries(store, object_type="user") if e["details"]["username"] == "racer"
    ]
    assert len(created) == 1
    assert verify_audit(store) is None


def test_studies_created_at_once_in_one_new_group_all_succeed(store):
    # The group is created by whichever comes first; the others find it.
    seeded(store)
    outcomes = _race(lambda i: create_study(store, f"RACE-{i:03d}", user="ada", group="lab-new"))
    assert outcomes == {"ok": CLIENTS}
    with store.reader() as session:
        assert session.scalar(select(func.count()).where(Group.name == "lab-new")) == 1
        groups = set(session.scalars(select(Study.group_id).where(Study.code.like("RACE-%"))))
    assert len(groups) == 1
    assert verify_audit(store) is None


def test_a_sequential_duplicate_is_a_conflict_too(store):
    seeded(store)
    with pytest.raises(ConflictError, match="study 'CRA-EX-001' already exists"):
        create_study(store, store_backends.STUDY, user="ada")
    with pytest.raises(ConflictError, match="user 'bob' already exists"):
        create_user(store, "bob", by="ada")
