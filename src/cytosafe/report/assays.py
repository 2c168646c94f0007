"""Markdown and self-contained HTML for an assay recommendation.

:func:`cytosafe.assays.recommend` decides; this module only writes the decision down (the
ranking, the gaps, controls, panel and sources), so the assays package imports no face.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from cytosafe._atomic import atomic_write_text
from cytosafe.errors import InputError

if TYPE_CHECKING:
    from cytosafe.assays.recommend import Recommendation

__all__ = ["recommendation_html", "recommendation_markdown", "write_recommendation"]


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def recommendation_markdown(rec: Recommendation) -> str:
    """The recommendation as a Markdown document (ranking, gaps, controls, panel, sources)."""
    kb = rec.kb
    lines = [
        f"# Cytokine release assay recommendation: {rec.modality_name}",
        "",
        f"- Modality: `{rec.modality}`"
        + (f" · target: `{rec.target}`" if rec.target else "")
        + (f" · Fc: `{rec.fc}`" if rec.fc else ""),
        f"- Intended use: `{rec.intended_use}` · knowledge base {rec.kb_version}",
        "",
        "## Mechanisms the molecule can trigger",
        "",
        "| mechanism | role | why | sources |",
        "|---|---|---|---|",
    ]
    for m in rec.mechanisms:
        src = kb.cite(m.citations) + ("" if m.confirmed else " (unconfirmed)")
        lines.append(f"| {m.name} | {m.role} | {_md_cell(m.reason)} | {_md_cell(src)} |")
    lines += [
        "",
        "## Ranked formats",
        "",
        "| rank | format | score | coverage | chosen | reasons |",
        "|---|---|---|---|---|---|",
    ]
    for r in rec.ranking.itertuples(index=False):
        lines.append(
            f"| {r.rank} | {_md_cell(r.name)} | {r.score:.2f} | {r.coverage:.2f} | "
            f"{'**yes**' if r.chosen else ''} | {_md_cell('; '.join(r.reasons))} |"
        )
    lines += ["", "## Gaps and notes", ""]
    if rec.uncovered:
        names = ", ".join(kb.mechanisms[m].name for m in rec.uncovered)
        lines.append(f"- **Not covered by the chosen formats:** {names}")
    lines += [f"- {_md_cell(n)}" for n in rec.notes] or ["- none"]
    lines += ["", "## Controls", "", "| role | control | sources |", "|---|---|---|"]
    for c in rec.controls:
        src = kb.cite(tuple(c["citations"])) + (
            "" if c["status"] == "confirmed" else " (unconfirmed)"
        )
        lines.append(f"| {c['role']} | {_md_cell(c['name'])} | {_md_cell(src)} |")
    lines += ["", "## Cytokine panel", "", ", ".join(rec.panel), ""]
    for p in rec.panel_sources:
        lines.append(
            f"- {p['panel']}: {', '.join(p['analytes'])} ({kb.cite(tuple(p['citations']))})"
        )
    lines += ["", "## References", ""]
    lines += [f"- [{k}] {kb.references[k].formatted()}" for k in rec.citations]
    lines.append("")
    return "\n".join(lines)


_TEMPLATE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>CRA recommendation: {{ rec.modality_name }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem;color:#222}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f3f3f3} tr.chosen{background:#eef7ee} .unconfirmed{color:#a15c00}
</style></head><body>
<h1>Cytokine release assay recommendation: {{ rec.modality_name }}</h1>
<p>Modality <code>{{ rec.modality }}</code>{% if rec.target %} · target <code>{{ rec.target }}</code>{% endif %}
{% if rec.fc %} · Fc <code>{{ rec.fc }}</code>{% endif %} · intended use <code>{{ rec.intended_use }}</code>
· knowledge base {{ rec.kb_version }}</p>
<h2>Mechanisms</h2>
<table><tr><th>mechanism</th><th>role</th><th>why</th><th>sources</th></tr>
{% for m in rec.mechanisms %}<tr><td>{{ m.name }}</td><td>{{ m.role }}</td><td>{{ m.reason }}</td>
<td>{{ cite(m.citations) }}{% if not m.confirmed %} <span class="unconfirmed">(unconfirmed)</span>{% endif %}</td></tr>
{% endfor %}</table>
<h2>Ranked formats</h2>
<table><tr><th>rank</th><th>format</th><th>score</th><th>coverage</th><th>reasons</th><th>incubation</th><th>readouts</th></tr>
{% for r in rows %}<tr class="{{ 'chosen' if r.chosen else '' }}"><td>{{ r.rank }}</td><td>{{ r.name }}{% if r.chosen %} <strong>(chosen)</strong>{% endif %}</td>
<td>{{ '%.2f'|format(r.score) }}</td><td>{{ '%.2f'|format(r.coverage) }}</td><td><ul>{% for x in r.reasons %}<li>{{ x }}</li>{% endfor %}</ul></td>
<td>{{ r.incubation }}</td><td>{{ r.readouts|join(', ') }}</td></tr>
{% endfor %}</table>
<h2>Gaps and notes</h2><ul>
{% for m in rec.uncovered %}<li><strong>Not covered by the chosen formats:</strong> {{ mech_name(m) }}</li>{% endfor %}
{% for n in rec.notes %}<li>{{ n }}</li>{% endfor %}</ul>
<h2>Controls</h2>
<table><tr><th>role</th><th>control</th><th>sources</th></tr>
{% for c in rec.controls %}<tr><td>{{ c.role }}</td><td>{{ c.name }}</td><td>{{ cite(c.citations) }}</td></tr>{% endfor %}</table>
<h2>Cytokine panel</h2><p>{{ rec.panel|join(', ') }}</p>
<h2>References</h2><ol>
{% for k in rec.citations %}<li id="ref-{{ k }}">[{{ k }}] {{ ref(k) }}</li>{% endfor %}</ol>
</body></html>
"""
)


def recommendation_html(rec: Recommendation) -> str:
    """The recommendation as one self-contained HTML page."""
    kb = rec.kb
    return _TEMPLATE.render(
        rec=rec,
        rows=rec.ranking.to_dict("records"),
        cite=lambda keys: kb.cite(tuple(keys)),
        ref=lambda k: kb.references[k].formatted(),
        mech_name=lambda m: kb.mechanisms[m].name,
    )


def write_recommendation(rec: Recommendation, path: str | Path, *, kind: str | None = None) -> Path:
    """Write the recommendation to ``path`` as HTML or Markdown, whole or not at all.

    ``kind`` is ``"html"`` or ``"markdown"``; by default it follows the suffix (``.html`` or
    ``.htm`` for HTML, anything else Markdown).
    """
    path = Path(path)
    if kind is None:
        kind = "html" if path.suffix.lower() in (".html", ".htm") else "markdown"
    if kind not in ("html", "markdown"):
        raise InputError(
            f"unknown report format '{kind}'", field="format", expected="html | markdown"
        )
    text = recommendation_html(rec) if kind == "html" else recommendation_markdown(rec)
    return atomic_write_text(path, text)
