"""``cytosafe grade`` on SDTM (.xpt) domains and FHIR bundles, and ``concordance.csv``
(CRS scales only; ICANS never among them). Fixtures are those of test_io_sdtm.py and
test_io_fhir.py (real SDTM domain layouts; LOINC-coded FHIR resources)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from test_clinical_cli import app
from test_clinical_grading import cohort
from test_io_fhir import entries, write  # noqa: F401  (fixture)
from test_io_sdtm import domains  # noqa: F401  (fixture)

runner = CliRunner()


def test_grade_reads_a_folder_of_sdtm_domains(tmp_path, domains):  # noqa: F811
    folder = domains["dm"].parent
    out = tmp_path / "res"
    res = runner.invoke(
        app, ["grade", str(folder), "--product", "SIM-CEL", "--scale", "lee2014", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    patients = pd.read_csv(out / "patients.csv")
    assert sorted(patients["patient_id"]) == ["CYTO-001-001", "CYTO-001-002"]
    assert (patients["max_grade"] >= 1).all()
    settings = json.loads((out / "settings.json").read_text())
    assert settings["input_kind"] == "sdtm" and "vs.xpt" in settings["input"]


def test_grade_reads_several_domain_files(tmp_path, domains):  # noqa: F811
    out = tmp_path / "res"
    files = [str(domains[k]) for k in ("dm", "vs", "ex")]
    res = runner.invoke(app, ["grade", *files, "--product", "SIM-CEL", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(out / "patients.csv")) == 2


def test_sdtm_without_dm_is_an_error_naming_the_domain(tmp_path, domains):  # noqa: F811
    res = runner.invoke(app, ["grade", str(domains["vs"]), "--out", str(tmp_path / "res")])
    assert res.exit_code == 2 and "no DM domain" in res.output
    assert not (tmp_path / "res").exists()


def test_sdtm_with_a_time_zone_is_an_error(tmp_path, domains):  # noqa: F811
    folder = domains["dm"].parent
    res = runner.invoke(
        app, ["grade", str(folder), "--timezone", "Europe/Berlin", "--out", str(tmp_path / "r")]
    )
    assert res.exit_code == 2 and "timezone" in res.output


def test_grade_reads_a_fhir_bundle(tmp_path, entries):  # noqa: F811
    bundle = write(tmp_path, entries)
    out = tmp_path / "res"
    res = runner.invoke(app, ["grade", str(bundle), "--product", "SIM-CEL", "--out", str(out)])
    assert res.exit_code == 0, res.output
    tl = pd.read_csv(out / "timeline.csv").set_index("hours")
    # the grades test_io_fhir.py reads through the Python API: 24 h -> 2, 26 h -> 3
    assert tl.loc[24.0, "grade"] == 2 and tl.loc[26.0, "grade"] == 3
    assert json.loads((out / "settings.json").read_text())["input_kind"] == "fhir"


def test_concordance_csv_holds_the_crs_scales_and_never_icans(tmp_path):
    obs = tmp_path / "obs.csv"
    cohort().to_csv(obs, index=False)
    out = tmp_path / "res"
    args = ["grade", str(obs), "--out", str(out), "--episode-gap", "12"]
    for s in ("astct2019", "icans", "lee2014", "mskcc"):
        args += ["--scale", s]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    conc = pd.read_csv(out / "concordance.csv").set_index("scale")
    assert list(conc.index) == ["astct2019", "lee2014", "mskcc"]
    assert (conc["reference"] == "astct2019").all()
    # as test_clinical_grading.test_concordance_side_by_side
    assert conc.loc["lee2014", "same_grade"] == 3 and conc.loc["mskcc", "higher"] == 1
    assert "icans" in set(pd.read_csv(out / "patients.csv")["scale"])
    assert json.loads((out / "settings.json").read_text())["episode_gap_hours"] == 12


def test_only_icans_gives_an_empty_concordance(tmp_path):
    obs = tmp_path / "obs.csv"
    cohort().to_csv(obs, index=False)
    out = tmp_path / "res"
    assert runner.invoke(app, ["grade", str(obs), "-s", "icans", "--out", str(out)]).exit_code == 0
    conc = pd.read_csv(out / "concordance.csv")
    assert conc.empty and "same_grade" in conc.columns


@pytest.mark.parametrize("value", ["-2", "soon"])
def test_a_bad_episode_gap_is_refused(tmp_path, value):
    obs = tmp_path / "obs.csv"
    cohort().to_csv(obs, index=False)
    res = runner.invoke(
        app, ["grade", str(obs), "--episode-gap", value, "--out", str(tmp_path / "r")]
    )
    assert res.exit_code == 2
