"""Many plates across processes and on a Dask cluster (issue 16, item 3): ``--workers 2``, a
``LocalCluster`` and one worker write byte-identical tables, in the same row order with the
same floats, on the example MSD study (examples/cra-study)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cytosafe.cli import app
from cytosafe.errors import InputError
from cytosafe.quantification import load_measurements, quantify
from cytosafe.workflows import quantification_settings, quantification_tables, run_quantification
from cytosafe.workflows.parallel import check_workers, quantify_partitioned

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cra-study"
MSD = sorted((EXAMPLE / "msd").glob("plate_*.csv"))
LUMINEX = sorted((EXAMPLE / "luminex").glob("plate_*.csv"))
runner = CliRunner()


def tables(directory: Path) -> dict[str, bytes]:
    """The output tables a command wrote (CSV) and its settings, as bytes."""
    names = [*sorted(p.name for p in directory.glob("*.csv")), "settings.json"]
    return {name: (directory / name).read_bytes() for name in names}


def as_bytes(result) -> dict[str, str]:
    out = {
        name: frame.to_csv(index=False, lineterminator="\n")
        for name, frame in quantification_tables(result).items()
    }
    out["settings"] = repr(quantification_settings(result))
    return out


def quantify_cli(out: Path, *options: str) -> dict[str, bytes]:
    args = ["quantify", *map(str, MSD), "--sample-map", str(EXAMPLE / "msd" / "samples.csv")]
    result = runner.invoke(app, [*args, "--out", str(out), "--quiet", *options])
    assert result.exit_code == 0, result.output
    return tables(out)


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory) -> dict[str, bytes]:
    return quantify_cli(tmp_path_factory.mktemp("one") / "q", "--workers", "1")


def test_quantify_two_workers_write_the_tables_of_one(one_worker, tmp_path):
    two = quantify_cli(tmp_path / "q", "--workers", "2")
    assert len(MSD) == 9 and set(two) == set(one_worker)
    assert "concentrations.csv" in two and "curves.csv" in two
    for name, data in one_worker.items():
        assert two[name] == data, name


def test_analyze_two_workers_write_the_tables_of_one(tmp_path):
    study = str(EXAMPLE / "study.toml")
    written = {}
    for n in ("1", "2"):
        out = tmp_path / f"a{n}"
        result = runner.invoke(app, ["analyze", study, "--out", str(out), "--quiet", "-w", n])
        assert result.exit_code == 0, result.output
        written[n] = tables(out)
    assert "hazard.csv" in written["1"] and "concentrations.csv" in written["1"]
    assert written["2"] == written["1"]


@pytest.mark.parametrize(
    "files",
    [MSD[::-1], LUMINEX[::-1]],
    ids=["msd-plates-in-reverse", "luminex-families-per-curve"],
)
def test_runs_of_plates_join_in_the_order_of_one_process(files):
    """Plates given out of order (curve tables sorted, wells in input order) and xPONENT's
    per-curve families (5PL, mirror 5PL, 4PL fallback: columns of several models) join
    exactly as one process orders them, here with three runs of plates in this process."""
    folder = files[0].parent
    measurements, _ = load_measurements(files, sample_map=folder / "samples.csv")
    one = as_bytes(quantify(measurements))
    # A Dask-free, process-free split: three tasks run one after the other here.
    three = as_bytes(_split_here(measurements, 3))
    assert three == one


def _split_here(measurements: pd.DataFrame, n: int):
    from cytosafe.workflows import parallel

    def here(func, tasks, *, workers, scheduler):
        assert len(tasks) >= 2  # runs of whole plates
        return [func(t) for t in tasks]

    original = parallel.map_plates
    parallel.map_plates = here
    try:
        return quantify_partitioned(measurements, workers=n)
    finally:
        parallel.map_plates = original


def test_exclusions_and_interleaved_plates(tmp_path):
    """Exclusions apply before the split; a table whose plates' rows interleave stays in
    one process (the order of its replicate groups cannot be rebuilt from whole plates)."""
    measurements, _ = load_measurements(MSD, sample_map=EXAMPLE / "msd" / "samples.csv")
    measurements = measurements[measurements["plate_id"].isin(["MSD-01", "MSD-02", "MSD-03"])]
    measurements = measurements.reset_index(drop=True)
    well = measurements.loc[measurements["sample_type"] == "standard"].iloc[0]
    exclusion = [f"{well['plate_id']}:{well['well']}=pipetting error"]
    assert as_bytes(_split_here(measurements, 2)) == as_bytes(quantify(measurements))
    excluded = quantify(measurements, exclusions=exclusion)
    assert as_bytes(quantify_partitioned(measurements, exclusions=exclusion, workers=2)) == (
        as_bytes(excluded)
    )
    mixed = pd.concat([measurements.iloc[0::2], measurements.iloc[1::2]], ignore_index=True)
    assert as_bytes(quantify_partitioned(mixed, workers=2)) == as_bytes(quantify(mixed))


def test_workers_must_be_positive():
    with pytest.raises(InputError, match="workers"):
        check_workers(0)
    result = runner.invoke(app, ["quantify", str(MSD[0]), "--out", "x", "--workers", "0"])
    assert result.exit_code == 2 and "--workers" in result.output


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as local:
        yield local


def test_local_cluster_writes_the_tables_of_one_worker(cluster, one_worker, tmp_path):
    from dask.distributed import Client

    # The Python API with a Client ...
    with Client(cluster) as client:
        result = run_quantification(
            MSD, sample_map=EXAMPLE / "msd" / "samples.csv", out=tmp_path / "api", scheduler=client
        )
    assert result.calibration.qc["plate_id"].nunique() == 9
    written = tables(tmp_path / "api")
    # settings.json names the inputs as the face gave them; the tables must be the same.
    assert {k: v for k, v in written.items() if k.endswith(".csv")} == {
        k: v for k, v in one_worker.items() if k.endswith(".csv")
    }
    # ... and the command line with the scheduler's address.
    assert quantify_cli(tmp_path / "cli", "--scheduler", cluster.scheduler_address) == one_worker


def test_analysis_on_a_local_cluster(cluster, tmp_path):
    from dask.distributed import Client

    from cytosafe.workflows import run_analysis

    study = EXAMPLE / "study.toml"
    run_analysis(study, out=tmp_path / "one")
    with Client(cluster) as client:
        run_analysis(study, out=tmp_path / "dask", scheduler=client)
    assert tables(tmp_path / "dask") == tables(tmp_path / "one")


def test_without_a_worker_count_small_runs_stay_in_this_process(monkeypatch):
    """``workers=None`` (the command line's default) uses every core from
    DEFAULT_MIN_CURVES curves; the 72 curves of the MSD example stay in this process,
    where starting workers would cost more than it saves (bench_workers.py)."""
    from cytosafe.workflows import parallel

    measurements, _ = load_measurements(MSD, sample_map=EXAMPLE / "msd" / "samples.csv")
    calls = []

    def here(func, tasks, *, workers, scheduler):
        calls.append(len(tasks))
        return [func(t) for t in tasks]

    monkeypatch.setattr(parallel, "map_plates", here)
    assert parallel.DEFAULT_MIN_CURVES > 72
    small = parallel.quantifier(workers=None)(measurements)
    assert calls == []
    split = quantify_partitioned(measurements, workers=2, min_curves=72)
    assert calls == [2] and as_bytes(split) == as_bytes(small)
