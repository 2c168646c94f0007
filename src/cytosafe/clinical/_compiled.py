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
