"""The CRS immune-related adverse outcome pathway as a typed graph.

:func:`load_crs_aop` reads ``data/crs_aop.toml`` (validated, every event and relationship
with citations) into an :class:`AdverseOutcomePathway`: molecular initiating events (MIE)
per modality, key events (KE) with their in vitro readouts and clinical biomarkers and
their essentiality in this AOP, key event relationships (KER) with their weight of
evidence as AOP-Wiki records it, and the adverse outcome (AO). :meth:`~AdverseOutcomePathway.graph`
gives it as a :class:`networkx.DiGraph`.

Evidence (assay results, clinical findings) attaches per key event through
:meth:`AdverseOutcomePathway.attach_evidence`, as :class:`EvidenceRecord` rows.

Examples
--------
>>> aop = load_crs_aop()
>>> [e.key for e in aop.mies_for("cd28_superagonist")]
['mie_cd28_superagonism']
>>> aop.graph().has_edge("ke_vascular_leak", "ao_crs")
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import networkx as nx
import pandas as pd

from cytosafe.assays.references import load_references
from cytosafe.data import Fields, entries, read_toml, unique_keys
from cytosafe.data import path as data_path
from cytosafe.errors import InputError

__all__ = [
    "BIOLOGICAL_LEVELS",
    "EVENT_TYPES",
    "GRADES",
    "MAPPINGS",
    "AdverseOutcomePathway",
    "AopInfo",
    "EvidenceRecord",
    "KeyEvent",
    "Relationship",
    "load_crs_aop",
]

EVENT_TYPES = ("MIE", "KE", "AO")
#: Weight-of-evidence vocabulary of AOP-Wiki (lower case here; written capitalised).
GRADES = ("high", "moderate", "low", "not specified")
MAPPINGS = ("confirmed", "unconfirmed", "none")
#: AOP-Wiki levels of biological organisation.
BIOLOGICAL_LEVELS = (
    "Molecular",
    "Organelle",
    "Cellular",
    "Tissue",
    "Organ",
    "Organ System",
    "Individual",
    "Population",
)
_ADJACENCY = ("adjacent", "non-adjacent")


@dataclass(frozen=True)
class KeyEvent:
    """An MIE, KE or AO of the pathway (field names follow AOP-Wiki where it has one)."""

    key: str
    type: str
    title: str
    short_name: str
    level: str
    description: str
    in_vitro_readouts: tuple[str, ...] = ()
    clinical_biomarkers: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    aopwiki_id: int | None = None
    aopwiki_title: str | None = None
    mapping: str = "none"
    essentiality: str | None = None
    essentiality_citations: tuple[str, ...] = ()
    citations: tuple[str, ...] = ()
    status: str = "unconfirmed"


@dataclass(frozen=True)
class Relationship:
    """A key event relationship with its weight of evidence in this AOP."""

    upstream: str
    downstream: str
    adjacency: str = "adjacent"
    biological_plausibility: str = "not specified"
    empirical_support: str = "not specified"
    evidence: str = "not specified"
    quantitative_understanding: str = "not specified"
    feedback: bool = False
    description: str = ""
    aopwiki_id: int | None = None
    citations: tuple[str, ...] = ()
    status: str = "unconfirmed"

    @property
    def key(self) -> str:
        return f"{self.upstream}->{self.downstream}"


@dataclass(frozen=True)
class AopInfo:
    key: str
    title: str
    short_name: str
    abstract: str
    aopwiki_id: int | None = None
    mapping: str = "none"
    citations: tuple[str, ...] = ()
    status: str = "unconfirmed"


@dataclass(frozen=True)
class EvidenceRecord:
    """What one study shows about one key event (attached by evidence mapping).

    ``source`` is e.g. ``"assay"`` or ``"clinical"``; ``n_positive`` of ``n_total``
    donors or patients (``unit``) moved ``readout`` in ``direction``.
    """

    event: str
    source: str
    readout: str
    direction: str
    n_positive: int
    n_total: int
    unit: str = "donors"
    study: str | None = None
    note: str | None = None


@dataclass
class AdverseOutcomePathway:
    """An AOP: its events, relationships and any attached evidence."""

    info: AopInfo
    events: dict[str, KeyEvent]
    relationships: list[Relationship]
    evidence: dict[str, list[EvidenceRecord]] = field(default_factory=dict)

    # -- queries -----------------------------------------------------------------------
    def event(self, key: str) -> KeyEvent:
        try:
            return self.events[key]
        except KeyError:
            raise InputError(
                f"unknown key event {key!r}", field="event", expected=", ".join(self.events)
            ) from None

    def events_of(self, type_: str) -> list[KeyEvent]:
        return [e for e in self.events.values() if e.type == type_]

    def mies_for(self, modality: str) -> list[KeyEvent]:
        """The MIEs of a modality (by modality key of ``drug_modalities.toml``)."""
        return [e for e in self.events_of("MIE") if modality in e.modalities]

    def key_events(self) -> list[KeyEvent]:
        return self.events_of("KE")

    def adverse_outcome(self) -> KeyEvent:
        return self.events_of("AO")[0]

    def graph(self, *, include_feedback: bool = True) -> nx.DiGraph:
        """The pathway as a directed graph; node and edge attributes are the dataclass fields.

        ``include_feedback=False`` leaves out feedback relationships, giving a DAG.
        """
        g = nx.DiGraph(name=self.info.title, key=self.info.key, short_name=self.info.short_name)
        for e in self.events.values():
            g.add_node(e.key, **_attrs(e), evidence=list(self.evidence.get(e.key, ())))
        for r in self.relationships:
            if r.feedback and not include_feedback:
                continue
            g.add_edge(r.upstream, r.downstream, **_attrs(r))
        return g

    def pathway_for(self, modality: str) -> nx.DiGraph:
        """The sub-graph from the modality's MIEs to the adverse outcome (no feedback)."""
        g = self.graph(include_feedback=False)
        keep: set[str] = set()
        ao = self.adverse_outcome().key
        for mie in self.mies_for(modality):
            for path in nx.all_simple_paths(g, mie.key, ao):
                keep.update(path)
        return g.subgraph(keep).copy()

    def events_table(self) -> pd.DataFrame:
        """One row per event: key, type, titles, AOP-Wiki mapping, readouts, biomarkers."""
        rows = []
        for e in self.events.values():
            row = _attrs(e)
            for k in ("in_vitro_readouts", "clinical_biomarkers", "modalities", "citations"):
                row[k] = ", ".join(row[k])
            row["essentiality_citations"] = ", ".join(row["essentiality_citations"])
            rows.append(row)
        table = pd.DataFrame(rows)
        table["aopwiki_id"] = table["aopwiki_id"].astype("Int64")
        return table

    def relationships_table(self) -> pd.DataFrame:
        rows = []
        for r in self.relationships:
            row = _attrs(r)
            row["citations"] = ", ".join(row["citations"])
            row["key"] = r.key
            rows.append(row)
        table = pd.DataFrame(rows)
        table["aopwiki_id"] = table["aopwiki_id"].astype("Int64")
        return table

    # -- evidence ------------------------------------------------------------------------
    def attach_evidence(self, record: EvidenceRecord) -> None:
        """Attach one evidence record to its key event (the event must exist)."""
        self.event(record.event)
        if record.n_total < 0 or not 0 <= record.n_positive <= record.n_total:
            raise InputError(
                f"{record.n_positive} of {record.n_total}",
                field="n_positive",
                expected="0 <= n_positive <= n_total",
            )
        self.evidence.setdefault(record.event, []).append(record)

    def evidence_for(self, event: str) -> list[EvidenceRecord]:
        self.event(event)
        return list(self.evidence.get(event, ()))

    def validate(self, *, file: str | None = None, modalities: set[str] | None = None) -> None:
        """Check the structure: endpoints exist, MIEs start and the AO ends the pathway,
        the non-feedback graph is acyclic and every MIE reaches the AO."""
        _check_structure(self, file or "<aop>", modalities)


