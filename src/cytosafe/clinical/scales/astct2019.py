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

import numpy as np

from cytosafe.clinical.scales._common import DEV, Derived, Graded, finish, label, pick
from cytosafe.clinical.scales._text import Text, where
from cytosafe.clinical.states import States

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
        + where(
            d.fever,
            "fever " + temp_text + " C with ",
            "fever not required after antipyretic/anti-cytokine therapy; ",
        )
        + text,
        where(
            g == 1,
            "grade 1: fever " + temp_text + " C without hypotension or hypoxia",
            where(g_vital > 0, "no fever: " + text + " not graded (fever required)", ""),
        ),
    )
    bits = np.zeros(len(s), dtype=np.int16)
    bits |= np.where(hyp == 2, 1, 0).astype(np.int16)
    bits |= np.where(d.flow_unknown & (dev_grade == 2), 8, 0).astype(np.int16)
    bits |= d.weight_flag
    return finish(s, g, crit, bits)
