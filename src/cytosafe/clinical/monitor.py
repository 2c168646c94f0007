"""Live (incremental) grading and prediction of a monitored cohort, and its alerts.

**Predictions and alerts support a clinician's judgement and do not replace it.**

:class:`Monitor` takes observations as they arrive, batch by batch, each batch named by
its *source* (a file path, a FHIR poll), and keeps one :class:`PatientState` per patient:
the current grade per scale, the maximum grade and the onset of the first grade >= 1, the
CRS episode state (CRS present now, since when), the fever onset, the last vital signs,
each predictor's call and the alerts already raised. Only the patients a batch touches
are processed; the others are not looked at.

What is kept, and why (the look-back of the rules):

* per patient and scale, the **carried state** (:class:`cytosafe.clinical.states.Carry`):
  exactly what the rules read from before a row, as a summary, not as the rows. The
  scales' look-back has no fixed bound: ASTCT's fever masking holds from the first
  antipyretic or anti-cytokine treatment after a fever to the end of follow-up (Lee et
  al., Biol Blood Marrow Transplant 2019;25:625), so the carry holds the flags "a fever
  since the infusion" and "masked"; CRS is present from the first fever until a
  documented resolution (``episode_gap_hours``): the carry holds whether the last row was
  quiet, since when, and whether a fever opened the current episode; vasopressor doses
  count once held 3 h: the hour the current run began; every state item (vital signs,
  device, flow, FiO2, rates) its last value and which of FiO2 and device came last; hour
  0. Penn's windows are bounded (boluses and IV therapies within 24 h): their recent
  event times are kept. A batch's new rows of a patient are graded from this state
  alone (:func:`cytosafe.clinical.grading.grade_increment`), its earlier rows are not
  read again, and the state is carried on.
* the patient's validated observations (the *window*), read only to reprocess a late
  patient and by a predictor whose window is still open: for each predictor, only its
  inputs (``data/crs_predictors.toml``: Hay's temperature and MCP-1 within 36 h,
  Pennisi's LDH, CRP and platelets at a time point). Once the patient's data pass the
  predictor's last window, its call is final and is not re-evaluated unless an
  observation arrives late inside a window.

The grades of a batch equal those of :func:`cytosafe.clinical.grading.grade_states` over
the patient's whole record, and the calls those of :func:`cytosafe.clinical.predict.predict`
at the patient's latest hour, so that **incremental equals a full regrade exactly**,
after every batch (a property test checks it over random batch splits).

**Late (out-of-order) observations.** A batch whose observation for a patient is not
later than the last one already processed, a source whose content changed (rows removed
or altered), a second weight, an infusion charted after other rows, or anything after a
death: that patient's raw rows are validated again from all sources and the patient is
*reprocessed from the earliest affected time* (its whole record graded again, and its
carried state rebuilt): timeline rows from then on are emitted
again (``Update.revised_from``) and replace the earlier ones; an alert already raised is
not raised twice.

Alerts (:class:`Alert`): ``grade_increase`` (per scale, a grade above the previous row's),
``predictor_positive`` (a call turning positive) and ``vital_sign`` (a reading crossing an
ASTCT threshold of ``data/monitor_alerts.toml``: temperature >= 38 C, systolic pressure
< 90 mmHg, oxygen support above room air), each with its reason and the time of the
observation that raised it.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cytosafe import data
from cytosafe.clinical.criteria import settings_for
from cytosafe.clinical.grading import _with_gap, grade_increment
from cytosafe.clinical.predict import DISCLAIMER, POSITIVE, predict, predictor_spec
from cytosafe.clinical.scales import DEFAULT_SCALE, get_scale
from cytosafe.clinical.states import Carry
from cytosafe.errors import DataWarning, InputError
from cytosafe.schema.observations import (
    DEVICES,
    LAB_ITEMS,
    Observations,
    validate_observations,
)

__all__ = [
    "ALERT_DISCLAIMER",
    "ALERT_KINDS",
    "DISCLAIMER",
    "Alert",
    "Monitor",
    "PatientState",
    "Update",
    "alert_thresholds",
]

#: Said by every alert (``data/monitor_alerts.toml``).
ALERT_DISCLAIMER = "Predictions and alerts support a clinician's judgement and do not replace it."
#: What an alert can be about.
ALERT_KINDS = ("grade_increase", "predictor_positive", "vital_sign")
#: The raw columns a source gives (``source_file``/``source_row`` added when absent).
RAW_COLUMNS = ("patient_id", "time", "item", "value", "unit", "source_file", "source_row")
#: The timeline columns an update emits (those of :func:`cytosafe.clinical.grade`).
EMITTED_COLUMNS = ("patient_id", "time", "hours", "scale", "grade", "criterion", "estimates",
                   "crs_present", "baseline", "temperature_c", "systolic_bp", "spo2",
                   "oxygen_device")  # fmt: skip
_VITALS = ("temperature", "systolic_bp", "spo2", "oxygen_device", "oxygen_flow", "fio2")
_DOSING_WEIGHT = "(dosing weight lent by the monitor)"


def alert_thresholds() -> dict[str, dict[str, Any]]:
    """The vital-sign alert thresholds of ``data/monitor_alerts.toml`` (read only)."""
    return data.load("monitor_alerts.toml", schema="cytosafe.monitor_alerts")["vital"]


@dataclass
class Alert:
    """One alert: its kind, the reason in words and the time of the observation."""

    patient_id: str
    kind: str
    reason: str
    time: pd.Timestamp
    scale: str | None = None
    predictor: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        """What makes two alerts the same (an alert is raised once)."""
        return (self.patient_id, self.kind, self.scale, self.predictor, self.time,
                self.details.get("grade"), self.details.get("item"))  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the time as ISO 8601, and the disclaimer."""
        out = asdict(self)
        out["time"] = _iso(self.time)
        out["note"] = ALERT_DISCLAIMER
        return out


