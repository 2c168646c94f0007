"""Penn CRS grading scale (Porter 2018).

Source: Porter D, Frey N, Wood PA, Weng Y, Grupp SA. Grading of cytokine release
syndrome associated with the CAR T cell therapy tisagenlecleucel. J Hematol Oncol.
2018;11(1):35 (Table 1). Criteria, as published:

    Grade 1: Mild reaction: treated with supportive care such as antipyretics,
             antiemetics.
    Grade 2: Moderate reaction: some signs of organ dysfunction (grade 2 creatinine or
             grade 3 LFTs) related to CRS and not attributable to any other condition.
             Hospitalization for management of CRS related symptoms, including
             neutropenic fever and need for IV therapies (not including fluid
             resuscitation for hypotension).
    Grade 3: More severe reaction: hospitalization required for management of symptoms
             related to organ dysfunction, including grade 4 LFTs or grade 3 creatinine,
             related to CRS and not attributable to any other conditions. Hypotension
             treated with multiple fluid boluses or low-dose vasopressors. Coagulopathy
             requiring fresh frozen plasma or cryoprecipitate. Hypoxia requiring
             supplemental oxygen (nasal cannula oxygen, high-flow oxygen, CPAP, or BiPAP).
    Grade 4: Life-threatening complications such as hypotension requiring high-dose
             vasopressors. Hypoxia requiring mechanical ventilation.
    Grade 5: Death.

How CytoSafe reads it: grade 1 is fever >= 38.0 C; grade 2 (hospitalization and IV
therapies are not in vital signs) is an IV anti-cytokine therapy (``iv_therapies``) given
within ``iv_therapy_window_hours`` to a patient who has had fever - an interpretation,
reported; "multiple fluid boluses" is >= ``multiple_boluses_min`` boluses within
``bolus_window_hours``; any vasopressor below high dose is low dose; high dose follows the
Lee 2014 table (>= 3 h); any supplemental oxygen short of mechanical ventilation is grade
3. Organ dysfunction and coagulopathy are not graded. Grade 5 is death due to CRS.
"""

from __future__ import annotations

import numpy as np

from cytosafe.clinical.scales._common import (
    DEV,
    Derived,
    Graded,
    fever_grade,
    finish,
    graded_text,
    label,
    pick,
)
from cytosafe.clinical.scales._text import select
from cytosafe.clinical.states import States, group_cumany, window_count

NAME = "penn"
KIND = "CRS"


def grade(s: States, d: Derived, settings: dict) -> Graded:
    """Penn grade of every row (see the module docstring for the criteria)."""
    prior = s.prior_events or {}
    boluses = window_count(
        s.observed["fluid_bolus"].astype(float),
        s.hours,
        s.patient_code,
        settings["bolus_window_hours"],
        prior.get("fluid_bolus"),
    )
    any_pressor = (d.n_pressors > 0) | d.vasopressin_on
    multi_bolus = boluses >= settings["multiple_boluses_min"]
    hyp = np.select([d.high_dose, any_pressor | multi_bolus], [4, 3], default=0).astype(np.int8)
    hyp_text = select(
        [d.high_dose, any_pressor, multi_bolus],
        [
            "hypotension requiring high-dose vasopressors",
            "hypotension treated with low-dose vasopressors",
            "hypotension treated with multiple fluid boluses",
        ],
    )
    o2_3 = np.isin(d.device, [DEV[x] for x in settings["grade3_devices"]])
    o2_4 = np.isin(d.device, [DEV[x] for x in settings["grade4_devices"]])
    oxy = np.where(o2_4, 4, np.where(o2_3, 3, 0)).astype(np.int8)
    oxy_text = label(
        oxy,
        {3: "hypoxia requiring supplemental oxygen", 4: "hypoxia requiring mechanical ventilation"},
    )
    iv = np.zeros(len(s), dtype=float)
    for name in settings["iv_therapies"]:
        iv += s.observed[name]
    # IV therapies given before these rows (carried), as one list of events
    given = [prior[x] for x in settings["iv_therapies"] if x in prior]
    before = tuple(np.concatenate(p) for p in zip(*given, strict=True)) if given else None
    had_fever = d.fever_seen if d.fever_seen is not None else group_cumany(d.fever, s.start)
    iv_recent = (
        window_count(iv, s.hours, s.patient_code, settings["iv_therapy_window_hours"], before) > 0
    ) & had_fever
    moderate = np.where(iv_recent, 2, 0).astype(np.int8)
    fev = fever_grade(d)
    g, text = pick(
        [fev, moderate, hyp, oxy],
        [
            label(fev, {1: "mild reaction (fever)"}),
            label(moderate, {2: "moderate reaction: IV anti-cytokine therapy"}),
            hyp_text,
            oxy_text,
        ],
    )
    crit = graded_text(g, text)
    bits = np.where((g == 2) & (moderate == 2), 32, 0).astype(np.int16) | d.weight_flag
    return finish(s, g, crit, bits)
