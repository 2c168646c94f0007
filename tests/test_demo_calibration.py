"""Issue 12's check on ``make demo``: the example study's MSD and Luminex plates,
quantified as the demo does (no options: each reader's vendor convention)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from cytosafe.quantification import quantify

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cra-study"


@pytest.fixture(scope="module", params=["msd", "luminex"])
def demo(request):
    folder = EXAMPLES / request.param
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the readers' warnings are tested with them
        res = quantify(sorted(folder.glob("plate_*.csv")), sample_map=folder / "samples.csv")
    return request.param, res.calibration


def test_every_sample_group_within_the_range_carries_an_interval(demo):
    _, cal = demo
    s = cal.samples[cal.samples["sample_type"] == "sample"]
    inside = s[s["concentration"].notna() & ~s["below_lloq"] & ~s["above_uloq"]]
    assert len(inside) > 200
    lo, hi = inside["ci_low"].to_numpy(float), inside["ci_high"].to_numpy(float)
    c = inside["concentration"].to_numpy(float)
    assert np.isfinite(lo).all() and np.isfinite(hi).all()
    assert (lo <= c).all() and (c <= hi).all()


def test_no_curve_with_a_runaway_asymmetry_goes_unflagged(demo):
    _, cal = demo
    curves = cal.curves
    if "g" not in curves:
        return  # every curve a 4PL: no asymmetry to run away (MSD's convention)
    runaway = np.abs(np.log10(curves["g"].to_numpy(float))) > 1.5
    flagged = curves["curve_failed"].to_numpy(bool) | (curves["status"] == "degenerate")
    assert not (runaway & ~flagged).any()


def test_the_luminex_exports_without_coefficients_choose_the_5pl_form_per_curve(demo):
    platform, cal = demo
    conv = cal.conventions
    if platform == "msd":
        assert set(conv["model"]) == {"4PL"}
        return
    assert set(conv["model"]) == {"5PL-auto"}
    assert "without coefficients" in conv["applied"].iloc[0]
    assert cal.curves["model_choice"].str.len().gt(0).all()
    assert (cal.curves["status"] != "degenerate").sum() >= 70
