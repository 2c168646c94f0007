"""Sample maps: the culture metadata an instrument export does not know.

A reader knows wells, sample names, analytes and signals; it does not know which donor,
treatment and concentration each culture supernatant came from. A *sample map* supplies
that, keyed either by the sample name written in the export (``sample_id``) or by
``well``, optionally per ``plate_id``. The same function joins a plate map (keyed by well)
to a reader matrix.

Rules (each breach is an :class:`~cytosafe.errors.InputError` naming file, row and field):

* a key appears once in the map;
* every key of the map must exist in the export (a plate map naming a well the reader
  lacks is an error, not a silently dropped row);
* every well of sample type ``sample`` or ``control`` in the export must be found in the
  map (standards and blanks may be left to the reader);
* values in the map override what the reader inferred (e.g. its ``sample_type``).
"""

from __future__ import annotations

import csv
import io
import math
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cytosafe.errors import InputError
from cytosafe.io._text import decode_text
from cytosafe.io._values import locale_number_error, looks_like_locale_number
from cytosafe.schema.measurements import MEASUREMENT_COLUMNS, validate_measurements
from cytosafe.schema.wells import normalize_well

__all__ = [
    "MAP_VALUE_COLUMNS",
    "annotate",
    "check_map_plates",
    "join_sample_map",
    "read_sample_map",
]

#: Columns a sample map may set.
MAP_VALUE_COLUMNS = (
    "study_id",
    "sample_type",
    "standard_concentration",
    "donor_id",
    "treatment",
    "treatment_role",
    "treatment_concentration",
    "treatment_unit",
    "assay_format",
    "incubation_h",
    "replicate",
    "dilution_factor",
)
_KNOWN = {c.name for c in MEASUREMENT_COLUMNS}


def _check_widths(text: str, delimiter: str, file: str) -> None:
    """Every line of a text map at most as wide as its header (issue 14).

    A wider line has a cell split in two, a decimal comma in a comma-separated map
    (``2,5``) or a stray separator, which shifts its values into the wrong columns;
    pandas would take the extra cell for a row label, or drop it.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    width = None
    line = 1
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                if width is None:
                    width = len(cells)
                elif len(cells) > width:
                    raise InputError(
                        f"the line has {len(cells)} cells, the header {width}",
                        file=file,
                        row=line,
                        expected="every line as wide as the header (a value with an unquoted "
                        "separator, or a decimal comma in a comma-separated file?)",
                    )
            line = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(f"cannot be read as CSV: {exc}", file=file, row=line) from None


def read_sample_map(path: str | Path) -> pd.DataFrame:
    """Read a sample map from CSV or XLSX, keeping the file name and line of each row.

    A text map may be UTF-8 (with or without a byte-order mark), UTF-16 or Windows-1252
    (:func:`cytosafe.io._text.decode_text`), separated by commas, semicolons (a European
    Excel's CSV) or tabs, whichever its header line holds most of. Numbers are kept as
    text here and read by the schema, which refuses a decimal comma and an infinity.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=str(path))
    try:
        if path.suffix.lower() in {".xlsx", ".xlsm"}:
            table = pd.read_excel(path, dtype=str)
        else:
            text = decode_text(path.read_bytes(), file=str(path))
            header = next((ln for ln in text.splitlines() if ln.strip()), "")
            delimiter = max((",", ";", "\t"), key=header.count)
            _check_widths(text, delimiter, str(path))
            table = pd.read_csv(
                io.StringIO(text),
                sep=delimiter,
                dtype=str,
                skipinitialspace=True,
                index_col=False,  # never take a wider row's first cell for an index
            )
    except InputError:
        raise
    except Exception as exc:  # pandas and openpyxl raise many types for a damaged file
        raise InputError(f"cannot be read as a table: {exc}", file=str(path)) from None
    table.columns = [str(c).strip() for c in table.columns]
    table = table.dropna(how="all")
    table.attrs["source"] = str(path)
    table["_map_row"] = table.index + 2
    return table


