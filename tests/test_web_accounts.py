"""Accounts (issue 14, item 4; issue 15, item 2): changing your password in the API and on
the Account page, the forced change of a password someone else chose (the first admin, a
user an admin created or reset), user management for admins with the last-admin guard,
and the group-scoped audit-trail page. Every change is audited and ``verify_audit`` stays
intact; every form checks its CSRF token.

Rules checked (OWASP ASVS 4.0.3): 2.1.5 users can change their password; 2.1.6 a change
needs the current and the new password; 3.3.3 other sessions can be ended after a change.
"""

from __future__ import annotations

import re
import shutil
from html import unescape

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cytosafe.store import Store, User, add_to_group, create_user, verify_audit
from cytosafe.web import Settings, create_app

PASSWORD = "correct horse battery"
NEW = "violet kettle orbit lantern"
USERS = {
    "root": ("admin", None),
    "dora": ("study_director", "lab-a"),
    "ana": ("analyst", "lab-a"),
    "sam": ("study_director", "lab-b"),
    "olga": ("analyst", "lab-b"),
}


def _sign_in(client: TestClient, name: str, password: str = PASSWORD) -> dict[str, str]:
    r = client.post("/api/token", data={"username": name, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]{64})"', html).group(1)


def _flash(html: str) -> list[str]:
    return [unescape(m) for m in re.findall(r'class="flash [a-z]+"[^>]*>([^<]*)<', html)]


class _Browser:
    """A TestClient signed in to the pages as one user, and its session's CSRF token."""

    def __init__(self, app, name: str, password: str = PASSWORD) -> None:
        self.client = TestClient(app)
        r = self.client.post(
            "/sign-in", data={"username": name, "password": password}, follow_redirects=False
        )
        assert r.status_code == 303, r.text
        self.csrf = _csrf(self.client.get("/account").text)

    def get(self, url: str, **kw):
        return self.client.get(url, **kw)

    def post(self, url: str, data: dict | None = None, **kw):
        return self.client.post(url, data={"csrf": self.csrf, **(data or {})}, **kw)


@pytest.fixture(scope="module", autouse=True)
def quick_hashes():
    """argon2id with its smallest cost: these tests sign in a hundred times, and what they
    check (who may do what, what is audited) does not depend on the hash's cost."""
    from argon2 import PasswordHasher

    import cytosafe.store.users as store_users

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            store_users,
            "_hasher",
            lambda: PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
        )
        yield


@pytest.fixture(scope="module")
def template(tmp_path_factory, quick_hashes):
    """A store with two labs' users and a study in each lab, copied for each test (tests
    here change passwords and roles)."""
    path = tmp_path_factory.mktemp("accounts") / "template.sqlite3"
    store = Store(f"sqlite:///{path}")
    for name, (role, group) in USERS.items():
        create_user(
            store, name, role=role, password=PASSWORD, by=None if name == "root" else "root"
        )
        if group:
            add_to_group(store, name, group, by="root")
    with TestClient(create_app(store, settings=Settings(compute_workers=0))) as client:
        for code, analyst, group in (("LAB-A-001", "ana", "lab-a"), ("LAB-B-001", "olga", "lab-b")):
            body = {"code": code, "group": group}
            r = client.post("/api/studies", json=body, headers=_sign_in(client, analyst))
            assert r.status_code == 201, r.text
    store.close()
    return path


@pytest.fixture
def site(template, tmp_path):
    """The template store, the token cache off so that every change holds at once."""
    shutil.copy(template, tmp_path / "store.sqlite3")
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    app = create_app(store, settings=Settings(token_cache_seconds=0, compute_workers=0))
    with TestClient(app) as client:
        yield app, client, store
    store.close()


def _user(store: Store, name: str) -> User:
    with store.reader() as session:
        return session.scalar(select(User).where(User.username == name))


# --- your password, in the API ------------------------------------------------------------


