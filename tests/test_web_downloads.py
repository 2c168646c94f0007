"""Downloads people use (issue 15, item 3) and the MABEL and simulation pages (item 2).

On the SIMULATED example study and cohort that ``cytosafe serve`` loads (a hazard
analysis of nine MSD plates, a graded cohort): the Excel workbook (About sheet, one sheet
per stored table, units in the headers, numbers as numbers, times as UTC date-times), the
report as PDF (printed once, then served from the cache), the Prism table (its shape and a
value against the stored ``samples`` table), the download block of the analysis page
(also once signed off); the MABEL page against ``cytosafe mabel`` and a published
occupancy, and the simulation page against the simulation it runs.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import tempfile
import time
from html import unescape
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from cytosafe.store import Analysis, Store, create_user
from cytosafe.store.models import Signature
from cytosafe.web import create_app
from cytosafe.web.downloads import PRISM_LAYOUT, prism_table, sheet_names
from cytosafe.web.services import EXAMPLE_STUDY, load_examples, stored_table

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The example study (hazard analysis, completed) and cohort (graded) in a store; a
    viewer's page session and bearer token."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('downloads') / 'store.sqlite3'}")
    create_user(store, "root", role="admin", password=PASSWORD)
    create_user(store, "vic", role="viewer", password=PASSWORD, by="root")
    app = create_app(store)
    with TestClient(app) as root:
        load_examples(app, EXAMPLES, user="root")
        with store.reader() as session:
            ids = {a.kind: a.id for a in session.scalars(select(Analysis).order_by(Analysis.id))}
        app.state.jobs.wait(ids["hazard"], timeout=900)
        viewer = TestClient(app)
        r = viewer.post("/sign-in", data={"username": "vic", "password": PASSWORD})
        assert r.status_code == 200, r.text
        r = root.post("/api/token", data={"username": "vic", "password": PASSWORD})
        token = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = root.post("/api/token", data={"username": "root", "password": PASSWORD})
        admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
        yield {
            "app": app,
            "store": store,
            "page": viewer,
            "api": root,
            "token": token,
            "admin": admin,
            "hazard": ids["hazard"],
            "grading": ids["grading"],
        }
    store.close()


_PARSED: dict[str, openpyxl.Workbook] = {}


def _workbook(content: bytes) -> openpyxl.Workbook:
    # Parsing the hazard analysis's workbook takes seconds and the tests only read it:
    # the same bytes, served again (by the API and the page), are parsed once.
    key = hashlib.sha256(content).hexdigest()
    if key not in _PARSED:
        _PARSED[key] = openpyxl.load_workbook(io.BytesIO(content))
    return _PARSED[key]


def _about(wb) -> dict[str, list]:
    """The About sheet as {first cell: the rest of the row}."""
    return {
        row[0]: _trimmed(row[1:])
        for row in wb["About"].iter_rows(values_only=True)
        if row and row[0] is not None
    }


def _trimmed(cells) -> list:
    cells = list(cells)
    while cells and cells[-1] is None:
        cells.pop()
    return cells


def _sheet(wb, name: str) -> tuple[list[str], list[tuple]]:
    rows = list(wb[name].iter_rows(values_only=True))
    return list(rows[0]), rows[1:]


# --- workbook ---------------------------------------------------------------------------------


def test_the_workbook_has_an_about_sheet_then_one_sheet_per_stored_table(site):
    r = site["api"].get(f"/api/analyses/{site['hazard']}/workbook.xlsx", headers=site["token"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in r.headers["content-disposition"]
    wb = _workbook(r.content)
    tables = site["api"].get(f"/api/analyses/{site['hazard']}", headers=site["token"]).json()
    names = [t["name"] for t in tables["tables"]]
    assert wb.sheetnames == ["About", "Prism conc-response", *names]
    assert all(len(n) <= 31 for n in wb.sheetnames)
    assert len({n.lower() for n in wb.sheetnames}) == len(wb.sheetnames)

    about = _about(wb)
    assert about["Study"][0] == EXAMPLE_STUDY
    assert about["Analysis id"][0] == site["hazard"]
    assert about["Kind"][0] == "hazard"
    assert about["Status"][0] == "completed"
    assert about["Version"][0] == 1
    assert about["CytoSafe version"][0] == tables["cytosafe_version"]
    assert "SIMULATED" in next(iter(about))  # the title row
    # The input file with its SHA-256, as the user sent it.
    study_file = EXAMPLES / "cra-study" / "study.toml"
    assert about["study.toml"][0] == hashlib.sha256(study_file.read_bytes()).hexdigest()
    # Every plate with the SHA-256 of its measurements; every table with its own.
    assert {f"MSD-0{i}" for i in range(1, 10)} <= set(about)
    for t in tables["tables"]:
        assert about[t["name"]][:2] == [t["sha256"], t["n_rows"]]
    # The settings, one row each under a dotted key.
    assert about["calibration.blank"][0] == tables["settings"]["calibration"]["blank"]
    assert about["Signatures"] == [] and "not signed" in about


def test_headers_carry_units_and_cells_keep_their_types(site):
    store, aid = site["store"], site["hazard"]
    wb = _workbook(site["page"].get(f"/analyses/{aid}/workbook.xlsx").content)
    head, rows = _sheet(wb, "samples")
    stored = stored_table(store, aid, "samples")
    assert len(rows) == len(stored)
    # Units from the table's own unit columns (pg/mL for cytokines, ug/mL for the test
    # articles), hours and percent from the column's meaning.
    for expected in (
        "concentration (pg/mL)",
        "lloq (pg/mL)",
        "treatment_concentration (ug/mL)",
        "incubation_h (h)",
        "cv (%)",
    ):
        assert expected in head, head
    # Numbers stay numbers, equal to the stored ones; a missing value is an empty cell.
    c = head.index("concentration (pg/mL)")
    values = stored["concentration"].tolist()
    for row, value in zip(rows, values, strict=True):
        if pd.isna(value):
            assert row[c] is None
        else:
            assert isinstance(row[c], float) and row[c] == pytest.approx(value, rel=1e-12)
    assert stored["concentration"].isna().any()  # the empty-cell case was checked
    # Potency: ECx on the test article's axis.
    head, _ = _sheet(wb, "potency")
    assert {"ec50 (ug/mL)", "ec20_ci_low (ug/mL)", "bottom (pg/mL)"} <= set(head)
    # The QC table has no unit column: the analysis's one unit is used.
    head, _ = _sheet(wb, "qc")
    assert "lloq (pg/mL)" in head and "share_below_lloq (fraction 0-1)" in head


def test_times_are_excel_datetimes_in_utc(site):
    r = site["page"].get(f"/analyses/{site['grading']}/workbook.xlsx")
    wb = _workbook(r.content)
    assert wb.sheetnames == ["About", "grades", "patients", "cohort"]  # no samples: no Prism
    head, rows = _sheet(wb, "grades")
    assert "time (UTC)" in head and "temperature_c (°C)" in head
    stored = stored_table(site["store"], site["grading"], "grades")
    t = head.index("time (UTC)")
    assert rows[0][t] == stored["time"].iloc[0].to_pydatetime()
    assert wb["grades"].cell(row=2, column=t + 1).is_date


def test_sheet_names_fit_excel():
    names = sheet_names(["a" * 40, "a" * 40, "A" * 40, "x/y:z", ""])
    assert names == ["a" * 31, "a" * 27 + " (2)", "A" * 27 + " (3)", "x_y_z", "table"]


# --- Prism ------------------------------------------------------------------------------------


def test_the_prism_table_has_one_column_per_donor_and_a_row_per_treatment_and_concentration(
    site,
):
    store, aid = site["store"], site["hazard"]
    samples = stored_table(store, aid, "samples")
    r = site["page"].get(f"/analyses/{aid}/prism.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = pd.read_csv(io.StringIO(r.text))
    x = "treatment_concentration (ug/mL)"
    donors = [f"D0{i} (pg/mL)" for i in range(1, 9)]
    key = ["analyte", "assay_format", "incubation_h", "treatment", "treatment_role", x]
    assert list(table.columns) == [*key, *donors]
    # One row per analyte x format x treatment x concentration among the sample wells.
    wells = samples[samples["sample_type"] == "sample"]
    n_rows = len(
        wells.drop_duplicates(
            ["analyte", "assay_format", "incubation_h", "treatment", "treatment_concentration"]
        )
    )
    assert len(table) == n_rows
    assert not table.duplicated(key).any()
    # Grouped per analyte: each analyte's rows are contiguous.
    runs = (table["analyte"] != table["analyte"].shift()).sum()
    assert runs == table["analyte"].nunique()
    # A known value: TA-1 at 1 ug/mL in whole blood, IL-6, donor D03, as stored.
    row = table[
        (table["analyte"] == "IL-6")
        & (table["assay_format"] == "whole_blood")
        & (table["treatment"] == "TA-1")
        & (table[x] == 1.0)
    ]
    want = wells[
        (wells["analyte"] == "IL-6")
        & (wells["assay_format"] == "whole_blood")
        & (wells["treatment"] == "TA-1")
        & (wells["treatment_concentration"] == 1.0)
        & (wells["donor_id"] == "D03")
    ]["concentration"]
    assert len(row) == 1 and len(want) == 1
    assert row["D03 (pg/mL)"].iloc[0] == pytest.approx(want.iloc[0], rel=1e-12)
    # Within a test article, concentrations rise (Prism's X column).
    ta1 = table[(table["analyte"] == "IL-6") & (table["assay_format"] == "whole_blood")]
    ta1 = ta1[ta1["treatment"] == "TA-1"][x].tolist()
    assert ta1 == sorted(ta1) and len(ta1) == 5
    # The same table is a sheet of the workbook.
    wb = _workbook(site["page"].get(f"/analyses/{aid}/workbook.xlsx").content)
    head, rows = _sheet(wb, "Prism conc-response")
    assert head == list(table.columns) and len(rows) == len(table)
    assert PRISM_LAYOUT in str(_about(wb)["Prism conc-response"][0])


def test_no_prism_table_without_samples(site):
    assert prism_table(None) is None
    r = site["api"].get(f"/api/analyses/{site['grading']}/prism.csv", headers=site["token"])
    assert r.status_code == 404


# --- PDF --------------------------------------------------------------------------------------


def _pdf_text(pdf: bytes, tmp_path: Path) -> str:
    """The PDF's text by pdftotext or pypdf when there is one, else its Info title
    (Chromium writes the page's <title> there, UTF-16 in hex)."""
    if shutil.which("pdftotext"):
        path = tmp_path / "report.pdf"
        path.write_bytes(pdf)
        return subprocess.run(
            ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
        ).stdout
    try:
        import pypdf
    except ImportError:
        found = re.search(rb"/Title\s*<FEFF([0-9A-Fa-f]+)>", pdf)
        assert found, "no /Title in the PDF's Info dictionary"
        return bytes.fromhex(found.group(1).decode()).decode("utf-16-be")
    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)


