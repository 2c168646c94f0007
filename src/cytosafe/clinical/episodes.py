"""Episodes and per-patient summaries: pure table functions of a graded timeline.

An **episode** is an uninterrupted run of observation times with grade >= 1 of one
patient under one scale. It begins at the first such time (its onset) and ends at the
first later observation time graded 0 (its resolution); an episode still graded >= 1 at
the patient's last observation is *ongoing* and ends there (its duration is a lower
bound). Onset is in hours after the infusion (hour 0); a patient without a charted
infusion has no onset (NaN) and is flagged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cytosafe.schema.observations import TREATMENTS

__all__ = ["PATIENT_COLUMNS", "episodes", "patient_summary"]

PATIENT_COLUMNS = (
    "patient_id", "scale", "scale_version", "max_grade", "onset_hours", "time_of_max_grade",
    "hours_of_max_grade", "duration_hours", "n_episodes", "ongoing_at_last_observation",
    "criterion_at_max", "treatments", "estimates", "infusion_charted", "followup_hours",
    "baseline_fever", "baseline_max_temperature_c",
)  # fmt: skip


class _Groups:
    """Rows of a timeline grouped by scale x patient, in time order, as NumPy arrays."""

    def __init__(self, timeline: pd.DataFrame) -> None:
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

    def first_where(self, mask: np.ndarray) -> np.ndarray:
        """Per group, the first row where ``mask`` holds (-1 when none)."""
        out = np.full(self.n_groups, -1, dtype=np.int64)
        rows = np.flatnonzero(mask)[::-1]
        out[self.gid[rows]] = rows
        return out

    def episodes(self) -> dict[str, np.ndarray]:
        """Runs of grade >= 1 (contiguous rows): begin and end rows, onset, end, peak."""
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
        # an episode ends at the next row (graded 0) of its patient, or at its last row
        end_hours = np.where(last_in_group[ends], h[ends], h[np.minimum(ends + 1, n - 1)])
        peak = _run_max(self.grade, begins, ends) if len(begins) else np.zeros(0, np.int64)
        return {
            "group": gid[begins],
            "begin": begins,
            "onset_hours": h[begins],
            "end_hours": end_hours,
            "duration_hours": end_hours - h[begins],
            "peak_grade": peak,
            "ongoing": last_in_group[ends],
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


def episodes(timeline: pd.DataFrame) -> pd.DataFrame:
    """One row per episode: ``patient_id, scale, episode, onset_hours, end_hours,
    duration_hours, peak_grade, ongoing``.

    Parameters
    ----------
    timeline:
        :attr:`cytosafe.clinical.GradeResult.timeline`.
    """
    grp = _Groups(timeline)
    ep = grp.episodes()
    tl = grp.tl
    first = grp.first[ep["group"]]
    out = pd.DataFrame(
        {
            "patient_id": tl["patient_id"].to_numpy()[first].astype(str),
            "scale": tl["scale"].to_numpy()[first].astype(str),
            "episode": 0,
            "onset_hours": ep["onset_hours"],
            "end_hours": ep["end_hours"],
            "duration_hours": ep["duration_hours"],
            "peak_grade": ep["peak_grade"].astype(int),
            "ongoing": ep["ongoing"],
        }
    )
    if len(out):
        g = ep["group"]
        new = np.ones(len(g), dtype=bool)
        new[1:] = g[1:] != g[:-1]
        starts = np.maximum.accumulate(np.where(new, np.arange(len(g)), 0))
        out["episode"] = np.arange(len(g)) - starts + 1
    return out


def _lookup(column: pd.Series, name: str) -> np.ndarray:
    """Per row, whether the ``;``-joined text of a categorical column lists ``name``."""
    cat = column.astype("category")
    lut = np.array([name in str(c).split(";") for c in cat.cat.categories] + [False])
    return lut[cat.cat.codes.to_numpy()]


def patient_summary(
    timeline: pd.DataFrame, observations: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per patient x scale (columns :data:`PATIENT_COLUMNS`).

    ``max_grade``; ``onset_hours`` (first time graded >= 1, hours after infusion);
    ``time_of_max_grade`` and ``hours_of_max_grade`` (first time the maximum was reached);
    ``duration_hours`` (sum of the episodes' durations); ``n_episodes``;
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
    """
    grp = _Groups(timeline)
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
    crit = tl["criterion"].astype(str).to_numpy() if G else np.array([], dtype=object)
    est_any = {}
    for name in ("hypotension_from_sbp", "fio2_from_flow", "fio2_from_device", "low_flow_assumed",
                 "weight_assumed", "interpretation"):  # fmt: skip
        has = _lookup(tl["estimates"], name) & grp.pos
        est_any[name] = np.bincount(gid[has], minlength=G) > 0
    estimates = [";".join(n for n, v in est_any.items() if v[i]) for i in range(G)]
    # treatments: counted once per patient (on the rows of the first scale)
    once = grp.scale_code == grp.scale_code[0] if len(tl) else np.zeros(0, dtype=bool)
    pcode = pd.factorize(tl["patient_id"])[0]
    counts = {}
    for name in TREATMENTS:
        has = _lookup(tl["event"], name) & once
        counts[name] = np.bincount(pcode[has], minlength=int(pcode.max()) + 1 if len(pcode) else 0)
    gp = pcode[first]
    treatments = ["; ".join(f"{n} x{c[p]}" for n, c in counts.items() if c[p]) for p in gp]
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
            "patient_id": tl["patient_id"].to_numpy()[first].astype(str),
            "scale": tl["scale"].to_numpy()[first].astype(str),
            "scale_version": tl["scale_version"].to_numpy()[first],
            "max_grade": max_grade.astype(int),
            "onset_hours": np.where(infusion, onset, np.nan),
            "time_of_max_grade": pd.Series(at(at_max, times, np.datetime64("NaT"))),
            "hours_of_max_grade": at(at_max, hours, np.nan),
            "duration_hours": np.where(n_ep > 0, duration, np.nan),
            "n_episodes": n_ep.astype(int),
            "ongoing_at_last_observation": ongoing,
            "criterion_at_max": at(at_max, crit, ""),
            "treatments": treatments,
            "estimates": estimates,
            "infusion_charted": infusion.astype(bool),
            "followup_hours": hours[grp.last],
            "baseline_fever": np.bincount(gid[base_fever], minlength=G) > 0,
            "baseline_max_temperature_c": np.where(np.isfinite(base_max), base_max, np.nan),
        }
    )
    return out[list(PATIENT_COLUMNS)]
