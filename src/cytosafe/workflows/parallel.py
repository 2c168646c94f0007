"""Quantification partitioned by plate, across processes or a Dask cluster (issue 16, item 3).

Calibration is the part of a quantification that grows with the study: every curve is
fitted and every well back-calculated. Each plate is calibrated on its own numbers
(:func:`cytosafe.curves.calibration.calibrate` never mixes two plates' curves), so the work
splits by plate, with all of a plate's analytes in one task. The parent reads the inputs,
chooses each plate's convention (:func:`cytosafe.quantification.plate_conventions`), sends
one task per plate to the workers, joins their calibrations in the order one process would
have produced them, and then fits potency (whose curves span plates) and builds any report
once.

The result is byte-identical to one process (``tests/test_workers.py``) because

* the NumPy fitter computes each curve the same way whatever its batch
  (:func:`cytosafe.curves.fit.fit_curves`, ``tests/test_fit_blocks.py``), and each task
  fits with the kernel the whole run would have chosen (the compiled kernel only from
  :data:`~cytosafe.curves.fit.COMPILED_MIN_CURVES` curves);
* the tables are joined in the whole run's order: plates grouped by their settings in
  order of first appearance (:func:`~cytosafe.curves.calibration.calibrate_plates`); in
  a group, wells and replicate groups in the order of the input rows, curves, standards
  and QC rows sorted by study, plate and analyte.

Where that order cannot be rebuilt from whole plates (a table whose plates' rows are
interleaved), and for a single plate, the run stays in one process.

Processes are started with the ``forkserver`` method (no fork of a threaded parent), which
imports the calibration code once and forks each worker from it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_MIN_CURVES",
    "check_workers",
    "default_workers",
    "map_plates",
    "prestart",
    "quantifier",
    "quantify_partitioned",
]

#: Modules the forkserver imports once, before forking workers.
_PRELOAD = [
    "__main__",
    "cytosafe.workflows.parallel",
    "cytosafe.curves.calibration",
    "cytosafe.quantification",
]


def default_workers() -> int:
    """The number of cores this process may use (``os.process_cpu_count``, Python 3.13+,
    else the scheduler affinity, else ``os.cpu_count``)."""
    count = getattr(os, "process_cpu_count", None)
    if count is not None:
        return max(1, count() or 1)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def check_workers(workers: int | None) -> int:
    """``workers`` as a positive count (None: :func:`default_workers`)."""
    from cytosafe.errors import InputError

    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise InputError(
            f"got {workers!r}", field="workers", expected="a whole number of processes, 1 or more"
        )
    return int(workers)


#: Curves from which a run whose number of workers was not chosen uses every core. Workers
#: cost about a second of CPU to start; on the 2-core machine (issue 16) the 9-plate MSD
#: example (72 curves, under 1 s of fitting) took 1.5 s longer with two workers, and the
#: 60-plate study of ``bench_analyze.py`` (600 curves) 1.1 s shorter
#: (``benchmarks/bench_workers.py``).
DEFAULT_MIN_CURVES = 500


def check_placement(workers: int | None, scheduler) -> None:
    """Refuse a worker count together with a scheduler: ``workers`` runs the work here,
    ``scheduler`` on a Dask cluster, and the cluster would silently win. ``1`` (the
    library's default) and ``None`` (``cytosafe quantify``'s "not chosen") pass: they
    cannot be told from a count not given."""
    from cytosafe.errors import InputError

    if scheduler is not None and workers not in (None, 1):
        raise InputError(
            f"workers={workers!r} with scheduler={str(scheduler)!r}",
            field="workers",
            expected="workers (processes here) or scheduler (a Dask cluster), not both",
        )


def quantifier(*, workers: int | None = 1, scheduler=None) -> Callable[..., Any]:
    """The quantify function a workflow runs.

    :func:`cytosafe.quantification.quantify` for one worker; :func:`quantify_partitioned`
    over ``workers`` processes (their forkserver started now, :func:`prestart`, so that it
    imports while the inputs are read) or on the Dask ``scheduler``. ``workers=None``:
    every core (:func:`default_workers`) for runs of :data:`DEFAULT_MIN_CURVES` curves or
    more, smaller runs in this process.
    """
    from functools import partial

    check_placement(workers, scheduler)
    if workers == 1 and scheduler is None:
        from cytosafe.quantification import quantify

        return quantify
    if workers is None and scheduler is None:
        return partial(
            quantify_partitioned, workers=default_workers(), min_curves=DEFAULT_MIN_CURVES
        )
    workers = check_workers(workers)
    if scheduler is None and workers > 1:
        prestart()
    return partial(quantify_partitioned, workers=workers, scheduler=scheduler)


def map_plates(
    func: Callable[[Any], Any], tasks: Sequence, *, workers: int = 1, scheduler=None
) -> list:
    """``[func(t) for t in tasks]``, in order, on a Dask cluster, across processes, or here.

    Parameters
    ----------
    func:
        A module-level function (it is pickled by reference).
    scheduler:
        A :class:`dask.distributed.Client`, or the address of a Dask scheduler
        (``tcp://host:8786``) to connect to for this call; it wins over ``workers``.
    workers:
        Processes on this machine; 1 (or a single task) runs in this process.
    """
    tasks = list(tasks)
    if scheduler is not None:
        from dask.distributed import Client

        client = scheduler if isinstance(scheduler, Client) else Client(str(scheduler))
        try:
            # pure=False: a task is run, never served from another call's cache.
            return client.gather(client.map(func, tasks, pure=False))
        finally:
            if client is not scheduler:
                client.close()
    if workers <= 1 or len(tasks) < 2:
        return [func(t) for t in tasks]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=prestart()) as pool:
        return list(pool.map(func, tasks))


def prestart():
    """Start the forkserver now, importing the calibration code, and return its context.

    A workflow calls this before it reads its inputs, so that the server's imports (about
    a second of CPU) run beside the reading instead of after it; the workers are then
    forked from it ready to fit.
    """
    import multiprocessing
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    forkserver.ensure_running()
    return context


def _calibrate_plates(task: tuple) -> Any:
    """One task: calibrate a run of whole plates and compare their curves with the
    curves the exports printed."""
    table, raw, settings, compiled = task
    from cytosafe.curves import fit
    from cytosafe.curves.calibration import calibrate
    from cytosafe.quantification import vendor_curve_qc

    # The kernel the whole run chose for its batch (a part alone may be below the threshold).
    before = fit.COMPILED_MIN_CURVES
    fit.COMPILED_MIN_CURVES = 0 if compiled else before
    try:
        calibration = calibrate(table, settings)
    finally:
        fit.COMPILED_MIN_CURVES = before
    vendor_curve_qc(calibration, raw)
    return calibration


def _plate_codes(table: pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Each row's plate as a code in order of first appearance, and the plates."""
    keys = pd.Series(
        list(zip(table["study_id"].astype(str), table["plate_id"].astype(str), strict=True)),
        dtype=object,
    )
    codes, plates = pd.factorize(keys)
    return codes, list(plates)


