"""Read and write the AOP-Wiki XML data export (namespace ``http://www.aopkb.org/aop-xml``).

The layout is that of the quarterly AOP-Wiki export (schema AopXml 2.7.0):

* top-level ``<stressor>``, ``<key-event>``, ``<key-event-relationship>`` and ``<aop>``
  elements in that order, each with an internal GUID ``id``;
* the AOP lists its ``<molecular-initiating-event key-event-id=...>``,
  ``<key-events><key-event key-event-id=.../></key-events>`` (older files use ``id=``),
  ``<adverse-outcome key-event-id=...>`` and ``<key-event-relationships><relationship
  id=...>`` with ``<adjacency>``, ``<quantitative-understanding-value>`` and the overall
  weight-of-evidence grade ``<evidence>`` (High / Moderate / Low / Not Specified);
* KER prose under ``<weight-of-evidence>``: ``<biological-plausibility>``,
  ``<emperical-support-linkage>`` (the export's own spelling) and
  ``<uncertainties-or-inconsistencies>``; key event essentiality as the AOP's
  ``<overall-assessment><key-event-essentiality-summary>``;
* all prose is HTML, escaped inside the XML (``&lt;p&gt;...``);
* a final ``<vendor-specific>`` block maps internal ids to AOP-Wiki ids:
  ``<aop-reference id=... aop-wiki-id=...>``, ``<key-event-reference>``,
  ``<key-event-relationship-reference>``, ``<stressor-reference>``.

CytoSafe writes what AOP-Wiki has no element for (its event keys, the confirmation status
of a mapping, citation keys, feedback loops, the modality of a stressor) as
``<cytosafe:annotation>`` elements inside the vendor-specific block, in the namespace
:data:`CYTOSAFE_NS`; the schema allows any element there. A file from AOP-Wiki itself
reads without them. Sources: the AopXml schema and the AOP-Wiki RDF project's parsers
(reference ``aopwiki_xml``).
"""

from __future__ import annotations

import html
import uuid
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

from cytosafe._atomic import atomic_write_text
from cytosafe.aop.graph import (
    GRADES,
    AdverseOutcomePathway,
    AopInfo,
    KeyEvent,
    Relationship,
)
from cytosafe.errors import InputError

__all__ = ["AOP_NS", "CYTOSAFE_NS", "read_aopwiki_xml", "write_aopwiki_xml"]

AOP_NS = "http://www.aopkb.org/aop-xml"
CYTOSAFE_NS = "urn:cytosafe:aop-xml:1"
_A = f"{{{AOP_NS}}}"
_C = f"{{{CYTOSAFE_NS}}}"
_READOUT_HEADINGS = {
    "in vitro readouts": "in_vitro_readouts",
    "clinical biomarkers": "clinical_biomarkers",
}


# ------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------


def _guid(aop_key: str, kind: str, key: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:cytosafe:{aop_key}:{kind}:{key}"))


def _grade_word(grade: str) -> str:
    return "Not Specified" if grade == "not specified" else grade.capitalize()


def _p(text: str) -> str:
    return f"<p>{html.escape(text, quote=False)}</p>"


def _ul(items) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(i, quote=False)}</li>" for i in items) + "</ul>"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, _A + tag, {k.replace("_", "-"): v for k, v in attrib.items()})
    if text is not None:
        el.text = text
    return el


