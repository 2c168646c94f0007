"""AOP-Wiki XML (read, write, read), GraphML, Cytoscape JSON and the SVG/HTML figure."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import pytest

from cytosafe.aop import (
    aop_html,
    aop_svg,
    load_crs_aop,
    read_aopwiki_xml,
    to_cytoscape_json,
    to_graphml,
    write_aopwiki_xml,
)
from cytosafe.aop.aopwiki_xml import AOP_NS
from cytosafe.errors import InputError

FIXTURE = Path(__file__).parent / "fixtures" / "aopwiki" / "export_two_aops.xml"
A = f"{{{AOP_NS}}}"


@pytest.fixture(scope="module")
def aop():
    return load_crs_aop()


def test_round_trip_preserves_every_element_the_model_uses(aop, tmp_path):
    first = write_aopwiki_xml(aop, tmp_path / "a.xml")
    (back,) = read_aopwiki_xml(tmp_path / "a.xml")
    assert back.info == aop.info
    assert back.events == aop.events
    assert back.relationships == aop.relationships
    assert write_aopwiki_xml(back) == first  # read-write-read is a fixed point


def test_the_written_file_uses_the_export_namespace_names_and_id_mapping(aop, tmp_path):
    text = write_aopwiki_xml(aop, tmp_path / "a.xml")
    root = ET.parse(tmp_path / "a.xml").getroot()
    assert root.tag == A + "data"
    tags = [child.tag[len(A) :] for child in root if child.tag.startswith(A)]
    # the schema's order: stressors, key events, relationships, AOPs, vendor block last
    assert tags == sorted(
        tags,
        key=["stressor", "key-event", "key-event-relationship", "aop", "vendor-specific"].index,
    )
    assert tags[-1] == "vendor-specific"
    refs = {
        r.get("aop-wiki-id")
        for r in root.find(A + "vendor-specific").findall(A + "key-event-reference")
    }
    assert refs == {"1493", "1494"}
    ker = root.find(A + "key-event-relationship")
    assert ker.find(f"{A}weight-of-evidence/{A}emperical-support-linkage") is not None
    assert "&lt;p&gt;" in text  # prose is HTML, escaped in the XML
    internal = {e.get("id") for e in root.findall(A + "key-event")}
    aop_el = root.find(A + "aop")
    listed = {k.get("key-event-id") for k in aop_el.iter(A + "key-event")}
    listed |= {m.get("key-event-id") for m in aop_el.findall(A + "molecular-initiating-event")}
    listed |= {m.get("key-event-id") for m in aop_el.findall(A + "adverse-outcome")}
    assert listed == internal


def test_reading_a_file_laid_out_like_the_aopwiki_export():
    first, second = read_aopwiki_xml(FIXTURE)
    assert (first.info.key, first.info.aopwiki_id, first.info.abstract) == (
        "AOP90031",
        90031,
        'A fixture "AOP".',
    )
    assert {e.key: e.type for e in first.events.values()} == {
        "KE90011": "MIE",
        "KE90012": "KE",
        "KE90013": "AO",
    }
    mie = first.events["KE90011"]
    assert mie.description == "The antibody binds & activates the receptor (IL-2 > baseline)."
    assert mie.modalities == ("Fixture agonist antibody",) and mie.in_vitro_readouts == ("CD69",)
    assert mie.mapping == "confirmed" and mie.status == "unconfirmed" and mie.citations == ()
    assert first.events["KE90012"].essentiality == "moderate"
    assert first.events["KE90012"].clinical_biomarkers == ("IL-6",)
    r1, r2 = first.relationships
    assert (r1.upstream, r1.downstream, r1.aopwiki_id) == ("KE90011", "KE90012", 90021)
    assert (r1.biological_plausibility, r1.empirical_support, r1.evidence, r1.quantitative_understanding) == (
        "high", "moderate", "high", "low",
    )  # fmt: skip
    assert (r2.biological_plausibility, r2.evidence) == ("not specified", "moderate")
    # The same relationship is graded per AOP; the older id= spelling of the KE list reads.
    (r,) = second.relationships
    assert (r.adjacency, r.evidence) == ("non-adjacent", "low")
    assert second.events["KE90013"].type == "KE"


def test_an_aopwiki_file_survives_a_write_and_a_read(tmp_path):
    aops = read_aopwiki_xml(FIXTURE)
    write_aopwiki_xml(aops, tmp_path / "again.xml")
    again = read_aopwiki_xml(tmp_path / "again.xml")
    for a, b in zip(aops, again, strict=True):
        assert (a.info, a.events, a.relationships) == (b.info, b.events, b.relationships)


def test_bad_files_are_named(tmp_path):
    other = tmp_path / "other.xml"
    other.write_text('<?xml version="1.0"?><data xmlns="urn:other"/>', encoding="utf-8")
    with pytest.raises(InputError, match="root element") as err:
        read_aopwiki_xml(other)
    assert err.value.file == str(other)
    broken = tmp_path / "broken.xml"
    text = FIXTURE.read_text(encoding="utf-8")
    broken.write_text(
        text.replace(
            '<key-event-reference id="5a6b7c8d-9e0f-4a1b-8c3d-4e5f60718293" aop-wiki-id="90011"/>',
            '<key-event-reference id="5a6b7c8d-9e0f-4a1b-8c3d-4e5f60718293" aop-wiki-id="KE-11"/>',
        ),
        encoding="utf-8",
    )
    with pytest.raises(InputError, match="aop-wiki-id"):
        read_aopwiki_xml(broken)
    missing = tmp_path / "missing.xml"
    missing.write_text(
        text.replace(
            '<molecular-initiating-event key-event-id="5a6b7c8d',
            '<molecular-initiating-event key-event-id="ffffffff',
        ),
        encoding="utf-8",
    )
    with pytest.raises(InputError, match="which the file lacks"):
        read_aopwiki_xml(missing)


def test_graphml_reads_back_with_the_same_graph(aop, tmp_path):
    to_graphml(aop, tmp_path / "a.graphml")
    g = nx.read_graphml(tmp_path / "a.graphml")
    ours = aop.graph()
    assert set(g.nodes) == set(ours.nodes) and set(g.edges) == set(ours.edges)
    assert g.nodes["ke_systemic_cytokine_release"]["aopwiki_id"] == 1493
    assert g.nodes["ao_crs"]["type"] == "AO"
    assert g.edges["ke_endothelial_activation", "ke_systemic_cytokine_release"]["feedback"] is True


def test_cytoscape_json_has_every_node_and_edge(aop, tmp_path):
    doc = to_cytoscape_json(aop, tmp_path / "a.cyjs")
    assert json.loads((tmp_path / "a.cyjs").read_text(encoding="utf-8")) == doc
    nodes, edges = doc["elements"]["nodes"], doc["elements"]["edges"]
    assert len(nodes) == len(aop.events) and len(edges) == len(aop.relationships)
    by_id = {n["data"]["id"]: n for n in nodes}
    assert by_id["mie_cd28_superagonism"]["classes"] == "MIE"
    assert "IL-6" in by_id["ke_systemic_cytokine_release"]["data"]["clinical_biomarkers"]
    assert {e["data"]["source"] for e in edges} <= set(by_id)


def test_the_figure_draws_every_event_and_highlights_on_request(aop, tmp_path):
    svg = aop_svg(aop, highlight={"ke_t_cell_activation"})
    root = ET.fromstring(svg)
    groups = [
        g for g in root.iter("{http://www.w3.org/2000/svg}g") if "event" in g.get("class", "")
    ]
    assert {g.get("data-key") for g in groups} == set(aop.events)
    assert [g.get("data-key") for g in groups if "highlight" in g.get("class")] == [
        "ke_t_cell_activation"
    ]
    only = ET.fromstring(aop_svg(aop, modality="cd28_superagonist"))
    keys = {
        g.get("data-key") for g in only.iter("{http://www.w3.org/2000/svg}g") if g.get("data-key")
    }
    assert "mie_cd3_engagement" not in keys and "mie_cd28_superagonism" in keys
    page = aop_html(aop, tmp_path / "aop.html")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "Hay KA et al. 2017" in page
