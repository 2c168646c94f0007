"""An electronic signature in a real browser (issue 14, "How it is checked": "A browser
test signs an analysis with password re-entry and checks that the manifest appears in the
report"): a study director opens a quantification in Chromium, chooses the meaning,
enters a comment, the user name (the session's first signature) and the password again,
and signs; the manifest (printed name, user name, date and time in UTC, meaning, comment)
is then on the analysis page, at the top of the served report (which still runs under its
content security policy) and in the report's PDF (text read back with pdftotext)."""

from __future__ import annotations

import re
import shutil
import subprocess

import httpx
import pytest

from cytosafe.report import render_qc_report
from cytosafe.report.hazard import CHROMIUM, CHROMIUM_ARGS
from cytosafe.report.signature import MANIFEST_ID, write_signed_pdf
from cytosafe.store import Store, add_to_group, create_study, create_user
from cytosafe.web import create_app
from cytosafe.workflows import store_quantification
from live_server import serve_app
from store_backends import STUDY, quantified

PASSWORD = "correct horse battery"
COMMENT = "Approved for the IND package"
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  (window.top.__csp || window.__csp).push(e.violatedDirective + " " + (e.blockedURI || ""));
});
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A live server with a study director Dora Director and a completed quantification
    of the example ELISA plate with its QC report."""

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('sign') / 'store.sqlite3'}")
    create_user(store, "root", role="admin", password=PASSWORD)
    create_user(store, "dora", role="study_director", password=PASSWORD, by="root",
                display_name="Dora Director")  # fmt: skip
    add_to_group(store, "dora", "lab-a", by="root")
    create_study(store, STUDY, user="dora", group="lab-a")
    result = quantified()
    analysis = store_quantification(
        store, result, study=STUDY, user="dora", report=render_qc_report(result)
    ).id
    app = create_app(store)
    base, stop = serve_app(app)
    yield base, analysis
    stop()
    store.close()


def _pdf_text(path) -> str:
    if shutil.which("pdftotext"):
        done = subprocess.run(
            ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
        )
        return done.stdout
    from pypdf import PdfReader  # pragma: no cover - where poppler is not installed

    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def test_signing_with_password_reentry_puts_the_manifest_on_the_page_report_and_pdf(live, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, analysis = live
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(RECORD_VIOLATIONS)
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text))
            page.goto(f"{base}/sign-in")
            page.fill("input[name=username]", "dora")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r"/studies$"))

            page.goto(f"{base}/analyses/{analysis}")
            form = page.locator("#sign-form")
            # The page opens with the answer: the sign form waits, collapsed, below the
            # results (issue 15 item 1), and opens at a click.
            expect(form).to_be_hidden()
            expect(page.locator("#signature-manifest")).to_have_count(0)
            below = page.locator("#sign").bounding_box()["y"]
            assert below > page.locator("#report").bounding_box()["y"]
            page.locator("#sign-details > summary").click()
            expect(form).to_be_visible()
            # A wrong password first: refused, nothing signed.
            form.locator("select[name=meaning]").select_option("approved")
            form.locator("input[name=username]").fill("dora")
            form.locator("input[name=password]").fill("not the password at all")
            form.locator("button[type=submit]").click()
            expect(page.get_by_role("alert")).to_contain_text("password of 'dora' is wrong")
            expect(page.locator("#signature-manifest")).to_have_count(0)
            # Refused, the form is open again to correct the password.
            expect(page.locator("#sign-details")).to_have_attribute("open", "")

            form = page.locator("#sign-form")
            form.locator("select[name=meaning]").select_option("approved")
            form.locator("textarea[name=comment]").fill(COMMENT)
            form.locator("input[name=username]").fill("dora")
            form.locator("input[name=password]").fill(PASSWORD)
            form.locator("button[type=submit]").click()
            page.wait_for_url(re.compile(rf"/analyses/{analysis}#signatures$"))

            manifest = page.locator("#signature-manifest")
            expect(manifest).to_be_visible()
            row = manifest.locator("tbody tr")
            expect(row).to_have_count(1)
            expect(row).to_contain_text("Dora Director")
            expect(row).to_contain_text("dora")
            expect(row).to_contain_text("Approved")
            expect(row).to_contain_text(COMMENT)
            expect(row.locator("time")).to_have_text(
                re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
            )
            expect(page.locator("#sign-form")).to_have_count(0)  # final: nothing to sign
            expect(page.locator("#signed")).to_have_text(
                re.compile(r"^by dora on \d{4}-\d\d-\d\d \d\d:\d\d UTC$")
            )
            page.screenshot(path=tmp_path / "signed.png", full_page=True)

            # The served report: the manifest at the top, and its scripts still run.
            page.goto(f"{base}/analyses/{analysis}/report")
            block = page.locator(f"#{MANIFEST_ID}")
            expect(block).to_be_visible()
            expect(block).to_contain_text("Dora Director")
            expect(block).to_contain_text("Approved")
            expect(block).to_contain_text(COMMENT)
            expect(block).to_contain_text("UTC")
            expect(page.locator("html.js")).to_have_count(1)
            box = block.bounding_box()
            assert box is not None and box["y"] < 200  # at the top of the report
            assert page.evaluate("window.__csp") == []
            assert not [m for m in console if "Content Security Policy" in m], console

            # Its PDF, printed by the report layer's Chromium writer.
            cookies = {c["name"]: c["value"] for c in context.cookies()}
            html = httpx.get(f"{base}/analyses/{analysis}/report", cookies=cookies).content
            assert f'id="{MANIFEST_ID}"'.encode() in html
            pdf = write_signed_pdf(html, tmp_path / "signed.pdf", browser=browser)
            context.close()
        finally:
            browser.close()
    text = " ".join(_pdf_text(pdf).split())
    assert "Electronic signatures" in text
    assert re.search(
        r"Approved by Dora Director \(user name dora\) on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
        text,
    ), text[:600]
    assert f"Comment: {COMMENT}" in text
    assert text.index("Electronic signatures") < text.index("QC")
