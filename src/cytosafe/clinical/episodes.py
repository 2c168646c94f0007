"""Episodes and per-patient summaries: pure table functions of a graded timeline.

An **episode** of one patient under one scale begins at the first observation time graded
>= 1 (its onset) and goes on until CRS *resolves*: a documented period of at least
``gap_hours`` (default 24 h, ``episode_gap_hours`` in ``data/clinical_scales.toml``)
afebrile, off vasopressors and off oxygen support (the timeline's ``crs_signs`` all
False; :func:`cytosafe.clinical.states.quiet_breaks`). Readings graded 0 within a shorter
quiet period, such as a single afebrile temperature, do not split it. The episode ends at
the first observation time graded 0 after its last graded time (its end); one still
graded >= 1 at the patient's last observation is *ongoing* and ends there (its duration
is a lower bound); ``resolution_documented`` says whether the quiet period that closes it
was charted for the full gap. Onset is in hours after the infusion (hour 0); a patient
without a charted infusion has no onset (NaN) and is flagged.

The gap is CytoSafe's documented, configurable choice (the grading sources set none; see
``[common.episode_gap_hours]`` of the criteria file). ICANS episodes keep gap 0: every
time graded 0 ends one. A timeline without ``crs_signs`` is joined on its grades alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cytosafe.clinical.states import quiet_breaks
from cytosafe.schema.observations import TREATMENTS

__all__ = ["DEFAULT_GAP_HOURS", "PATIENT_COLUMNS", "episodes", "patient_summary"]

#: The default episode gap, hours (``[common.episode_gap_hours]`` of the criteria file).
DEFAULT_GAP_HOURS = 24.0

PATIENT_COLUMNS = (
    "patient_id", "scale", "scale_version", "max_grade", "onset_hours", "time_of_max_grade",
    "hours_of_max_grade", "duration_hours", "n_episodes", "ongoing_at_last_observation",
    "criterion_at_max", "treatments", "estimates", "infusion_charted", "followup_hours",
    "baseline_fever", "baseline_max_temperature_c",
)  # fmt: skip


class _Groups:
    """Rows of a timeline grouped by scale x patient, in time order, as NumPy arrays."""

    def __init__(
        self, timeline: pd.DataFrame, gap_hours: float | dict[str, float] = DEFAULT_GAP_HOURS
    ) -> None:
        tl = timeline
        sc = pd.factorize(tl["scale"])[0].astype(np.int64)
        pc = pd.factorize(tl["patient_id"])[0].astype(np.int64)
        key = sc * (int(pc.max()) + 1 if len(pc) else 1) + pc
        hours = tl["hours"].to_numpy(dtype=float)
        step = np.diff(key)
        ordered = bool(np.all(step >= 0) and np.all((step > 0) | (np.diff(hours) >= 0)))
        if not ordered:  # a timeline sorted elsewhere: bring each group into time order
            order = np.lexsort((hours, key))
            tl = tl.iloc[order].reset_index(drop=True)
            key, sc, hours = key[order], sc[order], hours[order]
        self.tl = tl
        self.scale_code = sc
        self.hours = hours
        self.grade = tl["grade"].to_numpy(dtype=np.int64)
        n = len(key)
        new = np.ones(n, dtype=bool)
        new[1:] = key[1:] != key[:-1]
        self.gid = np.cumsum(new) - 1
        self.first = np.flatnonzero(new)
        self.last = np.concatenate([self.first[1:] - 1, [n - 1]]) if n else self.first
        self.n_groups = len(self.first)
        self.pos = self.grade >= 1
        signs = self.pos.copy()
        if "crs_signs" in tl.columns:
            signs |= tl["crs_signs"].to_numpy(dtype=bool)
        start = self.first[self.gid] if n else np.zeros(0, dtype=np.int64)
        if isinstance(gap_hours, dict):
            names = pd.factorize(tl["scale"])[1] if n else []
            per_scale = np.array([float(gap_hours.get(str(x), 0.0)) for x in names] + [0.0])
            present = np.bincount(sc, minlength=len(names)) > 0 if n else np.zeros(0, bool)
            used = np.unique(per_scale[: len(names)][present])
        else:
            per_scale, used = None, [float(gap_hours)]
        if per_scale is None or len(used) == 1:  # one gap for every row
            brk = quiet_breaks(signs, hours, start, float(used[0])) if n else np.zeros(0, bool)
        else:
            # quiet_breaks takes one gap: apply each distinct gap to its scales' rows
            gap = per_scale[sc]
            brk = np.zeros(n, dtype=bool)
            for value in used:
                rows = gap == value
                brk[rows] = quiet_breaks(signs, hours, start, float(value))[rows]
        self.breaks = brk

    def first_where(self, mask: np.ndarray) -> np.ndarray:
        """Per group, the first row where ``mask`` holds (-1 when none)."""
        out = np.full(self.n_groups, -1, dtype=np.int64)
        rows = np.flatnonzero(mask)[::-1]
        out[self.gid[rows]] = rows
        return out

    def episodes(self) -> dict[str, np.ndarray]:
        """Episodes: runs of grade >= 1 joined unless a break (a documented quiet period
        of the gap) lies between them. Begin and end rows, onset, end, peak, ongoing."""
        pos, gid, h = self.pos, self.gid, self.hours
        n = len(pos)
        new_group = np.zeros(n, dtype=bool)
        new_group[self.first] = True
        last_in_group = np.zeros(n, dtype=bool)
        last_in_group[self.last] = True
        prev_pos = np.concatenate([[False], pos[:-1]]) & ~new_group
        begins = np.flatnonzero(pos & ~prev_pos)
        next_pos = np.concatenate([pos[1:], [False]]) & ~last_in_group
        ends = np.flatnonzero(pos & ~next_pos)
        # join run k to run k-1 of the same group when no break lies between them
        cb = np.concatenate([[0], np.cumsum(self.breaks)])
        joined = np.zeros(len(begins), dtype=bool)
        if len(begins) > 1:
            same = gid[begins[1:]] == gid[ends[:-1]]
            no_break = cb[begins[1:] + 1] - cb[ends[:-1] + 1] == 0
            joined[1:] = same & no_break
        heads = np.flatnonzero(~joined)
        tails = np.concatenate([heads[1:] - 1, [len(begins) - 1]]) if len(heads) else heads
        b, e = begins[heads], ends[tails]
        # an episode ends at the next row (graded 0) of its patient, or at its last row
        end_hours = np.where(last_in_group[e], h[e], h[np.minimum(e + 1, n - 1)])
        peak = _run_max(self.grade, b, e) if len(b) else np.zeros(0, np.int64)
        # resolution documented: a break after the episode's end, before the group ends
        group_end = self.last[gid[e]] if len(e) else e
        documented = cb[group_end + 1] - cb[e + 1] > 0
        return {
            "group": gid[b],
            "begin": b,
            "onset_hours": h[b],
            "end_hours": end_hours,
            "duration_hours": end_hours - h[b],
            "peak_grade": peak,
            "ongoing": last_in_group[e],
            "resolution_documented": documented,
        }


def _run_max(g: np.ndarray, begins: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Maximum of ``g`` over each run ``begins[i]..ends[i]`` (runs are disjoint, in order)."""
    # split points: each run and each gap between runs; take the run segments only
    cuts = np.empty(2 * len(begins), dtype=np.int64)
    cuts[0::2] = begins
    cuts[1::2] = ends + 1
    cuts = cuts[cuts < len(g)]
    seg = np.maximum.reduceat(g, cuts)
    return seg[0::2][: len(begins)]