def quantify_partitioned(
    measurements: pd.DataFrame,
    *,
    settings=None,
    potency_settings=None,
    options: dict | None = None,
    exclusions=None,
    workers: int = 1,
    scheduler=None,
    min_curves: int = 0,
    validated: bool = False,
):
    """:func:`cytosafe.quantification.quantify` of a measurement table, split by plate.

    The same result, table for table and byte for byte, as ``quantify`` in one process
    (module notes); ``workers`` and ``scheduler`` as in :func:`map_plates`. Each task is
    a run of whole plates (one per worker, so each still fits its curves in one batch).
    With one worker and no scheduler, a single plate, plates whose rows interleave, or
    fewer than ``min_curves`` curves, it is ``quantify`` itself. ``validated``: the table
    is already validated (:func:`cytosafe.quantification.load_measurements`' output).
    """
    from cytosafe.curves.calibration import CURVE_KEY
    from cytosafe.curves.fit import COMPILED_MIN_CURVES, compiled_available
    from cytosafe.curves.potency import PotencySettings, potency
    from cytosafe.quantification import QuantificationResult, plate_conventions, quantify
    from cytosafe.schema.choices import CurveModel
    from cytosafe.schema.measurements import validate_measurements

    def whole() -> QuantificationResult:
        return quantify(
            measurements,
            settings=settings,
            potency_settings=potency_settings,
            options=options,
            exclusions=exclusions,
            validated=validated,
        )

    if scheduler is None and workers <= 1:
        return whole()
    if min_curves and set(CURVE_KEY) <= set(measurements.columns):
        # Counted before validation: a small run goes to quantify, which validates once.
        if measurements.groupby(CURVE_KEY, observed=True, sort=False).ngroups < min_curves:
            return whole()
    if not validated:
        measurements = validate_measurements(measurements)
    if exclusions is not None:
        from cytosafe.curves.exclusions import apply_exclusions, parse_exclusions

        measurements = apply_exclusions(measurements, parse_exclusions(exclusions))
        exclusions = None
        df = validate_measurements(measurements)  # as calibrate_plates sees it
    else:
        df = measurements  # validated (validate_measurements is idempotent)
    codes, plates = _plate_codes(df)
    raw_codes, raw_plates = _plate_codes(measurements)
    contiguous = bool(np.all(np.diff(codes) >= 0)) and raw_plates == plates
    if len(plates) < 2 or not contiguous:
        return whole()
    n_tasks = workers if scheduler is None else _cluster_size(scheduler)
    conventions = plate_conventions(measurements, settings=settings, options=options)
    chosen = conventions.attrs.pop("settings")
    # Plates grouped by settings in order of first appearance (calibrate_plates' groups).
    groups: dict[Any, list[int]] = {}
    for i, plate in enumerate(plates):
        groups.setdefault(chosen.get(plate) or _default_settings(), []).append(i)
    tasks, layout = [], []
    for group_settings, members in groups.items():
        rows = np.isin(codes, members)
        n_curves = df.loc[rows].groupby(CURVE_KEY, observed=True).ngroups
        # The whole run fits a group's curves in one batch: with the compiled kernel from
        # COMPILED_MIN_CURVES curves (cytosafe.curves.fit); each task makes the same choice.
        compiled = n_curves >= COMPILED_MIN_CURVES and compiled_available()
        runs = [r for r in np.array_split(np.asarray(members), max(1, n_tasks)) if r.size]
        for run in runs:
            tasks.append(
                (
                    df.loc[np.isin(codes, run)],
                    measurements.loc[np.isin(raw_codes, run)],
                    group_settings,
                    compiled,
                )
            )
        families = group_settings.model == CurveModel.FIVE_PL_AUTO or bool(
            group_settings.curve_models
        )
        layout.append((len(runs), families))
    parts = map_plates(_calibrate_plates, tasks, workers=workers, scheduler=scheduler)
    calibration = _join_groups(df, parts, layout)
    calibration.conventions = conventions.reset_index(drop=True)
    potency_settings = potency_settings or PotencySettings()
    pot = potency(calibration.wells, potency_settings)
    return QuantificationResult(measurements, calibration, pot, potency_settings, ["<DataFrame>"])


