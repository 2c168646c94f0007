"""The quantification step: instrument exports in, calibrated concentrations and potency out.

Vendor conventions by default (issue 12, item 2). Each plate is calibrated the way the
software that wrote its export does: the reader module that reads the plate's
``source_file`` (:func:`cytosafe.io.registry.detect_format`) declares the vendor's model,
weighting, blank handling and signal in its ``CALIBRATION`` constant, with its source
(xPONENT: the mirror 5PL on Net MFI, blanks subtracted; Bio-Plex Manager: the printed
regression on FI - Bkgd; MSD Discovery Workbench: 4PL, 1/y^2, blanks as the zero
standard). Tables, plate maps and readers without a convention get the defaults of
:class:`~cytosafe.curves.calibration.CalibrationSettings`. An option the user sets
explicitly (``options``, the CLI's ``--model`` ...) overrides the convention's field on
every plate; full :class:`CalibrationSettings` given as ``settings`` apply as they are.
:func:`plate_conventions` says which applied and why (``settings.json``, the report).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cytosafe.curves.calibration import (
    Calibration,
    CalibrationSettings,
    acceptance_fields,
    calibrate_plates,
)
from cytosafe.curves.potency import PotencySettings, potency
from cytosafe.errors import InputError
from cytosafe.schema.measurements import validate_measurements

__all__ = ["QuantificationResult", "load_measurements", "plate_conventions", "quantify"]

#: The calibration fields a convention (or an explicit option) sets.
CONVENTION_FIELDS = (
    "model",
    "curve_models",
    "weighting",
    "blank",
    "weight_floor",
    "asymmetry_bounds",
)
#: The options a user may set explicitly over a convention.
OPTION_FIELDS = ("model", "weighting", "blank", "covariance")


@dataclass
class QuantificationResult:
    """Measurements, calibration and potency of one quantification run.

    The tables a run writes or stores, by name, are
    :func:`cytosafe.workflows.quantification_tables` of this result.
    """

    measurements: pd.DataFrame
    calibration: Calibration
    potency: pd.DataFrame
    potency_settings: PotencySettings
    sources: list[str]

    @property
    def concentrations(self) -> pd.DataFrame:
        return self.calibration.wells

    @property
    def curves(self) -> pd.DataFrame:
        return self.calibration.curves

    @property
    def qc(self) -> pd.DataFrame:
        return self.calibration.qc


def claim_plates(seen: dict[str, str], table: pd.DataFrame, name: str) -> None:
    """Record the plates of input ``name`` in ``seen`` (plate -> input); a plate already
    claimed by another input is an error naming both (it would silently merge two plates'
    standards otherwise)."""
    for plate in table["plate_id"].unique():
        if plate in seen and seen[plate] != name:
            raise InputError(
                f"plate '{plate}' appears in two inputs (also in {seen[plate]})",
                file=name,
                field="plate_id",
                expected="each plate in one file, or distinct plate ids",
            )
        seen[plate] = name


def _plate_map_pairs(plate_maps: list, matrices: list) -> list[tuple[object, object]]:
    """Pair plate maps with reader matrices: one map for every matrix, or one per matrix."""
    if plate_maps and not matrices:
        raise InputError("--plate-map needs at least one --matrix", field="--matrix")
    if matrices and len(plate_maps) not in (1, len(matrices)):
        raise InputError(
            f"{len(plate_maps)} plate maps for {len(matrices)} matrices",
            field="--plate-map",
            expected="one plate map for all matrices, or one per matrix (in order)",
        )
    return [
        (plate_maps[0] if len(plate_maps) == 1 else plate_maps[i], m)
        for i, m in enumerate(matrices)
    ]


def load_measurements(
    inputs=(),
    *,
    plate_maps: Iterable = (),
    matrices: Iterable = (),
    sample_map=None,
    study_id: str | None = None,
    progress: Callable[[float, str], None] | None = None,
    wavelength: float | None = None,
    reference_wavelength: float | None = None,
    standard_unit: str | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Read and concatenate exports, plate-map + matrix pairs or tables into one validated
    measurement table.

    Parameters
    ----------
    inputs:
        A path, a list of paths (any mix of single-file exports :func:`cytosafe.io.read`
        recognises) or measurement tables.
    plate_maps, matrices:
        Reader matrices or plate-reader exports (SoftMax Pro, Gen5, ASM), one plate each,
        with their plate map: one map for all matrices or one per matrix, in order
        (:func:`cytosafe.io.read_plate`).
    sample_map:
        Culture metadata applied to every export in ``inputs``; a plate the map names that
        no export holds is an error.
    progress:
        Called as ``progress(fraction, message)`` before each file is read.
    wavelength, reference_wavelength:
        For the plate-reader exports among ``matrices``: the measurement wavelength and
        the reference wavelength subtracted well by well (nm; :mod:`cytosafe.io.asm`).
    standard_unit:
        The unit of the concentrations of every file read that states none (a Bio-Plex
        report, a DW export); a unit a file states wins, and a different one is the
        reader's error. Mass units are stored in pg/mL, arbitrary units (IU/mL, ...) as
        written (:mod:`cytosafe.schema.units`).

    Plates must be unique across inputs: the same plate id in two inputs is an error naming
    both (it would silently merge two plates' standards otherwise), and so is a file given
    twice.
    """
    if isinstance(inputs, pd.DataFrame):
        return validate_measurements(inputs), ["<DataFrame>"]
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    inputs, matrices = list(inputs or []), list(matrices or [])
    pairs = _plate_map_pairs(list(plate_maps or []), matrices)
    if not inputs and not pairs:
        raise InputError(
            "no input files were given",
            expected="one or more exports, or --plate-map with --matrix",
        )
    given = [str(p) for p in inputs if not isinstance(p, pd.DataFrame)] + [str(m) for m in matrices]
    twice = sorted({p for p in given if given.count(p) > 1})
    if twice:
        raise InputError("given more than once", file=twice[0], expected="each input once")

    if isinstance(sample_map, (str, Path)) and any(not isinstance(i, pd.DataFrame) for i in inputs):
        from cytosafe.io.samples import read_sample_map

        # Read once for every export (it keeps its file name for error messages), not
        # once per export and again for the plate check.
        sample_map = read_sample_map(sample_map)
    if progress is not None:  # never back: a fallback reads the files again from the first
        progress = _forward(progress)
    if inputs and not pairs and all(isinstance(i, (str, Path)) for i in inputs):
        try:
            at_once = _read_at_once(inputs, sample_map, study_id, standard_unit, progress)
        except Exception:  # any failure: the file-by-file read below says what it is
            # Read file by file: the error each file's own read gives, in input order (a
            # later file's parser error must not hide an earlier file's InputError).
            at_once = None
        if at_once is not None:
            return at_once
    jobs: list[tuple[str, Callable[[], pd.DataFrame]]] = []
    for number, item in enumerate(inputs, start=1):
        if isinstance(item, pd.DataFrame):
            jobs.append((f"<DataFrame {number}>", lambda item=item: validate_measurements(item)))
        else:
            jobs.append(
                (str(item), lambda item=item: _read(item, sample_map, study_id, standard_unit))
            )
    reads = {
        "wavelength": wavelength,
        "reference_wavelength": reference_wavelength,
        "standard_unit": standard_unit,
    }
    for plate_map, matrix in pairs:
        jobs.append(
            (str(matrix), lambda p=plate_map, m=matrix: _read_pair(p, m, study_id, **reads))
        )

    tables, sources = [], []
    seen: dict[str, str] = {}
    for done, (name, job) in enumerate(jobs):
        if progress is not None:
            progress(done / len(jobs), f"reading {Path(name).name}")
        table = job()
        claim_plates(seen, table, name)
        tables.append(table)
        sources.append(name)
    if sample_map is not None and any(not isinstance(i, pd.DataFrame) for i in inputs):
        from cytosafe.io.samples import check_map_plates

        check_map_plates(sample_map, seen)
    return _joined(tables), sources


