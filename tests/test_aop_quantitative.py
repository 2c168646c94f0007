"""Quantitative AOP (Bayesian network) and mechanism simulation (Boolean network).

* the network's probabilities equal a small case computed by hand;
* evidence of late key events moves P(CRS) the right way;
* in the MaBoSS model, tocilizumab (IL-6 receptor blockade) lowers P(CRS).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cytosafe.aop import CrsBayesNetwork, load_bayes_parameters, simulate, summarise
from cytosafe.aop.bayes import AssaySpec
from cytosafe.cli import EXIT_INPUT_ERROR, reporting_errors
from cytosafe.cli.aop import EXPORT_FILES, aop_command
from cytosafe.data import path as data_path
from cytosafe.errors import InputError

SMALL = """
schema = "cytosafe.bayes"
version = "test"

[[node]]
key = "mie"
event = "mie"
leak = 0.0
interval = [0.0, 0.0]
citations = ["cytosafe_convention"]
status = "unconfirmed"

[[node]]
key = "ke"
event = "ke_t_cell_activation"
leak = 0.1
interval = [0.1, 0.1]
citations = ["cytosafe_convention"]
status = "unconfirmed"

[[node]]
key = "crs"
event = "ao_crs"
leak = 0.0
interval = [0.0, 0.0]
severity_parent = "ke"
severe_given_crs = { absent = 0.1, present = 0.5 }
severe_intervals = { absent = [0.1, 0.1], present = [0.5, 0.5] }
citations = ["cytosafe_convention"]
status = "unconfirmed"

[[link]]
parent = "ke"
child = "crs"
p = 0.8
interval = [0.8, 0.8]
citations = ["cytosafe_convention"]
status = "unconfirmed"

[[modality]]
key = "test"
mie_prior = 0.5
mie_prior_interval = [0.5, 0.5]
links = { ke = 0.9 }
intervals = { ke = [0.9, 0.9] }
citations = ["cytosafe_convention"]
status = "unconfirmed"
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> CrsBayesNetwork:
    path = tmp_path_factory.mktemp("bn") / "small.toml"
    path.write_text(SMALL, encoding="utf-8")
    return CrsBayesNetwork.for_modality("test", path)


def test_a_small_network_matches_the_hand_computation(small):
    # P(ke | mie) = 1 - (1 - 0.1)(1 - 0.9) = 0.91; P(ke | no mie) = 0.1
    # P(ke) = 0.5 * 0.91 + 0.5 * 0.1 = 0.505
    # P(CRS) = P(ke) * 0.8 = 0.404; P(severe) = P(ke) * 0.8 * 0.5 = 0.202
    assert small.query("ke") == pytest.approx({"absent": 0.495, "present": 0.505})
    p = small.probability()
    assert p == pytest.approx({"p_crs": 0.404, "p_severe": 0.202, "p_none": 0.596})
    assert small.probability({"ke": "present"}) == pytest.approx(
        {"p_crs": 0.8, "p_severe": 0.4, "p_none": 0.2}
    )
    assert small.probability({"ke": 0})["p_crs"] == pytest.approx(0.0)
    # Bayes backwards: P(mie | CRS) = P(CRS | mie) P(mie) / P(CRS) = 0.91*0.8*0.5 / 0.404
    post = small.query("mie", {"crs": "severe"})
    assert post["present"] == pytest.approx(0.91 * 0.5 / 0.505)
    assert small.enumerate_probability({"ke": "present"}) == pytest.approx(
        {"p_crs": 0.8, "p_severe": 0.4}
    )


def test_the_information_value_of_an_assay_matches_the_hand_computation(small):
    assay = AssaySpec("a", "assay on ke", "ke", sensitivity=0.9, specificity=0.8)
    info = small.information_value(assay)
    # joint P(ke, outcome): ke present 0.505 -> (0.101, 0.202, 0.202); absent -> (0.495, 0, 0)
    positive = np.array([0.9 * 0.101 + 0.2 * 0.495, 0.9 * 0.202, 0.9 * 0.202])
    negative = np.array([0.1 * 0.101 + 0.8 * 0.495, 0.1 * 0.202, 0.1 * 0.202])

    def h(p):
        p = p[p > 0] / p.sum()
        return -(p * np.log2(p)).sum()

    prior = np.array([0.596, 0.202, 0.202])
    mi = h(prior) - positive.sum() * h(positive) - negative.sum() * h(negative)
    assert info["p_positive"] == pytest.approx(positive.sum())
    assert info["p_crs_if_positive"] == pytest.approx(1 - positive[0] / positive.sum())
    assert info["mutual_information_bits"] == pytest.approx(mi)
    useless = small.information_value(
        AssaySpec("b", "coin", "ke", sensitivity=0.5, specificity=0.5)
    )
    assert useless["mutual_information_bits"] == pytest.approx(0.0, abs=1e-12)


@pytest.fixture(scope="module")
def car_t() -> CrsBayesNetwork:
    return CrsBayesNetwork.for_modality("car_t")


