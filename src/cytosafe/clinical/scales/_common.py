"""Pieces the scales share, each a vectorised function of the state table and settings.

Every function returns NumPy arrays over all rows (all patients at once). Estimates are
bit flags (:data:`ESTIMATES`) so that each grade can say which estimate it relied on.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np

from cytosafe.clinical.scales._text import Text, label, select, where
from cytosafe.clinical.states import (
    States,
    carry_forward,
    group_cumany,
    quiet_breaks,
    run_begin,
)
from cytosafe.schema.observations import DEVICES, TREATMENTS

__all__ = [
    "ESTIMATES",
    "Derived",
    "Graded",
    "crs_present",
    "crs_signs",
    "derive",
    "estimate_text",
    "gate",
    "graded_text",
    "label",
    "select",
    "where",
]

#: Estimate flags: bit -> name written in the timeline's ``estimates`` column.
ESTIMATES = {
    1: "hypotension_from_sbp",
    2: "fio2_from_flow",
    4: "fio2_from_device",
    8: "low_flow_assumed",
    16: "weight_assumed",
    32: "interpretation",
}
DEV = {name: i for i, name in enumerate(DEVICES)}
#: The texts :func:`finish` and :func:`gate` write (the fused ASTCT kernel writes the same).
DEATH_CRS_TEXT = "grade 5: death due to CRS"
DEATH_OTHER_TEXT = "death not due to CRS"
NO_CRITERION_TEXT = "no criterion met"
GATE_HEAD = "CRS not present (fever >= "  # + fever_c (1 decimal)
GATE_MIDDLE = " C required at onset; none since the infusion or the last resolution): "
GATE_TAIL = " not graded"  # after the criterion that was not graded
_NON_VASOPRESSIN = ("norepinephrine", "epinephrine", "dopamine", "phenylephrine")


@dataclass
class Graded:
    """A scale's answer for every row: grade, the criterion that set it, estimate flags."""

    grade: np.ndarray
    criterion: Text
    estimates: Text
    extra: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Derived:
    """Quantities several scales read (computed once per grading call)."""

    temperature: np.ndarray
    fever: np.ndarray
    fever_masked: np.ndarray
    sbp_low: np.ndarray
    n_pressors: np.ndarray  # excluding vasopressin
    vasopressin_on: np.ndarray
    ne_equivalent: np.ndarray
    high_dose: np.ndarray
    device: np.ndarray  # device code, -1 when never charted
    flow: np.ndarray
    high_flow_cannula: np.ndarray  # nasal cannula above the low-flow limit
    flow_unknown: np.ndarray  # nasal cannula with no flow charted
    fio2: np.ndarray
    fio2_flag: np.ndarray  # estimate bits of fio2
    pressor_hours: np.ndarray  # continuous hours any vasopressor has run (NaN: none)
    weight_flag: np.ndarray
    # what the rows after these need (cytosafe.clinical.states.Carry)
    fever_seen: np.ndarray | None = None  # a fever since the infusion
    high_begin: np.ndarray | None = None  # hour the high-dose run began (NaN: none)
    pressor_begin: np.ndarray | None = None  # hour the vasopressor run began (NaN: none)
    fio2_at: np.ndarray | None = None  # row of the last FiO2 (negative: carried)
    dev_at: np.ndarray | None = None  # row of the last oxygen device (negative: carried)
    carry: dict[str, np.ndarray] | None = None  # the scale's carry, per row


def _flag(carry: dict[str, np.ndarray] | None, name: str) -> np.ndarray | None:
    """A carried flag per row (False where none is carried: NaN > 0 is False)."""
    if carry is None:
        return None
    return carry[name] > 0


def _compare(values: np.ndarray, op, threshold, nan_as: float) -> np.ndarray:
    """``op(np.nan_to_num(values, nan=nan_as), threshold)`` without the copy where it
    reads the same as ``op(values, threshold)``: a finite threshold that ``nan_as`` fails
    (NaN then compares False either way, and +-inf as the largest finite numbers)."""
    try:
        plain = bool(np.isfinite(threshold)) and not op(nan_as, threshold)
    except TypeError:
        plain = False
    if plain:
        return op(values, threshold)
    return op(np.nan_to_num(values, nan=nan_as), threshold)


