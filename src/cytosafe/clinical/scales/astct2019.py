"""ASTCT 2019 consensus grading of cytokine release syndrome (the default scale).

Source: Lee DW, Santomasso BD, Locke FL, et al. ASTCT consensus grading for cytokine
release syndrome and neurologic toxicity associated with immune effector cells. Biol Blood
Marrow Transplant. 2019;25(4):625-638 (Table 4). Criteria, as published:

    Grade 1: Fever >=38 C; hypotension: none; hypoxia: none.
    Grade 2: Fever >=38 C with hypotension not requiring vasopressors and/or hypoxia
             requiring low-flow nasal cannula or blow-by.
    Grade 3: Fever >=38 C with hypotension requiring a vasopressor with or without
             vasopressin and/or hypoxia requiring high-flow nasal cannula, facemask,
             nonrebreather mask, or Venturi mask.
    Grade 4: Fever >=38 C with hypotension requiring multiple vasopressors (excluding
             vasopressin) and/or hypoxia requiring positive pressure (eg, CPAP, BiPAP,
             intubation and mechanical ventilation).

    Fever is defined as temperature >=38 C not attributable to any other cause. In
    patients who have CRS then receive antipyretic or anticytokine therapy such as
    tocilizumab or steroids, fever is no longer required to grade subsequent CRS
    severity. In this case, CRS grading is driven by hypotension and/or hypoxia.
    CRS grade is determined by the more severe event: hypotension or hypoxia not
    attributable to any other cause.
    Low-flow nasal cannula is defined as oxygen delivered at <=6 L/minute. Low flow also
    includes blow-by oxygen delivery, sometimes used in pediatrics. High-flow nasal
    cannula is defined as oxygen delivered at >6 L/minute.
    Grade 5: death due to CRS in which another cause is not the principal factor.

How CytoSafe reads it (every number is in ``data/clinical_scales.toml``):

* fever: the current temperature (carried forward) >= ``fever_c`` (38.0 C);
* masking: from the first antipyretic/anti-cytokine treatment given after a fever
  (``fever_masking``), fever is no longer required, to the end of follow-up;
* hypotension not requiring vasopressors: systolic pressure < ``hypotension_sbp_below``
  (90 mmHg; an estimate: ASTCT gives no number) with no vasopressor running;
* "a vasopressor" is any running vasopressor (vasopressin alone included); "multiple" is
  two or more running vasopressors other than vasopressin;
* hypoxia: the oxygen device (``device_grade``); a nasal cannula above
  ``low_flow_max_l_min`` (6 L/min) is high flow; a cannula with no flow charted is taken
  as low flow and reported (``low_flow_assumed``);
* attribution to "any other cause" cannot be seen in vital signs: it is the clinician's
  call and is not modelled.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from cytosafe.clinical.scales._common import (
    DEATH_CRS_TEXT,
    DEATH_OTHER_TEXT,
    DEV,
    ESTIMATES,
    GATE_HEAD,
    GATE_MIDDLE,
    GATE_TAIL,
    NO_CRITERION_TEXT,
    Derived,
    Graded,
    finish,
    label,
    pick,
)
from cytosafe.clinical.scales._text import Text, where
from cytosafe.clinical.states import States, death_names_crs, observation_arrays, use_compiled
from cytosafe.schema.observations import DEVICES, LAB_ITEMS, TREATMENTS

NAME = "astct2019"
KIND = "CRS"

_HYPOTENSION = {
    2: "hypotension not requiring vasopressors",
    3: "hypotension requiring a vasopressor (with or without vasopressin)",
    4: "hypotension requiring multiple vasopressors (excluding vasopressin)",
}
_HYPOXIA = {
    2: "hypoxia requiring low-flow nasal cannula (<=6 L/min) or blow-by",
    3: "hypoxia requiring high-flow nasal cannula (>6 L/min), facemask, nonrebreather or Venturi mask",
    4: "hypoxia requiring positive pressure (CPAP, BiPAP, mechanical ventilation)",
}
# The criterion's wording (the fused kernel's texts are built from the same pieces).
_FEVER_WITH = ("fever ", " C with ")  # around the temperature
_MASKED = "fever not required after antipyretic/anti-cytokine therapy; "
_GRADE1 = ("grade 1: fever ", " C without hypotension or hypoxia")
_NO_FEVER = ("no fever: ", " not graded (fever required)")


def grade(s: States, d: Derived, settings: dict) -> Graded:
    """ASTCT 2019 grade of every row (see the module docstring for the criteria)."""
    any_pressor = (d.n_pressors > 0) | d.vasopressin_on
    hyp = np.select([d.n_pressors >= 2, any_pressor, d.sbp_low], [4, 3, 2], default=0).astype(
        np.int8
    )
    dev_grade = np.zeros(len(s), dtype=np.int8)
    for name, g in settings["device_grade"].items():
        dev_grade[d.device == DEV[name]] = g
    dev_grade = np.where(d.high_flow_cannula, np.maximum(dev_grade, 3), dev_grade)
    g_vital, text = pick([hyp, dev_grade], [label(hyp, _HYPOTENSION), label(dev_grade, _HYPOXIA)])
    fever_ok = d.fever | d.fever_masked
    g = np.where(fever_ok & (g_vital > 0), g_vital, np.where(d.fever, 1, 0))
    temp_text = Text.fixed(d.temperature, 1)
    crit = where(
        g >= 2,
        "grade "
        + Text.ints(g)
        + ": "
        + where(d.fever, _FEVER_WITH[0] + temp_text + _FEVER_WITH[1], _MASKED)
        + text,
        where(
            g == 1,
            _GRADE1[0] + temp_text + _GRADE1[1],
            where(g_vital > 0, _NO_FEVER[0] + text + _NO_FEVER[1], ""),
        ),
    )
    bits = np.zeros(len(s), dtype=np.int16)
    bits |= np.where(hyp == 2, 1, 0).astype(np.int16)
    bits |= np.where(d.flow_unknown & (dev_grade == 2), 8, 0).astype(np.int16)
    bits |= d.weight_flag
    return finish(s, g, crit, bits)


#: Every combination of the estimate bits ASTCT sets (1, 8, 16), as ``Text.bits`` writes it.
_ESTIMATE_VOCAB = [";".join(n for b, n in ESTIMATES.items() if u & b) for u in range(32)]


def _kernel_settings(settings: dict) -> bool:
    """Whether the settings are of the types the fused kernel takes (the criteria file's:
    finite numbers, device grades 0..4 of known devices, known masking treatments)."""
    try:
        numbers_ = [settings[key] for key in ("fever_c", "hypotension_sbp_below",
                                              "low_flow_max_l_min", "episode_gap_hours")]  # fmt: skip
        devices = settings["device_grade"]
        treatments = settings["fever_masking"]["treatments"]
        settings["fever_masking"]["requires_prior_fever"]
    except (KeyError, TypeError):
        return False
    if not all(
        isinstance(x, numbers.Real) and not isinstance(x, bool) and np.isfinite(x) for x in numbers_
    ):
        return False
    if not isinstance(devices, dict) or not all(
        name in DEV and isinstance(g, numbers.Integral) and not isinstance(g, bool) and 0 <= g <= 4
        for name, g in devices.items()
    ):
        return False
    return isinstance(treatments, (list, tuple)) and all(t in TREATMENTS for t in treatments)


def _roles(k, masking: list[str]) -> dict[str, int]:
    """Each item's role in the fused kernel (``k``: :mod:`cytosafe.clinical._compiled`)."""
    roles = {
        "temperature": k.ROLE_TEMPERATURE,
        "systolic_bp": k.ROLE_SBP,
        "oxygen_device": k.ROLE_DEVICE,
        "oxygen_flow": k.ROLE_FLOW,
        "norepinephrine": k.ROLE_PRESSOR,
        "epinephrine": k.ROLE_PRESSOR + 1,
        "dopamine": k.ROLE_PRESSOR + 2,
        "phenylephrine": k.ROLE_PRESSOR + 3,
        "vasopressin": k.ROLE_VASOPRESSIN,
        "infusion": k.ROLE_INFUSION,
        "death": k.ROLE_DEATH,
    }
    roles.update({name: k.ROLE_MASKING + i for i, name in enumerate(masking)})
    roles.update(dict.fromkeys(LAB_ITEMS, k.ROLE_LAB))
    return roles


