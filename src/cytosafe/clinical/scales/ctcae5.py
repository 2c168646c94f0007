"""CTCAE v5.0 Cytokine release syndrome.

Source: National Cancer Institute. Common Terminology Criteria for Adverse Events
(CTCAE) Version 5.0, 27 November 2017; Immune system disorders: Cytokine release
syndrome. Criteria, as published:

    Grade 1: Fever with or without constitutional symptoms.
    Grade 2: Hypotension responding to fluids; hypoxia responding to <40% O2.
    Grade 3: Hypotension managed with one pressor; hypoxia requiring >=40% O2.
    Grade 4: Life-threatening consequences; urgent intervention indicated.
    Grade 5: Death.

How CytoSafe reads it: fever >= 38.0 C; hypotension responding to fluids is systolic
pressure < 90 mmHg without a pressor (an estimate); one pressor (vasopressin included)
is grade 3; grade 4 ("life-threatening; urgent intervention") is read as two or more
pressors or positive-pressure ventilation (``grade4_devices``), an interpretation
reported on each such grade; FiO2 as in :mod:`lee2014`. Grade 5 is death due to CRS.
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

NAME = "ctcae5"
KIND = "CRS"


def grade(s: States, d: Derived, settings: dict) -> Graded:
    """CTCAE v5.0 grade of every row (see the module docstring for the criteria)."""
    n = n_all_pressors(d, True)
    hyp = np.select([n >= 2, n == 1, d.sbp_low], [4, 3, 2], default=0).astype(np.int8)
    hyp_text = label(
        hyp,
        {
            2: "hypotension responding to fluids",
            3: "hypotension managed with one pressor",
            4: "life-threatening consequences: more than one pressor",
        },
    )
    oxy, oxy_bits = oxygen_by_fio2(d, settings["fio2_grade3_min"], settings["grade4_devices"])
    oxy_text = where(
        oxy == 4,
        "life-threatening consequences: positive-pressure ventilation",
        label(oxy, {2: "hypoxia responding to <40% O2", 3: "hypoxia requiring >=40% O2"})
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
        np.where((hyp == g) & (hyp == 2), 1, 0).astype(np.int16)
        | np.where(oxy == g, oxy_bits, 0).astype(np.int16)
        | np.where(g == 4, 32, 0).astype(np.int16)
        | d.weight_flag
    )
    return finish(s, g, crit, bits)
