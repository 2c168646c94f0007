"""The AOP as GraphML, Cytoscape JSON, and an SVG / self-contained HTML figure."""

from __future__ import annotations

import html
import json
from pathlib import Path

import networkx as nx
import pandas as pd

from cytosafe._atomic import atomic_write_text
from cytosafe.aop.graph import AdverseOutcomePathway

__all__ = ["aop_html", "aop_svg", "simulation_svg", "to_cytoscape_json", "to_graphml"]

_COLOURS = {"MIE": "#2e7d32", "KE": "#1565c0", "AO": "#c62828"}
_WIDTH = {"high": 3.2, "moderate": 2.0, "low": 1.0, "not specified": 1.0}


def _flat(attrs: dict) -> dict:
    """Scalar attributes only (lists joined by '; '); None and evidence lists dropped."""
    out = {}
    for k, v in attrs.items():
        if v is None or k == "evidence":
            continue
        if isinstance(v, list | tuple):
            v = "; ".join(map(str, v))
        out[k] = v
    return out


def to_graphml(aop: AdverseOutcomePathway, path: str | Path | None = None) -> str:
    """The pathway as GraphML (node and edge attributes as typed GraphML keys)."""
    g = aop.graph()
    flat = nx.DiGraph(**{k: v for k, v in g.graph.items() if v is not None})
    for n, d in g.nodes(data=True):
        flat.add_node(n, **_flat(d), n_evidence=len(d.get("evidence", ())))
    for u, v, d in g.edges(data=True):
        flat.add_edge(u, v, **_flat(d))
    text = "\n".join(nx.generate_graphml(flat, prettyprint=True)) + "\n"
    if path is not None:
        atomic_write_text(path, text)
    return text


