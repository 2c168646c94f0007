"""The quantification workflow: exports in; tables, settings and the QC report out.

One sequence for every face: ``cytosafe quantify``, the web app's quantification job and
``cytosafe store import`` all read through :func:`run_quantification`, name their tables
with :func:`quantification_tables` and record :func:`quantification_settings`, so a run
writes the same tables whichever face started it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from cytosafe._atomic import atomic_directory
from cytosafe.workflows._output import check_out, write_settings, write_tables

__all__ = [
    "QUANTIFICATION_FILES",
    "QUANTIFICATION_TABLES",
    "quantification_settings",
    "quantification_tables",
    "run_quantification",
    "store_quantification",
    "write_quantification",
]

#: The tables of a quantification run, in the order they are written.
QUANTIFICATION_TABLES = ("concentrations", "samples", "curves", "standards", "qc", "potency")

#: The files a quantification run writes into its output directory.
QUANTIFICATION_FILES = (
    *(f"{name}.csv" for name in QUANTIFICATION_TABLES),
    "settings.json",
    "report.html",
)

Progress = Callable[[float, str], None]


def _silent(fraction: float, message: str) -> None:
    return None


def run_quantification(
    inputs=(),
    *,
    plate_maps=(),
    matrices=(),
    sample_map=None,
    study_id: str | None = None,
    settings=None,
    potency_settings=None,
    options: dict | None = None,
    exclusions=None,
    out: str | Path | None = None,
    title: str | None = None,
    progress: Progress | None = None,
    wavelength: float | None = None,
    reference_wavelength: float | None = None,
    standard_unit: str | None = None,
    workers: int | None = 1,
    scheduler=None,
):
    """Read exports, fit every standard curve, back-calculate, fit potency; optionally write.

    Parameters
    ----------
    inputs, plate_maps, matrices, sample_map, study_id, wavelength, reference_wavelength:
        What to read (:func:`cytosafe.quantification.load_measurements`): exports, tables,
        or plate-map + reader-matrix (or plate-reader export) pairs, with the wavelengths
        of plate-reader exports; chosen wavelengths are recorded in ``settings.json``.
    standard_unit:
        The unit of the concentrations of files that state none (a Bio-Plex report, a DW
        export; :func:`~cytosafe.quantification.load_measurements`): a mass unit is
        stored in pg/mL, an arbitrary unit (IU/mL, U/mL, AU/mL, ...) kept as written and
        labelled. Recorded in ``settings.json`` when given.
    settings, potency_settings:
        :class:`~cytosafe.curves.calibration.CalibrationSettings` and
        :class:`~cytosafe.curves.potency.PotencySettings`. Without calibration
        settings each plate gets its reader's vendor convention
        (:func:`cytosafe.quantification.plate_conventions`).
    options:
        Calibration fields the user set explicitly; they override the conventions.
    exclusions:
        Wells to leave out of the fit with their reasons
        (:func:`cytosafe.curves.exclusions.parse_exclusions`).
    out:
        When given, the tables, ``settings.json`` and ``report.html`` are written there,
        all or nothing (:func:`write_quantification`).
    progress:
        Called as ``progress(fraction, message)`` as the run advances.
    workers, scheduler:
        Calibrate runs of whole plates in ``workers`` processes, or on a Dask cluster
        (a :class:`dask.distributed.Client` or a scheduler address, ``tcp://host:8786``);
        the tables are byte-identical to one process
        (:func:`cytosafe.workflows.parallel.quantify_partitioned`). Default: here; ``None``:
        every core for runs of 500 curves or more
        (:func:`~cytosafe.workflows.parallel.quantifier`).

    Returns
    -------
    QuantificationResult
        With ``sources``, the inputs read.

    Examples
    --------
    >>> from cytosafe.workflows import run_quantification  # doctest: +SKIP
    >>> result = run_quantification(["plate_1.csv"], sample_map="samples.csv", out="out/q")  # doctest: +SKIP
    """
    from cytosafe.quantification import load_measurements
    from cytosafe.workflows.parallel import quantifier

    progress = progress or _silent
    if out is not None:
        check_out(out)  # before the work, not after it
    # One process, several (their start-up beside the reading) or a Dask cluster.
    run = quantifier(workers=workers, scheduler=scheduler)
    table, sources = load_measurements(
        inputs,
        plate_maps=plate_maps,
        matrices=matrices,
        sample_map=sample_map,
        study_id=study_id,
        progress=lambda f, m: progress(0.2 * f, m),
        wavelength=wavelength,
        reference_wavelength=reference_wavelength,
        standard_unit=standard_unit,
    )
    progress(0.2, "fitting standard curves, back-calculating, potency")
    result = run(
        table,
        settings=settings,
        potency_settings=potency_settings,
        options=options,
        exclusions=exclusions,
        validated=True,  # load_measurements validated it; the run does not again
    )
    result.sources = sources

    def paths(items) -> list[str]:
        if isinstance(items, (str, Path, pd.DataFrame)):
            items = [items]
        return [str(p) for p in items if not isinstance(p, pd.DataFrame)]

    settings = quantification_settings(
        result,
        inputs=paths(inputs),
        sample_map=None
        if sample_map is None or isinstance(sample_map, pd.DataFrame)
        else str(sample_map),
        plate_maps=paths(plate_maps),
        matrices=paths(matrices),
        study_id=study_id,
        # The plate-reader wavelengths read and the unit given for files without one, when
        # chosen (they name the analytes' signal and the concentrations' unit).
        **{
            name: value
            for name, value in (
                ("wavelength", wavelength),
                ("reference_wavelength", reference_wavelength),
                ("standard_unit", standard_unit),
            )
            if value is not None
        },
    )
    if out is not None:
        write_quantification(result, out, settings=settings, title=title, progress=progress)
    progress(1.0, "done")
    return result


def quantification_tables(result) -> dict[str, pd.DataFrame]:
    """The tables of a quantification run by name (without ``.csv``).

    ``concentrations`` (every well), ``samples`` (replicate groups), ``curves``,
    ``standards``, ``qc`` and ``potency``. ``curves`` is the calibration's curve table
    (parameters, standard errors, fit status, LLOQ, ULOQ, LOD, blank statistics) with the
    curve's ``concentration_unit`` (the unit of its limits, standards and of its wells'
    concentrations: pg/mL, or an arbitrary unit kept as written), joined with its plate
    QC verdict (``qc_pass``, ``qc_reasons``) and the number of sample and control wells
    carrying each flag (``n_below_lloq``, ...). ``concentrations`` and ``samples`` carry
    ``concentration_unit`` on every row.
    """
    from cytosafe.curves.calibration import FLAGS
    from cytosafe.schema.measurements import curve_units

    cal = result.calibration
    key = ["study_id", "plate_id", "analyte"]
    study_wells = cal.wells[cal.wells["sample_type"].isin(["sample", "control"])]
    counts = study_wells.groupby(key, observed=True)[list(FLAGS)].sum().astype(int)
    counts.columns = [f"n_{f}" for f in FLAGS]
    curves = cal.curves
    if "concentration_unit" not in curves.columns:  # the unit of LLOQ, ULOQ and LOD
        units = curve_units(cal.wells)
        curves = curves.merge(units, on=key, how="left")
        ordered = [*key, "concentration_unit"]
        curves = curves[[*ordered, *(c for c in curves.columns if c not in ordered)]]
    curves = curves.merge(cal.qc[[*key, "qc_pass", "qc_reasons"]], on=key, how="left")
    curves = curves.merge(counts, left_on=key, right_index=True, how="left")
    curves[counts.columns] = curves[counts.columns].fillna(0).astype(int)
    tables = {
        "concentrations": cal.wells,
        "samples": cal.samples,
        "curves": curves,
        "standards": cal.standards,
        "qc": cal.qc,
        "potency": result.potency,
    }
    return {name: tables[name] for name in QUANTIFICATION_TABLES}


def quantification_settings(result, *, command: str = "quantify", **inputs) -> dict:
    """The settings of a quantification run as JSON-ready data (``settings.json``).

    ``inputs`` records what was read (file names, plates, study id) as the face knows it.
    """
    from cytosafe import __version__
    from cytosafe.curves.calibration import acceptance_name

    cal = result.calibration
    conventions = cal.conventions
    excluded = cal.standards[cal.standards["excluded"]] if "excluded" in cal.standards else None
    return {
        "cytosafe_version": __version__,
        "command": command,
        **inputs,
        "calibration": {
            **cal.settings.to_dict(),
            # Which named acceptance criteria these are (or "custom"): a label.
            "acceptance": acceptance_name(cal.settings),
            "formula": cal.fit.model.formula,
        },
        # Which convention each plate was calibrated with, and why (issue 12, item 2).
        "conventions": _records(conventions),
        # Every standard left out of the fit, with its reason (issue 12, item 8).
        "exclusions": _records(
            None
            if excluded is None
            else excluded[["study_id", "plate_id", "analyte", "nominal", "exclusion_reason"]]
        ),
        "excluded_wells": _records(_excluded_wells(cal.wells)),
        "potency": result.potency_settings.to_dict(),
        "outputs": list(QUANTIFICATION_FILES),
    }


def write_quantification(
    result,
    out: str | Path,
    *,
    settings: dict | None = None,
    title: str | None = None,
    progress: Progress | None = None,
) -> list[Path]:
    """Write the tables, ``settings.json`` and ``report.html`` into ``out``, all or nothing.

    ``settings`` is what ``settings.json`` records (default:
    :func:`quantification_settings` without the inputs).
    """
    from cytosafe.report import write_qc_report

    progress = progress or _silent
    out = check_out(out)
    settings = settings or quantification_settings(result)
    with atomic_directory(out, QUANTIFICATION_FILES) as staging:
        progress(0.7, "writing tables")
        write_tables(staging, quantification_tables(result))
        write_settings(staging, settings)
        progress(0.8, "writing the report")
        write_qc_report(result, staging / "report.html", title=title)
    return [out / name for name in QUANTIFICATION_FILES]


def store_quantification(
    target,
    result,
    *,
    study: str | None = None,
    user,
    settings: dict | None = None,
    inputs: list[dict] | None = None,
    report: bytes | str | None = None,
    previous=None,
    note: str | None = None,
):
    """Store a quantification run in the study store, in one transaction: its measurements
    (plates) and the tables of :func:`quantification_tables`.

    Parameters
    ----------
    target:
        A :class:`~cytosafe.store.Store` or an open session of one.
    study:
        The study code; default the measurements' single ``study_id``.
    settings:
        What the run recorded (default :func:`quantification_settings`).
    inputs:
        Input files with their hashes (default: the hashes of ``result.sources`` that are
        files; a table given in memory is fingerprinted by its measurements).

    Returns
    -------
    cytosafe.store.Analysis
    """
    from cytosafe.errors import InputError
    from cytosafe.store import file_hashes, import_analysis
    from cytosafe.store.studies import plate_sha256

    measurements = result.measurements
    if study is None:
        codes = measurements["study_id"].unique().tolist()
        if len(codes) != 1:
            raise InputError(
                f"the measurements hold {len(codes)} studies", field="study", expected="one"
            )
        study = codes[0]
    if inputs is None:
        inputs = [
            h if h["sha256"] else {**h, "measurements_sha256": plate_sha256(measurements)}
            for h in file_hashes(result.sources)
        ]
    return import_analysis(
        target,
        "quantification",
        quantification_tables(result),
        study=study,
        user=user,
        settings=settings
        if settings is not None
        else quantification_settings(result, inputs=list(result.sources)),
        inputs=inputs,
        measurements=measurements,
        report=report,
        previous=previous,
        note=note,
    )


def _records(table) -> list[dict]:
    """A table as JSON-ready records (NaN as None)."""
    if table is None or len(table) == 0:
        return []
    plain = table.astype(object).where(table.notna(), None)
    return [{k: _json(v) for k, v in row.items()} for row in plain.to_dict("records")]


def _json(value):
    if hasattr(value, "item"):
        return value.item()
    return value


def _excluded_wells(wells: pd.DataFrame):
    """The wells excluded with a reason (any sample type)."""
    if "exclusion_reason" not in wells.columns:
        return None
    rows = wells[wells["exclude"].astype(bool) & wells["exclusion_reason"].notna()]
    return rows[["study_id", "plate_id", "well", "analyte", "sample_type", "exclusion_reason"]]
