"""``cytosafe analyze`` on a tidy table whose columns carry the design (issue 15, "Why" 4):
the design is read off the treatment, role, concentration, unit, format and matched-control
columns, is the one the example study file states for the same treatments, and a table
whose columns disagree is an InputError naming its file, row and column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cytosafe.cli import app
from cytosafe.errors import InputError
from cytosafe.hazard.design import load_study
from cytosafe.workflows.table_design import design_from_file, design_from_tidy

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cra-study"
ELISA = EXAMPLE / "tidy" / "elisa.csv"
runner = CliRunner()


def _table(tmp_path: Path, change=None, name: str = "plate.csv") -> Path:
    table = pd.read_csv(ELISA, dtype=str, keep_default_na=False)
    if change is not None:
        change(table)
    path = tmp_path / name
    table.to_csv(path, index=False)
    return path


def _line(path: Path, condition) -> int:
    """The file line (header = 1) of the first row meeting ``condition``."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return int(table.index[condition(table)][0]) + 2


def test_the_design_columns_give_the_study_files_treatments():
    design = design_from_file(ELISA)
    stated = load_study(EXAMPLE / "study.toml").treatments
    assert set(design.treatments) == {"medium", "anti-CD3", "TA-1", "TA-2"}
    for name, t in design.treatments.items():
        assert t.role == stated[name].role
        assert set(t.concentrations) <= set(stated[name].concentrations) | {0.0}
        assert t.formats == ("whole_blood",)
    assert design.treatments["TA-1"].unit == "ug/mL"
    assert design.matched_control("TA-1") == "medium"


def test_analyze_runs_on_a_tidy_table_without_a_study_file(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(ELISA), "--out", str(out)])
    assert result.exit_code == 0, result.output
    hazard = pd.read_csv(out / "hazard.csv")
    assert set(hazard["treatment"]) == {"TA-1", "TA-2"}
    assert (out / "report.html").is_file()


def test_a_treatment_with_two_roles_names_the_row(tmp_path):
    def two_roles(t):
        rows = t.index[t["treatment"] == "TA-2"]
        t.loc[rows[3], "treatment_role"] = "positive_control"

    path = _table(tmp_path, two_roles)
    with pytest.raises(InputError) as info:
        design_from_file(path)
    error = info.value
    assert error.file == "plate.csv" and error.field == "treatment_role"
    assert error.row == _line(
        path, lambda t: t["treatment_role"].eq("positive_control") & t["treatment"].eq("TA-2")
    )
    assert "'TA-2' has treatment_role 'test' on some rows and 'positive_control'" in str(error)
    result = runner.invoke(app, ["analyze", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "treatment_role" in result.output
    assert not (tmp_path / "out").exists()


def test_a_sample_without_a_treatment_and_two_units_name_their_rows(tmp_path):
    def no_treatment(t):
        t.loc[t.index[t["treatment"] == "TA-1"][0], "treatment"] = ""

    path = _table(tmp_path, no_treatment)
    with pytest.raises(InputError, match="without a treatment") as info:
        design_from_file(path)
    first_ta1 = _line(ELISA, lambda t: t["treatment"].eq("TA-1"))
    assert info.value.row == first_ta1 and info.value.field == "treatment"

    def two_units(t):
        t.loc[t.index[t["treatment"] == "TA-1"][-1], "treatment_unit"] = "nM"

    path = _table(tmp_path, two_units, "units.csv")
    with pytest.raises(InputError, match="treatment_unit 'ug/mL' on some rows and 'nM'") as info:
        design_from_file(path)
    assert info.value.row == _line(path, lambda t: t["treatment_unit"].eq("nM"))


def test_a_matched_control_column_is_read_and_checked(tmp_path):
    def two_negatives(t):
        t["matched_control"] = ""
        sample = t["sample_type"] == "sample"
        t.loc[sample & t["treatment"].eq("TA-1"), "matched_control"] = "medium"
        # Half the medium wells become a second negative control (serum-free medium).
        media = t.index[t["treatment"] == "medium"]
        t.loc[media[: len(media) // 2], "treatment"] = "medium-SF"

    path = _table(tmp_path, two_negatives)
    with pytest.raises(InputError, match="'TA-2' does not say which") as info:
        design_from_file(path)
    assert info.value.field == "matched_control"
    assert info.value.row == _line(path, lambda t: t["treatment"].eq("TA-2"))

    def matched(t):
        two_negatives(t)
        sample = t["sample_type"] == "sample"
        t.loc[sample & t["treatment"].isin(["TA-2", "anti-CD3"]), "matched_control"] = "medium-SF"

    design = design_from_file(_table(tmp_path, matched, "matched.csv"))
    assert design.matched_control("TA-1") == "medium"
    assert design.matched_control("TA-2") == "medium-SF"

    def positive(t):
        matched(t)
        t.loc[t["treatment"].eq("TA-2"), "matched_control"] = "anti-CD3"

    path = _table(tmp_path, positive, "positive.csv")
    with pytest.raises(InputError, match="'anti-CD3' of 'TA-2' has role 'positive_control'"):
        design_from_file(path)


def test_a_table_without_design_columns_or_negative_control_is_refused():
    table = pd.read_csv(ELISA)
    with pytest.raises(InputError, match="no assay_format column"):
        design_from_tidy(table.drop(columns="assay_format"), file="x.csv")
    table.loc[table["treatment"] == "medium", "treatment_role"] = "vehicle"
    with pytest.raises(InputError, match="no negative control"):
        design_from_tidy(table, file="x.csv")
