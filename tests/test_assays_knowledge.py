"""The assay knowledge base: it loads, validates, and every claim carries a source.

The checks follow issue 5: the CRA formats and drug modalities the issue lists are all
there, every entry cites a key of the bibliography, a claim marked confirmed rests on a
checked record, and a malformed file fails with an error naming file, entry and field.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cytosafe.assays import load_knowledge_base, load_references
from cytosafe.assays.knowledge import LEVELS
from cytosafe.data import path as data_path
from cytosafe.errors import InputError

ISSUE_FORMATS = {
    "whole_blood",
    "pbmc_aqueous",
    "pbmc_solid_phase_dry",
    "pbmc_solid_phase_wet",
    "pbmc_high_density_preculture",
    "pbmc_endothelial_coculture",
    "boec_autologous_coculture",
    "microfluidic_3d_vessel",
    "organ_on_chip",
    "target_cell_coculture",
    "car_t_target_coculture",
}
ISSUE_MODALITIES = {
    "igg1_mab",
    "igg4_mab",
    "fc_silent_mab",
    "cd28_superagonist",
    "cd3_bispecific",
    "t_cell_engager",
    "car_t",
    "checkpoint_inhibitor",
    "immunostimulatory_cytokine",
    "immunostimulatory_agonist",
}


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


def sourced_entries(kb):
    """Every entry of the knowledge base that must carry citations, with a name."""
    yield "recommender", kb.settings
    for k, m in kb.mechanisms.items():
        yield f"mechanism {k}", m
    for k, o in kb.options.items():
        for c in o.choices.values():
            yield f"option {k}.{c.key}", c
    for k, f in kb.formats.items():
        yield f"format {k}", f
        for d in f.detects:
            if d.option is None:
                yield f"format {k} detects {d.mechanism}", d
        for r in f.reference_drugs:
            yield f"format {k} drug {r.drug}", r
    for group in (kb.controls, kb.panels, kb.intended_uses, kb.fc_formats, kb.targets):
        for k, e in group.items():
            yield f"{type(e).__name__} {k}", e
    for k, m in kb.modalities.items():
        yield f"modality {k}", m
        for mm in m.mechanisms:
            yield f"modality {k} mechanism {mm.key}", mm


def test_the_knowledge_base_loads_and_lists_every_format_of_the_issue(kb):
    assert ISSUE_FORMATS <= set(kb.formats)


def test_every_modality_of_the_issue_is_described(kb):
    assert ISSUE_MODALITIES <= set(kb.modalities)
    # anti-CD3 antibodies are there too: the reference for direct CD3 agonism (OKT3).
    assert "anti_cd3_mab" in kb.modalities


def test_every_entry_has_a_citation_in_the_bibliography(kb):
    refs = load_references()
    for name, entry in sourced_entries(kb):
        assert entry.citations, name
        assert set(entry.citations) <= set(refs), name


def test_a_confirmed_claim_cites_at_least_one_checked_record(kb):
    refs = load_references()
    for name, entry in sourced_entries(kb):
        if entry.status == "confirmed":
            assert any(refs[c].confirmed for c in entry.citations), name


def test_every_format_describes_donors_incubation_readouts_and_practicalities(kb):
    for f in kb.formats.values():
        assert f.donors and f.incubation and f.readouts, f.key
        assert 1 <= f.cost <= 3 and 1 <= f.throughput <= 3 and 1 <= f.complexity <= 3
        assert all(d.level in LEVELS or d.option for d in f.detects), f.key


def test_tgn1412_is_missed_by_pbmc_aqueous_and_flagged_by_the_formats_that_revealed_it(kb):
    assert "tgn1412" in kb.format("pbmc_aqueous").missed()
    for key in (
        "pbmc_high_density_preculture",
        "pbmc_endothelial_coculture",
        "pbmc_solid_phase_dry",
    ):
        assert "tgn1412" in kb.format(key).flagged(), key


def test_a_literature_disagreement_is_a_documented_option(kb):
    default = kb.detection("whole_blood", "cd28_superagonism")
    assert (default.option, default.choice, default.level) == (
        "whole_blood_cd28_superagonist",
        "weak",
        "weak",
    )
    other = kb.detection(
        "whole_blood", "cd28_superagonism", {"whole_blood_cd28_superagonist": "no"}
    )
    assert other.level == "no"
    assert other.citations == ("vessillier2015",)
    assert "n = 52" in other.note  # both sides are sourced: the user chooses
    with pytest.raises(InputError, match="unknown choice"):
        kb.detection("whole_blood", "cd28_superagonism", {"whole_blood_cd28_superagonist": "maybe"})


def test_modality_aliases_and_unknown_names(kb):
    assert kb.modality("CD3-bispecific").key == "cd3_bispecific"
    assert kb.modality("TGN1412").key == "cd28_superagonist"
    with pytest.raises(InputError) as err:
        kb.modality("antisense")
    assert err.value.field == "modality" and "cd28_superagonist" in err.value.expected


def test_unverified_references_are_marked_unconfirmed():
    refs = load_references()
    assert refs["clerbaux_iraop"].checked == "unconfirmed"
    assert "[unconfirmed]" in refs["clerbaux_iraop"].formatted()
    assert not refs["clerbaux_iraop"].confirmed
    assert refs["romer2011"].checked == "abstract"


def edited_copy(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = data_path(name).read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_a_bad_level_names_the_file_the_entry_and_the_field(tmp_path):
    path = edited_copy(
        tmp_path,
        "assay_formats.toml",
        'mechanism = "fcgr_crosslinking"\nlevel = "yes"',
        'mechanism = "fcgr_crosslinking"\nlevel = "maybe"',
    )
    with pytest.raises(InputError) as err:
        load_knowledge_base(formats_path=path)
    e = err.value
    assert e.file == str(path)
    assert re.search(r"format\[0\] 'whole_blood'\.detects\[0\]\.level", e.field)
    assert "yes" in e.expected and "'maybe'" in str(e)


def test_an_unknown_citation_key_is_an_error(tmp_path):
    path = edited_copy(
        tmp_path,
        "drug_modalities.toml",
        'citations = ["eastwood2010", "iwata2016"]',
        'citations = ["smith1999"]',
    )
    with pytest.raises(InputError, match="smith1999") as err:
        load_knowledge_base(modalities_path=path)
    assert err.value.field.endswith(".citations")


def test_an_entry_without_citations_is_an_error(tmp_path):
    path = edited_copy(
        tmp_path,
        "drug_modalities.toml",
        'citations = ["eastwood2010", "iwata2016"]',
        "citations = []",
    )
    with pytest.raises(InputError, match="is empty"):
        load_knowledge_base(modalities_path=path)


def test_an_unknown_mechanism_is_an_error(tmp_path):
    path = edited_copy(
        tmp_path,
        "assay_formats.toml",
        'mechanism = "fcgr_crosslinking"\nlevel = "yes"',
        'mechanism = "telepathy"\nlevel = "yes"',
    )
    with pytest.raises(InputError, match="telepathy"):
        load_knowledge_base(formats_path=path)


def test_invalid_toml_keeps_the_parser_position(tmp_path):
    path = tmp_path / "assay_formats.toml"
    path.write_text('schema = "cytosafe.assay_formats"\nversion = \n', encoding="utf-8")
    with pytest.raises(InputError, match="line 2") as err:
        load_knowledge_base(formats_path=path)
    assert err.value.file == str(path)