def _forward(progress: Callable[[float, str], None]) -> Callable[[float, str], None]:
    """``progress`` whose fraction never falls: the at-once read's fallback reports each
    file again from 0, which would send a progress bar back to its start."""
    reached = 0.0

    def report(fraction: float, message: str) -> None:
        nonlocal reached
        reached = max(reached, fraction)
        progress(reached, message)

    return report


#: Readers whose tables :func:`_read` completes after validation (from the validated
#: analyte names): their files are read one by one.
_COMPLETED_AFTER = ("bioplex", "xponent")


def _read_at_once(
    paths: list, sample_map, study_id: str | None, standard_unit: str | None, progress
) -> tuple[pd.DataFrame, list[str]] | None:
    """Exports read as :func:`load_measurements` reads them file by file, but joined to
    the sample map and validated as one table: the same table, in a fraction of the time
    (issue 16, item 4: nine MSD plates validated one by one cost 0.16 s of CPU, at once
    0.05 s; joined one by one 0.07 s, at once 0.02 s).

    The checks of :func:`~cytosafe.schema.measurements.validate_measurements` look at one
    row, one plate or one curve at a time, so the rows of files with the same columns and
    types validate together as they do apart (no plate is in two files:
    :func:`claim_plates`); the map's join is row by row, and what it checks per export
    it still checks per export (:func:`~cytosafe.io.samples.join_sample_map`'s
    ``exports``). ``None`` where that is not so (a file without rows, columns or types
    that differ between files, a reader that checks its joined table or completes it
    after validation): then the files are read one by one. An error raised here is not
    the user's answer either: the caller reads file by file, which raises the error the
    first file in error gives, as it always did; warnings are issued only once every file
    has read.
    """
    from cytosafe.errors import DataWarning
    from cytosafe.io.registry import READERS, detect_format, read_unvalidated

    formats = [detect_format(path) for path in paths]
    if any(
        name in _COMPLETED_AFTER or getattr(READERS[name], "check", None) is not None
        for name in formats
    ):
        return None
    tables, kept, pending = [], [], []
    for done, (path, name) in enumerate(zip(paths, formats, strict=True)):
        if progress is not None:
            progress(done / len(paths), f"reading {Path(str(path)).name}")
        # Without the map: it is joined below, to all the files at once.
        table, attrs, messages = read_unvalidated(
            path, format=name, study_id=study_id, standard_unit=standard_unit
        )
        if table.empty:
            return None
        tables.append(table)
        kept.append(_no_rows(attrs))
        pending.extend(messages)
    first = tables[0]
    if any(
        list(t.columns) != list(first.columns) or not t.dtypes.equals(first.dtypes)
        for t in tables[1:]
    ):
        return None
    rows = [len(t) for t in tables]
    table = pd.concat(tables, ignore_index=True)
    if sample_map is not None:
        from cytosafe.io.samples import join_sample_map

        table = join_sample_map(table, sample_map, exports=rows)
    # The column _read adds to each file's validated table, after the map's: the last.
    table["reader"] = np.repeat(np.array(formats, dtype=object), rows)
    joined = validate_measurements(table)
    # The readers' attrs as pandas joins them (kept where every table has the same).
    joined.attrs = pd.concat(kept).attrs
    sources = [str(path) for path in paths]
    seen: dict[str, str] = {}
    start = 0
    for name, n in zip(sources, rows, strict=True):
        claim_plates(seen, joined.iloc[start : start + n], name)
        start += n
    if sample_map is not None:
        from cytosafe.io.samples import check_map_plates

        check_map_plates(sample_map, seen)
    for message in pending:
        warnings.warn(message, DataWarning, stacklevel=1)
    return joined, sources


