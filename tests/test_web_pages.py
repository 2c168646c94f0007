"""The web pages: sign-in with a session cookie, CSRF-checked forms, role checks like the
API's, uploads through the forms, an analysis run to completion and signed off, the
cohort, recommender and AOP pages, ``cytosafe serve`` loading the examples, the Docker
files' wiring, and a real browser (Debian's Chromium through Playwright) against a real
uvicorn server."""

from __future__ import annotations

import io
import re
from html import unescape
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cytosafe.report.hazard import CHROMIUM, CHROMIUM_ARGS
from cytosafe.store import Analysis, Measurement, Plate, Store, add_to_group, create_user
from cytosafe.web import create_app
from cytosafe.web.pages import COOKIE
from live_server import serve_app
from store_templates import store_template

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
MSD = EXAMPLES / "cra-study" / "msd"
STUDY_FILE = EXAMPLES / "cra-study" / "study.toml"
OBSERVATIONS = EXAMPLES / "crs-cohort" / "observations.csv"
PASSWORD = "correct horse battery"
USERS = {
    "root": ("admin", None),
    "dora": ("study_director", "lab-a"),
    "ana": ("analyst", "lab-a"),
    "vic": ("viewer", "lab-a"),
    "olga": ("analyst", "lab-b"),
}


def _users(store: Store) -> None:
    for name, (role, group) in USERS.items():
        create_user(
            store, name, role=role, password=PASSWORD, by=None if name == "root" else "root"
        )
        if group:
            add_to_group(store, name, group, by="root")


def _sample_map(*plates: str) -> bytes:
    table = pd.read_csv(MSD / "samples.csv", dtype=str, keep_default_na=False)
    return table[table["plate_id"].isin(plates)].to_csv(index=False).encode()


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]{64})"', html).group(1)


def _flash(html: str) -> list[str]:
    return [unescape(m) for m in re.findall(r'class="flash [a-z]+"[^>]*>([^<]*)<', html)]


def _first_table(html: str) -> pd.DataFrame:
    """The first ``table.data`` of ``html`` as a frame of strings (no lxml here)."""
    table = html.split('<table class="data"', 1)[1].split("</table>", 1)[0]
    head = [unescape(c) for c in re.findall(r"<th>(.*?)</th>", table)]
    body = table.split("<tbody>", 1)[1]
    rows = [
        [unescape(c) for c in re.findall(r"<td>(.*?)</td>", row, re.DOTALL)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.DOTALL)
    ]
    return pd.DataFrame(rows, columns=head)


def _count(store: Store, model) -> int:
    with store.reader() as session:
        return session.scalar(select(func.count()).select_from(model))


