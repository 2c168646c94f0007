"""The page every report is rendered into: one Jinja environment with the shared filters.

The templates live in ``cytosafe/report/templates`` (``_base.html`` with the styles and
scripts every report inlines, one template per report); :func:`environment` loads them
with autoescaping and the filters the templates use (``plural``, ``cited``).
"""

from __future__ import annotations

import re

import jinja2
from markupsafe import Markup

__all__ = ["environment", "link_citations"]


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
