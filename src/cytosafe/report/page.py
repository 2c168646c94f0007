"""The page every report is rendered into: one Jinja environment with the shared filters.

The templates live in ``cytosafe/report/templates`` (``_base.html`` with the styles and
scripts every report inlines, one template per report); :func:`environment` loads them
with autoescaping and the filters the templates use (``plural``, ``cited``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import jinja2
from markupsafe import Markup

__all__ = ["environment", "link_citations", "simulated_reason"]


def environment() -> jinja2.Environment:
    """The Jinja environment of the report templates (autoescaped, strict, byte-stable)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cytosafe.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["plural"] = lambda n, word, many=None: (
        f"{n} {word}" if n == 1 else f"{n} {many or word + 's'}"
    )
    env.filters["cited"] = link_citations
    return env


def link_citations(text: str) -> Markup:
    """Escape ``text`` and turn its citation marks (``[1, 3]``) into links to the references."""

    def link(match: re.Match) -> str:
        nums = [n.strip() for n in match.group(1).split(",")]
        return "[" + ", ".join(f'<a href="#ref-{n}">{n}</a>' for n in nums) + "]"

    return Markup(re.sub(r"\[(\d+(?:, \d+)*)\]", link, str(Markup.escape(text))))


#: How many lines of an input's head are read for the writer's mark (the MSD "Comments" and
#: xPONENT "BatchDescription" rows are within the first 30).
_HEAD_LINES = 40
_WRITTEN_BY_CYTOSAFE = re.compile(r"written by cytosafe", re.IGNORECASE)
_SIMULATED = re.compile(r"\bSIMULATED\b", re.IGNORECASE)


def simulated_reason(
    *,
    sources: Iterable[object] = (),
    titles: Iterable[object] = (),
    flagged: bool = False,
    patient_ids: Iterable[object] = (),
) -> str:
    """Why a report's inputs are simulated (the shipped examples), in words; "" when not.

    Read from the data's own labels, never guessed from numbers:

    * ``flagged``: the study file says ``simulated = true``;
    * a title (a study's) names itself SIMULATED;
    * an input file's head says it was written by CytoSafe, not acquired on an instrument
      (the example generator's MSD ``Comments`` and xPONENT ``BatchDescription`` rows);
    * the README of an input's folder (or the folder above) is headed SIMULATED, as every
      shipped example folder is;
    * every patient id carries the example generator's ``SIM-`` prefix.
    """
    if flagged:
        return "the study file marks it as simulated (simulated = true)"
    for title in titles:
        if isinstance(title, str) and _SIMULATED.search(title):
            return f"the study calls itself simulated (“{title}”)"
    readmes = set()
    for source in sources:
        path = Path(str(source)) if isinstance(source, (str, Path)) else None
        if path is None or not path.is_file():
            continue
        if _WRITTEN_BY_CYTOSAFE.search(_head(path)):
            return f"its input {path.name} was written by CytoSafe, not acquired on an instrument"
        readmes.update(p / "README.md" for p in (path.parent, path.parent.parent) if p != p.parent)
    for readme in sorted(readmes):
        if readme.is_file():
            first = _head(readme, 1).strip()
            if _SIMULATED.search(first):
                return f"the README of its input folder says so (“{first.lstrip('# ')}”)"
    ids = [str(p) for p in patient_ids]
    if ids and all(p.startswith("SIM-") for p in ids):
        return "every patient id carries the simulated example's SIM- prefix"
    return ""


def _head(path: Path, lines: int = _HEAD_LINES) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            text = fh.read(65536)  # a binary file (a workbook) has no lines to stop at
    except OSError:
        return ""
    return "".join(text.splitlines(keepends=True)[:lines])