def test_the_report_is_served_as_pdf_and_printed_once(site, tmp_path):
    aid = site["hazard"]
    report = site["page"].get(f"/analyses/{aid}/report").text
    title = unescape(re.search(r"<title>(.*?)</title>", report, re.DOTALL).group(1)).strip()
    start = time.perf_counter()
    r = site["api"].get(f"/api/analyses/{aid}/report.pdf", headers=site["token"])
    first = time.perf_counter() - start
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF")
    assert title in _pdf_text(r.content, tmp_path)
    # The second request (the page's link) comes from the cache: same bytes, at once.
    start = time.perf_counter()
    again = site["page"].get(f"/analyses/{aid}/report.pdf")
    second = time.perf_counter() - start
    assert again.status_code == 200 and again.content == r.content
    assert second < min(1.0, first / 5), (first, second)
    assert again.headers["etag"] == r.headers["etag"]


# --- the analysis page's block, signed or not --------------------------------------------------


def _links(html: str) -> dict[str, list[str]]:
    block = html.split('<section id="downloads">', 1)[1].split("</section>", 1)[0]
    out: dict[str, list[str]] = {}
    for href, kind in re.findall(r'href="([^"]+)" data-download="([a-z]+)"', block):
        out.setdefault(kind, []).append(unescape(href))
    return out