def test_the_shipped_network_agrees_with_exact_enumeration(car_t):
    for evidence in (
        {},
        {"ke_vascular_leak": "present"},
        {"myeloid": "absent", "endothelial": "present"},
    ):
        p = car_t.probability(evidence)
        assert car_t.enumerate_probability(evidence) == pytest.approx(
            {"p_crs": p["p_crs"], "p_severe": p["p_severe"]}
        )


def test_the_car_t_prior_is_near_the_anchoring_incidence(car_t):
    # Hay et al. 2017: CRS in 70 % of 133 patients, grade >= 3 in 12 %.
    p = car_t.probability()
    assert 0.6 < p["p_crs"] < 0.8 and 0.07 < p["p_severe"] < 0.17


@pytest.mark.parametrize(
    "event", ["ke_systemic_cytokine_release", "ke_endothelial_activation", "ke_vascular_leak"]
)
def test_late_key_event_evidence_moves_p_crs_the_right_way(car_t, event):
    prior = car_t.probability()
    up = car_t.probability({event: "present"})
    down = car_t.probability({event: "absent"})
    assert down["p_crs"] < prior["p_crs"] < up["p_crs"]
    assert down["p_severe"] < prior["p_severe"] < up["p_severe"]


def test_vascular_leak_raises_severe_crs_more_than_cytokine_release_does(car_t):
    leak = car_t.probability({"ke_vascular_leak": "present"})["p_severe"]
    cytokines = car_t.probability({"ke_systemic_cytokine_release": "present"})["p_severe"]
    assert leak > cytokines


def test_an_assay_that_cannot_see_the_mechanism_is_worth_less():
    net = CrsBayesNetwork.for_modality("cd28_superagonist")
    table = net.rank_assays().set_index("assay")
    blind = table.loc["format:pbmc_aqueous", "mutual_information_bits"]
    sees = table.loc["format:pbmc_high_density_preculture", "mutual_information_bits"]
    assert sees > blind
    known = net.information_value("in_vitro_t_cell", {"ke_t_cell_activation": "present"})
    assert known["mutual_information_bits"] == 0.0


def test_parameter_intervals_propagate(tmp_path, small):
    point = small.probability_interval(n=50)
    assert point["p_crs_low"] == pytest.approx(0.404) and point["p_crs_high"] == pytest.approx(
        0.404
    )
    wide = tmp_path / "wide.toml"
    wide.write_text(
        SMALL.replace("p = 0.8\ninterval = [0.8, 0.8]", "p = 0.8\ninterval = [0.6, 0.95]"),
        encoding="utf-8",
    )
    spread = CrsBayesNetwork.for_modality("test", wide).probability_interval(n=200, seed=1)
    assert spread["p_crs_low"] < 0.404 < spread["p_crs_high"]


def test_bad_parameters_are_named(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        SMALL.replace("p = 0.8\ninterval = [0.8, 0.8]", "p = 0.8\ninterval = [0.1, 0.5]"),
        encoding="utf-8",
    )
    with pytest.raises(InputError, match="does not hold the value") as err:
        load_bayes_parameters(path)
    assert err.value.file == str(path) and err.value.field == "link[0].interval"
    with pytest.raises(InputError, match="no Bayesian-network parameters"):
        CrsBayesNetwork.for_modality("antisense")
    with pytest.raises(InputError, match="unknown key event"):
        CrsBayesNetwork.for_modality("car_t").probability({"ke_fever": "present"})


def test_every_modality_of_the_knowledge_base_can_be_queried(small):
    from cytosafe.assays import load_knowledge_base

    params = load_bayes_parameters()
    assert set(load_knowledge_base().modalities) <= set(params.modalities)
    assert small.rank_assays().empty  # a modality unknown to the KB and no [[assay]]: nothing


def test_every_bayes_node_is_an_event_of_the_aop():
    from cytosafe.aop import load_crs_aop

    events = set(load_crs_aop().events)
    params = load_bayes_parameters()
    assert {n.event for n in params.nodes.values()} - {"mie"} <= events
    assert set(params.modalities) <= set(
        __import__("cytosafe.assays", fromlist=["x"]).load_knowledge_base().modalities
    )


# --- Boolean network -------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs():
    table = simulate(
        ["none", "tocilizumab", "il1_blockade", "corticosteroids", "remove_mie"],
        sample_count=1000,
        seed=7,
    )
    return summarise(table).set_index("intervention")


def test_simulated_tocilizumab_lowers_the_probability_of_crs(runs):
    assert runs.loc["tocilizumab", "p_CRS_final"] < runs.loc["none", "p_CRS_final"] - 0.05
    assert runs.loc["tocilizumab", "p_CRS_mean"] < runs.loc["none", "p_CRS_mean"]


