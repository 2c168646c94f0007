"""The API's side of issue 14: duplicates raced by 20 clients are 409, never 500
(defect 7, SQLite and PostgreSQL), and the audit trail is group-scoped (defect 5): a study
director of one group learns nothing of another group's studies, files or users from
``/api/audit`` or ``/api/audit/verify``; the admin sees all.
"""

from __future__ import annotations

import threading
from collections import Counter

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import store_backends
from cytosafe.store import Store, add_to_group, create_user, import_measurements
from cytosafe.web import create_app
from store_backends import ELISA

postgres_cluster = store_backends.postgres_cluster
backend = store_backends.backend

PASSWORD = "correct horse battery"
USERS = {
    "root": ("admin", None),
    "dora": ("study_director", "lab-a"),
    "ana": ("analyst", "lab-a"),
    "sam": ("study_director", "lab-b"),
    "olga": ("analyst", "lab-b"),
}
CLIENTS = 20


def _users(store: Store) -> None:
    for name, (role, group) in USERS.items():
        create_user(
            store, name, role=role, password=PASSWORD, by=None if name == "root" else "root"
        )
        if group:
            add_to_group(store, name, group, by="root")


def _sign_in(client: TestClient, name: str) -> dict[str, str]:
    r = client.post("/api/token", data={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _race(post) -> Counter:
    barrier = threading.Barrier(CLIENTS)
    codes: list[int] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait(60)
        status = post().status_code
        with lock:
            codes.append(status)

    threads = [threading.Thread(target=run) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    return Counter(codes)


def test_twenty_clients_creating_one_study_or_user_get_one_201_and_409s(backend, tmp_path):
    store = store_backends.new_store(backend, tmp_path)
    _users(store)
    with TestClient(create_app(store)) as client:
        ana, root = _sign_in(client, "ana"), _sign_in(client, "root")
        study = {"code": "RACE-001", "group": "lab-a"}
        codes = _race(lambda: client.post("/api/studies", json=study, headers=ana))
        assert codes == {201: 1, 409: CLIENTS - 1}
        user = {"username": "racer", "password": PASSWORD, "role": "viewer"}
        codes = _race(lambda: client.post("/api/users", json=user, headers=root))
        assert codes == {201: 1, 409: CLIENTS - 1}
        again = client.post("/api/users", json=user, headers=root)
        assert again.status_code == 409
        assert again.json()["error"]["field"] == "username"
        verified = client.get("/api/audit/verify", headers=root).json()
        assert verified["intact"] is True, verified
    store.close()


# --- group scope --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def groups(tmp_path_factory):
    """Study A-001 (lab-a, one plate from file a-plate.csv) and B-001 (lab-b)."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('scope') / 'store.sqlite3'}")
    _users(store)
    with TestClient(create_app(store)) as client:
        auth = {name: _sign_in(client, name) for name in USERS}
        for code, who, group in (("A-001", "ana", "lab-a"), ("B-001", "olga", "lab-b")):
            r = client.post("/api/studies", json={"code": code, "group": group}, headers=auth[who])
            assert r.status_code == 201, r.text
        table = pd.read_csv(ELISA).assign(study_id="A-001", source_file="a-plate.csv")
        import_measurements(store, table, user="ana")
        yield client, store, auth
    store.close()


def _entries(client: TestClient, auth: dict, **params) -> list[dict]:
    r = client.get("/api/audit", params={"limit": 1000, **params}, headers=auth)
    assert r.status_code == 200, r.text
    return r.json()["entries"]


def test_a_director_does_not_see_another_groups_studies_files_or_users(groups):
    client, _, auth = groups
    seen = _entries(client, auth["sam"])
    text = str(seen)
    for secret in ("A-001", "a-plate.csv", "ELISA-01", "'ana'", "'dora'", "lab-a"):
        assert secret not in text, secret
    # What sam does see: their own account, their group, their group's study.
    about = {(e["object_type"], e["actor"]) for e in seen}
    assert ("user", "root") in about  # sam's own creation
    assert any(e["details"].get("code") == "B-001" for e in seen)
    assert any(e["details"].get("group") == "lab-b" for e in seen)


def test_a_director_sees_their_groups_studies_and_plates(groups):
    client, _, auth = groups
    seen = _entries(client, auth["dora"])
    assert any(e["details"].get("code") == "A-001" for e in seen)
    assert any(e["object_type"] == "plate" and e["details"]["plate"] == "ELISA-01" for e in seen)
    assert not any(e["details"].get("code") == "B-001" for e in seen)
    assert "olga" not in str(seen) and "lab-b" not in str(seen)


def test_a_director_sees_only_their_own_user_and_token_entries(groups):
    client, _, auth = groups
    users = _entries(client, auth["sam"], object_type="user")
    assert [e["details"]["username"] for e in users] == ["sam"]
    tokens = _entries(client, auth["sam"], object_type="api_token")
    assert tokens and {e["actor"] for e in tokens} == {"sam"}


def test_the_admin_sees_every_entry(groups):
    client, store, auth = groups
    from cytosafe.store import audit_entries

    seen = _entries(client, auth["root"])
    assert len(seen) == len(audit_entries(store))
    assert "A-001" in str(seen) and "B-001" in str(seen)


def test_verify_names_another_groups_object_only_to_the_admin(groups):
    client, store, auth = groups
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE measurements SET signal = signal + 1 WHERE well = 'A01'")
    sam = client.get("/api/audit/verify", headers=auth["sam"]).json()
    assert sam["intact"] is False
    assert "A-001" not in str(sam) and "ELISA-01" not in str(sam)
    assert sam["broken"]["reason"].startswith("an object outside your groups")
    root = client.get("/api/audit/verify", headers=auth["root"]).json()
    assert root["broken"]["reason"].startswith("plate ELISA-01 of study A-001: measurements")
    assert root["broken"]["object"].startswith("plate:")
    dora = client.get("/api/audit/verify", headers=auth["dora"]).json()
    assert dora["broken"] == root["broken"]


def test_the_head_given_to_verify_must_still_be_reached(groups):
    client, _, auth = groups
    head = client.get("/api/audit/head", headers=auth["root"]).json()
    ok = client.get(
        "/api/audit/verify", params={"head": f"{head['seq']}:{head['hash']}"}, headers=auth["root"]
    ).json()
    assert not [p for p in ok["problems"] if p["kind"] == "head"]
    ahead = f"{head['seq'] + 5}:{head['hash']}"
    bad = client.get("/api/audit/verify", params={"head": ahead}, headers=auth["root"]).json()
    assert bad["broken"]["kind"] == "head"
    malformed = client.get("/api/audit/verify", params={"head": "nope"}, headers=auth["root"])
    assert malformed.status_code == 422
