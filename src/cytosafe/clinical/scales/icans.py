"""ASTCT 2019 ICANS grading for adults, with the ICE score.

Source: Lee DW, Santomasso BD, Locke FL, et al. Biol Blood Marrow Transplant.
2019;25(4):625-638 (Table 6). Criteria, as published:

    ICE score: grade 1 7-9; grade 2 3-6; grade 3 0-2; grade 4 0 (patient is unarousable
    and unable to perform ICE).
    Depressed level of consciousness: grade 1 awakens spontaneously; grade 2 awakens to
    voice; grade 3 awakens only to tactile stimulus; grade 4 patient is unarousable or
    requires vigorous or repetitive tactile stimuli to arouse. Stupor or coma.
    Seizure: grade 3 any clinical seizure focal or generalized that resolves rapidly or
    nonconvulsive seizures on EEG that resolve with intervention; grade 4
    life-threatening prolonged seizure (>5 min); or repetitive clinical or electrical
    seizures without return to baseline in between.
    Motor findings: grade 4 deep focal motor weakness such as hemiparesis or paraparesis.
    Elevated ICP/cerebral edema: grade 3 focal/local edema on neuroimaging; grade 4
    diffuse cerebral edema on neuroimaging; decerebrate or decorticate posturing; or
    cranial nerve VI palsy; or papilledema; or Cushing's triad.
    ICANS grade is determined by the most severe event not attributable to any other
    cause. A patient with an ICE score of 0 may be classified as grade 3 ICANS if awake
    with global aphasia, but a patient with an ICE score of 0 may be classified as grade
    4 ICANS if unarousable.

How CytoSafe reads it: each domain is a state (it holds until charted again, e.g.
``seizure=none``); an ICE score of 10 is grade 0; the ICE score alone never gives grade 4
(unarousable is charted as ``consciousness=unarousable``). ICANS has no grade 5 in the
consensus table; a death due to ICANS is not graded here. Children under 12 (CAPD) are
not covered.
"""

from __future__ import annotations

import numpy as np

from cytosafe.clinical.scales._common import Graded, estimate_text, label, pick
from cytosafe.clinical.scales._text import Text, where
from cytosafe.clinical.states import States
from cytosafe.schema.observations import CONSCIOUSNESS, MOTOR, RAISED_ICP, SEIZURE

NAME = "icans"
KIND = "ICANS"


def _domain(codes: np.ndarray, names: tuple[str, ...], grades: dict[str, int]) -> np.ndarray:
    table = np.array([grades[n] for n in names], dtype=np.int8)
    valid = ~np.isnan(codes)
    return np.where(valid, table[np.where(valid, codes, 0).astype(int)], 0).astype(np.int8)


def grade(s: States, d: object, settings: dict) -> Graded:
    """ICANS grade of every row (see the module docstring for the criteria)."""
    v = s.values
    ice = v["ice_score"]
    band = settings["ice_score_grade"]
    g_ice = np.select(
        [np.isnan(ice), ice >= 10, ice >= band["grade1_min"], ice >= band["grade2_min"]],
        [0, 0, 1, 2],
        default=3,
    ).astype(np.int8)
    g_con = _domain(v["consciousness"], CONSCIOUSNESS, settings["consciousness_grade"])
    g_sei = _domain(v["seizure"], SEIZURE, settings["seizure_grade"])
    g_mot = _domain(v["motor_findings"], MOTOR, settings["motor_findings_grade"])
    g_icp = _domain(v["raised_icp"], RAISED_ICP, settings["raised_icp_grade"])
    ice_text = "ICE score " + Text.fixed(ice, 0)
    g, text = pick(
        [g_ice, g_con, g_sei, g_mot, g_icp],
        [
            where(g_ice > 0, ice_text, ""),
            label(
                g_con,
                {
                    1: "awakens spontaneously",
                    2: "awakens to voice",
                    3: "awakens only to tactile stimulus",
                    4: "unarousable",
                },
            ),
            label(
                g_sei,
                {
                    3: "seizure that resolves rapidly",
                    4: "life-threatening prolonged or repetitive seizures",
                },
            ),
            label(g_mot, {4: "deep focal motor weakness"}),
            label(g_icp, {3: "focal/local cerebral edema", 4: "diffuse cerebral edema"}),
        ],
    )
    crit = where(g > 0, "grade " + Text.ints(g) + ": " + text, "no criterion met")
    return Graded(g.astype(np.int8), crit, estimate_text(np.zeros(len(g), dtype=np.int16)))
