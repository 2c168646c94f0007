"""The study design: study files validated with clear errors, designs from tidy columns,
rule-set presets with citations."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cytosafe.errors import InputError
from cytosafe.hazard.design import HazardSettings, design_from_table, load_study
from cytosafe.hazard.rules import get_classification, get_rule_set, presets, references

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cra-study" / "study.toml"

MINIMAL = """
[study]
id = "S1"

[[treatment]]
name = "medium"
role = "negative_control"

[[treatment]]
name = "anti-CD3"
role = "positive_control"

[[treatment]]
name = "TA"
role = "test"
concentrations = [1.0, 10.0]
unit = "ug/mL"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_example_study_file_loads_with_its_analysis_and_hazard_settings():
    d = load_study(EXAMPLE)
    assert d.study_id == "CRA-EX-001"
    assert d.negative_controls == ["medium"]
    assert set(d.positive_controls) == {"anti-CD3", "CD28-SA"}
    assert d.treatments["CD28-SA"].expect_response_in == ("pbmc_high_density",)
    assert d.matched_control("TA-1") == "medium"
    assert len(d.analysis.inputs) == 9 and d.analysis.model == "4PL"
    assert d.settings.rule_set.name == "fold2_above_lloq"
    assert d.settings.reference_positive_control == "anti-CD3"


def test_every_preset_rule_set_is_cited_and_its_citations_resolve():
    refs = references()
    assert {"fold2_above_lloq", "fold2_increase_lloq", "percent_of_positive", "stringent"} <= set(
        presets()
    )
    for rs in presets().values():
        assert rs.rules and rs.citations
        assert all(key in refs for key in rs.citations)
    assert all(key in refs for key in get_classification().citations)


def test_a_design_without_negative_control_is_an_error_naming_the_file(tmp_path):
    text = MINIMAL.replace('role = "negative_control"', 'role = "vehicle"')
    with pytest.raises(InputError, match="no negative control") as exc:
        load_study(_write(tmp_path, text))
    assert exc.value.file.endswith("study.toml")


def test_an_unknown_key_names_file_line_and_key(tmp_path):
    text = MINIMAL + '\n[hazard]\nrule_set = "fold2_above_lloq"\nbelow_llog = "censored"\n'
    with pytest.raises(InputError) as exc:
        load_study(_write(tmp_path, text))
    err = exc.value
    assert err.field == "below_llog"
    assert err.row == text.splitlines().index('below_llog = "censored"') + 1


def test_an_unknown_role_names_the_line(tmp_path):
    text = MINIMAL.replace('role = "test"', 'role = "drug"')
    with pytest.raises(InputError, match="unknown role 'drug'") as exc:
        load_study(_write(tmp_path, text))
    assert exc.value.row == text.splitlines().index('role = "drug"') + 1


def test_an_unknown_rule_set_preset_is_an_error_listing_the_presets(tmp_path):
    with pytest.raises(InputError, match="unknown responder rule set 'fold9'") as exc:
        load_study(_write(tmp_path, MINIMAL + '\n[hazard]\nrule_set = "fold9"\n'))
    assert "fold2_above_lloq" in exc.value.expected
    assert exc.value.row is not None


def test_user_rules_in_the_study_file_form_the_rule_set(tmp_path):
    text = MINIMAL + (
        '\n[hazard]\nrule_set = "study"\nbelow_lloq = "lloq/2"\n'
        '[[hazard.rule]]\nname = "three-fold"\nmin_fold_change = 3.0\nabove_lloq = true\n'
        '[[hazard.rule]]\nname = "big increase"\nmin_difference = 500.0\n'
    )
    d = load_study(_write(tmp_path, text))
    rs = d.settings.rule_set
    assert rs.name == "study" and [r.name for r in rs.rules] == ["three-fold", "big increase"]
    assert rs.rules[0].describe() == "fold change ≥ 3 and test value ≥ LLOQ"
    assert d.settings.below_lloq == "lloq/2"


def test_a_user_rule_with_an_unknown_condition_is_an_error(tmp_path):
    text = MINIMAL + '\n[hazard]\n[[hazard.rule]]\nname = "x"\nmin_fold = 3.0\n'
    with pytest.raises(InputError, match="unknown rule condition 'min_fold'"):
        load_study(_write(tmp_path, text))