class _Browser:
    """A signed-in TestClient of one user and the CSRF token of its session."""

    def __init__(self, app, name: str) -> None:
        self.client = TestClient(app)
        r = self.client.post("/sign-in", data={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.csrf = _csrf(self.client.get("/studies").text)

    def get(self, url: str, **kw):
        return self.client.get(url, **kw)

    def post(self, url: str, data: dict | None = None, **kw):
        return self.client.post(url, data={"csrf": self.csrf, **(data or {})}, **kw)


@pytest.fixture(scope="module")
def users_template():
    # The users (five argon2id hashes, seconds) made once; the pages' store and each live
    # server's store start from their own copy.
    return store_template(_users)


@pytest.fixture(scope="module")
def site(tmp_path_factory, users_template):
    with users_template.copy("sqlite", tmp_path_factory.mktemp("pages")) as (store, _):
        app = create_app(store)
        with TestClient(app):
            yield app, store, {name: _Browser(app, name) for name in USERS}


@pytest.fixture(scope="module")
def quantified(site):
    """Study PG-001 (lab-a) with MSD-01 uploaded through the form and quantified."""
    app, _, users = site
    ana = users["ana"]
    r = ana.post("/studies", {"code": "PG-001", "title": "Pages", "group": "lab-a"})
    assert r.status_code == 200 and r.url.path == "/studies/PG-001", r.text
    files = [
        ("files", ("plate_MSD-01.csv", (MSD / "plate_MSD-01.csv").read_bytes(), "text/csv")),
        ("sample_map", ("samples.csv", _sample_map("MSD-01"), "text/csv")),
    ]
    r = ana.post("/studies/PG-001/plates", files=files)
    assert r.status_code == 201, _flash(r.text)
    assert _flash(r.text) == ["Stored plates: MSD-01."]
    r = ana.post("/studies/PG-001/quantify", {"model": "4PL"}, follow_redirects=False)
    assert r.status_code == 303
    analysis_id = int(r.headers["location"].rsplit("/", 1)[1])
    app.state.jobs.wait(analysis_id, timeout=600)
    return analysis_id


@pytest.fixture(scope="module")
def hazard_analysis(site):
    """Study CRA-EX-001 (lab-a): the nine example MSD plates uploaded through the form and
    the example study file's hazard analysis run to completion."""
    app, _, users = site
    ana = users["ana"]
    r = ana.post("/studies", {"code": "CRA-EX-001", "group": "lab-a"})
    assert r.status_code == 200, r.text
    files = [
        ("files", (p.name, p.read_bytes(), "text/csv")) for p in sorted(MSD.glob("plate_*.csv"))
    ]
    files.append(("sample_map", ("samples.csv", (MSD / "samples.csv").read_bytes(), "text/csv")))
    r = ana.post("/studies/CRA-EX-001/plates", files=files)
    assert r.status_code == 201, _flash(r.text)
    study_file = [("study_file", ("study.toml", STUDY_FILE.read_bytes(), "application/toml"))]
    r = ana.post("/studies/CRA-EX-001/hazard", files=study_file, follow_redirects=False)
    assert r.status_code == 303, _flash(r.text)
    analysis_id = int(r.headers["location"].rsplit("/", 1)[1])
    app.state.jobs.wait(analysis_id, timeout=600)
    assert users["vic"].get(f"/analyses/{analysis_id}/status").json()["status"] == "completed"
    return analysis_id


def _stored(browser: _Browser, analysis_id: int, name: str) -> pd.DataFrame:
    """A result table of an analysis as stored (through the CSV download)."""
    r = browser.get(f"/analyses/{analysis_id}/tables/{name}.csv")
    assert r.status_code == 200
    return pd.read_csv(io.StringIO(r.text), keep_default_na=False, na_values=[""])


def _section(html: str, section_id: str) -> str:
    return html.split(f'<section id="{section_id}">', 1)[1].split("</section>", 1)[0]


def _calls(html: str) -> dict[tuple[str, str], str]:
    """The hazard class shown per (test article, format) in the calls table."""
    return {
        (unescape(a), unescape(f)): unescape(c)
        for a, f, c in re.findall(
            r'<tr data-article="([^"]+)" data-format="([^"]+)"[^>]*>.*?'
            r'<td data-call><span class="badge [a-z]*">([^<]+)</span>',
            _section(html, "calls"),
            re.DOTALL,
        )
    }


def _per_cytokine(html: str) -> dict[tuple[str, str], dict]:
    """Per (cytokine, test article) the call and responders of the per-cytokine table."""
    out = {}
    body = _section(html, "cytokines").split("<tbody>", 1)[1]
    for row in body.split('<tr data-analyte="')[1:]:
        analyte = unescape(row.split('"', 1)[0])
        for article, call, cell in re.findall(
            r'<td class="first[^"]*" data-article="([^"]+)" data-call="([^"]*)"[^>]*>(.*?)</td>',
            row,
            re.DOTALL,
        ):
            responders = re.search(r"(\d+/\d+)", re.sub(r"<[^>]+>", " ", cell))
            out[(analyte, unescape(article))] = {
                "call": unescape(call),
                "responders": responders.group(1) if responders else None,
            }
    return out


def _figures(html: str) -> dict:
    from cytosafe.report.page import figure_specs

    return figure_specs(html)  # plain or packed


# --- sign-in, cookie, CSRF ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/studies",
        "/studies/PG-001",
        "/analyses/1",
        "/analyses/1/compare",
        "/assays",
        "/aop",
        "/reference",
    ],
)
def test_pages_send_a_stranger_to_the_sign_in(site, url):
    app, _, _ = site
    r = TestClient(app).get(url, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/sign-in?next={url}"


def test_sign_in_sets_an_httponly_lax_cookie_and_goes_back(site):
    app, _, _ = site
    client = TestClient(app)
    r = client.post(
        "/sign-in",
        data={"username": "vic", "password": PASSWORD, "next": "/aop"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/aop"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Signed in as <b>vic</b>" in client.get("/studies").text
    # The session's token is a "web session" (store.users.WEB_SESSION), which a change of
    # password ends.
    import hashlib

    from sqlalchemy import select

    from cytosafe.store.models import ApiToken
    from cytosafe.store.users import WEB_SESSION

    token = cookie.split(";", 1)[0].split("=", 1)[1].strip('"')
    with app.state.store.reader() as session:
        name = session.scalar(
            select(ApiToken.name).where(
                ApiToken.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
            )
        )
    assert name == WEB_SESSION


def test_a_wrong_password_is_401_and_sets_no_cookie(site):
    app, _, _ = site
    client = TestClient(app)
    r = client.post("/sign-in", data={"username": "vic", "password": "nope nope nope"})
    assert r.status_code == 401
    assert "Wrong user name or password." in r.text
    assert COOKIE not in client.cookies


def test_sign_in_does_not_redirect_off_site(site):
    app, _, _ = site
    r = TestClient(app).post(
        "/sign-in",
        data={"username": "vic", "password": PASSWORD, "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/studies"


def test_signing_out_revokes_the_session_token(site):
    app, _, _ = site
    vic = _Browser(app, "vic")
    token = vic.client.cookies[COOKIE]
    assert vic.post("/sign-out", follow_redirects=False).status_code == 303
    again = TestClient(app, cookies={COOKIE: token})
    assert again.get("/studies", follow_redirects=False).status_code == 303
    api = again.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401


def test_a_form_without_the_csrf_token_is_403_and_stores_nothing(site):
    _, store, users = site
    ana = users["ana"]
    before = _count(store, Analysis), _count(store, Plate)
    r = ana.client.post("/studies", data={"code": "CSRF-1"})
    assert r.status_code == 403 and "CSRF" in r.text
    r = ana.client.post("/studies", data={"code": "CSRF-1", "csrf": "0" * 64})
    assert r.status_code == 403
    assert "CSRF-1" not in ana.get("/studies").text
    assert (_count(store, Analysis), _count(store, Plate)) == before


def test_the_csrf_token_of_one_session_does_not_work_in_another(site):
    app, _, users = site
    other = _Browser(app, "ana")
    assert other.csrf != users["ana"].csrf
    r = other.client.post("/studies", data={"code": "CSRF-2", "csrf": users["ana"].csrf})
    assert r.status_code == 403


# --- roles and groups ---------------------------------------------------------------------


def test_a_viewer_sees_no_forms_and_cannot_post_them(site, quantified):
    _, store, users = site
    vic = users["vic"]
    page = vic.get("/studies/PG-001").text
    assert "PG-001" in page
    assert 'action="/studies/PG-001/plates"' not in page
    assert 'action="/studies/PG-001/quantify"' not in page
    assert 'action="/studies"' not in vic.get("/studies").text
    before = _count(store, Analysis)
    assert vic.post("/studies/PG-001/quantify").status_code == 403
    assert vic.post("/studies", {"code": "VIC-1"}).status_code == 403
    assert _count(store, Analysis) == before
    assert "VIC-1" not in vic.get("/studies").text


def test_the_quantification_form_offers_ich_m10_and_refuses_an_unknown_set(site, quantified):
    _, store, users = site
    ana = users["ana"]
    page = ana.get("/studies/PG-001").text
    assert '<select name="acceptance">' in page and 'value="ich-m10"' in page
    before = _count(store, Analysis)
    r = ana.post("/studies/PG-001/quantify", {"acceptance": "glp"})
    assert r.status_code == 422 and _count(store, Analysis) == before
    assert any("acceptance" in m for m in _flash(r.text)), _flash(r.text)


def test_another_groups_study_and_analysis_are_not_found(site, quantified):
    _, _, users = site
    olga = users["olga"]
    assert "PG-001" not in olga.get("/studies").text
    assert olga.get("/studies/PG-001").status_code == 404
    assert olga.get(f"/analyses/{quantified}").status_code == 404
    assert olga.get(f"/analyses/{quantified}/report").status_code == 404
    assert olga.get(f"/analyses/{quantified}/tables/qc.csv").status_code == 404
    assert olga.post("/studies/PG-001/quantify").status_code == 404


def test_a_study_cannot_be_put_in_another_group(site):
    _, _, users = site
    r = users["ana"].post("/studies", {"code": "GRP-1", "group": "lab-b"})
    assert r.status_code == 422
    assert _flash(r.text) == ["you are not a member of group 'lab-b'"]


# --- uploads, analyses, sign-off ----------------------------------------------------------


def test_the_uploaded_plate_is_stored_and_listed(site, quantified):
    _, store, users = site
    page = users["vic"].get("/studies/PG-001").text
    assert re.search(r'id="plates".*MSD-01', page, re.DOTALL)
    with store.reader() as session:
        plates = session.scalars(select(Plate.code)).all()
    assert "MSD-01" in plates


def test_a_malformed_export_is_422_naming_the_file_and_stores_nothing(site, quantified):
    _, store, users = site
    before = _count(store, Measurement)
    files = [("files", ("broken.csv", b"this,is\nnot,an export\n", "text/csv"))]
    r = users["ana"].post("/studies/PG-001/plates", files=files)
    assert r.status_code == 422
    assert "broken.csv" in _flash(r.text)[0]
    assert "cytosafe-upload-" not in r.text
    assert _count(store, Measurement) == before


def test_an_upload_without_a_file_chosen_is_422_and_stores_nothing(site, quantified):
    _, store, users = site
    before = _count(store, Measurement)
    # What a browser sends for file inputs left empty.
    files = [("files", ("", b"", "application/octet-stream")),
             ("sample_map", ("", b"", "application/octet-stream"))]  # fmt: skip
    r = users["ana"].post("/studies/PG-001/plates", files=files)
    assert r.status_code == 422
    assert "choose at least one export file" in _flash(r.text)[0]
    assert _count(store, Measurement) == before


def test_a_malformed_study_file_is_422_naming_it_and_queues_nothing(site, quantified):
    _, store, users = site
    before = _count(store, Analysis)
    files = [("study_file", ("study.toml", b"[study\nid = 1\n", "application/toml"))]
    r = users["ana"].post("/studies/PG-001/hazard", files=files)
    assert r.status_code == 422
    assert "study.toml" in _flash(r.text)[0]
    assert _count(store, Analysis) == before


def test_the_quantification_completes_and_shows_qc_tables_and_report(site, quantified):
    _, _, users = site
    vic = users["vic"]
    page = vic.get(f"/analyses/{quantified}").text
    assert '<span class="badge pass">completed</span>' in page
    assert 'id="qc"' in page and 'id="report"' in page
    assert 'data-poll="' not in page
    status = vic.get(f"/analyses/{quantified}/status").json()
    assert status["status"] == "completed"
    csv = vic.get(f"/analyses/{quantified}/tables/qc.csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert set(pd.read_csv(io.StringIO(csv.text))["plate_id"]) == {"MSD-01"}
    report = vic.get(f"/analyses/{quantified}/report?download=true")
    assert report.headers["content-type"].startswith("text/html")
    assert "attachment" in report.headers["content-disposition"]
    assert report.text.lstrip().lower().startswith("<!doctype html")


def test_a_running_analysis_page_polls_its_status(site, quantified, monkeypatch):
    from cytosafe.web import services

    _, _, users = site
    real = services.read_analysis

    def running(store, user, analysis_id):
        out = real(store, user, analysis_id)
        return out.model_copy(update={"status": "running", "progress": 0.4, "message": "fitting"})

    monkeypatch.setattr(services, "read_analysis", running)
    page = users["vic"].get(f"/analyses/{quantified}").text
    assert f'data-poll="/analyses/{quantified}/status"' in page
    assert 'src="/static/progress.js"' in page
    assert "width: 40%" in page
    js = users["vic"].get("/static/progress.js")
    assert js.status_code == 200 and "data-poll" in js.text


def test_a_viewer_gets_no_sign_form_and_an_analyst_cannot_approve(site, quantified):
    _, store, users = site
    assert "/sign-off" not in users["vic"].get(f"/analyses/{quantified}").text
    assert users["vic"].post(f"/analyses/{quantified}/sign-off").status_code == 403
    ana = users["ana"]
    page = ana.get(f"/analyses/{quantified}").text
    # An analyst signs as author or reviewer; approving is a study director's.
    form = page.split('id="sign-form"', 1)[1].split("</form>", 1)[0]
    assert 'value="authored"' in form and 'value="approved"' not in form
    r = ana.post(f"/analyses/{quantified}/sign-off",
                 {"meaning": "approved", "username": "ana", "password": PASSWORD})  # fmt: skip
    assert r.status_code == 403
    with store.reader() as session:
        assert session.get(Analysis, quantified).signed_off_at is None


def test_a_study_director_signs_off_through_the_form_once(site, quantified):
    _, store, users = site
    dora = users["dora"]
    assert f'action="/analyses/{quantified}/sign-off"' in dora.get(f"/analyses/{quantified}").text
    r = dora.post(f"/analyses/{quantified}/sign-off",
                  {"meaning": "approved", "username": "dora", "password": PASSWORD})  # fmt: skip
    assert r.status_code == 200
    assert '<span class="badge pass">signed off</span>' in r.text
    assert "/sign-off" not in r.text
    with store.reader() as session:
        assert session.get(Analysis, quantified).signed_off_at is not None
    again = dora.post(f"/analyses/{quantified}/sign-off",
                      {"meaning": "approved", "password": PASSWORD})  # fmt: skip
    assert again.status_code == 409


# --- comparing test articles --------------------------------------------------------------


def test_the_hazard_analysis_page_links_to_the_comparison(site, hazard_analysis, quantified):
    _, _, users = site
    page = users["vic"].get(f"/analyses/{hazard_analysis}").text
    assert f'href="/analyses/{hazard_analysis}/compare"' in page
    assert "/compare" not in users["vic"].get(f"/analyses/{quantified}").text


def test_the_comparison_shows_every_test_article_with_its_stored_calls(site, hazard_analysis):
    _, _, users = site
    vic = users["vic"]
    r = vic.get(f"/analyses/{hazard_analysis}/compare")
    assert r.status_code == 200
    hazard = _stored(vic, hazard_analysis, "hazard")
    articles = list(dict.fromkeys(hazard["treatment"]))
    assert len(articles) == 2  # the example study's TA-1 and TA-2
    for article in articles:
        assert f'name="articles" value="{article}" checked' in r.text
    # Every test article x format with the class stored in the hazard table.
    expected = {(row.treatment, row.assay_format): row.hazard_class for row in hazard.itertuples()}
    assert _calls(r.text) == expected
    # Per cytokine, in the format shown: the cytokines that met the class carry it, the
    # responders are those of the stored benchmark row (the best concentration).
    shown = re.search(r'<option value="([^"]+)" selected>', r.text).group(1)
    assert shown == hazard["assay_format"].iloc[0]
    bench = _stored(vic, hazard_analysis, "benchmark")
    bench = bench[(bench["assay_format"] == shown) & bench["treatment"].isin(articles)]
    cells = _per_cytokine(r.text)
    assert set(cells) == {(row.analyte, row.treatment) for row in bench.itertuples()}
    for row in hazard[hazard["assay_format"] == shown].itertuples():
        met = set(row.analytes.split()) if isinstance(row.analytes, str) else set()
        for (analyte, article), cell in cells.items():
            if article == row.treatment:
                assert cell["call"] == (row.hazard_class if analyte in met else ""), (
                    analyte,
                    article,
                )
    for row in bench.itertuples():
        assert cells[(row.analyte, row.treatment)]["responders"] == (
            f"{row.n_responders}/{row.n_donors}"
        )
    # The positive controls of the format stand beside them.
    controls = _stored(vic, hazard_analysis, "positive_controls")
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", _section(r.text, "cytokines"))
    for name in controls.loc[controls["assay_format"] == shown, "treatment"]:
        assert name in heads
    # One figure: a panel per cytokine, one trace per test article in each, drawn by the
    # report's script with the plotly.js bundle served by the app (no CDN).
    figures = _figures(r.text)
    assert list(figures) == ["fig1"]
    spec = figures["fig1"]
    import plotly.graph_objects as go

    go.Figure(spec)  # a valid Plotly figure
    for article in articles:
        traces = [t for t in spec["data"] if t.get("legendgroup") == article]
        assert len(traces) == bench["analyte"].nunique()
        assert sum(t["showlegend"] for t in traces) == 1
    assert '<script src="/static/plotly.min.js"></script>' in r.text
    assert '<script src="/static/report.js"></script>' in r.text
    assert "cdn." not in r.text.lower()
    js = vic.get("/static/plotly.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "plotly" in js.text[:2000].lower()
    assert vic.get("/static/report.js").text.startswith("(function")
    # Potency: the EC50 of the stored fits, donor by donor, with its interval.
    assert 'id="potency-table"' in r.text and 'id="potency-donors"' in r.text


def test_the_comparison_of_one_test_article_in_another_format(site, hazard_analysis):
    _, _, users = site
    vic = users["vic"]
    hazard = _stored(vic, hazard_analysis, "hazard")
    article, fmt = hazard.iloc[-1]["treatment"], hazard.iloc[-1]["assay_format"]
    other = next(a for a in hazard["treatment"] if a != article)
    r = vic.get(f"/analyses/{hazard_analysis}/compare", params={"articles": article, "format": fmt})
    assert r.status_code == 200
    assert re.search(r'<option value="([^"]+)" selected>', r.text).group(1) == fmt
    assert f'name="articles" value="{other}">' in r.text  # offered, not chosen
    assert {a for _, a in _per_cytokine(r.text)} == {article}
    assert set(_calls(r.text)) == {
        (row.treatment, row.assay_format) for row in hazard.itertuples() if row.treatment == article
    }


@pytest.mark.parametrize(
    ("params", "says"),
    [
        (
            {"articles": ["TA-1", "NO-SUCH-TA"]},
            "test article 'NO-SUCH-TA' not found in hazard analysis {id}; "
            "its test articles are TA-1, TA-2",
        ),
        (
            {"format": "no_such_format"},
            "format 'no_such_format' not found for TA-1, TA-2 in hazard analysis {id}",
        ),
    ],
)
def test_an_unknown_test_article_or_format_is_404_naming_it(site, hazard_analysis, params, says):
    _, _, users = site
    r = users["vic"].get(f"/analyses/{hazard_analysis}/compare", params=params)
    assert r.status_code == 404
    assert "<h1>Not found</h1>" in r.text
    (message,) = _flash(r.text)
    assert message.startswith(says.format(id=hazard_analysis))


def test_a_quantification_has_no_comparison(site, quantified):
    _, _, users = site
    r = users["vic"].get(f"/analyses/{quantified}/compare")
    assert r.status_code == 404
    assert _flash(r.text) == [
        f"analysis {quantified} is a quantification analysis, not a hazard analysis: "
        "it has no test articles to compare"
    ]


def test_a_running_hazard_analysis_is_not_compared_yet(site, hazard_analysis, monkeypatch):
    from cytosafe.web import services

    _, _, users = site
    real = services.read_analysis

    def running(store, user, analysis_id):
        return real(store, user, analysis_id).model_copy(update={"status": "running"})

    monkeypatch.setattr(services, "read_analysis", running)
    r = users["vic"].get(f"/analyses/{hazard_analysis}/compare")
    assert r.status_code == 409
    assert "<h1>Not ready</h1>" in r.text
    assert f"hazard analysis {hazard_analysis} is running" in _flash(r.text)[0]


def test_another_groups_comparison_is_not_found(site, hazard_analysis):
    _, _, users = site
    r = users["olga"].get(f"/analyses/{hazard_analysis}/compare", params={"articles": "TA-1"})
    assert r.status_code == 404
    assert _flash(r.text) == [f"analysis {hazard_analysis} not found"]
    assert "TA-1" not in r.text.split("</nav>", 1)[1]
    assert users["olga"].get("/analyses/999999/compare").status_code == 404


# --- cohort, recommender, AOP -------------------------------------------------------------


def test_the_cohort_page_grades_uploaded_observations(site):
    _, _, users = site
    ana = users["ana"]
    r = ana.post("/studies", {"code": "CO-001", "kind": "clinical", "group": "lab-a"})
    assert r.status_code == 200 and "No graded observations yet." in r.text
    # The cohort page's upload is the shared one: several files (SDTM domains, a FHIR
    # Bundle or a table) and the scale picker, not a free-text scale field.
    form = r.text.split('id="upload-observations"', 1)[1].split("</form>", 1)[0]
    assert 'type="file" name="files" multiple' in form
    assert re.findall(r'type="checkbox" name="scales" value="([a-z0-9]+)"', form)[0] == "astct2019"
    assert 'type="text" name="scales"' not in form
    files = [("file", ("observations.csv", OBSERVATIONS.read_bytes(), "text/csv"))]
    r = ana.post("/studies/CO-001/observations", files=files)
    assert r.status_code == 201, _flash(r.text)
    assert "observations and graded them" in _flash(r.text)[0]
    patients = _first_table(r.text.split('id="patients"')[1])
    expected = pd.read_csv(OBSERVATIONS)["patient_id"].nunique()
    assert len(patients) == min(expected, 200) and "patient_id" in patients.columns
    analysis_id = int(re.search(r"grading analysis <a href=\"/analyses/(\d+)\"", r.text).group(1))
    report = users["vic"].get(f"/analyses/{analysis_id}/report")
    assert report.status_code == 200 and "CRS grading" in report.text


def test_malformed_observations_are_422_and_store_nothing(site):
    _, store, users = site
    users["ana"].post("/studies", {"code": "CO-002", "kind": "clinical"})
    before = _count(store, Analysis)
    files = [("file", ("obs.csv", b"patient_id,time\nP1,never\n", "text/csv"))]
    r = users["ana"].post("/studies/CO-002/observations", files=files)
    assert r.status_code == 422 and "obs.csv" in _flash(r.text)[0]
    assert _count(store, Analysis) == before


def test_the_recommender_page_ranks_formats(site):
    _, _, users = site
    r = users["vic"].get("/assays", params={"modality": "cd28_superagonist"})
    assert r.status_code == 200
    section = r.text.split('id="recommendation"')[1]
    ranking = _first_table(section)
    token = users["vic"].client.cookies[COOKIE]
    api = (
        users["vic"]
        .get(
            "/api/assays/recommend",
            params={"modality": "cd28_superagonist"},
            headers={"Authorization": f"Bearer {token}"},
        )
        .json()
    )
    assert len(ranking) > 1
    assert ranking["format"].tolist() == [row["format"] for row in api["ranking"]]
    chosen = section.split("</p>", 1)[0]
    assert all(f'<span class="badge pass">{c}</span>' in chosen for c in api["chosen"])


def test_the_recommender_page_names_an_unknown_modality(site):
    _, _, users = site
    r = users["vic"].get("/assays", params={"modality": "no_such_thing"})
    assert r.status_code == 422 and "no_such_thing" in _flash(r.text)[0]


def test_the_aop_page_embeds_the_svg_figure(site):
    _, _, users = site
    r = users["vic"].get("/aop", params={"modality": "cd3_bispecific"})
    assert r.status_code == 200
    assert re.search(r'id="aop"><svg', r.text)
    bad = users["vic"].get("/aop", params={"modality": "nope"})
    assert bad.status_code == 422 and "<svg" in bad.text


def test_the_aop_page_shows_a_studys_evidence(site, hazard_analysis):
    # Issue 18 item 5: a completed hazard analysis mapped as `cytosafe aop map` maps it.
    from cytosafe.aop import load_crs_aop
    from cytosafe.aop.evidence import map_evidence

    _, _, users = site
    vic = users["vic"]
    page = vic.get("/aop").text
    assert f'<option value="{hazard_analysis}">CRA-EX-001 · hazard analysis' in page
    params = {"modality": "cd3_bispecific", "analysis": str(hazard_analysis)}
    r = vic.get("/aop", params=params)
    assert r.status_code == 200, _flash(r.text)
    expected, lit = map_evidence(
        load_crs_aop(), responses=_stored(vic, hazard_analysis, "responses"),
        study="CRA-EX-001", modality="cd3_bispecific",
    )  # fmt: skip
    rows = re.findall(
        r"<tr><td>([^<]*)</td><td>([^<]*)</td><td class=\"n\">([^<]*)</td>",
        _section(r.text, "evidence"),
    )
    assert [(unescape(e), s, unescape(n)) for e, s, n in rows] == [
        (t.event_title, t.source, f"{t.n_positive}/{t.n_total} {t.unit}")
        for t in expected.itertuples(index=False)
    ]
    assert "positive control" in set(expected["source"])  # the assay's own sensitivity
    # The example TA-1 (a CD3 bispecific) lights CD3 engagement, not CD28 or FcgR.
    mies = set(expected.loc[expected["event_type"] == "MIE", "event"])
    assert lit & mies and all("cd3" in m.lower() for m in lit & mies), (lit, mies)
    svg = re.search(r'id="aop">(<svg.*?</svg>)', r.text, re.S).group(1)
    assert "PC " in svg  # the numbers beside the colours, the positive controls' too
    # Another group's user neither sees it in the list nor gets it by number.
    olga = users["olga"]
    assert f'value="{hazard_analysis}"' not in olga.get("/aop").text
    r = olga.get("/aop", params=params)
    assert r.status_code == 422 and 'id="evidence"' not in r.text


def test_the_pages_use_the_report_stylesheet(site):
    app, _, _ = site
    client = TestClient(app)
    css = client.get("/static/report.css")
    shipped = ROOT / "src" / "cytosafe" / "report" / "templates" / "_report.css"
    assert css.text == shipped.read_text(encoding="utf-8")
    assert client.get("/static/web.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/..%2Fpages.py").status_code == 404
    assert '<link rel="stylesheet" href="/static/report.css">' in client.get("/sign-in").text


# --- cytosafe serve and Docker ------------------------------------------------------------


def test_serve_loads_the_examples_into_an_empty_store_once(tmp_path, monkeypatch, capsys):
    import uvicorn

    from cytosafe.cli.serve import serve_command

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    database = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    serve_command(host="127.0.0.1", port=8124, database=database)
    out = capsys.readouterr().out
    assert "loaded SIMULATED example study CRA-EX-001: 9 MSD plates" in out
    assert "loaded SIMULATED example cohort CRS-EX-001" in out
    assert "CytoSafe on http://127.0.0.1:8124" in out
    password = out.split("with password ")[1].split()[0]
    app = served[0]
    with TestClient(app) as client:
        client.post("/sign-in", data={"username": "admin", "password": password})
        # The printed password is changed first (issue 14, item 4).
        assert client.get("/studies", follow_redirects=False).headers["location"] == "/account"
        chosen = {"current_password": password, "new_password": "violet kettle orbit lantern"}
        chosen["confirm_password"] = chosen["new_password"]
        chosen["csrf"] = _csrf(client.get("/account").text)
        r = client.post("/account/password", data=chosen, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/studies")
        page = client.get("/studies").text
        assert "CRA-EX-001" in page and "CRS-EX-001" in page
        job = int(re.search(r"hazard analysis (\d+) running", out).group(1))
        app.state.jobs.wait(job, timeout=600)
        analysis = client.get(f"/analyses/{job}").text
        assert '<span class="badge pass">completed</span>' in analysis and 'id="hazard"' in analysis
        assert 'id="patients"' in client.get("/studies/CRS-EX-001").text
    app.state.store.close()
    serve_command(host="127.0.0.1", port=8124, database=database)
    assert "loaded SIMULATED" not in capsys.readouterr().out
    served[1].state.store.close()


def test_serve_without_examples_says_so(tmp_path, monkeypatch, capsys):
    import uvicorn

    from cytosafe.cli import serve as commands

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: app.state.store.close())
    monkeypatch.setattr(commands, "find_examples", lambda: None)
    commands.serve_command(host="127.0.0.1", port=8125, database=str(tmp_path / "s.sqlite3"))
    out = capsys.readouterr().out
    assert "no example data found" in out and "loaded SIMULATED" not in out


def test_docker_compose_wires_the_app_to_postgresql_15():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    db, app = compose["services"]["db"], compose["services"]["app"]
    assert db["image"] == "postgres:15"
    assert app["build"] == "."
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    from sqlalchemy.engine import make_url

    url = make_url(app["environment"]["CYTOSAFE_DATABASE_URL"])
    env = db["environment"]
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port) == ("db", 5432)
    assert (url.username, url.password, url.database) == (
        env["POSTGRES_USER"],
        env["POSTGRES_PASSWORD"],
        env["POSTGRES_DB"],
    )
    assert "8000:8000" in app["ports"]
    assert app["command"][:4] == ["cytosafe", "serve", "--host", "0.0.0.0"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"])
    assert set(compose["volumes"]) == {v.split(":")[0] for v in db["volumes"]}


def test_the_dockerfile_installs_the_package_and_serves_on_all_addresses():
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    assert any(line.startswith("RUN pip install .") for line in lines)
    assert "COPY examples ./examples" in lines and "COPY src ./src" in lines
    cmd = next(line for line in lines if line.startswith("CMD "))
    assert cmd.startswith('CMD ["cytosafe", "serve", "--host", "0.0.0.0"')


# --- a real browser -----------------------------------------------------------------------


@pytest.fixture
def live_server(tmp_path, users_template):
    with users_template.copy("sqlite", tmp_path, "live.sqlite3") as (store, _):
        base, stop = serve_app(create_app(store))
        yield base
        stop()


def test_a_scientist_quantifies_the_example_plates_in_chromium(live_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    sample_map = tmp_path / "samples.csv"
    sample_map.write_bytes(_sample_map("MSD-01", "MSD-02"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(accept_downloads=True).new_page()
            page.goto(f"{live_server}/studies/BR-001")
            expect(page).to_have_url(re.compile(r"/sign-in\?next="))
            page.fill("input[name=username]", "ana")
            page.fill("input[name=password]", PASSWORD)
            page.screenshot(path=shots / "01-sign-in.png")
            page.click("button[type=submit]")
            # BR-001 does not exist yet: the redirect lands on its 404 page.
            expect(page.get_by_role("alert")).to_contain_text("study 'BR-001' not found")
            page.goto(f"{live_server}/studies")
            page.fill("input[name=code]", "BR-001")
            page.fill("input[name=title]", "Browser test")
            page.fill("input[name=group]", "lab-a")
            page.click("text=Create")
            expect(page.locator("h1")).to_have_text("BR-001")
            page.set_input_files(
                "input[name=files]", [MSD / "plate_MSD-01.csv", MSD / "plate_MSD-02.csv"]
            )
            page.set_input_files("input[name=sample_map]", sample_map)
            page.click("text=Upload plates")
            expect(page.get_by_role("status")).to_have_text("Stored plates: MSD-01, MSD-02.")
            page.screenshot(path=shots / "02-plates.png", full_page=True)
            page.select_option("select[name=model]", "4PL")
            page.click("text=Run quantification")
            expect(page).to_have_url(re.compile(r"/analyses/\d+$"))
            page.screenshot(path=shots / "03-running.png")
            expect(page.locator("#qc")).to_be_visible(timeout=240_000)
            expect(page.locator(".badge.pass").first).to_have_text("completed")
            expect(page.locator("#qc table.data tbody tr").first).to_be_visible()
            page.screenshot(path=shots / "04-qc.png", full_page=True)
            with page.expect_download() as info:
                page.click("text=Download the report")
            report = tmp_path / "report.html"
            info.value.save_as(report)
            text = report.read_text(encoding="utf-8")
            assert text.lstrip().lower().startswith("<!doctype html")
            assert "MSD-02" in text
        finally:
            browser.close()
    assert sorted(f.name for f in shots.iterdir()) == [
        "01-sign-in.png",
        "02-plates.png",
        "03-running.png",
        "04-qc.png",
    ]
    assert all(f.stat().st_size > 5000 for f in shots.iterdir())


def test_a_scientist_compares_the_test_articles_in_chromium(live_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{live_server}/sign-in")
            page.fill("input[name=username]", "ana")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.fill("input[name=code]", "CRA-EX-001")
            page.fill("input[name=group]", "lab-a")
            page.click("text=Create")
            page.set_input_files("input[name=files]", sorted(MSD.glob("plate_*.csv")))
            page.set_input_files("input[name=sample_map]", MSD / "samples.csv")
            page.click("text=Upload plates")
            expect(page.get_by_role("status")).to_contain_text("Stored plates: MSD-01")
            page.set_input_files("input[name=study_file]", STUDY_FILE)
            page.click("text=Run hazard analysis")
            expect(page.locator("#hazard")).to_be_visible(timeout=240_000)
            page.click("text=Compare test articles")
            expect(page).to_have_url(re.compile(r"/analyses/\d+/compare$"))
            expect(page.locator("#calls tbody tr")).to_have_count(4)
            figure = page.locator("#compare-figure")
            figure.scroll_into_view_if_needed()
            expect(figure.locator(".main-svg").first).to_be_visible(timeout=30_000)
            expect(figure.locator(".legendtext", has_text="TA-1")).to_have_count(1)
            expect(figure.locator(".legendtext", has_text="TA-2")).to_have_count(1)
            page.screenshot(path=tmp_path / "compare.png", full_page=True)
            # Only TA-2, in whole blood: the form's choice lands in the address.
            page.uncheck("input[name=articles][value=TA-1]")
            page.select_option("select[name=format]", "whole_blood")
            page.click("#choose button[type=submit]")
            expect(page).to_have_url(re.compile(r"compare\?articles=TA-2&format=whole_blood$"))
            expect(page.locator("#per-cytokine td[data-article=TA-1]")).to_have_count(0)
            expect(page.locator("#per-cytokine td[data-article=TA-2]").first).to_be_visible()
            expect(figure.locator(".legendtext", has_text="TA-1")).to_have_count(0)
            assert errors == []
        finally:
            browser.close()
    assert (tmp_path / "compare.png").stat().st_size > 20_000