def annotate(
    measurements: pd.DataFrame, sample_map: pd.DataFrame | str | Path, *, source: str | None = None
) -> pd.DataFrame:
    """Join culture metadata from ``sample_map`` onto a measurement table.

    The key is ``sample_id`` when the map has that column, otherwise ``well``; a
    ``plate_id`` column in the map narrows the key to one plate, and then rows for plates
    the table does not hold are left for the other exports of the study (see
    :func:`check_map_plates`). Every other map row must match a well of the table, and
    every sample or control must be in the map. Returns the validated measurement table
    (:func:`join_sample_map`, then validation).
    """
    if not isinstance(sample_map, pd.DataFrame):
        sample_map = read_sample_map(sample_map)
    joined = join_sample_map(measurements, sample_map, source=source)
    return validate_measurements(joined, source=source or sample_map.attrs.get("source"))


def _measurement_keys(meas: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The join keys of a (possibly not yet validated) table, as the schema writes them."""
    out = pd.DataFrame(index=meas.index)
    for key in keys:
        text = meas[key].astype(str).str.strip()
        if key == "well":
            cache: dict[str, str] = {}
            for pos, value in enumerate(text.tolist()):
                if value not in cache:
                    where: dict[str, object] = {}
                    if "source_file" in meas.columns and isinstance(
                        meas["source_file"].iat[pos], str
                    ):
                        where["file"] = meas["source_file"].iat[pos]
                    if "source_row" in meas.columns and pd.notna(meas["source_row"].iat[pos]):
                        where["row"] = int(meas["source_row"].iat[pos])
                    cache[value] = normalize_well(value, **where)
            text = text.map(cache)
        out[key] = text
    return out


#: The map's columns that hold numbers.
_NUMERIC = ("standard_concentration", "treatment_concentration", "incubation_h", "dilution_factor")


def _check_numbers(smap: pd.DataFrame, source: str | None) -> None:
    """The map's numbers, checked where they are written (its file, line and column):
    an infinity (``inf``, ``1e400``) and a decimal comma or thousands separator are
    :class:`InputError` (issue 14), not values handed on to the schema."""
    for col in _NUMERIC:
        if col not in smap.columns:
            continue
        for text, row in zip(smap[col], smap["_map_row"], strict=True):
            if not isinstance(text, str) or not text.strip():
                continue
            text = text.strip()
            if looks_like_locale_number(text):
                raise locale_number_error(text, file=source, row=int(row), field=col)
            try:
                value = float(text)
            except ValueError:
                continue  # not a number at all: the schema's message
            if not math.isfinite(value):
                raise InputError(
                    f"'{text}' is not a finite number",
                    file=source,
                    row=int(row),
                    field=col,
                    expected="a finite number",
                )


#: id(sample map) -> (a weak reference to it, its fingerprint, the source named, what
#: :func:`_prepare_map` made of it): a study's map is prepared once, not once per export
#: (issue 16, item 4). A DataFrame is not hashable, hence its id; the entry goes with the map.
_PREPARED: dict[int, tuple] = {}


def _fingerprint(sample_map: pd.DataFrame) -> tuple | None:
    """The map's columns and a hash of its cells, so that a map changed in place between two
    joins is prepared again; ``None`` (do not cache) for cells pandas cannot hash."""
    try:
        cells = pd.util.hash_pandas_object(sample_map, index=True, categorize=False)
        cells = cells.to_numpy().tobytes()
    except (TypeError, ValueError):
        return None
    return (tuple(map(str, sample_map.columns)), cells)


def _prepared_map(sample_map: pd.DataFrame, source: str | None) -> tuple:
    """:func:`_prepare_map`, once per map object and source (the same result, or error)."""
    stamp = _fingerprint(sample_map)
    cached = _PREPARED.get(id(sample_map)) if stamp is not None else None
    if (
        cached is not None
        and cached[0]() is sample_map
        and cached[1] == stamp
        and cached[2] == source
    ):
        return cached[3]
    prepared = _prepare_map(sample_map, source)
    if stamp is not None:
        if id(sample_map) not in _PREPARED:
            weakref.finalize(sample_map, _PREPARED.pop, id(sample_map), None)
        _PREPARED[id(sample_map)] = (weakref.ref(sample_map), stamp, source, prepared)
    return prepared


def _prepare_map(
    sample_map: pd.DataFrame, source: str | None
) -> tuple[pd.DataFrame, str, list[str], pd.DataFrame, list[str], list[str]]:
    """The map as :func:`join_sample_map` joins it, after its checks (empty or duplicate
    keys, wells, numbers): the checked copy, its key column, keys (with ``plate_id``), the
    frame merged onto an export (keys, values, other columns, ``_map_row``), and the names
    of the value and other columns. Nothing returned is changed afterwards."""
    smap = sample_map.copy()
    if "_map_row" not in smap.columns:
        smap["_map_row"] = np.arange(len(smap)) + 2
    if "sample_id" in smap.columns:
        key = "sample_id"
    elif "well" in smap.columns:
        key = "well"
    else:
        raise InputError(
            "a sample map needs a 'sample_id' or a 'well' column",
            file=source,
            expected="a key column",
        )
    unknown = [
        c
        for c in smap.columns
        if c not in (*MAP_VALUE_COLUMNS, key, "plate_id", "_map_row") and c not in _KNOWN
    ]
    keys = [key] + (["plate_id"] if "plate_id" in smap.columns else [])

    for col in keys:
        empty = smap[col].isna() | (smap[col].astype(str).str.strip() == "")
        if empty.any():
            raise InputError(
                "key is empty", file=source, row=int(smap["_map_row"][empty].iloc[0]), field=col
            )
        smap[col] = smap[col].astype(str).str.strip()
    if key == "well":
        smap["well"] = [
            normalize_well(w, file=source, row=int(r))
            for w, r in zip(smap["well"], smap["_map_row"], strict=True)
        ]
    _check_numbers(smap, source)
    dup = smap.duplicated(keys, keep="first")
    if dup.any():
        row = smap[dup].iloc[0]
        raise InputError(
            f"{key} '{row[key]}' appears more than once in the sample map",
            file=source,
            row=int(row["_map_row"]),
            field=key,
            expected="one row per " + " x ".join(keys),
        )

    values = [c for c in smap.columns if c in MAP_VALUE_COLUMNS]
    extra = [c for c in unknown if c != "_map_row"]
    # What the join merges: a text cell that is empty or blank supplies nothing, so it is
    # NaN here, found once for the study instead of once per export and column.
    right = smap[[*keys, *values, *extra, "_map_row"]].copy()
    for col in [*values, *extra]:
        if right[col].dtype != object:
            continue  # a number, flag or date is never blank text
        cells = right[col].to_numpy(dtype=object, copy=True)
        blank = ~(pd.notna(cells) & (right[col].astype(str).str.strip() != "").to_numpy())
        cells[blank] = np.nan
        right[col] = cells
    return smap, key, keys, right, values, extra


def join_sample_map(
    measurements: pd.DataFrame,
    sample_map: pd.DataFrame | str | Path,
    *,
    source: str | None = None,
    exports: Sequence[int] | None = None,
) -> pd.DataFrame:
    """:func:`annotate`'s join, without validating the result.

    For :func:`cytosafe.io.reader.finish`, which validates once after the join, so that a
    map can supply what a reader's raw table lacks (a standard's concentration). The keys of
    the measurement table are compared as the schema writes them (wells as ``A01``).

    ``exports``: the numbers of rows of the exports ``measurements`` joins end to end, in
    order (default: one export). Each is checked against the map as if joined alone; the
    rows are joined as one (:func:`cytosafe.quantification.load_measurements`: nine MSD
    exports joined one by one cost 0.07 s of CPU, at once 0.02 s). Joining each export
    alone gives the same rows, and the same first error where only one export is in error.
    """
    if not isinstance(sample_map, pd.DataFrame):
        sample_map = read_sample_map(sample_map)
    source = source or sample_map.attrs.get("source")
    smap, key, keys, right, values, extra = _prepared_map(sample_map, source)

    meas = measurements.copy()
    meas_keys = _measurement_keys(meas, keys)
    start = 0
    for rows in [len(meas)] if exports is None else exports:
        part = slice(start, start + rows)
        start += rows
        present = set(map(tuple, meas_keys.iloc[part].drop_duplicates().to_numpy().tolist()))
        # A study-wide map annotates one export at a time: rows for plates this export
        # does not hold are for other exports (check_map_plates confirms, once every export
        # is read, that each plate of the map was found in one).
        if "plate_id" in keys:
            held = set(meas["plate_id"].iloc[part].astype(str))
            smap_here = smap[smap["plate_id"].isin(held)]
        else:
            smap_here = smap
        for row in smap_here[[*keys, "_map_row"]].itertuples(index=False):
            if tuple(row[: len(keys)]) not in present:
                where = " on plate '" + row[1] + "'" if len(keys) > 1 else ""
                raise InputError(
                    f"the sample map names {key} '{row[0]}'{where}, which the export does not "
                    "contain",
                    file=source,
                    row=int(row[-1]),
                    field=key,
                )
    if exports is not None and start != len(meas):
        raise ValueError(f"exports of {start} rows in all for a table of {len(meas)}")

    joined = meas_keys.merge(right, on=keys, how="left")
    found = joined["_map_row"].notna().to_numpy()
    needs = (
        meas["sample_type"]
        .astype(str)
        .str.strip()
        .str.lower()
        .isin(["sample", "control"])
        .to_numpy(copy=True)
    )
    if "sample_type" in values:
        mapped_type = joined["sample_type"].astype(str).str.lower().to_numpy()
        needs |= np.isin(mapped_type, ["sample", "control"])
    lacking = needs & ~found
    if lacking.any():
        pos = int(np.flatnonzero(lacking)[0])
        label = meas[key].iat[pos]
        raise InputError(
            f"{meas['sample_type'].iat[pos]} {key} '{label}' (analyte {meas['analyte'].iat[pos]}) is not in the sample map",
            file=source,
            well=str(meas["well"].iat[pos]),
            field=key,
            expected="a sample-map row for every sample and control",
        )
    for col in [*values, *extra]:
        mapped = joined[col].to_numpy()
        has = found & pd.notna(mapped)  # blank text is NaN in the prepared map
        if col not in meas.columns:
            meas[col] = np.nan
        base = meas[col].astype(object).to_numpy(copy=True)
        base[has] = mapped[has]
        meas[col] = base
    return meas


def check_map_plates(sample_map: pd.DataFrame | str | Path, plates) -> None:
    """Check that every plate a study-wide sample map names was among the exports read.

    :func:`annotate` applies a map with a ``plate_id`` column one export at a time and
    leaves the rows of other plates alone; after the last export this names the first map
    row whose plate none of them held (a typo in a plate id, or a forgotten file).
    """
    if not isinstance(sample_map, pd.DataFrame):
        sample_map = read_sample_map(sample_map)
    if "plate_id" not in sample_map.columns:
        return
    rows = sample_map["_map_row"] if "_map_row" in sample_map.columns else None
    seen = {str(p) for p in plates}
    ids = sample_map["plate_id"].astype(str).str.strip()
    missing = ~ids.isin(seen) & sample_map["plate_id"].notna()
    if missing.any():
        pos = int(np.flatnonzero(missing.to_numpy())[0])
        raise InputError(
            f"the sample map names plate '{ids.iat[pos]}', which none of the exports holds",
            file=sample_map.attrs.get("source"),
            row=int(rows.iat[pos]) if rows is not None else pos + 2,
            field="plate_id",
            expected="plates among: " + ", ".join(sorted(seen)),
        )
