"""The CRS Bayesian network fitted to the reference library (issue 18, item 4).

Published figures the fit is checked against (the library's citations):
TGN1412, 6 of 6 volunteers with severe CRS (Suntharalingam et al. NEJM 2006);
teclistamab, CRS 72.1 %, grade 3 0.6 % of 165 patients (Moreau et al. NEJM 2022,
MajesTEC-1); CD19 CAR-T, CRS 70 %, grade >= 3 12.1 % of 133 (Hay et al. Blood 2017).

"Consistent with TGN1412's outcome": 6 of 6 lies inside the central 95 % interval of a
binomial over 6 subjects, P(6 of 6 | p) = p^6 >= 0.025, i.e. p >= 0.025 ** (1 / 6) = 0.541.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from cytosafe.aop.bayes import CrsBayesNetwork, load_bayes_parameters
from cytosafe.aop.fit import (
    ELICITED,
    FittedCrsNetwork,
    basis_label,
    consistent_with_outcome,
    fit_network,
    leave_one_compound_out,
    library_cases,
)


@pytest.fixture(scope="module")
def fitted():
    return fit_network()


@pytest.fixture(scope="module")
def loo():
    return leave_one_compound_out().set_index("compound")


@pytest.mark.parametrize("modality", sorted(load_bayes_parameters().modalities))
def test_the_elicited_tables_spelled_out_give_the_elicited_network(modality):
    # the all-modality network with the elicited tables is the same model
    a = FittedCrsNetwork.elicited().probability(modality)
    b = CrsBayesNetwork.for_modality(modality).probability()
    assert a["p_crs"] == pytest.approx(b["p_crs"], abs=1e-12)
    assert a["p_severe"] == pytest.approx(b["p_severe"], abs=1e-12)
    assert a["basis"] == ELICITED


def test_the_elicited_network_gives_tgn1412_0_12_and_says_it_is_elicited():
    net = CrsBayesNetwork.for_modality("cd28_superagonist")
    assert net.probability()["p_severe"] == pytest.approx(0.124, abs=0.001)
    assert net.basis == "elicited"
    assert set(net.parameters_table()["basis"]) == {"elicited"}


def _fit(**changes):
    base = load_bayes_parameters()
    return dataclasses.replace(base, fit={**base.fit, **changes})


def test_cases_are_the_published_incidences(fitted):
    cases = library_cases()
    tec = cases[cases["compound"] == "teclistamab"].set_index("observed")["weight"]
    # Moreau 2022: 72.1 % CRS, 0.6 % grade 3
    assert tec["CRS of grade >= 3 (published incidence)"] == pytest.approx(0.006)
    assert tec["CRS below grade 3 (published incidence)"] == pytest.approx(0.721 - 0.006)
    assert tec["no CRS (published incidence)"] == pytest.approx(1 - 0.721)
    tgn = cases[cases["compound"] == "tgn1412"]
    assert tgn["weight"].tolist() == [1.0] and tgn["likelihood"].iloc[0] == (0, 0, 1)
    # by default every compound weighs one case
    assert cases.groupby("compound")["weight"].sum().to_numpy() == pytest.approx(1.0)
    assert set(cases["subjects"]) == {1}
    # CRS reported without an incidence cannot say how large P(CRS) is: not fitted
    assert "alemtuzumab" not in set(cases["compound"])


def test_weighed_by_subjects_a_compound_counts_its_patients_up_to_the_cap():
    cases = library_cases(params=_fit(case_weight="subjects"))
    tec = cases[cases["compound"] == "teclistamab"].set_index("observed")["weight"]
    # Moreau 2022: 0.6 % grade 3 of 165 patients, capped at 100
    assert tec["CRS of grade >= 3 (published incidence)"] == pytest.approx(0.006 * 100)
    tgn = cases[cases["compound"] == "tgn1412"]
    assert tgn["weight"].tolist() == [6.0]  # Suntharalingam 2006: 6 of 6 volunteers
    subjects = cases.groupby("compound")["subjects"].first()
    assert cases.groupby("compound")["weight"].sum().to_numpy() == pytest.approx(
        subjects.to_numpy()
    )
    assert subjects["natalizumab"] == 100  # 627 in AFFIRM, capped
    assert subjects["bevacizumab"] == 1  # no patient count in its source


def test_consistency_with_6_of_6_needs_p_of_at_least_0_54():
    assert consistent_with_outcome(0.55, 6, 6)
    assert not consistent_with_outcome(0.53, 6, 6)
    assert 0.025 ** (1 / 6) == pytest.approx(0.541, abs=0.001)
    # Moreau 2022: 1 grade-3 CRS of 165 is consistent with P(severe) 0.01, not with 0.1
    assert consistent_with_outcome(0.01, 1, 165)
    assert not consistent_with_outcome(0.1, 1, 165)


def test_fitted_per_compound_tgn1412_moves_from_0_12_but_is_not_consistent(fitted, loo):
    p = fitted.probability("cd28_superagonist")
    assert 0.2 < p["p_severe"] < 0.541  # 0.24 with the shipped [fit]
    assert p["basis"] == f"fitted to {len(fitted.compounds)} reference compounds"
    assert p["modality_basis"] == "fitted to 1 reference compound"
    row = loo.loc["tgn1412"]
    assert row["p_severe_fitted"] == pytest.approx(p["p_severe"])
    assert row["severe_consistent_fitted"] is False
    # left out, the only CD28 superagonist leaves its modality's tables elicited
    assert row["same_modality_compounds_left_out"] == 0
    assert row["p_severe_left_out"] < row["p_severe_fitted"]
    assert row["severe_consistent_left_out"] is False


def test_weighed_by_subjects_tgn1412_is_consistent_whatever_the_cap():
    for cap in (6, 100, 10**6):
        net = fit_network(_fit(case_weight="subjects", max_subjects=cap))
        assert net.probability("cd28_superagonist")["p_severe"] >= 0.541  # 0.59-0.60


def test_weighed_by_subjects_the_answer_rests_on_the_prior_weight():
    # 2 subjects per column: 0.59; 2.5: 0.53, no longer consistent with 6 of 6
    net = fit_network(_fit(case_weight="subjects", equivalent_sample_size=2.5))
    assert net.probability("cd28_superagonist")["p_severe"] < 0.541


def test_a_weaker_prior_lets_tgn1412_move_further():
    base = _fit()
    weak = _fit(equivalent_sample_size=0.5)
    strong = _fit(equivalent_sample_size=5.0)
    p_weak = fit_network(weak).probability("cd28_superagonist")["p_severe"]
    p_strong = fit_network(strong).probability("cd28_superagonist")["p_severe"]
    assert p_weak > fit_network(base).probability("cd28_superagonist")["p_severe"] > p_strong


def test_the_fit_moves_car_t_towards_its_published_severe_incidence(fitted):
    # Hay 2017: 12.1 % grade >= 3; the elicited 0.116 already lies near it
    p = fitted.probability("car_t")["p_severe"]
    assert 0.05 < p < 0.3


def test_columns_the_data_do_not_reach_stay_elicited_and_are_labelled(fitted):
    table = fitted.parameters_table()
    elicited = FittedCrsNetwork.elicited().parameters_table()
    untouched = table["parents"].str.contains("modality=checkpoint_inhibitor")
    assert (table.loc[untouched, "basis"] == "elicited").all()
    assert np.allclose(
        table.loc[untouched, "p_present"].to_numpy(), elicited.loc[untouched, "p_present"]
    )
    tgn = table[(table["node"] == "mie") & (table["parents"] == "modality=cd28_superagonist")]
    assert tgn["basis"].iloc[0] == "fitted to 1 reference compound"


def test_no_cases_leave_the_network_elicited():
    net = fit_network(exclude=tuple(library_cases()["compound"]))
    assert net.basis == "elicited"
    assert net.probability("cd28_superagonist")["p_severe"] == pytest.approx(0.124, abs=0.001)


def test_the_leave_one_out_table_lists_every_compound_with_its_basis(loo):
    assert {"tgn1412", "teclistamab", "cd19_car_t_fhcrc", "bevacizumab"} <= set(loo.index)
    assert loo["basis_fitted"].str.startswith("fitted to").all()
    assert not loo.loc["alemtuzumab", "used_in_fit"]
    assert loo.loc["alemtuzumab", "p_severe_left_out"] == loo.loc["alemtuzumab", "p_severe_fitted"]
    assert loo.loc["teclistamab", "observed_crs_severe_percent"] == 0.6


def test_basis_label():
    assert basis_label(0) == "elicited"
    assert basis_label(1) == "fitted to 1 reference compound"
    assert basis_label(8) == "fitted to 8 reference compounds"


def test_cli_fit_writes_the_leave_one_out_table(tmp_path):
    from typer.testing import CliRunner

    from cytosafe.cli import app
    from cytosafe.cli.aop import FIT_FILES

    out = tmp_path / "fit"
    result = CliRunner().invoke(app, ["aop", "fit", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(FIT_FILES)
    table = pd.read_csv(out / "leave_one_out.csv")
    assert {"p_severe_left_out", "basis_fitted"} <= set(table.columns)
    md = (out / "leave_one_out.md").read_text(encoding="utf-8")
    assert "TGN1412" in md and "never replace" in md
    settings = json.loads((out / "settings.json").read_text(encoding="utf-8"))
    assert settings["basis"].startswith("fitted to")


def test_cli_query_labels_the_elicited_output(tmp_path):
    from typer.testing import CliRunner

    from cytosafe.cli import app

    out = tmp_path / "q.csv"
    result = CliRunner().invoke(
        app, ["aop", "query", "--modality", "cd28_superagonist", "--fitted", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(out)["basis"]) == {"elicited"}
    data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert data["basis"] == "elicited"
    assert data["fitted"]["basis"].startswith("fitted to")


@pytest.mark.parametrize(
    ("line", "field"),
    [('case_weight = "patients"', "case_weight"), ("max_subjects = 2.5", "max_subjects")],
)
def test_a_bad_fit_setting_names_its_field(tmp_path, line, field):
    from cytosafe import data
    from cytosafe.errors import InputError

    text = data.path("crs_bayes.toml").read_text(encoding="utf-8")
    key = line.split(" = ")[0]
    text = "\n".join(line if r.startswith(f"{key} = ") else r for r in text.splitlines())
    bad = tmp_path / "bayes.toml"
    bad.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_bayes_parameters(bad)
    assert err.value.field == f"fit.{field}" and "bayes.toml" in str(err.value)
