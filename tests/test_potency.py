"""Potency: ECx against drc's published ED values, and the response / no-response contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytosafe.curves import fit_curves, get_model
from cytosafe.curves.potency import PotencySettings, effective_concentration, potency
from test_curves_fit import RYEGRASS_CONC, RYEGRASS_ROOTL


def test_ed10_ed50_ed90_match_drc_on_ryegrass():
    # ED(drm(rootl ~ conc, data = ryegrass, fct = LL.4()), c(10, 50, 90)) in the drc
    # documentation (Ritz et al., PLOS ONE 2015;10:e0146021): estimate (std. error)
    # e:1:10 1.46371 (0.18677), e:1:50 3.05795 (0.18573), e:1:90 6.38864 (0.84510).
    res = fit_curves(RYEGRASS_CONC, RYEGRASS_ROOTL, model="4PL", covariance="observed")
    for pct, est, se in [(10, 1.46371, 0.18677), (50, 3.05795, 0.18573), (90, 6.38864, 0.84510)]:
        ec, ec_se = effective_concentration(res.params, res.cov, pct)
        assert ec[0] == pytest.approx(est, abs=6e-5)
        assert ec_se[0] == pytest.approx(se, abs=6e-5)


def _study(
    ec50s,
    *,
    top=3000.0,
    bottom=20.0,
    conc=(0.01, 0.1, 1, 10, 100),
    noise=0.06,
    seed=0,
    with_negative=True,
):
    rng = np.random.default_rng(seed)
    model = get_model("4PL")
    rows = []
    for donor, ec50 in ec50s.items():
        for c in conc:
            true = (
                bottom
                if ec50 is None
                else model.f(np.array([[c]]), np.array([[bottom, 1.2, ec50, top]]))[0, 0]
            )
            for _ in range(2):
                rows.append(dict(donor_id=donor, treatment="TA-1", treatment_role="test", treatment_concentration=c,
                                 concentration=true * np.exp(noise * rng.standard_normal())))  # fmt: skip
        if with_negative:
            for _ in range(2):
                rows.append(dict(donor_id=donor, treatment="medium", treatment_role="negative_control",
                                 treatment_concentration=0.0, concentration=bottom * np.exp(noise * rng.standard_normal())))  # fmt: skip
    df = pd.DataFrame(rows)
    df["study_id"], df["analyte"], df["sample_type"] = "S1", "IL-6", "sample"
    df["assay_format"], df["incubation_h"], df["treatment_unit"] = "whole_blood", 24.0, "ug/mL"
    df["below_lloq"] = df["above_uloq"] = False
    df["lloq"], df["uloq"] = 2.0, 1e5
    return df


def test_responding_donors_get_ec50_with_an_interval_covering_the_truth():
    out = potency(_study({"D1": 0.5, "D2": 2.0, "D3": 8.0})).set_index("donor_id")
    assert (out["status"] == "response").all()
    for donor, truth in {"D1": 0.5, "D2": 2.0, "D3": 8.0}.items():
        row = out.loc[donor]
        assert row["ec50_ci_low"] < truth < row["ec50_ci_high"]
        assert row["ec20"] < row["ec50"]


def test_a_flat_donor_is_no_response_never_an_ec50():
    out = potency(_study({"D1": None})).iloc[0]
    assert out["status"] == "no_response" and np.isnan(out["ec50"]) and "flat line" in out["reason"]


def test_one_concentration_only_is_insufficient_data():
    out = potency(_study({"D1": 1.0}, conc=(10.0,))).iloc[0]
    assert out["status"] == "insufficient_data" and np.isnan(out["ec50"])


def test_ec50_beyond_the_tested_range_is_censored_not_extrapolated():
    out = potency(_study({"D1": 5000.0}, top=30000.0, noise=0.02)).iloc[0]
    if out["status"] == "response":
        assert out["ec50_censored"] == ">" and np.isnan(out["ec50"])
    else:  # a barely rising curve may also be judged no response; both are honest
        assert out["status"] == "no_response"


def test_falling_curve_is_not_release():
    df = _study({"D1": 1.0}, top=2.0, bottom=2000.0, with_negative=False)
    out = potency(df).iloc[0]
    assert out["status"] == "no_response" and "decreases" in out["reason"]


def test_settings_choose_the_ecx():
    out = potency(_study({"D1": 1.0}), PotencySettings(ecx=10)).iloc[0]
    assert "ec10" in out.index and out["ec10"] < out["ec50"]


def test_unknown_weighting_or_model_is_refused_when_the_settings_are_made():
    from cytosafe.errors import InputError

    with pytest.raises(InputError, match="unknown weighting '1/x'") as err:
        PotencySettings(weighting="1/x")
    assert err.value.field == "weighting" and err.value.expected == "none | 1/y | 1/y2 | 1/var"
    with pytest.raises(InputError, match="unknown curve model") as err:
        PotencySettings(model="Hill")
    assert err.value.field == "model"


def test_potency_fits_the_model_of_its_settings():
    # A 5PL fit of the same study: the ECs come from the 5PL's own closed form, the table
    # carries its asymmetry, and the 4PL's table stays as it was.
    study = _study({"D1": 0.5, "D2": 2.0}, conc=(0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 100))
    four = potency(study)
    five = potency(study, PotencySettings(model="5PL", min_concentrations=5))
    assert set(five["model"]) == {"5PL"} and (five["status"] == "response").all()
    assert "asymmetry" in five.columns and "asymmetry" not in four.columns
    model = get_model("5PL")
    p = five[["bottom", "slope", "midpoint", "top", "asymmetry"]].to_numpy(dtype=float)
    np.testing.assert_allclose(five["ec20"], model.effective_concentration(p, 0.2), rtol=1e-12)
    np.testing.assert_allclose(five["ec50"], four["ec50"], rtol=0.2)
    assert PotencySettings(model="5PL").to_dict()["model"] == "5PL"


def test_a_response_built_only_from_below_lloq_values_is_never_counted():
    # Issue 12, item 5: every value censored below the LLOQ (substituted at LLOQ/2) is
    # no response, even where the substitutes happen to rise.
    df = _study({"D1": 1.0})
    df["below_lloq"] = df["treatment_role"] == "test"
    df["lloq"] = np.where(df["treatment_role"] == "test", 1e6, 2.0)
    out = potency(df).iloc[0]
    assert out["status"] != "response" and np.isnan(out["ec50"])


def test_wells_of_a_failed_curve_never_enter_the_potency_fit():
    df = _study({"D1": 1.0})
    df["curve_failed"] = True
    out = potency(df).iloc[0]
    assert out["status"] == "insufficient_data" and np.isnan(out["ec50"])


def test_a_degenerate_potency_fit_is_fit_failed_not_a_response():
    # A step between two tested concentrations: the Hill slope runs away (the demo's
    # D07 IFN-g reached slopes of 11-45); it must not count as a response.
    df = _study({"D1": 1.0}, conc=(0.01, 0.1, 0.5, 2, 10, 100), noise=0.0)
    step = np.where(df["treatment_concentration"] > 1.0, 3000.0, 20.0)
    df["concentration"] = step * np.where(df.index % 2 == 0, 1.01, 0.99)
    out = potency(df).iloc[0]
    assert out["status"] == "fit_failed" and "degenerate" in out["reason"]
    assert np.isnan(out["ec50"])
