"""The signature manifest of a signed report, and the signed report's PDF.

21 CFR 11.50(b): the printed name of the signer, the date and time of the signature and
its meaning "shall be subject to the same controls as for electronic records and shall
be included as part of any human readable form of the electronic record (such as
electronic display or printout)". A stored report is never changed (its SHA-256 is in
the audit trail); :func:`with_manifest` serves it with the manifest inserted at the top
of its body, and :func:`write_signed_pdf` prints that to PDF with the report layer's
Chromium writer (:func:`cytosafe.report.hazard.write_hazard_pdf`).

The manifest is plain HTML and CSS, with no script, so the reports' content security
policy, which lets only their own inline scripts run by hash
(:func:`cytosafe.web.security.report_policy`), is the same for the signed report.
Signatures are plain mappings (as :func:`cytosafe.store.signatures.list_signatures`
gives them): ``name`` (printed name), ``username``, ``signed_at`` (an aware datetime),
``meaning``, ``label``, ``statement``, ``comment`` and ``signed_sha256``.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST_ID", "manifest_html", "utc_text", "with_manifest", "write_signed_pdf"]

#: The id of the manifest's element in a signed report.
MANIFEST_ID = "cs-signature-manifest"

_STYLE = (
    "<style>"
    f"#{MANIFEST_ID}{{border:2px solid #1f3a5f;border-radius:6px;padding:10px 14px;"
    "margin:8px 8px 18px;font:13px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;"
    "color:#111;background:#fff;break-inside:avoid;page-break-inside:avoid}"
    f"#{MANIFEST_ID} h2{{font-size:15px;margin:0 0 6px}}"
    f"#{MANIFEST_ID} ol{{margin:0;padding-left:20px}}"
    f"#{MANIFEST_ID} li{{margin:0 0 6px}}"
    f"#{MANIFEST_ID} .statement{{color:#333}}"
    f"#{MANIFEST_ID} .sha{{font:11px ui-monospace,monospace;word-break:break-all;color:#444}}"
    f"#{MANIFEST_ID} p{{margin:6px 0 0;color:#333}}"
    "</style>"
)
_BODY = re.compile(rb"<body\b[^>]*>", re.IGNORECASE)


def utc_text(at: dt.datetime) -> str:
    """A signature's time as the manifest prints it: ``2026-12-03 15:42:07 UTC``."""
    at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def manifest_html(signatures: Iterable[Mapping[str, Any]], *, final: bool = False) -> str:
    """The manifest block: one item per signature (meaning, printed name, user name, date
    and time in UTC, the signer's statement, comment, SHA-256 of what was signed).

    ``final``: the analysis is signed off (the heading says so).
    """
    items = []
    for s in signatures:
        meaning = escape(str(s.get("label") or s["meaning"]))
        statement = escape(str(s.get("statement") or ""))
        comment = escape(str(s.get("comment") or ""))
        sha = escape(str(s.get("signed_sha256") or ""))
        # One signature per item, each field named: it reads (and prints, and extracts
        # as text) as a sentence, where a six-column table would wrap every cell on A4.
        items.append(
            "<li>"
            f'<b data-meaning="{escape(str(s["meaning"]))}">{meaning}</b> by '
            f"<span data-name>{escape(str(s['name']))}</span> "
            f"(user name <code>{escape(str(s['username']))}</code>) on "
            f"<time>{escape(utc_text(s['signed_at']))}</time>"
            + (f'<br><span class="statement">{statement}</span>' if statement else "")
            + (f"<br>Comment: {comment}" if comment else "")
            + (f'<br><span class="sha">SHA-256 signed: {sha}</span>' if sha else "")
            + "</li>"
        )
    heading = "Electronic signatures" + (" — signed off, final" if final else "")
    return (
        f'<section id="{MANIFEST_ID}" aria-label="Signature manifest">{_STYLE}'
        f"<h2>{heading}</h2><ol>{''.join(items)}</ol>"
        "<p>Each signature was executed with the signer's password (21 CFR 11.200) and is "
        "linked to this record by the SHA-256 of its tables and report "
        "(<code>cytosafe audit verify</code> checks them).</p></section>"
    )


def with_manifest(
    html: bytes, signatures: Iterable[Mapping[str, Any]], *, final: bool = False
) -> bytes:
    """``html`` (a stored report) with the manifest inserted at the top of its body
    (at the very top when it has no ``<body>``); unchanged when there is no signature."""
    signatures = list(signatures)
    if not signatures:
        return html
    block = manifest_html(signatures, final=final).encode("utf-8")
    match = _BODY.search(html)
    at = match.end() if match else 0
    return html[:at] + block + html[at:]


def write_signed_pdf(
    html: bytes,
    pdf_path: str | Path,
    *,
    browser: Any = None,
) -> Path:
    """Print a signed report (``html`` as :func:`with_manifest` made it) to PDF with the
    report layer's Chromium writer; ``browser``: a launched Playwright browser to use."""
    from cytosafe.report.hazard import write_hazard_pdf

    with tempfile.TemporaryDirectory(prefix="cytosafe-signed-") as folder:
        source = Path(folder) / "report.html"
        source.write_bytes(html)
        return write_hazard_pdf(source, pdf_path, browser=browser)