def load_crs_aop(
    path: str | Path | None = None, *, references_path: str | Path | None = None
) -> AdverseOutcomePathway:
    """Load and validate the CRS irAOP (the shipped ``crs_aop.toml`` by default).

    Raises
    ------
    InputError
        A malformed or inconsistent entry, named by file, entry and field.
    """
    if path is None and references_path is None:
        aop = _shipped()
        return AdverseOutcomePathway(aop.info, dict(aop.events), list(aop.relationships))
    return _load(Path(path or data_path("crs_aop.toml")), references_path)


@cache
def _shipped() -> AdverseOutcomePathway:
    return _load(data_path("crs_aop.toml"), None)


def _grade(f: Fields, name: str) -> str:
    return f.choice(name, GRADES)


def _load(path: Path, references_path) -> AdverseOutcomePathway:
    from cytosafe.assays.knowledge import load_knowledge_base

    refs = load_references(references_path)
    known = refs.__contains__
    data = read_toml(path, schema="cytosafe.aop")
    a = Fields(data.get("aop"), path, "aop")
    info = AopInfo(
        key=a.text("key"),
        title=a.text("title"),
        short_name=a.text("short_name"),
        abstract=a.text("abstract"),
        aopwiki_id=a.get("aopwiki_id", int, default=None),
        mapping=a.choice("mapping", MAPPINGS),
        citations=a.citations(known),
        status=a.status(),
    )
    events: dict[str, KeyEvent] = {}
    for key, f in unique_keys(entries(data, "event", path)).items():
        type_ = f.choice("type", EVENT_TYPES)
        mapping = f.choice("mapping", MAPPINGS)
        aopwiki_id = f.get("aopwiki_id", int, default=None)
        if mapping != "none" and aopwiki_id is None:
            f.fail("mapping without an AOP-Wiki id", field="aopwiki_id", expected="an integer")
        if mapping == "none" and aopwiki_id is not None:
            f.fail(
                "an AOP-Wiki id with mapping 'none'",
                field="mapping",
                expected="confirmed or unconfirmed",
            )
        essentiality = None
        ess_cites: tuple[str, ...] = ()
        if type_ == "KE":
            essentiality = _grade(f, "essentiality")
            ess_cites = f.citations(known, "essentiality_citations")
        elif "essentiality" in f.table:
            f.fail("essentiality is assessed for key events only", field="essentiality")
        events[key] = KeyEvent(
            key=key,
            type=type_,
            title=f.text("title"),
            short_name=f.text("short_name"),
            level=f.choice("level", BIOLOGICAL_LEVELS),
            description=f.text("description"),
            in_vitro_readouts=f.strings("in_vitro_readouts", default=()),
            clinical_biomarkers=f.strings("clinical_biomarkers", default=()),
            modalities=(
                f.strings("modalities", nonempty=True)
                if type_ == "MIE"
                else f.strings("modalities", default=())
            ),
            aopwiki_id=aopwiki_id,
            aopwiki_title=f.text("aopwiki_title", default=None),
            mapping=mapping,
            essentiality=essentiality,
            essentiality_citations=ess_cites,
            citations=f.citations(known),
            status=f.status(),
        )
    relationships = []
    seen: set[tuple[str, str]] = set()
    for f in entries(data, "relationship", path):
        up, down = f.choice("upstream", events), f.choice("downstream", events)
        if (up, down) in seen:
            f.fail(f"relationship {up} -> {down} listed twice", field="upstream")
        seen.add((up, down))
        relationships.append(
            Relationship(
                upstream=up,
                downstream=down,
                adjacency=f.choice("adjacency", _ADJACENCY),
                biological_plausibility=_grade(f, "biological_plausibility"),
                empirical_support=_grade(f, "empirical_support"),
                evidence=_grade(f, "evidence"),
                quantitative_understanding=_grade(f, "quantitative_understanding"),
                feedback=f.get("feedback", bool, default=False),
                description=f.text("description"),
                aopwiki_id=f.get("aopwiki_id", int, default=None),
                citations=f.citations(known),
                status=f.status(),
            )
        )
    aop = AdverseOutcomePathway(info=info, events=events, relationships=relationships)
    modalities = set(load_knowledge_base().modalities) if references_path is None else None
    _check_structure(aop, str(path), modalities)
    return aop


