"""The state table: one row per patient x observation time, every state carried forward.

Built from a validated observation table with NumPy only (no per-patient loop): the
(patient, time) pairs are factorised into rows, each item into a column, and states are
carried forward within each patient by a running maximum of "last seen" row indices
(:func:`carry_forward`). Rows are sorted by patient, then time; ``start`` gives, for every
row, the index of its patient's first row, which the group-wise helpers below use.

What holds and what does not is documented in :mod:`cytosafe.clinical.observations`:
states hold until the next observation of the same item; events (treatments, boluses,
infusion, death) exist at their own time only.

**Baseline.** Rows before a charted infusion (negative hours) are the patient's baseline.
Nothing carries from the baseline across the infusion: ``start`` begins a new segment at
the first row at or after hour 0, so every state, running flag (a prior fever, a
treatment) and run length after the infusion is built from post-infusion observations
only. ASTCT 2019 (Lee et al., Biol Blood Marrow Transplant 2019;25:625-638) defines CRS
as a syndrome *after* an immune effector cell therapy; a fever before it is not CRS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cytosafe.schema.observations import ITEMS, LAB_ITEMS, VASOPRESSORS

__all__ = [
    "States",
    "build_states",
    "carry_forward",
    "group_cumany",
    "group_cumsum",
    "quiet_breaks",
    "run_hours",
    "window_count",
]

_STATE_ITEMS = (
    "temperature",
    "systolic_bp",
    "spo2",
    "oxygen_device",
    "oxygen_flow",
    "fio2",
    *VASOPRESSORS,
    "ice_score",
    "consciousness",
    "seizure",
    "motor_findings",
    "raised_icp",
)
_CRS_CAUSES = ("crs", "cytokine release syndrome", "cytokine-release syndrome")


@dataclass
class States:
    """Arrays of equal length, one element per patient x time (sorted by patient, time).

    ``values[item]`` is the carried-forward state of a state item (NaN before the first
    observation; vasopressor rates 0 before theirs) or, for an event item, its value at
    that exact time (NaN when none).
    """

    patient_id: np.ndarray
    patient_code: np.ndarray
    time: np.ndarray  # datetime64[ns]
    hours: np.ndarray  # since infusion (since the first observation when none)
    start: np.ndarray  # index of the first row of the row's segment (baseline / after infusion)
    values: dict[str, np.ndarray]
    observed: dict[str, np.ndarray]  # the item was observed at this exact row
    death_crs: np.ndarray  # death due to CRS at this row
    death_other: np.ndarray
    has_infusion: np.ndarray
    weight_assumed: np.ndarray
    baseline: np.ndarray  # before the charted infusion (never graded)
    first: np.ndarray  # the row is its patient's first

    def __len__(self) -> int:
        return len(self.time)


def carry_forward(values: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Last non-NaN value at or before each row, within each patient (NaN before the first)."""
    n = len(values)
    idx = np.arange(n)
    valid = ~np.isnan(values)
    first_row = idx == start
    src = np.where(valid | first_row, idx, 0)
    np.maximum.accumulate(src, out=src)
    return values[src]


