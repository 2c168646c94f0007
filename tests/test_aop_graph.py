"""The CRS irAOP: it loads and validates, every event and relationship is sourced, and
each key event lists what can be measured of it in vitro and in patients."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from cytosafe.aop import EvidenceRecord, load_crs_aop
from cytosafe.aop.graph import GRADES
from cytosafe.assays import load_knowledge_base, load_references
from cytosafe.data import path as data_path
from cytosafe.errors import InputError

ISSUE_KEY_EVENTS = {
    "ke_t_cell_activation",
    "ke_myeloid_activation",
    "ke_systemic_cytokine_release",
    "ke_endothelial_activation",
    "ke_vascular_leak",
}
ISSUE_BIOMARKERS = {
    "IL-2", "IFN-g", "TNF", "IL-6", "IL-10", "IL-1b", "MCP-1", "ferritin", "CRP",
    "Ang-2/Ang-1", "vWF", "hypotension", "hypoxia",
}  # fmt: skip


@pytest.fixture(scope="module")
def aop():
    return load_crs_aop()


def test_the_aop_has_the_key_events_of_the_imsavar_pathway_and_one_adverse_outcome(aop):
    assert {e.key for e in aop.key_events()} == ISSUE_KEY_EVENTS
    assert aop.adverse_outcome().key == "ao_crs"
    assert nx.is_directed_acyclic_graph(aop.graph(include_feedback=False))
    assert not nx.is_directed_acyclic_graph(aop.graph())  # the endothelial IL-6 loop


def test_every_modality_has_its_molecular_initiating_event(aop):
    kb = load_knowledge_base()
    for modality in kb.modalities.values():
        mies = aop.mies_for(modality.key)
        assert mies, modality.key
        assert modality.aop_mie in {m.key for m in mies}, modality.key
        assert aop.pathway_for(modality.key).has_node("ao_crs"), modality.key


def test_every_mechanism_enters_the_pathway_at_an_event_of_the_aop(aop):
    for mechanism in load_knowledge_base().mechanisms.values():
        assert mechanism.aop_event in aop.events, mechanism.key


def test_every_event_and_relationship_cites_the_bibliography(aop):
    refs = load_references()
    for item in [aop.info, *aop.events.values(), *aop.relationships]:
        assert item.citations and set(item.citations) <= set(refs), item
        if item.status == "confirmed":
            assert any(refs[c].confirmed for c in item.citations), item


def test_each_key_event_lists_readouts_biomarkers_and_its_essentiality(aop):
    measured = set()
    for e in aop.key_events():
        assert e.in_vitro_readouts and e.clinical_biomarkers, e.key
        assert e.essentiality in GRADES and e.essentiality_citations, e.key
        measured |= set(e.in_vitro_readouts) | set(e.clinical_biomarkers)
    measured |= set(aop.adverse_outcome().clinical_biomarkers)
    assert ISSUE_BIOMARKERS <= measured


def test_relationships_carry_the_aopwiki_weight_of_evidence(aop):
    for r in aop.relationships:
        for grade in (
            r.biological_plausibility,
            r.empirical_support,
            r.evidence,
            r.quantitative_understanding,
        ):
            assert grade in GRADES, r.key
    edge = aop.graph().edges["ke_endothelial_activation", "ke_vascular_leak"]
    assert edge["biological_plausibility"] == "high" and edge["empirical_support"] == "moderate"


def test_aopwiki_ids_are_cited_and_unconfirmed_mappings_are_marked(aop):
    mapped = {e.key: e for e in aop.events.values() if e.aopwiki_id is not None}
    assert {e.aopwiki_id for e in mapped.values()} == {1493, 1494}
    for e in mapped.values():
        assert e.mapping == "unconfirmed"
        assert f"aopwiki_ke{e.aopwiki_id}" in e.citations
    assert all(e.mapping == "none" for e in aop.events.values() if e.aopwiki_id is None)


def test_evidence_attaches_per_key_event(aop):
    record = EvidenceRecord("ke_t_cell_activation", "assay", "IL-2", "up", 7, 8, study="CRA-1")
    aop.attach_evidence(record)
    assert aop.evidence_for("ke_t_cell_activation") == [record]
    assert aop.graph().nodes["ke_t_cell_activation"]["evidence"] == [record]
    assert load_crs_aop().evidence_for("ke_t_cell_activation") == []  # a fresh copy each time
    with pytest.raises(InputError, match="unknown key event"):
        aop.attach_evidence(EvidenceRecord("ke_fever", "clinical", "temperature", "up", 1, 2))
    with pytest.raises(InputError):
        aop.attach_evidence(EvidenceRecord("ke_vascular_leak", "clinical", "SBP", "down", 5, 4))


def edited(tmp_path: Path, old: str, new: str) -> Path:
    text = data_path("crs_aop.toml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "crs_aop.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_a_loop_not_marked_feedback_is_an_error(tmp_path):
    path = edited(tmp_path, "feedback = true\n", "")
    with pytest.raises(InputError, match="cycle") as err:
        load_crs_aop(path)
    assert err.value.file == str(path) and err.value.field == "relationship.feedback"


def test_a_relationship_to_an_unknown_event_names_the_entry(tmp_path):
    path = edited(tmp_path, 'downstream = "ke_vascular_leak"', 'downstream = "ke_vascular_leakage"')
    with pytest.raises(InputError, match="ke_vascular_leakage") as err:
        load_crs_aop(path)
    assert err.value.field.startswith("relationship[") and err.value.field.endswith(".downstream")


def test_a_mapping_without_an_aopwiki_id_is_an_error(tmp_path):
    path = edited(tmp_path, "aopwiki_id = 1493\n", "")
    with pytest.raises(InputError, match="mapping without an AOP-Wiki id"):
        load_crs_aop(path)
