"""Suite-wide settings: the tests never write to the user's own cache directory.

The report packer keeps packed plotly.js under ``CYTOSAFE_CACHE_DIR`` (see
:func:`cytosafe.report.page._cache_dir`); each test process gets a private one, removed at
the end, so a run is hermetic and parallel workers (pytest-xdist) never share a file.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir():
    folder = tempfile.mkdtemp(prefix="cytosafe-cache-")
    before = os.environ.get("CYTOSAFE_CACHE_DIR")
    os.environ["CYTOSAFE_CACHE_DIR"] = folder
    yield folder
    if before is None:
        os.environ.pop("CYTOSAFE_CACHE_DIR", None)
    else:
        os.environ["CYTOSAFE_CACHE_DIR"] = before
    shutil.rmtree(folder, ignore_errors=True)