def test_the_analysis_page_links_every_download_also_once_signed_off(site):
    aid = site["grading"]
    links = _links(site["page"].get(f"/analyses/{site['hazard']}").text)
    hazard = site["hazard"]
    assert links["xlsx"] == [f"/analyses/{hazard}/workbook.xlsx"]
    assert links["csv"] == [f"/analyses/{hazard}/prism.csv"]
    assert links["pdf"] == [f"/analyses/{hazard}/report.pdf"]
    assert links["html"] == [f"/analyses/{hazard}/report?download=true"]
    assert f"/analyses/{hazard}/tables/samples.csv" in links["table"]

    r = site["api"].post(
        f"/api/analyses/{aid}/sign-off",
        json={"meaning": "approved", "username": "root", "password": PASSWORD},
        headers=site["admin"],
    )
    assert r.status_code == 200, r.text
    page = site["page"].get(f"/analyses/{aid}").text
    links = _links(page)
    assert links["xlsx"] == [f"/analyses/{aid}/workbook.xlsx"]
    for href in links["xlsx"] + links["table"]:
        assert site["page"].get(href).status_code == 200, href
    # The About sheet carries the signature: the manifest rows when the store keeps
    # signatures (revision 0006), else the sign-off of the analysis.
    about = _about(_workbook(site["page"].get(f"/analyses/{aid}/workbook.xlsx").content))
    assert about["Status"][0] == "signed off"
    with site["store"].reader() as session:
        signed = session.scalars(select(Signature).where(Signature.analysis_id == aid)).all()
    if signed:
        assert about["signed by"][0] == "meaning"  # the manifest's header row
        assert about["root"][0] == signed[0].meaning
    else:
        assert about["signed off by"][0] == "root"