def _fever_masked(
    s: States, fever_seen: np.ndarray, settings: dict, carry: dict | None = None
) -> np.ndarray:
    """ASTCT: after antipyretic/anti-cytokine therapy given to a patient with CRS, fever
    is no longer required. Masked from the treatment's time to the end of follow-up
    (carried: ``masked``)."""
    mask_cfg = settings["fever_masking"]
    treated = np.zeros(len(s), dtype=bool)
    for name in mask_cfg["treatments"]:
        if name not in TREATMENTS:
            raise ValueError(f"fever_masking names an unknown treatment '{name}'")
        treated |= s.observed[name]
    if mask_cfg["requires_prior_fever"]:
        treated &= fever_seen
    return group_cumany(treated, s.start, _flag(carry, "masked"))


def derive(s: States, settings: dict, carry: dict[str, np.ndarray] | None = None) -> Derived:
    """Compute the shared quantities of :class:`Derived` from the states and settings.

    ``carry``: per row, the scale's carried columns (:class:`cytosafe.clinical.states.Carry`
    ``scales``; NaN for a patient graded from its start).
    """
    v = s.values
    n = len(s)
    temp = v["temperature"]
    fever = _compare(temp, operator.ge, settings["fever_c"], -np.inf)
    sbp = v["systolic_bp"]
    sbp_low = _compare(sbp, operator.lt, settings["hypotension_sbp_below"], np.inf)
    n_pressors = sum((v[d] > 0).astype(np.int8) for d in _NON_VASOPRESSIN)
    vasopressin_on = v["vasopressin"] > 0
    ne = settings["ne_equivalent"]
    ne_eq = (
        ne["norepinephrine"] * v["norepinephrine"]
        + ne["epinephrine"] * v["epinephrine"]
        + ne["dopamine_per_ug_kg_min"] * v["dopamine"]
        + ne["phenylephrine"] * v["phenylephrine"]
    )
    hd = settings["high_dose_vasopressors"]
    mono = (n_pressors == 1) & ~vasopressin_on
    high_now = (
        (mono & (v["norepinephrine"] >= hd["norepinephrine_ug_min"]))
        | (mono & (v["dopamine"] >= hd["dopamine_ug_kg_min"]))
        | (mono & (v["phenylephrine"] >= hd["phenylephrine_ug_min"]))
        | (mono & (v["epinephrine"] >= hd["epinephrine_ug_min"]))
        | (vasopressin_on & (ne_eq >= hd["with_vasopressin_ne_equivalent_ug_min"]))
        | ((n_pressors >= 2) & ~vasopressin_on & (ne_eq >= hd["combination_ne_equivalent_ug_min"]))
    )
    # "all doses required for >= 3 h": high dose counts once it has lasted min_hours.
    high_begin = run_begin(high_now, s.hours, s.start, carry["high_begin"] if carry else None)
    held = np.where(high_now, s.hours - high_begin, np.nan)
    high_dose = high_now & _compare(held, operator.ge, hd["min_hours"], -1.0)

    dev_raw = v["oxygen_device"]
    device = np.where(np.isnan(dev_raw), -1, dev_raw).astype(np.int8)
    flow = v["oxygen_flow"]
    cannula = device == DEV["nasal_cannula"]
    high_flow_cannula = cannula & _compare(flow, operator.gt, settings["low_flow_max_l_min"], 0.0)
    flow_unknown = cannula & np.isnan(flow)

    # FiO2: charted when charted at or after the device; else estimated from flow/device.
    idx = np.arange(n, dtype=float)
    init = s.init or {}
    fio2_at = carry_forward(np.where(s.observed["fio2"], idx, np.nan), s.start, init.get("fio2_at"))
    dev_at = carry_forward(
        np.where(s.observed["oxygen_device"], idx, np.nan), s.start, init.get("dev_at")
    )
    charted = ~np.isnan(fio2_at) & (np.isnan(dev_at) | (fio2_at >= dev_at))
    est = settings["fio2_device_estimate"]
    by_device = np.full(n, np.nan)
    for name, code in DEV.items():
        if name in est:
            by_device[device == code] = est[name]
    from_flow = 21.0 + settings["fio2_per_l_min"] * np.nan_to_num(flow, nan=0.0)
    fio2 = np.where(charted, v["fio2"], np.where(cannula, from_flow, by_device))
    fio2 = np.where(device == DEV["room_air"], 21.0, fio2)
    on_o2 = (device > DEV["room_air"]) & ~charted
    fio2_flag = np.where(on_o2 & cannula, 2, np.where(on_o2, 4, 0)).astype(np.int16)
    fio2_flag |= np.where(flow_unknown, 8, 0).astype(np.int16)

    any_pressor = (n_pressors > 0) | vasopressin_on
    fever_seen = group_cumany(fever, s.start, _flag(carry, "fever_seen"))
    pressor_begin = run_begin(
        any_pressor, s.hours, s.start, carry["pressor_begin"] if carry else None
    )
    return Derived(
        temperature=temp,
        fever=fever,
        fever_masked=_fever_masked(s, fever_seen, settings, carry),
        sbp_low=sbp_low,
        n_pressors=n_pressors,
        vasopressin_on=vasopressin_on,
        ne_equivalent=ne_eq,
        high_dose=high_dose,
        device=device,
        flow=flow,
        high_flow_cannula=high_flow_cannula,
        flow_unknown=flow_unknown,
        fio2=fio2,
        fio2_flag=fio2_flag,
        pressor_hours=np.where(any_pressor, s.hours - pressor_begin, np.nan),
        weight_flag=np.where(s.weight_assumed & (any_pressor), 16, 0).astype(np.int16),
        fever_seen=fever_seen,
        high_begin=high_begin,
        pressor_begin=pressor_begin,
        fio2_at=fio2_at,
        dev_at=dev_at,
        carry=carry,
    )