def episodes(
    timeline: pd.DataFrame, *, gap_hours: float | dict[str, float] = DEFAULT_GAP_HOURS
) -> pd.DataFrame:
    """One row per episode: ``patient_id, scale, episode, onset_hours, end_hours,
    duration_hours, peak_grade, ongoing, resolution_documented``.

    Parameters
    ----------
    timeline:
        :attr:`cytosafe.clinical.GradeResult.timeline`.
    gap_hours:
        The documented quiet period (afebrile, off vasopressors, off oxygen) that ends an
        episode; one number, or ``{scale: hours}`` (a scale not named gets 0). See the
        module docstring.
    """
    grp = _Groups(timeline, gap_hours)
    ep = grp.episodes()
    tl = grp.tl
    first = grp.first[ep["group"]]
    out = pd.DataFrame(
        {
            "patient_id": _take(tl["patient_id"], first).astype(str),
            "scale": _take(tl["scale"], first).astype(str),
            "episode": 0,
            "onset_hours": ep["onset_hours"],
            "end_hours": ep["end_hours"],
            "duration_hours": ep["duration_hours"],
            "peak_grade": ep["peak_grade"].astype(int),
            "ongoing": ep["ongoing"],
            "resolution_documented": ep["resolution_documented"],
        }
    )
    if len(out):
        g = ep["group"]
        new = np.ones(len(g), dtype=bool)
        new[1:] = g[1:] != g[:-1]
        starts = np.maximum.accumulate(np.where(new, np.arange(len(g)), 0))
        out["episode"] = np.arange(len(g)) - starts + 1
    return out


