"""``grade()``: observations in, timeline + per-patient + cohort tables out, for any scale.

The engine is vectorised over all patients at once (:mod:`cytosafe.clinical.states`,
:mod:`cytosafe.clinical.scales`). A Dask DataFrame partitioned by patient is graded
partition by partition on whatever Dask scheduler is active (a ``dask.distributed``
client included); a patient split across partitions is an error.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytosafe.clinical.criteria import criteria, criteria_version, settings_for
from cytosafe.clinical.episodes import patient_summary
from cytosafe.clinical.scales import DEFAULT_SCALE, get_scale
from cytosafe.clinical.scales._common import Derived, Graded, crs_signs, derive, gate
from cytosafe.clinical.scales._text import Text
from cytosafe.clinical.states import (
    _STATE_ITEMS,
    CARRIED_EVENTS,
    Carry,
    States,
    build_states,
    carry_forward,
)
from cytosafe.clinical.summary import cohort_summary
from cytosafe.errors import DataWarning, InputError
from cytosafe.schema.observations import (
    DEVICES,
    VASOPRESSORS,
    Observations,
    read_observation_table,
    read_observations,
    validate_observations,
)

__all__ = [
    "GradeResult",
    "grade",
    "grade_arrays",
    "grade_increment",
    "grade_states",
    "grade_table",
    "scale_label",
    "split_by_patient",
]

TIMELINE_COLUMNS = (
    "patient_id", "time", "hours", "scale", "scale_version", "grade", "criterion", "estimates",
    "temperature_c", "fever_required", "systolic_bp", "spo2", "oxygen_device", "oxygen_flow",
    "fio2", *VASOPRESSORS, "n_vasopressors", "ne_equivalent", "ice_score", "event", "baseline",
    "crs_present", "crs_signs",
)  # fmt: skip

#: The criterion of a row before the infusion: kept, shown, never graded.
BASELINE_CRITERION = "baseline (before infusion): not graded"
#: ... and of such a row with a fever (temperature >= the scale's ``fever_c``).
BASELINE_FEVER_CRITERION = "baseline fever (before infusion): not graded as CRS"


@dataclass
class GradeResult:
    """What :func:`grade` returns.

    Attributes
    ----------
    timeline:
        One row per patient x observation time x scale: the grade, the criterion that set
        it, the estimates it relied on and the states it was read from.
        ``baseline`` marks rows before the infusion: grade 0, criterion
        :data:`BASELINE_CRITERION` (or :data:`BASELINE_FEVER_CRITERION`), never graded.
    patients:
        One row per patient x scale (:func:`cytosafe.clinical.episodes.patient_summary`).
    cohort:
        The cohort table per scale (:func:`cytosafe.clinical.summary.cohort_summary`).
    quarantine:
        Input rows set aside (``errors="quarantine"``), with the reason.
    scales:
        The scales graded, as ``{name: label}`` (label: title, version, criteria file).
    settings:
        The settings each scale graded with.
    """

    timeline: pd.DataFrame
    patients: pd.DataFrame
    cohort: pd.DataFrame
    quarantine: pd.DataFrame
    scales: dict[str, str]
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)


def scale_label(name: str) -> str:
    """``"ASTCT consensus CRS grading 2019 (criteria file v1)"``."""
    meta = criteria()["scale"][name]
    return f"{name} {meta['version']} · {meta['title']} (criteria file v{criteria_version()})"


_EVENTS = ("infusion", "fluid_bolus", "antipyretic", "tocilizumab", "corticosteroid",
           "anakinra", "siltuximab", "death")  # fmt: skip


def _events(s) -> pd.Categorical:
    bits = np.zeros(len(s), dtype=np.int16)  # 8 events: small ints, a quarter of the traffic
    for i, name in enumerate(_EVENTS):
        bits |= s.observed[name].astype(np.int16) << np.int16(i)
    return Text.bits(bits, {1 << i: n for i, n in enumerate(_EVENTS)}).to_categorical()


def grade_arrays(
    s: States,
    scale: str,
    settings: dict,
    cache: dict | None = None,
    carry: dict[str, np.ndarray] | None = None,
) -> tuple[Graded, Derived | None]:
    """Grade, criterion and estimates of every row of a state table under one scale.

    The vectorised core of :func:`grade` (no tables built); ``cache`` shares the derived
    quantities between scales graded with the same shared settings. A CRS scale whose
    onset requires fever is gated (:func:`cytosafe.clinical.scales._common.gate`): its
    ``extra["crs_present"]`` says where CRS was present. ``carry``: per row, the scale's
    carried columns (:class:`cytosafe.clinical.states.Carry`).
    """
    mod = get_scale(scale)
    if mod.KIND != "CRS":
        return mod.grade(s, None, settings), None
    d = _derived(s, settings, {} if cache is None else cache, carry)
    graded, present = gate(s, d, mod.grade(s, d, settings), settings)
    graded.extra["crs_present"] = present
    return graded, d


def _derived(s: States, settings: dict, cache: dict, carry: dict | None = None) -> Derived:
    """The shared quantities of ``settings``, computed once per cache (scales with the
    same shared settings carry the same columns)."""
    key = repr([(k, settings[k]) for k in sorted(criteria()["common"])])
    if key not in cache:
        cache[key] = derive(s, settings, carry)
    return cache[key]


def grade_table(
    table: pd.DataFrame,
    scale: str,
    settings: dict,
    weight_assumed: set[str] | None = None,
) -> Graded:
    """Grade, criterion and estimates of every patient x observation time of a validated
    observation table (the rows of :func:`~cytosafe.clinical.states.build_states`, in
    patient then time order) under one scale: the grading core without the timeline.

    A scale with a fused compiled kernel (ASTCT 2019:
    :func:`cytosafe.clinical.scales.astct2019.grade_observations`) grades large tables
    straight from the observations; otherwise, and wherever that kernel does not apply,
    :func:`grade_arrays` grades the state table. Both give the same answers.
    """
    mod = get_scale(scale)
    fused = getattr(mod, "grade_observations", None)
    graded = fused(table, weight_assumed, settings) if fused is not None else None
    if graded is None:
        graded = grade_arrays(build_states(table, weight_assumed), mod.NAME, settings)[0]
    return graded


def grade_states(obs: Observations, scales: Sequence[str], options: dict | None) -> pd.DataFrame:
    """The timeline of validated observations under each of ``scales``."""
    return _grade_states(obs, scales, options, None, None)[0]


def grade_increment(
    obs: Observations, scales: Sequence[str], options: dict | None, carry: Carry | None
) -> tuple[pd.DataFrame, Carry]:
    """The timeline of new rows graded from what earlier rows left, and what they leave.

    ``obs`` holds, for each patient in ``carry``, only rows after those graded before
    (and after the infusion); other patients' rows are graded from their start. The
    rows are exactly those :func:`grade_states` gives over the whole record (the carry
    holds every quantity the rules read from earlier rows: :class:`Carry`).

    Returns
    -------
    timeline, carry:
        The new rows' timeline and the carry of every patient graded (others: none).
    """
    out: dict[str, Any] = {}
    tl = _grade_states(obs, scales, options, carry, out)[0]
    return tl, out.get("carry", Carry.empty())


def _per_row(s: States, frame: pd.DataFrame | None) -> dict[str, np.ndarray] | None:
    """A per-patient table as arrays over the rows of ``s`` (NaN for patients not in it)."""
    if frame is None or not len(frame) or not len(s):
        return None
    ids = s.patient_id[np.flatnonzero(s.first)]
    known = frame.reindex(pd.Index(ids, dtype=object))
    return {c: known[c].to_numpy(dtype=float)[s.patient_code] for c in known.columns}


def _carry_out(
    s: States,
    derived: dict[str, tuple[Derived, dict]],
    keep_hours: float,
) -> Carry:
    """What each patient's last row leaves for the rows after it (see :class:`Carry`)."""
    firsts = np.flatnonzero(s.first)
    last = np.append(firsts[1:], len(s)) - 1
    ids = pd.Index(s.patient_id[last], dtype=object, name="patient_id")
    cols: dict[str, np.ndarray] = {
        "zero": s.zero[last],
        "has_infusion": s.has_infusion[last].astype(float),
        "last_hours": s.hours[last],
    }
    for name in _STATE_ITEMS:
        cols["v:" + name] = s.values[name][last]
    init = s.init or {}
    idx = np.arange(len(s), dtype=float)
    fio2 = carry_forward(np.where(s.observed["fio2"], idx, np.nan), s.start,
                         init.get("fio2_at"))[last]  # fmt: skip
    dev = carry_forward(np.where(s.observed["oxygen_device"], idx, np.nan), s.start,
                        init.get("dev_at"))[last]  # fmt: skip
    # only the order of the two matters to the rows after: ranks -2 < -1
    both = ~np.isnan(fio2) & ~np.isnan(dev)
    cols["fio2_at"] = np.where(np.isnan(fio2), np.nan, np.where(both & (fio2 < dev), -2.0, -1.0))
    cols["dev_at"] = np.where(np.isnan(dev), np.nan, np.where(both & (dev < fio2), -2.0, -1.0))
    patients = pd.DataFrame(cols, index=ids)
    scales = {}
    for scale, (d, extra) in derived.items():
        sc = {
            "fever_seen": d.fever_seen[last].astype(float),
            "masked": d.fever_masked[last].astype(float),
            "high_begin": d.high_begin[last],
            "pressor_begin": d.pressor_begin[last],
        }
        for k in ("quiet", "quiet_begin", "fever_in_seg"):
            sc[k] = extra[k][last].astype(float) if k in extra else np.full(len(last), np.nan)
        scales[scale] = pd.DataFrame(sc, index=ids)
    # events of a bounded window: those that a later row's window can still reach
    code_last = s.hours[last]
    parts = []
    for item in CARRIED_EVENTS:
        rows = np.flatnonzero(s.observed[item])
        if len(rows):
            parts.append((s.patient_code[rows], s.hours[rows], np.ones(len(rows)), item))
        if s.prior_events and item in s.prior_events:
            pc, ph, pw = s.prior_events[item]
            parts.append((pc, ph, pw, item))
    frames = []
    for code, hours, weight, item in parts:
        keep = hours > code_last[code] - keep_hours
        if keep.any():
            frames.append(pd.DataFrame({"patient_id": ids.to_numpy(object)[code[keep]],
                                        "item": item, "hours": hours[keep],
                                        "weight": weight[keep]}))  # fmt: skip
    events = pd.concat(frames, ignore_index=True) if frames else Carry.empty().events
    return Carry(patients, scales, events)


