"""Electronic signatures through the API and the pages (issue 14, item 3 and defect 14):
the password again at every signature (and the user name with it through the API, and at
the first signature of a page session), a meaning from the configured list and a bounded
comment (422 naming the field), a wrong password a 401 that is audited and counted by the
sign-in throttle, the manifest on the analysis page, in the API and at the top of the
served report under an unchanged content security policy."""

from __future__ import annotations

import hashlib
import re
from html import unescape

import pytest
from fastapi.testclient import TestClient

from cytosafe.report.signature import MANIFEST_ID
from cytosafe.store import Store, add_to_group, create_study, create_user
from cytosafe.web import Settings, create_app
from cytosafe.web.security import report_policy
from cytosafe.workflows import store_quantification
from store_backends import STUDY, quantified
from store_templates import store_template

PASSWORD = "correct horse battery"
WRONG = "a wrong horse battery"
REPORT = (
    b'<!doctype html><html><head><title>QC</title></head><body class="r">'
    b"<h1>QC report</h1><script>document.documentElement.className='js';</script></body></html>"
)
USERS = {
    "root": ("admin", None),
    "dora": ("study_director", "lab-a"),
    "dirk": ("study_director", "lab-a"),
    "ana": ("analyst", "lab-a"),
    "vic": ("viewer", "lab-a"),
}


@pytest.fixture(scope="module")
def result():
    return quantified()


def _build(store: Store, result) -> tuple[int, int]:
    for name, (role, group) in USERS.items():
        by = None if name == "root" else "root"
        create_user(store, name, role=role, password=PASSWORD, by=by, display_name=name.title())
        if group:
            add_to_group(store, name, group, by="root")
    create_study(store, STUDY, user="ana", group="lab-a")
    first = store_quantification(store, result, study=STUDY, user="ana", report=REPORT)
    second = store_quantification(store, result, study=STUDY, user="ana", report=REPORT)
    return first.id, second.id


@pytest.fixture(scope="module")
def template(result):
    # Users (argon2id hashes) and two stored quantifications cost seconds: built once.
    return store_template(lambda store: _build(store, result))


@pytest.fixture
def site(tmp_path, template):
    """An app (3 attempts per account allowed) on a store with users of lab-a and two
    completed quantifications of study CRA-EX-001 run by ana, each with a report: each
    test its own copy of the module's template store, signed by nobody."""
    with template.copy("sqlite", tmp_path) as (store, (first, second)):
        # No grading here: no worker process to spawn per test (compute_workers=0).
        settings = Settings(sign_in_account_attempts=3, compute_workers=0)
        app = create_app(store, settings=settings)
        with TestClient(app) as client:
            yield client, store, first, second