def write_aopwiki_xml(
    aops: AdverseOutcomePathway | list[AdverseOutcomePathway],
    path: str | Path | None = None,
    *,
    timestamp: str = "2026-01-01T00:00:00",
    modality_names: dict[str, str] | None = None,
    wiki_license: str = "BY-SA",
) -> str:
    """Write one or more AOPs as an AOP-Wiki XML export; return the XML text.

    Parameters
    ----------
    aops:
        The pathway(s).
    path:
        Where to write the file (atomically); nothing is written when None.
    timestamp:
        Creation and modification timestamps (fixed by default so that output is
        reproducible).
    modality_names:
        Display names of the stressors (modality keys by default; the knowledge base's
        names when called from the CLI).
    wiki_license:
        The ``<status><wiki-license>`` the schema requires ("BY-SA", "All rights
        reserved" or "Open for adoption"); set it to the licence of your content.
    """
    aops = [aops] if isinstance(aops, AdverseOutcomePathway) else list(aops)
    names = modality_names or {}
    ET.register_namespace("", AOP_NS)
    ET.register_namespace("cytosafe", CYTOSAFE_NS)
    root = ET.Element(_A + "data")
    # The schema is a sequence: every stressor, then every key event, KER and AOP.
    bins = {
        tag: ET.Element("bin") for tag in ("stressor", "key-event", "key-event-relationship", "aop")
    }
    vendor_refs: list[tuple[str, dict[str, str]]] = []
    annotations: list[dict[str, str]] = []

    for aop in aops:
        k = aop.info.key
        ke_id = {e: _guid(k, "event", e) for e in aop.events}
        modalities = sorted({m for e in aop.events.values() for m in e.modalities})
        st_id = {m: _guid(k, "stressor", m) for m in modalities}
        for m in modalities:
            st = _sub(bins["stressor"], "stressor", id=st_id[m])
            _sub(st, "name", names.get(m, m))
            _sub(st, "description", _p(f"Therapeutic modality '{m}'."))
            _sub(st, "creation-timestamp", timestamp)
            _sub(st, "last-modification-timestamp", timestamp)
            annotations.append({"ref": st_id[m], "kind": "stressor", "key": m})

        for e in aop.events.values():
            el = _sub(bins["key-event"], "key-event", id=ke_id[e.key])
            _sub(el, "title", e.title)
            _sub(el, "short-name", e.short_name)
            _sub(el, "biological-organization-level", e.level)
            _sub(el, "description", _p(e.description))
            _sub(
                el,
                "measurement-methodology",
                "<h4>In vitro readouts</h4>"
                + _ul(e.in_vitro_readouts)
                + "<h4>Clinical biomarkers</h4>"
                + _ul(e.clinical_biomarkers),
            )
            if e.modalities:
                stressors = _sub(el, "key-event-stressors")
                for m in e.modalities:
                    ks = _sub(stressors, "key-event-stressor", stressor_id=st_id[m])
                    _sub(ks, "evidence", "Not Specified")
            _sub(el, "references", _ul(f"[{c}]" for c in e.citations))
            _sub(el, "source", "Other")
            _sub(el, "source-internal-id", e.key)
            _sub(el, "creation-timestamp", timestamp)
            _sub(el, "last-modification-timestamp", timestamp)
            if e.aopwiki_id is not None:
                vendor_refs.append(
                    ("key-event-reference", {"id": ke_id[e.key], "aop-wiki-id": str(e.aopwiki_id)})
                )
            ann = {
                "ref": ke_id[e.key],
                "kind": "event",
                "key": e.key,
                "mapping": e.mapping,
                "status": e.status,
                "citations": " ".join(e.citations),
            }
            if e.aopwiki_title:
                ann["aop-wiki-title"] = e.aopwiki_title
            if e.essentiality_citations:
                ann["essentiality-citations"] = " ".join(e.essentiality_citations)
            annotations.append(ann)

        ker_id = {r.key: _guid(k, "relationship", r.key) for r in aop.relationships}
        for r in aop.relationships:
            el = _sub(bins["key-event-relationship"], "key-event-relationship", id=ker_id[r.key])
            title = _sub(el, "title")
            _sub(title, "upstream-id", ke_id[r.upstream])
            _sub(title, "downstream-id", ke_id[r.downstream])
            _sub(el, "description", _p(r.description))
            woe = _sub(el, "weight-of-evidence")
            _sub(woe, "value", "")
            _sub(
                woe,
                "biological-plausibility",
                f"<p><strong>{_grade_word(r.biological_plausibility)}</strong></p>",
            )
            _sub(
                woe,
                "emperical-support-linkage",
                f"<p><strong>{_grade_word(r.empirical_support)}</strong></p>",
            )
            _sub(woe, "uncertainties-or-inconsistencies", "")
            qu = _sub(el, "quantitative-understanding")
            _sub(qu, "description", "")
            _sub(qu, "response-response-relationship", "")
            _sub(qu, "time-scale", "")
            _sub(qu, "feedforward-feedback-loops", _p("Feedback loop.") if r.feedback else "")
            _sub(el, "references", _ul(f"[{c}]" for c in r.citations))
            _sub(el, "source", "Other")
            _sub(el, "source-internal-id", r.key)
            _sub(el, "creation-timestamp", timestamp)
            _sub(el, "last-modification-timestamp", timestamp)
            if r.aopwiki_id is not None:
                vendor_refs.append(
                    (
                        "key-event-relationship-reference",
                        {"id": ker_id[r.key], "aop-wiki-id": str(r.aopwiki_id)},
                    )
                )
            annotations.append(
                {
                    "ref": ker_id[r.key],
                    "kind": "relationship",
                    "key": r.key,
                    "status": r.status,
                    "citations": " ".join(r.citations),
                    "feedback": "true" if r.feedback else "false",
                }
            )

        aop_id = _guid(k, "aop", k)
        el = _sub(bins["aop"], "aop", id=aop_id)
        _sub(el, "title", aop.info.title)
        _sub(el, "short-name", aop.info.short_name)
        _sub(el, "point-of-contact", "")
        _sub(el, "authors", _p("Encoded by CytoSafe from the cited sources."))
        status = _sub(el, "status")
        _sub(status, "wiki-license", wiki_license)
        _sub(el, "oecd-project", "")
        _sub(el, "handbook-version", "")
        _sub(el, "abstract", _p(aop.info.abstract))
        for e in aop.events_of("MIE"):
            mie = _sub(el, "molecular-initiating-event", key_event_id=ke_id[e.key])
            _sub(mie, "evidence-supporting-chemical-initiation", "")
        kes = _sub(el, "key-events")
        for e in aop.events_of("KE"):
            _sub(kes, "key-event", key_event_id=ke_id[e.key])
        for e in aop.events_of("AO"):
            ao = _sub(el, "adverse-outcome", key_event_id=ke_id[e.key])
            _sub(ao, "examples", "")
        rels = _sub(el, "key-event-relationships")
        for r in aop.relationships:
            rel = _sub(rels, "relationship", id=ker_id[r.key])
            _sub(rel, "adjacency", r.adjacency)
            _sub(rel, "quantitative-understanding-value", _grade_word(r.quantitative_understanding))
            _sub(rel, "evidence", _grade_word(r.evidence))
        oa = _sub(el, "overall-assessment")
        rows = "".join(
            f"<tr><td>{html.escape(e.title, quote=False)}</td>"
            f"<td>{_grade_word(e.essentiality)}</td></tr>"
            for e in aop.events_of("KE")
            if e.essentiality
        )
        _sub(
            oa,
            "key-event-essentiality-summary",
            f"<table><tr><th>Event</th><th>Essentiality</th></tr>{rows}</table>",
        )
        _sub(oa, "weight-of-evidence-summary", "")
        if modalities:
            st = _sub(el, "aop-stressors")
            for m in modalities:
                s = _sub(st, "aop-stressor", stressor_id=st_id[m])
                _sub(s, "evidence", "Not Specified")
        _sub(el, "references", _ul(f"[{c}]" for c in aop.info.citations))
        _sub(el, "source", "Other")
        _sub(el, "source-internal-id", k)
        _sub(el, "creation-timestamp", timestamp)
        _sub(el, "last-modification-timestamp", timestamp)
        if aop.info.aopwiki_id is not None:
            vendor_refs.append(
                ("aop-reference", {"id": aop_id, "aop-wiki-id": str(aop.info.aopwiki_id)})
            )
        annotations.append(
            {
                "ref": aop_id,
                "kind": "aop",
                "key": k,
                "mapping": aop.info.mapping,
                "status": aop.info.status,
                "citations": " ".join(aop.info.citations),
            }
        )

    for holder in bins.values():
        root.extend(list(holder))
    vendor = _sub(
        root,
        "vendor-specific",
        id=_guid("|".join(a.info.key for a in aops), "vendor", "cytosafe"),
        name="CytoSafe",
        version="1",
    )
    order = ("aop-reference", "key-event-reference", "key-event-relationship-reference")
    for tag in order:
        for t, attrib in vendor_refs:
            if t == tag:
                _sub(vendor, t, **{k.replace("-", "_"): v for k, v in attrib.items()})
    for ann in annotations:
        ET.SubElement(vendor, _C + "annotation", ann)
    ET.indent(root, space="  ")
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    if path is not None:
        atomic_write_text(path, text)
    return text


