"""Units of the analyte concentrations (issue 12, item 9).

Mass units are converted to pg/mL; arbitrary and activity units (IU/mL, U/mL, AU/mL, ...)
pass through unconverted and labelled, and are never taken for pg/mL: an IU is defined by
the ampoule of a WHO International Standard (WHO TRS 932, Annex 2, 2006; for IL-6 the
NIBSC standard 89/548, Gaines Das & Poole, J Immunol Methods 1993;160:147-153), so no
factor to a mass exists without the analyte's own standard. Every case below is one
plate built by hand: an IL-6 sandwich immunoassay with eight standards (a 4PL with known
parameters, 1 % multiplicative noise from a fixed seed) and samples of known
concentration, written in the unit each test names.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from cytosafe.cli import app
from cytosafe.errors import DataWarning, SchemaError, UnitError
from cytosafe.hazard import donor_responses
from cytosafe.hazard.design import HazardSettings, design_from_table
from cytosafe.hazard.rules import Rule, RuleSet
from cytosafe.io import read_tidy, write_bioplex, write_tidy
from cytosafe.report.page import figure_specs
from cytosafe.schema.measurements import validate_measurements
from cytosafe.schema.units import (
    ARBITRARY_UNITS,
    analyte_unit,
    canonical_unit,
    is_arbitrary,
    to_pg_per_ml,
)
from cytosafe.translate.fih import mabel_from_potency
from cytosafe.translate.units import to_ng_per_ml
from cytosafe.workflows import run_quantification

runner = CliRunner()

#: The truth of the plate: a rising 4PL in concentration (a = blank, d = top).
A, B, C, D = 50.0, 1.2, 400.0, 40000.0
STANDARDS = 5000.0 / 3.0 ** np.arange(8)  # 5000 ... 2.29
SAMPLES = {"U1": 12.0, "U2": 80.0, "U3": 650.0}


def _signal(x: np.ndarray) -> np.ndarray:
    return D + (A - D) / (1.0 + (np.asarray(x, dtype=float) / C) ** B)


def plate(scale: float = 1.0, unit: str | None = None) -> pd.DataFrame:
    """The IL-6 plate as a tidy table: concentrations written as ``truth * scale`` in
    ``unit`` (no ``concentration_unit`` column when ``unit`` is None)."""
    rng = np.random.default_rng(12)
    rows = []
    for k, x in enumerate(STANDARDS):
        for rep in (1, 2):
            well = f"{'ABCDEFGH'[k]}{rep:02d}"
            rows.append(("standard", f"S{k + 1}", well, x * scale, x))
    for rep in (1, 2):
        rows.append(("blank", "Blank", f"A{2 + rep:02d}", np.nan, 0.0))
    for j, (name, x) in enumerate(SAMPLES.items()):
        for rep in (1, 2):
            rows.append(("sample", name, f"{'BCD'[j]}{2 + rep:02d}", np.nan, x))
    table = pd.DataFrame(
        rows, columns=["sample_type", "sample_id", "well", "standard_concentration", "_x"]
    )
    table.insert(0, "analyte", "IL-6")
    table.insert(0, "plate_id", "P1")
    table.insert(0, "study_id", "S")
    noise = np.exp(rng.normal(0.0, 0.01, len(table)))
    table["signal"] = np.round(_signal(table.pop("_x")) * noise, 3)
    if unit is not None:
        table["concentration_unit"] = unit
    return table


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return function(*args, **kwargs)


def quantified(tmp_path: Path, table: pd.DataFrame, name: str) -> dict[str, pd.DataFrame]:
    """Quantify ``table`` written as a tidy CSV; the tables written, and the report."""
    path = tmp_path / f"{name}.csv"
    table.to_csv(path, index=False)
    out = tmp_path / f"{name}-out"
    _quiet(run_quantification, [path], out=out, options={"model": "4PL"})
    tables = {n: pd.read_csv(out / f"{n}.csv") for n in ("concentrations", "samples", "curves")}
    tables["report"] = (out / "report.html").read_text(encoding="utf-8")
    return tables


def _sample_means(samples: pd.DataFrame) -> dict[str, float]:
    s = samples[samples["sample_type"] == "sample"]
    return dict(zip(s["sample_id"], s["concentration"], strict=True))


# --- the unit rule -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("written", "canonical"),
    [("IU/mL", "IU/mL"), ("iu/ml", "IU/mL"), ("mIU/mL", "mIU/mL"), ("µIU/mL", "uIU/mL"),
     ("U/ml", "U/mL"), ("au/mL", "AU/mL"), ("kAU/L", "kAU/L")],
)  # fmt: skip
def test_arbitrary_units_have_canonical_spellings_and_are_kept(written, canonical):
    assert canonical_unit(written) == canonical
    assert is_arbitrary(written)
    assert analyte_unit(written) == (canonical, 1.0)  # kept as written, factor 1


def test_mass_units_are_converted_to_pg_per_ml():
    assert analyte_unit("ng/mL") == ("pg/mL", 1000.0)
    assert analyte_unit("ug/L") == ("pg/mL", 1000.0)
    assert analyte_unit(None) == ("pg/mL", 1.0)  # no unit: pg/mL, the kits' unit


@pytest.mark.parametrize("unit", sorted(ARBITRARY_UNITS))
def test_an_arbitrary_unit_never_converts_to_pg_per_ml(unit):
    with pytest.raises(UnitError, match="arbitrary unit") as err:
        to_pg_per_ml(unit, field="standard_unit")
    assert err.value.field == "standard_unit"
    assert not is_arbitrary("pg/mL") and not is_arbitrary("nM") and not is_arbitrary("x/y")


def test_molar_and_unknown_units_stay_errors():
    with pytest.raises(UnitError, match="molar"):
        analyte_unit("nM")
    with pytest.raises(UnitError, match="unknown concentration unit 'IU/furlong'"):
        analyte_unit("IU/furlong")


# --- end to end: IU/mL kept, ng/mL converted -------------------------------------------------
def test_iu_per_ml_tidy_file_is_quantified_in_iu_per_ml_unconverted(tmp_path):
    out = quantified(tmp_path, plate(unit="IU/mL"), "iu")
    for name in ("concentrations", "samples", "curves"):
        assert set(out[name]["concentration_unit"]) == {"IU/mL"}, name
    means = _sample_means(out["samples"])
    for name, truth in SAMPLES.items():
        assert means[name] == pytest.approx(truth, rel=0.05)  # no factor applied
    std = out["concentrations"][out["concentrations"]["sample_type"] == "standard"]
    np.testing.assert_allclose(
        sorted(set(std["standard_concentration"])), sorted(STANDARDS), rtol=1e-12
    )
    report = out["report"]
    # The standard-curve axis (figures are gzip-packed in a written report: read them).
    assert "concentration in well (IU/mL)" in json.dumps(figure_specs(report))
    assert "IU/mL is an arbitrary unit" in report  # the QC table's note
    assert "Nominal (IU/mL)" in report  # the standards table's header


def test_ng_per_ml_tidy_file_is_converted_1000_fold_to_pg_per_ml(tmp_path):
    iu = quantified(tmp_path, plate(unit="IU/mL"), "iu")
    ng = quantified(tmp_path, plate(scale=1e-3, unit="ng/mL"), "ng")
    assert set(ng["samples"]["concentration_unit"]) == {"pg/mL"}
    std = ng["concentrations"][ng["concentrations"]["sample_type"] == "standard"]
    np.testing.assert_allclose(
        sorted(set(std["standard_concentration"])), sorted(STANDARDS), rtol=1e-12
    )  # 5 ng/mL -> 5000 pg/mL
    # The same numbers as the IU/mL plate, whose values were not converted: only the
    # label differs.
    ng_means, iu_means = _sample_means(ng["samples"]), _sample_means(iu["samples"])
    for name in SAMPLES:
        assert ng_means[name] == pytest.approx(iu_means[name], rel=1e-9)
    assert "concentration in well (pg/mL)" in json.dumps(figure_specs(ng["report"]))
    assert "Concentrations in pg/mL in the well" in ng["report"]


def test_standard_unit_labels_a_tidy_file_without_units(tmp_path):
    path = tmp_path / "plain.csv"
    plate().to_csv(path, index=False)
    table = read_tidy(path, standard_unit="U/mL")
    assert set(table["concentration_unit"]) == {"U/mL"}
    assert table["standard_concentration"].max() == pytest.approx(STANDARDS[0])


def test_write_tidy_keeps_the_arbitrary_unit(tmp_path):
    table = validate_measurements(plate(unit="AU/mL"))
    back = read_tidy(write_tidy(table, tmp_path / "again.csv"))
    assert set(back["concentration_unit"]) == {"AU/mL"}
    np.testing.assert_allclose(back["standard_concentration"], table["standard_concentration"])


# --- one curve, one unit ---------------------------------------------------------------------
def test_a_curve_in_two_units_is_an_error_naming_plate_analyte_row_and_field(tmp_path):
    table = plate(unit="IU/mL")
    table.loc[table["sample_id"] == "S3", "concentration_unit"] = "pg/mL"
    path = tmp_path / "mixed.csv"
    table.to_csv(path, index=False)
    with pytest.raises(SchemaError, match="one curve cannot mix units") as err:
        read_tidy(path)
    e = err.value
    assert e.file == str(path) and e.field == "concentration_unit"
    assert e.row == 6 and e.well == "C01"  # the first S3 well: the second unit met
    assert "plate 'P1', analyte 'IL-6'" in e.message
    assert "'IU/mL' (row 2)" in e.message and "'pg/mL'" in e.message


def test_mass_units_of_one_curve_do_not_clash(tmp_path):
    table = plate(unit="pg/mL")
    s1 = table["sample_id"] == "S1"
    table.loc[s1, "concentration_unit"] = "ng/mL"
    table.loc[s1, "standard_concentration"] /= 1000.0
    out = validate_measurements(table)
    assert set(out["concentration_unit"]) == {"pg/mL"}
    assert out.loc[s1.to_numpy(), "standard_concentration"].tolist() == [STANDARDS[0]] * 2


def test_rows_without_a_unit_take_their_curves(tmp_path):
    table = plate(unit="IU/mL")
    table.loc[table["sample_type"] != "standard", "concentration_unit"] = None
    out = validate_measurements(table)
    assert set(out["concentration_unit"]) == {"IU/mL"}


# --- Bio-Plex reports without a unit, from the command line -----------------------------------
def bioplex_without_unit(tmp_path: Path) -> Path:
    """A Bio-Plex report of the plate whose concentration columns name no unit (as the
    versions studied print them: :mod:`cytosafe.io.bioplex`)."""
    table = validate_measurements(plate())
    path = write_bioplex(table, tmp_path / "report.xlsx")
    book = openpyxl.load_workbook(path)
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.endswith(" (pg/mL)"):
                    cell.value = cell.value.removesuffix(" (pg/mL)")
    book.save(path)
    return path


def test_bioplex_report_without_a_unit_names_the_cli_option(tmp_path):
    path = bioplex_without_unit(tmp_path)
    result = runner.invoke(app, ["quantify", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0
    text = " ".join(result.output.split())
    assert "declares no unit" in text and "--standard-unit" in text
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.parametrize(("unit", "stored"), [("pg/mL", "pg/mL"), ("IU/mL", "IU/mL")])
def test_bioplex_report_without_a_unit_is_quantified_with_standard_unit(tmp_path, unit, stored):
    path = bioplex_without_unit(tmp_path)
    out = tmp_path / "out"
    args = ["quantify", str(path), "--standard-unit", unit, "--model", "4PL", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    samples = pd.read_csv(out / "samples.csv")
    assert set(samples["concentration_unit"]) == {stored}
    means = _sample_means(samples)
    for name, truth in SAMPLES.items():
        assert means[name] == pytest.approx(truth, rel=0.05)
    settings = json.loads((out / "settings.json").read_text(encoding="utf-8"))
    assert settings["standard_unit"] == unit


def test_an_unknown_standard_unit_is_refused_by_the_cli(tmp_path):
    path = bioplex_without_unit(tmp_path)
    args = ["quantify", str(path), "--standard-unit", "pg/furlong", "--out", str(tmp_path / "o")]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "unknown concentration unit" in " ".join(result.output.split())


# --- downstream: nothing compares or converts an arbitrary unit as if it were pg/mL ----------
BASE = {"study_id": "S", "plate_id": "P1", "analyte": "IL-2", "sample_type": "sample",
        "assay_format": "wb", "incubation_h": 24.0, "treatment_unit": "ug/mL",
        "lloq": 1.0, "uloq": 1000.0, "below_lloq": False, "above_uloq": False}  # fmt: skip


def _response(unit: str, rules: RuleSet):
    rows = [
        {**BASE, "donor_id": "D1", "treatment": "medium", "treatment_role": "negative_control",
         "treatment_concentration": 0.0, "concentration": 10.0, "concentration_unit": unit},
        {**BASE, "donor_id": "D1", "treatment": "TA", "treatment_role": "test",
         "treatment_concentration": 1.0, "concentration": 500.0, "concentration_unit": unit},
    ]  # fmt: skip
    samples = pd.DataFrame(rows)
    design = design_from_table(samples)
    r, _ = donor_responses(samples, design, settings=HazardSettings(rule_set=rules))
    return r[r["treatment"] == "TA"].iloc[0]


DIFFERENCE = RuleSet(
    name="custom",
    title="custom",
    rules=(Rule("increase >= 100 pg/mL", min_difference=100.0),),
    source="study",
)


def test_a_pg_per_ml_threshold_decides_a_value_in_pg_per_ml():
    row = _response("pg/mL", DIFFERENCE)
    assert row["call"] == "responder" and row["concentration_unit"] == "pg/mL"


def test_a_pg_per_ml_threshold_sets_aside_a_value_in_iu_per_ml_with_the_reason():
    row = _response("IU/mL", DIFFERENCE)
    assert row["call"] == "indeterminate" and not row["responder"]
    assert row["concentration_unit"] == "IU/mL"
    assert row["reason"] == (
        "indeterminate: the values are in IU/mL, an arbitrary unit that does not convert to "
        "pg/mL, so the increase cannot be compared with the rule's 100 pg/mL"
    )


def test_unit_free_rules_still_decide_a_value_in_iu_per_ml():
    fold = RuleSet(name="f", title="f", rules=(Rule("x2", min_fold_change=2.0),), source="study")
    row = _response("IU/mL", fold)
    assert row["call"] == "responder" and row["fold_change"] == pytest.approx(50.0)


def test_a_test_value_is_never_matched_with_a_control_in_another_unit():
    rows = [
        {**BASE, "plate_id": "P2", "donor_id": "D1", "treatment": "medium",
         "treatment_role": "negative_control", "treatment_concentration": 0.0,
         "concentration": 10.0, "concentration_unit": "pg/mL"},
        {**BASE, "donor_id": "D1", "treatment": "TA", "treatment_role": "test",
         "treatment_concentration": 1.0, "concentration": 500.0, "concentration_unit": "IU/mL"},
    ]  # fmt: skip
    samples = pd.DataFrame(rows)
    r, notes = donor_responses(samples, design_from_table(samples))
    assert r.empty or "TA" not in set(r["treatment"])
    assert any("no matched negative control" in n for n in notes)


def test_translate_refuses_to_convert_an_arbitrary_unit():
    with pytest.raises(UnitError, match="'IU/mL' is an arbitrary unit") as err:
        to_ng_per_ml(5.0, "IU/mL", mw_kda=15.5, field="ecx")
    assert err.value.field == "ecx"
    with pytest.raises(UnitError, match="arbitrary unit"):
        mabel_from_potency(5.0, "IU/mL")  # an EC20 of a test article dosed in IU/mL
    assert to_ng_per_ml(5.0, "ng/mL") == 5.0  # mass units as before


def test_potency_never_fits_values_in_two_units_together():
    from cytosafe.curves.potency import potency

    rows = []
    for plate_id, unit in (("P1", "pg/mL"), ("P2", "IU/mL")):
        for conc in (0.1, 1.0, 10.0, 100.0):
            rows.append(
                {**BASE, "plate_id": plate_id, "donor_id": "D1", "treatment": "TA",
                 "treatment_role": "test", "treatment_concentration": conc,
                 "concentration": 10.0 + 100.0 * conc / (conc + 5.0), "concentration_unit": unit}
            )  # fmt: skip
    pot = potency(pd.DataFrame(rows))
    assert sorted(pot["concentration_unit"]) == ["IU/mL", "pg/mL"]  # two curves, one unit each
    assert (pot["n_points"] == 4).all()


# --- the writers keep an arbitrary unit --------------------------------------------------------
@pytest.mark.parametrize(
    ("writer", "reader", "suffix", "options"),
    [
        ("write_asm", "read_asm", ".json", {}),
        ("write_xponent", "read_xponent", ".csv", {}),
        ("write_bioplex", "read_bioplex", ".xlsx", {}),
        ("write_msd", "read_msd", ".csv", {"standard_unit": "IU/mL"}),  # DW holds no unit
    ],
)
def test_a_vendor_layout_written_in_iu_per_ml_reads_back_in_iu_per_ml(
    tmp_path, writer, reader, suffix, options
):
    import cytosafe.io as io

    table = validate_measurements(plate(unit="IU/mL"))
    path = _quiet(getattr(io, writer), table, tmp_path / f"plate{suffix}")
    back = _quiet(getattr(io, reader), path, **options)
    assert set(back["concentration_unit"]) == {"IU/mL"}
    assert back["standard_concentration"].max() == pytest.approx(STANDARDS[0])


def test_a_layout_of_one_unit_refuses_to_convert_an_arbitrary_unit(tmp_path):
    from cytosafe.io import write_msd

    table = validate_measurements(plate(unit="IU/mL"))
    with pytest.raises(UnitError, match="does not convert to 'ng/mL'") as err:
        write_msd(table, tmp_path / "plate.csv", standard_unit="ng/mL")
    assert err.value.field == "standard_unit"
    assert not (tmp_path / "plate.csv").exists()


# --- issue 12, item 6: a tidy row without a signal is set aside, the rest goes on --------------
def test_missing_signals_set_rows_aside_and_every_other_curve_is_quantified(tmp_path):
    il6 = plate(unit="pg/mL")
    il2 = plate(unit="pg/mL").assign(analyte="IL-2")
    # IL-2 loses five of its eight standard levels: too few for a curve.
    lost = (il2["sample_type"] == "standard") & il2["sample_id"].isin(["S2", "S3", "S4", "S5"])
    lost |= il2["sample_id"] == "S6"
    il2["signal"] = il2["signal"].astype(object).where(~lost, "")
    path = tmp_path / "two.csv"
    pd.concat([il6, il2], ignore_index=True).to_csv(path, index=False)
    with pytest.warns(DataWarning) as caught:
        result = run_quantification([path], out=tmp_path / "out", options={"model": "4PL"})
    said = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(said) == int(lost.sum())  # one per row set aside, naming it
    # IL-6 fills lines 2-25; IL-2 S1 is on lines 26-27, S2 (B01) on 28.
    assert f"{path}, row 28, well B01, analyte IL-2: the signal is missing" in said[0]
    curves = result.calibration.curves.set_index("analyte")
    assert curves.loc["IL-2", "status"] == "too_few_levels"
    assert curves.loc["IL-6", "status"] in ("converged", "stalled")
    means = _sample_means(
        result.calibration.samples[result.calibration.samples["analyte"] == "IL-6"]
    )
    for name, truth in SAMPLES.items():
        assert means[name] == pytest.approx(truth, rel=0.05)
    wells = result.calibration.wells
    assert len(wells[wells["analyte"] == "IL-2"]) == len(il2) - int(lost.sum())
