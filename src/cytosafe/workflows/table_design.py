"""The study design carried by a tidy measurement table's own columns.

``cytosafe analyze`` takes either a study file (TOML) or a tidy table whose sample rows
say what each culture was: ``treatment``, ``treatment_role`` (test | negative_control |
vehicle | isotype_control | positive_control), ``treatment_concentration``,
``treatment_unit``, ``assay_format`` and, when the study has several negative controls,
a ``matched_control`` (or ``negative_control``) column naming the control each
treatment is compared with. :func:`design_from_tidy` reads the design off those columns
as :func:`cytosafe.hazard.design.design_from_table` does, and checks first that the
columns agree with each other: every inconsistency is an :class:`InputError` naming the
file, the row and the column, so the scientist can correct the table they wrote.

Roles, matched controls and the rule that a design needs a negative control are those of
the study file (:mod:`cytosafe.hazard.design`), which cites them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from cytosafe.errors import InputError
from cytosafe.hazard.design import HazardSettings, StudyDesign, design_from_table
from cytosafe.schema.measurements import TREATMENT_ROLES

__all__ = [
    "DESIGN_COLUMNS",
    "MATCHED_CONTROL_COLUMNS",
    "design_from_file",
    "design_from_tidy",
    "has_design_columns",
]

#: The columns a tidy table carries its design in (all but the matched control required).
DESIGN_COLUMNS = (
    "treatment",
    "treatment_role",
    "treatment_concentration",
    "treatment_unit",
    "assay_format",
)
#: Names of the optional column naming each treatment's matched negative control.
MATCHED_CONTROL_COLUMNS = ("matched_control", "negative_control")
_CONTROLS = ("negative_control", "vehicle")


def has_design_columns(table: pd.DataFrame) -> bool:
    """Whether ``table`` carries a design: a treatment and its role on its sample rows."""
    if not {"treatment", "treatment_role"} <= set(table.columns):
        return False
    samples = table[table["sample_type"].astype(str) == "sample"]
    return bool(len(samples)) and samples["treatment_role"].notna().any()


def _where(rows: pd.DataFrame, file: str | None) -> dict:
    """File and 1-based row of the first of ``rows`` (the reader's ``source_row``, else
    the table line: header first)."""
    first = rows.iloc[0]
    row = first.get("source_row")
    if row is None or pd.isna(row):
        row = int(rows.index[0]) + 2
    source = first.get("source_file")
    source = source if isinstance(source, str) and source else file
    return {"file": None if source is None else Path(source).name, "row": int(row)}


def _text(series: pd.Series) -> pd.Series:
    return (
        series.astype(object)
        .where(series.notna(), None)
        .map(lambda v: None if v is None or str(v).strip() == "" else str(v).strip())
    )


def design_from_tidy(
    table: pd.DataFrame,
    *,
    file: str | None = None,
    settings: HazardSettings | None = None,
    study_id: str | None = None,
) -> StudyDesign:
    """The design of a validated tidy measurement table, read off its columns.

    Parameters
    ----------
    table:
        The measurement table (:func:`cytosafe.quantification.load_measurements`).
    file:
        Where it came from, for errors when rows have no ``source_file``.
    settings:
        The hazard step's settings (default :class:`HazardSettings`).

    Raises
    ------
    InputError
        Naming the file, row and column: a design column missing; a sample row without
        a treatment or role; a treatment with two roles, two units or two matched
        controls; a matched control that is not a treatment of the table or not a
        negative control or vehicle; no negative control; several negative controls and a
        treatment that does not say which it is matched to.
    """
    missing = [c for c in DESIGN_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"the table has no {', '.join(missing)} column",
            file=file,
            field=missing[0],
            expected="the design columns " + ", ".join(DESIGN_COLUMNS),
        )
    samples = table[table["sample_type"].astype(str) == "sample"].copy()
    if samples.empty:
        raise InputError(
            "the table has no study samples",
            file=file,
            field="sample_type",
            expected="rows with sample_type 'sample'",
        )
    for column in ("treatment", "treatment_role"):
        samples[column] = _text(samples[column])
        empty = samples[samples[column].isna()]
        if len(empty):
            raise InputError(
                f"a sample row without a {column}",
                field=column,
                expected=f"a {column} on every sample row",
                **_where(empty, file),
            )
    matched = next((c for c in MATCHED_CONTROL_COLUMNS if c in samples.columns), None)
    if matched is not None:
        samples[matched] = _text(samples[matched])
    samples["treatment_unit"] = _text(samples["treatment_unit"])

    roles: dict[str, str] = {}
    controls: dict[str, str] = {}
    for name, rows in samples.groupby("treatment", sort=False):
        for column in ("treatment_role", "treatment_unit", *([matched] if matched else [])):
            values = rows[column].dropna()
            distinct = list(dict.fromkeys(values))
            if len(distinct) > 1:
                other = rows[rows[column] == distinct[1]]
                raise InputError(
                    f"treatment '{name}' has {column} '{distinct[0]}' on some rows and "
                    f"'{distinct[1]}' on others",
                    field=column,
                    expected=f"one {column} per treatment",
                    **_where(other, file),
                )
        role = rows["treatment_role"].iloc[0]
        if role not in TREATMENT_ROLES:
            raise InputError(
                f"unknown role '{role}' of treatment '{name}'",
                field="treatment_role",
                expected=" | ".join(TREATMENT_ROLES),
                **_where(rows, file),
            )
        roles[str(name)] = role
        if matched is not None and rows[matched].notna().any():
            controls[str(name)] = rows[matched].dropna().iloc[0]

    for name, control in controls.items():
        rows = samples[samples["treatment"] == name]
        if control == name and roles[name] in _CONTROLS:
            continue  # a control named as its own: nothing to match
        if control not in roles:
            raise InputError(
                f"matched control '{control}' of '{name}' is not a treatment of the table",
                field=matched,
                expected=" | ".join(n for n, r in roles.items() if r in _CONTROLS)
                or "a treatment with role negative_control or vehicle",
                **_where(rows, file),
            )
        if roles[control] not in _CONTROLS:
            raise InputError(
                f"matched control '{control}' of '{name}' has role '{roles[control]}'",
                field=matched,
                expected="a treatment with role negative_control or vehicle",
                **_where(rows, file),
            )
    negatives = [n for n, r in roles.items() if r == "negative_control"]
    if not negatives:
        raise InputError(
            "the design has no negative control: responses cannot be computed",
            file=file,
            field="treatment_role",
            expected="samples with treatment_role 'negative_control' (e.g. medium)",
        )
    if len(negatives) > 1:
        for name, role in roles.items():
            if role != "negative_control" and name not in controls:
                rows = samples[samples["treatment"] == name]
                raise InputError(
                    f"treatment '{name}' does not say which of the negative controls "
                    f"{', '.join(negatives)} it is matched to",
                    field=matched or MATCHED_CONTROL_COLUMNS[0],
                    expected="a matched_control column naming its negative control",
                    **_where(rows, file),
                )

    design = design_from_table(table, settings=settings, study_id=study_id)
    treatments = {
        name: dataclasses.replace(
            t,
            negative_control=(
                controls[name] if name in controls and controls[name] != name else None
            ),
        )
        for name, t in design.treatments.items()
    }
    return dataclasses.replace(
        design, treatments=treatments, source=f"the design columns of {file or 'the table'}"
    )


def design_from_file(
    path: str | Path, *, sample_map=None, settings: HazardSettings | None = None
) -> StudyDesign:
    """Read a tidy measurement table (CSV/XLSX, with an optional sample map) and return
    the design its columns carry (:func:`design_from_tidy`)."""
    from cytosafe.quantification import load_measurements

    path = Path(path)
    table, _ = load_measurements([path], sample_map=sample_map)
    return design_from_tidy(table, file=path.name, settings=settings)
