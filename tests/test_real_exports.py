"""Calibration against the vendors' own back-calculated concentrations, on real exports.

Each file (``../shared/data/real-exports/``, see its SOURCES.md for origin and licence)
holds the raw signals *and* the concentrations its vendor software printed for every
sample. CytoSafe quantifies the file with **no options**: each plate gets its reader's
vendor convention (``CALIBRATION`` of :mod:`cytosafe.io.xponent`, :mod:`cytosafe.io.bioplex`,
:mod:`cytosafe.io.msd`; :func:`cytosafe.quantification.plate_conventions`) and must
reproduce the vendor's numbers, a published, independent implementation of the same
calculation:

* MSD Discovery Workbench 4.0.12: 4PL, weights 1/y^2, blanks as the zero standard.
* Luminex xPONENT 3.1: each curve in the 5PL form its printed slope says ("Logistic
  5P", printed ``D < 0``: the mirror form) on Net MFI.
* Bio-Plex Manager 4.1: the regression the report prints ("Logistic - 4PL" for
  pnLINCO20070302A, a mirror "Logistic - 5PL" for 10JAN07_plate_1) on FI - Bkgd with
  weights 1/FI^2, i.e. on FI with weights 1/y^2.

The targets are issue 12's: median ``|CytoSafe / vendor - 1|`` at most 1 %, its 90th
percentile at most 5 %, and fewer than 1 % of the wells the vendor quantified left
without a number. Issue 12's item 5 forbids two kinds of number the vendors print: one
from a negative net signal (``below_blank``) and one from a degenerate curve. The share
without a number is therefore taken over the vendor-quantified wells item 5 allows a
number for: not ``below_blank``, and not on a curve whose *printed* vendor curve is
itself degenerate under the same limits (``vendor_fit_reason``; xPONENT's HGF, with an
upper asymptote of 2.7e8 MFI on signals up to 8,700). The raw share, every such well
included, is guarded too, and :func:`test_every_well_without_a_number_is_explained`
checks that the difference is exactly those wells. :data:`KNOWN_MISSES` lists any target
a file misses, with the reason (``benchmarks/bench_real_exports.py`` prints the figures);
:func:`test_the_figures_do_not_regress` holds every file to what it reaches now.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cytosafe.quantification import quantify
from real_exports import real

FILES = ("tidy-data-4.csv", "pone.0187901.s001.csv", "pnLINCO20070302A.xls",
         "10JAN07_plate_1.xls")  # fmt: skip

#: Issue 12's targets: median, 90th percentile, share of vendor-quantified wells without
#: a number.
TARGETS = {"median": 0.01, "p90": 0.05, "no_number": 0.01}

#: (file, figure) -> why the target is missed today (none is).
KNOWN_MISSES: dict[tuple[str, str], str] = {}

#: What each file reaches today (median, p90, share without a number, the raw share
#: without a number), a little above the measured figures: a regression guard.
GUARDS = {
    "tidy-data-4.csv": (0.002, 0.005, 0.0, 0.0),
    "pone.0187901.s001.csv": (0.008, 0.05, 0.002, 0.05),
    "pnLINCO20070302A.xls": (0.008, 0.02, 0.0, 0.0),
    "10JAN07_plate_1.xls": (0.008, 0.02, 0.0, 0.0),
}

_CACHE: dict[str, object] = {}


def result(name: str):
    """The no-options quantification of a real export (computed once per session)."""
    if name not in _CACHE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the readers' DataWarnings are tested with them
            _CACHE[name] = quantify(real(name))
    return _CACHE[name]


def figures(wells, curves=None) -> dict[str, float]:
    """Median and p90 of ``|CytoSafe / vendor - 1|`` over the samples the vendor quantified
    (a number, no out-of-range flag) that CytoSafe gives a number, and the share of those
    samples CytoSafe leaves without a number."""
    use = (
        (wells["sample_type"] == "sample")
        & np.isfinite(wells["vendor_concentration"])
        & (wells["vendor_concentration"] > 0)
    )
    if "vendor_flag" in wells:
        use &= wells["vendor_flag"].isna()
    ratio = wells.loc[use, "concentration"] / wells.loc[use, "vendor_concentration"]
    err = np.abs(ratio.to_numpy(dtype=float) - 1.0)
    allowed = ~forbidden(wells, curves)[use.to_numpy()]
    return {
        "n": int(use.sum()),
        "median": float(np.nanmedian(err)),
        "p90": float(np.nanquantile(err, 0.9)),
        "no_number": float(np.isnan(err[allowed]).mean()),
        "no_number_all": float(np.isnan(err).mean()),
    }


def forbidden(wells, curves) -> np.ndarray:
    """Wells whose vendor number item 5 forbids: a net signal below the blank, or a
    curve whose printed vendor curve is itself degenerate."""
    if curves is None or "vendor_fit_reason" not in curves:
        bad_curve = np.zeros(len(wells), dtype=bool)
    else:
        bad = curves.loc[curves["vendor_fit_reason"].fillna("") != "", "analyte"]
        bad_curve = wells["analyte"].isin(set(bad)).to_numpy()
    return wells["below_blank"].to_numpy(dtype=bool) | bad_curve


def _cases():
    for name in FILES:
        for figure in TARGETS:
            miss = KNOWN_MISSES.get((name, figure))
            # strict: the day the miss is mended the mark must go, not linger unnoticed
            marks = [pytest.mark.xfail(reason=miss, strict=True)] if miss else []
            yield pytest.param(name, figure, marks=marks, id=f"{name}-{figure}")


@pytest.mark.parametrize(("name", "figure"), list(_cases()))
def test_no_options_reproduce_the_vendor(name, figure):
    got = figures(result(name).calibration.wells, result(name).calibration.curves)
    assert got["n"] >= 76
    assert got[figure] <= TARGETS[figure], f"{figure} {100 * got[figure]:.2f} %"


@pytest.mark.parametrize("name", FILES)
def test_the_figures_do_not_regress(name):
    got = figures(result(name).calibration.wells, result(name).calibration.curves)
    median, p90, no_number, no_number_all = GUARDS[name]
    assert got["median"] <= median and got["p90"] <= p90 and got["no_number"] <= no_number
    assert got["no_number_all"] <= no_number_all


def test_every_well_without_a_number_is_explained():
    # xPONENT prints numbers item 5 forbids: from negative Net MFI (EGF, GMCSF, IL7, IL1RA
    # wells) and from HGF, whose printed curve has B = 2.66e8 and C = 8.69e7 (its
    # Analysis Coefficients block) on Net MFI up to ~8,700. CytoSafe gives no number for
    # exactly these, and for at most 1 % of the others.
    cal = result("pone.0187901.s001.csv").calibration
    curves = cal.curves.set_index("analyte")
    assert "asymptote" in curves.loc["HGF", "vendor_fit_reason"]
    assert (curves.drop(index="HGF")["vendor_fit_reason"] == "").all()
    got = figures(cal.wells, cal.curves)
    assert got["no_number_all"] > 0.03 and got["no_number"] < 0.01


@pytest.mark.parametrize(("name", "limit"), [("pone.0187901.s001.csv", 0.03),
                                              ("pnLINCO20070302A.xls", 0.02),
                                              ("10JAN07_plate_1.xls", 0.04)])  # fmt: skip
def test_the_fitted_curve_is_compared_with_the_printed_one(name, limit):
    # Issue 12, item 1: the largest relative difference between our curve and the one
    # the vendor printed, over the standards (a QC column); medians measured 1.6 %,
    # 0.6 % and 1.2 %.
    cal = result(name).calibration
    diff = cal.curves["vendor_difference"].dropna()
    assert len(diff) >= 13 and diff.median() <= limit
    assert "vendor_difference" in cal.qc and "vendor_fit_reason" in cal.qc


@pytest.mark.parametrize(
    ("name", "model", "blank"),
    [("tidy-data-4.csv", "4PL", "zero_standard"), ("pone.0187901.s001.csv", "5PL-mirror", "subtract"),
     ("pnLINCO20070302A.xls", "4PL", "ignore"), ("10JAN07_plate_1.xls", "5PL-mirror", "ignore")],
)  # fmt: skip
def test_each_plate_names_the_vendor_convention_it_got(name, model, blank):
    conv = result(name).calibration.conventions
    assert len(conv) == 1
    row = conv.iloc[0]
    assert (row["model"], row["weighting"], row["blank"]) == (model, "1/y2", blank)
    assert "convention" in row["applied"] and row["source"]
    assert (row["weight_floor"] == 1.0) == (name == "pone.0187901.s001.csv")


@pytest.mark.parametrize("name", FILES)
def test_the_weighting_is_what_makes_them_agree(name):
    # The same data fitted without weights (an explicit option over the convention)
    # miss the vendor's numbers by several times more: the comparison is sensitive to
    # the calculation, not a formality.
    weighted = figures(result(name).calibration.wells, result(name).calibration.curves)["median"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = quantify(real(name), options={"weighting": "none", "accept_curves": ("*",)})
    assert "weighting=none" in plain.calibration.conventions["applied"].iloc[0]
    assert figures(plain.calibration.wells)["median"] > 3 * weighted


def test_a_curve_printed_in_another_unit_is_compared_in_pg_per_ml():
    # An export in ng/mL prints its curve's inflection c in ng/mL while CytoSafe stores
    # pg/mL: the factor is read off the vendor's own results, so the comparison holds.
    from cytosafe.quantification import vendor_curve_qc

    res = result("pnLINCO20070302A.xls")
    before = res.calibration.curves["vendor_difference"].to_numpy(float).copy()
    printed = res.measurements.copy()
    printed["vendor_c"] = printed["vendor_c"] / 1000.0  # as if printed in ng/mL
    vendor_curve_qc(res.calibration, printed)
    after = res.calibration.curves["vendor_difference"].to_numpy(float)
    np.testing.assert_allclose(after, before, rtol=1e-9)
    vendor_curve_qc(res.calibration, res.measurements)  # leave the cached result as it was