def _flags(column: pd.Series, names: list[str]) -> np.ndarray:
    """Per row, bit ``k`` set where the ``;``-joined text of the column lists ``names[k]``
    (looked up once per distinct text)."""
    codes, cats = _cat_codes(column)
    lut = [sum(1 << k for k, n in enumerate(names) if n in str(c).split(";")) for c in cats]
    return np.array([*lut, 0], dtype=np.int64)[codes]


def _take(column: pd.Series, rows: np.ndarray) -> np.ndarray:
    """``column.to_numpy()[rows]``, reading a text categorical's codes at ``rows`` only."""
    if isinstance(column.dtype, pd.CategoricalDtype) and column.cat.categories.dtype == object:
        codes = column.cat.codes.to_numpy()[rows]
        if (codes >= 0).all():
            return np.asarray(column.cat.categories, dtype=object)[codes]
    return column.to_numpy()[rows]


def _cat_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1: missing) and categories of a column (a categorical's own)."""
    cat = column if isinstance(column.dtype, pd.CategoricalDtype) else column.astype("category")
    return cat.cat.codes.to_numpy(), np.asarray(cat.cat.categories, dtype=object)


def _at_rows(column: pd.Series, rows: np.ndarray, missing: str) -> np.ndarray:
    """The text of ``column`` at ``rows`` (``missing`` where a row is -1), reading only
    those rows: a million-row timeline's criteria are never all turned into strings."""
    codes, cats = _cat_codes(column)
    if not len(codes):
        return np.full(len(rows), missing, dtype=object)
    at = codes[np.maximum(rows, 0)]
    # a missing value reads "nan", as str() of it does
    text = np.array([str(c) for c in cats] + ["nan", missing], dtype=object)
    return text[np.where(rows < 0, len(cats) + 1, np.where(at >= 0, at, len(cats)))]


def _joined(flags: np.ndarray, names: list[str], sep: str, fmt=None) -> np.ndarray:
    """Per row of ``flags`` (rows x names, counts or booleans), the names set joined by
    ``sep`` (``fmt(name, count)`` for counts): formatted once per distinct row."""
    if not len(flags):
        return np.array([], dtype=object)
    distinct, inverse = np.unique(flags, axis=0, return_inverse=True)
    text = [
        sep.join((fmt(n, c) if fmt else n) for n, c in zip(names, row, strict=True) if c)
        for row in distinct.tolist()
    ]
    return np.array(text, dtype=object)[inverse.reshape(-1)]


def patient_summary(
    timeline: pd.DataFrame,
    observations: pd.DataFrame | None = None,
    *,
    gap_hours: float | dict[str, float] = DEFAULT_GAP_HOURS,
) -> pd.DataFrame:
    """One row per patient x scale (columns :data:`PATIENT_COLUMNS`).

    ``max_grade``; ``onset_hours`` (first time graded >= 1, hours after infusion);
    ``time_of_max_grade`` and ``hours_of_max_grade`` (first time the maximum was reached);
    ``duration_hours`` (sum of the durations of the episodes, joined across quiet periods
    shorter than ``gap_hours``: see :func:`episodes`); ``n_episodes``;
    ``ongoing_at_last_observation``; ``criterion_at_max``; ``treatments`` given (with
    counts, from the timeline's events); ``estimates`` used by any grade >= 1;
    ``infusion_charted``; ``followup_hours`` (last observation); ``baseline_fever``
    (a fever charted before the infusion: reported, never graded as CRS) and
    ``baseline_max_temperature_c`` (the highest temperature before the infusion; NaN when
    none was charted).

    Parameters
    ----------
    timeline:
        The timeline of :func:`cytosafe.clinical.grade` (may hold several scales).
    observations:
        Unused; kept for callers that pass the observation table.
    gap_hours:
        The episode gap, one number or ``{scale: hours}`` (see :func:`episodes`).
    """
    grp = _Groups(timeline, gap_hours)
    tl, G, gid = grp.tl, grp.n_groups, grp.gid
    first = grp.first
    max_grade = np.maximum.reduceat(grp.grade, first) if G else np.array([], int)
    onset_row = grp.first_where(grp.pos)
    at_max = grp.first_where(grp.pos & (grp.grade == max_grade[gid]))
    ep = grp.episodes()
    n_ep = np.bincount(ep["group"], minlength=G)
    duration = np.bincount(ep["group"], weights=ep["duration_hours"], minlength=G)
    ongoing = np.bincount(ep["group"], weights=ep["ongoing"], minlength=G) > 0

    def at(rows: np.ndarray, values: np.ndarray, missing):
        return np.where(rows >= 0, values[np.maximum(rows, 0)], missing)

    hours = grp.hours
    times = tl["time"].to_numpy()
    names = ["hypotension_from_sbp", "fio2_from_flow", "fio2_from_device", "low_flow_assumed",
             "weight_assumed", "interpretation"]  # fmt: skip
    # the estimates any grade >= 1 of the group relied on (groups are runs of rows)
    bits = np.where(grp.pos, _flags(tl["estimates"], names), 0)
    used = np.bitwise_or.reduceat(bits, first) if G else np.zeros(0, np.int64)
    estimates = _joined(
        np.column_stack([(used >> k) & 1 > 0 for k in range(len(names))]), names, ";"
    )
    # treatments: counted once per patient (on the rows of the first scale)
    once = grp.scale_code == grp.scale_code[0] if len(tl) else np.zeros(0, dtype=bool)
    pcode = pd.factorize(tl["patient_id"])[0]
    counts = {}
    given = np.where(once, _flags(tl["event"], list(TREATMENTS)), 0)
    for k, name in enumerate(TREATMENTS):
        has = (given >> k) & 1 > 0
        counts[name] = np.bincount(pcode[has], minlength=int(pcode.max()) + 1 if len(pcode) else 0)
    gp = pcode[first]
    treatments = _joined(
        np.column_stack([c[gp] for c in counts.values()]).astype(np.int64),
        list(counts),
        "; ",
        lambda n, c: f"{n} x{c}",
    )
    infusion = (
        tl["_has_infusion"].to_numpy()[first] if "_has_infusion" in tl.columns else np.ones(G, bool)
    )
    onset = at(onset_row, hours, np.nan)
    base = (
        tl["baseline"].to_numpy(dtype=bool) if "baseline" in tl.columns else np.zeros(len(tl), bool)
    )
    base_fever = (
        tl["_baseline_fever"].to_numpy(dtype=bool)
        if "_baseline_fever" in tl.columns
        else base & False
    )
    base_temp = np.where(base, tl["temperature_c"].to_numpy(dtype=float), -np.inf)
    base_max = np.maximum.reduceat(base_temp, first) if G else np.array([], float)
    out = pd.DataFrame(
        {
            "patient_id": _take(tl["patient_id"], first).astype(str),
            "scale": _take(tl["scale"], first).astype(str),
            "scale_version": _take(tl["scale_version"], first),
            "max_grade": max_grade.astype(int),
            "onset_hours": np.where(infusion, onset, np.nan),
            "time_of_max_grade": pd.Series(at(at_max, times, np.datetime64("NaT"))),
            "hours_of_max_grade": at(at_max, hours, np.nan),
            "duration_hours": np.where(n_ep > 0, duration, np.nan),
            "n_episodes": n_ep.astype(int),
            "ongoing_at_last_observation": ongoing,
            "criterion_at_max": _at_rows(tl["criterion"], at_max, ""),
            "treatments": treatments,
            "estimates": estimates,
            "infusion_charted": infusion.astype(bool),
            "followup_hours": hours[grp.last],
            "baseline_fever": np.bincount(gid[base_fever], minlength=G) > 0,
            "baseline_max_temperature_c": np.where(np.isfinite(base_max), base_max, np.nan),
        }
    )
    return out[list(PATIENT_COLUMNS)]
