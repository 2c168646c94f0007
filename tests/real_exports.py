"""Where the real vendor exports are, shared by the tests that validate against them.

The files live in ``../shared/data/real-exports/`` beside the repository (CI clones the
repository there) and are never copied into it; ``SOURCES.md`` in that folder says where
each comes from and under which licence.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-exports"


def real(path: Path | str) -> Path:
    """The path of a real export, failing (never skipping) the test when it is absent."""
    path = REAL / path
    if not path.is_file():
        pytest.fail(
            f"real export {path} is missing: the shared data folder "
            "(../shared/data/real-exports/, see its SOURCES.md) must be next to the "
            "repository; these tests validate CytoSafe against it",
            pytrace=False,
        )
    return path