def _token(client: TestClient, name: str) -> dict[str, str]:
    r = client.post("/api/token", data={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _sign(client, analysis, headers, **body):
    return client.post(f"/api/analyses/{analysis}/sign-off", json=body, headers=headers)


def _audit(client, analysis, headers) -> list[dict]:
    r = client.get("/api/audit", params={"object_type": "analysis", "object_id": analysis},
                   headers=headers)  # fmt: skip
    return r.json()["entries"]


# --- API -------------------------------------------------------------------------------


def test_authored_reviewed_approved_through_the_api_and_the_manifest(site):
    client, _, analysis, _ = site
    ana, dirk, dora = (_token(client, n) for n in ("ana", "dirk", "dora"))
    r = _sign(client, analysis, ana, meaning="authored", username="ana", password=PASSWORD)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"
    r = _sign(client, analysis, dirk, meaning="reviewed", comment="Curves and QC read.",
              username="dirk", password=PASSWORD)  # fmt: skip
    assert r.json()["status"] == "completed"
    r = _sign(client, analysis, dora, meaning="approved", username="dora", password=PASSWORD)
    assert (r.json()["status"], r.json()["signed_off_by"]) == ("signed_off", "dora")
    manifest = client.get(f"/api/analyses/{analysis}/signatures", headers=ana).json()
    assert [(s["name"], s["username"], s["meaning"]) for s in manifest] == [
        ("Ana", "ana", "authored"),
        ("Dirk", "dirk", "reviewed"),
        ("Dora", "dora", "approved"),
    ]
    assert manifest[1]["comment"] == "Curves and QC read."
    assert all(s["signed_at"].endswith(("Z", "+00:00")) for s in manifest)
    assert len({s["signed_sha256"] for s in manifest}) == 1  # the same tables and report
    assert client.get("/api/audit/verify", headers=_token(client, "root")).json()["intact"]


def test_the_api_needs_the_user_name_with_the_password(site):
    client, _, analysis, _ = site
    r = _sign(client, analysis, _token(client, "dora"), meaning="approved", password=PASSWORD)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "username"
    r = client.post(f"/api/analyses/{analysis}/sign-off", headers=_token(client, "dora"))
    assert r.status_code == 422  # no meaning, no password: nothing is pre-filled


def test_a_wrong_password_is_401_audited_and_signs_nothing(site):
    client, _, analysis, _ = site
    dora = _token(client, "dora")
    r = _sign(client, analysis, dora, meaning="approved", username="dora", password=WRONG)
    assert r.status_code == 401
    assert "password of 'dora' is wrong" in r.json()["detail"]
    assert client.get(f"/api/analyses/{analysis}", headers=dora).json()["status"] == "completed"
    assert client.get(f"/api/analyses/{analysis}/signatures", headers=dora).json() == []
    refused = _audit(client, analysis, dora)[-1]
    assert refused["actor"] == "dora" and refused["details"]["outcome"] == "refused"
    assert refused["details"]["reason"] == "wrong password"


def test_another_users_name_is_refused_and_audited(site):
    client, _, analysis, _ = site
    dora = _token(client, "dora")
    r = _sign(client, analysis, dora, meaning="approved", username="dirk", password=PASSWORD)
    assert r.status_code == 401 and "user name" in r.json()["detail"]
    assert _audit(client, analysis, dora)[-1]["details"]["reason"] == "wrong user name"


def test_wrong_passwords_count_toward_the_sign_in_lockout(site):
    client, _, analysis, _ = site
    dora = _token(client, "dora")
    for _ in range(3):
        r = _sign(client, analysis, dora, meaning="approved", username="dora", password=WRONG)
        assert r.status_code == 401
    r = _sign(client, analysis, dora, meaning="approved", username="dora", password=PASSWORD)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # The same count locks signing in as dora.
    r = client.post("/api/token", data={"username": "dora", "password": PASSWORD})
    assert r.status_code == 429
    assert client.get(f"/api/analyses/{analysis}", headers=dora).json()["status"] == "completed"


def test_a_signature_clears_the_accounts_count_as_a_sign_in_does(site):
    client, _, first, second = site
    dora = _token(client, "dora")
    for analysis in (first, second):
        for _ in range(2):
            r = _sign(client, analysis, dora, meaning="approved", username="dora", password=WRONG)
            assert r.status_code == 401
        r = _sign(client, analysis, dora, meaning="approved", username="dora", password=PASSWORD)
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"meaning": "approved " * 20}, "meaning"),
        ({"meaning": "owned"}, "meaning"),
        ({"meaning": "approved", "comment": "c" * 501}, "comment"),
    ],
)
def test_a_meaning_off_the_list_or_a_long_comment_is_422_naming_the_field(site, body, field):
    client, _, analysis, _ = site
    r = _sign(client, analysis, _token(client, "dora"), username="dora", password=PASSWORD, **body)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == field


def test_a_20_mb_meaning_is_refused_by_the_schema(site):
    client, _, analysis, _ = site
    body = {"meaning": "x" * (20 << 20), "username": "dora", "password": PASSWORD}
    r = _sign(client, analysis, _token(client, "dora"), **body)
    assert r.status_code in (413, 422)
    assert client.get(f"/api/analyses/{analysis}/signatures",
                      headers=_token(client, "dora")).json() == []  # fmt: skip