def _criterion_text(key: int, fever_c_text: str, k) -> str:
    """The criterion of a fused-kernel key: the text :func:`grade`, ``finish`` and the
    gate write for the same row (the key's layout: ``_finish_row`` in ``k``)."""
    struct, t = key >> k.T_BITS, key & ((1 << k.T_BITS) - 1)
    case, gv, hyp, oxy = struct & 7, (struct >> 3) & 7, (struct >> 6) & 7, (struct >> 9) & 7
    temp = "nan" if t == 0 else f"{(t - k.T_OFFSET) / 10:.1f}"  # Text.fixed(temperature, 1)
    text = "; ".join(x for x in (_HYPOTENSION.get(hyp, ""), _HYPOXIA.get(oxy, "")) if x)
    crit = [
        "",
        _GRADE1[0] + temp + _GRADE1[1],
        f"grade {gv}: " + _FEVER_WITH[0] + temp + _FEVER_WITH[1] + text,
        f"grade {gv}: " + _MASKED + text,
        _NO_FEVER[0] + text + _NO_FEVER[1],
    ][case]
    if (struct >> 12) & 1:  # death due to CRS
        crit = DEATH_CRS_TEXT
    elif (struct >> 13) & 1:  # death from another cause
        crit = DEATH_OTHER_TEXT if crit == "" else crit + "; " + DEATH_OTHER_TEXT
    if crit == "":  # grade 0 (every grade above 0 has a text)
        crit = NO_CRITERION_TEXT
    if (struct >> 14) & 1:  # gated: CRS not present
        crit = GATE_HEAD + fever_c_text + GATE_MIDDLE + crit + GATE_TAIL
    return crit