# ------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------


class _Html(HTMLParser):
    """Plain text, list items grouped under the preceding heading, and table rows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.items: dict[str, list[str]] = {}
        self.rows: list[list[str]] = []
        self._heading: str | None = None
        self._in: str | None = None
        self._buf: list[str] = []
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in ("h1", "h2", "h3", "h4", "h5", "li", "td", "th"):
            self._in, self._buf = tag, []
        if tag == "tr":
            self._row = []

    def handle_endtag(self, tag):
        if tag == self._in:
            content = "".join(self._buf).strip()
            if tag.startswith("h"):
                self._heading = content.lower()
            elif tag == "li":
                self.items.setdefault(self._heading or "", []).append(content)
            elif self._row is not None:
                self._row.append(content)
            self._in = None
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._in:
            self._buf.append(data)


def _html(text: str | None) -> _Html:
    parser = _Html()
    parser.feed(text or "")
    parser.close()
    return parser


def _plain(text: str | None) -> str:
    return " ".join("".join(_html(text).text).split())


def _grade(text: str | None, default: str = "not specified") -> str:
    plain = _plain(text).lower()
    for g in GRADES:
        if plain.startswith(g):
            return g
    return default


def _text(el: ET.Element | None, tag: str) -> str | None:
    if el is None:
        return None
    child = el.find(_A + tag)
    return None if child is None else (child.text or "")


def read_aopwiki_xml(path: str | Path) -> list[AdverseOutcomePathway]:
    """Read every AOP of an AOP-Wiki XML export (or of a file written by CytoSafe).

    Event keys are CytoSafe's (``source-internal-id``) where present, otherwise
    ``KE<aop-wiki-id>`` (or the internal id). Events in a file from AOP-Wiki that carry an
    AOP-Wiki id count as mapped (``mapping = "confirmed"``); claims without CytoSafe
    annotations are ``status = "unconfirmed"`` with no citation keys.

    Raises
    ------
    InputError
        Not XML, not an AOP-Wiki export, or an AOP naming an id the file lacks.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InputError(f"not well-formed XML: {exc}", file=str(path)) from None
    except FileNotFoundError:
        raise InputError("file not found", file=str(path)) from None
    if root.tag != _A + "data":
        raise InputError(
            f"root element is {root.tag!r}",
            file=str(path),
            field="data",
            expected=f"<data> in namespace {AOP_NS}",
        )
    wiki_ids: dict[str, int] = {}
    notes: dict[str, dict[str, str]] = {}
    vendor = root.find(_A + "vendor-specific")
    if vendor is not None:
        for ref in vendor:
            if ref.tag.startswith(_A) and ref.tag.endswith("-reference"):
                try:
                    wiki_ids[ref.get("id")] = int(ref.get("aop-wiki-id"))
                except (TypeError, ValueError):
                    raise InputError(
                        f"{ref.tag[len(_A) :]} {ref.get('id')!r} has aop-wiki-id "
                        f"{ref.get('aop-wiki-id')!r}",
                        file=str(path),
                        field="aop-wiki-id",
                        expected="an integer",
                    ) from None
            elif ref.tag == _C + "annotation":
                notes[ref.get("ref")] = dict(ref.attrib)

    stressors: dict[str, str] = {}
    for st in root.findall(_A + "stressor"):
        sid = st.get("id")
        stressors[sid] = notes.get(sid, {}).get("key") or (_text(st, "name") or sid).strip()

    raw_events = {el.get("id"): el for el in root.findall(_A + "key-event")}
    raw_kers = {el.get("id"): el for el in root.findall(_A + "key-event-relationship")}

    def event_key(iid: str) -> str:
        el = raw_events[iid]
        if iid in notes and notes[iid].get("key"):
            return notes[iid]["key"]
        internal = (_text(el, "source-internal-id") or "").strip()
        if internal:
            return internal
        return f"KE{wiki_ids[iid]}" if iid in wiki_ids else iid

    aops = []
    for a in root.findall(_A + "aop"):
        aid = a.get("id")
        where = f"aop {aid!r}"
        roles: dict[str, str] = {}

        def take(iid: str | None, role: str, aid=aid, roles=roles) -> None:
            if iid not in raw_events:
                raise InputError(
                    f"aop {aid!r} names key event {iid!r}, which the file lacks",
                    file=str(path),
                    field=role,
                )
            roles[iid] = role

        for mie in a.findall(_A + "molecular-initiating-event"):
            take(mie.get("key-event-id"), "MIE")
        kes = a.find(_A + "key-events")
        for ke in [] if kes is None else kes.findall(_A + "key-event"):
            take(ke.get("key-event-id") or ke.get("id"), "KE")
        for ao in a.findall(_A + "adverse-outcome"):
            take(ao.get("key-event-id"), "AO")

        essentiality: dict[str, str] = {}
        summary = _text(a.find(_A + "overall-assessment"), "key-event-essentiality-summary")
        for row in _html(summary).rows:
            if len(row) >= 2 and _grade(row[1], "") in GRADES:
                essentiality[" ".join(row[0].split())] = _grade(row[1])

        events: dict[str, KeyEvent] = {}
        for iid, role in roles.items():
            el = raw_events[iid]
            note = notes.get(iid, {})
            methods = _html(_text(el, "measurement-methodology"))
            readouts = {
                field: tuple(methods.items.get(heading, ()))
                for heading, field in _READOUT_HEADINGS.items()
            }
            mods = []
            ks = el.find(_A + "key-event-stressors")
            for s in [] if ks is None else ks.findall(_A + "key-event-stressor"):
                sid = s.get("stressor-id")
                mods.append(stressors.get(sid, sid))
            title = " ".join((_text(el, "title") or "").split())
            wid = wiki_ids.get(iid)
            key = event_key(iid)
            events[key] = KeyEvent(
                key=key,
                type=role,
                title=title,
                short_name=" ".join((_text(el, "short-name") or title).split()),
                level=(_text(el, "biological-organization-level") or "").strip(),
                description=_plain(_text(el, "description")),
                in_vitro_readouts=readouts["in_vitro_readouts"],
                clinical_biomarkers=readouts["clinical_biomarkers"],
                modalities=tuple(mods),
                aopwiki_id=wid,
                aopwiki_title=note.get(
                    "aop-wiki-title", title if wid is not None and not note else None
                ),
                mapping=note.get("mapping", "confirmed" if wid is not None else "none"),
                essentiality=essentiality.get(title) if role == "KE" else None,
                essentiality_citations=tuple(note.get("essentiality-citations", "").split()),
                citations=tuple(note.get("citations", "").split()),
                status=note.get("status", "unconfirmed"),
            )

        relationships = []
        rels = a.find(_A + "key-event-relationships")
        for rel in [] if rels is None else rels.findall(_A + "relationship"):
            rid = rel.get("id")
            if rid not in raw_kers:
                raise InputError(
                    f"{where} names relationship {rid!r}, which the file lacks",
                    file=str(path),
                    field="relationship",
                )
            ker = raw_kers[rid]
            title = ker.find(_A + "title")
            up, down = _text(title, "upstream-id"), _text(title, "downstream-id")
            for end in (up, down):
                if end not in raw_events:
                    raise InputError(
                        f"relationship {rid!r} names key event {end!r}, which the file lacks",
                        file=str(path),
                        field="upstream-id",
                    )
            note = notes.get(rid, {})
            woe = ker.find(_A + "weight-of-evidence")
            qu = ker.find(_A + "quantitative-understanding")
            loops = _plain(_text(qu, "feedforward-feedback-loops"))
            relationships.append(
                Relationship(
                    upstream=event_key(up),
                    downstream=event_key(down),
                    adjacency=(_text(rel, "adjacency") or "adjacent").strip(),
                    biological_plausibility=_grade(_text(woe, "biological-plausibility")),
                    empirical_support=_grade(_text(woe, "emperical-support-linkage")),
                    evidence=_grade(_text(rel, "evidence")),
                    quantitative_understanding=_grade(
                        _text(rel, "quantitative-understanding-value")
                    ),
                    feedback=note.get(
                        "feedback", "true" if "feedback" in loops.lower() else "false"
                    )
                    == "true",
                    description=_plain(_text(ker, "description")),
                    aopwiki_id=wiki_ids.get(rid),
                    citations=tuple(note.get("citations", "").split()),
                    status=note.get("status", "unconfirmed"),
                )
            )
        note = notes.get(aid, {})
        info = AopInfo(
            key=note.get("key")
            or (_text(a, "source-internal-id") or "").strip()
            or (f"AOP{wiki_ids[aid]}" if aid in wiki_ids else aid),
            title=" ".join((_text(a, "title") or "").split()),
            short_name=" ".join((_text(a, "short-name") or "").split()),
            abstract=_plain(_text(a, "abstract")),
            aopwiki_id=wiki_ids.get(aid),
            mapping=note.get("mapping", "confirmed" if aid in wiki_ids else "none"),
            citations=tuple(note.get("citations", "").split()),
            status=note.get("status", "unconfirmed"),
        )
        aops.append(AdverseOutcomePathway(info=info, events=events, relationships=relationships))
    return aops