def pick(grades: list[np.ndarray], labels: list[Text]) -> tuple[np.ndarray, Text]:
    """The maximum of several component grades and the label(s) of the component(s) that set it."""
    g = np.maximum.reduce(grades)
    text = Text.const(len(g), "")
    for comp, lab in zip(grades, labels, strict=True):
        sets = (comp == g) & (g > 0) & ~lab.empty
        both = sets & ~text.empty
        text = where(both, text + "; " + lab, where(sets, lab, text))
    return g, text


def estimate_text(bits: np.ndarray) -> Text:
    """``"fio2_from_flow;weight_assumed"``-style text of estimate bit flags."""
    return Text.bits(bits, ESTIMATES)


def graded_text(g: np.ndarray, text: Text) -> Text:
    """``"grade 3: <text>"`` where the grade is above 0, else ``""``."""
    return where(g > 0, "grade " + Text.ints(g) + ": " + text, "")


def finish(
    s: States,
    grade: np.ndarray,
    criterion: Text,
    bits: np.ndarray,
    *,
    death_text: str = DEATH_CRS_TEXT,
) -> Graded:
    """Apply grade 5 for death due to CRS and wrap the result."""
    grade = np.where(s.death_crs, 5, grade).astype(np.int8)
    criterion = where(s.death_crs, death_text, criterion)
    other = s.death_other & ~s.death_crs
    criterion = where(
        other,
        where(criterion.empty, DEATH_OTHER_TEXT, criterion + "; " + DEATH_OTHER_TEXT),
        criterion,
    )
    criterion = where((grade == 0) & criterion.empty, NO_CRITERION_TEXT, criterion)
    bits = np.where(grade > 0, bits, 0).astype(np.int16)
    return Graded(grade, criterion, estimate_text(bits))


