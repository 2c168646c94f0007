"""The reference compound library and the calibration of the hazard call against it.

Published figures checked here (each typed from its source):

* Vessillier et al. J Immunol Methods 2015;424:43-52, Table 2: relative mean cytokine
  release over the isotype control and the donors needed for 90 % power, TGN1412 in
  PBMC solid phase 110.9 (4 donors), PBMC high-density culture 4.4 (27), whole blood 2.2
  (52); muromonab-CD3 32.9 (4), 4.0 (31), 0.9 (4519); alemtuzumab 1.2 (180), 1.5 (341),
  5.5 (8).
* Iwata Y et al. J Toxicol Sci 2016;41:523 (abstract): 9 donors give 90 % power against a
  CD28 superagonist in whole blood, "a practical test design" (the default donor panel).
* Suntharalingam G et al. N Engl J Med 2006;355:1018: CRS in 6 of 6 volunteers at 0.1 mg/kg.
* Moreau P et al. N Engl J Med 2022;387:495 and Martin TG et al. Cancer 2023;129:2035:
  teclistamab CRS 72.1 % (119/165), grade 3 in 0.6 %.
* Hay KA et al. Blood 2017;130:2295: CD19 CAR-T CRS 70 %; grade 3 4.5 %, 4 3.8 %, 5 3.8 %.
* MHRA Drug Safety Update 2010;3(11):5: bevacizumab infusion/hypersensitivity reactions up
  to 5 % in clinical trials. TYSABRI label (AFFIRM): infusion reactions 24 % vs 18 % on
  placebo, 627 patients.
* Gökbuget N et al. Blood 2018;131:1522: blinatumomab in MRD-positive ALL, CRS in 4 of 116
  patients (3 %), 2 of them grade 3.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import typer
from scipy.stats import binomtest
from typer.testing import CliRunner

from cytosafe import data
from cytosafe.cli import EXIT_INPUT_ERROR, reporting_errors
from cytosafe.cli.reference import REFERENCE_FILES, evaluate_command
from cytosafe.errors import InputError
from cytosafe.reference import (
    DISCLAIMER,
    clopper_pearson,
    evaluate,
    expected_detection,
    load_library,
)

DEFAULT = "fold2_above_lloq"  # hazard_rules.toml default_rule_set


@pytest.fixture(scope="module")
def library():
    return load_library()


@pytest.fixture(scope="module")
def default_calls():
    return evaluate(DEFAULT).calls.set_index(["compound", "format"])


def _call(calls: pd.DataFrame, compound: str, fmt: str) -> str:
    return calls.loc[(compound, fmt), "call"]


# --- the library --------------------------------------------------------------------------


def test_the_library_loads_and_every_figure_names_its_source_and_location(library):
    assert len(library.compounds) >= 12
    assert len({c.modality for c in library.compounds.values()}) >= 6
    for c in library.compounds.values():
        assert c.clinical.source in library.sources
        assert c.clinical.location.strip()
        for r in c.readouts:
            assert r.citation in library.sources, (c.key, r)
            assert r.location.strip(), (c.key, r)
    table = library.readouts_table()
    assert table["source"].str.len().gt(20).all()
    assert table["location"].str.strip().astype(bool).all()


def test_the_library_holds_positives_and_negatives_across_modalities(library):
    compounds = library.compounds_table().set_index("compound")
    positives = set(compounds.index[compounds["crs_any"]])
    negatives = set(compounds.index[~compounds["crs_any"]])
    assert {"tgn1412", "muromonab_cd3", "alemtuzumab", "blinatumomab", "teclistamab"} <= positives
    assert {"bevacizumab", "natalizumab"} <= negatives
    assert compounds.loc["teplizumab", "fc_format"].startswith("fc_silent")
    assert compounds.loc["cd19_car_t_fhcrc", "modality"] == "car_t"


def test_teplizumab_fc_silent_anti_cd3_still_causes_crs_per_its_label(library):
    # TZIELD US label (2023), Warnings and Precautions 5.1: CRS in 5 % of TZIELD-treated
    # against 0.8 % of control-treated patients; the section gives no grade >= 3 figure.
    o = library.compound("teplizumab").clinical
    assert o.crs_any is True and o.crs_any_percent == 5
    assert o.crs_severe is None
    assert o.source == "tzield_label" and "5.1" in o.location and o.confirmed


def test_catumaxomab_cytokine_release_up_to_grade_3_per_its_smpc(library):
    # Removab SmPC (EMA, 2017), section 4.4: cytokine release related symptoms of up to
    # CTCAE grade 3 despite premedication; 4.2: 10, 20, 50, 150 micrograms i.p.
    o = library.compound("catumaxomab").clinical
    assert o.crs_any is True and o.crs_severe is True and o.confirmed
    assert o.crs_any_percent is None  # the SmPC gives a frequency category only
    assert "10" in o.dose and "150" in o.dose and "4.4" in o.location


def test_vessillier_2015_table_2_as_published(library):
    expected = {  # (compound, format): (relative mean, donors for 90 % power)
        ("tgn1412", "pbmc_solid_phase_dry"): (110.9, 4),
        ("tgn1412", "pbmc_high_density_preculture"): (4.4, 27),
        ("tgn1412", "whole_blood"): (2.2, 52),
        ("muromonab_cd3", "pbmc_solid_phase_dry"): (32.9, 4),
        ("muromonab_cd3", "pbmc_high_density_preculture"): (4.0, 31),
        ("muromonab_cd3", "whole_blood"): (0.9, 4519),
        ("alemtuzumab", "pbmc_solid_phase_dry"): (1.2, 180),
        ("alemtuzumab", "pbmc_high_density_preculture"): (1.5, 341),
        ("alemtuzumab", "whole_blood"): (5.5, 8),
    }
    got = {
        (r.compound, r.format): (r.value, r.donors_for_power)
        for c in library.compounds.values()
        for r in c.readouts
        if r.citation == "vessillier2015"
    }
    assert got == expected


def test_clinical_outcomes_as_published(library):
    tgn = library.compound("tgn1412").clinical
    assert (tgn.patients, tgn.crs_any_percent, tgn.crs_severe) == (6, 100.0, True)
    assert "0.1 mg/kg" in tgn.dose
    tec = library.compound("teclistamab").clinical
    assert (tec.crs_any_percent, tec.crs_severe_percent, tec.patients) == (72.1, 0.6, 165)
    blin = library.compound("blinatumomab").clinical  # Gökbuget 2018: 4 of 116, 2 grade 3
    assert (blin.patients, blin.crs_any_percent, blin.crs_severe) == (116, 3.0, True)
    nat = library.compound("natalizumab").clinical  # AFFIRM: infusion reactions 24 % vs 18 %
    assert (nat.crs_any, nat.crs_severe, nat.patients) == (False, False, 627)
    assert "24 % vs 18 %" in nat.location
    assert "up to 5 %" in library.compound("bevacizumab").clinical.location  # MHRA 2010
    car = library.compound("cd19_car_t_fhcrc").clinical
    assert car.crs_any_percent == 70.0
    assert car.crs_severe_percent == pytest.approx(4.5 + 3.8 + 3.8)


def test_what_could_not_be_confirmed_is_marked(library):
    unconfirmed = {k for k, c in library.compounds.items() if not c.clinical.confirmed}
    # Labels not read: their figures are absent and the outcome is marked.
    assert {"rituximab", "cetuximab", "glofitamab"} <= unconfirmed
    for key in unconfirmed:
        assert library.compound(key).clinical.note, key


# --- calibration: the hand-checked expectations ---------------------------------------------


def test_the_default_donor_panel_is_cited_in_the_library(library):
    # Iwata 2016 (abstract): 9 donors, their 90 %-power group size for a CD28
    # superagonist in whole blood, make "a practical test design".
    panel = library.donor_panel
    assert panel.donors == 9
    assert {"iwata2016", "vessillier2015"} <= set(panel.citations)
    assert "practical" in panel.basis
    assert evaluate(DEFAULT).settings["donors"] == 9
    assert "Iwata" in evaluate(DEFAULT).settings["donor_panel"]


def test_whole_blood_misses_tgn1412_under_the_default_rule_and_panel(default_calls):
    # Vessillier's whole-blood relative mean (2.2) clears the 2-fold rule on the mean, but
    # a study needs 52 donors for 90 % power to show it: the panel of 9 cannot.
    assert _call(default_calls, "tgn1412", "whole_blood") == "not detected"
    assert default_calls.loc[("tgn1412", "whole_blood"), "max_fold_change"] == 2.2
    assert (
        "needs 52 donors for 90 % power and the study has 9"
        in (default_calls.loc[("tgn1412", "whole_blood"), "reasons"])
    )
    stringent = evaluate("stringent").calls.set_index(["compound", "format"])
    assert _call(stringent, "tgn1412", "whole_blood") == "not detected"


def test_pbmc_solid_phase_detects_tgn1412_with_the_default_panel(default_calls):
    # 110.9-fold, 4 donors for 90 % power: within a panel of 9.
    assert _call(default_calls, "tgn1412", "pbmc_solid_phase_dry") == "detected"
    assert (
        "needs 4 donors for 90 % power, within the study's 9"
        in (default_calls.loc[("tgn1412", "pbmc_solid_phase_dry"), "reasons"])
    )


def test_high_density_preculture_needs_27_donors_to_detect_tgn1412(default_calls):
    # 4.4-fold passes the rule, but Vessillier's Table 2 asks 27 donors for 90 % power:
    # with the cited panel of 9 high-density pre-culture does not count as detecting it.
    # Romer 2011's qualitative "massive release" is kept, not evaluable.
    assert _call(default_calls, "tgn1412", "pbmc_high_density_preculture") == "not detected"
    row = default_calls.loc[("tgn1412", "pbmc_high_density_preculture")]
    assert "needs 27 donors" in row["reasons"] and "positive" in row["published_calls"]


@pytest.mark.parametrize("donors", [27, 51])
def test_a_panel_of_27_to_51_donors_sees_tgn1412_in_hdc_and_misses_it_in_whole_blood(donors):
    calls = evaluate(DEFAULT, donors=donors).calls.set_index(["compound", "format"])
    assert _call(calls, "tgn1412", "whole_blood") == "not detected"
    assert _call(calls, "tgn1412", "pbmc_high_density_preculture") == "detected"
    misses = evaluate(DEFAULT, donors=donors).misses
    wb = misses[(misses["format"] == "whole_blood") & (misses["compound"] == "tgn1412")]
    assert "52 donors" in wb["reasons"].iloc[0]
    assert "cd28_superagonism (primary): weak" in wb["mechanisms_in_format"].iloc[0]


def test_on_the_mean_alone_whole_blood_passes_tgn1412_at_2_2_fold():
    calls = evaluate(DEFAULT, donors=None).calls.set_index(["compound", "format"])
    for fmt in ("whole_blood", "pbmc_high_density_preculture", "pbmc_solid_phase_dry"):
        assert _call(calls, "tgn1412", fmt) == "detected", fmt
    assert "judged on the mean alone" in calls.loc[("tgn1412", "whole_blood"), "reasons"]
    assert evaluate(DEFAULT, donors=None).settings["donor_panel"].startswith("not applied")


def test_a_numpy_whole_number_is_a_donor_panel():
    import numpy as np

    calls = evaluate(DEFAULT, donors=np.int64(52)).calls.set_index(["compound", "format"])
    assert _call(calls, "tgn1412", "whole_blood") == "detected"  # 52 donors for 90 % power


@pytest.mark.parametrize("donors", [0, -3, 2.5, True, "nine"])
def test_a_donor_panel_that_is_not_a_whole_number_is_refused(donors):
    with pytest.raises(InputError, match="donors"):
        evaluate(DEFAULT, donors=donors)


def test_whole_blood_misses_muromonab_and_the_mechanism_explains_it():
    ev = evaluate(DEFAULT)
    m = ev.misses.set_index(["format", "compound", "endpoint"])
    row = m.loc[("whole_blood", "muromonab_cd3", "CRS of any grade")]
    assert row["kind"] == "missed"
    assert "cd3_tcr_direct (primary): no" in row["mechanisms_in_format"]


def test_blinatumomab_is_expected_only_in_formats_with_target_cells():
    # Brandl 2007 (abstract): MT103 (blinatumomab) made T cells secrete IL-2, TNF-a,
    # IFN-g, IL-6, IL-10 and IL-4 in the presence of target cells; no numbers, no culture
    # without target cells reported. So the library's one readout is qualitative (not
    # evaluable) and in a target-cell format; "only with target cells" rests on the assay
    # knowledge base, stated as such.
    ev = evaluate(DEFAULT)
    calls = ev.calls[ev.calls["compound"] == "blinatumomab"].set_index("format")
    assert list(calls.index) == ["target_cell_coculture"]
    row = calls.loc["target_cell_coculture"]
    assert row["call"] == "not evaluable" and row["published_calls"] == "positive"
    assert row["expected_detection"] == "yes"
    e = expected_detection("blinatumomab").set_index("format")["level"]
    assert set(e.index[e == "yes"]) == {"target_cell_coculture", "organ_on_chip"}
    # CD19 is on B cells: formats culturing blood leukocytes hold a few target cells ...
    for fmt in ("whole_blood", "pbmc_aqueous", "pbmc_high_density_preculture"):
        assert e[fmt] == "weak"
    # ... formats without them see nothing
    assert set(e.index[e == "no"]) == {"microfluidic_3d_vessel", "car_t_target_coculture"}


def test_an_engager_whose_target_is_not_placed_on_blood_cells_needs_target_cells():
    e = expected_detection("teclistamab").set_index("format")["level"]
    # BCMA (myeloma cells) is not among the knowledge base's blood-cell targets
    assert e["whole_blood"] == "no" and e["target_cell_coculture"] == "yes"


def test_whole_blood_holds_the_targets_of_a_cd20_engager(default_calls):
    # Leclercq-Cohen 2023 (abstract): CD20-TCB releases cytokines in whole blood.
    row = default_calls.loc[("glofitamab", "whole_blood")]
    assert row["call"] == "not evaluable"  # qualitative only
    assert row["published_calls"] == "positive"
    assert row["expected_detection"] == "weak"


def test_negative_antibodies_with_only_qualitative_results_are_not_evaluable(default_calls):
    assert _call(default_calls, "cetuximab", "whole_blood") == "not evaluable"
    assert default_calls.loc[("cetuximab", "whole_blood"), "published_calls"] == "negative"
    perf = evaluate(DEFAULT).performance.set_index(["format", "endpoint"])
    row = perf.loc[("whole_blood", "CRS of any grade")]
    assert row["fp"] == 0 and "cetuximab" in row["not_evaluable"]


# --- the authors' qualitative calls (qualitative="authors") -------------------------------


@pytest.fixture(scope="module")
def authors_eval():
    return evaluate(DEFAULT, qualitative="authors")


def test_counting_the_authors_calls_high_density_preculture_detects_tgn1412(authors_eval):
    # Romer 2011 (abstract): "massive cytokine release" with soluble TGN1412 after
    # high-density, not low-density, pre-culture; the preclinical PBMC tests had failed.
    # Vessillier 2015's 4.4-fold (27 donors for 90 % power) still misses with 9 donors.
    calls = authors_eval.calls.set_index(["compound", "format"])
    hdc = calls.loc[("tgn1412", "pbmc_high_density_preculture")]
    assert hdc["call"] == "detected" and hdc["basis"] == "authors' call"
    assert "needs 27 donors" in hdc["reasons"] and "the authors' call: positive" in hdc["reasons"]
    # whole blood still misses it (Vessillier 2015: 52 donors), aqueous PBMC missed it
    # (Romer 2011), and solid phase sees it by the rule (110.9-fold, 4 donors)
    assert _call(calls, "tgn1412", "whole_blood") == "not detected"
    assert calls.loc[("tgn1412", "whole_blood"), "basis"] == "rule"
    assert _call(calls, "tgn1412", "pbmc_aqueous") == "not detected"
    assert calls.loc[("tgn1412", "pbmc_solid_phase_dry"), "basis"] == "rule"


def test_counting_the_authors_calls_clears_a_negative_antibody(authors_eval):
    # cetuximab: no CRS in its label; whole blood negative as its authors call it.
    calls = authors_eval.calls.set_index(["compound", "format"])
    assert _call(calls, "cetuximab", "whole_blood") == "not detected"
    perf = authors_eval.performance.set_index(["format", "endpoint"])
    row = perf.loc[("whole_blood", "CRS of any grade")]
    assert (row["fp"], row["tn"]) == (0, 1)
    assert row["specificity"] == 1.0
    # exact 95 % interval of 1 of 1: (0.025)^(1/1) = 2.5 % to 100 %
    assert row["specificity_ci_low"] == pytest.approx(0.025)
    assert row["specificity_ci_high"] == 1.0
    assert "cetuximab" in row["on_authors_call"] and "cetuximab" not in row["not_evaluable"]


def test_counting_the_authors_calls_blinatumomab_is_detected_with_target_cells(authors_eval):
    # Brandl 2007 (abstract): cytokines in the presence of target cells
    calls = authors_eval.calls[authors_eval.calls["compound"] == "blinatumomab"]
    assert calls[["format", "call", "basis"]].values.tolist() == [
        ["target_cell_coculture", "detected", "authors' call"]
    ]


def test_a_weak_call_decides_neither_way(authors_eval):
    calls = authors_eval.calls.set_index(["compound", "format"])
    # bevacizumab in PBMC solid phase: the authors call it weak, no number
    assert _call(calls, "bevacizumab", "pbmc_solid_phase_dry") == "not evaluable"
    assert calls.loc[("bevacizumab", "pbmc_solid_phase_dry"), "basis"] == ""


def test_the_default_counts_no_authors_call(default_calls):
    assert set(default_calls["basis"]) <= {"rule", ""}
    settings = evaluate(DEFAULT).settings
    assert settings["qualitative"].startswith("not_evaluable")
    assert any("not evaluable" in a for a in settings["assumptions"])


@pytest.mark.parametrize("value", ["author", "", None, "published"])
def test_an_unknown_way_to_count_qualitative_results_is_refused(value):
    with pytest.raises(InputError, match="qualitative"):
        evaluate(DEFAULT, qualitative=value)


def _library_file(tmp_path: Path, extra: str = "", readout: str | None = None) -> Path:
    readout = readout or textwrap.dedent(
        """
        [[compound.readout]]
        format = "whole_blood"
        measure = "fold_change"
        value = 1.1
        analyte = "IL-8"
        comparator = "isotype control"
        citation = "paper"
        location = "Table 1"
        confirmed = true
        """
    )
    text = textwrap.dedent(
        """
        schema = "cytosafe.reference_compounds"
        version = "test"

        [[reference]]
        key = "paper"
        citation = "A paper, 2020."

        [[compound]]
        key = "benign"
        name = "A benign antibody"
        modality = "igg1_mab"
        target = "EGFR"
        mechanisms = ["fcgr_crosslinking"]
        fc_format = "igg1"
        """
    )
    text += extra
    text += textwrap.dedent(
        """
        [compound.clinical]
        event = "none"
        crs_any = false
        crs_severe = false
        dose = "label"
        source = "paper"
        location = "Table 2"
        confirmed = true
        """
    )
    path = tmp_path / "library.toml"
    path.write_text(text + readout, encoding="utf-8")
    return path


def test_a_negative_control_antibody_with_a_published_number_is_cleared(tmp_path):
    lib = load_library(_library_file(tmp_path))
    ev = evaluate(DEFAULT, library=lib)
    assert ev.calls["call"].tolist() == ["not detected"]
    row = ev.performance.set_index("endpoint").loc["CRS of any grade"]
    assert (row["tn"], row["fp"], row["specificity"]) == (1, 0, 1.0)
    assert (row["specificity_ci_low"], row["specificity_ci_high"]) == pytest.approx((0.025, 1.0))


def test_a_rule_the_readout_cannot_decide_is_not_evaluable_not_a_miss(tmp_path):
    lib = load_library(_library_file(tmp_path))
    ev = evaluate("fold2_increase_lloq", library=lib)  # needs the paper's LLOQ
    # fold change 1.1 already fails the 2-fold condition: decided without the LLOQ
    assert ev.calls["call"].tolist() == ["not detected"]
    high = _library_file(tmp_path, readout=_readout_text(value="30.0"))
    ev = evaluate("fold2_increase_lloq", library=load_library(high))
    assert ev.calls["call"].tolist() == ["not evaluable"]
    assert "min_difference_lloq" in ev.readouts["reason"].iloc[0]


def test_only_a_qualitative_result_is_counted_by_its_authors_call(tmp_path):
    # A range across donors carries the authors' call too, but it is a number the rule
    # cannot read, not a qualitative result: it stays not evaluable under "authors".
    ranged = _readout_text(value="1.1", value_high="30.0", published_call='"negative"')
    lib = load_library(_library_file(tmp_path, readout=ranged))
    ev = evaluate(DEFAULT, library=lib, qualitative="authors")
    assert ev.readouts[["call", "basis"]].values.tolist() == [["not evaluable", ""]]
    assert "range across donors" in ev.readouts["reason"].iloc[0]
    qualitative = _readout_text(measure='"qualitative"', value=None, published_call='"negative"')
    lib = load_library(_library_file(tmp_path, readout=qualitative))
    ev = evaluate(DEFAULT, library=lib, qualitative="authors")
    assert ev.readouts[["call", "basis"]].values.tolist() == [["not detected", "authors' call"]]


def test_a_readout_the_rule_cannot_decide_has_no_basis(tmp_path):
    high = _library_file(tmp_path, readout=_readout_text(value="30.0"))
    ev = evaluate("fold2_increase_lloq", library=load_library(high))
    assert ev.readouts[["call", "basis"]].values.tolist() == [["not evaluable", ""]]
    assert ev.calls[["call", "basis"]].values.tolist() == [["not evaluable", ""]]


def _readout_text(**fields: str | None) -> str:
    """A readout table; each field a TOML literal (None leaves the field out)."""
    base = {
        "format": '"whole_blood"',
        "measure": '"fold_change"',
        "value": "1.1",
        "analyte": '"IL-8"',
        "comparator": '"isotype"',
        "citation": '"paper"',
        "location": '"Table 1"',
        "confirmed": "true",
    }
    for key, value in fields.items():
        if value is None:
            base.pop(key)
        else:
            base[key] = value
    return "\n[[compound.readout]]\n" + "\n".join(f"{k} = {v}" for k, v in base.items()) + "\n"


def test_clopper_pearson_is_exact():
    assert clopper_pearson(0, 5) == pytest.approx((0.0, 1 - 0.025 ** (1 / 5)))
    assert clopper_pearson(5, 5) == pytest.approx((0.025 ** (1 / 5), 1.0))
    ci = binomtest(7, 12).proportion_ci(confidence_level=0.95, method="exact")
    assert clopper_pearson(7, 12) == pytest.approx((ci.low, ci.high))
    assert all(math.isnan(x) for x in clopper_pearson(0, 0))


# --- bad library entries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("readout", "field"),
    [
        (_readout_text(citation=None), "citation"),
        (_readout_text(location=None), "location"),
        (_readout_text(format='"whole_blood_diluted"'), "format"),
        (_readout_text(citation='"nobody2020"'), "citation"),
        (_readout_text(value="nan"), "value"),
        (_readout_text(value="-1.0"), "value"),
        (_readout_text(donors_for_power="4.5"), "donors_for_power"),
        (_readout_text(colour='"red"'), "colour"),
        (_readout_text(measure='"qualitative"'), "value"),
        (_readout_text(measure='"concentration"'), "unit"),
    ],
)
def test_a_bad_readout_is_an_input_error_naming_entry_and_field(tmp_path, readout, field):
    path = _library_file(tmp_path, readout=readout)
    with pytest.raises(InputError) as err:
        load_library(path)
    assert err.value.file == str(path)
    assert err.value.field == f"compound[0] 'benign'.readout[0].{field}"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('\nmodality_family = "mab"\n', "compound[0] 'benign'.modality_family"),
        ('\nfc_note = ""\n', "compound[0] 'benign'.fc_note"),
    ],
)
def test_a_bad_compound_is_an_input_error_naming_entry_and_field(tmp_path, extra, field):
    path = _library_file(tmp_path, extra=extra)
    with pytest.raises(InputError) as err:
        load_library(path)
    assert err.value.field == field


def test_a_modality_outside_the_vocabulary_is_an_input_error(tmp_path):
    path = _library_file(tmp_path)
    path.write_text(path.read_text().replace('"igg1_mab"', '"igg3_mab"'))
    with pytest.raises(InputError) as err:
        load_library(path)
    assert err.value.field == "compound[0] 'benign'.modality"
    assert "igg1_mab" in err.value.expected


def test_the_shipped_file_declares_its_schema():
    assert data.load("reference_compounds.toml")["schema"] == "cytosafe.reference_compounds"


# --- the command line -------------------------------------------------------------------------

app = typer.Typer()
app.command("evaluate")(reporting_errors(evaluate_command))
app.command("other")(lambda: None)  # keeps "evaluate" a subcommand
runner = CliRunner()


def test_cli_writes_the_calibration_tables(tmp_path):
    out = tmp_path / "cal"
    result = runner.invoke(app, ["evaluate", "--out", str(out), "--rule-set", DEFAULT])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(REFERENCE_FILES)
    perf = pd.read_csv(out / "performance.csv")
    assert set(perf["rule_set"]) == {DEFAULT}
    assert {"sensitivity", "sensitivity_ci_low", "specificity_ci_high"} <= set(perf.columns)
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert DISCLAIMER in summary
    assert "Vessillier" in summary
    assert "| TGN1412 (theralizumab) | yes (100 %) | yes (100 %) | 6 |" in summary
    compounds = pd.read_csv(out / "compounds.csv").set_index("compound")
    assert compounds.loc["teclistamab", "clinical_source_key"] == "moreau2022"
    assert DISCLAIMER in result.output


def test_cli_evaluates_every_shipped_rule_set_by_default(tmp_path):
    result = runner.invoke(app, ["evaluate", "--out", str(tmp_path / "o"), "--quiet"])
    assert result.exit_code == 0, result.output
    perf = pd.read_csv(tmp_path / "o" / "performance.csv")
    assert {"fold2_above_lloq", "stringent", "percent_of_positive"} <= set(perf["rule_set"])


def test_cli_reports_a_bad_library_in_one_line(tmp_path):
    path = _library_file(tmp_path, readout=_readout_text(location=None))
    result = runner.invoke(app, ["evaluate", "--out", str(tmp_path / "o"), "--library", str(path)])
    assert result.exit_code == EXIT_INPUT_ERROR
    assert "readout[0].location" in result.output
    assert not (tmp_path / "o").exists()


def test_cli_rejects_an_unknown_rule_set(tmp_path):
    result = runner.invoke(app, ["evaluate", "--out", str(tmp_path / "o"), "--rule-set", "x"])
    assert result.exit_code == EXIT_INPUT_ERROR
    assert "unknown responder rule set" in result.output


def test_confirmed_only_leaves_out_unconfirmed_outcomes_and_readouts():
    ev = evaluate(DEFAULT, confirmed_only=True)
    assert ev.settings["confirmed_only"] is True
    perf = ev.performance.set_index(["format", "endpoint"])
    row = perf.loc[("whole_blood", "CRS of any grade")]
    # muromonab-CD3's clinical outcome is marked unconfirmed in the library: unknown here
    assert "muromonab_cd3" in row["outcome_unknown"]
    # TGN1412 (confirmed: Suntharalingam 2006, 6 of 6) still counts: its 2.2-fold in whole
    # blood (Vessillier 2015, Table 2) passes the 2-fold rule on the mean, but needs 52
    # donors for 90 % power, so with the default panel of 9 it is the one miss
    assert (row["tp"], row["fn"]) == (0, 1)
    means = evaluate(DEFAULT, confirmed_only=True, donors=None).performance
    row = means.set_index(["format", "endpoint"]).loc[("whole_blood", "CRS of any grade")]
    assert (row["tp"], row["fn"]) == (1, 0)
    full = evaluate(DEFAULT).performance.set_index(["format", "endpoint"])
    assert "muromonab_cd3" not in full.loc[("whole_blood", "CRS of any grade"), "outcome_unknown"]


@pytest.mark.parametrize(
    ("args", "donors", "whole_blood"),
    [
        ([], 9, "not detected"),  # the library's cited panel (Iwata 2016)
        (["--donors", "52"], 52, "detected"),  # Vessillier 2015: 52 donors for 90 % power
        (["--mean-only"], None, "detected"),  # 2.2-fold on the mean alone
    ],
)
def test_cli_donor_panel(tmp_path, args, donors, whole_blood):
    out = tmp_path / "c"
    result = runner.invoke(
        app, ["evaluate", "--out", str(out), "--rule-set", DEFAULT, "--quiet", *args]
    )
    assert result.exit_code == 0, result.output
    settings = json.loads((out / "settings.json").read_text(encoding="utf-8"))
    assert settings["donors"] == donors
    calls = pd.read_csv(out / "calls.csv").set_index(["compound", "format"])
    assert calls.loc[("tgn1412", "whole_blood"), "call"] == whole_blood
    assert "donor panel" in (out / "summary.md").read_text(encoding="utf-8")


def test_cli_counts_the_authors_calls_on_request(tmp_path):
    out = tmp_path / "c"
    result = runner.invoke(
        app,
        ["evaluate", "--out", str(out), "--rule-set", DEFAULT, "--qualitative", "authors"],
    )
    assert result.exit_code == 0, result.output
    calls = pd.read_csv(out / "calls.csv", keep_default_na=False).set_index(["compound", "format"])
    assert calls.loc[("tgn1412", "pbmc_high_density_preculture"), "basis"] == "authors' call"
    assert json.loads((out / "settings.json").read_text())["qualitative"].startswith("authors")
    assert "on the authors' call" in (out / "summary.md").read_text(encoding="utf-8")


def test_cli_refuses_an_unknown_way_to_count_qualitative_results(tmp_path):
    result = runner.invoke(
        app, ["evaluate", "--out", str(tmp_path / "c"), "--qualitative", "not_evaluable"]
    )
    assert result.exit_code == EXIT_INPUT_ERROR
    assert "--qualitative" in result.output and "'not-evaluable' or 'authors'" in result.output
    assert not (tmp_path / "c").exists()


def test_cli_refuses_a_panel_and_mean_only_together(tmp_path):
    result = runner.invoke(
        app, ["evaluate", "--out", str(tmp_path / "c"), "--donors", "9", "--mean-only"]
    )
    assert result.exit_code == EXIT_INPUT_ERROR
    assert "--mean-only" in result.output
    assert not (tmp_path / "c").exists()


def test_cli_confirmed_only(tmp_path):
    out = tmp_path / "c"
    result = runner.invoke(
        app, ["evaluate", "--out", str(out), "--rule-set", DEFAULT, "--confirmed-only", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    settings = json.loads((out / "settings.json").read_text(encoding="utf-8"))
    assert settings["confirmed_only"] is True


# --- a study in the light of the library (issue 18, items 2 and 3) ---------------------------


def test_study_performance_restricts_the_calibration_to_the_study_formats():
    from cytosafe.reference import study_performance

    perf, misses = study_performance(DEFAULT, ["whole_blood", "pbmc_high_density", "nowhere"])
    assert set(perf["study_format"]) == {"whole_blood", "pbmc_high_density", "nowhere"}
    hd = perf[perf["study_format"] == "pbmc_high_density"]
    assert set(hd["format"]) == {"pbmc_high_density_preculture"}
    assert "not a format" in perf.loc[perf["study_format"] == "nowhere", "note"].iloc[0]
    # Vessillier 2015 Table 2: muromonab-CD3 0.9-fold in whole blood, a miss at 2-fold
    wb = misses[misses["study_format"] == "whole_blood"]
    assert "muromonab_cd3" in set(wb["compound"])
    assert perf.attrs["disclaimer"] == DISCLAIMER


def test_place_in_library_ranks_the_test_article_among_published_fold_changes():
    from cytosafe.reference import place_in_library

    # Vessillier 2015 Table 2, whole blood: alemtuzumab 5.5, TGN1412 2.2, muromonab-CD3 0.9
    t = place_in_library("whole_blood", 3.0, treatment="TA-1").set_index("compound")
    assert t.loc["alemtuzumab", "fold_change"] == 5.5
    assert t.loc["tgn1412", "fold_change"] == 2.2
    assert t.loc["muromonab_cd3", "fold_change"] == 0.9
    assert t.loc["TA-1", "rank"] == 2 and t.loc["TA-1", "source"] == "this study"
    assert t["source"].drop("TA-1").str.contains("Vessillier").all()
    with pytest.raises(InputError, match="fold change"):
        place_in_library("whole_blood", float("nan"))
    with pytest.raises(InputError, match="not a format"):
        place_in_library("no_such_format", 2.0)
