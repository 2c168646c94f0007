"""The quantification step: instrument exports in, calibrated concentrations and potency out."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cytosafe.curves.calibration import Calibration, CalibrationSettings, calibrate
from cytosafe.curves.potency import PotencySettings, potency
from cytosafe.errors import InputError
from cytosafe.schema.measurements import validate_measurements

__all__ = ["QuantificationResult", "load_measurements", "quantify"]


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
) -> tuple[pd.DataFrame, list[str]]:
    """Read and concatenate exports, plate-map + matrix pairs or tables into one validated
    measurement table.

    Parameters
    ----------
    inputs:
        A path, a list of paths (any mix of single-file exports :func:`cytosafe.io.read`
        recognises) or measurement tables.
    plate_maps, matrices:
        Reader matrices (one plate, one analyte each) with their plate map: one map for all
        matrices or one per matrix, in order (:func:`cytosafe.io.read_plate`).
    sample_map:
        Culture metadata applied to every export in ``inputs``; a plate the map names that
        no export holds is an error.
    progress:
        Called as ``progress(fraction, message)`` before each file is read.

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
    for plate_map, matrix in pairs:
        jobs.append((str(matrix), lambda p=plate_map, m=matrix: _read_pair(p, m, study_id)))

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
    from cytosafe.io import read  # the readers are only needed for files

    return read(path, sample_map=sample_map, study_id=study_id)


def _read_pair(plate_map, matrix, study_id: str | None) -> pd.DataFrame:
    from cytosafe.io import read_plate

    return read_plate(plate_map, matrix, study_id=study_id)


def quantify(
    inputs,
    *,
    sample_map=None,
    study_id: str | None = None,
    settings: CalibrationSettings | None = None,
    potency_settings: PotencySettings | None = None,
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
        :class:`~cytosafe.curves.potency.PotencySettings`.

    Examples
    --------
    >>> result = quantify(["plate_1.csv", "plate_2.csv"], sample_map="samples.csv")  # doctest: +SKIP
    >>> result.concentrations.head()  # doctest: +SKIP
    """
    measurements, sources = load_measurements(inputs, sample_map=sample_map, study_id=study_id)
    calibration = calibrate(measurements, settings)
    potency_settings = potency_settings or PotencySettings()
    pot = potency(calibration.wells, potency_settings)
    return QuantificationResult(measurements, calibration, pot, potency_settings, sources)
