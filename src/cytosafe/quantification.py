"""The quantification step: instrument exports in, calibrated concentrations and potency out."""

from __future__ import annotations

from collections.abc import Iterable
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
    """Measurements, calibration and potency of one quantification run."""

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

    def tables(self) -> dict[str, pd.DataFrame]:
        """The run's result tables by name, as calibration and potency made them:
        ``concentrations`` (wells), ``samples``, ``curves``, ``standards``, ``qc`` and
        ``potency``."""
        cal = self.calibration
        return {
            "concentrations": cal.wells,
            "samples": cal.samples,
            "curves": cal.curves,
            "standards": cal.standards,
            "qc": cal.qc,
            "potency": self.potency,
        }


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


def load_measurements(
    inputs, *, sample_map=None, study_id: str | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Read and concatenate exports (paths) or tables into one validated measurement table.

    Plates must be unique across files: the same plate id in two files is an error naming
    both (it would silently merge two plates' standards otherwise).
    """
    if isinstance(inputs, pd.DataFrame):
        return validate_measurements(inputs), ["<DataFrame>"]
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    tables, sources = [], []
    seen: dict[str, str] = {}
    for number, item in enumerate(inputs if isinstance(inputs, Iterable) else [inputs], start=1):
        if isinstance(item, pd.DataFrame):
            table, name = validate_measurements(item), f"<DataFrame {number}>"
        else:
            from cytosafe.io import read  # the readers are only needed for files

            table, name = read(item, sample_map=sample_map, study_id=study_id), str(item)
        claim_plates(seen, table, name)
        tables.append(table)
        sources.append(name)
    if not tables:
        raise InputError("no input files were given", expected="one or more exports")
    if sample_map is not None:
        from cytosafe.io.samples import check_map_plates

        check_map_plates(sample_map, seen)
    return validate_measurements(pd.concat(tables, ignore_index=True)), sources


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
