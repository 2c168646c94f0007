"""Curves of one run in different families: ``5PL-auto`` (the 5PL form with the smaller
AIC, per curve, or the 4PL where neither form is usable) and per-curve families
(``curve_models``, a vendor's printed family per analyte); issue 12, item 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytosafe.curves import get_model
from cytosafe.curves.calibration import CalibrationSettings, calibrate
from cytosafe.errors import InputError

LEVELS = 10000 / 4.0 ** np.arange(8)
TRUE = [40.0, 1.1, 900.0, 30000.0, 0.5]  # strongly asymmetric: the two forms differ
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cra-study"


def plate(analyte: str, family: str, samples=(3.0, 70.0, 2000.0)) -> pd.DataFrame:
    """A noise-free plate x analyte from ``family`` with TRUE's parameters."""
    model = get_model(family)
    p = np.array([TRUE[: model.n_params]])
    rows = []
    wells = iter(f"{r}{c:02d}" for c in range(1, 13) for r in "ABCDEFGH")

    def add(kind, conc, rep, **extra):
        y = float(model.f(np.array([[conc]]), p)[0, 0])
        rows.append(dict(study_id="S", plate_id="P1", well=next(wells), analyte=analyte,
                         sample_type=kind, signal=y, replicate=rep, **extra))  # fmt: skip

    for c in LEVELS:
        for r in (1, 2):
            add("standard", c, r, standard_concentration=c)
    for r in (1, 2):
        add("blank", 0.0, r)
    for i, c in enumerate(samples):
        for r in (1, 2):
            add("sample", c, r, sample_id=f"s{i}", true=c)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def both():
    df = pd.concat([plate("IL-6", "5PL"), plate("TNF", "5PL-mirror")], ignore_index=True)
    return df, calibrate(df.drop(columns="true"), CalibrationSettings(model="5PL-auto"))


def test_auto_recovers_each_noise_free_curve_in_its_own_form(both):
    df, cal = both
    curves = cal.curves.set_index("analyte")
    assert curves.loc["IL-6", "model"] == "5PL" and curves.loc["TNF", "model"] == "5PL-mirror"
    for analyte in ("IL-6", "TNF"):
        np.testing.assert_allclose(curves.loc[analyte, list("abcdg")].to_numpy(float), TRUE,
                                   rtol=1e-5)  # fmt: skip
        assert "the smaller AIC" in curves.loc[analyte, "model_choice"]
    s = cal.samples[cal.samples["sample_type"] == "sample"]
    truth = df.drop_duplicates(["analyte", "sample_id"]).set_index(["analyte", "sample_id"])
    got = s.set_index(["analyte", "sample_id"])["concentration"]
    np.testing.assert_allclose(got, truth.loc[got.index, "true"], rtol=1e-6)


def test_auto_keeps_the_row_order_and_the_columns_of_a_single_family_run(both):
    df, cal = both
    one = calibrate(df.drop(columns="true"), CalibrationSettings(model="5PL"))
    assert list(cal.wells["well"] + cal.wells["analyte"]) == list(df["well"] + df["analyte"])
    assert set(one.wells.columns) == set(cal.wells.columns)
    assert set(one.curves.columns) | {"model_choice"} == set(cal.curves.columns)
    assert str(cal.settings.model) == "5PL-auto"


def test_each_curve_gets_exactly_the_numbers_of_its_family_alone(both):
    df, cal = both
    alone = calibrate(df[df["analyte"] == "TNF"].drop(columns="true"),
                      CalibrationSettings(model="5PL-mirror"))  # fmt: skip
    mine = cal.wells[cal.wells["analyte"] == "TNF"].reset_index(drop=True)
    pd.testing.assert_series_equal(mine["concentration"], alone.wells["concentration"])


def test_curve_models_give_each_printed_curve_its_own_family(both):
    df, _ = both
    cal = calibrate(
        df.drop(columns="true"),
        CalibrationSettings(model="5PL", curve_models={"P1:TNF": "5PL-mirror"}),
    )
    curves = cal.curves.set_index("analyte")
    assert curves.loc["IL-6", "model"] == "5PL" and curves.loc["TNF", "model"] == "5PL-mirror"
    assert curves.loc["TNF", "model_choice"] == ""
    assert CalibrationSettings(curve_models={"P1:TNF": "5pl-mirror"}).to_dict()["curve_models"] == {
        "P1:TNF": "5PL-mirror"
    }
    with pytest.raises(InputError, match="curve_models"):
        CalibrationSettings(curve_models={"TNF": "4PL"})
    with pytest.raises(InputError, match="model"):
        CalibrationSettings(curve_models={"P1:TNF": "6PL"})


def test_auto_falls_back_to_the_4pl_where_neither_5pl_form_is_usable():
    # The shipped example's first Luminex plate (simulated, xPONENT-style): on GM-CSF,
    # blank-subtracted and weighted 1/y^2 as xPONENT does, both 5PL forms run to the
    # limits (asymmetry g beyond 10^±1.5, inflection decades beyond the standards).
    from cytosafe.quantification import load_measurements, plate_conventions

    m, _ = load_measurements([EXAMPLES / "luminex" / "plate_LX-01.csv"])
    m = m[m["analyte"] == "GM-CSF"]
    base = next(iter(plate_conventions(m).attrs["settings"].values()))
    for form in ("5PL", "5PL-mirror"):
        alone = calibrate(m, CalibrationSettings(**{**base.__dict__, "model": form}))
        assert alone.curves.iloc[0]["status"] == "degenerate"
    auto = calibrate(m, CalibrationSettings(**{**base.__dict__, "model": "5PL-auto"}))
    row = auto.curves.iloc[0]
    assert row["model"] == "4PL" and row["status"] == "converged"
    assert "neither 5PL form is usable" in row["model_choice"]
