"""Markdown and self-contained HTML for an assay recommendation.

:func:`cytosafe.assays.recommend` decides; this module only writes the decision down (the
ranking, the gaps, controls, panel and sources), so the assays package imports no face.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
    lines += ["", "## Readout panel", ""]
    for g in readout_groups(rec.panel):
        lines.append(f"- **{g['title']}**: {', '.join(g['analytes'])}")
    lines.append("")
    for p in rec.panel_sources:
        lines.append(
            f"- {p['panel']}: {', '.join(p['analytes'])} ({kb.cite(tuple(p['citations']))})"
        )
    lines += ["", "## References", ""]
    lines += [f"- [{k}] {kb.references[k].formatted()}" for k in rec.citations]
    lines.append("")
    return "\n".join(lines)


#: Readouts of the knowledge base's panels that are not soluble mediators, by kind. CD69
#: (early) and CD25 (IL-2 receptor alpha, later) are T-cell surface activation markers read
#: by flow cytometry, not cytokines (Reddy 2004); proliferation and killing are cell
#: functions. Everything else a panel names is measured in the supernatant.
READOUT_KINDS: dict[str, tuple[str, ...]] = {
    "activation_markers": ("CD69", "CD25"),
    "cellular": ("lymphoproliferation", "target-cell killing"),
}
_READOUT_GROUPS = {
    "soluble": (
        "Cytokines and other soluble mediators",
        "In the culture supernatant, by multiplex immunoassay (cytokines, chemokines, "
        "granzyme B, endothelial markers).",
    ),
    "activation_markers": (
        "T-cell activation markers",
        "On the T cells, by flow cytometry: CD69 rises within hours of activation, CD25 "
        "(the IL-2 receptor alpha chain) within a day or two (Reddy 2004). Not cytokines.",
    ),
    "cellular": ("Cellular readouts", "Cell functions measured on the culture."),
}
_MARKER_REFERENCES = (
    "Reddy M, Eirikis E, Davis C, Davis HM, Prabhakar U. Comparative analysis of lymphocyte "
    "activation marker expression and cytokine secretion profile in stimulated human "
    "peripheral blood mononuclear cell cultures: an in vitro model to monitor cellular immune "
    "function. J Immunol Methods. 2004;293(1-2):127-142. (CD69 and CD25 as activation "
    "markers.)",
)


def readout_groups(panel: list[str]) -> list[dict]:
    """The panel's readouts grouped by kind: soluble mediators (cytokines and the like),
    T-cell activation markers (CD69, CD25), cellular readouts; empty groups left out."""
    kind_of = {a.lower(): k for k, names in READOUT_KINDS.items() for a in names}
    groups: dict[str, list[str]] = {k: [] for k in _READOUT_GROUPS}
    for a in panel:
        groups[kind_of.get(a.lower(), "soluble")].append(a)
    return [
        {"key": k, "title": _READOUT_GROUPS[k][0], "note": _READOUT_GROUPS[k][1], "analytes": v}
        for k, v in groups.items()
        if v
    ]


def recommendation_html(rec: Recommendation) -> str:
    """The recommendation as one self-contained HTML page (the reports' stylesheet)."""
    from cytosafe import __version__
    from cytosafe.report.page import environment

    kb = rec.kb
    groups = readout_groups(rec.panel)
    return (
        environment()
        .get_template("recommend.html")
        .render(
            rec=rec,
            rows=rec.ranking.to_dict("records"),
            groups=groups,
            marker_refs=_MARKER_REFERENCES
            if any(g["key"] == "activation_markers" for g in groups)
            else (),
            cite=lambda keys: kb.cite(tuple(keys)),
            ref=lambda k: kb.references[k].formatted(),
            mech_name=lambda m: kb.mechanisms[m].name,
            version=__version__,
        )
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
