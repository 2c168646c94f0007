"""Lee 2014 revised CRS grading, with its high-dose vasopressor table.

Source: Lee DW, Gardner R, Porter DL, et al. Current concepts in the diagnosis and
management of cytokine release syndrome. Blood. 2014;124(2):188-195 (Tables 1 and 2).
Criteria, as published:

    Grade 1: Symptoms are not life threatening and require symptomatic treatment only,
             eg, fever, nausea, fatigue, headache, myalgias, malaise.
    Grade 2: Symptoms require and respond to moderate intervention. Oxygen requirement
             <40% or hypotension responsive to fluids or low dose of one vasopressor or
             grade 2 organ toxicity.
    Grade 3: Symptoms require and respond to aggressive intervention. Oxygen requirement
             >=40% or hypotension requiring high dose or multiple vasopressors or grade 3
             organ toxicity or grade 4 transaminitis.
    Grade 4: Life-threatening symptoms. Requirement for ventilator support or grade 4
             organ toxicity (excluding transaminitis).
    Grade 5: Death.

    High-dose vasopressors (all doses required for >=3 h): norepinephrine monotherapy
    >=20 ug/min; dopamine monotherapy >=10 ug/kg/min; phenylephrine monotherapy >=200
    ug/min; epinephrine monotherapy >=10 ug/min; if on vasopressin: vasopressin +
    norepinephrine equivalent of >=10 ug/min; if on combination vasopressors (not
    vasopressin): norepinephrine equivalent of >=20 ug/min.
    Norepinephrine equivalent dose = [norepinephrine (ug/min)] + [dopamine (ug/kg/min)/2]
    + [epinephrine (ug/min)] + [phenylephrine (ug/min)/10] (after Russell 2008).

How CytoSafe reads it: grade 1 is fever >= 38.0 C (Lee 2014 gives no number); the oxygen
requirement is the charted FiO2, else estimated from the nasal-cannula flow (21% + 4%
per L/min) or the device (reported as ``fio2_from_flow`` / ``fio2_from_device``);
"ventilator support" is mechanical ventilation (option ``ventilator_devices``);
vasopressin counts among "multiple vasopressors" (option
``vasopressin_counts_as_vasopressor``); organ toxicities are not graded. Grade 5 is
death due to CRS.
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
    n_all_pressors,
    oxygen_by_fio2,
    pick,
)
from cytosafe.clinical.scales._text import select, where
from cytosafe.clinical.states import States

NAME = "lee2014"
KIND = "CRS"


def grade(s: States, d: Derived, settings: dict) -> Graded:
    """Lee 2014 grade of every row (see the module docstring for the criteria)."""
    n = n_all_pressors(d, settings["vasopressin_counts_as_vasopressor"])
    hyp = np.select([d.high_dose | (n >= 2), n == 1, d.sbp_low], [3, 2, 2], default=0).astype(
        np.int8
    )
    hyp_text = select(
        [d.high_dose, n >= 2, n == 1, d.sbp_low],
        [
            "hypotension requiring high-dose vasopressors (Lee 2014 table, >=3 h)",
            "hypotension requiring multiple vasopressors",
            "hypotension responsive to low dose of one vasopressor",
            "hypotension responsive to fluids",
        ],
    )
    oxy, oxy_bits = oxygen_by_fio2(d, settings["fio2_grade3_min"], settings["ventilator_devices"])
    oxy_text = where(
        oxy == 4,
        "requirement for ventilator support",
        label(oxy, {2: "oxygen requirement <40%", 3: "oxygen requirement >=40%"})
        + " ("
        + fio2_text(d)
        + ")",
    )
    fev = fever_grade(d)
    g, text = pick(
        [fev, hyp, oxy], [label(fev, {1: "fever"}), hyp_text, where(oxy > 0, oxy_text, "")]
    )
    crit = graded_text(g, text)
    bits = (
        np.where((hyp == g) & (hyp == 2) & (n == 0), 1, 0).astype(np.int16)
        | np.where(oxy == g, oxy_bits, 0).astype(np.int16)
        | d.weight_flag
    )
    return finish(s, g, crit, bits)