def to_cytoscape_json(aop: AdverseOutcomePathway, path: str | Path | None = None) -> dict:
    """The pathway in Cytoscape.js JSON (``elements.nodes`` / ``elements.edges``).

    Each element carries its attributes in ``data`` and its event type (``MIE``, ``KE``,
    ``AO``) or ``feedback`` in ``classes``.
    """
    g = aop.graph()
    nodes = []
    for n, d in g.nodes(data=True):
        data = {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if k != "evidence"
        }
        data.update(id=n, name=d["short_name"], n_evidence=len(d.get("evidence", ())))
        nodes.append({"data": data, "classes": d["type"]})
    edges = []
    for u, v, d in g.edges(data=True):
        data = {k: (list(x) if isinstance(x, tuple) else x) for k, x in d.items()}
        data.update(id=f"{u}->{v}", source=u, target=v)
        edges.append({"data": data, "classes": "feedback" if d["feedback"] else "relationship"})
    doc = {
        "format_version": "1.0",
        "generated_by": "cytosafe",
        "data": {"name": aop.info.title, "key": aop.info.key, "shared_name": aop.info.short_name},
        "elements": {"nodes": nodes, "edges": edges},
    }
    if path is not None:
        atomic_write_text(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return doc


def _layers(aop: AdverseOutcomePathway) -> dict[str, int]:
    g = aop.graph(include_feedback=False)
    layer = {}
    for n in nx.topological_sort(g):
        preds = list(g.predecessors(n))
        layer[n] = 0 if not preds else 1 + max(layer[p] for p in preds)
    # An MIE sits just left of its nearest successor, so no edge crosses a column.
    for e in aop.events_of("MIE"):
        succ = [layer[s] for s in g.successors(e.key)]
        if succ:
            layer[e.key] = max(0, min(succ) - 1)
    ao = aop.adverse_outcome().key
    layer[ao] = max(layer.values())
    return layer


def aop_svg(
    aop: AdverseOutcomePathway,
    *,
    highlight: set[str] | None = None,
    modality: str | None = None,
    evidence: pd.DataFrame | None = None,
) -> str:
    """A layered SVG drawing: MIEs left, the AO right; edge width shows the weight of evidence.

    The drawing carries its legend (event types, filled = evidence of a response, edge
    width = weight of evidence, dashed = feedback) and scales to its container (at most
    its natural width, which fits a 1440 px screen).

    Parameters
    ----------
    highlight:
        Event keys drawn emphasised (e.g. the key events an assay showed).
    modality:
        Draw only the pathway of this modality's MIEs.
    evidence:
        An evidence table (:func:`~cytosafe.aop.evidence.evidence_table`): each event
        shows its numbers beside its colour, the most responding donors (or patients) of
        the test articles (``n/N``) and the positive controls' (``PC n/N``).
    """
    keep = set(aop.pathway_for(modality).nodes) if modality else set(aop.events)
    highlight = highlight or set()
    layer = {k: v for k, v in _layers(aop).items() if k in keep}
    columns: dict[int, list[str]] = {}
    for key in aop.events:
        if key in layer:
            columns.setdefault(layer[key], []).append(key)
    numbers = _numbers(evidence)
    # 7 columns of 160 px with 36 px gaps: 1376 px, inside a 1440 px screen with margins
    box_w, box_h, gap_x, gap_y, pad = 160, 58 if numbers else 46, 36, 22, 20
    n_rows = max(len(c) for c in columns.values())
    width = pad * 2 + len(columns) * box_w + (len(columns) - 1) * gap_x
    rows_bottom = pad + 30 + n_rows * box_h + (n_rows - 1) * gap_y
    legend_y = rows_bottom + 70
    height = legend_y + 34
    pos = {}
    for col, keys in columns.items():
        col_h = len(keys) * box_h + (len(keys) - 1) * gap_y
        top = pad + 30 + (n_rows * box_h + (n_rows - 1) * gap_y - col_h) / 2
        for i, key in enumerate(keys):
            pos[key] = (pad + col * (box_w + gap_x), top + i * (box_h + gap_y))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" '
        f'style="max-width:100%;height:auto">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" markerUnits="userSpaceOnUse" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/>'
        "</marker></defs>",
        f'<text x="{pad}" y="{pad + 8}" font-size="13" font-weight="bold">'
        f"{html.escape(aop.info.short_name)}</text>",
    ]
    for r in aop.relationships:
        if r.upstream not in pos or r.downstream not in pos:
            continue
        (x1, y1), (x2, y2) = pos[r.upstream], pos[r.downstream]
        tip = (
            f"{aop.events[r.upstream].short_name} → {aop.events[r.downstream].short_name}: "
            f"plausibility {r.biological_plausibility}, empirical support {r.empirical_support}, "
            f"evidence {r.evidence}"
        )
        if r.feedback:
            sx, sy, ex, ey = x1 + box_w / 2, y1 + box_h, x2 + box_w / 2, y2 + box_h
            d = f"M {sx} {sy} C {sx} {sy + 40}, {ex} {ey + 40}, {ex} {ey}"
            style = 'stroke-dasharray="5,4"'
        elif layer[r.downstream] - layer[r.upstream] > 1:
            # A long edge runs under the rows rather than through the boxes between.
            sx, sy, ex, ey = x1 + box_w / 2, y1 + box_h, x2 + box_w / 2, y2 + box_h
            low = rows_bottom + 45
            d = f"M {sx} {sy} C {sx} {low}, {ex} {low}, {ex} {ey}"
            style = ""
        else:
            sx, sy, ex, ey = x1 + box_w, y1 + box_h / 2, x2, y2 + box_h / 2
            d = f"M {sx} {sy} C {sx + gap_x / 2} {sy}, {ex - gap_x / 2} {ey}, {ex} {ey}"
            style = ""
        parts.append(
            f'<path d="{d}" fill="none" stroke="#555" stroke-width="{_WIDTH[r.evidence]}" '
            f'{style} marker-end="url(#arrow)"><title>{html.escape(tip)}</title></path>'
        )
    for key, (x, y) in pos.items():
        e = aop.events[key]
        colour = _COLOURS[e.type]
        strong = key in highlight
        label = html.escape(e.short_name)
        wiki = (
            f"KE {e.aopwiki_id}" + ("" if e.mapping == "confirmed" else " (unconfirmed)")
            if e.aopwiki_id
            else ""
        )
        tip = f"{e.type}: {e.title}" + (f" · AOP-Wiki {wiki}" if wiki else "")
        parts.append(
            f'<g class="event {e.type}{" highlight" if strong else ""}" data-key="{key}">'
            f"<title>{html.escape(tip)}</title>"
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="7" '
            f'fill="{colour if strong else "#fff"}" stroke="{colour}" stroke-width="{3 if strong else 1.6}"/>'
            f'<text x="{x + box_w / 2}" y="{y + 19}" text-anchor="middle" '
            f'fill="{"#fff" if strong else "#222"}" font-weight="bold">{label}</text>'
            f'<text x="{x + box_w / 2}" y="{y + 35}" text-anchor="middle" '
            f'fill="{"#fff" if strong else "#666"}">{e.type}{" · " + html.escape(wiki) if wiki else ""}</text>'
            + (
                f'<text class="numbers" x="{x + box_w / 2}" y="{y + 51}" text-anchor="middle" '
                f'fill="{"#fff" if strong else "#222"}">{html.escape(numbers[key])}</text>'
                if key in numbers
                else ""
            )
            + "</g>"
        )
    parts.append(_legend(pad, legend_y, bool(numbers)))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _numbers(evidence: pd.DataFrame | None) -> dict[str, str]:
    """Per event: the test articles' and positive controls' best ``n/N`` (most positive)."""
    if evidence is None or evidence.empty:
        return {}
    out: dict[str, str] = {}
    for event, g in evidence.groupby("event", sort=False):
        bits = []
        for source, label in (("assay", ""), ("clinical", ""), ("positive control", "PC ")):
            rows = g[g["source"] == source]
            if rows.empty:
                continue
            best = rows.sort_values(["n_positive", "n_total"], ascending=[False, True]).iloc[0]
            unit = "pts" if source == "clinical" else "donors"
            bits.append(f"{label}{int(best['n_positive'])}/{int(best['n_total'])} {unit}")
        out[event] = " · ".join(bits)
    return out