def test_a_viewer_cannot_sign_and_an_analyst_cannot_approve(site):
    client, _, analysis, _ = site
    vic, ana = _token(client, "vic"), _token(client, "ana")
    assert _sign(client, analysis, vic, meaning="reviewed", username="vic",
                 password=PASSWORD).status_code == 403  # fmt: skip
    r = _sign(client, analysis, ana, meaning="approved", username="ana", password=PASSWORD)
    assert r.status_code == 403 and "approved" in r.json()["detail"]


def test_no_self_approval_when_the_deployment_forbids_it(site, monkeypatch):
    client, _, analysis, _ = site
    monkeypatch.setenv("CYTOSAFE_NO_SELF_APPROVAL", "1")
    dora = _token(client, "dora")
    r = _sign(client, analysis, dora, meaning="authored", username="dora", password=PASSWORD)
    assert r.status_code == 200
    r = _sign(client, analysis, dora, meaning="approved", username="dora", password=PASSWORD)
    assert r.status_code == 403 and "self-approval" in r.json()["detail"]
    dirk = _token(client, "dirk")
    r = _sign(client, analysis, dirk, meaning="approved", username="dirk", password=PASSWORD)
    assert r.status_code == 200


def test_the_served_report_carries_the_manifest_under_the_stored_reports_policy(site):
    client, _, analysis, _ = site
    dora = _token(client, "dora")
    before = client.get(f"/api/analyses/{analysis}/report", headers=dora)
    assert before.content == REPORT  # unsigned: as stored
    _sign(client, analysis, dora, meaning="approved", username="dora", password=PASSWORD,
          comment="Approved <for> the IND")  # fmt: skip
    r = client.get(f"/api/analyses/{analysis}/report", headers=dora)
    html = r.text
    assert html.index(f'id="{MANIFEST_ID}"') > html.index('<body class="r">')
    assert html.index(f'id="{MANIFEST_ID}"') < html.index("<h1>QC report</h1>")
    assert "Dora" in html and "<code>dora</code>" in html and "Approved &lt;for&gt; the IND" in html
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", html)
    assert "signed off, final" in html
    policy = report_policy(REPORT)
    assert r.headers["content-security-policy"] == policy
    # The stored report is unchanged: its SHA-256 is the one the audit trail recorded.
    entries = _audit(client, analysis, dora)
    stored = entries[-1]["details"]["signed"]["reports"][0]["sha256"]
    assert stored == hashlib.sha256(REPORT).hexdigest()


def test_the_pdf_is_printed_with_the_manifest_and_not_served_from_before_signing(site, monkeypatch):
    # A stub printer: the HTML Chromium would print is what is checked (the real print of
    # a report is tested in tests/test_web_downloads.py).
    import cytosafe.report.hazard as hazard

    client, _, analysis, _ = site
    printed: list[bytes] = []

    def printer(source, target, **_):
        printed.append(source.read_bytes())
        target.write_bytes(b"%PDF-1.7 stub " + hashlib.sha256(printed[-1]).hexdigest().encode())
        return target

    monkeypatch.setattr(hazard, "write_hazard_pdf", printer)
    dora = _token(client, "dora")
    before = client.get(f"/api/analyses/{analysis}/report.pdf", headers=dora)
    assert before.status_code == 200, before.text
    assert printed[-1] == REPORT  # unsigned: the stored report, as served
    _sign(client, analysis, dora, meaning="reviewed", username="dora", password=PASSWORD)
    reviewed = client.get(f"/api/analyses/{analysis}/report.pdf", headers=dora)
    assert reviewed.content != before.content and reviewed.headers["etag"] != before.headers["etag"]
    html = printed[-1].decode()
    assert html.index(f'id="{MANIFEST_ID}"') < html.index("<h1>QC report</h1>")
    assert "<code>dora</code>" in html and "signed off, final" not in html
    dirk = _token(client, "dirk")
    _sign(client, analysis, dirk, meaning="approved", username="dirk", password=PASSWORD)
    final = client.get(f"/api/analyses/{analysis}/report.pdf", headers=dirk)
    html = printed[-1].decode()
    assert "<code>dirk</code>" in html and "signed off, final" in html
    assert final.content not in (before.content, reviewed.content)
    # Printed once per manifest: the same request again comes from the cache.
    n = len(printed)
    again = client.get(f"/api/analyses/{analysis}/report.pdf", headers=dora)
    assert again.content == final.content and len(printed) == n


