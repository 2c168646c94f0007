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

from cytosafe.schema.observations import ITEMS, LAB_ITEMS, TREATMENTS, VASOPRESSORS

__all__ = [
    "CARRIED_EVENTS",
    "Carry",
    "States",
    "build_states",
    "carry_forward",
    "death_names_crs",
    "group_cumany",
    "group_cumsum",
    "observation_arrays",
    "quiet_breaks",
    "run_hours",
    "use_compiled",
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
#: Events a scale counts over a bounded window (Penn: boluses, IV therapies within
#: ``bolus_window_hours``/``iv_therapy_window_hours``): the carry keeps their recent times.
CARRIED_EVENTS = ("fluid_bolus", *TREATMENTS)


@dataclass
class Carry:
    """What grading carries from a patient's rows graded so far into rows that follow.

    The rules read history in a few ways only, and each is carried as a summary rather
    than as the rows (see :mod:`cytosafe.clinical.monitor`):

    ``patients`` (indexed by patient id):
        ``zero`` (hour 0 in hours since the epoch: the infusion, else the first graded
        row), ``has_infusion``, ``last_hours`` and ``last_time`` of the last graded row,
        ``v:<item>`` the carried value of every state item (:func:`carry_forward`), and
        ``fio2_at``/``dev_at``: whether FiO2 was charted at or after the oxygen device
        (as -2/-1 ranks, NaN: never).
    ``scales`` (per scale, indexed by patient id):
        ``fever_seen`` (a fever since the infusion; unbounded), ``masked`` (ASTCT fever
        masking: to the end of follow-up), ``high_begin``/``pressor_begin`` (the hour
        the current run of high-dose or any vasopressor began), ``quiet``/
        ``quiet_begin`` (the last row afebrile and off support, and since when) and
        ``fever_in_seg`` (a fever since the last resolution: the CRS-present gate).
    ``events``:
        ``patient_id``, ``item``, ``hours``, ``weight`` of the :data:`CARRIED_EVENTS`
        within ``keep_hours`` before each patient's last row (bounded windows).
    """

    patients: pd.DataFrame
    scales: dict[str, pd.DataFrame]
    events: pd.DataFrame

    @staticmethod
    def empty() -> Carry:
        """No patient carried."""
        events = pd.DataFrame({"patient_id": pd.Series(dtype=object),
                               "item": pd.Series(dtype=object),
                               "hours": pd.Series(dtype=float),
                               "weight": pd.Series(dtype=float)})  # fmt: skip
        return Carry(pd.DataFrame(), {}, events)

    def only(self, patients: set[str] | list[str]) -> Carry:
        """The carry of ``patients`` (those without one are graded from their start)."""
        keep = list(patients)
        pat = self.patients.loc[self.patients.index.intersection(keep)]
        scales = {k: v.loc[v.index.intersection(keep)] for k, v in self.scales.items()}
        ev = self.events.loc[self.events["patient_id"].isin(keep)]
        return Carry(pat, scales, ev)

    def without(self, patients: set[str] | list[str]) -> Carry:
        """This carry less ``patients``."""
        drop = list(patients)
        pat = self.patients.drop(index=drop, errors="ignore")
        scales = {k: v.drop(index=drop, errors="ignore") for k, v in self.scales.items()}
        ev = self.events.loc[~self.events["patient_id"].isin(drop)]
        return Carry(pat, scales, ev)

    def updated(self, new: Carry) -> Carry:
        """This carry with ``new``'s patients replaced (events: ``new``'s patients' own)."""
        pids = list(new.patients.index)
        base = self.without(pids)
        pat = pd.concat([x for x in (base.patients, new.patients) if len(x)] or [new.patients])
        scales = {}
        for k in set(base.scales) | set(new.scales):
            parts = [x for x in (base.scales.get(k), new.scales.get(k)) if x is not None and len(x)]
            scales[k] = pd.concat(parts) if parts else new.scales.get(k, base.scales.get(k))
        ev = pd.concat([x for x in (base.events, new.events) if len(x)] or [new.events],
                       ignore_index=True)  # fmt: skip
        return Carry(pat, scales, ev)


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
    #: per row, its patient's :class:`Carry` ``patients`` columns (None: none carried);
    #: ``seeded`` says which rows continue a patient graded before
    init: dict[str, np.ndarray] | None = None
    #: hour 0 of each row's patient, in hours since the epoch (``hours = time - zero``)
    zero: np.ndarray | None = None
    #: the carried events: ``(patient_code, hours, weight)`` per item
    prior_events: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self.time)