def oxygen_by_fio2(
    d: Derived, grade3_min: float, grade4_devices: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Oxygen component of the FiO2-based scales: <min -> 2, >=min -> 3, listed devices -> 4.

    Returns the grade and the estimate bits it relied on (FiO2 estimated from flow or device).
    """
    on_o2 = d.device > DEV["room_air"]
    g = np.where(on_o2, np.where(d.fio2 >= grade3_min, 3, 2), 0).astype(np.int8)
    vent = np.isin(d.device, [DEV[x] for x in grade4_devices])
    g = np.where(vent, 4, g).astype(np.int8)
    bits = np.where((g > 0) & ~vent, d.fio2_flag, 0).astype(np.int16)
    return g, bits


def fever_grade(d: Derived) -> np.ndarray:
    """Grade 1 component: fever >= fever_c."""
    return np.where(d.fever, 1, 0).astype(np.int8)


def n_all_pressors(d: Derived, count_vasopressin: bool) -> np.ndarray:
    """Number of running vasopressors, vasopressin included when ``count_vasopressin``."""
    return d.n_pressors + (d.vasopressin_on.astype(np.int8) if count_vasopressin else 0)


def fio2_text(d: Derived) -> Text:
    """``"FiO2 44%"`` per row."""
    return "FiO2 " + Text.fixed(d.fio2, 0) + "%"


def crs_signs(s: States, d: Derived) -> np.ndarray:
    """Rows after the infusion with a sign that keeps CRS going: fever, a running
    vasopressor, or oxygen support (any device above room air)."""
    pressor = (d.n_pressors > 0) | d.vasopressin_on
    oxygen = d.device > DEV["room_air"]
    return (d.fever | pressor | oxygen) & ~s.baseline


def crs_present(s: States, d: Derived, settings: dict) -> np.ndarray:
    """Whether CRS is present at each row, for a scale whose onset requires fever.

    CRS begins at the first fever (>= ``fever_c``) after the infusion and lasts until it
    resolves: a documented period of ``episode_gap_hours`` afebrile, off vasopressors
    and off oxygen support (:func:`cytosafe.clinical.states.quiet_breaks`). After a
    resolution, CRS is present again only from the next fever. ASTCT 2019 (Lee et al.,
    Biol Blood Marrow Transplant 2019;25:625): CRS symptoms "must include fever at the
    onset"; see ``onset_requires_fever`` of each scale in ``data/clinical_scales.toml``.
    """
    return _crs_present(s, d, settings)


def _crs_present(s: States, d: Derived, settings: dict, out: dict | None = None) -> np.ndarray:
    """:func:`crs_present`, from the carry of ``d`` when there is one; ``out`` receives
    what the rows after need (``quiet``, ``quiet_begin``, ``fever_in_seg``)."""
    carry = d.carry
    signs = crs_signs(s, d)
    scratch: dict = {}
    brk = quiet_breaks(
        signs,
        s.hours,
        s.start,
        float(settings["episode_gap_hours"]),
        _flag(carry, "quiet"),
        carry["quiet_begin"] if carry else None,
        scratch,
    )
    idx = np.arange(len(s))
    # a sign after a resolved quiet period opens a new segment; fever must come again
    seg = np.where((idx == s.start) | (brk & signs), idx, 0)
    np.maximum.accumulate(seg, out=seg)
    fever = d.fever & ~s.baseline
    seen = group_cumany(fever, seg)
    if carry is not None:
        # the segment open before these rows goes on unless their first row reopens it
        goes_on = (seg == s.start) & ~(brk & signs)[s.start]
        seen |= goes_on & _flag(carry, "fever_in_seg")
    if out is not None:
        out.update(quiet=~signs, quiet_begin=scratch["quiet_begin"], fever_in_seg=seen)
    return seen & ~(brk & ~signs) & ~s.baseline


def gate(s: States, d: Derived, graded: Graded, settings: dict) -> tuple[Graded, np.ndarray]:
    """Grade 0 where CRS is not present (:func:`crs_present`) for a scale whose onset
    requires fever (setting ``onset_requires_fever``); death due to CRS keeps grade 5.

    Returns the gated grades and the ``crs_present`` mask (all True when the scale does
    not require fever at onset).
    """
    if not settings.get("onset_requires_fever", False):
        return graded, np.ones(len(s), dtype=bool)
    present = _crs_present(s, d, settings, graded.extra)
    blocked = ~present & (graded.grade > 0) & ~s.death_crs
    if not blocked.any():
        return graded, present
    fever_c = Text.fixed(np.full(len(s), float(settings["fever_c"])), 1)
    reason = GATE_HEAD + fever_c + GATE_MIDDLE + graded.criterion + GATE_TAIL
    grade = np.where(blocked, 0, graded.grade).astype(graded.grade.dtype)
    criterion = where(blocked, reason, graded.criterion)
    estimates = where(blocked, "", graded.estimates)
    return Graded(grade, criterion, estimates, graded.extra), present