def _grade_states(
    obs: Observations,
    scales: Sequence[str],
    options: dict | None,
    carry: Carry | None,
    out_carry: dict | None,
) -> tuple[pd.DataFrame]:
    s = build_states(obs.table, obs.weight_assumed, carry)
    v = s.values
    dev = v["oxygen_device"]
    device = pd.Categorical.from_codes(
        np.where(np.isnan(dev), 0, np.nan_to_num(dev) + 1).astype(np.int64), ["", *DEVICES]
    )
    frames = []
    cache: dict[str, Any] = {}
    # categorical: a million rows share a few thousand patient ids
    firsts = np.flatnonzero(s.first)
    patient_cat = pd.Categorical.from_codes(s.patient_code, categories=s.patient_id[firsts])
    derived: dict[str, tuple[Derived, dict]] = {}
    keep_hours = 0.0
    for name in scales:
        mod = get_scale(name)
        settings = settings_for(mod.NAME, (options or {}).get(mod.NAME))
        keep_hours = max([keep_hours] + [float(v) for k, v in settings.items()
                                         if k.endswith("_window_hours")])  # fmt: skip
        scale_carry = _per_row(s, carry.scales.get(mod.NAME)) if carry is not None else None
        fused = getattr(mod, "grade_observations", None)
        g = None
        if fused is not None and carry is None and out_carry is None:
            g = fused(obs.table, obs.weight_assumed, settings)
        if g is not None:  # the timeline's derived columns, from the state table
            d = _derived(s, settings, cache)
        else:
            g, d = grade_arrays(s, mod.NAME, settings, cache, scale_carry)
        if d is not None:
            derived[mod.NAME] = (d, g.extra)
        meta = criteria()["scale"][mod.NAME]
        grade_col = np.where(s.baseline, 0, g.grade)
        criterion = g.criterion.to_categorical()
        baseline_fever = s.baseline & (v["temperature"] >= float(settings["fever_c"]))
        if s.baseline.any():
            criterion = criterion.add_categories(
                [c for c in (BASELINE_CRITERION, BASELINE_FEVER_CRITERION)
                 if c not in criterion.categories]
            )  # fmt: skip
            criterion[s.baseline] = BASELINE_CRITERION
            criterion[baseline_fever] = BASELINE_FEVER_CRITERION
        frame = {
            "patient_id": patient_cat,
            "time": s.time,
            "hours": np.round(s.hours, 4),
            "scale": pd.Categorical.from_codes(np.zeros(len(s), np.int64), [mod.NAME]),
            "scale_version": pd.Categorical.from_codes(
                np.zeros(len(s), np.int64), [f"{meta['version']}/v{criteria_version()}"]
            ),
            "grade": grade_col.astype(np.asarray(g.grade).dtype),
            "criterion": criterion,
            "estimates": g.estimates.to_categorical(),
            "temperature_c": np.round(v["temperature"], 2),
            "fever_required": (~d.fever_masked)
            if d is not None and mod.NAME == "astct2019"
            else True,
            "systolic_bp": v["systolic_bp"],
            "spo2": v["spo2"],
            "oxygen_device": device,
            "oxygen_flow": v["oxygen_flow"],
            "fio2": np.round(d.fio2, 1) if d is not None else v["fio2"],
            **{p: v[p] for p in VASOPRESSORS},
            "n_vasopressors": (d.n_pressors + d.vasopressin_on) if d is not None else 0,
            "ne_equivalent": np.round(d.ne_equivalent, 3) if d is not None else np.nan,
            "ice_score": v["ice_score"],
            "event": _events(s),
            "baseline": s.baseline,
            # ICANS: the CRS gate does not apply (True) and no CRS sign joins its episodes
            "crs_present": g.extra.get("crs_present", np.ones(len(s), dtype=bool)),
            "crs_signs": crs_signs(s, d) if d is not None else np.zeros(len(s), dtype=bool),
        }
        frame["_has_infusion"] = s.has_infusion
        frame["_baseline_fever"] = baseline_fever
        frames.append(_frame(frame, len(s)))
    if out_carry is not None and len(s):
        out_carry["carry"] = _carry_out(s, derived, keep_hours)
    timeline = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return (_categorical(timeline),)


