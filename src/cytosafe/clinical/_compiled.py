"""Compiled kernels of grading: the state table's item columns
(:func:`cytosafe.clinical.states.build_states`), its group-wise scans, and ASTCT 2019 fused
from the observations to the grades (:func:`astct2019`, below; its NumPy reference and
conformance tests are named there).

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

__all__ = ["astct2019", "item_columns"]


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


# ---------------------------------------------------------------------------------------
# ASTCT 2019 in one pass: from the sorted observations to the grade, criterion and
# estimates of every row. The reference is the NumPy path (build_states, then derive,
# scales.astct2019.grade and the gate of scales._common); this kernel applies the same
# rules to the same carried states, one patient at a time, and gives the same answers
# (tests/test_grade_fused.py). Each step names the NumPy function it follows.

#: Roles of an item (``role`` is indexed by item code).
# A role is also the row's value slot and bit (a later observation of an item wins).
ROLE_LAB = -1  # a laboratory value: makes no row (build_states drops it)
ROLE_TEMPERATURE = 0
ROLE_SBP = 1
ROLE_DEVICE = 2
ROLE_FLOW = 3
ROLE_PRESSOR = 4  # 4..7: norepinephrine, epinephrine, dopamine, phenylephrine
ROLE_VASOPRESSIN = 8
ROLE_MASKING = 9  # 9..13: the fever-masking treatments of the settings
ROLE_INFUSION = 14
ROLE_ROW = 15  # makes a row, read by no ASTCT rule
ROLE_DEATH = 16
_N_SLOTS = 17

#: A criterion is a key: its structure (:func:`_finish_row`) above ``T_BITS``, the
#: temperature's tenths plus ``T_OFFSET`` below (0: no number in the text, or "nan").
T_BITS = 41
T_OFFSET = 1 << 40
_T_LIMIT = float(1 << 39)  # |temperature x 10| beyond this is not this kernel's domain
_ROUNDER = 6755399441055744.0  # 1.5 * 2**52: adding and subtracting it rounds to an integer
_TABLE = 1 << 13  # criterion hash slots; more than half full: not this kernel's domain
_MIX = 0x2545F4914F6CDD1D

#: Status of :func:`astct2019`.
OK, UNSORTED, OUT_OF_DOMAIN = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def _criterion_id(key, table, found):
    """The dense id of a criterion key: open addressing in ``table`` (key, id pairs; -1
    free), a new key listed in ``found`` by id (``found[0]``: how many); -1 when the
    table is half full (more criteria than the kernel is for)."""
    h = ((key * _MIX) >> 40) & (_TABLE - 1)  # multiplicative hashing (wraps)
    while True:
        k = table[2 * h]
        if k == key:
            return table[2 * h + 1]
        if k == -1:
            n = found[0]
            if n >= _TABLE // 2:
                return -1
            table[2 * h] = key
            table[2 * h + 1] = n
            found[n + 1] = key
            found[0] = n + 1
            return n
        h = (h + 1) & (_TABLE - 1)


@numba.njit(cache=True, nogil=True, inline="always")
def _finish_row(g, case, gv, hyp_lab, oxy_lab, est, ok, d_crs, d_other, t_code):
    """Grade 5 for death due to CRS (``finish``), then the gate (``gate``): the row's
    grade and criterion key (which holds the estimate bits too)."""
    if d_crs:  # its text replaces the criterion; never gated
        g = 5
        case = gv = hyp_lab = oxy_lab = t_code = 0
    if g == 0:
        est = 0
    blocked = not ok and g > 0 and not d_crs
    if blocked:
        g = 0
        est = 0
    struct = (
        case | (gv << 3) | (hyp_lab << 6) | (oxy_lab << 9) | (int(d_crs) << 12)
        | (int(d_other and not d_crs) << 13) | (int(blocked) << 14) | (est << 15)
    )  # fmt: skip
    return g, (struct << T_BITS) | t_code


@numba.njit(cache=True, nogil=True)
def _astct2019_rows(
    a, b, redo_zero, pcode, tint, icode, vals, role, assumed,
    fever_c, sbp_below, low_flow_max, device_grade, prior_fever, gated, gap,
    grade, crit, present, death_row, death_lo, death_hi, table, found,
    r, n_deaths, redo_obs, redo_row, redo_hour, n_redo,
):  # fmt: skip
    """The rows of observations ``[a, b)`` from row ``r`` on; returns ``(status, rows,
    deaths, redone)``.

    Hour 0 is the earliest infusion charted with a value, else the first row. It is
    taken as the first row until an infusion after it is met; that patient's first
    observation, row and infusion hour are then listed in ``redo_*`` and its rows graded
    again once the pass is over, by this function with ``redo_zero`` (the hour: NaN in
    the main pass) from its first observation, up to its last row (rows before the
    infusion are the baseline). A row with a death observation is listed in ``death_*``
    (in the main pass) and left for :func:`_finish_deaths`."""
    redo = redo_zero == redo_zero
    n_dev = len(device_grade)
    n_roles = len(role)
    rowval = np.empty(_N_SLOTS, dtype=np.float64)  # valid where ``seen`` has the bit
    seen = 0  # bit ro: the row has an observation of role ro
    p = -1  # the patient of the last row
    run = a  # the first observation of the current patient code
    k0 = a  # the first observation of the current row
    weight = has_first = has_inf = first_row = False
    zero_h = 0.0
    last_key = last_id = -1
    # the segment's carried states (reset at its first row: the patient's first row and
    # the first row after the baseline)
    temp = sbp = device = flow = np.nan
    ne = epi = dop = phe = vaso = quiet_begin = 0.0
    fever_seen = masked = prev_quiet = seen_seg = prev_baseline = False
    for k in range(a, b):
        c = icode[k]
        if c < 0 or c >= n_roles:
            return OUT_OF_DOMAIN, r, n_deaths, n_redo
        ro = role[c]
        if ro >= 0:
            rowval[ro] = vals[k]
            seen |= 1 << ro
        t = tint[k]
        q = pcode[k]
        if k + 1 < b:
            q1 = pcode[k + 1]
            if q1 == q:
                t1 = tint[k + 1]
                if t1 == t:
                    continue  # the row goes on
                if t1 < t:
                    return UNSORTED, r, n_deaths, n_redo
            elif q1 < q:
                return UNSORTED, r, n_deaths, n_redo
        # the row (q, t) ends at k
        lo = k0
        k0 = k + 1
        if seen and q != p:  # a patient's first row
            if redo and p >= 0:
                return OK, r, n_deaths, n_redo  # the patient graded again is done
            if q < 0 or q >= len(assumed):
                return OUT_OF_DOMAIN, r, n_deaths, n_redo
            p = q
            weight = assumed[q]
            has_first = has_inf = redo
            zero_h = redo_zero
            first_row = True
            if not redo:
                redo_obs[n_redo] = run  # where it would be graded again from
                redo_row[n_redo] = r
        if k0 < b and pcode[k0] != q:
            run = k0
        if not seen:  # laboratory values only
            continue
        th = t / 3.6e12
        if not has_first:
            has_first = True
            zero_h = th
        if not has_inf and seen >> ROLE_INFUSION & 1:
            if rowval[ROLE_INFUSION] == rowval[ROLE_INFUSION]:
                has_inf = True
                if th != zero_h:  # an infusion after the first row: graded again
                    redo_hour[n_redo] = th
                    n_redo += 1
        hours = th - zero_h
        baseline = has_inf and hours < 0
        opens = first_row or (prev_baseline and not baseline)
        first_row = False
        prev_baseline = baseline
        if opens:  # build_states: nothing carries into a segment
            temp = sbp = device = flow = np.nan
            ne = epi = dop = phe = vaso = 0.0
            fever_seen = masked = prev_quiet = seen_seg = False
        # carry_forward: an observed (non-NaN) value holds until the next
        treated = False
        if seen & 0x3FFF:
            if seen & 1 and rowval[0] == rowval[0]:
                temp = rowval[0]
            if seen >> 1 & 1 and rowval[1] == rowval[1]:
                sbp = rowval[1]
            if seen >> 2 & 1 and rowval[2] == rowval[2]:
                device = rowval[2]
            if seen >> 3 & 1 and rowval[3] == rowval[3]:
                flow = rowval[3]
            if seen >> 4 & 31:
                if seen >> 4 & 1 and rowval[4] == rowval[4]:
                    ne = rowval[4]
                if seen >> 5 & 1 and rowval[5] == rowval[5]:
                    epi = rowval[5]
                if seen >> 6 & 1 and rowval[6] == rowval[6]:
                    dop = rowval[6]
                if seen >> 7 & 1 and rowval[7] == rowval[7]:
                    phe = rowval[7]
                if seen >> 8 & 1 and rowval[8] == rowval[8]:
                    vaso = rowval[8]
            if seen >> 9 & 31:
                for j in range(ROLE_MASKING, ROLE_INFUSION):
                    if seen >> j & 1 and rowval[j] == rowval[j]:
                        treated = True

        # derive and _fever_masked (scales._common)
        fever = temp >= fever_c  # NaN: False
        n_pressors = int(ne > 0) + int(epi > 0) + int(dop > 0) + int(phe > 0)
        any_pressor = n_pressors > 0 or vaso > 0
        if device != device:
            dev = -1
        elif device >= 0 and device < n_dev and device == np.floor(device):
            dev = int(device)
        else:
            return OUT_OF_DOMAIN, r, n_deaths, n_redo
        cannula = dev == 1  # nasal_cannula
        fever_seen = fever_seen or fever
        masked = masked or (treated and (fever_seen or not prior_fever))

        # scales.astct2019.grade
        if n_pressors >= 2:
            hyp = 4
        elif any_pressor:
            hyp = 3
        elif sbp < sbp_below:  # NaN: False
            hyp = 2
        else:
            hyp = 0
        oxy = device_grade[dev] if dev >= 0 else 0
        if cannula and oxy < 3 and (0.0 if flow != flow else flow) > low_flow_max:
            oxy = 3
        g_vital = hyp if hyp > oxy else oxy
        if (fever or masked) and g_vital > 0:
            g = g_vital
        else:
            g = 1 if fever else 0
        if g >= 2:
            case = 2 if fever else 3
        elif g == 1:
            case = 1
        elif g_vital > 0:
            case = 4
        else:
            case = 0
        hyp_lab = oxy_lab = gv = 0
        if case >= 2:  # the labels of the vitals that set g_vital are in the text
            if hyp == g_vital and hyp >= 2:
                hyp_lab = hyp
            if oxy == g_vital and oxy >= 2:
                oxy_lab = oxy
            if case <= 3:
                gv = g_vital
        est = 0
        if hyp == 2:
            est |= 1
        if cannula and flow != flow and oxy == 2:
            est |= 8
        if weight and any_pressor:
            est |= 16
        t_code = 0
        if case == 1 or case == 2:
            x = temp * 10.0
            if x - x == 0.0:  # finite (Text.fixed writes "nan" otherwise)
                if not abs(x) < _T_LIMIT:
                    return OUT_OF_DOMAIN, r, n_deaths, n_redo
                # rounded half to even, as np.rint (exact: |x| < 2**51)
                t_code = int((x + _ROUNDER) - _ROUNDER) + T_OFFSET

        # the gate: quiet_breaks, then _crs_present
        ok = True
        if gated:
            quiet = baseline or not (fever or any_pressor or dev > 0)
            if quiet:
                if not prev_quiet:
                    quiet_begin = hours
                brk = hours - quiet_begin >= gap
            else:
                brk = prev_quiet and hours - quiet_begin >= gap
            if opens or (brk and not quiet):
                seen_seg = False
            if fever and not baseline:
                seen_seg = True
            ok = seen_seg and not (brk and quiet) and not baseline
            prev_quiet = quiet

        has_death = seen >> ROLE_DEATH & 1
        seen = 0
        present[r] = ok
        if has_death:
            if not redo:  # listed in the main pass
                death_row[n_deaths] = r
                death_lo[n_deaths] = lo
                death_hi[n_deaths] = k + 1
                n_deaths += 1
            grade[r] = g
            pre = case | (gv << 3) | (hyp_lab << 6) | (oxy_lab << 9) | (est << 12)
            crit[r] = ((pre | (int(ok) << 17)) << T_BITS) | t_code
            r += 1
            continue
        g, key = _finish_row(g, case, gv, hyp_lab, oxy_lab, est, ok, False, False, t_code)
        # _criterion_id, its lookup written out here (Numba's inlining of it was slower)
        if key == last_key:  # most rows say what the row before said
            cid = last_id
        else:
            h = ((key * _MIX) >> 40) & (_TABLE - 1)
            while table[2 * h] != key and table[2 * h] != -1:
                h = (h + 1) & (_TABLE - 1)
            cid = table[2 * h + 1] if table[2 * h] == key else _criterion_id(key, table, found)
            last_key = key
            last_id = cid
        if cid < 0:
            return OUT_OF_DOMAIN, r, n_deaths, n_redo
        grade[r] = g
        crit[r] = cid
        r += 1
    return OK, r, n_deaths, n_redo


@numba.njit(cache=True, nogil=True)
def _astct2019(
    pcode, tint, icode, vals, role, assumed,
    fever_c, sbp_below, low_flow_max, device_grade, prior_fever, gated, gap,
    grade, crit, present, death_row, death_lo, death_hi, table, found,
):  # fmt: skip
    """The main pass, then the patients graded again (:func:`_astct2019_rows`); returns
    ``(status, rows, rows with a death observation)``."""
    n_patients = len(assumed)
    redo_obs = np.empty(n_patients + 1, dtype=np.int64)
    redo_row = np.empty(n_patients + 1, dtype=np.int64)
    redo_hour = np.empty(n_patients + 1, dtype=np.float64)
    # the main pass and the patients graded again: two calls, so that the main pass is
    # compiled for its constants (about 20 % faster than one call site for both)
    status, n, n_deaths, n_redo = _astct2019_rows(
        0, len(pcode), np.nan, pcode, tint, icode, vals, role, assumed,
        fever_c, sbp_below, low_flow_max, device_grade, prior_fever, gated, gap,
        grade, crit, present, death_row, death_lo, death_hi, table, found,
        0, 0, redo_obs, redo_row, redo_hour, 0,
    )  # fmt: skip
    for i in range(n_redo):
        if status != OK:
            break
        status, _, _, _ = _astct2019_rows(
            redo_obs[i], len(pcode), redo_hour[i], pcode, tint, icode, vals, role, assumed,
            fever_c, sbp_below, low_flow_max, device_grade, prior_fever, gated, gap,
            grade, crit, present, death_row, death_lo, death_hi, table, found,
            redo_row[i], n_deaths, redo_obs, redo_row, redo_hour, n_redo,
        )  # fmt: skip
    return status, n, n_deaths


@numba.njit(cache=True, nogil=True)
def _finish_deaths(rows, crs, other, grade, crit, table, found):
    """The rows with a death observation, finished with its causes (``finish``): their
    criterion holds what the main pass left (see there)."""
    for i in range(len(rows)):
        r = rows[i]
        raw = crit[r]
        t_code = raw & ((1 << T_BITS) - 1)
        pre = raw >> T_BITS
        g, key = _finish_row(
            grade[r], pre & 7, (pre >> 3) & 7, (pre >> 6) & 7, (pre >> 9) & 7,
            (pre >> 12) & 31, (pre >> 17) & 1 == 1, crs[i], other[i], t_code,
        )  # fmt: skip
        cid = _criterion_id(key, table, found)
        if cid < 0:
            return False
        grade[r] = g
        crit[r] = cid
    return True


def astct2019(
    pcode: np.ndarray,
    tint: np.ndarray,
    icode: np.ndarray,
    vals: np.ndarray,
    role: np.ndarray,
    assumed: np.ndarray,
    death_causes,
    *,
    fever_c: float,
    sbp_below: float,
    low_flow_max: float,
    device_grade: np.ndarray,
    prior_fever: bool,
    gated: bool,
    gap: float,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ASTCT 2019 grade, criterion and estimates, and ``crs_present``, of every row.

    Parameters
    ----------
    pcode, tint, icode, vals:
        Per observation, sorted by patient code, then time (ns): patient code (>= 0),
        time, item code and value (NumPy arrays of any integer width).
    role:
        Per item code, its role (``ROLE_*``).
    assumed:
        Per patient code, whether its rates were converted with an assumed weight.
    death_causes:
        ``death_causes(positions) -> crs``: whether each death observation at
        ``positions`` names CRS as the cause.
    fever_c, sbp_below, low_flow_max, device_grade, prior_fever, gated, gap:
        The settings: ``device_grade`` per device code (0..4), ``prior_fever`` (fever
        masking requires a fever before), ``gated`` (``onset_requires_fever``), ``gap``
        (``episode_gap_hours``).

    Returns
    -------
    status, grade, criterion, present, keys:
        ``status`` :data:`OK`, :data:`UNSORTED` or :data:`OUT_OF_DOMAIN` (then nothing
        else is meaningful); per row the grade (int8), criterion id and ``crs_present``
        (views of longer buffers); ``keys[i]``: the key of criterion id ``i``, which
        holds the estimate bits too (``(key >> T_BITS) >> 15``).
    """
    m = len(pcode)
    # per row, sized for the worst case (a row per observation): untouched pages of
    # these buffers cost nothing, and the results are views of them
    grade, present = np.empty(m, dtype=np.int8), np.empty(m, dtype=np.bool_)
    crit = np.empty(m, dtype=np.int64)
    death_row, lo, hi = (np.empty(m, dtype=np.int64) for _ in range(3))
    table = np.full(2 * _TABLE, -1, dtype=np.int64)
    found = np.zeros(_TABLE // 2 + 2, dtype=np.int64)  # [count, key of id 0, id 1, ...]
    status, n, n_deaths = _astct2019(
        pcode, tint, icode, np.ascontiguousarray(vals, dtype=np.float64), role,
        np.ascontiguousarray(assumed, dtype=np.bool_),
        float(fever_c), float(sbp_below), float(low_flow_max),
        np.ascontiguousarray(device_grade, dtype=np.int64),
        bool(prior_fever), bool(gated), float(gap),
        grade, crit, present, death_row, lo, hi, table, found,
    )  # fmt: skip
    rows, lo, hi = death_row[:n_deaths], lo[:n_deaths], hi[:n_deaths]
    if status == OK and len(rows):
        # the death observations of those rows, and the row each belongs to
        size = hi - lo
        first = np.repeat(lo - (np.cumsum(size) - size), size)
        pos = first + np.arange(int(size.sum()))
        owner = np.repeat(np.arange(len(rows)), size)
        is_death = role[icode[pos]] == ROLE_DEATH
        pos, owner = pos[is_death], owner[is_death]
        named = np.asarray(death_causes(pos), dtype=np.bool_)
        crs = np.bincount(owner[named], minlength=len(rows)) > 0
        other = np.bincount(owner[~named], minlength=len(rows)) > 0
        done = _finish_deaths(
            rows, crs, other,
            grade, crit, table, found,
        )  # fmt: skip
        if not done:
            status = OUT_OF_DOMAIN
    keys_used = found[1 : found[0] + 1]
    return status, grade[:n], crit[:n], present[:n], keys_used
