"""Grading in parts of whole patients (issue 16, item 3): ``cytosafe grade --workers N``
and ``--scheduler tcp://...`` write the tables of one process, byte for byte, and the
rows set aside for bad input in the order of the input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from cytosafe.cli import reporting_errors
from cytosafe.cli.grade import grade_command
from cytosafe.clinical import grade
from cytosafe.clinical.grading import split_by_patient
from cytosafe.errors import InputError
from cytosafe.workflows import run_grading
from test_io_sdtm import domains  # noqa: F401  (fixture)

app = typer.Typer()
app.command("grade")(reporting_errors(grade_command))
app.command("noop")(lambda: None)  # keeps "grade" a subcommand
runner = CliRunner()

COHORT = Path(__file__).resolve().parents[1] / "examples" / "crs-cohort" / "observations.csv"
SCALES = ["astct2019", "penn", "icans"]
TABLES = ("timeline", "patients", "cohort", "quarantine")


def as_csv(result) -> dict[str, str]:
    return {t: getattr(result, t).to_csv(index=False) for t in TABLES}


def written(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix != ".html"}


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return pd.read_csv(COHORT, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def flawed(raw) -> pd.DataFrame:
    """The example cohort with bad rows in several patients (and one with no patient)."""
    bad = raw.copy()
    bad.loc[5, "value"] = "hot"
    bad.loc[100, "item"] = "nonsense"
    bad.loc[len(bad) // 2, "patient_id"] = " "
    bad.loc[len(bad) - 20, "unit"] = "K"
    return bad


def test_parts_of_whole_patients_give_the_tables_of_one_process(raw, flawed):
    parts, _ = split_by_patient(raw, 3)
    ids = [set(p["patient_id"]) for p in parts]
    assert len(parts) == 3 and not (ids[0] & ids[1] or ids[1] & ids[2])  # whole patients
    for obs, errors, counts in ((raw, "raise", (2, 7)), (flawed, "quarantine", (3,)),
                                (str(COHORT), "raise", (2,))):  # fmt: skip
        one = grade(obs, SCALES, errors=errors)
        for n in counts:
            split = grade(obs, SCALES, errors=errors, parts=n, map_parts=map)
            assert as_csv(split) == as_csv(one)
            for t in TABLES:
                pd.testing.assert_frame_equal(getattr(split, t), getattr(one, t))
    assert len(grade(flawed, SCALES, errors="quarantine").quarantine) == 4


def test_a_bad_row_raises_the_error_of_one_process(flawed):
    with pytest.raises(InputError) as one:
        grade(flawed, "astct2019")
    with pytest.raises(InputError) as split:
        grade(flawed, "astct2019", parts=3, map_parts=map)
    assert str(split.value) == str(one.value)


def test_a_part_whose_rows_are_all_set_aside_is_graded_in_one_process(raw):
    """A patient all of whose rows are bad makes a part with nothing to grade: the whole
    table is then graded in one process, with the same answer."""
    bad = raw.copy()
    last = bad["patient_id"] == sorted(set(bad["patient_id"]))[-1]
    bad.loc[last, "item"] = "nonsense"
    one = grade(bad, "astct2019", errors="quarantine")
    raised = []

    def mapper(func, tasks):
        out = []
        for t in tasks:
            try:
                out.append(func(t))
            except InputError as exc:
                raised.append(str(exc))
                raise
        return out

    # parts enough for one patient each
    split = grade(bad, "astct2019", errors="quarantine", parts=600, map_parts=mapper)
    assert raised == ["every row of the observation table was quarantined"]
    assert as_csv(split) == as_csv(one)


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("one") / "out"
    args = ["grade", str(COHORT), *(f"--scale={s}" for s in SCALES), "--quarantine"]
    res = runner.invoke(app, [*args, "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    return written(out)


def test_two_workers_write_the_tables_of_one(one_worker, tmp_path):
    args = ["grade", str(COHORT), *(f"--scale={s}" for s in SCALES), "--quarantine"]
    res = runner.invoke(app, [*args, "--workers", "2", "--out", str(tmp_path / "two")])
    assert res.exit_code == 0, res.output
    assert written(tmp_path / "two") == one_worker
    bad = runner.invoke(app, ["grade", str(COHORT), "--workers", "0", "--out", "x"])
    assert bad.exit_code == 2 and "--workers" in bad.output


def test_a_local_cluster_writes_the_tables_of_one_worker(one_worker, flawed, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        args = ["grade", str(COHORT), *(f"--scale={s}" for s in SCALES), "--quarantine"]
        address = cluster.scheduler_address
        res = runner.invoke(app, [*args, "--scheduler", address, "--out", str(tmp_path / "d")])
        assert res.exit_code == 0, res.output
        assert written(tmp_path / "d") == one_worker
        # the Python API with a Client, quarantined rows merged in the input's order
        with distributed.Client(cluster) as client:
            split = run_grading(flawed, SCALES, quarantine=True, scheduler=client)
        assert as_csv(split) == as_csv(grade(flawed, SCALES, errors="quarantine"))


def test_validated_sdtm_observations_split_by_patient(domains):  # noqa: F811
    """SDTM and FHIR input arrive validated (with their own quarantine): they are split as
    they are and keep the quarantine of the whole."""
    from cytosafe.workflows.grading import read_clinical_input

    obs, kind, _ = read_clinical_input(domains["dm"].parent, product="SIM-CEL")
    assert kind == "sdtm" and obs.table["patient_id"].nunique() == 2
    one = grade(obs, SCALES)
    split = grade(obs, SCALES, parts=2, map_parts=map)
    assert as_csv(split) == as_csv(one)
