"""Evidence mapping: which key events a study's assay results and a cohort's findings move."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cytosafe.aop import aop_svg, load_crs_aop
from cytosafe.aop.evidence import (
    evidence_exclusions,
    evidence_from_findings,
    evidence_from_responses,
    findings_from_timeline,
    map_evidence,
    normalise_readout,
)
from cytosafe.errors import InputError

TRUTH = Path(__file__).resolve().parents[1] / "examples" / "cra-study" / "truth" / "responders.csv"


def responses(rows):
    return pd.DataFrame(
        rows, columns=["donor_id", "treatment", "treatment_role", "assay_format", "analyte",
                       "responder"],
    )  # fmt: skip


def by_event(records):
    return {r.event: r for r in records}


def test_spellings_of_one_readout_match():
    assert normalise_readout("IFN-γ") == normalise_readout("IFN-g") == normalise_readout("IFNG")
    assert normalise_readout("IL-1β") == normalise_readout("IL-1b")
    assert normalise_readout("TNF-α") == normalise_readout("TNF")
    assert normalise_readout("IL-10") != normalise_readout("IL-1")


def test_donors_count_once_per_key_event_over_its_readouts():
    # Hand-counted: three donors; IL-6 moved in D1 and D2, IFN-g in D3, IL-2 nowhere.
    aop = load_crs_aop()
    table = responses(
        [
            ("D1", "TA", "test", "whole_blood", "IL-6", True),
            ("D2", "TA", "test", "whole_blood", "IL-6", True),
            ("D3", "TA", "test", "whole_blood", "IL-6", False),
            ("D1", "TA", "test", "whole_blood", "IFN-g", False),
            ("D2", "TA", "test", "whole_blood", "IFN-g", False),
            ("D3", "TA", "test", "whole_blood", "IFN-g", True),
            ("D1", "TA", "test", "whole_blood", "IL-2", False),
            ("D1", "CD3", "positive_control", "whole_blood", "IL-2", True),  # not a test article
        ]
    )
    ev = by_event(evidence_from_responses(aop, table, study="S"))
    # myeloid activation reads IL-6 (not IFN-g): D1, D2 of 3
    assert (ev["ke_myeloid_activation"].n_positive, ev["ke_myeloid_activation"].n_total) == (2, 3)
    # T-cell activation reads IFN-g and IL-2: D3 only, of 3 donors
    assert (ev["ke_t_cell_activation"].n_positive, ev["ke_t_cell_activation"].n_total) == (1, 3)
    # systemic release reads both: every donor moved something
    assert ev["ke_systemic_cytokine_release"].n_positive == 3
    assert "IFN-g, IL-6 moved" in ev["ke_systemic_cytokine_release"].note
    # nothing measured the barrier: no record (absence of data is not absence of effect)
    assert "ke_vascular_leak" not in ev
    assert all(r.source == "assay" and r.unit == "donors" for r in ev.values())


def test_clinical_findings_reach_the_vascular_leak_and_release_events():
    aop = load_crs_aop()
    timeline = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P2", "P3"],
            "fever": [True, False, True, False],
            "hypotension": [False, True, False, False],
            "hypoxia": [False, False, False, False],
        }
    )
    findings = findings_from_timeline(timeline)
    assert len(findings) == 9  # 3 patients x 3 findings
    ev = by_event(evidence_from_findings(aop, findings))
    leak = ev["ke_vascular_leak"]  # hypotension or hypoxia: P1 only
    assert (leak.n_positive, leak.n_total, leak.unit) == (1, 3, "patients")
    assert (ev["ke_systemic_cytokine_release"].n_positive) == 2  # fever: P1, P2


def test_the_example_study_lights_up_the_pathway_for_ta1_not_ta2():
    aop = load_crs_aop()
    truth = pd.read_csv(TRUTH)
    table, lit = map_evidence(aop, responses=truth, study="CRA-EX-001")
    release = table[(table["event"] == "ke_systemic_cytokine_release")]
    ta1 = release[release["note"].str.startswith("TA-1 in whole_blood")].iloc[0]
    ta2 = release[release["note"].str.startswith("TA-2 in whole_blood")].iloc[0]
    # the README of the example: TA-1 releases cytokines in most donors, TA-2 in none
    assert ta1["n_positive"] >= 6 and ta1["n_total"] == 8
    assert ta2["n_positive"] == 0
    assert {"ke_systemic_cytokine_release", "ke_t_cell_activation"} <= lit
    svg = aop_svg(aop, highlight=lit)
    assert svg.count('class="event') > 0 and "highlight" in svg


def test_missing_columns_and_empty_requests_are_named():
    aop = load_crs_aop()
    with pytest.raises(InputError, match="responder"):
        evidence_from_responses(aop, responses([]).drop(columns="responder"))
    with pytest.raises(InputError, match="nothing to map"):
        map_evidence(aop)


def test_the_command_writes_the_table_and_the_highlighted_figure(tmp_path):
    from typer.testing import CliRunner

    from cytosafe.cli import app

    out = tmp_path / "map"
    res = CliRunner().invoke(app, ["aop", "map", "--responses", str(TRUTH), "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "evidence.csv")
    # test articles, and the positive controls as the assay's own sensitivity evidence
    assert set(table["source"]) == {"assay", "positive control"}
    assert (table["n_total"] == 8).all()
    assert (out / "excluded.csv").exists()
    assert "highlight" in (out / "crs_aop_evidence.svg").read_text()
    bad = CliRunner().invoke(app, ["aop", "map", "--responses", str(tmp_path / "no.csv"),
                                   "--out", str(out)])  # fmt: skip
    assert bad.exit_code == 2 and "no.csv" in bad.output


def test_a_graded_cohort_timeline_maps_to_the_clinical_key_events(tmp_path):
    from cytosafe.clinical import grade

    # Two simulated patients: P1 febrile then on norepinephrine; P2 afebrile on room air.
    obs = pd.DataFrame(
        [
            ("P1", "2024-01-01T08:00", "infusion", "CAR-T", ""),
            ("P1", "2024-01-02T08:00", "temperature", "38.6", "C"),
            ("P1", "2024-01-02T20:00", "norepinephrine", "5", "ug/min"),
            ("P2", "2024-01-01T08:00", "infusion", "CAR-T", ""),
            ("P2", "2024-01-02T08:00", "temperature", "37.2", "C"),
            ("P2", "2024-01-02T08:00", "oxygen_device", "room_air", ""),
        ],
        columns=["patient_id", "time", "item", "value", "unit"],
    )
    timeline = grade(obs, scale="astct2019").timeline
    findings = findings_from_timeline(timeline).set_index(["patient_id", "finding"])["present"]
    assert findings[("P1", "fever")] and findings[("P1", "hypotension")]
    assert not findings[("P2", "fever")] and not findings[("P2", "hypoxia")]
    ev = by_event(evidence_from_findings(load_crs_aop(), findings.reset_index()))
    assert (ev["ke_vascular_leak"].n_positive, ev["ke_vascular_leak"].n_total) == (1, 2)


# --- mechanism-aware mapping (issue 18, item 5) ----------------------------------------------


def test_ta1_as_a_cd3_bispecific_lights_cd3_engagement_not_cd28_or_fcgr():
    # TA-1 is a CD3 x CD20 bispecific (examples/cra-study/README.md): its mechanism is
    # target-dependent CD3 engagement (drug_modalities.toml; Kerns 2021)
    aop = load_crs_aop()
    table, lit = map_evidence(aop, responses=pd.read_csv(TRUTH), modality="cd3_bispecific")
    assert "mie_cd3_engagement" in lit
    assert not {"mie_cd28_superagonism", "mie_fcgr_engagement"} & lit
    assert not table["event"].isin(["mie_cd28_superagonism", "mie_fcgr_engagement"]).any()
    cd3 = table[(table["event"] == "mie_cd3_engagement") & table["note"].str.startswith("TA-1")]
    assert (cd3["n_positive"] >= 7).all()


def test_fcgr_engagement_follows_the_fc_format():
    aop = load_crs_aop()
    truth = pd.read_csv(TRUTH)
    _, lit = map_evidence(aop, responses=truth, modality="cd3_bispecific", fc_format="igg1")
    assert "mie_fcgr_engagement" in lit
    _, lit = map_evidence(
        load_crs_aop(), responses=truth, modality="cd3_bispecific", fc_format="fc_silent"
    )
    assert "mie_fcgr_engagement" not in lit
    why = evidence_exclusions(load_crs_aop(), truth, modality="cd3_bispecific")
    fcgr = why[why["event"] == "mie_fcgr_engagement"]["reason"]
    assert fcgr.str.contains("--fc-format").all() and len(fcgr)


def test_without_a_modality_no_mie_gets_evidence():
    aop = load_crs_aop()
    table, lit = map_evidence(aop, responses=pd.read_csv(TRUTH))
    assert not any(e.startswith("mie_") for e in lit)
    assert not table["event"].str.startswith("mie_").any()


def test_il6_and_il8_from_pbmc_or_whole_blood_are_not_endothelial_activation():
    aop = load_crs_aop()
    rows = [
        (d, "TA", "test", fmt, a, True)
        for d in ("D1", "D2")
        for fmt in ("pbmc_aqueous", "whole_blood", "pbmc_endothelial_coculture")
        for a in ("IL-6", "IL-8")
    ]
    ev = evidence_from_responses(aop, responses(rows), modality="igg1_mab")
    endothelial = [r for r in ev if r.event == "ke_endothelial_activation"]
    # only the co-culture with endothelium (Findlay 2011: HUVEC) counts
    assert [r.note.split(":")[0] for r in endothelial] == ["TA in pbmc_endothelial_coculture"]
    why = evidence_exclusions(aop, responses(rows), modality="igg1_mab")
    e = why[why["event"] == "ke_endothelial_activation"]
    assert set(e["assay_format"]) == {"pbmc_aqueous", "whole_blood"}
    assert e["reason"].str.contains("holds no endothelial cells").all()
    # the same IL-6 still counts as myeloid activation in PBMC (monocytes are there)
    assert any(r.event == "ke_myeloid_activation" and "pbmc_aqueous" in r.note for r in ev)


def test_a_format_with_unknown_cells_counts_for_no_cell_bound_event():
    aop = load_crs_aop()
    table = responses([("D1", "TA", "test", "my_own_format", "IL-6", True)])
    assert evidence_from_responses(aop, table) == []
    why = evidence_exclusions(aop, table)
    assert why["reason"].str.contains("'my_own_format' is not described").all()


def test_study_format_aliases_are_understood():
    aop = load_crs_aop()
    table = responses([("D1", "TA", "test", "pbmc_high_density", "IL-2", True)])
    ev = by_event(evidence_from_responses(aop, table, modality="cd28_superagonist"))
    assert ev["mie_cd28_superagonism"].n_positive == 1
    assert "mie_cd3_engagement" not in ev


def test_positive_controls_are_mapped_as_sensitivity_evidence_and_do_not_light():
    aop = load_crs_aop()
    table = responses([("D1", "anti-CD3", "positive_control", "whole_blood", "IL-2", True)])
    out, lit = map_evidence(aop, responses=table, modality="cd3_bispecific")
    assert set(out["source"]) == {"positive control"}
    assert out["note"].str.contains("the assay's own sensitivity").all()
    assert not out["event"].str.startswith("mie_").any()
    assert lit == set()


def test_an_unknown_modality_or_fc_format_is_an_input_error():
    aop = load_crs_aop()
    table = responses([("D1", "TA", "test", "whole_blood", "IL-2", True)])
    with pytest.raises(InputError, match="modality"):
        evidence_from_responses(aop, table, modality="nonsense")
    with pytest.raises(InputError, match="Fc format"):
        evidence_from_responses(aop, table, modality="igg1_mab", fc_format="igg9")


def test_the_command_maps_through_the_modality(tmp_path):
    from typer.testing import CliRunner

    from cytosafe.cli import app

    out = tmp_path / "m"
    res = CliRunner().invoke(
        app,
        [
            "aop",
            "map",
            "--responses",
            str(TRUTH),
            "--modality",
            "cd3_bispecific",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "evidence.csv")
    assert "mie_cd3_engagement" in set(table["event"])
    assert "mie_cd28_superagonism" not in set(table["event"])
    excluded = pd.read_csv(out / "excluded.csv")
    assert "ke_endothelial_activation" in set(excluded["event"])


def test_the_map_has_a_legend_numbers_beside_colours_and_fits_1440_px():
    import re

    aop = load_crs_aop()
    table, lit = map_evidence(aop, responses=pd.read_csv(TRUTH), modality="cd3_bispecific")
    svg = aop_svg(aop, highlight=lit, modality="cd3_bispecific", evidence=table)
    assert 'class="legend"' in svg and "filled: a response was shown" in svg
    # CD3 engagement: TA-1 responded in 8 of 8 donors in PBMC (examples/cra-study truth)
    cd3 = re.search(r'data-key="mie_cd3_engagement".*?class="numbers"[^>]*>([^<]*)<', svg, re.S)
    assert cd3 and cd3.group(1) == "8/8 donors"
    t_cell = re.search(
        r'data-key="ke_t_cell_activation".*?class="numbers"[^>]*>([^<]*)<', svg, re.S
    )
    assert "PC 8/8 donors" in t_cell.group(1)
    width = int(re.search(r'<svg[^>]* width="(\d+)"', aop_svg(load_crs_aop())).group(1))
    assert width <= 1440 - 64  # the page's 2rem margins
