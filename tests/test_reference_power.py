"""The probability that a donor panel shows a published response (cytosafe.reference.power)
and its place in the calibration of the hazard call (issue 18)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq

from cytosafe.errors import InputError
from cytosafe.reference import detection_by_panel, evaluate, load_library
from cytosafe.reference.power import detection_probability, effect_for_power, t_test_power


# -- the power function against published figures -----------------------------------------
def test_two_sample_power_matches_r_power_t_test_example():
    # R Core Team, stats::power.t.test, help-page example `power.t.test(n = 20, delta = 1)`
    # (sd 1, sig.level 0.05, two-sided, strict = FALSE): printed power = 0.8689528.
    assert t_test_power(20, 1.0, kind="two_sample") == pytest.approx(0.8689528, abs=5e-8)


def test_two_sample_size_matches_r_power_t_test_example():
    # Same help page, `power.t.test(power = .90, delta = 1)`: printed n = 22.02110 per group.
    n = brentq(lambda n: t_test_power(n, 1.0, kind="two_sample") - 0.9, 2, 100)
    assert n == pytest.approx(22.02110, abs=1e-4)


def test_paired_power_agrees_with_simulated_paired_t_tests():
    # The paired branch against the test itself: 40,000 simulated studies of 9 donors whose
    # paired differences are normal with a standardised mean of 0.65, each judged by the
    # one-sample t statistic at the two-sided 5 % level in the direction of the effect.
    from scipy.stats import t as student

    rng = np.random.default_rng(20151)
    n, d, reps = 9, 0.65, 40_000
    x = rng.normal(d, 1.0, size=(reps, n))
    stat = x.mean(axis=1) / (x.std(axis=1, ddof=1) / math.sqrt(n))
    simulated = float((stat > student.ppf(0.975, n - 1)).mean())
    se = math.sqrt(simulated * (1 - simulated) / reps)
    assert abs(t_test_power(n, d) - simulated) < 4 * se


def test_paired_power_agrees_with_an_integral_over_the_sample_variance():
    # An independent computation of the same probability, without the non-central t:
    # T = (Z + d sqrt(n)) / sqrt(V / df), V ~ chi2(df), so
    # P(T > c) = integral of P(Z > c sqrt(v / df) - d sqrt(n)) chi2_df(v) dv.
    from scipy.integrate import quad
    from scipy.stats import chi2, norm
    from scipy.stats import t as student

    for n, d in ((9, 0.65), (4, 2.5), (27, 0.648), (52.5, 0.3)):
        df = n - 1
        c = student.ppf(0.975, df)
        value, _ = quad(
            lambda v, c=c, df=df, n=n, d=d: (
                norm.sf(c * math.sqrt(v / df) - d * math.sqrt(n)) * chi2.pdf(v, df)
            ),
            0,
            math.inf,
            epsabs=1e-13,
            epsrel=1e-11,
        )
        assert t_test_power(n, d) == pytest.approx(value, abs=1e-9), (n, d)


def test_chances_never_round_to_a_certainty():
    from cytosafe.reference.power import chance_text

    assert chance_text(detection_probability(4, 9)) == "> 99 %"
    assert chance_text(detection_probability(4519, 2)) == "3 %"
    assert chance_text(0.004) == "< 1 %" and chance_text(0.0) == "0 %"
    assert chance_text(float("nan")) == "–" and chance_text(0.4, "") == "40%"


def test_no_effect_gives_half_the_level():
    # With strict = FALSE R's power is alpha / 2 when the true difference is zero.
    assert t_test_power(12, 0.0) == pytest.approx(0.025, abs=1e-12)


# -- effects read off a paper's donor count ----------------------------------------------
@pytest.mark.parametrize("n90", sorted({4, 8, 27, 31, 52, 180, 341, 4519}))
def test_effect_for_power_reproduces_the_papers_donor_count(n90):
    # Vessillier et al. 2015, Table 2: donors for 90 % power at the 5 % level.
    d = effect_for_power(float(n90))
    assert t_test_power(n90, d) == pytest.approx(0.9, abs=1e-9)
    assert t_test_power(n90 - 1, d) < 0.9 < t_test_power(n90 + 1, d)


def test_every_power_figure_of_the_library_is_inverted():
    for c in load_library().compounds.values():
        for r in c.readouts:
            if r.donors_for_power is not None:
                assert detection_probability(r.donors_for_power, r.donors_for_power) == (
                    pytest.approx(0.9, abs=1e-9)
                ), (c.key, r.format)


def test_detection_probability_grows_with_the_panel():
    p = [detection_probability(27, n) for n in range(1, 60)]
    assert p[0] == 0.0  # one donor: no paired test
    assert all(b > a for a, b in itertools.pairwise(p[1:]))
    assert p[26] == pytest.approx(0.9, abs=1e-9)


def test_fewer_donors_for_power_means_a_better_chance_at_every_panel():
    # Monotonicity of the reading: a paper needing fewer donors has the larger effect, so
    # its response is shown more often by any panel. On Vessillier et al. 2015's TGN1412
    # figures (Table 2: PBMC SP 4 donors, HDC 27, WB 52) this is the review's ordering.
    for n in range(2, 80):
        sp, hdc, wb = (detection_probability(k, n) for k in (4, 27, 52))
        assert sp >= hdc > wb, n


@pytest.mark.parametrize(
    "call",
    [
        lambda: t_test_power(1, 0.5),
        lambda: t_test_power(float("nan"), 0.5),
        lambda: t_test_power(10, 0.5, kind="welch"),
        lambda: t_test_power(10, 0.5, alpha=1.5),
        lambda: effect_for_power(10, 1.0),
        lambda: t_test_power(10, float("inf")),
        lambda: t_test_power(True, 0.5),
    ],
)
def test_bad_arguments_are_named(call):
    with pytest.raises(InputError):
        call()


# -- in the calibration ------------------------------------------------------------------
def test_evaluate_gives_the_panels_chance_beside_each_call():
    ev = evaluate("fold2_above_lloq")
    r = ev.readouts.set_index(["compound", "format", "readout"])
    hdc = r.loc[("tgn1412", "pbmc_high_density_preculture", 2)]
    assert hdc["call"] == "not detected"
    assert hdc["detection_probability"] == pytest.approx(detection_probability(27, 9))
    assert "(a 40 % chance of showing it)" in hdc["reason"]
    # a response that fails the rule on its mean, and a qualitative one, get no chance
    assert math.isnan(r.loc[("muromonab_cd3", "whole_blood", 3), "detection_probability"])
    aqueous = ev.readouts[
        (ev.readouts["compound"] == "tgn1412") & (ev.readouts["format"] == "pbmc_aqueous")
    ]
    assert len(aqueous) and aqueous["detection_probability"].isna().all()
    c = ev.calls.set_index(["compound", "format"])
    assert c.loc[("tgn1412", "whole_blood"), "detection_probability"] == pytest.approx(
        detection_probability(52, 9)
    )
    assert c.loc[("tgn1412", "pbmc_solid_phase_dry"), "detection_probability"] > 0.99


def test_mean_only_evaluation_gives_no_chance():
    ev = evaluate("fold2_above_lloq", donors=None)
    assert ev.readouts["detection_probability"].isna().all()
    t = detection_by_panel(ev, sizes=(5, 10))
    assert [c for c in t.columns if c.startswith("p_")] == ["p_5_donors", "p_10_donors"]


def test_detection_by_panel_tabulates_the_study_panel_too():
    ev = evaluate("fold2_above_lloq", donors=15)
    t = detection_by_panel(ev).set_index(["compound", "format"])
    assert "p_15_donors" in t.columns
    assert t.loc[("tgn1412", "whole_blood"), "p_15_donors"] == pytest.approx(
        detection_probability(52, 15)
    )
    assert t.loc[("tgn1412", "whole_blood"), "source"] == "vessillier2015"
    # only responses that pass the rule on their mean and have a power figure
    assert set(t.index) == {
        ("tgn1412", "pbmc_solid_phase_dry"),
        ("tgn1412", "pbmc_high_density_preculture"),
        ("tgn1412", "whole_blood"),
        ("muromonab_cd3", "pbmc_solid_phase_dry"),
        ("muromonab_cd3", "pbmc_high_density_preculture"),
        ("alemtuzumab", "whole_blood"),
    }
    for sizes in ((0,), (2.5,), ("a",)):
        with pytest.raises(InputError):
            detection_by_panel(ev, sizes=sizes)


def test_an_authors_call_with_a_small_panel_gives_no_empty_chance():
    # Alemtuzumab's qualitative whole-blood result needs 5 donors (Iwata et al. 2016); it
    # has no mean on the rule's scale, so no chance is given for it (reviewer's finding).
    ev = evaluate("fold2_above_lloq", donors=3, qualitative="authors")
    assert not ev.readouts["reason"].str.contains("nan").any()
    r = ev.readouts
    row = r[(r["compound"] == "alemtuzumab") & (r["measure"] == "qualitative")]
    row = row[row["donors_for_power"].notna()]
    assert len(row) == 1 and row["call"].iloc[0] == "not detected"
    assert "chance" not in row["reason"].iloc[0] and math.isnan(
        row["detection_probability"].iloc[0]
    )


@pytest.mark.parametrize("n", [0, 1])
def test_a_library_with_fewer_than_two_donors_for_power_is_refused_by_name(tmp_path, n):
    # A paired test needs two donors: such a figure is a typing error, named at load time.
    from test_reference import _library_file

    readout = (
        '[[compound.readout]]\nformat = "whole_blood"\nmeasure = "fold_change"\nvalue = 3.0\n'
        f'analyte = "IL-8"\ncomparator = "isotype control"\ndonors_for_power = {n}\n'
        'citation = "paper"\nlocation = "Table 1"\nconfirmed = true\n'
    )
    with pytest.raises(InputError) as err:
        load_library(_library_file(tmp_path, readout=readout))
    assert err.value.field.endswith("'benign'.readout[0].donors_for_power")
    assert "library.toml" in str(err.value)


def test_summary_has_the_panel_table():
    from cytosafe.reference import summary_markdown

    text = summary_markdown(evaluate("fold2_above_lloq"))
    assert "## How likely a donor panel is to show each response" in text
    row = next(line for line in text.splitlines() if "pbmc_high_density_preculture | 4.4" in line)
    cells = [x.strip() for x in row.strip("|").split("|")]
    assert cells[3] == "27" and cells[-1].startswith("vessillier2015")
    assert "40 %" in cells  # 9 donors


def test_cli_writes_the_panel_table(tmp_path):
    from typer.testing import CliRunner

    from cytosafe.cli import app

    out = tmp_path / "cal"
    res = CliRunner().invoke(app, ["reference", "evaluate", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(out / "detection_by_panel.csv")
    assert {"p_3_donors", "p_9_donors", "p_48_donors", "effect_size"} <= set(t.columns)
    assert len(t) >= 6
