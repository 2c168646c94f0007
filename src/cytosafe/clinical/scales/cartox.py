"""CARTOX CRS grading (Neelapu 2018).

Source: Neelapu SS, Tummala S, Kebriaei P, et al. Chimeric antigen receptor T-cell
therapy - assessment and management of toxicities. Nat Rev Clin Oncol. 2018;15(1):47-62
(Table 2). Criteria, as published:

    Vital signs - Temperature >=38 C: grade 1 yes; grade 2 any; grade 3 any; grade 4 any.
    Systolic blood pressure <90 mmHg: grade 2 responds to IV fluids or low-dose
    vasopressor; grade 3 needs high-dose or multiple vasopressors; grade 4
    life-threatening.
    Need for oxygen for SpO2 >90%: grade 2 FiO2 <40%; grade 3 FiO2 >=40%; grade 4 needs
    ventilator support.
    Organ toxicity: grade 1 grade 1; grade 2 grade 2; grade 3 grade 3 or grade 4
    transaminitis; grade 4 grade 4 except transaminitis.
    Grade 5: death.

How CytoSafe reads it: hypotension is systolic < 90 mmHg as CARTOX itself defines it
(no estimate); high-dose vasopressors follow the Lee 2014 table; vasopressin counts
among multiple vasopressors (``vasopressin_counts_as_vasopressor``); "ventilator
support" is mechanical ventilation (``ventilator_devices``); "life-threatening
hypotension" and organ toxicities are not graded. Grade 5 is death due to CRS.
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
from cytosafe.clinical.scales._text import where
from cytosafe.clinical.states import States

NAME = "cartox"
KIND = "CRS"


def grade(s: States, d: Derived, settings: dict) -> Graded:
    """CARTOX grade of every row (see the module docstring for the criteria)."""
    n = n_all_pressors(d, settings["vasopressin_counts_as_vasopressor"])
    hyp = np.select([d.high_dose | (n >= 2), (n == 1) | d.sbp_low], [3, 2], default=0).astype(
        np.int8
    )
    hyp_text = label(
        hyp,
        {
            2: "SBP <90 mmHg responding to IV fluids or low-dose vasopressor",
            3: "SBP <90 mmHg needing high-dose or multiple vasopressors",
        },
    )
    oxy, oxy_bits = oxygen_by_fio2(d, settings["fio2_grade3_min"], settings["ventilator_devices"])
    oxy_text = where(
        oxy == 4,
        "oxygen: needs ventilator support",
        label(oxy, {2: "oxygen: FiO2 <40%", 3: "oxygen: FiO2 >=40%"}) + " (" + fio2_text(d) + ")",
    )
    fev = fever_grade(d)
    g, text = pick(
        [fev, hyp, oxy],
        [label(fev, {1: "temperature >=38 C"}), hyp_text, where(oxy > 0, oxy_text, "")],
    )
    crit = graded_text(g, text)
    bits = np.where(oxy == g, oxy_bits, 0).astype(np.int16) | d.weight_flag
    return finish(s, g, crit, bits)