def group_cumsum(x: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Running sum of ``x`` within each patient."""
    cs = np.cumsum(x, dtype=float)
    before = np.where(start > 0, cs[np.maximum(start - 1, 0)], 0.0)
    return cs - before


def group_cumany(mask: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Whether ``mask`` has held at or before each row, within each patient."""
    idx = np.arange(len(mask))
    last = np.where(mask, idx, -1)
    np.maximum.accumulate(last, out=last)
    return last >= start


def run_hours(mask: np.ndarray, hours: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Hours since the current uninterrupted run of ``mask`` began (NaN where it is False).

    A run begins at the first row of a patient where ``mask`` holds, or where it holds
    after a row where it did not; it ends at the first row where it does not.
    """
    n = len(mask)
    idx = np.arange(n)
    prev = np.concatenate([[False], mask[:-1]])
    begins = mask & (~prev | (idx == start))
    src = np.where(begins, idx, 0)
    np.maximum.accumulate(src, out=src)
    return np.where(mask, hours - hours[src], np.nan)


def quiet_breaks(
    signs: np.ndarray, hours: np.ndarray, start: np.ndarray, gap_hours: float
) -> np.ndarray:
    """Rows at which a documented quiet period of at least ``gap_hours`` has been reached.

    A quiet period is an uninterrupted run of rows where ``signs`` is False (for CRS:
    afebrile, off vasopressors and off oxygen support). It begins at its first row and,
    states holding until their next observation, lasts until the next row with a sign
    (or, while it goes on, until the row itself). A row is a *break* when it is quiet
    and the run has lasted ``>= gap_hours``, or when it is a sign row that ends a quiet
    run which had lasted ``>= gap_hours``. With ``gap_hours = 0`` every quiet row breaks.
    """
    n = len(signs)
    idx = np.arange(n)
    quiet = ~signs
    prev_quiet = np.concatenate([[False], quiet[:-1]]) & (idx != start)
    begins = quiet & (~prev_quiet | (idx == start))
    src = np.where(begins, idx, 0)
    np.maximum.accumulate(src, out=src)
    quiet_start = hours[src]  # for quiet rows: when their run began
    lasted_here = quiet & (hours - quiet_start >= gap_hours)
    prev_start = np.concatenate([[np.nan], quiet_start[:-1]])
    lasted_before = signs & prev_quiet & (hours - prev_start >= gap_hours)
    return lasted_here | lasted_before


def window_count(x: np.ndarray, hours: np.ndarray, code: np.ndarray, window: float) -> np.ndarray:
    """Sum of ``x`` over rows of the same patient within ``(t - window, t]``."""
    span = float(np.nanmax(hours) - np.nanmin(hours)) + 2 * window + 1.0 if len(hours) else 1.0
    key = code.astype(float) * span + (hours - np.nanmin(hours))
    cs = np.concatenate([[0.0], np.cumsum(x, dtype=float)])
    lo = np.searchsorted(key, key - window, side="right")
    return cs[np.arange(len(x)) + 1] - cs[lo]


def _codes(column: pd.Series, sort: bool) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes and their values; a categorical's own codes when it is one (no hashing)."""
    if isinstance(column.dtype, pd.CategoricalDtype) and (
        not sort or column.cat.categories.is_monotonic_increasing
    ):
        codes = column.cat.codes.to_numpy().astype(np.int64)
        used = np.bincount(codes, minlength=len(column.cat.categories)) > 0
        if used.all():
            return codes, np.asarray(column.cat.categories, dtype=object)
        remap = np.cumsum(used) - 1  # dense codes over the categories present
        return remap[codes], np.asarray(column.cat.categories, dtype=object)[used]
    codes, uniques = pd.factorize(column, sort=sort)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def build_states(table: pd.DataFrame, weight_assumed: set[str] | None = None) -> States:
    """The state table of a validated observation table (see the module docstring).

    Parameters
    ----------
    table:
        :attr:`cytosafe.clinical.observations.Observations.table`.
    weight_assumed:
        Patients whose ug/kg/min rates were converted with an assumed weight.
    """
    # Laboratory values are read by the predictors, not graded: a blood draw must neither
    # add a row to the graded timeline nor hold as a state.
    lab = table["item"].isin(LAB_ITEMS).to_numpy()
    if lab.any():
        table = table.loc[~lab]
    pcode, patients = _codes(table["patient_id"], sort=True)
    tint = table["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    icode, inames = _codes(table["item"], sort=False)
    inames = list(inames)
    # (patient, time) -> row; sorted by patient then time. Validated tables already are.
    p_step = np.diff(pcode)
    ordered = bool(np.all(p_step >= 0) and np.all((p_step > 0) | (np.diff(tint) >= 0)))
    order = np.arange(len(pcode)) if ordered else np.lexsort((tint, pcode))
    if not ordered:
        pcode, tint, icode = pcode[order], tint[order], icode[order]
    vals = table["value_num"].to_numpy(dtype=float)[order]
    new_row = np.ones(len(order), dtype=bool)
    new_row[1:] = (pcode[1:] != pcode[:-1]) | (tint[1:] != tint[:-1])
    row_of = np.cumsum(new_row) - 1
    n = int(row_of[-1]) + 1 if len(row_of) else 0
    row_code = pcode[new_row]
    row_time = tint[new_row]
    idx = np.arange(n)
    first = np.ones(n, dtype=bool)
    first[1:] = row_code[1:] != row_code[:-1]
    start = np.where(first, idx, 0)
    np.maximum.accumulate(start, out=start)

    # one sort by item instead of a comparison of every row per item
    by_item = np.argsort(icode.astype(np.int16), kind="stable")  # radix sort of small ints
    bounds = np.searchsorted(icode[by_item], np.arange(len(inames) + 1))
    values: dict[str, np.ndarray] = {}
    observed: dict[str, np.ndarray] = {}
    # items nobody charted share one read-only array (no per-item allocation)
    never = np.zeros(n, dtype=bool)
    missing = np.full(n, np.nan)
    zeros = np.zeros(n)
    for arr in (never, missing, zeros):
        arr.setflags(write=False)
    for name in ITEMS:
        if name in LAB_ITEMS:
            continue
        if name not in inames:
            observed[name] = never
            values[name] = zeros if name in VASOPRESSORS else missing
            continue
        col = np.full(n, np.nan)
        k = inames.index(name)
        sel = by_item[bounds[k] : bounds[k + 1]]
        col[row_of[sel]] = vals[sel]
        observed[name] = ~np.isnan(col)
        if name in _STATE_ITEMS:
            col = carry_forward(col, start)
        if name in VASOPRESSORS:
            col[np.isnan(col)] = 0.0
        values[name] = col

    # Hour 0: the infusion, else the patient's first observation.
    t_hours = row_time / 3.6e12
    inf_t = np.where(observed["infusion"], t_hours, np.nan)
    firsts = np.flatnonzero(first)
    per_patient = np.fmin.reduceat(inf_t, firsts) if n else inf_t
    zero = per_patient[row_code]
    has_inf = np.isfinite(zero)
    zero = np.where(has_inf, zero, t_hours[start])
    hours = t_hours - zero
    baseline = has_inf & (hours < 0)
    # the infusion opens a new segment: nothing of the baseline carries past it
    opens = ~baseline & np.concatenate([[False], baseline[:-1]]) & ~first
    if opens.any():
        start = np.where(first | opens, idx, 0)
        np.maximum.accumulate(start, out=start)
        for name in _STATE_ITEMS:
            if name not in inames:
                continue
            col = np.where(observed[name], values[name], np.nan)
            col = carry_forward(col, start)
            if name in VASOPRESSORS:
                col[np.isnan(col)] = 0.0
            values[name] = col

    death_crs = np.zeros(n, dtype=bool)
    death_other = np.zeros(n, dtype=bool)
    if "death" in inames:
        k = inames.index("death")
        sel = by_item[bounds[k] : bounds[k + 1]]
        texts = table["value"].iloc[order[sel]].to_numpy(dtype=object)
        cause = pd.Series(texts).astype(str).str.strip().str.lower().isin(_CRS_CAUSES).to_numpy()
        death_crs[row_of[sel][cause]] = True
        death_other[row_of[sel][~cause]] = True
    assumed = np.isin(patients, sorted(weight_assumed or ()))[row_code]
    return States(
        patient_id=patients[row_code],
        patient_code=row_code,
        time=row_time.astype("datetime64[ns]"),
        hours=hours,
        start=start,
        values=values,
        observed=observed,
        death_crs=death_crs,
        death_other=death_other,
        has_infusion=has_inf,
        weight_assumed=assumed,
        baseline=baseline,
        first=first,
    )
