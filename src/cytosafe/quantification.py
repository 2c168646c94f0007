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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cytosafe.curves.calibration import Calibration, CalibrationSettings, calibrate_plates
from cytosafe.curves.potency import PotencySettings, potency
from cytosafe.errors import InputError
from cytosafe.schema.measurements import validate_measurements

__all__ = ["QuantificationResult", "load_measurements", "plate_conventions", "quantify"]

#: The calibration fields a convention (or an explicit option) sets.
CONVENTION_FIELDS = ("model", "weighting", "blank", "weight_floor", "asymmetry_bounds")
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

    jobs: list[tuple[str, Callable[[], pd.DataFrame]]] = []
    for number, item in enumerate(inputs, start=1):
        if isinstance(item, pd.DataFrame):
            jobs.append((f"<DataFrame {number}>", lambda item=item: validate_measurements(item)))
        else:
            jobs.append((str(item), lambda item=item: _read(item, sample_map, study_id)))
    reads = {"wavelength": wavelength, "reference_wavelength": reference_wavelength}
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
    return validate_measurements(pd.concat(tables, ignore_index=True)), sources


def _read(path, sample_map, study_id: str | None) -> pd.DataFrame:
    """Read one export and record which reader read it (``reader``) and, for Bio-Plex
    reports, the regression each analyte sheet prints (``vendor_model``): the vendor
    conventions need them after the file is gone (a stored study, the web app)."""
    from cytosafe.io import read  # the readers are only needed for files
    from cytosafe.io.registry import detect_format

    name = detect_format(path)
    table = read(path, format=name, sample_map=sample_map, study_id=study_id)
    table["reader"] = name
    if name == "bioplex":
        printed = _printed_models(path)
        table["vendor_model"] = table["analyte"].astype(str).map(printed).astype(object)
    return table


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
        ``accept_curves``): they override the convention of every plate.
    exclusions:
        Standard wells (or any wells) to leave out of the fit, with a reason each:
        :func:`cytosafe.curves.exclusions.parse_exclusions` entries (``PLATE:WELL[:ANALYTE]=
        REASON`` strings), a file of them, or a table.

    Examples
    --------
    >>> result = quantify(["plate_1.csv", "plate_2.csv"], sample_map="samples.csv")  # doctest: +SKIP
    >>> result.concentrations.head()  # doctest: +SKIP
    """
    measurements, sources = load_measurements(inputs, sample_map=sample_map, study_id=study_id)
    if exclusions is not None:
        from cytosafe.curves.exclusions import apply_exclusions, parse_exclusions

        measurements = apply_exclusions(measurements, parse_exclusions(exclusions))
    conventions = plate_conventions(measurements, settings=settings, options=options)
    calibration = calibrate_plates(measurements, conventions.attrs.pop("settings"), conventions)
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


def _printed_model(plate: pd.DataFrame) -> tuple[str, str]:
    """The model of a Bio-Plex plate: the regression its sheets print, and why.

    Analytes printing different regressions get the most common one (named in the
    reason); a plate without printed curves gets the default 5PL.
    """
    names = plate.get("vendor_model")
    names = [] if names is None else [n for n in names.dropna().astype(str)]
    if not names and isinstance(plate["source_file"].iloc[0], str):
        path = plate["source_file"].iloc[0]
        if Path(path).is_file():
            printed = _printed_models(path)
            names = [printed[a] for a in plate["analyte"].astype(str) if a in printed]
    if not names:
        return "5PL", "the report prints no standard curve: the default 5PL"
    counts = pd.Series(names).value_counts()
    model = str(counts.index[0])
    if len(counts) == 1:
        return model, f"the report prints {model} curves"
    return model, (
        "the report prints "
        + ", ".join(f"{n} x {m}" for m, n in counts.items())
        + f": the most common, {model}"
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
        if conv.get("model") == "printed":
            conv["model"], why = _printed_model(table)
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
        over = {k: v for k, v in options.items()}
        if over:
            applied += "; overridden by the options " + ", ".join(
                f"{k}={v}" for k, v in over.items()
            )
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
