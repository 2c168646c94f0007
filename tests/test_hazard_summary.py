"""cytosafe.hazard.summary.call_summary: the hazard rules applied to summary values.

The thresholds are those of data/hazard_rules.toml (fold2_above_lloq: fold change >= 2 and
test >= LLOQ, after Finco et al. 2014 and Grimaldi et al. 2016); the published values
are Vessillier et al. 2015, Table 2 (TGN1412 in whole blood: 2.2-fold; in PBMC solid
phase: 110.9-fold).
"""

import pytest

from cytosafe.errors import InputError
from cytosafe.hazard import Rule, get_rule_set
from cytosafe.hazard.summary import call_summary

DEFAULT = get_rule_set("fold2_above_lloq")


def test_whole_blood_tgn1412_at_2_2_fold_passes_the_2_fold_rule():
    s = call_summary(DEFAULT, fold_change=2.2, quantifiable=True)
    assert s.call == "responder" and s.responder
    assert s.rule_fired == "fold change >= 2 and test >= LLOQ"


def test_a_fold_change_below_the_threshold_is_a_non_responder():
    s = call_summary(DEFAULT, fold_change=1.9, quantifiable=True)
    assert s.call == "non-responder" and s.rule_fired is None
    assert "min_fold_change 2 not met" in s.reason


def test_a_value_below_the_lloq_fails_above_lloq():
    s = call_summary(DEFAULT, fold_change=110.9, quantifiable=False)
    assert s.call == "non-responder"
    assert "below the LLOQ" in s.reason


def test_unknown_quantifiability_leaves_the_call_indeterminate():
    s = call_summary(DEFAULT, fold_change=110.9)
    assert s.call == "indeterminate"
    assert "above_lloq" in s.reason


def test_a_qualitative_call_decides_nothing_and_is_kept_in_the_reason():
    s = call_summary(DEFAULT, qualitative="positive", quantifiable=True)
    assert s.call == "indeterminate"
    assert "the authors' call: positive" in s.reason


def test_increase_in_lloqs_needs_the_lloq():
    rs = get_rule_set("fold2_increase_lloq")
    assert call_summary(rs, fold_change=3, increase=50, quantifiable=True).call == "indeterminate"
    assert (
        call_summary(rs, fold_change=3, increase=50, quantifiable=True, lloq=10).call == "responder"
    )
    assert (
        call_summary(rs, fold_change=3, increase=5, quantifiable=True, lloq=10).call
        == "non-responder"
    )


def test_percent_of_positive_rule():
    rs = get_rule_set("percent_of_positive")
    assert (
        call_summary(rs, percent_of_positive=12, fold_change=1.5, quantifiable=True).call
        == "responder"
    )
    assert (
        call_summary(rs, percent_of_positive=8, fold_change=1.5, quantifiable=True).call
        == "non-responder"
    )


def test_one_rule_and_the_first_rule_that_fires():
    rule = Rule(name="increase >= 100", min_difference=100.0)
    assert call_summary(rule, increase=150).rule_fired == "increase >= 100"
    assert call_summary(rule, increase=50).call == "non-responder"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, "2"])
def test_a_value_that_is_not_a_finite_number_is_an_input_error(bad):
    with pytest.raises(InputError, match="fold_change"):
        call_summary(DEFAULT, fold_change=bad)