def _legend(x: float, y: float, numbers: bool) -> str:
    items = [
        f'<rect x="{x + dx}" y="{y}" width="14" height="14" rx="3" fill="#fff" '
        f'stroke="{c}" stroke-width="1.6"/><text x="{x + dx + 20}" y="{y + 11}">{t}</text>'
        for dx, t, c in ((0, "MIE", _COLOURS["MIE"]), (70, "key event", _COLOURS["KE"]),
                         (170, "adverse outcome", _COLOURS["AO"]))
    ]  # fmt: skip
    x2 = x + 310
    items.append(
        f'<rect x="{x2}" y="{y}" width="14" height="14" rx="3" fill="{_COLOURS["KE"]}"/>'
        f'<text x="{x2 + 20}" y="{y + 11}">filled: a response was shown</text>'
    )
    x3 = x2 + 200
    items.append(
        f'<line x1="{x3}" y1="{y + 7}" x2="{x3 + 30}" y2="{y + 7}" stroke="#555" '
        f'stroke-width="3.2"/><text x="{x3 + 36}" y="{y + 11}">edge width: weight of '
        f"evidence (high, moderate, low)</text>"
    )
    x4 = x3 + 360
    items.append(
        f'<line x1="{x4}" y1="{y + 7}" x2="{x4 + 30}" y2="{y + 7}" stroke="#555" '
        f'stroke-dasharray="5,4"/><text x="{x4 + 36}" y="{y + 11}">feedback</text>'
    )
    if numbers:
        items.append(
            f'<text x="{x}" y="{y + 30}">n/N: responding of tested donors (test article, best '
            "treatment and format); PC: positive controls, the assay's own sensitivity; "
            "pts: patients</text>"
        )
    return '<g class="legend">' + "".join(items) + "</g>"


def aop_html(
    aop: AdverseOutcomePathway,
    path: str | Path | None = None,
    *,
    highlight: set[str] | None = None,
    modality: str | None = None,
    evidence: pd.DataFrame | None = None,
    excluded: pd.DataFrame | None = None,
) -> str:
    """A self-contained HTML page: the SVG figure, the mapped evidence (and what was not
    counted, with why), key events, relationships, references."""
    from cytosafe.assays.references import load_references

    refs = load_references()

    def cite(keys) -> str:
        return "; ".join(
            html.escape(refs[k].short()) if k in refs else html.escape(k) for k in keys
        )

    rows_e = "".join(
        f"<tr><td>{e.type}</td><td>{html.escape(e.title)}</td>"
        f"<td>{e.aopwiki_id or ''} {'' if e.mapping in ('confirmed', 'none') else '(unconfirmed)'}</td>"
        f"<td>{html.escape(', '.join(e.in_vitro_readouts))}</td>"
        f"<td>{html.escape(', '.join(e.clinical_biomarkers))}</td>"
        f"<td>{e.essentiality or ''}</td><td>{cite(e.citations)}</td></tr>"
        for e in aop.events.values()
    )
    rows_r = "".join(
        f"<tr><td>{html.escape(aop.events[r.upstream].short_name)} → "
        f"{html.escape(aop.events[r.downstream].short_name)}{' (feedback)' if r.feedback else ''}</td>"
        f"<td>{r.biological_plausibility}</td><td>{r.empirical_support}</td><td>{r.evidence}</td>"
        f"<td>{r.quantitative_understanding}</td><td>{cite(r.citations)}</td></tr>"
        for r in aop.relationships
    )
    used = sorted(
        {k for e in aop.events.values() for k in e.citations}
        | {k for r in aop.relationships for k in r.citations}
    )
    refs_html = "".join(
        f"<li>[{k}] {html.escape(refs[k].formatted())}</li>" for k in used if k in refs
    )
    text = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(aop.info.title)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}"
        "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;"
        "font-size:.85rem;vertical-align:top}th{background:#f3f3f3}</style></head><body>"
        f"<h1>{html.escape(aop.info.title)}</h1><p>{html.escape(aop.info.abstract)}</p>"
        + aop_svg(aop, highlight=highlight, modality=modality, evidence=evidence)
        + _evidence_html(evidence, excluded)
        + "<h2>Events</h2><table><tr><th>type</th><th>event</th><th>AOP-Wiki KE</th>"
        "<th>in vitro readouts</th><th>clinical biomarkers</th><th>essentiality</th><th>sources</th></tr>"
        + rows_e
        + "</table><h2>Key event relationships</h2><table><tr><th>relationship</th>"
        "<th>biological plausibility</th><th>empirical support</th><th>evidence</th>"
        "<th>quantitative understanding</th><th>sources</th></tr>"
        + rows_r
        + f"</table><h2>References</h2><ol>{refs_html}</ol></body></html>\n"
    )
    if path is not None:
        atomic_write_text(path, text)
    return text


