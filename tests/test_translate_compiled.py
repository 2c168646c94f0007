"""The compiled simulation kernel (issue 16: simulation >= 100x solve_ivp) against the NumPy
path it is written after, and the exact pharmacokinetic step against closed forms.

Both kernels run the same scheme with the same sums in the same order, so they agree to
rounding: bit for bit, except where a Hill exponent other than 1 calls ``pow`` (NumPy's and
Numba's differ in the last bit); the tolerance below allows for that.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.linalg import expm

import cytosafe.translate.model as model_module
from cytosafe.errors import InputError
from cytosafe.translate import (
    DoseSchedule,
    ModelSettings,
    default_parameters,
    sample_population,
    simulate,
)
from cytosafe.translate.model import _pk_propagators

AGREE = 1e-12


def _schedule(times_h, amounts_ug, routes, durations):
    return DoseSchedule(
        np.array(times_h, float),
        np.array(amounts_ug, float),
        tuple(routes),
        np.array(durations, float),
    )


def _stacked():
    # Per-subject dose times, a shorter regimen padded with a dose at infinity (as the
    # step-up search stacks its candidates).
    times = np.array([[0.0] * 4 + [0.0] * 4, [30.0] * 4 + [np.inf] * 4])
    amounts = np.array([[500.0] * 4 + [2000.0] * 4, [5000.0] * 4 + [0.0] * 4])
    durations = np.array([[2.0] * 8, [3.5] * 4 + [0.0] * 4])
    return DoseSchedule(times, amounts, ("iv", "iv"), durations)


CASES = {
    "2-cpt IV infusions, emax, priming": (
        ModelSettings(2, "emax", True),
        _schedule([0, 72, 170], [300, 3000, 10000], ["iv"] * 3, [4, 2, 4]),
        {},
    ),
    "1-cpt SC doses": (
        ModelSettings(1, "emax", True),
        _schedule([0, 96], [5000, 20000], ["sc", "sc"], [0, 0]),
        {},
    ),
    "IV bolus and SC, trimer": (
        ModelSettings(2, "trimer", True),
        _schedule([0, 50], [2000, 8000], ["iv", "sc"], [0, 0]),
        {},
    ),
    "priming off": (
        ModelSettings(2, "emax", False),
        _schedule([0, 48], [1000, 10000], ["iv", "iv"], [1, 1]),
        {},
    ),
    "Hill 2.5, emax": (
        ModelSettings(2, "emax", True),
        _schedule([0, 60.5], [800, 6000], ["iv", "iv"], [3, 1.5]),
        {"hill": 2.5},
    ),
    "Hill 1.5, trimer": (
        ModelSettings(2, "trimer", True),
        _schedule([0, 60], [800, 6000], ["iv", "iv"], [3, 0]),
        {"hill": 1.5},
    ),
    "per-subject schedules": (ModelSettings(2, "emax", True), _stacked(), {}),
    "first dose after time 0": (
        ModelSettings(2, "emax", True),
        _schedule([30, 100], [3000, 8000], ["iv", "sc"], [2, 0]),
        {},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_kernel_agrees_with_the_numpy_path(name):
    settings, schedule, typical = CASES[name]
    pop = sample_population(8, typical, seed=4)
    kw = {
        "t_end_h": 200,
        "settings": settings,
        "dt_h": 0.3,
        "output_step_h": 1.5,
        "keep_pool": True,
    }
    ref = simulate(pop, schedule, kernel="numpy", **kw)
    got = simulate(pop, schedule, kernel="compiled", **kw)
    for field in (
        "concentration",
        "il6",
        "pool",
        "peak_il6",
        "peak_time_h",
        "peak_concentration",
        "final_state",
        "dosed_ug",
    ):
        np.testing.assert_allclose(
            getattr(got, field), getattr(ref, field), rtol=AGREE, atol=0, err_msg=field
        )


def _spy_on_the_kernel(monkeypatch) -> list[int]:
    """Record the number of subjects of every call of the compiled kernel."""
    from cytosafe.translate import _compiled

    calls = []
    real = _compiled.integrate

    def spy(*args):
        calls.append(args[-1].shape[0])  # ``dosed``, one per subject
        return real(*args)

    monkeypatch.setattr(_compiled, "integrate", spy)
    return calls


def test_auto_takes_the_compiled_kernel_for_large_populations(monkeypatch):
    calls = _spy_on_the_kernel(monkeypatch)
    monkeypatch.delenv("CYTOSAFE_COMPILED", raising=False)
    sched = _schedule([0], [1000], ["iv"], [1])
    n = model_module.COMPILED_MIN_SUBJECTS
    simulate(sample_population(n - 1, seed=2), sched, t_end_h=2)
    assert calls == []
    simulate(sample_population(n, seed=2), sched, t_end_h=2)
    assert calls == [n]


def test_auto_takes_the_numpy_path_when_compiled_is_turned_off(monkeypatch):
    calls = _spy_on_the_kernel(monkeypatch)
    monkeypatch.setenv("CYTOSAFE_COMPILED", "0")
    n = model_module.COMPILED_MIN_SUBJECTS
    pop = sample_population(n, seed=2)
    sched = _schedule([0], [1000], ["iv"], [1])
    res = simulate(pop, sched, t_end_h=2, kernel="auto")
    assert res.il6.shape == (3, n) and calls == []
    with pytest.raises(InputError, match="CYTOSAFE_COMPILED=0"):
        simulate(pop, sched, t_end_h=2, kernel="compiled")


def test_both_kernels_code_the_stimulation_forms_alike():
    from cytosafe.translate import _compiled

    codes = ("EMAX1", "EMAX", "TRIMER1", "TRIMER")
    assert [getattr(_compiled, c) for c in codes] == [getattr(model_module, c) for c in codes]


def test_unknown_kernel_is_an_input_error():
    pop = sample_population(2, seed=2)
    with pytest.raises(InputError, match="unknown kernel 'fortran'"):
        simulate(pop, _schedule([0], [1000], ["iv"], [1]), t_end_h=2, kernel="fortran")


def test_exact_pk_step_matches_scipy_expm_over_the_physical_ranges():
    # Rate matrices from parameters drawn log-uniformly over the data file's ranges
    # (k10 up to 1000 /h, ka up to 50 /h): the stiff ones need many squarings.
    rng = np.random.default_rng(0)
    params = default_parameters()
    pop = {
        name: np.exp(rng.uniform(np.log(max(p.min, 1e-4)), np.log(p.max), 40))
        for name, p in params.items()
    }
    lengths = np.array([0.01, 0.25, 1.0])
    half, full = _pk_propagators(pop, ModelSettings(2), lengths, levels=3)
    rows = [0, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]
    cols = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 4, 4, 4]
    for i in range(40):
        k10, k12, k21 = (
            pop["cl"][i] / pop["v1"][i],
            pop["q"][i] / pop["v1"][i],
            pop["q"][i] / pop["v2"][i],
        )
        K = np.zeros((5, 5))
        K[0, 0], K[1, 0], K[1, 1], K[1, 2] = -pop["ka"][i], pop["ka"][i], -(k10 + k12), k21
        K[2, 1], K[2, 2], K[3, 1], K[1, 4] = k12, -k21, k10, 1.0
        for j, h in enumerate(lengths):
            for lev in range(4):  # the step h / 2^lev
                step = h / 2**lev
                eh, ef = expm(K * step / 2), expm(K * step)
                np.testing.assert_allclose(
                    half[j, lev, :, i], eh[1, [0, 1, 2, 4]], rtol=1e-10, atol=1e-14
                )
                np.testing.assert_allclose(
                    full[j, lev, :, i], ef[rows, cols], rtol=1e-10, atol=1e-14
                )


def test_two_compartment_bolus_is_the_biexponential():
    # C(t) = D/V1 [(alpha - k21) e^(-alpha t) + (k21 - beta) e^(-beta t)] / (alpha - beta),
    # alpha + beta = k10 + k12 + k21, alpha beta = k10 k21 (Gabrielsson & Weiner 2016).
    pop = sample_population(5, seed=9)
    dose = 7000.0
    r = simulate(
        pop,
        _schedule([0], [dose], ["iv"], [0]),
        t_end_h=300,
        settings=ModelSettings(2),
        output_step_h=7.0,
        kernel="numpy",
    )
    k10, k12, k21 = pop["cl"] / pop["v1"], pop["q"] / pop["v1"], pop["q"] / pop["v2"]
    s, prod = k10 + k12 + k21, k10 * k21
    alpha = (s + np.sqrt(s * s - 4 * prod)) / 2
    beta = prod / alpha
    t = r.times_h[:, None]
    expected = (
        dose
        / pop["v1"]
        * ((alpha - k21) * np.exp(-alpha * t) + (k21 - beta) * np.exp(-beta * t))
        / (alpha - beta)
    )
    np.testing.assert_allclose(r.concentration, expected, rtol=1e-9)
    assert math.isclose(r.final_state[:4, 0].sum(), dose, rel_tol=1e-10)  # mass balance


DOSE_AT_AN_OUTPUT_TIME = {
    "IV bolus": ("iv", 0.0),
    "IV infusion": ("iv", 1.0),
    "SC": ("sc", 0.0),
}


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
@pytest.mark.parametrize("name", list(DOSE_AT_AN_OUTPUT_TIME))
def test_a_dose_at_an_output_time_is_given_once(name, kernel):
    # np.arange(0, t, 0.1)[3] is 0.30000000000000004: the grid held it beside the dose
    # time 0.3, both passed the dose test |T - a| < 1e-9, and the dose was given twice.
    route, hours = DOSE_AT_AN_OUTPUT_TIME[name]
    pop = sample_population(3, seed=5)
    dose = 1000.0
    r = simulate(
        pop,
        _schedule([0.3], [dose], [route], [hours]),
        t_end_h=2.0,
        output_step_h=0.1,
        kernel=kernel,
    )
    given = dose * (pop["f_sc"] if route == "sc" else 1.0)
    np.testing.assert_allclose(r.dosed_ug, given, rtol=1e-15)
    # mass balance: depot + central + peripheral + eliminated is what was given
    np.testing.assert_allclose(r.final_state[:4].sum(axis=0), given, rtol=1e-10)
    assert len(r.times_h) == 21
    if name == "IV bolus":  # the output at the dose time shows the dose once
        np.testing.assert_allclose(r.concentration[3], dose / pop["v1"], rtol=1e-15)


def _extreme(pop, name, value, at):
    out = {k: v.copy() for k, v in pop.items()}
    out[name][at] = value
    return out


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_a_subject_gets_the_same_numbers_whoever_shares_its_batch(kernel):
    # The scaling of the matrix exponential was one number for the whole batch (the
    # largest norm), so a stiff subject (ka = 400 /h) changed the others' rounding: the
    # population chunks must give the same numbers as one call (population.py).
    pop = sample_population(8, seed=6)
    schedule = _schedule([0, 24], [300, 3000], ["sc", "iv"], [0, 1])
    kw = {"t_end_h": 48, "output_step_h": 2.0, "keep_pool": True, "kernel": kernel}
    alone = simulate({k: v[:5] for k, v in pop.items()}, schedule, **kw)
    shared = simulate(_extreme(pop, "ka", 400.0, 7), schedule, **kw)
    for field in ("concentration", "il6", "pool", "peak_il6", "peak_concentration"):
        np.testing.assert_array_equal(
            getattr(shared, field)[..., :5], getattr(alone, field), err_msg=field
        )


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
@pytest.mark.parametrize(("name", "value"), [("v1", 1e-320), ("ka", np.inf)])
def test_a_degenerate_subject_is_nan_and_leaves_the_others_alone(name, value, kernel):
    # cl / v1 overflows to inf for a subnormal v1, and ka = inf is infinite: the scaling
    # of the matrix exponential raised OverflowError for the whole population. That
    # subject's rates have no finite exponential: its concentrations and IL-6 are NaN
    # after the start, and the other subjects get their own numbers.
    pop = sample_population(4, seed=7)
    schedule = _schedule([0, 24], [300, 3000], ["sc", "iv"], [0, 1])
    kw = {"t_end_h": 48, "output_step_h": 2.0, "kernel": kernel}
    ref = simulate(pop, schedule, **kw)
    got = simulate(_extreme(pop, name, value, 2), schedule, **kw)
    assert np.isnan(got.concentration[1:, 2]).all()
    assert np.isnan(got.il6[1:, 2]).all()
    others = [0, 1, 3]
    np.testing.assert_array_equal(got.concentration[:, others], ref.concentration[:, others])
    np.testing.assert_array_equal(got.il6[:, others], ref.il6[:, others])
    np.testing.assert_array_equal(got.peak_il6[:, others], ref.peak_il6[:, others])