def test_a_user_changes_their_password_with_the_current_one(site):
    _, client, store = site
    auth = _sign_in(client, "ana")
    body = {"current_password": PASSWORD, "new_password": NEW}
    r = client.post("/api/users/me/password", json=body, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["changed"] is True
    assert client.get("/api/users/me", headers=auth).status_code == 200  # this token stays
    bad = client.post("/api/token", data={"username": "ana", "password": PASSWORD})
    assert bad.status_code == 401
    assert _sign_in(client, "ana", NEW)
    me = client.get("/api/users/me", headers=auth).json()
    assert me["password_changed_at"] is not None and me["must_change_password"] is False
    assert verify_audit(store) is None
    entries = client.get("/api/audit?object_type=user", headers=_sign_in(client, "root")).json()
    changed = [e for e in entries["entries"] if e["details"].get("password")]
    assert changed[-1]["actor"] == "ana"
    assert changed[-1]["details"]["password"] == "changed by the user"
    assert NEW not in str(entries) and PASSWORD not in str(entries)


@pytest.mark.parametrize(
    ("current", "new", "field", "says"),
    [
        ("wrong password here", NEW, "current_password", "is not your current password"),
        (PASSWORD, PASSWORD, "password", "same as the current password"),
        (PASSWORD, "password1234", "password", "common password"),
        (PASSWORD, "short one", "password", "shorter than 12"),
    ],
)
def test_a_change_is_refused_naming_the_field(site, current, new, field, says):
    _, client, _ = site
    auth = _sign_in(client, "ana")
    body = {"current_password": current, "new_password": new}
    r = client.post("/api/users/me/password", json=body, headers=auth)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    assert says in r.json()["detail"]
    assert new not in r.text or (new == PASSWORD and PASSWORD not in r.text)
    assert _sign_in(client, "ana")  # unchanged


def test_a_change_ends_the_other_web_sessions_and_keeps_api_tokens(site):
    app, client, store = site
    page = _Browser(app, "ana")
    script = _sign_in(client, "ana")
    auth = _sign_in(client, "ana")
    body = {"current_password": PASSWORD, "new_password": NEW}
    r = client.post("/api/users/me/password", json=body, headers=auth)
    assert r.json() == {"changed": True, "sessions_ended": 1, "tokens_revoked": 0}
    assert page.get("/studies", follow_redirects=False).headers["location"].startswith("/sign-in")
    assert client.get("/api/studies", headers=script).status_code == 200
    assert verify_audit(store) is None


def test_revoke_tokens_ends_every_other_token_but_this_one(site):
    _, client, store = site
    script = _sign_in(client, "ana")
    auth = _sign_in(client, "ana")
    body = {"current_password": PASSWORD, "new_password": NEW, "revoke_tokens": True}
    r = client.post("/api/users/me/password", json=body, headers=auth)
    assert r.json()["tokens_revoked"] == 2  # the script's, and the one that made the study
    assert client.get("/api/studies", headers=script).status_code == 401
    assert client.get("/api/studies", headers=auth).status_code == 200
    assert verify_audit(store) is None  # the revoked token's fingerprint is in the entry


def test_wrong_current_passwords_are_limited(site):
    _, client, _ = site
    auth = _sign_in(client, "olga")
    body = {"current_password": "not my password", "new_password": NEW}
    codes = [
        client.post("/api/users/me/password", json=body, headers=auth).status_code for _ in range(6)
    ]
    assert codes == [422] * 5 + [429]


# --- the forced change ---------------------------------------------------------------------


def test_a_user_an_admin_created_must_change_the_password_first(site):
    _, client, store = site
    root = _sign_in(client, "root")
    body = {"username": "quinn", "password": PASSWORD, "role": "analyst", "groups": ["lab-a"]}
    r = client.post("/api/users", json=body, headers=root)
    assert r.status_code == 201 and r.json()["must_change_password"] is True
    auth = _sign_in(client, "quinn")
    assert client.get("/api/users/me", headers=auth).json()["must_change_password"] is True
    for method, url in (("GET", "/api/studies"), ("GET", "/api/audit"), ("POST", "/api/studies")):
        r = client.request(method, url, headers=auth, json={"code": "X-1"})
        assert r.status_code == 403, (url, r.text)
        assert "must change your password" in r.json()["detail"]
        assert "/api/users/me/password" in r.json()["detail"]
    same = {"current_password": PASSWORD, "new_password": PASSWORD}
    r = client.post("/api/users/me/password", json=same, headers=auth)
    assert r.status_code == 422 and "same as the current" in r.json()["detail"]
    body = {"current_password": PASSWORD, "new_password": NEW}
    assert client.post("/api/users/me/password", json=body, headers=auth).status_code == 200
    assert client.get("/api/studies", headers=auth).status_code == 200
    assert _user(store, "quinn").must_change_password is False
    assert verify_audit(store) is None


def test_the_gate_holds_and_lifts_with_the_token_cache_on(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    create_user(store, "root", role="admin", password=PASSWORD, must_change_password=True)
    with TestClient(create_app(store, settings=Settings(compute_workers=0))) as client:
        auth = _sign_in(client, "root")
        assert client.get("/api/users", headers=auth).status_code == 403
        body = {"current_password": PASSWORD, "new_password": NEW}
        assert client.post("/api/users/me/password", json=body, headers=auth).status_code == 200
        assert client.get("/api/users", headers=auth).status_code == 200
    store.close()


def test_the_first_admin_of_a_new_server_must_change_the_password(tmp_path):
    from cytosafe.cli.serve import _first_admin

    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    password = _first_admin(store)
    assert _user(store, "admin").must_change_password is True
    with TestClient(create_app(store, settings=Settings(compute_workers=0))) as client:
        auth = _sign_in(client, "admin", password)
        r = client.get("/api/users", headers=auth)
        assert r.status_code == 403 and "must change your password" in r.json()["detail"]
    store.close()


def test_a_password_an_admin_resets_ends_the_users_tokens_and_must_be_changed(site):
    _, client, store = site
    auth = _sign_in(client, "ana")
    root = _sign_in(client, "root")
    r = client.put("/api/users/ana/password", json={"password": NEW}, headers=root)
    assert r.status_code == 200 and r.json()["must_change_password"] is True
    assert client.get("/api/studies", headers=auth).status_code == 401
    again = _sign_in(client, "ana", NEW)
    assert client.get("/api/studies", headers=again).status_code == 403
    weak = client.put("/api/users/ana/password", json={"password": "12345678"}, headers=root)
    assert weak.status_code == 422 and weak.json()["error"]["field"] == "password"
    assert verify_audit(store) is None


# --- user management (API) -----------------------------------------------------------------


def test_the_user_list_shows_role_groups_status_and_last_change(site):
    _, client, _ = site
    users = {
        u["username"]: u for u in client.get("/api/users", headers=_sign_in(client, "root")).json()
    }
    assert users["dora"]["role"] == "study_director" and users["dora"]["groups"] == ["lab-a"]
    assert users["dora"]["active"] is True and users["dora"]["password_changed_at"]


def test_an_admin_changes_role_status_and_groups_and_each_is_audited(site):
    _, client, store = site
    root = _sign_in(client, "root")
    ana = _sign_in(client, "ana")
    r = client.patch("/api/users/ana", json={"role": "study_director"}, headers=root)
    assert r.status_code == 200 and r.json()["role"] == "study_director"
    assert client.get("/api/audit", headers=ana).status_code == 200  # a director now
    r = client.put("/api/users/ana/groups/lab-b", headers=root)
    assert r.json()["groups"] == ["lab-a", "lab-b"]
    r = client.delete("/api/users/ana/groups/lab-a", headers=root)
    assert r.json()["groups"] == ["lab-b"]
    r = client.patch("/api/users/ana", json={"active": False}, headers=root)
    assert r.json()["active"] is False
    assert client.get("/api/studies", headers=ana).status_code == 401
    failed = client.post("/api/token", data={"username": "ana", "password": PASSWORD})
    assert failed.status_code == 401
    r = client.patch("/api/users/ana", json={"active": True}, headers=root)
    assert r.json()["active"] is True
    assert client.get("/api/studies", headers=ana).status_code == 401  # stays revoked
    assert _sign_in(client, "ana")
    entries = client.get("/api/audit", headers=root).json()["entries"]
    about_ana = [e["details"] for e in entries if e["details"].get("username") == "ana"]
    assert {"role": {"from": "analyst", "to": "study_director"}}.items() <= about_ana[-3].items()
    assert [d["active"] for d in about_ana if "active" in d] == [
        {"from": True, "to": False},
        {"from": False, "to": True},
    ]
    groups = [
        {k: v for k, v in e["details"].items() if k != "covers"}
        for e in entries
        if e["object_type"] == "group"
    ]
    assert {"group": "lab-a", "removed": "ana"} in groups
    assert verify_audit(store) is None


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(site):
    _, client, store = site
    root = _sign_in(client, "root")
    for change in ({"role": "viewer"}, {"active": False}):
        r = client.patch("/api/users/root", json=change, headers=root)
        assert r.status_code == 409, r.text
        assert "last active admin" in r.json()["detail"]
    assert _user(store, "root").role == "admin"
    client.patch("/api/users/dora", json={"role": "admin"}, headers=root)
    r = client.patch("/api/users/root", json={"role": "viewer"}, headers=root)
    assert r.status_code == 200
    dora = _sign_in(client, "dora")
    r = client.patch("/api/users/dora", json={"active": False}, headers=dora)
    assert r.status_code == 409  # dora is now the last one
    assert verify_audit(store) is None


@pytest.mark.parametrize("who", ["dora", "ana"])
def test_only_an_admin_changes_users(site, who):
    _, client, _ = site
    auth = _sign_in(client, who)
    assert client.patch("/api/users/olga", json={"role": "admin"}, headers=auth).status_code == 403
    body = {"password": NEW}
    assert client.put("/api/users/olga/password", json=body, headers=auth).status_code == 403
    assert client.put("/api/users/olga/groups/lab-a", headers=auth).status_code == 403


def test_an_unknown_user_is_404(site):
    _, client, _ = site
    root = _sign_in(client, "root")
    assert (
        client.patch("/api/users/nobody", json={"active": False}, headers=root).status_code == 404
    )
    assert client.get("/api/users/nobody", headers=root).status_code == 404


# --- the pages ------------------------------------------------------------------------------


def test_the_account_page_changes_the_password(site):
    app, _, store = site
    ana = _Browser(app, "ana")
    other = _Browser(app, "ana")
    page = ana.get("/account")
    assert page.status_code == 200 and 'action="/account/password"' in page.text
    form = {"current_password": PASSWORD, "new_password": NEW, "confirm_password": NEW}
    r = ana.post("/account/password", form)
    assert r.status_code == 200
    assert "Password changed. 1 other web session signed out." in _flash(r.text)
    assert ana.get("/studies").status_code == 200
    assert "/sign-in" in other.get("/studies", follow_redirects=False).headers["location"]
    assert verify_audit(store) is None


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"current_password": PASSWORD, "new_password": NEW, "confirm_password": NEW + "x"},
         "The two new passwords differ"),
        ({"current_password": "wrong password here", "new_password": NEW, "confirm_password": NEW},
         "Current password is not your current password"),
        ({"current_password": PASSWORD, "new_password": "tiny zebu", "confirm_password": "tiny zebu"},
         "New password is shorter than 12 characters (9). Expected: 12 to 128 characters"),
        ({"current_password": PASSWORD, "new_password": "Password1234!",
          "confirm_password": "Password1234!"}, "New password is a common password"),
    ],
)  # fmt: skip
def test_the_account_page_says_plainly_what_is_wrong(site, form, says):
    app, _, _ = site
    ana = _Browser(app, "ana")
    r = ana.post("/account/password", form)
    assert r.status_code == 422
    assert any(says in message for message in _flash(r.text)), _flash(r.text)
    assert form["new_password"] not in r.text