def _evidence_html(evidence: pd.DataFrame | None, excluded: pd.DataFrame | None) -> str:
    if evidence is None:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(str(r.event))}</td><td>{html.escape(str(r.source))}</td>"
        f"<td>{int(r.n_positive)}/{int(r.n_total)} {html.escape(str(r.unit))}</td>"
        f"<td>{html.escape(str(r.readout))}</td><td>{html.escape(str(r.note))}</td></tr>"
        for r in evidence.itertuples(index=False)
    )
    out = (
        "<h2>Evidence mapped</h2><table><tr><th>event</th><th>source</th><th>positive</th>"
        f"<th>readouts</th><th>note</th></tr>{rows}</table>"
    )
    if excluded is not None and len(excluded):
        rows = "".join(
            f"<tr><td>{html.escape(str(r.event))}</td><td>{html.escape(str(r.treatment))}</td>"
            f"<td>{html.escape(str(r.assay_format))}</td><td>{html.escape(str(r.readout))}</td>"
            f"<td>{html.escape(str(r.reason))}</td></tr>"
            for r in excluded.itertuples(index=False)
        )
        out += (
            "<h2>Measured but not counted</h2><p>A readout counts for an event only through a "
            "mechanism the modality engages and in a format that holds the cells the event "
            "is about (aop_evidence.toml).</p><table><tr><th>event</th><th>treatment</th>"
            f"<th>format</th><th>readouts</th><th>why not</th></tr>{rows}</table>"
        )
    return out


_LINE_COLOURS = ("#222222", "#c62828", "#1565c0", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f")


def simulation_svg(table, node: str = "CRS", *, title: str | None = None) -> str:
    """P(``node``) over time, one line per intervention, from :func:`~cytosafe.aop.simulate`."""
    width, height, left, right, top, bottom = 640, 360, 56, 170, 34, 44
    t_max = float(table["time"].max()) or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: float) -> float:
        return left + plot_w * t / t_max

    def y(p: float) -> float:
        return top + plot_h * (1 - p)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="20" font-size="13" font-weight="bold">'
        f"{html.escape(title or f'P({node}) over time in the Boolean model')}</text>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
    ]
    for p in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(p)}" y2="{y(p)}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y(p) + 4}" text-anchor="end">{p:.2f}</text>'
        )
    for i in range(6):
        t = t_max * i / 5
        parts.append(f'<text x="{x(t)}" y="{top + plot_h + 16}" text-anchor="middle">{t:g}</text>')
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">'
        "time (relative units)</text>"
    )
    for i, (name, g) in enumerate(table.groupby("intervention", sort=False)):
        colour = _LINE_COLOURS[i % len(_LINE_COLOURS)]
        points = " ".join(f"{x(t):.1f},{y(p):.1f}" for t, p in zip(g["time"], g[node], strict=True))
        parts.append(
            f'<polyline class="intervention" data-intervention="{html.escape(name)}" '
            f'points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
            f'<line x1="{left + plot_w + 12}" x2="{left + plot_w + 30}" y1="{top + 12 + 16 * i}" '
            f'y2="{top + 12 + 16 * i}" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{left + plot_w + 36}" y="{top + 16 + 16 * i}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