def _cluster_size(scheduler) -> int:
    """The threads of a Dask cluster's workers (one task each)."""
    from dask.distributed import Client

    client = scheduler if isinstance(scheduler, Client) else Client(str(scheduler))
    try:
        return max(1, sum(client.nthreads().values()))
    finally:
        if client is not scheduler:
            client.close()


def _default_settings():
    from cytosafe.curves.calibration import CalibrationSettings

    return CalibrationSettings()


def _join_groups(df: pd.DataFrame, parts: list, layout: list):
    """The tasks' calibrations as one, in the order one process produces (module notes).

    ``parts`` holds each group's runs of plates in order of first appearance; ``layout``
    says how many runs each group has and whether it took calibrate's families' path.
    """
    from cytosafe.curves.calibration import Calibration

    sorted_plates = df.groupby(["study_id", "plate_id"], sort=True, observed=True).ngroup()
    rank = dict(zip(_plate_keys(df), sorted_plates.to_numpy(), strict=True))
    names = ("wells", "samples", "curves", "standards", "qc")
    tables: dict[str, list[pd.DataFrame]] = {n: [] for n in names}
    fits, start = [], 0
    for n_runs, families in layout:
        runs, start = parts[start : start + n_runs], start + n_runs
        lead = _lead_fit(runs)
        # A families' run puts its commonest model's columns first; the group's commonest
        # leads the whole run's column order.
        leading = [r for r in runs if r.fit.model.name == lead.model.name]
        ordered = [*leading, *(r for r in runs if r.fit.model.name != lead.model.name)]
        for name in names:
            columns = pd.concat([getattr(r, name).iloc[:0] for r in ordered]).columns
            frame = pd.concat([getattr(r, name) for r in runs], ignore_index=True)[columns]
            # Runs follow the input order, as wells (and calibrate's replicate groups) do;
            # curve tables are sorted by study, plate and analyte across the group.
            if not (name == "wells" or (name == "samples" and not families)):
                key = np.array([rank[k] for k in _plate_keys(frame)], dtype=np.int64)
                frame = frame.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)
            tables[name].append(frame)
        fits.append(_concat_fits([r.fit for r in runs]) if not families else lead)
    fit = fits[0]
    if len(fits) > 1 and all(f.model.name == fit.model.name for f in fits):
        fit = _concat_fits(fits)
    return Calibration(
        **{name: pd.concat(frames, ignore_index=True) for name, frames in tables.items()},
        fit=fit,
        settings=parts[0].settings,
        curve_points=parts[0].curve_points,
    )


def _plate_keys(table: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(table["study_id"].astype(str), table["plate_id"].astype(str), strict=True))


def _lead_fit(runs: list):
    """The fit standing for a group: on calibrate's families' path (one model per curve),
    that of the group's commonest model, as in one process; only its model is read
    downstream (settings, report)."""
    models = pd.concat([r.curves["model"] for r in runs], ignore_index=True)
    common = str(models.value_counts(sort=True).index[0])
    return next((r.fit for r in runs if r.fit.model.name == common), runs[0].fit)


def _concat_fits(fits: list):
    """Fits of consecutive runs of curves as one (the arrays joined, as calibrate_plates)."""
    if len(fits) == 1 or any(f.model.name != fits[0].model.name for f in fits):
        return fits[0]
    names = ("params", "se", "cov", "rss", "df", "sigma", "status", "n_iter", "n_obs", "fixed")
    joined = {name: np.concatenate([getattr(f, name) for f in fits]) for name in names}
    if all(f.reason is not None for f in fits):
        joined["reason"] = np.concatenate([f.reason for f in fits])
    return dataclasses.replace(fits[0], **joined)