def _check_structure(aop: AdverseOutcomePathway, file: str, modalities: set[str] | None) -> None:
    def fail(message: str, field: str, expected: str | None = None) -> None:
        raise InputError(message, file=file, field=field, expected=expected)

    aos = aop.events_of("AO")
    if len(aos) != 1:
        fail(f"{len(aos)} adverse outcomes", "event", "exactly one event of type AO")
    if not aop.events_of("MIE"):
        fail("no molecular initiating event", "event", "at least one event of type MIE")
    for r in aop.relationships:
        for end in (r.upstream, r.downstream):
            if end not in aop.events:
                fail(f"relationship {r.key} names unknown event {end!r}", "relationship")
        if aop.events[r.downstream].type == "MIE":
            fail(f"relationship {r.key} ends in an MIE", "relationship.downstream")
        if aop.events[r.upstream].type == "AO":
            fail(f"relationship {r.key} starts at the AO", "relationship.upstream")
    g = aop.graph(include_feedback=False)
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        fail(
            f"the pathway has a cycle {cycle} not marked feedback",
            "relationship.feedback",
            "feedback = true on one relationship of every loop",
        )
    ao = aos[0].key
    for e in aop.events.values():
        if e.type != "AO" and not nx.has_path(g, e.key, ao):
            fail(f"event {e.key!r} does not lead to the adverse outcome", f"event '{e.key}'")
        if modalities is not None:
            for m in e.modalities:
                if m not in modalities:
                    fail(
                        f"event {e.key!r} names unknown modality {m!r}",
                        f"event '{e.key}'.modalities",
                        "keys of drug_modalities.toml",
                    )


def _attrs(obj) -> dict:
    return {k: getattr(obj, k) for k in obj.__dataclass_fields__}
