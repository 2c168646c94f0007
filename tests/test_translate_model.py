"""The cytokine-release model: against solve_ivp, mass balance, first-dose effect, populations.

Stated tolerances: the vectorised RK4 (step 0.25 h) agrees with SciPy's LSODA
(rtol 1e-9) to 1e-3 relative on IL-6 and to 1e-6 of the peak on the concentration.
"""

from __future__ import annotations

import numpy as np
import pytest

from cytosafe.translate import (
    Dose,
    DoseSchedule,
    ModelSettings,
    Regimen,
    default_parameters,
    sample_population,
    simulate,
    simulate_ivp,
    simulate_population,
)
from cytosafe.translate.model import stimulation
from cytosafe.translate.population import candidate_step_up_regimens, search_step_up
from cytosafe.translate.regimen import SearchSpec

IL6_RTOL = 1e-3
CONC_TOL = 1e-6

TYPICAL = {k: p.value for k, p in default_parameters().items()}


def _schedule(times_h, amounts_ug, routes, durations):
    return DoseSchedule(
        np.array(times_h, float),
        np.array(amounts_ug, float),
        tuple(routes),
        np.array(durations, float),
    )


def _one(params):
    return {k: np.array([v]) for k, v in params.items()}


CASES = {
    "2-cpt IV infusions, emax, priming": (
        ModelSettings(2, "emax", True),
        _schedule([0, 72, 170], [300, 3000, 10000], ["iv"] * 3, [4, 2, 4]),
    ),
    "1-cpt SC doses": (
        ModelSettings(1, "emax", True),
        _schedule([0, 96], [5000, 20000], ["sc", "sc"], [0, 0]),
    ),
    "IV bolus and SC, trimer": (
        ModelSettings(2, "trimer", True),
        _schedule([0, 50], [2000, 8000], ["iv", "sc"], [0, 0]),
    ),
    "priming off": (
        ModelSettings(2, "emax", False),
        _schedule([0, 48], [1000, 10000], ["iv", "iv"], [1, 1]),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_vectorised_solution_matches_solve_ivp(name):
    settings, schedule = CASES[name]
    pop = sample_population(3, seed=7)
    vec = simulate(pop, schedule, t_end_h=240, settings=settings, dt_h=0.25, output_step_h=1.0)
    for i in range(3):
        ref = simulate_ivp(
            {k: v[i] for k, v in pop.items()}, schedule, t_end_h=240, settings=settings
        )
        il6_err = np.abs(vec.il6[:, i] - ref.il6[:, 0]) / ref.il6[:, 0]
        assert il6_err.max() < IL6_RTOL, name
        c_ref = ref.concentration[:, 0]
        assert np.abs(vec.concentration[:, i] - c_ref).max() < CONC_TOL * c_ref.max(), name


def test_one_compartment_bolus_is_the_exponential():
    p = _one(TYPICAL)
    r = simulate(
        p,
        _schedule([0], [7000], ["iv"], [0]),
        t_end_h=100,
        settings=ModelSettings(1),
        output_step_h=5,
    )
    k = TYPICAL["cl"] / TYPICAL["v1"]
    expected = 7000 / TYPICAL["v1"] * np.exp(-k * r.times_h)
    np.testing.assert_allclose(r.concentration[:, 0], expected, rtol=1e-8)


@pytest.mark.parametrize("compartments", [1, 2])
def test_pk_mass_balance(compartments):
    pop = sample_population(50, seed=3)
    sched = _schedule([0, 30, 100], [1000, 4000, 9000], ["iv", "sc", "iv"], [6, 0, 0])
    r = simulate(pop, sched, t_end_h=300, settings=ModelSettings(compartments))
    amounts = r.final_state[:4].sum(axis=0)  # depot + central + peripheral + eliminated
    expected = 1000 + 4000 * pop["f_sc"] + 9000
    np.testing.assert_allclose(r.dosed_ug, expected, rtol=1e-12)
    np.testing.assert_allclose(amounts, expected, rtol=1e-9)


def test_emax_stimulation_is_half_maximal_at_ec50():
    p = {k: np.array([v]) for k, v in TYPICAL.items()}
    assert stimulation(np.array([TYPICAL["ec50"]]), p, ModelSettings(stimulation="emax"))[
        0
    ] == pytest.approx(0.5)


def test_trimer_stimulation_is_bell_shaped_and_half_maximal_at_ec50():
    p = {k: np.array([v]) for k, v in TYPICAL.items()}
    s = ModelSettings(stimulation="trimer")
    assert stimulation(np.array([TYPICAL["ec50"]]), p, s)[0] == pytest.approx(0.5)
    kt = TYPICAL["kd_target"] * TYPICAL["mw_kda"]
    k3 = TYPICAL["kd_cd3"] * TYPICAL["mw_kda"]
    c_top = np.sqrt(kt * k3)
    top = stimulation(np.array([c_top]), p, s)[0]
    assert stimulation(np.array([c_top * 1000]), p, s)[0] < 0.5 * top  # the hook effect
    assert stimulation(np.array([c_top / 3]), p, s)[0] < top


FLAT = Regimen("flat", tuple(Dose(24 * 7 * i, 10, "mg", "iv", 4) for i in range(4)))
STEP = Regimen(
    "step-up",
    (
        Dose(0, 0.1, "mg", "iv", 4),
        Dose(24 * 7, 1, "mg", "iv", 4),
        Dose(24 * 14, 10, "mg", "iv", 4),
        Dose(24 * 21, 10, "mg", "iv", 4),
    ),
)


def _peak_medians(priming: bool):
    res = simulate_population(
        [FLAT, STEP], n_subjects=40, settings=ModelSettings(priming=priming), seed=11
    )
    table = res.comparison().set_index("regimen")
    return table.loc["flat", "peak_il6_median"], table.loc["step-up", "peak_il6_median"], res


def test_first_dose_effect_step_up_lowers_the_peak():
    flat, step, res = _peak_medians(priming=True)
    assert step < 0.5 * flat
    per_dose = res.per_dose()
    flat_doses = per_dose[per_dose["regimen"] == "flat"]["peak_il6_median"].to_numpy()
    assert flat_doses[0] == flat_doses.max()  # the first exposure releases the most
    assert STEP.time_to_target_days() == 15 and FLAT.time_to_target_days() == 1


def test_first_dose_effect_disappears_without_priming():
    flat, step, res = _peak_medians(priming=False)
    assert step > 0.95 * flat
    per_dose = res.per_dose()
    flat_doses = per_dose[per_dose["regimen"] == "flat"]["peak_il6_median"].to_numpy()
    assert flat_doses[0] <= flat_doses.max() and flat_doses[-1] >= flat_doses[0]


def test_threshold_share_and_per_dose_table():
    res = simulate_population([FLAT], n_subjects=30, threshold=1e9)
    assert res.comparison()["share_above_threshold"].item() == 0.0
    res = simulate_population([FLAT], n_subjects=30, threshold=1e-3)
    assert res.comparison()["share_above_threshold"].item() == 1.0
    assert len(res.per_dose()) == 4
    bands = res.time_courses()
    assert (bands["il6_p05"] <= bands["il6_median"]).all() and (
        bands["il6_median"] <= bands["il6_p95"]
    ).all()


def test_dask_chunks_give_the_same_numbers():
    one = simulate_population([STEP], n_subjects=24, seed=5, chunk_size=None, days=10)
    chunked = simulate_population(
        [STEP], n_subjects=24, seed=5, chunk_size=7, days=10, scheduler="threads"
    )
    a, b = one.results["step-up"], chunked.results["step-up"]
    np.testing.assert_allclose(a.peak_il6, b.peak_il6, rtol=1e-12)
    np.testing.assert_allclose(a.il6, b.il6, rtol=1e-12)


def test_population_is_log_normal_around_the_typical_values():
    pop = sample_population(20000, seed=2)
    params = default_parameters()
    for name in ("cl", "ec50", "k_prod"):
        logs = np.log(pop[name])
        assert np.exp(np.median(logs)) == pytest.approx(params[name].value, rel=0.03)
        assert logs.std() == pytest.approx(params[name].omega, rel=0.05)
    assert np.all(pop["q"] == params["q"].value)  # omega 0: no variability


def test_search_finds_step_up_schedules_lower_than_flat():
    spec = SearchSpec(
        target_dose=10,
        unit="mg",
        by_day=9,
        first_fractions=(0.01, 0.1),
        intervals_days=(2.0, 4.0),
        max_priming_doses=2,
        subjects=15,
    )
    cands = candidate_step_up_regimens(spec, days=21)
    assert cands and all(r.time_to_target_days() <= 9 for r in cands)
    table = search_step_up(spec, days=21)
    flat = table[table["is_flat_reference"]]
    best = table.iloc[0]
    assert not best["is_flat_reference"]
    assert best["objective"] < flat["objective"].item()
    assert list(table["rank"]) == list(range(1, len(table) + 1))


def test_a_distributed_client_computes_the_chunks():
    from distributed import Client

    with Client(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
    ) as client:
        dist = simulate_population(
            [STEP], n_subjects=12, seed=5, chunk_size=5, days=10, scheduler=client
        )
    one = simulate_population([STEP], n_subjects=12, seed=5, chunk_size=None, days=10)
    np.testing.assert_allclose(
        dist.results["step-up"].peak_il6, one.results["step-up"].peak_il6, rtol=1e-12
    )
