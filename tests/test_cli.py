"""The command line: `cytosafe quantify` writes every output atomically; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import cytosafe
from cytosafe.cli import app
from cytosafe.workflows import QUANTIFICATION_FILES as OUTPUT_FILES
from test_report_qc import simulate_study

runner = CliRunner()


@pytest.fixture(scope="module")
def study() -> pd.DataFrame:
    return simulate_study(2, ("IL-6", "TNF"))


@pytest.fixture
def exports(study, tmp_path) -> list[Path]:
    """The study as one tidy CSV per plate, as a lab would export it."""
    paths = []
    for plate, table in study.groupby("plate_id"):
        path = tmp_path / f"{plate}.csv"
        table.to_csv(path, index=False)
        paths.append(path)
    return paths


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".partial-" in p.name]


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_quantify_writes_every_output_file(exports, study, tmp_path):
    out = tmp_path / "results"
    res = run("quantify", *exports, "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    assert len(pd.read_csv(out / "concentrations.csv")) == len(study)
    curves = pd.read_csv(out / "curves.csv")
    assert len(curves) == 4  # 2 plates x 2 analytes
    for col in ("c", "c_se", "status", "lloq", "uloq", "lod", "qc_pass", "n_below_lloq"):
        assert col in curves.columns
    assert len(pd.read_csv(out / "potency.csv")) > 0
    settings = json.loads((out / "settings.json").read_text())
    assert settings["cytosafe_version"] == cytosafe.__version__
    assert settings["inputs"] == [str(p) for p in exports]
    assert settings["calibration"]["model"] == "5PL"
    assert settings["calibration"]["recovery_range"] == [80.0, 120.0]
    assert "<!DOCTYPE html>" in (out / "report.html").read_text(encoding="utf-8")[:100]
    assert res.stdout == ""  # --quiet
    assert leftovers(tmp_path) == []


def test_summary_counts_curves_and_points_to_the_report(exports, tmp_path):
    out = tmp_path / "results"
    res = run("quantify", *exports, "--out", out)
    assert res.exit_code == 0, res.output
    assert "2 plate(s) × 2 analyte(s)" in res.stdout
    assert "curves passing QC" in res.stdout
    assert str(out / "report.html") in res.stdout


def test_options_reach_the_settings_and_the_tables(exports, tmp_path):
    out = tmp_path / "results"
    res = run("quantify", *exports, "-o", out, "-q", "--model", "4PL", "--weighting", "1/y",
              "--blank", "subtract", "--covariance", "observed", "--ecx", "10")  # fmt: skip
    assert res.exit_code == 0, res.output
    settings = json.loads((out / "settings.json").read_text())
    assert settings["calibration"] | {"model": "4PL", "weighting": "1/y", "blank": "subtract",
                                      "covariance": "observed"} == settings["calibration"]  # fmt: skip
    assert settings["potency"]["ecx"] == 10.0
    assert "ec10" in pd.read_csv(out / "potency.csv").columns
    assert "g" not in pd.read_csv(out / "curves.csv").columns  # a 4PL has no asymmetry


def test_negative_signal_exits_2_with_one_line_and_leaves_out_untouched(study, tmp_path):
    bad = study.copy()
    bad.loc[5, "signal"] = -3.0  # line 7 of the CSV (header is line 1)
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("the analyst's notes")
    (out / "qc.csv").write_text("from an earlier run")
    before = snapshot(out)

    res = run("quantify", path, "--out", out)

    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "bad.csv" in lines[0] and "row 7" in lines[0] and "'signal'" in lines[0]
    assert "Traceback" not in res.output
    assert snapshot(out) == before
    assert leftovers(tmp_path) == []


def test_missing_required_column_exits_2_and_writes_nothing(study, tmp_path):
    path = tmp_path / "no_signal.csv"
    study.drop(columns="signal").to_csv(path, index=False)
    out = tmp_path / "results"

    res = run("quantify", path, "--out", out)

    assert res.exit_code == 2
    line = res.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line
    assert "no_signal.csv" in line and "signal" in line
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_a_failure_while_writing_leaves_no_partial_output(exports, tmp_path, monkeypatch):
    import cytosafe.report

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(cytosafe.report, "write_qc_report", broken)
    out = tmp_path / "results"
    res = run("quantify", *exports, "--out", out, "-q")
    assert res.exit_code == 1
    assert isinstance(res.exception, RuntimeError)  # a bug keeps its traceback
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_rerun_replaces_outputs_and_keeps_other_files(exports, tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    (out / "qc.csv").write_text("stale")
    res = run("quantify", *exports, "--out", out, "-q")
    assert res.exit_code == 0, res.output
    assert (out / "notes.txt").read_text() == "keep me"
    assert (out / "qc.csv").read_text() != "stale"
    assert leftovers(tmp_path) == []


def test_the_same_file_twice_is_an_input_error(exports, tmp_path):
    res = run("quantify", exports[0], exports[0], "--out", tmp_path / "results")
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and "more than once" in res.stderr


def test_plate_maps_must_pair_with_matrices(tmp_path):
    res = run("quantify", "--plate-map", tmp_path / "a.csv", "--plate-map", tmp_path / "b.csv",
              "--matrix", tmp_path / "m.csv", "--out", tmp_path / "results")  # fmt: skip
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and "plate maps" in res.stderr


def test_no_input_is_an_input_error(tmp_path):
    res = run("quantify", "--out", tmp_path / "results")
    assert res.exit_code == 2 and res.stderr.startswith("error: no input files")


def test_an_unknown_model_is_a_usage_error(exports, tmp_path):
    res = run("quantify", *exports, "--out", tmp_path / "results", "--model", "3PL")
    assert res.exit_code == 2
    assert not (tmp_path / "results").exists()


def test_ecx_must_be_a_percentage(exports, tmp_path):
    res = run("quantify", *exports, "--out", tmp_path / "results", "--ecx", "100")
    assert res.exit_code == 2


def test_version():
    res = run("--version")
    assert res.exit_code == 0
    assert res.stdout.strip() == f"cytosafe {cytosafe.__version__}"


def test_the_cli_starts_without_heavy_libraries():
    # `cytosafe --help` must answer at once (issue 13: under 0.3 s CPU, measured in
    # benchmarks/bench_startup.py); the structural cause is that no command module loads
    # the scientific or server stack before the command runs.
    import subprocess
    import sys

    heavy = ("numpy", "pandas", "scipy", "sqlalchemy", "fastapi", "plotly", "statsmodels")
    code = f"import sys, cytosafe.cli; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_states_the_calibration_defaults_of_the_settings_class():
    # The options default to None ("the settings' default") so the CLI need not import the
    # calibration to start; the defaults it prints must be those CalibrationSettings uses.
    import typing

    from cytosafe.cli.quantify import quantify_command
    from cytosafe.curves.calibration import CalibrationSettings
    from cytosafe.curves.potency import PotencySettings

    hints = typing.get_type_hints(quantify_command, include_extras=True)
    helps = {name: hint.__metadata__[0].help for name, hint in hints.items() if name != "return"}
    cal, pot = CalibrationSettings(), PotencySettings()
    for name, value in {
        "model": cal.model,
        "weighting": cal.weighting,
        "blank": cal.blank,
        "covariance": cal.covariance,
        "ecx": f"{pot.ecx:g}",
    }.items():
        if name in ("model", "weighting", "blank"):
            # Issue 12, item 2: the reader's vendor convention first, then the class default.
            assert helps[name].endswith(f"(default: the vendor's, else {value}).")
        else:
            assert helps[name].endswith(f"(default: {value}).")


def test_settings_and_report_say_which_convention_applied_and_why(exports, tmp_path):
    # Tidy CSVs have no vendor convention: the defaults apply, and the run says so; an
    # option set explicitly is named as the override.
    out = tmp_path / "results"
    res = run("quantify", *exports, "-o", out, "-q", "--weighting", "1/y")
    assert res.exit_code == 0, res.output
    conv = json.loads((out / "settings.json").read_text())["conventions"]
    assert len(conv) == 2 and {c["reader"] for c in conv} == {"tidy"}
    assert all("the defaults (the tidy reader" in c["applied"] for c in conv)
    assert all("overridden by the options weighting=1/y" in c["applied"] for c in conv)
    assert all(c["weighting"] == "1/y" and c["model"] == "5PL" for c in conv)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Calibration of plate" in page and "overridden by the options weighting=1/y" in page


def test_exclude_and_exclusions_file_reach_standards_settings_and_report(study, exports, tmp_path):
    std = study[(study["sample_type"] == "standard") & (study["analyte"] == "IL-6")]
    first, second = std.iloc[0], std.iloc[3]
    listing = tmp_path / "exclusions.csv"
    listing.write_text(
        f"plate_id,well,analyte,reason\n{second['plate_id']},{second['well']},IL-6,"
        "tip touched the wall\n"
    )
    out = tmp_path / "results"
    res = run("quantify", *exports, "-o", out, "-q",
              "--exclude", f"{first['plate_id']}:{first['well']}:IL-6=bubble in the well",
              "--exclusions", listing)  # fmt: skip
    assert res.exit_code == 0, res.output
    standards = pd.read_csv(out / "standards.csv")
    reasons = set(standards.loc[standards["excluded"], "exclusion_reason"])
    assert {"bubble in the well", "tip touched the wall"} <= reasons
    settings = json.loads((out / "settings.json").read_text())
    assert {e["exclusion_reason"] for e in settings["exclusions"]} >= reasons
    assert {e["well"] for e in settings["excluded_wells"]} >= {first["well"], second["well"]}
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "bubble in the well" in page and "tip touched the wall" in page


def test_an_exclusion_without_a_reason_exits_2_naming_the_field(exports, tmp_path):
    res = run("quantify", *exports, "-o", tmp_path / "r", "-q", "--exclude", "P1:A01")
    assert res.exit_code == 2
    assert "exclude" in res.output and "REASON" in res.output


def test_accept_curve_reports_numbers_from_a_failed_curve(study, tmp_path):
    bad = study.copy()
    std = bad["sample_type"] == "standard"
    # A zigzag through the standards (every other level read 1.8x high): too few levels
    # recover, every curve fails on its standards while its fit still converges.
    levels = bad.loc[std, "standard_concentration"].rank(method="dense").astype(int)
    bad.loc[levels[levels % 2 == 0].index, "signal"] *= 1.8
    path = tmp_path / "plate.csv"
    bad.to_csv(path, index=False)
    out = tmp_path / "results"
    assert run("quantify", path, "-o", out, "-q").exit_code == 0
    wells = pd.read_csv(out / "concentrations.csv")
    samples = wells[wells["sample_type"] == "sample"]
    assert samples["curve_failed"].all() and samples["concentration"].isna().all()
    out2 = tmp_path / "accepted"
    assert run("quantify", path, "-o", out2, "-q", "--accept-curve", "*").exit_code == 0
    samples = pd.read_csv(out2 / "concentrations.csv").query("sample_type == 'sample'")
    assert not samples["curve_failed"].any() and samples["concentration"].notna().any()
    assert json.loads((out2 / "settings.json").read_text())["calibration"]["accept_curves"] == ["*"]


def test_failed_kit_controls_flag_the_wells_and_keep_their_numbers(study, tmp_path):
    bad = study.copy()
    bad.loc[bad["sample_type"] == "control", "signal"] *= 0.2  # every kit control fails
    path = tmp_path / "plate.csv"
    bad.to_csv(path, index=False)
    out = tmp_path / "results"
    assert run("quantify", path, "-o", out, "-q").exit_code == 0
    samples = pd.read_csv(out / "concentrations.csv").query("sample_type == 'sample'")
    assert samples["controls_failed"].all() and not samples["curve_failed"].any()
    assert samples["concentration"].notna().any()
    qc = pd.read_csv(out / "qc.csv")
    assert (~qc["controls_pass"] & qc["curve_pass"]).any()
    out2 = tmp_path / "withheld"
    args = ["quantify", path, "-o", out2, "-q", "--control-failure", "withhold"]
    assert run(*args).exit_code == 0
    samples = pd.read_csv(out2 / "concentrations.csv").query("sample_type == 'sample'")
    assert samples["curve_failed"].all() and samples["concentration"].isna().all()
    settings = json.loads((out2 / "settings.json").read_text())
    assert settings["calibration"]["control_failure"] == "withhold"
    assert run("quantify", path, "-o", out2, "-q", "--control-failure", "ignore").exit_code != 0


def test_a_file_with_a_four_level_analyte_quantifies_the_others(study, tmp_path):
    # Issue 12, item 6: the short curve gets a status and a reason in curves.csv, qc.csv
    # and the report; every other curve goes on.
    one = study[study["plate_id"] == study["plate_id"].iloc[0]]
    tnf_std = one[(one["analyte"] == "TNF") & (one["sample_type"] == "standard")]
    keep = sorted(tnf_std["standard_concentration"].unique())[-4:]
    drop = tnf_std[~tnf_std["standard_concentration"].isin(keep)].index
    path = tmp_path / "plate.csv"
    one.drop(index=drop).to_csv(path, index=False)
    out = tmp_path / "results"
    res = run("quantify", path, "-o", out, "-q")
    assert res.exit_code == 0, res.output
    curves = pd.read_csv(out / "curves.csv").set_index("analyte")
    assert curves.loc["TNF", "status"] == "too_few_levels"
    assert "only 4 standard level(s)" in curves.loc["TNF", "qc_reasons"]
    assert curves.loc["IL-6", "status"] in ("converged", "stalled")
    qc = pd.read_csv(out / "qc.csv").set_index("analyte")
    assert "only 4 standard level(s)" in qc.loc["TNF", "qc_reasons"]
    wells = pd.read_csv(out / "concentrations.csv")
    il6 = wells[(wells["analyte"] == "IL-6") & (wells["sample_type"] == "sample")]
    assert il6["concentration"].notna().any()
    assert "only 4 standard level(s)" in (out / "report.html").read_text(encoding="utf-8")
