"""MSKCC CRS grading (Park 2018).

Source: Park JH, Rivière I, Gonen M, et al. Long-term follow-up of CD19 CAR therapy in
acute lymphoblastic leukemia. N Engl J Med. 2018;378(5):449-459 (supplementary
appendix). Criteria, as published:

    Grade 1: Mild symptoms requiring observation or supportive care only (eg,
             antipyretics, antiemetics, pain medication).
    Grade 2: Hypotension requiring any vasopressors <24 hours. Hypoxia or dyspnea
             requiring supplemental oxygen <40%.
    Grade 3: Hypotension requiring any vasopressors >=24 hours. Hypoxia or dyspnea
             requiring supplemental oxygen >=40%.
    Grade 4: Life-threatening symptoms. Hypotension refractory to high-dose
             vasopressors. Hypoxia or dyspnea requiring mechanical ventilation.
    Grade 5: Death.

How CytoSafe reads it: grade 1 is fever >= 38.0 C; vasopressor time is the continuous
time any vasopressor has run, grade 3 from ``vasopressor_grade3_hours`` (24 h) on;
"refractory to high-dose vasopressors" is high dose by the Lee 2014 table with systolic
pressure still below the hypotension cut-off or not charted (an interpretation,
reported); FiO2 as in :mod:`lee2014`. Grade 5 is death due to CRS.
"""

from __future__ import annotations

import numpy as np

from cytosafe.clinical.scales._common import (
    Derived,
    Graded,
    fever_grade,
    finish,
    fio2_text,
    graded_text,
    label,
    oxygen_by_fio2,
    pick,
)
from cytosafe.clinical.scales._text import where
from cytosafe.clinical.states import States

NAME = "mskcc"
KIND = "CRS"


def grade(s: States, d: Derived, settings: dict) -> Graded:
    """MSKCC grade of every row (see the module docstring for the criteria)."""
    on = ~np.isnan(d.pressor_hours)
    long = on & (np.nan_to_num(d.pressor_hours) >= settings["vasopressor_grade3_hours"])
    sbp = s.values["systolic_bp"]
    refractory = d.high_dose & (d.sbp_low | np.isnan(sbp))
    hyp = np.select([refractory, long, on], [4, 3, 2], default=0).astype(np.int8)
    hyp_text = label(
        hyp,
        {
            2: "hypotension requiring any vasopressors <24 hours",
            3: "hypotension requiring any vasopressors >=24 hours",
            4: "hypotension refractory to high-dose vasopressors",
        },
    )
    oxy, oxy_bits = oxygen_by_fio2(d, settings["fio2_grade3_min"], settings["grade4_devices"])
    oxy_text = where(
        oxy == 4,
        "hypoxia requiring mechanical ventilation",
        label(
            oxy,
            {
                2: "hypoxia requiring supplemental oxygen <40%",
                3: "hypoxia requiring supplemental oxygen >=40%",
            },
        )
        + " ("
        + fio2_text(d)
        + ")",
    )
    fev = fever_grade(d)
    g, text = pick(
        [fev, hyp, oxy],
        [label(fev, {1: "mild symptoms (fever)"}), hyp_text, where(oxy > 0, oxy_text, "")],
    )
    crit = graded_text(g, text)
    bits = (
        np.where((hyp == g) & (hyp == 4), 33, 0).astype(np.int16)
        | np.where(oxy == g, oxy_bits, 0).astype(np.int16)
        | d.weight_flag
    )
    return finish(s, g, crit, bits)