def _no_rows(attrs: dict) -> pd.DataFrame:
    """An empty frame carrying ``attrs``: what :func:`pandas.concat` makes of many tables'
    attrs is read from such frames, without their rows."""
    frame = pd.DataFrame()
    frame.attrs = attrs
    return frame


def _joined(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Validated tables (one per input, each plate in one of them) as one validated table.

    Each table was validated where it was read, and no plate spans two tables, so the
    rows need no second check (it cost a tenth of a second on nine MSD plates); the table
    is validated again only where joining changed a column's type (categories that differ,
    a column some inputs lack).
    """
    joined = pd.concat(tables, ignore_index=True)
    # dtypes read once per table: a column taken as a Series copies the table's attrs.
    want = joined.dtypes.to_dict()
    have = [t.dtypes.to_dict() for t in tables]
    same = all(c in h and h[c] == dtype for h in have for c, dtype in want.items())
    return joined if same else validate_measurements(joined)


def _read(path, sample_map, study_id: str | None, standard_unit: str | None = None) -> pd.DataFrame:
    """Read one export and record which reader read it (``reader``) and, for Bio-Plex
    reports and xPONENT exports, the curve family each analyte's printed curve is in
    (``vendor_model``): the vendor conventions need them after the file is gone (a stored
    study, the web app)."""
    from cytosafe.io import read  # the readers are only needed for files
    from cytosafe.io.registry import detect_format

    name = detect_format(path)
    table = read(
        path, format=name, sample_map=sample_map, study_id=study_id, standard_unit=standard_unit
    )
    table["reader"] = name
    if name == "bioplex":
        printed = _printed_models(path)
        curves = _printed_curves("bioplex", _bioplex_coefficients(path))
    elif name == "xponent":
        analysis = table.attrs.get("analysis") or {}
        printed = _xponent_models(analysis)
        curves = _printed_curves("xponent", analysis)
    else:
        return table
    analyte = table["analyte"].astype(str)
    table["vendor_model"] = analyte.map(printed).astype(object)
    for j, name in enumerate(VENDOR_PARAMS):
        values = {a: (p[j] if j < len(p) else math.nan) for a, (_, p) in curves.items()}
        table[name] = analyte.map(values).astype(float)
    return table


#: Columns holding the printed vendor curve's parameters in our parameterisation
#: (:func:`cytosafe.curves.models.vendor_curve`; ``vendor_g`` is NaN for a 4PL).
VENDOR_PARAMS = ("vendor_a", "vendor_b", "vendor_c", "vendor_d", "vendor_g")


def _bioplex_coefficients(path) -> dict[str, object]:
    from cytosafe.io.bioplex import read_bioplex_equations

    return {str(r["analyte"]): r for _, r in read_bioplex_equations(path).iterrows()}


def _printed_curves(vendor: str, coefficients: dict) -> dict[str, tuple[str, list[float]]]:
    """The curves a vendor printed, per analyte, as ``(model name, parameters)`` in our
    parameterisation; analytes without a complete printed curve are left out."""
    from cytosafe.curves.models import vendor_curve

    out = {}
    for analyte, entry in coefficients.items():
        try:
            model, params = vendor_curve(vendor, entry)
        except InputError:
            continue
        out[str(analyte)] = (model.name, params[0].tolist())
    return out


def vendor_curve_qc(calibration: Calibration, measurements: pd.DataFrame) -> None:
    """Compare each fitted curve with the curve the vendor printed (issue 12, item 1).

    Adds to ``calibration.curves`` and ``calibration.qc``:

    * ``vendor_difference``: the largest relative difference in signal between our
      fitted curve and the printed one over the curve's standards
      (:func:`cytosafe.curves.models.curve_difference`; NaN where the export prints no
      curve or ours has no parameters). Both are compared in the instrument's signal
      (MFI, FI), far from zero: each curve is moved back by what was subtracted from
      the signal it was fitted to (our blank subtraction; the vendor's Net MFI or
      FI - Bkgd, ``net_signal``), so the near-zero net signal of the lowest standards
      does not blow the ratio up;
    * ``vendor_curve_note``: where the two curves differ by more than the recovery
      tolerance (20 % with the default 80-120 %), the standards CytoSafe's curve accepted
      that the printed curve reads outside the recovery range (``""`` where none): the
      vendor's numbers are then no reference for the curve (:func:`_printed_misreads`);
    * ``vendor_fit_reason``: why the printed curve itself is degenerate under
      :data:`cytosafe.curves.calibration.CALIBRATION_LIMITS` on the same standards
      (``""`` where it is not): a vendor's number from such a curve is one CytoSafe
      withholds (item 5), and the report says the vendor's own curve broke the limits.
    """
    from cytosafe.curves.calibration import CURVE_KEY

    curves, qc = calibration.curves, calibration.qc
    curves["vendor_difference"] = math.nan
    curves["vendor_fit_reason"] = ""
    curves["vendor_curve_note"] = ""
    if {"vendor_model", *VENDOR_PARAMS} <= set(measurements.columns):
        _compare_printed(calibration, measurements)
    merged = qc[CURVE_KEY].merge(
        curves[[*CURVE_KEY, "vendor_difference", "vendor_fit_reason", "vendor_curve_note"]],
        on=CURVE_KEY,
        how="left",
    )
    qc["vendor_difference"] = merged["vendor_difference"].to_numpy()
    qc["vendor_fit_reason"] = merged["vendor_fit_reason"].fillna("").to_numpy()
    qc["vendor_curve_note"] = merged["vendor_curve_note"].fillna("").to_numpy()


def _compare_printed(calibration: Calibration, measurements: pd.DataFrame) -> None:
    """Fill ``vendor_difference`` and ``vendor_fit_reason`` of the curves an export printed
    (:func:`vendor_curve_qc`); each table is grouped by curve once."""
    from cytosafe.curves.calibration import CALIBRATION_LIMITS, CURVE_KEY, curve_keys
    from cytosafe.curves.fit import check_limits
    from cytosafe.curves.models import curve_difference, get_model

    curves = calibration.curves
    printed = measurements.dropna(subset=["vendor_a"]).drop_duplicates(CURVE_KEY)
    printed = dict(zip(curve_keys(printed), (r for _, r in printed.iterrows()), strict=True))
    stds, wells = calibration.standards, calibration.wells

    def rows_by_curve(table: pd.DataFrame) -> dict[tuple, np.ndarray]:
        groups: dict[tuple, list[int]] = {}
        for pos, k in enumerate(curve_keys(table)):
            groups.setdefault(k, []).append(pos)
        return {k: np.asarray(v) for k, v in groups.items()}

    std_rows, well_rows = rows_by_curve(stds), rows_by_curve(wells)
    none = np.zeros(0, dtype=int)

    # Both curves are compared in the instrument's own signal (``signal``: MFI, FI), which
    # stays well above zero: our curve is moved by what blank subtraction took off, the
    # printed one by what the vendor's fitted signal (``net_signal``) took off.
    def offsets(other: str) -> dict[tuple, float]:
        if other not in wells.columns:
            return {}
        gap = (wells["signal"] - wells[other]).rename("gap")
        keyed = pd.concat([wells[CURVE_KEY].astype(str), gap], axis=1).dropna()
        return keyed.groupby(CURVE_KEY)["gap"].median().to_dict()

    ours_off, vendor_off = offsets("signal_used"), offsets("net_signal")
    recovery_range = calibration.settings.recovery_range
    for i, key in zip(curves.index, curve_keys(curves), strict=True):
        if key not in printed:
            continue
        row, vend = curves.loc[i], printed[key]
        vmodel = get_model(_vendor_model_name(vend))
        vparams = np.array([[vend[c] for c in VENDOR_PARAMS[: vmodel.n_params]]], dtype=float)
        mine_wells = wells.iloc[well_rows.get(key, none)]
        vparams[0, vmodel.names.index("c")] *= _printed_unit_factor(mine_wells, vmodel, vparams)
        shift = vendor_off.get(key, 0.0)
        shift = shift if np.isfinite(shift) else 0.0
        raw = vparams.copy()
        raw[0, [vmodel.names.index("a"), vmodel.names.index("d")]] += shift
        mine = stds.iloc[std_rows.get(key, none)]
        x = mine["nominal"].to_numpy(dtype=float)[None, :]
        own = ours_off.get(key, 0.0)
        own = own if np.isfinite(own) else 0.0
        y = mine["mean_signal"].to_numpy(dtype=float)[None, :] + own - shift
        curves.at[i, "vendor_fit_reason"] = str(
            check_limits(vmodel, vparams, x, y, limits=CALIBRATION_LIMITS)[0]
        )
        model = get_model(str(row["model"]))
        params = np.array([[row.get(n, math.nan) for n in model.names]], dtype=float)
        params[0, [model.names.index("a"), model.names.index("d")]] += own
        lo, hi = row.get("min_standard", math.nan), row.get("max_standard", math.nan)
        if np.all(np.isfinite(params)) and np.isfinite(lo) and np.isfinite(hi) and lo > 0:
            diff = float(
                np.asarray(curve_difference(model, params, vmodel, raw, lo, hi)).ravel()[0]
            )
            curves.at[i, "vendor_difference"] = diff
            # A printed curve is called no reference only when the two curves differ by
            # more than the recovery tolerance and the printed one misreads standards
            # ours accepts (near the limits two sound curves may fall either side).
            if diff > (recovery_range[1] - 100) / 100:
                curves.at[i, "vendor_curve_note"] = _printed_misreads(
                    vmodel, vparams, mine, y[0], recovery_range
                )


def _printed_misreads(vmodel, vparams, standards: pd.DataFrame, y, recovery_range) -> str:
    """The standards CytoSafe's curve accepted that the printed curve reads outside the
    recovery range, in words (``""`` for none).

    The printed curve is applied to the same mean signals (on the vendor's fitted scale,
    ``y``) as the back-calculated recovery of each accepted level, the acceptance rule of
    the calibration (``recovery_range``: ICH M10 / FDA 2018 limits, see
    :class:`cytosafe.curves.calibration.CalibrationSettings`). A vendor's concentrations
    from a curve that misreads standards CytoSafe's curve reads within limits are no
    reference for this curve: seen on real Bio-Plex exports whose printed 5PL stopped at
    its asymmetry bound with a top asymptote far above the highest standard.
    """
    if "passes" not in standards or not len(standards):
        return ""
    lo, hi = recovery_range
    x = standards["nominal"].to_numpy(dtype=float)
    with np.errstate(all="ignore"):
        back = vmodel.inverse(np.asarray(y, dtype=float)[None, :], vparams)[0]
    recovery = 100 * back / x
    accepted = standards["passes"].fillna(False).to_numpy(dtype=bool)
    bad = accepted & np.isfinite(recovery) & ((recovery < lo) | (recovery > hi))
    if not bad.any():
        return ""
    seen: dict[float, list[float]] = {}
    for level, r in zip(x[bad], recovery[bad], strict=True):
        seen.setdefault(float(level), []).append(float(r))
    words = ", ".join(f"{level:g} at {np.median(rs):.0f} %" for level, rs in sorted(seen.items()))
    return (
        f"reads standard{'s' if len(seen) > 1 else ''} {words} of nominal (CytoSafe's "
        f"curve: within {lo:g}-{hi:g} %): no reference for this curve"
    )


def _printed_unit_factor(mine: pd.DataFrame, model, params: np.ndarray) -> float:
    """The factor from the unit of a printed curve's concentrations to pg/mL.

    A vendor prints its curve in the export's unit (ng/mL, say) while CytoSafe stores
    pg/mL. The factor is read off the export itself: the vendor's own results
    (``vendor_concentration``, already converted to pg/mL by the reader) against the
    printed curve's inverse of the vendor's signal (``net_signal``) times the dilution,
    snapped to the nearest SI factor of 10^3 within 5 %; 1 where nothing says otherwise.
    ``mine``: the wells of the curve.
    """
    needed = {"vendor_concentration", "net_signal", "dilution_factor"}
    if not needed <= set(mine.columns):
        return 1.0
    vendor = mine["vendor_concentration"].to_numpy(dtype=float)
    with np.errstate(all="ignore"):
        x = model.inverse(mine["net_signal"].to_numpy(dtype=float)[None, :], params)[0]
        ratio = vendor / (x * mine["dilution_factor"].to_numpy(dtype=float))
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    if ratio.size == 0:
        return 1.0
    step = 10.0 ** (3 * np.round(np.log10(np.median(ratio)) / 3))
    return float(step) if abs(np.median(ratio) / step - 1) < 0.05 else 1.0


def _vendor_model_name(row) -> str:
    """The family of a printed curve: a 4PL where ``vendor_g`` is NaN, else the 5PL form
    ``vendor_model`` names (a ``5PL-auto`` there means no coefficients were printed)."""
    if not np.isfinite(float(row["vendor_g"])):
        return "4PL"
    return str(row["vendor_model"])


def _xponent_models(analysis: dict) -> dict[str, str]:
    """xPONENT's printed curve of each analyte as a model name.

    A *Logistic 5P* with printed coefficients is in the family the sign of its slope
    ``D`` says (:func:`cytosafe.curves.models.vendor_curve`); without coefficients (an
    export that names the analysis only) the family is unknown, and xPONENT's signed
    slope spans both: ``5PL-auto`` (the form with the smaller AIC, per curve). A
    *Logistic 4P* is the 4PL. Other analysis types (none, linear) give no model.
    """
    from cytosafe.curves.models import vendor_curve

    out = {}
    for analyte, entry in analysis.items():
        kind = str(entry.get("analysis_type") or "").lower().replace(" ", "")
        if kind not in ("logistic5p", "logistic4p"):
            continue
        try:
            out[str(analyte)] = vendor_curve("xponent", entry)[0].name
        except InputError:  # coefficients not printed (or not finite)
            out[str(analyte)] = "5PL-auto" if kind == "logistic5p" else "4PL"
    return out


def _read_pair(plate_map, matrix, study_id: str | None, **reads) -> pd.DataFrame:
    from cytosafe.io import read_plate

    return read_plate(plate_map, matrix, study_id=study_id, **reads)


def quantify(
    inputs,
    *,
    sample_map=None,
    study_id: str | None = None,
    settings: CalibrationSettings | None = None,
    potency_settings: PotencySettings | None = None,
    options: dict | None = None,
    exclusions=None,
    standard_unit: str | None = None,
    validated: bool = False,
    kernel: str = "auto",
) -> QuantificationResult:
    """Read exports, fit every standard curve, back-calculate every well, fit potency.

    Parameters
    ----------
    inputs:
        A path, a list of paths (any mix of supported exports) or a measurement table.
    sample_map:
        Culture metadata keyed by ``sample_id`` or ``well`` (path or DataFrame), applied
        to every file read.
    settings, potency_settings:
        :class:`~cytosafe.curves.calibration.CalibrationSettings` and
        :class:`~cytosafe.curves.potency.PotencySettings`. Calibration settings given
        here apply to every plate as they are (no vendor convention); without them each
        plate gets its reader's convention (module notes).
    options:
        Calibration fields the user set explicitly (``model``, ``weighting``, ``blank``,
        ``covariance`` and any other field of ``CalibrationSettings``, e.g.
        ``accept_curves``): they override the convention of every plate. ``acceptance``
        names a set of acceptance criteria
        (:data:`~cytosafe.curves.calibration.ACCEPTANCE`: ``"cytosafe"`` or ``"ich-m10"``)
        whose fields it sets; a field also given explicitly wins.
    exclusions:
        Standard wells (or any wells) to leave out of the fit, with a reason each:
        :func:`cytosafe.curves.exclusions.parse_exclusions` entries (``PLATE:WELL[:ANALYTE]=
        REASON`` strings), a file of them, or a table.
    standard_unit:
        The unit of the standards of exports that state none (passed to every reader).
    validated:
        ``inputs`` is a measurement table that :func:`load_measurements` (or
        :func:`~cytosafe.schema.measurements.validate_measurements`) returned: it is used
        as it is, not validated again (the workflows validate once, where they read).
    kernel:
        The curve fitter's kernel (:func:`~cytosafe.curves.calibration.calibrate`):
        ``"auto"``, ``"numpy"`` or ``"compiled"``.

    Examples
    --------
    >>> result = quantify(["plate_1.csv", "plate_2.csv"], sample_map="samples.csv")  # doctest: +SKIP
    >>> result.concentrations.head()  # doctest: +SKIP
    """
    if validated and isinstance(inputs, pd.DataFrame):
        measurements, sources = inputs, ["<DataFrame>"]
    else:
        measurements, sources = load_measurements(
            inputs, sample_map=sample_map, study_id=study_id, standard_unit=standard_unit
        )
    if exclusions is not None:
        from cytosafe.curves.exclusions import apply_exclusions, parse_exclusions

        measurements = apply_exclusions(measurements, parse_exclusions(exclusions))
    conventions = plate_conventions(measurements, settings=settings, options=options)
    # Validated above (or by the caller): calibration checks it again only after the
    # exclusions have written into it.
    calibration = calibrate_plates(
        measurements,
        conventions.attrs.pop("settings"),
        conventions,
        kernel=kernel,
        validated=exclusions is None,
    )
    vendor_curve_qc(calibration, measurements)
    potency_settings = potency_settings or PotencySettings()
    pot = potency(calibration.wells, potency_settings)
    return QuantificationResult(measurements, calibration, pot, potency_settings, sources)


def _reader_of(path: str) -> object:
    """The reader module that reads ``path`` (None for no file, or one no reader takes)."""
    from cytosafe.io.registry import READERS, detect_format

    if not path or not Path(path).is_file():
        return None
    try:
        return READERS[detect_format(path)]
    except InputError:
        return None


def _printed_models(path) -> dict[str, str]:
    """Bio-Plex Manager's printed regression of each analyte as a model name.

    Every analyte sheet prints its ``Regression Type`` and ``Std. Curve``; a 5PL whose
    printed slope is negative is the mirror family (the mapping of
    :func:`cytosafe.curves.models.vendor_curve`).
    """
    from cytosafe.io.bioplex import read_bioplex_equations

    out = {}
    for row in read_bioplex_equations(path).itertuples(index=False):
        kind = getattr(row, "regression_type", None)
        b = getattr(row, "b", float("nan"))
        if kind == "4PL":
            out[str(row.analyte)] = "4PL"
        elif kind == "5PL":
            out[str(row.analyte)] = "5PL-mirror" if b == b and b < 0 else "5PL"
    return out


def _printed_model(plate: pd.DataFrame) -> tuple[str, str, dict[str, str]]:
    """The model of a Bio-Plex or xPONENT plate: the family its printed curves are in,
    why, and the curves printed in another family (``{"PLATE:ANALYTE": model}``).

    A plate whose analytes print different families gets the most common one, and each
    other curve its own; a plate without printed curves gets the default 5PL.
    """
    printed: dict[str, str] = {}
    if "vendor_model" in plate.columns:
        rows = plate[["analyte", "vendor_model"]].dropna().drop_duplicates("analyte")
        printed = dict(zip(rows["analyte"].astype(str), rows["vendor_model"].astype(str),
                           strict=True))  # fmt: skip
    if not printed and isinstance(plate["source_file"].iloc[0], str):
        path = plate["source_file"].iloc[0]
        if getattr(_reader_of(path), "NAME", "") == "bioplex":  # None for no file
            printed = _printed_models(path)
    analytes = [a for a in dict.fromkeys(plate["analyte"].astype(str)) if a in printed]
    if not analytes:
        return "5PL", "the export prints no standard curve: the default 5PL", {}
    counts = pd.Series([printed[a] for a in analytes]).value_counts()
    model = str(counts.index[0])
    plate_id = str(plate["plate_id"].iloc[0])
    others = {f"{plate_id}:{a}": printed[a] for a in analytes if printed[a] != model}
    said = {"5PL-auto": "5PL curves without coefficients (5PL-auto: the form with the "
                        "smaller AIC per curve)"}  # fmt: skip
    if len(counts) == 1:
        return model, f"the export prints {said.get(model, model + ' curves')}", others
    return (
        model,
        (
            "the export prints "
            + ", ".join(f"{n} x {m}" for m, n in counts.items())
            + f": {model} for the plate, each other curve its printed family"
        ),
        others,
    )


def plate_conventions(
    measurements: pd.DataFrame,
    *,
    settings: CalibrationSettings | None = None,
    options: dict | None = None,
) -> pd.DataFrame:
    """Which calibration each plate gets, and why (module notes).

    Returns
    -------
    pandas.DataFrame
        One row per ``study_id`` x ``plate_id``: ``source_file``, ``reader``,
        ``software``, ``model``, ``weighting``, ``blank``, ``covariance``, ``signal``,
        ``source`` (of the convention) and ``applied`` (a sentence: the vendor's
        convention, the defaults, or which explicit options overrode it). Its
        ``attrs["settings"]`` maps ``(study_id, plate_id)`` to the
        :class:`CalibrationSettings` of the plate.
    """
    from cytosafe.io.registry import READERS

    options = {k: v for k, v in (options or {}).items() if v is not None}
    if settings is not None and settings == CalibrationSettings():
        settings = None  # the defaults are no choice: the conventions are the defaults
    base = settings or CalibrationSettings()
    rows, chosen = [], {}
    for (study, plate), table in measurements.groupby(
        [measurements["study_id"].astype(str), measurements["plate_id"].astype(str)],
        sort=False,
    ):
        source = table["source_file"].iloc[0]
        source = source if isinstance(source, str) else ""
        reader = None
        if settings is None:
            named = table["reader"].dropna() if "reader" in table.columns else ()
            reader = READERS.get(str(named.iloc[0])) if len(named) else _reader_of(source)
        conv = dict(getattr(reader, "CALIBRATION", {}) or {})
        why = ""
        per_curve: dict[str, str] = {}
        if conv.get("model") == "printed":
            conv["model"], why, per_curve = _printed_model(table)
            if per_curve:
                conv["curve_models"] = tuple(sorted(per_curve.items()))
        fields = {k: conv[k] for k in CONVENTION_FIELDS if k in conv}
        if settings is not None:
            applied = "the settings given apply to every plate"
        elif fields:
            applied = f"{conv.get('software', reader.NAME)}'s convention ({conv['source']})"
            applied += f"; {why}" if why else ""
        else:
            name = getattr(reader, "NAME", None)
            applied = (
                f"the defaults (the {name} reader declares no vendor convention)"
                if name
                else "the defaults (no vendor export behind this plate)"
            )
        over = {k: v for k, v in options.items() if k != "acceptance"}
        if "model" in over:  # the user's model applies to every curve of the plate
            fields.pop("curve_models", None)
        if options:
            applied += "; overridden by the options " + ", ".join(
                f"{k}={v}" for k, v in options.items()
            )
        if "acceptance" in options:  # a named set of acceptance criteria: its fields
            over = {**acceptance_fields(str(options["acceptance"])), **over}
        current = dataclasses.asdict(base) if settings is not None else {}
        plate_settings = CalibrationSettings(
            **{**current, **({} if settings is not None else fields), **over}
        )
        chosen[(study, plate)] = plate_settings
        rows.append(
            {
                "study_id": study,
                "plate_id": plate,
                "source_file": source or None,
                "reader": getattr(reader, "NAME", None),
                "software": conv.get("software"),
                "model": str(plate_settings.model),
                "weighting": str(plate_settings.weighting),
                "blank": str(plate_settings.blank),
                "covariance": str(plate_settings.covariance),
                "weight_floor": plate_settings.weight_floor,
                "signal": conv.get("signal", "signal"),
                "source": conv.get("source"),
                "applied": applied,
            }
        )
    table = pd.DataFrame(rows)
    table.attrs["settings"] = chosen
    return table