@dataclass
class PatientState:
    """What the monitor keeps of one patient between batches."""

    patient_id: str
    infusion: pd.Timestamp | None = None
    first_time: pd.Timestamp | None = None
    last_time: pd.Timestamp | None = None
    #: per scale: grade at the last observation time, maximum, and hours of the first >= 1
    grade: dict[str, int] = field(default_factory=dict)
    max_grade: dict[str, int] = field(default_factory=dict)
    onset_hours: dict[str, float] = field(default_factory=dict)
    #: per CRS scale: whether CRS is present now (an episode open), and since when
    crs_present: dict[str, bool] = field(default_factory=dict)
    episode_since: dict[str, pd.Timestamp | None] = field(default_factory=dict)
    #: grades of the last 24 h per scale, oldest first: the trend (and their times)
    trend: dict[str, list[int]] = field(default_factory=dict)
    trend_times: dict[str, list[pd.Timestamp]] = field(default_factory=dict)
    fever_onset: pd.Timestamp | None = None
    last_vitals: dict[str, tuple[pd.Timestamp, float]] = field(default_factory=dict)
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: predictor -> the hour it was evaluated at (None: all data, its windows are past)
    predicted_at: dict[str, float | None] = field(default_factory=dict)
    dosing_weight: tuple[pd.Timestamp, float] | None = None  # the first weight (UTC, kg)
    weight_assumed: bool = False
    dead: bool = False
    alerted: set = field(default_factory=set)

    @property
    def hours_since_infusion(self) -> float | None:
        """Hours from the infusion to the last observation (None without an infusion)."""
        if self.infusion is None or self.last_time is None:
            return None
        return (self.last_time - self.infusion).total_seconds() / 3600.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready state (for the ward view, the store and ``--json``)."""
        return {
            "patient_id": self.patient_id,
            "infusion": _iso(self.infusion),
            "last_time": _iso(self.last_time),
            "hours_since_infusion": self.hours_since_infusion,
            "grade": dict(self.grade),
            "max_grade": dict(self.max_grade),
            "onset_hours": dict(self.onset_hours),
            "crs_present": dict(self.crs_present),
            "episode_since": {k: _iso(v) for k, v in self.episode_since.items()},
            "trend": {k: list(v) for k, v in self.trend.items()},
            "fever_onset": _iso(self.fever_onset),
            "last_vitals": {
                k: {"time": _iso(t), "value": _plain(v)} for k, (t, v) in self.last_vitals.items()
            },
            "predictions": {k: _call(v) for k, v in self.predictions.items()},
            "note": ALERT_DISCLAIMER,
        }


def _iso(t: Any) -> str | None:
    """ISO 8601 with its UTC offset (validated times are UTC, kept without a zone)."""
    if t is None or pd.isna(t):
        return None
    t = pd.Timestamp(t)
    return (t.tz_localize("UTC") if t.tzinfo is None else t).isoformat()


_CALL = ("status", "score", "reason", "missing", "positive_time", "evaluated_at_hours")


def _call(row: dict[str, Any]) -> dict[str, Any]:
    return {c: _plain(row.get(c)) for c in _CALL}


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


@dataclass
class Update:
    """What one batch changed.

    Attributes
    ----------
    timeline:
        The timeline rows (columns :data:`EMITTED_COLUMNS`) of the patients touched, from
        ``revised_from[patient]`` on: they replace any earlier rows of those patients at
        or after that time.
    revised_from:
        Per patient touched, the earliest time whose rows were (re)emitted.
    late:
        Patients reprocessed because of a late or changed observation.
    predictions:
        The prediction rows (:data:`cytosafe.clinical.predict.PREDICTION_COLUMNS`) that
        were evaluated for this batch.
    alerts:
        Alerts raised by this batch.
    quarantine:
        Rows set aside (``errors="quarantine"``).
    added:
        The raw rows read for the first time (a changed source: only its new rows).
    removed:
        The raw rows a changed source no longer holds (removed or corrected there): what
        a store of the rows read marks as superseded.
    """

    timeline: pd.DataFrame
    revised_from: dict[str, pd.Timestamp]
    late: list[str]
    predictions: pd.DataFrame
    alerts: list[Alert]
    quarantine: pd.DataFrame
    added: pd.DataFrame = field(default_factory=pd.DataFrame)
    removed: pd.DataFrame = field(default_factory=pd.DataFrame)

    def merge_into(self, timeline: pd.DataFrame | None) -> pd.DataFrame:
        """An accumulated timeline with this update applied (earlier rows replaced)."""
        if timeline is None or not len(timeline):
            return self.timeline.reset_index(drop=True)
        keep = timeline["time"].to_numpy() < _since(timeline["patient_id"], self.revised_from)
        parts = [x for x in (timeline.loc[keep], self.timeline) if len(x)]
        out = pd.concat(parts, ignore_index=True) if parts else self.timeline.iloc[:0]
        return out.sort_values(["scale", "patient_id", "time"], kind="stable").reset_index(
            drop=True
        )


def _since(patients: pd.Series, times: Mapping[str, pd.Timestamp]) -> np.ndarray:
    """Each row's patient's time in ``times`` (the latest representable time if absent)."""
    keys = pd.Index(list(times), dtype=object)
    values = np.array([pd.Timestamp(t).value for t in times.values()] + [np.iinfo(np.int64).max])
    pos = keys.get_indexer(np.asarray(patients, dtype=object))
    return values[np.where(pos >= 0, pos, len(keys))].astype("datetime64[ns]")


def _raw(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in ("patient_id", "time", "item", "value") if c not in frame.columns]
    if missing:
        raise InputError(
            "missing required column(s): " + ", ".join(missing),
            file=source,
            expected="patient_id, time, item, value, unit",
        )
    out = frame.copy()
    if "unit" not in out:
        out["unit"] = ""
    if "source_file" not in out:
        out["source_file"] = source
    if "source_row" not in out:
        out["source_row"] = np.arange(len(out)) + 2  # CSV lines: the header is line 1
    out = out[list(RAW_COLUMNS)].astype(
        {c: str for c in ("patient_id", "time", "item", "value", "unit")}
    )
    out["patient_id"] = out["patient_id"].str.strip()
    return out.reset_index(drop=True)


_KEY = ["patient_id", "time", "item", "value", "unit"]


class Monitor:
    """Incremental grading, prediction and alerts over observations as they arrive.

    Parameters
    ----------
    scales:
        Scale names graded (default ASTCT 2019).
    predictors:
        Predictor names of ``data/crs_predictors.toml`` evaluated.
    options:
        Per scale settings, as for :func:`cytosafe.clinical.grade`.
    episode_gap_hours:
        As for :func:`cytosafe.clinical.grade`.
    timepoint, cutoffs:
        As for :func:`cytosafe.clinical.predict.predict`.
    errors:
        ``"raise"`` (default) or ``"quarantine"``.
    timezone:
        IANA time zone of times written without an offset.

    Examples
    --------
    >>> import pandas as pd
    >>> from cytosafe.clinical.monitor import Monitor
    >>> m = Monitor()
    >>> u = m.process({"day0.csv": pd.DataFrame({
    ...     "patient_id": ["P1", "P1"], "time": ["2024-01-01T08:00", "2024-01-02T08:00"],
    ...     "item": ["infusion", "temperature"], "value": ["axi-cel", "38.4"],
    ...     "unit": ["", "C"]})})
    >>> [a.kind for a in u.alerts]
    ['grade_increase', 'vital_sign']
    >>> m.patients["P1"].grade
    {'astct2019': 1}
    """

    def __init__(
        self,
        scales: str | Sequence[str] = DEFAULT_SCALE,
        predictors: Sequence[str] = ("hay2017",),
        *,
        options: dict[str, dict[str, Any]] | None = None,
        episode_gap_hours: float | None = None,
        timepoint: str = "day_plus1",
        cutoffs: dict[str, float] | None = None,
        errors: str = "raise",
        timezone: str | None = None,
    ) -> None:
        names = [scales] if isinstance(scales, str) else list(scales)
        if not names:
            raise InputError("no scale given", field="scale", expected="one or more scale names")
        self.scales = [get_scale(s).NAME for s in names]
        self.options = _with_gap(self.scales, options, episode_gap_hours)
        self.settings = {n: settings_for(n, self.options.get(n)) for n in self.scales}
        self.predictors = list(predictors)
        self._horizon: dict[str, float] = {}
        self._inputs: dict[str, set[str]] = {}
        for name in self.predictors:
            spec = predictor_spec(name)
            if spec["kind"] == "tree":
                hi = float(spec["window_hours"][1])
                items = {spec["fever"]["item"], spec["mcp1"]["item"]}
            elif spec["kind"] == "index":
                points = spec["timepoints"]
                if timepoint not in points:
                    raise InputError(
                        f"unknown time point '{timepoint}' of {name}",
                        field="timepoint",
                        expected=" | ".join(points),
                    )
                hi = float(points[timepoint]["window_hours"][1])
                items = set(spec["inputs"])
            else:  # read at any time: never final
                hi, items = np.inf, set(spec.get("inputs", []))
            self._horizon[name], self._inputs[name] = hi, items | {"infusion"}
        self.timepoint = timepoint
        self.cutoffs = dict(cutoffs or {})
        if errors not in ("raise", "quarantine"):
            raise InputError(f"unknown errors mode '{errors}'", field="errors",
                             expected="raise | quarantine")  # fmt: skip
        self.errors = errors
        self.timezone = timezone
        self.patients: dict[str, PatientState] = {}
        self._sources: dict[str, pd.DataFrame] = {}
        self._window = pd.DataFrame()  # validated rows of every patient
        #: what each patient's graded rows leave for the rows after (grading resumes here)
        self._carry = Carry.empty()
        #: validated rows passed to grading by the last batch, and in all
        self.rows_graded_last = 0
        self.rows_graded = 0
        self._fever_c = {n: float(self.settings[n]["fever_c"]) for n in self.scales}

    # --- input ---------------------------------------------------------------------------

    def process(self, batch: Mapping[str, pd.DataFrame]) -> Update:
        """Process a batch: ``{source: rows}``, each source's rows as it now stands.

        A source seen before is replaced by its new rows (a file that changed); rows
        already read from it are not read twice, and rows removed or altered make the
        patient's record late (reprocessed from the earliest affected time). A batch that
        raises (bad input with ``errors="raise"``) leaves the monitor as it was.
        """
        kept = (dict(self._sources), self._window, self._carry,
                {p: copy.copy(st) for p, st in self.patients.items()})  # fmt: skip
        try:
            return self._process(batch)
        except Exception:
            self._sources, self._window, self._carry, self.patients = kept
            raise

    def _process(self, batch: Mapping[str, pd.DataFrame]) -> Update:
        added, removed = [], []
        for source, frame in batch.items():
            rows = _raw(frame, str(source))
            old = self._sources.get(str(source))
            if old is None:
                added.append(rows)
            else:
                both = rows.merge(old[_KEY], on=_KEY, how="left", indicator=True)
                added.append(rows.loc[(both["_merge"] == "left_only").to_numpy()])
                gone = old.merge(rows[_KEY], on=_KEY, how="left", indicator=True)
                removed.append(old.loc[(gone["_merge"] == "left_only").to_numpy()])
            self._sources[str(source)] = rows
        new = pd.concat(added, ignore_index=True) if added else pd.DataFrame(columns=RAW_COLUMNS)
        gone = pd.concat(removed, ignore_index=True) if removed else new.iloc[:0]
        touched = set(new["patient_id"]) | set(gone["patient_id"])
        if not touched:
            return self._empty()

        late = set(gone["patient_id"])
        fast_rows, quarantine = self._validate_new(new, late)
        if len(fast_rows):
            late |= self._late_patients(fast_rows, new)
            fast_rows = fast_rows.loc[~fast_rows["patient_id"].isin(late)]
        old_window = self._window
        revised_from: dict[str, pd.Timestamp] = {}
        if late:
            redone, q = self._revalidate(sorted(late))
            quarantine = pd.concat([x for x in (quarantine, q) if len(x)] or [q], ignore_index=True)
        else:
            redone = old_window.iloc[:0]
        window = self._window
        if len(window):
            window = window.loc[~window["patient_id"].isin(late)]
        self._window = pd.concat(
            [x for x in (window, fast_rows, redone) if len(x)] or [old_window.iloc[:0]],
            ignore_index=True,
        )
        if len(fast_rows):
            for pid, t in fast_rows.groupby("patient_id", sort=False)["time"].min().items():
                revised_from[pid] = t
        for pid in sorted(late):
            revised_from[pid] = self._earliest_change(pid, old_window, redone)
        revised_from = {p: t for p, t in revised_from.items() if t is not None}
        touched = [p for p in sorted(touched) if p in revised_from]
        update = self._grade(touched, revised_from, sorted(late), fast_rows, redone, quarantine)
        update.added, update.removed = new, gone
        return update

    def _empty(self) -> Update:
        return Update(pd.DataFrame(columns=EMITTED_COLUMNS), {}, [], pd.DataFrame(), [],
                      pd.DataFrame())  # fmt: skip

    def _validate_new(self, new: pd.DataFrame, late: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Validate the new rows of patients not already late, each with its dosing weight."""
        rows = new.loc[~new["patient_id"].isin(late)]
        if not len(rows):
            return pd.DataFrame(), pd.DataFrame()
        lent = [
            (pid, *st.dosing_weight)
            for pid in rows["patient_id"].unique()
            if (st := self.patients.get(pid)) is not None and st.dosing_weight is not None
        ]
        if lent:
            w = pd.DataFrame(lent, columns=["patient_id", "utc", "kg"])
            offset = rows["time"].str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
            with_offset = offset.groupby(rows["patient_id"]).any()
            utc = pd.to_datetime(w["utc"]).dt.tz_localize("UTC")
            # written as the patient's times are, so that validation reads it back alike
            local = utc.dt.tz_convert(self.timezone) if self.timezone else utc
            aware = w["patient_id"].map(with_offset).to_numpy(dtype=bool)
            text = np.where(
                aware,
                utc.dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00").to_numpy(dtype=object),
                local.dt.tz_localize(None)
                .dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
                .to_numpy(dtype=object),
            )
            lent_rows = pd.DataFrame({
                "patient_id": w["patient_id"], "time": text, "item": "weight",
                "value": [repr(float(x)) for x in w["kg"]], "unit": "kg",
                "source_file": _DOSING_WEIGHT, "source_row": 0,
            })  # fmt: skip
            rows = pd.concat([rows, lent_rows], ignore_index=True)
        obs = validate_observations(rows, errors=self.errors, timezone=self.timezone)
        table = _plain_table(obs.table)
        table = table.loc[table["source_file"] != _DOSING_WEIGHT].reset_index(drop=True)
        for pid in obs.weight_assumed:
            self._state(pid).weight_assumed = True
        return table, obs.quarantine

    def _late_patients(self, rows: pd.DataFrame, new: pd.DataFrame) -> set[str]:
        """Patients whose new rows cannot simply be appended (see the module docstring):
        not later than the last row kept, after a death, a weight or an infusion."""
        item = rows["item"]
        by = rows.assign(_w=item == "weight", _i=item == "infusion").groupby(
            "patient_id", sort=False
        )
        flags = by.agg(first=("time", "min"), weight=("_w", "any"), infusion=("_i", "any"))
        known = {
            p: st.last_time
            for p in flags.index
            if (st := self.patients.get(p)) is not None and st.last_time is not None
        }
        if not known:
            return set()
        flags = flags.loc[list(known)]
        last = pd.Series(known)
        dead = flags.index.isin([p for p in known if self.patients[p].dead])
        late = (flags["first"] <= last) | dead | flags["weight"] | flags["infusion"]
        return set(flags.index[late.to_numpy()])

    def _revalidate(self, pids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Validate the late patients' raw rows again, from every source."""
        raw = pd.concat(
            [s.loc[s["patient_id"].isin(pids)] for s in self._sources.values()], ignore_index=True
        )
        if not len(raw):
            for pid in pids:
                self.patients.pop(pid, None)
            return pd.DataFrame(), pd.DataFrame()
        obs = validate_observations(raw, errors=self.errors, timezone=self.timezone)
        for pid in pids:
            self._state(pid).weight_assumed = pid in obs.weight_assumed
        return _plain_table(obs.table), obs.quarantine

    def _earliest_change(
        self, pid: str, old_window: pd.DataFrame, redone: pd.DataFrame
    ) -> pd.Timestamp | None:
        """The earliest time at which the late patient's record changed."""
        cols = ["time", "item", "value_num"]
        old = old_window.loc[old_window["patient_id"] == pid, cols] if len(old_window) else None
        new = redone.loc[redone["patient_id"] == pid, cols] if len(redone) else None
        if new is None or not len(new):
            return None
        if old is None or not len(old):
            return new["time"].min()
        inf_old = old.loc[old["item"] == "infusion", "time"].min()
        inf_new = new.loc[new["item"] == "infusion", "time"].min()
        if (not (pd.isna(inf_old) and pd.isna(inf_new)) and inf_old != inf_new) or old[
            "time"
        ].min() != new["time"].min():
            # hour 0 (or the first observation, without an infusion) moved: every row changes
            return min(old["time"].min(), new["time"].min())
        both = old.merge(new, on=cols, how="outer", indicator=True)
        changed = both.loc[both["_merge"] != "both", "time"]
        if not len(changed):
            return new["time"].min()  # weight estimate changed: the whole record
        return changed.min()

    def _state(self, pid: str) -> PatientState:
        st = self.patients.get(pid)
        if st is None:
            st = self.patients[pid] = PatientState(pid)
        return st

    # --- grading, prediction, alerts -----------------------------------------------------

    def _grade(
        self,
        pids: list[str],
        revised_from: dict[str, pd.Timestamp],
        late: list[str],
        fast_rows: pd.DataFrame,
        redone: pd.DataFrame,
        quarantine: pd.DataFrame,
    ) -> Update:
        # Graded: the new rows of patients on time, from their carried state, and the
        # whole record of late patients, from their start; never the rows kept before.
        # Not sorted here: build_states orders the rows itself.
        table = pd.concat([x for x in (fast_rows, redone) if len(x)] or [self._window.iloc[:0]],
                          ignore_index=True)  # fmt: skip
        fast = set(fast_rows["patient_id"]) if len(fast_rows) else set()
        assumed = {p for p in pids if self.patients.get(p) and self.patients[p].weight_assumed}
        obs = Observations(table, pd.DataFrame(), assumed)
        alerts: list[Alert] = []
        self.rows_graded_last = len(table)
        self.rows_graded += len(table)
        self._carry = self._carry.without(late)
        if not len(table) or table["item"].isin(LAB_ITEMS).all():
            # only blood draws: nothing to grade (grading ignores laboratory rows)
            tl = pd.DataFrame({c: pd.Series(dtype=object) for c in (*EMITTED_COLUMNS, "hours")})
            tl["time"] = pd.Series(dtype="datetime64[ns]")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DataWarning)
                tl, carry = grade_increment(obs, self.scales, self.options,
                                            self._carry.only(fast))  # fmt: skip
            self._carry = self._carry.updated(carry)
        tl["patient_id"] = tl["patient_id"].astype(str)
        # validated times and the timeline's are UTC, written without a zone
        emit = tl["time"].to_numpy() >= _since(tl["patient_id"], revised_from)
        prior = self._prior_past(fast)
        self._update_states(table, tl, emit, alerts, fast)
        out = tl.loc[emit, list(EMITTED_COLUMNS)].reset_index(drop=True)
        alerts.extend(self._vital_alerts(table, revised_from, prior))
        predictions = self._predict(pids, set(late), alerts)
        fresh = []
        for a in alerts:
            st = self._state(a.patient_id)
            if a.key not in st.alerted:
                st.alerted.add(a.key)
                fresh.append(a)
        fresh.sort(key=lambda a: (a.time, a.patient_id, a.kind))
        return Update(out, revised_from, late, predictions, fresh, quarantine)

    def _update_states(
        self, table: pd.DataFrame, tl: pd.DataFrame, emit: np.ndarray, alerts: list, fast: set
    ) -> None:
        """The graded patients' states: a late patient's from its whole record, a patient
        on time's from its state and its new rows (vectorised over the rows)."""
        by = table.groupby("patient_id", sort=False)
        first_time, last_time = by["time"].min(), by["time"].max()
        item = table["item"]
        infusion = table.loc[item == "infusion"].groupby("patient_id")["time"].min()
        dead = set(table.loc[item == "death", "patient_id"])
        weights = (
            table.loc[item == "weight", ["patient_id", "time", "value_num"]]
            .sort_values("time", kind="stable")
            .drop_duplicates("patient_id")
        )
        weight = dict(zip(weights["patient_id"], zip(weights["time"], weights["value_num"],
                                                      strict=True), strict=True))  # fmt: skip
        vit = (
            table.loc[item.isin(_VITALS), ["patient_id", "item", "time", "value_num"]]
            .sort_values("time", kind="stable")
            .drop_duplicates(["patient_id", "item"], keep="last")
        )
        vitals: dict[str, dict] = {}
        for pid, it, t, v in zip(vit["patient_id"], vit["item"], vit["time"], vit["value_num"],
                                 strict=True):  # fmt: skip
            vitals.setdefault(pid, {})[it] = (t, float(v))
        for pid in first_time.index:
            st = self._state(pid)
            if pid in fast and st.last_time is not None:
                # rows after the last one kept: no infusion, weight or row after a death
                st.first_time = min(st.first_time, first_time[pid])
                st.last_time = max(st.last_time, last_time[pid])
                st.dead = st.dead or pid in dead
                st.last_vitals = {**st.last_vitals, **vitals.get(pid, {})}
                continue
            st.infusion = infusion.get(pid)
            st.first_time, st.last_time = first_time[pid], last_time[pid]
            st.dead = pid in dead
            if pid in weight:
                st.dosing_weight = (weight[pid][0], float(weight[pid][1]))
            st.last_vitals = vitals.get(pid, {})
            for per_scale in (st.grade, st.max_grade, st.onset_hours, st.crs_present,
                              st.episode_since, st.trend, st.trend_times):  # fmt: skip
                per_scale.clear()
            st.fever_onset = None
        for scale, part in tl.groupby("scale", sort=False, observed=True):
            self._scale_states(str(scale), part, emit[part.index.to_numpy()], alerts, fast)

    def _scale_states(
        self, scale: str, part: pd.DataFrame, emit: np.ndarray, alerts: list, fast: set
    ) -> None:
        """Grade, maximum, onset, trend, episode and fever onset under one scale; a patient
        on time continues from its state (its last grade, maximum, onset, episode)."""
        crs = get_scale(scale).KIND == "CRS"
        g = part["grade"].to_numpy().astype(np.int64)
        pid = part["patient_id"].to_numpy()
        t = part["time"].to_numpy()
        hours = part["hours"].to_numpy(dtype=float)
        ok = ~part["baseline"].to_numpy(dtype=bool)
        n = len(g)
        idx = np.arange(n)
        starts = np.flatnonzero(np.concatenate([[True], pid[1:] != pid[:-1]]))
        ends = np.append(starts[1:], n) - 1
        prev = np.concatenate([[0], g[:-1]])
        prev[starts] = [self.patients[str(pid[a])].grade.get(scale, 0) for a in starts]
        rising = emit & (g > prev) & (g > 0)
        criterion = part["criterion"].to_numpy()
        for i in np.flatnonzero(rising):
            alerts.append(Alert(
                pid[i], "grade_increase",
                f"{scale} grade {int(prev[i])} -> {int(g[i])}: {criterion[i]}",
                pd.Timestamp(t[i]), scale=scale,
                details={"grade": int(g[i]), "previous_grade": int(prev[i]),
                         "hours": _plain(hours[i])},
            ))  # fmt: skip
        top = np.maximum.reduceat(np.where(ok, g, 0), starts)
        big = n + 1
        onset_at = np.minimum.reduceat(np.where(ok & (g >= 1), idx, big), starts)
        temps = np.nan_to_num(part["temperature_c"].to_numpy(dtype=float), nan=-np.inf)
        fever_at = np.minimum.reduceat(np.where(ok & (temps >= self._fever_c[scale]), idx, big),
                                       starts)  # fmt: skip
        if crs:
            present = part["crs_present"].to_numpy(dtype=bool) & ok
            off = np.where(~present, idx, -1)
            np.maximum.accumulate(off, out=off)
        day = np.timedelta64(24, "h")
        for k, (a, b) in enumerate(zip(starts, ends, strict=True)):
            st = self._state(str(pid[a]))
            going = scale in st.grade  # graded before: these rows continue its state
            st.grade[scale] = int(g[b])
            st.max_grade[scale] = max(int(top[k]), st.max_grade.get(scale, 0))
            onset = (
                float(hours[onset_at[k]]) if onset_at[k] < big and st.infusion is not None
                else np.nan
            )  # fmt: skip
            old_onset = st.onset_hours.get(scale, np.nan) if going else np.nan
            st.onset_hours[scale] = old_onset if np.isfinite(old_onset) else onset
            # the trend: grades of the last 24 h before the patient's last row
            times = [*st.trend_times.get(scale, []), *t[a : b + 1]] if going else list(t[a : b + 1])
            grades = (
                [*st.trend.get(scale, []), *g[a : b + 1].tolist()]
                if going
                else g[a : b + 1].tolist()
            )
            cut = np.datetime64(t[b]) - day
            keep = [i for i, x in enumerate(times) if np.datetime64(x, "ns") >= cut]
            st.trend[scale] = [int(grades[i]) for i in keep]
            st.trend_times[scale] = [np.datetime64(times[i], "ns") for i in keep]
            if crs:
                was = going and st.crs_present.get(scale, False)
                st.crs_present[scale] = bool(present[b])
                if not present[b]:
                    st.episode_since[scale] = None
                elif off[b] >= a:
                    st.episode_since[scale] = pd.Timestamp(t[off[b] + 1])
                elif not was:
                    st.episode_since[scale] = pd.Timestamp(t[a])
            if scale == self.scales[0] and (not going or st.fever_onset is None):
                st.fever_onset = pd.Timestamp(t[fever_at[k]]) if fever_at[k] < big else None

    def _prior_past(self, fast: set) -> dict[tuple[str, str], bool]:
        """For patients on time: whether each item's last reading so far was past its
        threshold (a reading crossing it alerts; one staying past it does not)."""
        out = {}
        for pid in fast:
            st = self.patients.get(pid)
            if st is None:
                continue
            for item in ("temperature", "systolic_bp", "oxygen_device"):
                if item in st.last_vitals:
                    out[(pid, item)] = bool(_past(item, np.array([st.last_vitals[item][1]]))[0])
        return out

    def _vital_alerts(
        self,
        win: pd.DataFrame,
        revised_from: Mapping[str, pd.Timestamp],
        prior: Mapping[tuple[str, str], bool],
    ) -> list[Alert]:
        """A reading that crosses a threshold: past it, where the patient's reading of the
        same item before was not (or there was none). A sustained fever raises one alert,
        not one per reading (each reading stays in the timeline). ``win``: the rows
        graded; ``prior``: whether the reading before them was past (patients on time)."""
        th = alert_thresholds()
        out = []
        rows = win.loc[win["item"].isin(["temperature", "systolic_bp", "oxygen_device"]),
                       ["patient_id", "time", "item", "value_num"]]  # fmt: skip
        rows = rows.sort_values(["patient_id", "item", "time"], kind="stable")
        item, v = rows["item"].to_numpy(), rows["value_num"].to_numpy(dtype=float)
        past = _past(item, v)
        pid = rows["patient_id"].to_numpy()
        same = np.concatenate([[False], (pid[1:] == pid[:-1]) & (item[1:] == item[:-1])])
        before = np.concatenate([[False], past[:-1]]) & same
        if prior and len(rows):
            for i in np.flatnonzero(~same):
                before[i] = prior.get((str(pid[i]), str(item[i])), False)
        new = rows["time"].to_numpy() >= _since(rows["patient_id"], revised_from)
        for r in rows.loc[past & ~before & new].to_dict("records"):
            v, item = float(r["value_num"]), str(r["item"])
            st = self.patients.get(str(r["patient_id"]))
            hours = (
                None
                if st is None or st.infusion is None
                else (r["time"] - st.infusion).total_seconds() / 3600.0
            )
            when = "" if hours is None else f" at {hours:.1f} h after the infusion"
            if item == "temperature" and v >= th["temperature"]["at_least"]:
                spec, text = (
                    th["temperature"],
                    th["temperature"]["reason"].format(
                        value=v, threshold=th["temperature"]["at_least"]
                    ),
                )
            elif item == "systolic_bp" and v < th["systolic_bp"]["below"]:
                spec, text = (
                    th["systolic_bp"],
                    th["systolic_bp"]["reason"].format(
                        value=v, threshold=th["systolic_bp"]["below"]
                    ),
                )
            elif item == "oxygen_device" and v > DEVICES.index(th["oxygen"]["above"]):
                spo2 = st.last_vitals.get("spo2") if st is not None else None
                spec, text = (
                    th["oxygen"],
                    th["oxygen"]["reason"].format(
                        device=DEVICES[int(v)].replace("_", " "),
                        spo2="" if spo2 is None else f"; last SpO2 {spo2[1]:.0f}%",
                    ),
                )
            else:
                continue
            out.append(Alert(
                str(r["patient_id"]), "vital_sign", text + when, r["time"],
                details={"item": item, "value": v if item != "oxygen_device" else
                         DEVICES[int(v)], "source": spec["source"], "hours": hours},
            ))  # fmt: skip
        return out

    def _predict(self, pids: list[str], late: set[str], alerts: list[Alert]) -> pd.DataFrame:
        frames = []
        win = None
        for name in self.predictors:
            hi, inputs = self._horizon[name], self._inputs[name]
            at: dict[str, float | None] = {}
            for pid in pids:
                st = self.patients[pid]
                hours = st.hours_since_infusion
                point = None if hours is None or hours >= hi else hours
                # final: evaluated on all data once past its last window; rows appended
                # later lie beyond every window (a late row makes the patient late)
                final = name in st.predicted_at and st.predicted_at[name] is None
                if pid in late or not final:
                    at[pid] = point
            if not at:
                continue
            if win is None:  # read only while a predictor's window is open
                win = self._window.loc[self._window["patient_id"].isin(pids)]
            rows = win.loc[win["patient_id"].isin(list(at)) & win["item"].isin(inputs)]
            missing = [p for p in at if p not in set(rows["patient_id"])]
            if missing:  # no input yet: the patient is still "not evaluable"
                stub = win.loc[win["patient_id"].isin(missing)].groupby("patient_id").head(1)
                rows = pd.concat([rows, stub], ignore_index=True)
            obs = Observations(rows.reset_index(drop=True), pd.DataFrame(), set())
            pred = predict(obs, name, at=at, timepoint=self.timepoint,
                           cutoffs=self._cutoffs(name))  # fmt: skip
            frames.append(pred)
            for rec in pred.to_dict("records"):
                st = self.patients[rec["patient_id"]]
                before = st.predictions.get(name, {}).get("status")
                st.predictions[name], st.predicted_at[name] = rec, at[rec["patient_id"]]
                if rec["status"] == POSITIVE and before != POSITIVE:
                    when = (
                        pd.Timestamp(rec["positive_time"])
                        if rec["positive_time"]
                        else (st.last_time)
                    )
                    alerts.append(Alert(
                        rec["patient_id"], "predictor_positive",
                        f"{name} positive: {rec['reason']} ({rec['outcome']} predicted). "
                        + DISCLAIMER, when, predictor=name,
                        details={"rule_version": rec["rule_version"],
                                 "score": _plain(rec["score"]),
                                 "positive_hours": _plain(rec["positive_hours"])},
                    ))  # fmt: skip
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def _cutoffs(self, name: str) -> dict[str, float]:
        known = {"hay2017": {"mcp1"}, "pennisi2021": {"m_easix"}}.get(name, set())
        return {k: v for k, v in self.cutoffs.items() if k in known}

    # --- views ---------------------------------------------------------------------------

    def states(self) -> pd.DataFrame:
        """One row per patient x scale: the state the ward view shows."""
        rows = []
        for pid in sorted(self.patients):
            st = self.patients[pid]
            for scale in self.scales:
                rows.append({
                    "patient_id": pid, "scale": scale, "grade": st.grade.get(scale),
                    "max_grade": st.max_grade.get(scale),
                    "onset_hours": st.onset_hours.get(scale, np.nan),
                    "crs_present": st.crs_present.get(scale),
                    "hours_since_infusion": st.hours_since_infusion,
                    "last_time": st.last_time, "note": DISCLAIMER,
                })  # fmt: skip
        return pd.DataFrame(rows)

    def window(self) -> pd.DataFrame:
        """The validated observations kept (every patient's record)."""
        return self._window.copy()

    @property
    def sources(self) -> Iterable[str]:
        """The sources read so far."""
        return tuple(self._sources)


def _past(item: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Readings past their alert threshold (``data/monitor_alerts.toml``)."""
    th = alert_thresholds()
    return (
        ((item == "temperature") & (v >= th["temperature"]["at_least"]))
        | ((item == "systolic_bp") & (v < th["systolic_bp"]["below"]))
        | ((item == "oxygen_device") & (v > DEVICES.index(th["oxygen"]["above"])))
    )


def _plain_table(table: pd.DataFrame) -> pd.DataFrame:
    """A validated table with plain string patient and item columns (batches concatenate)."""
    out = table.copy()
    out["patient_id"] = out["patient_id"].astype(str)
    out["item"] = out["item"].astype(str)
    return out