def test_downloads_need_a_signed_in_user_and_an_analysis_they_can_see(site):
    api, token, aid = site["api"], site["token"], site["hazard"]
    for what in ("workbook.xlsx", "report.pdf", "prism.csv"):
        assert api.get(f"/api/analyses/{aid}/{what}").status_code == 401
        assert api.get(f"/api/analyses/999/{what}", headers=token).status_code == 404
    anonymous = TestClient(site["app"])
    r = anonymous.get(f"/analyses/{aid}/workbook.xlsx", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/sign-in")


# --- MABEL ------------------------------------------------------------------------------------


def _cli_mabel(args: list[str], out: Path) -> pd.DataFrame:
    from cytosafe.cli import app as cli

    result = CliRunner().invoke(cli, ["mabel", *args, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return pd.read_csv(out / "fih_dose.csv")


def _page_approaches(html: str) -> pd.DataFrame:
    table = html.split('id="approaches"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(
        r'<tr><td>(.*?)</td><td class="n" data-label="[^"]*">(.*?)</td>'
        r'<td class="n" data-label="[^"]*">(.*?)</td>',
        table,
    )
    return pd.DataFrame(rows, columns=["approach", "dose_ug_per_kg", "dose_mg"]).assign(
        approach=lambda f: f["approach"].map(unescape),
        dose_ug_per_kg=lambda f: f["dose_ug_per_kg"].astype(float),
        dose_mg=lambda f: f["dose_mg"].astype(float),
    )


def test_the_mabel_page_answers_as_the_command_does(site, tmp_path):
    form = {
        "ecx": "0.35",
        "ecx_unit": "ug/mL",
        "ecx_percent": "20",
        "kd": "1",
        "kd_unit": "nM",
        "noael": "10",
        "species": "monkey",
        "body_weight": "70",
    }
    cli = _cli_mabel(
        "--ecx 0.35 --ecx-unit ug/mL --ecx-percent 20 --kd 1 --kd-unit nM --noael 10 "
        "--species monkey --body-weight 70".split(),
        tmp_path / "mabel",
    )
    r = site["page"].get("/mabel", params=form)
    assert r.status_code == 200, r.text
    html = r.text
    # The answer first: the recommended dose, its approach and citations, before the form.
    assert html.index('id="answer"') < html.index('id="steps"') < html.index('id="form"')
    best = cli[cli["recommended"]].iloc[0]
    shown = float(re.search(r'data-dose-ug-per-kg="([^"]+)"', html).group(1))
    assert shown == pytest.approx(best["dose_ug_per_kg"], rel=1e-5)
    answer = html.split('id="answer"', 1)[1].split('<div class="table-wrap"', 1)[0]
    assert best["approach"] in unescape(answer)
    assert "EMA 2017" in answer
    # Every approach, as the command's table (shown to 4 significant digits).
    page = _page_approaches(html)
    assert page["approach"].tolist() == cli["approach"].tolist()
    for shown, want in zip(page["dose_ug_per_kg"], cli["dose_ug_per_kg"], strict=True):
        assert shown == pytest.approx(want, rel=5e-4)
    # The steps of each approach, with formulas and sources.
    for approach in cli["approach"]:
        assert f'data-approach="{approach}"' in unescape(html)


def test_the_mabel_page_takes_the_most_sensitive_assay_of_a_stored_analysis(site, tmp_path):
    # As `cytosafe mabel --potency potency.csv --treatment TA-1`, on the stored table.
    potency = tmp_path / "potency.csv"
    stored_table(site["store"], site["hazard"], "potency").to_csv(potency, index=False)
    cli = _cli_mabel(
        ["--potency", str(potency), "--treatment", "TA-1", "--aggregate", "median"],
        tmp_path / "mabel",
    )
    params = {"analysis": str(site["hazard"]), "treatment": "TA-1", "aggregate": "median"}
    r = site["page"].get("/mabel", params=params)
    assert r.status_code == 200, r.text
    shown = float(re.search(r'data-dose-ug-per-kg="([^"]+)"', r.text).group(1))
    assert shown == pytest.approx(cli["dose_ug_per_kg"].iloc[0], rel=1e-5)
    assert f"{EXAMPLE_STUDY} · hazard analysis {site['hazard']}" in unescape(r.text)
    # A test article the table does not have: the field is named.
    r = site["page"].get("/mabel", params={**params, "treatment": "TA-9"})
    alert = unescape(re.search(r'class="flash error"[^>]*>([^<]*)<', r.text).group(1))
    assert r.status_code == 422 and alert.startswith("Test article in that analysis:"), alert


def test_the_mabel_page_reports_the_published_tgn1412_occupancy(site):
    # Waibler et al. 2008 (J Allergy Clin Immunol 122:890): the UK Expert Scientific Group
    # (Duff 2006) calculated about 86.2% to 90.9% CD28 occupancy at the 0.1 mg/kg TGN1412
    # trial dose; Hanke 2006 (Lancet 368:1569) gives KD about 2 nM. The page's planned-dose
    # row (150 kDa, plasma 40 mL/kg) lands inside that range.
    params = {"kd": "2", "kd_unit": "nM", "dose": "0.1", "dose_unit": "mg/kg", "mw": "150"}
    html = site["page"].get("/mabel", params=params).text
    table = html.split('data-approach="receptor occupancy at a dose"', 1)[1].split("</table>")[0]
    last = re.findall(
        r'<td class="n" data-label="Value">([^<]+)</td><td data-label="Unit">([^<]*)</td>', table
    )[-1]
    assert last[1] == "%"
    assert 86.2 <= float(last[0]) <= 90.9


def test_a_bad_mabel_input_is_a_message_naming_the_field(site):
    r = site["page"].get("/mabel", params={"ecx": "abc"})
    assert r.status_code == 422
    alert = unescape(re.search(r'class="flash error"[^>]*>([^<]*)<', r.text).group(1))
    assert alert.startswith("ECx of the most sensitive assay:") and "'abc'" in alert
    assert 'name="ecx" value="abc" aria-invalid="true"' in r.text
    r = site["page"].get("/mabel", params={"noael": "10"})
    alert = unescape(re.search(r'class="flash error"[^>]*>([^<]*)<', r.text).group(1))
    assert r.status_code == 422 and alert.startswith("Species of the NOAEL:")


# --- simulation -------------------------------------------------------------------------------


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]{64})"', html).group(1)


def test_the_simulation_page_simulates_the_regimens_and_says_simulated(site):
    from cytosafe.translate.simulation import run_regimen_file
    from cytosafe.web.pages_tools import regimen_toml

    client = site["page"]
    html = client.get("/simulate").text
    assert "SIMULATED" in html and 'name="doses1"' in html
    form = {
        "days": "21",
        "subjects": "40",
        "seed": "7",
        "threshold": "100",
        "ec50": "1.2",
        "ec50_unit": "ug/mL",
        "unit": "mg",
        "route": "iv",
        "infusion_hours": "4",
        "name1": "flat",
        "doses1": "1: 10, 8: 10",
        "name2": "step-up",
        "doses2": "1: 0.1, 4: 1, 8: 10",
    }
    r = client.post("/simulate", data={**form, "csrf": _csrf(html)})
    assert r.status_code == 200, r.text
    body = r.text
    assert body.index('id="result"') < body.index('id="form"')  # the answer first
    rows = re.findall(r"<tr><td>([^<]+)</td>((?:<td[^>]*class=\"n\"[^>]*>[^<]*</td>)+)</tr>", body)
    assert [name for name, _ in rows] == ["flat", "step-up"]
    # The same simulation as `cytosafe simulate` runs on the page's regimen file.
    toml = unescape(re.search(r'<pre class="toml">(.*?)</pre>', body, re.DOTALL).group(1))
    assert toml == regimen_toml(form)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "regimen.toml").write_text(toml, encoding="utf-8")
        run = run_regimen_file(Path(tmp) / "regimen.toml", search=False, chunk_size=None)
    peaks = run.result.comparison()["peak_il6_median"].tolist()
    shown = [
        float(re.findall(r'<td[^>]*class="n"[^>]*>([^<]*)</td>', cells)[4]) for _, cells in rows
    ]
    assert shown == pytest.approx([float(f"{p:.3g}") for p in peaks])
    # Labelled SIMULATED: the banner, each section and the figure.
    assert body.count('<span class="badge warn">SIMULATED</span>') == 2
    assert "SIMULATED · median, 90% band" in body


def test_a_bad_regimen_is_a_message_naming_the_field(site):
    client = site["page"]
    csrf = _csrf(client.get("/simulate").text)
    r = client.post(
        "/simulate", data={"csrf": csrf, "days": "10", "name1": "late", "doses1": "1: 1, 30: 10"}
    )
    assert r.status_code == 422
    alert = unescape(re.search(r'class="flash error"[^>]*>([^<]*)<', r.text).group(1))
    assert alert.startswith("Regimen 1, dose 2 (day):"), alert
    r = client.post("/simulate", data={"csrf": csrf, "name1": "x", "doses1": "1 2 3"})
    alert = unescape(re.search(r'class="flash error"[^>]*>([^<]*)<', r.text).group(1))
    assert r.status_code == 422 and alert.startswith("Regimen 1, dose 1:"), alert
    r = client.post("/simulate", data={"csrf": "0" * 64, "name1": "x", "doses1": "1: 1"})
    assert r.status_code == 403
