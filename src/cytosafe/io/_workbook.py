"""Workbooks written the same, byte for byte, on every machine: shared by the writers.

openpyxl serialises a workbook's XML through ``lxml`` when it is installed and through the
standard library's ``xml.etree`` otherwise, and the two spell the same document
differently (``<a/>`` or ``<a />``, namespaces declared on the root or where first used).
Whether ``lxml`` is present depends on what else is installed (``allotropy`` brings it),
so :func:`save_workbook` rewrites every XML part in its canonical form (W3C Canonical XML
2.0, https://www.w3.org/TR/xml-c14n2/, as :func:`xml.etree.ElementTree.canonicalize`
writes it), which is one text for one document. It also stamps the document dates and
the zip entries with :func:`~cytosafe.io._values.export_time` when ``SOURCE_DATE_EPOCH``
is set (the reproducible-builds convention), instead of the time of writing.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path
from xml.etree.ElementTree import canonicalize

from cytosafe.io._values import export_time

__all__ = ["save_workbook"]

_CORE_DATES = re.compile(r"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)")


def save_workbook(book, path: str | Path) -> Path:
    """Save an openpyxl workbook to ``path`` with canonical XML parts (module notes).

    Parameters
    ----------
    book : openpyxl.Workbook
        The workbook.
    path : str or Path
        Where to write it (the callers write to a temporary file of
        :func:`cytosafe._atomic.atomic_write`).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    buffer = io.BytesIO()
    book.save(buffer)
    pinned = bool(os.environ.get("SOURCE_DATE_EPOCH"))
    when = export_time() if pinned else None
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith((".xml", ".rels")):
                text = canonicalize(data)
                if stamp is not None and info.filename == "docProps/core.xml":
                    text = _CORE_DATES.sub(rf"\g<1>{stamp}\g<3>", text)
                data = text.encode("utf-8")
            entry = zipfile.ZipInfo(
                info.filename,
                date_time=when.timetuple()[:6] if when is not None else info.date_time,
            )
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o600 << 16
            dst.writestr(entry, data)
    path.write_bytes(out.getvalue())
    return path
