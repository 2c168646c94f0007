"""The tidy measurement table: one row per well x analyte.

This is the contract between every reader (``cytosafe.io``) and every analysis stage
(``cytosafe.curves``, later ``cytosafe.hazard``). A reader's only job is to produce it;
:func:`validate_measurements` checks it and returns a normalised copy (canonical column
order and dtypes, wells as ``A01``), or raises :class:`~cytosafe.errors.SchemaError` naming
the file, row or well and field.

Two kinds of "control" are kept apart on purpose:

* ``sample_type`` is the role of the *well in the immunoassay*: a calibrator
  (``standard``), an assay ``blank`` (zero calibrator / background), a kit quality
  ``control`` with an expected concentration, or a ``sample`` (a culture supernatant or
  plasma to be quantified).
* ``treatment_role`` is the role of the *culture condition* a sample came from in the
  cytokine release assay: the ``test`` article, the ``negative_control`` (medium), the
  ``vehicle``, the ``isotype_control`` or a ``positive_control`` (e.g. anti-CD3).

Units of the analyte's concentrations (:data:`CONCENTRATION_UNIT_COLUMN`,
``concentration_unit``): a standard's nominal concentration, a control's expected value and
every concentration calibrated from them are in the unit of their plate x analyte curve.
A mass unit is converted to pg/mL on validation (``standard_concentration`` and the
readers' ``vendor_concentration``, :data:`CONVERTED_COLUMNS`); an arbitrary or activity
unit (IU/mL, U/mL, AU/mL, ... :data:`cytosafe.schema.units.ARBITRARY_UNITS`) is kept as
written, labelled with its canonical spelling, and never taken for pg/mL. A row without a
unit takes its curve's; a curve that states none is in pg/mL; one curve in two units is
an error naming the plate, analyte and row. The column is held after the schema's
columns, as the first of the extras (the store keeps the schema's columns as they are),
and is always present in a validated table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cytosafe.errors import InputError, SchemaError, UnitError
from cytosafe.schema.units import CONCENTRATION_UNIT, analyte_unit, canonical_unit
from cytosafe.schema.wells import normalize_well

__all__ = [
    "CONCENTRATION_UNIT_COLUMN",
    "CONVERTED_COLUMNS",
    "MEASUREMENT_COLUMNS",
    "SAMPLE_TYPES",
    "TREATMENT_ROLES",
    "Column",
    "curve_units",
    "to_numbers",
    "validate_measurements",
]

SAMPLE_TYPES = ("standard", "blank", "sample", "control")
TREATMENT_ROLES = ("test", "negative_control", "vehicle", "isotype_control", "positive_control")


@dataclass(frozen=True)
class Column:
    """One column of the tidy table: its name, kind, whether required, and meaning."""

    name: str
    kind: str  # "str", "float", "int", "category"
    required: bool
    description: str


MEASUREMENT_COLUMNS: tuple[Column, ...] = (
    Column("study_id", "str", True, "Study identifier."),
    Column("plate_id", "str", True, "Assay plate identifier (unique within the study)."),
    Column("well", "str", True, "Plate well, normalised to A01."),
    Column("analyte", "str", True, "Cytokine measured (e.g. IL-6)."),
    Column("sample_type", "category", True, "standard | blank | sample | control."),
    Column(
        "standard_concentration",
        "float",
        False,
        "Nominal calibrator concentration (standards; controls' expected value), in "
        "concentration_unit: pg/mL, or an arbitrary unit kept as written.",
    ),
    Column("donor_id", "str", False, "Blood donor of the culture."),
    Column("treatment", "str", False, "Culture condition / test article name."),
    Column(
        "treatment_role",
        "category",
        False,
        "test | negative_control | vehicle | isotype_control | positive_control.",
    ),
    Column(
        "treatment_concentration", "float", False, "Concentration of the treatment in the culture."
    ),
    Column("treatment_unit", "str", False, "Unit of treatment_concentration (e.g. ug/mL, nM)."),
    Column("assay_format", "str", False, "CRA format (e.g. whole_blood, pbmc_aqueous)."),
    Column("incubation_h", "float", False, "Culture incubation time, hours."),
    Column("replicate", "int", False, "Replicate number within a sample/standard level (1-based)."),
    Column("signal", "float", True, "Raw reader signal (ECL counts, median FI, OD); non-negative."),
    Column(
        "dilution_factor",
        "float",
        False,
        "Dilution of the sample before the immunoassay (>= 1; 1 = neat).",
    ),
    Column(
        "exclude",
        "bool",
        False,
        "Leave this standard or blank out of the curve fit (a suspect value); it is still reported.",
    ),
    Column("sample_id", "str", False, "Sample name as written in the instrument export."),
    Column(
        "bead_count",
        "float",
        False,
        "Beads counted for the analyte in the well (bead-based readers).",
    ),
    Column("source_file", "str", False, "File the row was read from."),
    Column("source_row", "int", False, "1-based line of the row in its source file."),
)

#: The unit of the analyte's concentrations (module notes). Held beside the schema's
#: columns, as the first extra, in every validated table.
CONCENTRATION_UNIT_COLUMN = Column(
    "concentration_unit",
    "str",
    False,
    "Unit of standard_concentration and of every concentration calibrated from it: pg/mL "
    "(mass units are converted), or an arbitrary unit such as IU/mL kept as written.",
)

#: The columns converted to pg/mL from a mass ``concentration_unit`` (``vendor_concentration``
#: is the readers' extra: the vendor's result, in the unit of the curve).
CONVERTED_COLUMNS = ("standard_concentration", "vendor_concentration")

_BY_NAME = {c.name: c for c in MEASUREMENT_COLUMNS}
REQUIRED = tuple(c.name for c in MEASUREMENT_COLUMNS if c.required)


def _where(df: pd.DataFrame, pos: int, source: str | None) -> dict[str, object]:
    """Location of positional row ``pos`` for an error message."""
    where: dict[str, object] = {}
    file = source
    if "source_file" in df.columns and isinstance(df["source_file"].iat[pos], str):
        file = df["source_file"].iat[pos]
    if file:
        where["file"] = file
    if "source_row" in df.columns and pd.notna(df["source_row"].iat[pos]):
        where["row"] = int(df["source_row"].iat[pos])
    else:
        where["row"] = pos + 2  # a CSV's header is line 1
    if "well" in df.columns and isinstance(df["well"].iat[pos], str):
        where["well"] = df["well"].iat[pos]
    return where


def _fail(
    df: pd.DataFrame, bad: np.ndarray, source: str | None, field: str, message: str, expected: str
) -> None:
    positions = np.flatnonzero(bad)
    if positions.size == 0:
        return
    pos = int(positions[0])
    more = f" ({positions.size - 1} more rows like it)" if positions.size > 1 else ""
    value = df[field].iat[pos] if field in df.columns else None
    raise SchemaError(
        message.format(value=value) + more,
        field=field,
        expected=expected,
        **_where(df, pos, source),
    )


def _exact(text: str, fallback: float) -> float:
    try:
        return float(text)
    except ValueError:  # a spelling pandas reads and Python does not: pandas' value
        return fallback


def to_numbers(values: pd.Series) -> pd.Series:
    """``pd.to_numeric(values, errors="coerce")``, with every number written as text read
    exactly.

    pandas 2 converts text with its own fast routine, which may miss the nearest double by
    a unit in the last place (``"0.0010000000000000002"`` reads as ``0.001``); Python's
    ``float`` rounds correctly (as pandas 3 does), so a number written with its shortest
    ``repr`` reads back as the same double whatever the pandas version. What is and is not
    a number is pandas' decision; only the values of text cells are recomputed.

    >>> to_numbers(pd.Series(["0.0010000000000000002", "x", None], dtype=object)).tolist()
    [0.0010000000000000002, nan, nan]
    """
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.dtype.kind != "f" or values.dtype.kind in "biufcmM":
        return numbers  # integers are exact; numeric input was never text
    raw = values.to_numpy(dtype=object)
    text = np.fromiter((isinstance(v, str) for v in raw), dtype=bool, count=len(raw))
    fix = np.flatnonzero(text & numbers.notna().to_numpy())
    if fix.size == 0:
        return numbers
    if numbers.dtype != np.float64:  # a nullable Float64 from pandas' string dtype
        out = numbers.copy()
        out.iloc[fix] = [_exact(raw[i], float(numbers.iat[i])) for i in fix]
        return out
    exact = numbers.to_numpy(dtype=np.float64, copy=True)
    try:  # NumPy casts each text with Python's float: the same double, in one call
        exact[fix] = raw[fix].astype(np.float64)
    except (ValueError, TypeError):
        exact[fix] = [_exact(raw[i], exact[i]) for i in fix]
    return pd.Series(exact, index=numbers.index, name=numbers.name)


def _numeric(df: pd.DataFrame, name: str, source: str | None) -> pd.Series:
    raw = df[name]
    values = to_numbers(raw)
    # Only cells that are present and read as no number are looked at as text (none in a
    # numeric column).
    odd = np.flatnonzero((values.isna() & raw.notna()).to_numpy())
    text_bad = np.zeros(len(raw), dtype=bool)
    comma = np.zeros(len(raw), dtype=bool)
    if odd.size:
        text = raw.iloc[odd].astype(str).str.strip()
        text_bad[odd] = (text != "").to_numpy()
        # A decimal comma or a thousands separator is named as such: the number is
        # refused, never guessed (issue 14: a European export misread is worse than one
        # refused).
        comma[odd] = text_bad[odd] & text.str.fullmatch(r"[+-]?\d[\d.,']*,\d*").to_numpy(
            dtype=bool, na_value=False
        )
    _fail(
        df,
        comma,
        source,
        name,
        "'{value}' is written with a decimal comma or a thousands separator",
        "a number with a decimal point and no thousands separator (e.g. 1234.5)",
    )
    _fail(df, text_bad, source, name, "'{value}' is not a number", "a number")
    values = values.astype(float)
    # An infinity (``inf``, or ``1e400``, which overflows a double) is never a measurement.
    _fail(
        df,
        np.isinf(values.to_numpy()),
        source,
        name,
        "'{value}' is not a finite number",
        "a finite number",
    )
    return values


def validate_measurements(df: pd.DataFrame, *, source: str | None = None) -> pd.DataFrame:
    """Check a measurement table against the contract and return a normalised copy.

    Parameters
    ----------
    df:
        Table with at least the required columns (``study_id, plate_id, well, analyte,
        sample_type, signal``); the optional columns of :data:`MEASUREMENT_COLUMNS` are
        added empty when absent; any other column (a reader extra) is kept after them.
    source:
        File name for error messages when the table has no ``source_file`` column.

    Raises
    ------
    SchemaError
        Naming file, row (``source_row`` when present), well and field of the first
        offending row, with the number of further rows that share the problem.
    """
    if not isinstance(df, pd.DataFrame):
        raise SchemaError("a measurement table must be a pandas DataFrame", file=source)
    out = df.copy()
    missing = [c for c in REQUIRED if c not in out.columns]
    if missing:
        raise SchemaError(
            "missing required column(s): " + ", ".join(missing),
            file=source,
            expected="columns " + ", ".join(REQUIRED),
        )
    if out.empty:
        raise SchemaError("the table has no rows", file=source)
    for col in MEASUREMENT_COLUMNS:
        if col.name not in out.columns:
            out[col.name] = np.nan
    out = out.reset_index(drop=True)

    for name in ("study_id", "plate_id", "analyte"):
        blank = out[name].isna() | (out[name].astype(str).str.strip() == "")
        _fail(out, blank.to_numpy(), source, name, "value is empty", "a non-empty identifier")
        out[name] = out[name].astype(str).str.strip()

    # Wells: normalised one distinct value at a time (a plate has at most 384).
    cache: dict[object, str] = {}
    wells = []
    for pos, value in enumerate(out["well"].tolist()):
        if value not in cache:
            try:
                cache[value] = normalize_well(value)
            except InputError as exc:
                raise SchemaError(
                    exc.message, field="well", expected=exc.expected, **_where(out, pos, source)
                ) from None
        wells.append(cache[value])
    out["well"] = wells

    stype = out["sample_type"].astype(str).str.strip().str.lower()
    _fail(
        out,
        (~stype.isin(SAMPLE_TYPES)).to_numpy(),
        source,
        "sample_type",
        "unknown sample type '{value}'",
        " | ".join(SAMPLE_TYPES),
    )
    out["sample_type"] = pd.Categorical(stype, categories=SAMPLE_TYPES)

    # As objects: a table validated before holds a categorical, into which pandas 2 cannot
    # write the stripped text (pandas 3 converts silently).
    role = out["treatment_role"].astype(object)
    has_role = role.notna() & (role.astype(str).str.strip() != "")
    role_text = role.where(~has_role, role.astype(str).str.strip().str.lower())
    _fail(
        out,
        (has_role & ~role_text.isin(TREATMENT_ROLES)).to_numpy(),
        source,
        "treatment_role",
        "unknown treatment role '{value}'",
        " | ".join(TREATMENT_ROLES),
    )
    out["treatment_role"] = pd.Categorical(role_text.where(has_role), categories=TREATMENT_ROLES)

    signal = _numeric(out, "signal", source)
    _fail(
        out,
        signal.isna().to_numpy(),
        source,
        "signal",
        "signal is missing",
        "a non-negative number",
    )
    _fail(
        out,
        (~np.isfinite(signal) | (signal < 0)).to_numpy(),
        source,
        "signal",
        "signal {value} is negative or not finite",
        "a non-negative number",
    )
    out["signal"] = signal

    for name in ("standard_concentration", "treatment_concentration", "incubation_h", "bead_count"):
        values = _numeric(out, name, source)
        _fail(
            out,
            (values < 0).to_numpy(),
            source,
            name,
            "{value} is negative",
            "a non-negative number",
        )
        out[name] = values
    dil = _numeric(out, "dilution_factor", source).fillna(1.0)
    _fail(
        out,
        (dil <= 0).to_numpy(),
        source,
        "dilution_factor",
        "dilution factor {value} is not positive",
        "a number > 0 (1 = neat)",
    )
    out["dilution_factor"] = dil

    is_std = (out["sample_type"] == "standard").to_numpy()
    _fail(
        out,
        is_std & out["standard_concentration"].isna().to_numpy(),
        source,
        "standard_concentration",
        "a standard has no nominal concentration",
        "a concentration in the curve's unit (concentration_unit, default pg/mL)",
    )
    _fail(
        out,
        is_std & (out["standard_concentration"] <= 0).to_numpy(),
        source,
        "standard_concentration",
        "a standard's nominal concentration is {value}",
        "a concentration > 0; use sample_type 'blank' for the zero calibrator",
    )

    raw_ex = out["exclude"]
    text = raw_ex.astype(object).where(raw_ex.notna(), "false").astype(str).str.strip().str.lower()
    truthy, falsy = (
        {"true", "1", "1.0", "yes", "y", "x"},
        {"false", "0", "0.0", "no", "n", "", "nan", "none"},
    )
    _fail(
        out,
        (~text.isin(truthy | falsy)).to_numpy(),
        source,
        "exclude",
        "'{value}' is not true or false",
        "true/false, yes/no or 1/0",
    )
    out["exclude"] = text.isin(truthy).to_numpy()

    rep = _numeric(out, "replicate", source)
    _fail(
        out,
        (rep.notna() & ((rep < 1) | (rep != np.round(rep)))).to_numpy(),
        source,
        "replicate",
        "replicate '{value}' is not a positive whole number",
        "1, 2, 3, ...",
    )
    out["replicate"] = rep.astype("Int64")
    out["source_row"] = _numeric(out, "source_row", source).astype("Int64")

    units = out["treatment_unit"]
    has_unit = units.notna() & (units.astype(str).str.strip() != "")
    canon: dict[object, str] = {}
    for pos in np.flatnonzero(has_unit.to_numpy()):
        value = units.iat[pos]
        if value not in canon:
            try:
                canon[value] = canonical_unit(value)
            except UnitError as exc:
                raise exc.located(field="treatment_unit", **_where(out, int(pos), source)) from None
    out["treatment_unit"] = units.map(
        lambda v: canon.get(v, np.nan) if isinstance(v, str) else np.nan
    )
    needs_unit = out["treatment_concentration"].gt(0) & ~has_unit
    _fail(
        out,
        needs_unit.to_numpy(),
        source,
        "treatment_unit",
        "a treatment concentration has no unit",
        "a unit such as ug/mL or nM",
    )

    out = _concentration_units(out, source)

    for name in ("donor_id", "treatment", "assay_format", "sample_id", "source_file"):
        col = out[name]
        out[name] = col.where(col.isna(), col.astype(str).str.strip()).replace("", np.nan)

    key = ["plate_id", "well", "analyte"]
    dup = out.duplicated(key, keep="first").to_numpy()
    if dup.any():
        pos = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero((out[key] == out.loc[pos, key]).all(axis=1).to_numpy())[0])
        raise SchemaError(
            f"duplicate well: plate '{out['plate_id'].iat[pos]}', analyte '{out['analyte'].iat[pos]}' "
            f"already has a value in this well (first at row {_where(out, first, source)['row']})",
            field="well",
            expected="one row per plate x well x analyte",
            **_where(out, pos, source),
        )

    canonical = [c.name for c in MEASUREMENT_COLUMNS]
    unit = CONCENTRATION_UNIT_COLUMN.name
    extras = [c for c in out.columns if c not in _BY_NAME and c != unit]
    return out[[*canonical, unit, *extras]]


def _concentration_units(out: pd.DataFrame, source: str | None) -> pd.DataFrame:
    """``concentration_unit`` canonical, mass units converted to pg/mL, one unit per curve
    (module notes)."""
    name = CONCENTRATION_UNIT_COLUMN.name
    raw = out[name] if name in out.columns else pd.Series(np.nan, index=out.index)
    text = raw.astype(object).where(raw.notna(), "").astype(str).str.strip()
    declared = (text != "").to_numpy()
    stored = np.full(len(out), None, dtype=object)
    factors = np.ones(len(out))
    known: dict[str, tuple[str, float]] = {}
    if declared.any():
        firsts = text[declared].drop_duplicates()
        for pos, value in firsts.items():
            try:
                known[value] = analyte_unit(value)
            except UnitError as exc:
                raise exc.located(field=name, **_where(out, int(pos), source)) from None
        pairs = text[declared].map(known)
        stored[declared] = [u for u, _ in pairs]
        factors[declared] = [f for _, f in pairs]
    if (factors != 1.0).any():
        for column in CONVERTED_COLUMNS:
            if column not in out.columns:
                continue
            values = to_numbers(out[column]).astype(float)
            if values.notna().sum() == out[column].notna().sum():
                out[column] = values * factors
            else:  # text that is not a number is left as it is, for its own check
                ok = values.notna().to_numpy()
                col = out[column].astype(object).copy()
                col[ok] = (values[ok] * factors[ok]).to_numpy()
                out[column] = col
    key = ["study_id", "plate_id", "analyte"]
    units = pd.Series(stored, index=out.index)
    if declared.any() and declared.all() and len(known) == 1:
        pass  # every row states the same unit: no curve can mix units, none lacks one
    elif declared.any():
        said = out.loc[declared, key].assign(_unit=units[declared])
        curve_unit = said.groupby(key, sort=False)["_unit"].first()
        expected = curve_unit.reindex(pd.MultiIndex.from_frame(said[key])).to_numpy()
        clash = said["_unit"].to_numpy() != expected
        if clash.any():
            pos = int(said.index[np.flatnonzero(clash)[0]])
            study, plate, analyte = (out[k].iat[pos] for k in key)
            first = int(said.index[(said[key] == [study, plate, analyte]).all(axis=1)][0])
            raise SchemaError(
                f"plate '{plate}', analyte '{analyte}' has concentrations in "
                f"'{units.iat[first]}' (row {_where(out, first, source)['row']}) and in "
                f"'{units.iat[pos]}': one curve cannot mix units",
                field=name,
                expected="one concentration unit per plate x analyte (mass units are "
                "converted to pg/mL; arbitrary units such as IU/mL are kept as written)",
                **_where(out, pos, source),
            )
        filled = curve_unit.reindex(pd.MultiIndex.from_frame(out[key])).to_numpy()
        units = pd.Series(np.where(declared, stored, filled), index=out.index)
    out[name] = units.where(units.notna(), CONCENTRATION_UNIT).astype(object)
    return out


def curve_units(table: pd.DataFrame) -> pd.DataFrame:
    """The concentration unit of each curve of a table (measurements, calibrated wells or
    samples): one row per ``study_id`` x ``plate_id`` x ``analyte`` with its
    ``concentration_unit`` (pg/mL where the table has no such column, as validation
    reads a table without one).

    >>> t = pd.DataFrame({"study_id": "S", "plate_id": "P", "analyte": ["IL-6", "IL-2"],
    ...                   "concentration_unit": ["pg/mL", "IU/mL"]})
    >>> curve_units(t)["concentration_unit"].tolist()
    ['pg/mL', 'IU/mL']
    """
    key = ["study_id", "plate_id", "analyte"]
    name = CONCENTRATION_UNIT_COLUMN.name
    out = table[[*key, *([name] if name in table.columns else [])]].drop_duplicates(key)
    if name not in out.columns:
        out = out.assign(**{name: CONCENTRATION_UNIT})
    out[name] = out[name].astype(object).where(out[name].notna(), CONCENTRATION_UNIT)
    return out.reset_index(drop=True)