def test_a_user_who_must_change_is_sent_to_the_account_page(site):
    app, client, _ = site
    root = _sign_in(client, "root")
    client.put("/api/users/ana/password", json={"password": NEW}, headers=root)
    ana = _Browser(app, "ana", NEW)
    for url in ("/studies", "/studies/LAB-A-001", "/assays", "/audit", "/docs"):
        r = ana.get(url, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/account"), url
    r = ana.client.post("/studies", data={"csrf": ana.csrf, "code": "X-2"}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/account")
    page = ana.get("/account")
    assert 'id="must-change"' in page.text
    assert ana.get("/favicon.svg", follow_redirects=False).status_code == 200
    same = {"current_password": NEW, "new_password": NEW, "confirm_password": NEW}
    assert "same as the current password" in " ".join(
        _flash(ana.post("/account/password", same).text)
    )
    form = {
        "current_password": NEW,
        "new_password": PASSWORD + " 2",
        "confirm_password": PASSWORD + " 2",
    }
    r = ana.post("/account/password", form, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/studies")
    assert ana.get("/studies").status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/account/password",
        "/users",
        "/users/ana/role",
        "/users/ana/active",
        "/users/ana/password",
        "/users/ana/groups",
        "/users/ana/groups/remove",
    ],
)
def test_every_account_form_checks_csrf(site, url):
    app, _, store = site
    root = _Browser(app, "root")
    form = {
        "csrf": "0" * 64,
        "current_password": PASSWORD,
        "new_password": NEW,
        "confirm_password": NEW,
        "username": "zed",
        "password": NEW,
        "role": "viewer",
        "active": "0",
        "group": "lab-a",
    }
    before = verify_audit(store), _user(store, "ana").role
    r = root.client.post(url, data=form)
    assert r.status_code == 403 and "CSRF" in r.text
    r = root.client.post(url, data={k: v for k, v in form.items() if k != "csrf"})
    assert r.status_code == 403 and "CSRF" in r.text
    assert (verify_audit(store), _user(store, "ana").role) == before
    assert _user(store, "zed") is None and _sign_in(TestClient(app), "root")


def test_the_users_page_is_for_admins(site):
    app, _, _ = site
    assert _Browser(app, "dora").get("/users").status_code == 403
    page = _Browser(app, "root").get("/users")
    assert page.status_code == 200
    for name in USERS:
        assert f'href="/users/{name}"' in page.text
    assert 'href="/users"' in page.text and 'href="/audit"' in page.text  # the nav
    assert 'href="/users"' not in _Browser(app, "dora").get("/studies").text


def test_an_admin_manages_a_user_on_the_users_page(site):
    app, client, store = site
    root = _Browser(app, "root")
    form = {
        "username": "zed",
        "display_name": "Zed Z",
        "role": "analyst",
        "groups": "lab-a, lab-b",
        "password": NEW,
    }
    r = root.post("/users", form)
    assert r.status_code == 200, _flash(r.text)
    assert "must change the temporary password" in " ".join(_flash(r.text))
    zed = _user(store, "zed")
    assert (zed.role, zed.must_change_password) == ("analyst", True)
    assert root.post("/users/zed/role", {"role": "viewer"}).status_code == 200
    assert root.post("/users/zed/groups/remove", {"group": "lab-b"}).status_code == 200
    assert root.post("/users/zed/groups", {"group": "lab-c"}).status_code == 200
    assert root.post("/users/zed/active", {"active": "0"}).status_code == 200
    r = root.post("/users/zed/password", {"password": "short"})
    assert r.status_code == 422 and "shorter than 12" in " ".join(_flash(r.text))
    me = client.get("/api/users/zed", headers=_sign_in(client, "root")).json()
    assert (me["role"], me["groups"], me["active"]) == ("viewer", ["lab-a", "lab-c"], False)
    assert verify_audit(store) is None
    r = root.post("/users/root/active", {"active": "0"})
    assert r.status_code == 409 and "last active admin" in " ".join(_flash(r.text))
    r = root.post("/users", {**form, "password": NEW})
    assert r.status_code == 409 and "already exists" in " ".join(_flash(r.text))


# --- the audit page -------------------------------------------------------------------------


def _rows(html: str) -> list[str]:
    table = html.split('<table class="data" id="audit">', 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    return [
        unescape(re.sub(r"<[^>]+>", " ", row)) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_the_audit_page_is_scoped_to_the_directors_groups(site):
    app, _, _ = site
    sam = _Browser(app, "sam").get("/audit")
    assert sam.status_code == 200
    assert "LAB-B-001" in sam.text and "LAB-A-001" not in sam.text
    assert "dora" not in sam.text  # a user of another group
    dora = _Browser(app, "dora")
    assert "LAB-A-001" in dora.get("/audit").text and "LAB-B-001" not in dora.get("/audit").text
    r = dora.get("/audit?study=LAB-B-001")
    assert r.status_code == 422 and "unknown study 'LAB-B-001'" in " ".join(_flash(r.text))
    assert _Browser(app, "ana").get("/audit").status_code == 403
    root = _Browser(app, "root").get("/audit").text
    assert "LAB-A-001" in root and "LAB-B-001" in root


def test_the_audit_page_filters_newest_first(site):
    app, _, _ = site
    root = _Browser(app, "root")
    rows = _rows(root.get("/audit?study=LAB-A-001").text)
    assert rows and all("LAB-A-001" in row for row in rows)
    rows = _rows(root.get("/audit?actor=olga&action=create").text)
    assert rows and all(" olga " in row and " create " in row for row in rows)
    seqs = [int(row.split()[0]) for row in _rows(root.get("/audit").text)]
    assert seqs == sorted(seqs, reverse=True)
    assert "No entries match" in root.get("/audit?until=2000-01-01").text
    r = root.get("/audit?since=yesterday")
    assert r.status_code == 422 and "YYYY-MM-DD" in " ".join(_flash(r.text))
    summary = _rows(root.get("/audit?action=edit").text)[0]
    assert "fingerprints of" in summary  # the covers are counted, not dumped


def test_the_audit_page_pages(site, monkeypatch):
    import cytosafe.web.pages_accounts as accounts_pages

    app, _, _ = site
    monkeypatch.setattr(accounts_pages, "PAGE_SIZE", 3)
    root = _Browser(app, "root")
    first = root.get("/audit")
    total = int(re.search(r"(\d+) entries", first.text).group(1))
    assert len(_rows(first.text)) == 3 and "page 1 of" in first.text
    last_page = -(-total // 3)
    last = root.get(f"/audit?page={last_page}")
    assert [row.split()[0] for row in _rows(last.text)][-1] == "1"
    assert 'href="/audit?page=2"' in first.text


def test_only_an_admin_is_shown_the_chain_check(site):
    app, _, _ = site
    root = _Browser(app, "root")
    assert "Verify chain" in root.get("/audit").text
    verified = root.get("/audit?verify=1").text
    assert 'class="badge pass">intact' in verified
    dora = _Browser(app, "dora")
    assert "Verify chain" not in dora.get("/audit").text
    assert "intact" not in dora.get("/audit?verify=1").text


def test_an_entrys_details_read_in_one_line():
    from cytosafe.web.services.audit_trail import summarise

    details = {
        "covers": {"user:3": "ab" * 32, "api_token:9": "cd" * 32},
        "expires_at": "2026-12-04T03:29:01.547686+00:00",
        "role": {"from": "analyst", "to": "study_director"},
        "sha256": "ef" * 32,
        "inputs": [f"plate_{n}.csv" for n in range(9)],
        "revoked": True,
    }
    assert summarise(details) == (
        "expires at: 2026-12-04 03:29 UTC; role: analyst → study_director; "
        "sha256: efefefefefef…; inputs: 9 items (plate_0.csv, plate_1.csv, plate_2.csv, …); "
        "revoked: yes; fingerprints of 2 objects"
    )


def test_the_api_filters_the_audit_trail_as_the_page_does(site):
    _, client, _ = site
    root = _sign_in(client, "root")
    entries = client.get("/api/audit?study=LAB-B-001", headers=root).json()["entries"]
    assert [(e["action"], e["object_type"], e["details"]["code"]) for e in entries] == [
        ("create", "study", "LAB-B-001")
    ]
    made = client.get("/api/audit?actor=root&action=create&object_type=user", headers=root)
    assert {e["details"]["username"] for e in made.json()["entries"]} == set(USERS)
    sam = _sign_in(client, "sam")
    hidden = client.get("/api/audit?study=LAB-A-001", headers=sam)
    assert hidden.status_code == 422 and "unknown study" in hidden.json()["detail"]
    bad = client.get("/api/audit?action=frobnicate", headers=root)  # no such action
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "action"