def grade_observations(
    table: pd.DataFrame, weight_assumed: set[str] | None, settings: dict
) -> Graded | None:
    """:func:`grade` and the CRS-present gate of every row of
    ``build_states(table, weight_assumed)``, by the fused compiled kernel straight from
    the observations; None where the kernel does not apply (the caller then grades the
    state table: :func:`cytosafe.clinical.grading.grade_table`).

    The kernel (:func:`cytosafe.clinical._compiled.astct2019`) applies these rules, the
    shared derivations and the gate in one pass, each patient's states carried in
    locals, and gives the same grades, criteria, estimates and ``crs_present`` as the
    NumPy path, which stays the reference (``tests/test_grade_fused.py``). It applies
    from ``COMPILED_MIN_ROWS`` observations with Numba installed (``CYTOSAFE_COMPILED``
    not 0), to settings of the criteria file's types (finite numbers, device grades 0..4,
    known masking treatments) and to data in its domain (device codes of
    :data:`~cytosafe.schema.observations.DEVICES`, |temperature| < 5e10); anything else
    returns None.
    """
    if not use_compiled(len(table)) or not _kernel_settings(settings):
        return None
    from cytosafe.clinical import _compiled as k

    pcode, patients, tint, icode, inames, vals = observation_arrays(table)
    # one code width per kind (the kernel is compiled once per combination of widths)
    pcode = pcode.astype(np.int16 if len(patients) < 2**15 else np.int32, copy=False)
    icode = icode.astype(np.int8 if len(inames) < 2**7 else np.int16, copy=False)
    masking = list(dict.fromkeys(settings["fever_masking"]["treatments"]))
    roles = _roles(k, masking)
    role = np.array([roles.get(str(n), k.ROLE_ROW) for n in inames], dtype=np.int64)
    assumed = np.isin(patients, sorted(weight_assumed or ()))
    device_grade = np.zeros(len(DEVICES), dtype=np.int64)
    for name, g in settings["device_grade"].items():
        device_grade[DEV[name]] = g
    order = None

    def causes(pos: np.ndarray) -> np.ndarray:
        return death_names_crs(table["value"], pos if order is None else order[pos])

    args = dict(
        fever_c=float(settings["fever_c"]),
        sbp_below=float(settings["hypotension_sbp_below"]),
        low_flow_max=float(settings["low_flow_max_l_min"]),
        device_grade=device_grade,
        prior_fever=bool(settings["fever_masking"]["requires_prior_fever"]),
        gated=bool(settings.get("onset_requires_fever", False)),
        gap=float(settings["episode_gap_hours"]),
    )
    out = k.astct2019(pcode, tint, icode, vals, role, assumed, causes, **args)
    if out[0] == k.UNSORTED:  # as build_states: a stable sort by patient, then time
        order = np.lexsort((tint, pcode))
        out = k.astct2019(
            pcode[order], tint[order], icode[order], vals[order], role, assumed, causes, **args
        )
    status, grade_, crit, present, keys = out
    if status != k.OK:
        return None
    fever_c_text = Text.fixed(np.array([float(settings["fever_c"])]), 1).to_array()[0]
    vocab = [_criterion_text(int(key), fever_c_text, k) for key in keys]
    # a criterion key holds its row's estimate bits: one code array serves both texts
    estimates = [_ESTIMATE_VOCAB[(int(key) >> k.T_BITS) >> 15] for key in keys]
    return Graded(grade_, Text(crit, vocab), Text(crit, estimates),
                  extra={"crs_present": present})  # fmt: skip