def carry_forward(
    values: np.ndarray, start: np.ndarray, init: np.ndarray | None = None
) -> np.ndarray:
    """Last non-NaN value at or before each row, within each patient (NaN before the first).

    ``init`` (per row): the value carried into each segment's first row from before it.
    """
    if init is not None:
        at_start = (np.arange(len(values)) == start) & np.isnan(values)
        if at_start.any():
            values = np.where(at_start, init, values)
    n = len(values)
    if values.dtype == np.float64 and _use_compiled(n):
        from cytosafe.clinical import _compiled

        return _compiled.carry_forward(np.ascontiguousarray(values), _int64(start))
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


def group_cumany(mask: np.ndarray, start: np.ndarray, init: np.ndarray | None = None) -> np.ndarray:
    """Whether ``mask`` has held at or before each row, within each patient (or, with
    ``init`` per row, before the segment began)."""
    if init is None and _use_compiled(len(mask)):
        from cytosafe.clinical import _compiled

        return _compiled.group_cumany(_bool(mask), _int64(start))
    idx = np.arange(len(mask))
    last = np.where(mask, idx, -1)
    np.maximum.accumulate(last, out=last)
    if init is None:
        return last >= start
    return (last >= start) | init[start]


def run_hours(mask: np.ndarray, hours: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Hours since the current uninterrupted run of ``mask`` began (NaN where it is False).

    A run begins at the first row of a patient where ``mask`` holds, or where it holds
    after a row where it did not; it ends at the first row where it does not.
    """
    return np.where(mask, hours - run_begin(mask, hours, start), np.nan)


def run_begin(
    mask: np.ndarray, hours: np.ndarray, start: np.ndarray, init: np.ndarray | None = None
) -> np.ndarray:
    """The hour at which the current run of ``mask`` began (NaN where it is False);
    ``init`` (per row): the begin of a run going on at the end of the rows before the
    segment (NaN: none), which a run at the segment's first row continues."""
    n = len(mask)
    if hours.dtype == np.float64 and _use_compiled(n):
        from cytosafe.clinical import _compiled

        out, src = _compiled.run_begin(_bool(mask), np.ascontiguousarray(hours), _int64(start))
    else:
        idx = np.arange(n)
        prev = np.concatenate([[False], mask[:-1]])
        begins = mask & (~prev | (idx == start))
        src = np.where(begins, idx, 0)
        np.maximum.accumulate(src, out=src)
        out = np.where(mask, hours[src], np.nan)
    if init is not None:
        going = mask & (src == start) & ~np.isnan(init[start])
        out = np.where(going, init[start], out)
    return out


def quiet_breaks(
    signs: np.ndarray,
    hours: np.ndarray,
    start: np.ndarray,
    gap_hours: float,
    init_quiet: np.ndarray | None = None,
    init_begin: np.ndarray | None = None,
    out: dict | None = None,
) -> np.ndarray:
    """Rows at which a documented quiet period of at least ``gap_hours`` has been reached.

    A quiet period is an uninterrupted run of rows where ``signs`` is False (for CRS:
    afebrile, off vasopressors and off oxygen support). It begins at its first row and,
    states holding until their next observation, lasts until the next row with a sign
    (or, while it goes on, until the row itself). A row is a *break* when it is quiet
    and the run has lasted ``>= gap_hours``, or when it is a sign row that ends a quiet
    run which had lasted ``>= gap_hours``. With ``gap_hours = 0`` every quiet row breaks.

    ``init_quiet``/``init_begin`` (per row): whether the row before the segment was quiet
    and since when (rows graded before); ``out["quiet_begin"]`` receives each row's.
    """
    n = len(signs)
    plain = init_quiet is None and init_begin is None
    if plain and np.asarray(hours).dtype == np.float64 and _use_compiled(n):
        from cytosafe.clinical import _compiled

        brk, begin = _compiled.quiet_breaks(
            _bool(signs), np.ascontiguousarray(hours), _int64(start), float(gap_hours)
        )
        if out is not None:
            out["quiet_begin"] = begin
        return brk
    idx = np.arange(n)
    quiet = ~signs
    at_start = idx == start
    prev_quiet = np.concatenate([[False], quiet[:-1]]) & ~at_start
    if init_quiet is not None:
        prev_quiet = np.where(at_start, init_quiet[start], prev_quiet)
    begins = quiet & ~prev_quiet
    src = np.where(begins, idx, -1)
    np.maximum.accumulate(src, out=src)
    quiet_start = hours[np.maximum(src, 0)]  # for quiet rows: when their run began
    prev_start = np.concatenate([[np.nan], quiet_start[:-1]])
    if init_begin is not None:
        # a quiet run going on before the segment began then
        quiet_start = np.where(quiet & (src < start), init_begin[start], quiet_start)
        prev_start = np.concatenate([[np.nan], quiet_start[:-1]])
        prev_start = np.where(at_start, init_begin[start], prev_start)
    if out is not None:
        out["quiet_begin"] = np.where(quiet, quiet_start, np.nan)
    lasted_here = quiet & (hours - quiet_start >= gap_hours)
    lasted_before = signs & prev_quiet & (hours - prev_start >= gap_hours)
    return lasted_here | lasted_before


def window_count(
    x: np.ndarray,
    hours: np.ndarray,
    code: np.ndarray,
    window: float,
    prior: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Sum of ``x`` over rows of the same patient within ``(t - window, t]``.

    Rows are sorted by patient, then hours. ``prior``: ``(code, hours, weight)`` of
    events before each patient's first row (carried from rows graded before). The
    comparison is of ``hours`` with ``t - window`` as computed per row, exactly, so that
    a count does not depend on which other patients or rows are graded with it.
    """
    n = len(x)
    if prior is not None and len(prior[0]):
        pc, ph, pw = prior
        c_all = np.concatenate([pc.astype(np.int64), code.astype(np.int64)])
        h_all = np.concatenate([ph.astype(float), hours.astype(float)])
        x_all = np.concatenate([pw.astype(float), x.astype(float)])
        order = np.lexsort((np.concatenate([np.zeros(len(pc)), np.ones(n)]), h_all, c_all))
        counts = window_count(x_all[order], h_all[order], c_all[order], window)
        back = np.empty(len(order), dtype=np.int64)
        back[order] = np.arange(len(order))
        return counts[back[len(pc) :]]
    if not n:
        return np.zeros(0)
    span = float(np.nanmax(hours) - np.nanmin(hours)) + 2 * window + 1.0
    key = code.astype(float) * span + (hours - np.nanmin(hours))
    lo = np.searchsorted(key, key - window, side="right")
    # the key's rounding depends on the other rows: settle each bound on the row's own
    # patient by comparing its hours with t - window exactly (a step or two at most)
    idx = np.arange(n)
    first = np.concatenate([[True], code[1:] != code[:-1]])
    start = np.where(first, idx, 0)
    np.maximum.accumulate(start, out=start)
    thr = hours - window
    lo = np.clip(lo, start, idx + 1)
    while True:
        down = (lo > start) & (hours[np.maximum(lo - 1, 0)] > thr)
        up = (lo <= idx) & (hours[np.minimum(lo, n - 1)] <= thr)
        if not (down.any() or up.any()):
            break
        lo = lo - down + up
    cs = np.concatenate([[0.0], np.cumsum(x, dtype=float)])
    return cs[np.arange(n) + 1] - cs[lo]


#: State tables from this many rows build their item columns, and the group-wise scans
#: above run, with the compiled kernels (:mod:`cytosafe.clinical._compiled`; the same
#: answers bit for bit); observation tables from this many rows are graded by ASTCT 2019's
#: fused kernel (:func:`cytosafe.clinical.scales.astct2019.grade_observations`). Importing
#: Numba and loading the cached kernels costs about 0.2-0.4 s of CPU once per process (a
#: first compilation, once per installation, about 4 s per kernel); the kernels save
#: about that much per million rows (``benchmarks/bench_grade.py``), so smaller tables
#: stay with NumPy.
COMPILED_MIN_ROWS = 500_000


def compiled_available() -> bool:
    """Whether the compiled kernel can run: Numba is installed and ``CYTOSAFE_COMPILED``
    is not ``0`` (checked without importing Numba)."""
    import importlib.util
    import os

    if os.environ.get("CYTOSAFE_COMPILED", "1").strip().lower() in ("0", "false", "no"):
        return False
    return importlib.util.find_spec("numba") is not None


def use_compiled(n: int) -> bool:
    """Whether a table of ``n`` rows (or observations) is worked on by the compiled
    kernels: from :data:`COMPILED_MIN_ROWS`, when :func:`compiled_available`."""
    return n >= COMPILED_MIN_ROWS and compiled_available()


_use_compiled = use_compiled


def _int64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64)


def _bool(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.bool_)


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


def _raw_codes(column: pd.Series, sort: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_codes` without the copy: a categorical's own codes (any integer width,
    unused categories kept) when their order is the one asked for."""
    if isinstance(column.dtype, pd.CategoricalDtype) and (
        not sort or column.cat.categories.is_monotonic_increasing
    ):
        return column.cat.codes.to_numpy(), np.asarray(column.cat.categories, dtype=object)
    codes, uniques = pd.factorize(column, sort=sort)
    return codes, np.asarray(uniques, dtype=object)


def observation_arrays(
    table: pd.DataFrame,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The columns of an observation table as the compiled kernels read them, without
    copies where the table's own arrays serve.

    Returns ``pcode, patients, tint, icode, items, values``: per observation, the
    patient's code (its rank among ``patients``, as :func:`build_states` orders them),
    the time in ns, the item's code into ``items`` and ``value_num``. Codes may be
    of any integer width and include -1 for a missing value.
    """
    pcode, patients = _raw_codes(table["patient_id"], sort=True)
    tint = table["time"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    icode, items = _raw_codes(table["item"], sort=False)
    return pcode, patients, tint, icode, items, table["value_num"].to_numpy(dtype=float)


def death_names_crs(values: pd.Series, positions: np.ndarray) -> np.ndarray:
    """Whether the death observations at ``positions`` of ``values`` give CRS as the cause
    ("CRS", "cytokine release syndrome", any case and spacing around)."""
    texts = values.iloc[positions].to_numpy(dtype=object)  # few: a loop beats pandas' str
    return np.array([str(x).strip().lower() in _CRS_CAUSES for x in texts], dtype=bool)


def build_states(
    table: pd.DataFrame, weight_assumed: set[str] | None = None, carry: Carry | None = None
) -> States:
    """The state table of a validated observation table (see the module docstring).

    Parameters
    ----------
    table:
        :attr:`cytosafe.clinical.observations.Observations.table`.
    weight_assumed:
        Patients whose ug/kg/min rates were converted with an assumed weight.
    carry:
        For patients graded before, what their earlier rows left (:class:`Carry`);
        ``table`` then holds only their rows after those (all after the infusion).
        Patients not in it start from their first row.
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
    ordered = False
    if _use_compiled(len(pcode)):
        from cytosafe.clinical._compiled import rows

        ordered, row_of, row_code, row_time = rows(pcode, tint)
    if ordered:
        order = None  # the table's own order
        vals = table["value_num"].to_numpy(dtype=float)
    else:
        p_step = np.diff(pcode)
        ordered = bool(np.all(p_step >= 0) and np.all((p_step > 0) | (np.diff(tint) >= 0)))
        order = np.arange(len(pcode)) if ordered else np.lexsort((tint, pcode))
        if not ordered:
            pcode, tint, icode = pcode[order], tint[order], icode[order]
        vals = table["value_num"].to_numpy(dtype=float)[order]
        new_row = np.ones(len(order), dtype=bool)
        new_row[1:] = (pcode[1:] != pcode[:-1]) | (tint[1:] != tint[:-1])
        row_of = np.cumsum(new_row) - 1
        row_code = pcode[new_row]
        row_time = tint[new_row]
        del new_row
    del pcode, tint  # 48 MB at 3M observations, freed before the item columns
    n = len(row_code)
    idx = np.arange(n)
    first = np.ones(n, dtype=bool)
    first[1:] = row_code[1:] != row_code[:-1]
    start = np.where(first, idx, 0)
    np.maximum.accumulate(start, out=start)

    init: dict[str, np.ndarray] | None = None
    if carry is not None and len(carry.patients):
        known = carry.patients.reindex(pd.Index(patients, dtype=object))
        init = {c: known[c].to_numpy(dtype=float)[row_code] for c in known.columns}
        init["seeded"] = ~np.isnan(init["zero"])

    values: dict[str, np.ndarray] = {}
    observed: dict[str, np.ndarray] = {}
    # items nobody charted share one read-only array (no per-item allocation)
    never = np.zeros(n, dtype=bool)
    missing = np.full(n, np.nan)
    zeros = np.zeros(n)
    for arr in (never, missing, zeros):
        arr.setflags(write=False)
    charted = [name for name in ITEMS if name in inames and name not in LAB_ITEMS]
    if init is None and _use_compiled(n):
        from cytosafe.clinical._compiled import item_columns

        slot = np.full(len(inames), -1, dtype=np.int64)
        for j, name in enumerate(charted):
            slot[inames.index(name)] = j
        grid, seen = item_columns(
            row_of, icode, vals, slot, n, first,
            np.array([name in _STATE_ITEMS for name in charted], dtype=bool),
            np.array([name in VASOPRESSORS for name in charted], dtype=bool),
        )  # fmt: skip
        for j, name in enumerate(charted):
            values[name], observed[name] = grid[j], seen[j]

        def rows_of(k: int) -> np.ndarray:
            return np.flatnonzero(icode == k)
    else:
        # one sort by item instead of a comparison of every row per item
        by_item = np.argsort(icode.astype(np.int16), kind="stable")  # radix sort of small ints
        bounds = np.searchsorted(icode[by_item], np.arange(len(inames) + 1))

        def rows_of(k: int) -> np.ndarray:
            return by_item[bounds[k] : bounds[k + 1]]

    for name in ITEMS:
        if name in LAB_ITEMS or name in values:
            continue
        if name not in inames and init is not None and name in _STATE_ITEMS:
            # not charted in these rows, but carried from the rows before
            observed[name] = never
            col = carry_forward(np.full(n, np.nan), start, init.get("v:" + name))
            if name in VASOPRESSORS:
                col[np.isnan(col)] = 0.0
            values[name] = col
            continue
        if name not in inames:
            observed[name] = never
            values[name] = zeros if name in VASOPRESSORS else missing
            continue
        col = np.full(n, np.nan)
        sel = rows_of(inames.index(name))
        col[row_of[sel]] = vals[sel]
        observed[name] = ~np.isnan(col)
        if name in _STATE_ITEMS:
            col = carry_forward(col, start, init.get("v:" + name) if init else None)
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
    if init is not None:
        zero = np.where(init["seeded"], init["zero"], zero)
        has_inf = np.where(init["seeded"], init["has_infusion"] > 0, has_inf)
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
            col = carry_forward(col, start, init.get("v:" + name) if init else None)
            if name in VASOPRESSORS:
                col[np.isnan(col)] = 0.0
            values[name] = col

    death_crs = np.zeros(n, dtype=bool)
    death_other = np.zeros(n, dtype=bool)
    if "death" in inames:
        sel = rows_of(inames.index("death"))
        cause = death_names_crs(table["value"], sel if order is None else order[sel])
        death_crs[row_of[sel][cause]] = True
        death_other[row_of[sel][~cause]] = True
    assumed = np.isin(patients, sorted(weight_assumed or ()))[row_code]
    prior = None
    if carry is not None and len(carry.events):
        ev = carry.events
        code = pd.Index(patients, dtype=object).get_indexer(ev["patient_id"].to_numpy(object))
        ok = code >= 0
        items = ev["item"].to_numpy(object)[ok]
        parts = (code[ok], ev["hours"].to_numpy(float)[ok], ev["weight"].to_numpy(float)[ok])
        prior = {it: tuple(p[items == it] for p in parts) for it in set(items)}
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
        init=init,
        zero=zero,
        prior_events=prior,
    )