def test_user_hazard_classes_replace_the_default(tmp_path):
    text = (
        MINIMAL + '\n[hazard]\n[[hazard.class]]\nname = "high"\nmin_analytes = 1\nmin_donors = 1\n'
    )
    cl = load_study(_write(tmp_path, text)).settings.classification
    assert cl.name == "study" and cl.classes[0].min_donors == 1


def test_an_unknown_below_lloq_choice_is_an_error(tmp_path):
    with pytest.raises(InputError, match="unknown below_lloq 'zero'"):
        load_study(_write(tmp_path, MINIMAL + '\n[hazard]\nbelow_lloq = "zero"\n'))


def test_a_reference_positive_control_must_be_a_positive_control(tmp_path):
    with pytest.raises(InputError, match="'TA' is not a positive control"):
        load_study(_write(tmp_path, MINIMAL + '\n[hazard]\nreference_positive_control = "TA"\n'))


def test_malformed_toml_names_the_line(tmp_path):
    with pytest.raises(InputError, match="not valid TOML") as exc:
        load_study(_write(tmp_path, MINIMAL + "\n[hazard\n"))
    assert exc.value.row is not None


def test_missing_inputs_glob_is_an_error(tmp_path):
    with pytest.raises(InputError, match=r"no file matches 'plates/\*\.csv'"):
        load_study(_write(tmp_path, MINIMAL + '\n[analysis]\ninputs = ["plates/*.csv"]\n'))


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("weighting", "1/x", "none | 1/y | 1/y2 | 1/var"),
        ("model", "6PL", "5PL | 5PL-mirror | 5PL-auto | 4PL | L4"),
        ("blank", "drop", "zero_standard | subtract | ignore"),
        ("acceptance", "glp", "cytosafe | ich-m10"),
    ],
)
def test_an_unknown_calibration_choice_names_file_line_and_choices(tmp_path, key, value, expected):
    text = MINIMAL + f'\n[analysis]\n{key} = "{value}"\n'
    with pytest.raises(InputError, match=f"'{value}'") as exc:
        load_study(_write(tmp_path, text))
    err = exc.value
    assert err.file.endswith("study.toml") and err.field == key and err.expected == expected
    assert err.row == text.splitlines().index(f'{key} = "{value}"') + 1


def test_the_study_file_names_its_acceptance_criteria(tmp_path):
    assert load_study(_write(tmp_path, MINIMAL)).analysis.acceptance == "cytosafe"
    text = MINIMAL + '\n[analysis]\nacceptance = "ICH-M10"\n'
    assert load_study(_write(tmp_path, text)).analysis.acceptance == "ich_m10"


def _table(**over) -> pd.DataFrame:
    rows = [
        {"study_id": "S", "sample_type": "sample", "donor_id": "D1", "treatment": "medium",
         "treatment_role": "negative_control", "treatment_concentration": 0.0, "treatment_unit": None,
         "assay_format": "wb", "analyte": "IL-6"},
        {"study_id": "S", "sample_type": "sample", "donor_id": "D1", "treatment": "TA",
         "treatment_role": "test", "treatment_concentration": 1.0, "treatment_unit": "ug/mL",
         "assay_format": "wb", "analyte": "IL-6"},
    ]  # fmt: skip
    df = pd.DataFrame(rows)
    for k, v in over.items():
        df.loc[1, k] = v
    return df


def test_design_from_the_tidy_columns():
    d = design_from_table(_table())
    assert d.treatments["TA"].role == "test" and d.negative_controls == ["medium"]
    assert d.source == "measurement table"


def test_design_from_columns_without_negative_control_is_an_error():
    df = _table()
    df.loc[0, "treatment_role"] = "vehicle"
    with pytest.raises(InputError, match="no negative control"):
        design_from_table(df)


def test_design_from_columns_with_two_roles_for_one_treatment_is_an_error():
    df = pd.concat(
        [_table(), _table(treatment_role="isotype_control").iloc[[1]]], ignore_index=True
    )
    with pytest.raises(InputError, match="treatment 'TA' has roles"):
        design_from_table(df)


def test_settings_reject_an_unknown_multiplicity_method():
    with pytest.raises(InputError, match="unknown multiplicity"):
        HazardSettings(multiplicity="sidak-ish")
    assert get_rule_set().name == "fold2_above_lloq"