def test_removing_the_mie_prevents_crs_and_other_interventions_lower_it(runs):
    assert runs.loc["remove_mie", "p_CRS_max"] == 0.0
    assert runs.loc["corticosteroids", "p_CRS_mean"] < runs.loc["none", "p_CRS_mean"]
    assert runs.loc["il1_blockade", "p_CRS_mean"] < runs.loc["none", "p_CRS_mean"]


def test_tocilizumab_blocks_signalling_not_il6_itself():
    table = simulate(["none", "tocilizumab"], sample_count=500, seed=3)
    last = table[table["time"] == table["time"].max()].set_index("intervention")
    assert last.loc["tocilizumab", "IL6R"] == 0.0
    assert last.loc["tocilizumab", "IL6"] > 0.5


def test_a_modality_preset_and_a_fixed_seed(runs):
    fc = simulate(["none"], modality="igg1_mab", sample_count=300, seed=5)
    again = simulate(["none"], modality="igg1_mab", sample_count=300, seed=5)
    assert fc.equals(again)
    assert fc["Tcell"].max() == 0.0 and fc["Myeloid"].iloc[-1] > 0.5


def test_unknown_interventions_and_settings_are_errors():
    with pytest.raises(InputError, match="unknown intervention"):
        simulate(["plasmapheresis"])
    with pytest.raises(InputError, match="no single setting"):
        simulate(["none"], settings={"$no_such_rate": 1})


def test_the_model_files_cover_the_mapped_key_events():
    from cytosafe.aop import load_boolean_model, load_crs_aop

    model = load_boolean_model()
    events = set(load_crs_aop().events)
    assert set(model.node_events.values()) <= events
    bnd = data_path("crs_mechanism.bnd").read_text(encoding="utf-8")
    for node in model.node_events:
        assert f"Node {node}" in bnd


# --- the `aop` command -------------------------------------------------------------------

runner = CliRunner()


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("aop")(reporting_errors(aop_command))
    app.command("other")(lambda: None)
    return app


def test_cli_export_writes_every_file(tmp_path: Path):
    result = runner.invoke(cli(), ["aop", "export", "--out", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == sorted(EXPORT_FILES)


def test_cli_query_prints_probabilities_and_assay_values(tmp_path: Path):
    out = tmp_path / "q.csv"
    result = runner.invoke(
        cli(),
        [
            "aop",
            "query",
            "--modality",
            "car_t",
            "--evidence",
            "ke_vascular_leak=present",
            "--out",
            str(out),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    expected = CrsBayesNetwork.for_modality("car_t").probability({"ke_vascular_leak": "present"})[
        "p_crs"
    ]
    assert f"P(CRS) = {expected:.3f}" in result.output
    assert out.exists() and out.with_suffix(".json").exists()
    assert not math.isnan(float(out.read_text().splitlines()[1].split(",")[-1]))


def test_cli_simulate_draws_one_line_per_intervention_and_bad_input(tmp_path: Path):
    import xml.etree.ElementTree as ET

    svg = tmp_path / "s.svg"
    result = runner.invoke(
        cli(),
        [
            "aop",
            "simulate",
            "--intervention",
            "none",
            "--intervention",
            "tocilizumab",
            "--out",
            str(svg),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "tocilizumab" in result.output
    lines = [
        e.get("data-intervention")
        for e in ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}polyline")
    ]
    assert lines == ["none", "tocilizumab"]
    result = runner.invoke(cli(), ["aop", "query", "--modality", "car_t", "--evidence", "leak"])
    assert result.exit_code == EXIT_INPUT_ERROR and "KEY_EVENT=present|absent" in result.output


def test_export_is_all_or_nothing(tmp_path: Path):
    target = tmp_path / "file.txt"
    target.write_text("keep", encoding="utf-8")
    result = runner.invoke(cli(), ["aop", "export", "--out", str(target)])
    assert result.exit_code == EXIT_INPUT_ERROR and target.read_text(encoding="utf-8") == "keep"
    result = runner.invoke(
        cli(), ["aop", "export", "--out", str(tmp_path / "y"), "--modality", "car_t"]
    )
    assert result.exit_code == 0, result.output
    assert not [p.name for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_every_quantitative_parameter_and_intervention_is_sourced():
    from cytosafe.aop import load_boolean_model
    from cytosafe.assays import load_references

    refs = set(load_references())
    for modality in load_bayes_parameters().modalities:
        net = CrsBayesNetwork.for_modality(modality)
        table = net.parameters_table()
        assert (table["citations"].str.len() > 0).all(), modality
        assert set(table["status"]) <= {"confirmed", "unconfirmed"}
    params = load_bayes_parameters()
    every = [*params.links.values(), *(n.leak for n in params.nodes.values())]
    every += [p for m in params.modalities.values() for p in (m.mie_prior, *m.links.values())]
    assert all(p.citations and set(p.citations) <= refs for p in every)
    model = load_boolean_model()
    for item in [*model.interventions.values(), *model.modalities.values()]:
        assert item.citations and set(item.citations) <= refs, item.key
