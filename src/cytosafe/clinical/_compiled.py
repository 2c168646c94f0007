"""A compiled kernel of the state table's item columns (:func:`cytosafe.clinical.states.build_states`).

The NumPy path builds each charted item's column on its own: a column of NaN, the item's
observations scattered into it, then carried forward within each segment
(:func:`~cytosafe.clinical.states.carry_forward`: a ``where``, a running maximum and a
gather over all rows, per item). On a million patient-hours that is most of the state
table's time, spent in memory traffic. This kernel does the same in two passes: one over
the observations (scatter) and one over the rows of each item (carry), with the same
rules: a segment's first row keeps its own value (NaN when the item was not observed
there) and each later row the last observed value of its segment; vasopressor rates are
0 where none holds. It moves values and never computes one, so its columns are
bit-for-bit those of the NumPy path (``tests/test_grade_compiled.py``).

Imported only when :func:`~cytosafe.clinical.states.build_states` chooses it (see
``COMPILED_MIN_ROWS`` there), so that importing CytoSafe never pays for Numba.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["item_columns"]


@numba.njit(cache=True, nogil=True)
def _item_columns(row_of, icode, vals, slot, n_slots, n, first_row, carried, zero_fill):
    grid = np.full((n_slots, n), np.nan)
    for k in range(len(row_of)):
        j = slot[icode[k]]
        if j >= 0:
            grid[j, row_of[k]] = vals[k]
    observed = np.empty((n_slots, n), dtype=np.bool_)
    for j in range(n_slots):
        col = grid[j]
        seen = observed[j]
        last = np.nan
        for i in range(n):
            v = col[i]
            seen[i] = v == v
            if carried[j]:
                if first_row[i] or v == v:
                    last = v
                v = last
            if zero_fill[j] and v != v:
                v = 0.0
            col[i] = v
    return grid, observed


def item_columns(
    row_of: np.ndarray,
    icode: np.ndarray,
    vals: np.ndarray,
    slot: np.ndarray,
    n: int,
    first_row: np.ndarray,
    carried: np.ndarray,
    zero_fill: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The value and observed flag of every charted item at every row.

    Parameters
    ----------
    row_of, icode, vals:
        Per observation: its row, item code and value.
    slot:
        Per item code, its row of the result (-1: not kept).
    n:
        Rows.
    first_row:
        Per row, whether it begins a segment (nothing carries into it).
    carried, zero_fill:
        Per slot: carried forward (a state item); NaN read as 0 (a vasopressor rate).

    Returns
    -------
    values, observed:
        ``(slots, n)`` arrays: the (carried) value and whether the item was observed at
        the row itself.
    """
    return _item_columns(
        np.ascontiguousarray(row_of, dtype=np.int64),
        np.ascontiguousarray(icode, dtype=np.int64),
        np.ascontiguousarray(vals, dtype=np.float64),
        np.ascontiguousarray(slot, dtype=np.int64),
        len(carried),
        int(n),
        np.ascontiguousarray(first_row, dtype=np.bool_),
        np.ascontiguousarray(carried, dtype=np.bool_),
        np.ascontiguousarray(zero_fill, dtype=np.bool_),
    )


# The group-wise scans of cytosafe.clinical.states, one pass each (their NumPy versions
# build the same answer from running maxima of row indices). Rows are in segments:
# ``start[i]`` is the first row of row i's segment, and ``start[i] == i`` opens one.


@numba.njit(cache=True, nogil=True)
def carry_forward(values, start):
    """:func:`cytosafe.clinical.states.carry_forward` without ``init``."""
    out = np.empty_like(values)
    last = np.nan
    for i in range(len(values)):
        v = values[i]
        if start[i] == i or v == v:
            last = v
        out[i] = last
    return out


@numba.njit(cache=True, nogil=True)
def group_cumany(mask, start):
    """:func:`cytosafe.clinical.states.group_cumany` without ``init``."""
    out = np.empty(len(mask), dtype=np.bool_)
    seen = False
    for i in range(len(mask)):
        if start[i] == i:
            seen = False
        if mask[i]:
            seen = True
        out[i] = seen
    return out


@numba.njit(cache=True, nogil=True)
def run_begin(mask, hours, start):
    """:func:`cytosafe.clinical.states.run_begin` without ``init``: the begin hour of each
    row's run (NaN off the run) and the row it began at (the last begin before, else 0)."""
    n = len(mask)
    out = np.empty(n)
    src = np.empty(n, dtype=np.int64)
    b = 0
    for i in range(n):
        if mask[i] and (i == 0 or not mask[i - 1] or start[i] == i):
            b = i
        src[i] = b
        out[i] = hours[b] if mask[i] else np.nan
    return out, src


@numba.njit(cache=True, nogil=True)
def quiet_breaks(signs, hours, start, gap_hours):
    """:func:`cytosafe.clinical.states.quiet_breaks` without ``init``: the breaks and each
    row's ``quiet_begin``."""
    n = len(signs)
    brk = np.empty(n, dtype=np.bool_)
    begin = np.empty(n)
    s = -1
    prev_start = np.nan
    for i in range(n):
        quiet = not signs[i]
        prev_quiet = i > 0 and not signs[i - 1] and start[i] != i
        if quiet and not prev_quiet:
            s = i
        quiet_start = hours[max(s, 0)]
        begin[i] = quiet_start if quiet else np.nan
        here = quiet and hours[i] - quiet_start >= gap_hours
        before = signs[i] and prev_quiet and hours[i] - prev_start >= gap_hours
        brk[i] = here or before
        prev_start = quiet_start
    return brk, begin


@numba.njit(cache=True, nogil=True)
def _rows(pcode, tint):
    m = len(pcode)
    row_of = np.empty(m, dtype=np.int64)
    row_code = np.empty(m, dtype=np.int64)
    row_time = np.empty(m, dtype=np.int64)
    r = -1
    for k in range(m):
        if k == 0 or pcode[k] != pcode[k - 1] or tint[k] != tint[k - 1]:
            if k > 0 and (
                pcode[k] < pcode[k - 1] or (pcode[k] == pcode[k - 1] and tint[k] < tint[k - 1])
            ):
                return False, row_of, row_code[:0], row_time[:0]
            r += 1
            row_code[r] = pcode[k]
            row_time[r] = tint[k]
        row_of[k] = r
    return True, row_of, row_code[: r + 1].copy(), row_time[: r + 1].copy()


def rows(pcode: np.ndarray, tint: np.ndarray) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray]:
    """The (patient, time) rows of observations sorted by patient, then time.

    Returns ``ordered`` (False: the observations are not sorted, and nothing else is
    computed), each observation's row, and each row's patient code and time.
    """
    return _rows(
        np.ascontiguousarray(pcode, dtype=np.int64), np.ascontiguousarray(tint, dtype=np.int64)
    )