# --- pages -----------------------------------------------------------------------------


class _Page:
    def __init__(self, client: TestClient, name: str) -> None:
        self.client = client
        r = client.post("/sign-in", data={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"',
                              client.get("/studies").text).group(1)  # fmt: skip

    def sign(self, analysis: int, **form):
        return self.client.post(f"/analyses/{analysis}/sign-off", data={"csrf": self.csrf, **form})


def _flash(html: str) -> list[str]:
    return [unescape(m) for m in re.findall(r'class="flash [a-z]+"[^>]*>([^<]*)<', html)]


def test_the_page_asks_the_user_name_at_the_first_signature_of_the_session_only(site):
    client, _, first, second = site
    dora = _Page(client, "dora")
    page = client.get(f"/analyses/{first}").text
    form = page.split('id="sign-form"', 1)[1].split("</form>", 1)[0]
    assert 'name="username"' in form and 'type="password"' in form
    assert '<option value="" selected disabled>' in form  # no meaning is pre-filled
    assert [m for m in ("authored", "reviewed", "approved") if f'value="{m}"' in form] == [
        "authored",
        "reviewed",
        "approved",
    ]
    r = dora.sign(first, meaning="reviewed", password=PASSWORD)
    assert r.status_code == 422 and "first signature" in _flash(r.text)[0]
    r = dora.sign(first, meaning="reviewed", username="dora", password=PASSWORD)
    assert r.status_code == 200
    assert r.history[0].headers["location"] == f"/analyses/{first}#signatures"
    # Later in the same session, the password alone signs.
    form = r.text.split('id="sign-form"', 1)[1].split("</form>", 1)[0]
    assert 'name="username"' not in form and 'value="reviewed"' not in form
    r = dora.sign(second, meaning="approved", comment="ok", password=PASSWORD)
    assert r.status_code == 200
    table = r.text.split('id="signature-manifest"', 1)[1].split("</table>", 1)[0]
    assert "<code>dora</code>" in table and "Approved" in table and "UTC" in table
    # Another session (another browser) is asked again.
    other = _Page(TestClient(client.app), "dora")
    assert 'name="username"' in other.client.get(f"/analyses/{first}").text


def test_a_wrong_password_on_the_page_is_a_401_page_and_signs_nothing(site):
    client, _, analysis, _ = site
    dora = _Page(client, "dora")
    r = dora.sign(analysis, meaning="approved", username="dora", password=WRONG)
    assert r.status_code == 401
    assert "password of 'dora' is wrong" in _flash(r.text)[0]
    assert 'id="signature-manifest"' not in r.text
    # A wrong password does not count as the session's first signature.
    assert 'name="username"' in client.get(f"/analyses/{analysis}").text


def test_a_page_signature_without_a_meaning_is_422(site):
    client, _, analysis, _ = site
    r = _Page(client, "dora").sign(analysis, username="dora", password=PASSWORD)
    assert r.status_code == 422 and "no meaning chosen" in _flash(r.text)[0]


def test_the_manifest_on_the_page_names_each_signer_with_time_and_meaning(site):
    client, _, analysis, _ = site
    _Page(client, "ana").sign(analysis, meaning="authored", username="ana", password=PASSWORD)
    page = TestClient(client.app)
    _Page(page, "vic")
    html = page.get(f"/analyses/{analysis}").text
    table = html.split('id="signature-manifest"', 1)[1].split("</table>", 1)[0]
    assert "<td>Ana</td>" in table and "<code>ana</code>" in table and "Authored" in table
    assert 'id="sign-form"' not in html  # a viewer signs nothing