def _frame(columns: dict[str, Any], n: int) -> pd.DataFrame:
    """A DataFrame of the columns, not consolidated into 2-D blocks (consolidating a
    million-row timeline copies every column: 0.5 s); scalars are broadcast. Each column
    gets its own writable array (the state table shares read-only ones between items)."""
    seen: set[int] = set()
    series = []
    for name, value in columns.items():
        if np.ndim(value) == 0:
            value = np.full(n, value)
        elif isinstance(value, np.ndarray) and (not value.flags.writeable or id(value) in seen):
            value = value.copy()
        seen.add(id(value))
        series.append(pd.Series(value, name=name, copy=False))
    return pd.concat(series, axis=1, copy=False)


def _categorical(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as categoricals (concatenating different categories gives strings)."""
    for col in ("patient_id", "scale", "scale_version", "criterion", "estimates", "event",
                "oxygen_device"):  # fmt: skip
        if not isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].astype("category")
    return frame


def _as_observations(
    observations: Any, source: str | None, errors: str, timezone: str | None = None
) -> Observations:
    if isinstance(observations, Observations):
        return observations
    if isinstance(observations, (str, Path)):
        return read_observations(observations, errors=errors, timezone=timezone)
    if isinstance(observations, pd.DataFrame):
        return validate_observations(observations, source=source, errors=errors, timezone=timezone)
    raise InputError(
        f"cannot grade a {type(observations).__name__}",
        field="observations",
        expected="a pandas or Dask DataFrame, a CSV path, or Observations",
    )


def _partition(
    part: pd.DataFrame | Observations,
    scales: list[str],
    options: dict | None,
    errors: str,
    source,
    timezone,
    gaps: dict[str, float],
):
    """One part's timeline, patients and quarantine (a part holds whole patients)."""
    if isinstance(part, Observations):
        obs = part
    else:
        obs = validate_observations(part, source=source, errors=errors, timezone=timezone)
    tl = grade_states(obs, scales, options)
    return tl, patient_summary(tl, obs.table, gap_hours=gaps), obs.quarantine


def _grade_part(task: tuple) -> tuple:
    """:func:`_partition` of one task (a module-level function: workers import it)."""
    return _partition(*task)


#: The hidden column that carries each raw row's position through a part's validation,
#: so that the parts' quarantined rows are merged in the order of the input.
_POSITION = "_cytosafe_position"


def _raw_table(observations: Any, source: str | None) -> tuple[pd.DataFrame, str | None] | None:
    """The unvalidated table of a DataFrame or a CSV/XLSX path, read as
    :func:`~cytosafe.schema.observations.read_observations` reads it (the same
    :func:`~cytosafe.schema.observations.read_observation_table`); None for anything
    else or a file that does not read (one process then says why)."""
    if isinstance(observations, pd.DataFrame):
        return observations, source
    if not isinstance(observations, (str, Path)):
        return None
    path = Path(observations)
    if not path.is_file():
        return None
    try:
        return read_observation_table(path), str(path)
    except InputError:
        return None


def _ranges(codes: np.ndarray, n_parts: int) -> np.ndarray:
    """Each row's part: runs of consecutive patient codes with about equal rows each."""
    counts = np.bincount(codes)
    bounds = np.cumsum(counts) * n_parts // max(int(counts.sum()), 1)
    part_of_patient = np.minimum(np.concatenate([[0], bounds[:-1]]), n_parts - 1)
    return part_of_patient[codes]


def split_by_patient(observations: Any, n_parts: int, source: str | None = None) -> list | None:
    """The observations as up to ``n_parts`` tables of whole patients, in patient order.

    A raw table (a DataFrame, or a CSV/XLSX path read as
    :func:`~cytosafe.schema.observations.read_observations` reads it) is split before
    validation, each row keeping its ``source_row`` and its position; validated
    :class:`Observations` are split as they are. Returns ``(parts, source)``, or None
    when the input cannot be split (fewer than two patients, a missing column, anything
    that is not a table): it is then graded in one process, which says what is wrong.
    """
    if isinstance(observations, Observations):
        table = observations.table
        codes = pd.factorize(table["patient_id"], sort=True)[0]
        if len(np.unique(codes)) < 2:
            return None
        part = _ranges(codes, n_parts)
        empty = observations.quarantine.iloc[:0]
        parts = []
        for k in np.unique(part):
            rows = table.loc[part == k]
            ids = set(rows["patient_id"].astype(str))
            parts.append(Observations(rows, empty, observations.weight_assumed & ids))
        return [parts, source]
    raw = _raw_table(observations, source)
    if raw is None:
        return None
    df, source = raw
    if "patient_id" not in df.columns or len(df) < 2:
        return None
    df = df.reset_index(drop=True)
    # the patient as validation reads it (blank: quarantined, in the first part)
    pid = df["patient_id"].astype(object).where(df["patient_id"].notna(), "")
    codes, uniques = pd.factorize(pid.astype(str).str.strip(), sort=True)
    if len(uniques) < 2:
        return None
    # source_row as validation fills it over the whole table (the CSV line)
    line = pd.Series(np.arange(len(df)) + 2)
    if "source_row" in df.columns:
        row = pd.to_numeric(df["source_row"], errors="coerce").fillna(line).astype(np.int64)
    else:
        row = line
    df = df.assign(source_row=row.to_numpy(), **{_POSITION: np.arange(len(df))})
    part = _ranges(codes, n_parts)
    return [[df.loc[part == k] for k in np.unique(part)], source]


def _merge_parts(results: list[tuple], names: list[str]) -> tuple:
    """The parts' timelines, patients and quarantines joined as one process gives them:
    each scale's rows of every part in patient order, the scales one after the other;
    the quarantined rows in the order of the input."""
    timelines = [r[0] for r in results]
    if len(names) > 1:
        timelines = [tl.loc[tl["scale"] == n] for n in names for tl in timelines]
    timeline = _categorical(pd.concat(timelines, ignore_index=True))
    patients = pd.concat([r[1] for r in results], ignore_index=True)
    quarantines = [r[2] for r in results]
    found = [q for q in quarantines if len(q)]
    quarantine = pd.concat(found, ignore_index=True) if found else quarantines[0]
    if _POSITION in quarantine.columns:
        quarantine = quarantine.sort_values(_POSITION, kind="stable")
        quarantine = quarantine.drop(columns=_POSITION).reset_index(drop=True)
    return timeline, patients, quarantine


def _with_gap(names: list[str], options: dict | None, gap_hours: float | None) -> dict:
    """The options with ``episode_gap_hours`` set on every scale that does not name it."""
    out = {k: dict(v or {}) for k, v in (options or {}).items()}
    if gap_hours is None:
        return out
    try:
        gap = float(gap_hours)
    except (TypeError, ValueError):
        gap = float("nan")
    if not np.isfinite(gap) or gap < 0:
        raise InputError(
            f"episode gap {gap_hours!r} is not a number of hours >= 0",
            field="episode_gap_hours",
            expected="hours >= 0 (default 24)",
        )
    for name in names:
        out.setdefault(name, {}).setdefault("episode_gap_hours", gap)
    return out


def _warn_baseline_fever(patients: pd.DataFrame) -> None:
    """Say which patients had a fever before their infusion (kept as baseline, not CRS)."""
    ids = sorted(set(patients.loc[patients["baseline_fever"], "patient_id"]))
    if not ids:
        return
    shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
    warnings.warn(
        f"{len(ids)} patient(s) had a fever before the infusion, kept as baseline and not "
        f"graded as CRS: {shown} (patients.csv: baseline_fever)",
        DataWarning,
        stacklevel=3,
    )


def grade(
    observations: Any,
    scale: str | Sequence[str] = DEFAULT_SCALE,
    *,
    options: dict[str, dict[str, Any]] | None = None,
    errors: str = "raise",
    source: str | None = None,
    timezone: str | None = None,
    episode_gap_hours: float | None = None,
    parts: int = 1,
    map_parts: Callable[[Callable, list], Any] | None = None,
) -> GradeResult:
    """Grade CRS (or ICANS) at every observation time of every patient.

    Parameters
    ----------
    observations:
        The observation table (:mod:`cytosafe.clinical.observations`): a pandas
        DataFrame, a CSV/XLSX path, validated :class:`Observations`, or a Dask DataFrame
        whose partitions each hold whole patients (e.g. after
        ``ddf.set_index("patient_id")`` or ``ddf.shuffle("patient_id")``).
    scale:
        One scale name or several (``"astct2019"``, ``"lee2014"``, ``"ctcae5"``,
        ``"penn"``, ``"mskcc"``, ``"cartox"``, ``"icans"``); several give stacked tables
        and can be compared with :func:`cytosafe.clinical.concordance`.
    options:
        Per scale, settings that replace the defaults of ``data/clinical_scales.toml``,
        e.g. ``{"astct2019": {"hypotension_sbp_below": 100}}``. Unknown keys are errors.
    errors:
        ``"raise"`` or ``"quarantine"`` (see
        :func:`cytosafe.clinical.observations.validate_observations`).
    source:
        File name for error messages of a DataFrame input.
    timezone:
        An IANA time-zone name (``"Europe/Berlin"``) in which times written without a
        UTC offset are read. Without it they are read as UTC, and a patient whose times
        mix both kinds is an :class:`InputError` (see
        :func:`cytosafe.clinical.validate_observations`).
    episode_gap_hours:
        The documented period afebrile, off vasopressors and off oxygen support after
        which CRS resolves and an episode ends (default 24 h, ``[common.episode_gap_hours]``
        of the criteria file; a scale's own ``options`` entry wins). Shorter quiet periods
        do not split an episode (:func:`cytosafe.clinical.episodes`).
    parts, map_parts:
        Grade a pandas table (or its file, or validated :class:`Observations`) in up to
        ``parts`` parts of whole patients, each validated and graded by
        ``map_parts(func, tasks)`` (a ``map`` that returns the results in order, e.g. over
        processes or a Dask cluster: :func:`cytosafe.workflows.run_grading`). The tables
        are those of one part, the quarantined rows in the order of the input; a part that
        raises (a bad row with ``errors="raise"``, a part whose rows were all set aside)
        sends the whole table through one process, which gives its answer or error.

    CRS scales grade only while CRS is present: from the first fever after the infusion
    (or after a resolution) on, when the scale's ``onset_requires_fever`` is true (the
    default of every CRS scale, each documented in the criteria file); hypotension or
    hypoxia before it is graded 0 with the reason, and ``crs_present`` in the timeline
    says where the gate was open.

    Observations before the patient's infusion are kept as the baseline: shown in the
    timeline (``baseline`` True, grade 0) but never graded, so a fever before the
    infusion neither starts an episode nor counts in the cohort's incidence. It is
    reported in ``patients.baseline_fever`` and as a :class:`~cytosafe.errors.DataWarning`.

    Returns
    -------
    GradeResult

    Examples
    --------
    >>> import pandas as pd
    >>> from cytosafe.clinical import grade
    >>> obs = pd.DataFrame({
    ...     "patient_id": ["P1"] * 3,
    ...     "time": ["2024-01-01T08:00", "2024-01-02T08:00", "2024-01-02T09:00"],
    ...     "item": ["infusion", "temperature", "oxygen_device"],
    ...     "value": ["axi-cel", "38.4", "blow_by"],
    ...     "unit": ["", "C", ""],
    ... })
    >>> grade(obs).patients[["patient_id", "max_grade", "onset_hours"]].to_dict("records")
    [{'patient_id': 'P1', 'max_grade': 2, 'onset_hours': 24.0}]
    """
    scales = [scale] if isinstance(scale, str) else list(scale)
    if not scales:
        raise InputError("no scale given", field="scale", expected="one or more scale names")
    names = [get_scale(s).NAME for s in scales]
    for key in options or {}:
        get_scale(key)
    options = _with_gap(names, options, episode_gap_hours)
    settings = {n: settings_for(n, options.get(n)) for n in names}
    # ICANS keeps gap 0: every time graded 0 ends an ICANS episode
    gaps = {
        n: float(settings[n]["episode_gap_hours"]) if get_scale(n).KIND == "CRS" else 0.0
        for n in names
    }
    # Import Dask only for a Dask input: importing it costs most of a second.
    task = (names, options, errors, source, timezone, gaps)
    split = None
    if map_parts is not None and parts > 1:
        split = split_by_patient(observations, parts, source)
    if type(observations).__module__.startswith("dask"):
        from dask import compute, delayed

        ddf = observations
        if ddf.index.name == "patient_id" and "patient_id" not in ddf.columns:
            ddf = ddf.reset_index()
        results = [r for r in compute(*[delayed(_partition)(p, *task)
                                        for p in ddf.to_delayed()]) if r is not None]  # fmt: skip
        timeline = _categorical(pd.concat([r[0] for r in results], ignore_index=True))
        patients = pd.concat([r[1] for r in results], ignore_index=True)
        quarantine = pd.concat([r[2] for r in results], ignore_index=True)
        split_patient = patients.duplicated(["patient_id", "scale"])
        if split_patient.any():
            pid = patients.loc[split_patient, "patient_id"].iat[0]
            raise InputError(
                f"patient '{pid}' appears in more than one partition",
                field="patient_id",
                expected="a Dask DataFrame partitioned by patient (ddf.shuffle('patient_id'))",
            )
    elif split is not None:
        pieces, part_source = split
        try:
            results = list(map_parts(_grade_part, [(p, *task[:3], part_source, *task[4:])
                                                   for p in pieces]))  # fmt: skip
        except InputError:
            # a part whose rows were all set aside, or an error: one process gives the
            # whole table's answer (the same result, or the error it raises first)
            results = None
        if results is not None:
            timeline, patients, quarantine = _merge_parts(results, names)
            if isinstance(observations, Observations):
                quarantine = observations.quarantine  # set aside before the split
        else:
            obs = _as_observations(observations, source, errors, timezone)
            timeline = grade_states(obs, names, options)
            patients = patient_summary(timeline, obs.table, gap_hours=gaps)
            quarantine = obs.quarantine
    else:
        obs = _as_observations(observations, source, errors, timezone)
        timeline = grade_states(obs, names, options)
        patients = patient_summary(timeline, obs.table, gap_hours=gaps)
        quarantine = obs.quarantine
    for hidden in ("_has_infusion", "_baseline_fever"):
        del timeline[hidden]  # in place: no copy of the other columns
    _warn_baseline_fever(patients)
    order = {n: i for i, n in enumerate(names)}
    patients = patients.sort_values(
        ["scale", "patient_id"],
        key=lambda c: c.map(order) if c.name == "scale" else c,
        kind="stable",
    ).reset_index(drop=True)
    return GradeResult(
        timeline=timeline,
        patients=patients,
        cohort=cohort_summary(patients),
        quarantine=quarantine,
        scales={n: scale_label(n) for n in names},
        settings=settings,
    )
