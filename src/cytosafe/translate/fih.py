"""First-in-human starting dose: MABEL from potency and receptor occupancy; NOAEL-based MRSD.

After TGN1412 the starting dose of an immune-activating molecule is set from its minimal
anticipated biological effect level (MABEL; EMA 2017), not only from animal NOAELs:

* **MABEL from in vitro potency** — the concentration giving a minimal effect in the most
  sensitive assay (an EC20 or EC10 of cytokine release or T-cell activation, Saber 2016,
  2017) is taken as the target peak plasma concentration;
* **MABEL from receptor occupancy** — the concentration giving a small occupancy (10% by
  default): simple binding ``RO = C/(C + Kd)`` (law of mass action, Clark 1933), or with
  the target concentration ``R`` taken into account (target depletion; Muller & Brennan
  2009)::

      RO = ((Kd + R + D) - sqrt((Kd + R + D)^2 - 4 R D)) / (2 R)      (D: total drug)
      D(RO) = Kd RO / (1 - RO) + RO R

* **from a concentration to a dose** — the dose whose peak concentration is the target
  when the dose distributes at first into plasma only: ``dose = C x V`` with ``V`` 40
  mL/kg (the plasma volume used in published MABEL calculations) or 3 L per 70 kg
  (Davies & Morris 1993), or a volume the user sets, then divided by a safety factor;
* **NOAEL-based MRSD** (FDA 2005) for comparison — the human equivalent dose (HED) by
  body-surface-area scaling, ``HED = NOAEL / divisor`` (Table 1; for proteins > 100 kDa
  given IV, mg/kg without scaling, Section V.B), divided by the safety factor (10).

Every function returns its working as a table (``step``, ``quantity``, ``value``,
``unit``, ``formula``, ``source``, ``assumption``) so that every number the user sees can
be traced to its inputs and citation. The conversion factors and defaults are read from
``cytosafe/data/fih_dose.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cytosafe.data import load
from cytosafe.errors import InputError
from cytosafe.translate.knowledge import FIH_FILE
from cytosafe.translate.units import check_positive, dose_to_mg_per_kg, to_ng_per_ml

__all__ = [
    "DoseEstimate",
    "concentration_for_occupancy",
    "fih_dose",
    "human_equivalent_dose",
    "mabel_from_occupancy",
    "mabel_from_potency",
    "most_sensitive",
    "mrsd_from_noael",
    "occupancy_at_dose",
    "peak_concentration",
    "receptor_occupancy",
    "receptor_occupancy_quadratic",
    "species_table",
]

STEP_COLUMNS = ["approach", "step", "quantity", "value", "unit", "formula", "source", "assumption"]


def _knowledge() -> dict:
    return load(FIH_FILE)


def species_table() -> pd.DataFrame:
    """FDA 2005 Table 1 as a table: Km, HED divisor and multiplier, reference weight."""
    rows = []
    for key, s in _knowledge()["species"].items():
        rows.append(
            {
                "species": key,
                "name": s["name"],
                "km": s["km"],
                "hed_divisor": s.get("hed_divisor", np.nan),
                "hed_multiplier": s.get("hed_multiplier", np.nan),
                "reference_weight_kg": s["reference_weight_kg"],
                "source": s["source"],
                "status": s["status"],
            }
        )
    return pd.DataFrame(rows)


# --- binding ---------------------------------------------------------------------------------
def receptor_occupancy(concentration, kd):
    """Fractional occupancy by simple binding, ``C / (C + Kd)`` (Clark 1933).

    ``concentration`` and ``kd`` in the same unit; arrays broadcast.
    """
    c = np.asarray(concentration, dtype=float)
    kd = np.asarray(kd, dtype=float)
    out = c / (c + kd)
    return float(out) if out.ndim == 0 else out


def receptor_occupancy_quadratic(total_drug, kd, target):
    """Fractional occupancy with target depletion (Muller & Brennan 2009).

    ``RO = ((Kd + R + D) - sqrt((Kd + R + D)^2 - 4 R D)) / (2 R)`` with ``D`` the total
    drug and ``R`` the total target concentration (same unit as ``Kd``), written as
    ``2 D / (b + sqrt(b^2 - 4 R D))`` (``b = Kd + R + D``), which is the same number without
    the cancellation of the textbook form when ``R D`` is small. ``R -> 0`` gives
    :func:`receptor_occupancy`.
    """
    d = np.asarray(total_drug, dtype=float)
    kd = np.asarray(kd, dtype=float)
    r = np.asarray(target, dtype=float)
    b = kd + r + d
    disc = np.maximum(b * b - 4.0 * r * d, 0.0)
    out = 2.0 * d / (b + np.sqrt(disc))
    return float(out) if out.ndim == 0 else out


def concentration_for_occupancy(occupancy: float, kd: float, target: float | None = None) -> float:
    """Total drug concentration giving fractional ``occupancy``.

    Simple binding: ``Kd RO / (1 - RO)``; with a target concentration ``R``:
    ``Kd RO / (1 - RO) + RO R`` (free drug plus drug bound to the occupied targets; the
    inverse of :func:`receptor_occupancy_quadratic`).
    """
    if not 0 < occupancy < 1:
        raise InputError(
            f"receptor occupancy {occupancy:g} is outside (0, 1)",
            field="occupancy",
            expected="a fraction strictly between 0 and 1 (e.g. 0.1 for 10%)",
        )
    free = kd * occupancy / (1.0 - occupancy)
    return free + (occupancy * target if target else 0.0)


# --- volumes and doses -----------------------------------------------------------------------
@dataclass(frozen=True)
class _Volume:
    litres: float
    per_kg: float
    title: str
    formula: str
    source: str
    assumption: str


def _volume(distribution: str | None, volume_l: float | None, body_weight_kg: float) -> _Volume:
    """The initial distribution volume for ``body_weight_kg``: user-set or a preset."""
    if volume_l is not None:
        v = check_positive(volume_l, "distribution volume", field="volume_l")
        return _Volume(
            v,
            v / body_weight_kg,
            "user-set distribution volume",
            "V (given)",
            "user",
            "the volume the dose distributes into at first, as given",
        )
    kn = _knowledge()["distribution"]
    name = distribution or kn["default"]
    if name not in kn or name == "default":
        raise InputError(
            f"unknown distribution assumption '{name}'",
            field="distribution",
            expected="one of " + ", ".join(k for k in kn if k != "default"),
        )
    d = kn[name]
    cite = ", ".join(d["citations"])
    if "volume_l_per_kg" in d:
        per_kg = float(d["volume_l_per_kg"])
        return _Volume(
            per_kg * body_weight_kg,
            per_kg,
            d["title"],
            f"V = {per_kg:g} L/kg x body weight",
            cite,
            d["description"],
        )
    per_kg = float(d["volume_l"]) / float(d["reference_body_weight_kg"])
    return _Volume(
        per_kg * body_weight_kg,
        per_kg,
        d["title"],
        f"V = {d['volume_l']:g} L x body weight / {d['reference_body_weight_kg']:g} kg",
        cite,
        d["description"],
    )


def _defaults() -> dict:
    return _knowledge()["defaults"]


def _check_dose(dose_mg_per_kg: float, given: float, unit: str, field_name: str) -> None:
    limit = float(_defaults()["max_dose_mg_per_kg"])
    if dose_mg_per_kg > limit:
        raise InputError(
            f"a dose of {given:g} {unit} is {dose_mg_per_kg:g} mg/kg, above {limit:g} mg/kg: "
            "is it a total dose (mg) typed as mg/kg?",
            field=field_name,
            expected=f"a per-kg dose up to {limit:g} mg/kg, or the total dose in mg",
        )


@dataclass
class DoseEstimate:
    """A starting-dose estimate and its working.

    ``dose_mg_per_kg`` and ``dose_mg`` (for ``body_weight_kg``) are the result;
    ``steps`` has one row per input, assumption and formula with its citation.
    """

    approach: str
    dose_mg_per_kg: float
    body_weight_kg: float
    steps: pd.DataFrame
    details: dict = field(default_factory=dict)

    @property
    def dose_mg(self) -> float:
        return self.dose_mg_per_kg * self.body_weight_kg

    @property
    def dose_ug_per_kg(self) -> float:
        return self.dose_mg_per_kg * 1000.0


class _Steps:
    def __init__(self, approach: str) -> None:
        self.approach = approach
        self.rows: list[dict] = []

    def add(self, quantity, value, unit, formula="", source="", assumption="", step=None):
        self.rows.append(
            {
                "approach": self.approach,
                "step": step or len(self.rows) + 1,
                "quantity": quantity,
                "value": value,
                "unit": unit,
                "formula": formula,
                "source": source,
                "assumption": assumption,
            }
        )

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=STEP_COLUMNS)


def _concentration_to_dose(
    steps: _Steps,
    conc_ng_ml: float,
    *,
    body_weight_kg: float,
    distribution: str | None,
    volume_l: float | None,
    safety_factor: float,
) -> float:
    """Append the concentration -> dose steps; return the dose in mg/kg."""
    vol = _volume(distribution, volume_l, body_weight_kg)
    steps.add("body weight", body_weight_kg, "kg", "", "user / default", "")
    steps.add(
        "initial distribution volume",
        vol.litres,
        "L",
        vol.formula,
        vol.source,
        f"{vol.title}: {vol.assumption}",
    )
    dose_ug = conc_ng_ml * vol.litres  # ng/mL = ug/L
    steps.add(
        "dose giving the target peak concentration",
        dose_ug / 1000.0,
        "mg",
        "dose = C_target x V (ng/mL = ug/L)",
        vol.source,
        "the whole dose is in the distribution volume at the peak (no elimination yet)",
    )
    sf = check_positive(safety_factor, "safety factor", field="safety_factor")
    steps.add(
        "safety factor",
        sf,
        "1",
        "",
        "EMA 2017",
        _defaults()["mabel_safety_factor_note"] if sf == 1 else "user-set",
    )
    dose = dose_ug / 1000.0 / sf / body_weight_kg
    steps.add(
        "MABEL starting dose",
        dose * 1000.0,
        "ug/kg",
        "dose / safety factor / body weight",
        "EMA 2017",
        "",
    )
    steps.add("MABEL starting dose (total)", dose * body_weight_kg, "mg", "", "", "")
    return dose


def mabel_from_potency(
    ecx: float,
    unit: str = "ng/mL",
    *,
    percent: float = 20.0,
    source: str = "given by hand",
    mw_kda: float | None = None,
    body_weight_kg: float | None = None,
    distribution: str | None = None,
    volume_l: float | None = None,
    safety_factor: float | None = None,
) -> DoseEstimate:
    """MABEL from the ECx of the most sensitive in vitro assay.

    The ECx is taken as the target peak plasma concentration and converted to a dose by
    the initial-distribution assumption (see the module docstring).

    Examples
    --------
    >>> est = mabel_from_potency(20.0, "ng/mL", percent=20)
    >>> round(est.dose_ug_per_kg, 3)  # 20 ng/mL x 40 mL/kg
    0.8
    """
    d = _defaults()
    bw = check_positive(body_weight_kg or d["body_weight_kg"], "body weight", field="body_weight")
    mw = mw_kda if mw_kda is not None else d["molecular_weight_kda"]
    value = check_positive(ecx, f"EC{percent:g}", field="ecx")
    steps = _Steps("MABEL (in vitro potency)")
    steps.add(
        f"EC{percent:g} of the most sensitive assay",
        value,
        unit,
        "",
        source,
        "the in vitro concentration of a minimal effect is the target peak plasma "
        "concentration (culture concentration = plasma concentration)",
    )
    conc = to_ng_per_ml(value, unit, mw_kda=mw, field="ecx")
    if conc != value or unit != "ng/mL":
        steps.add(
            "target peak plasma concentration",
            conc,
            "ng/mL",
            f"unit conversion{' (1 nM = MW ng/mL, MW ' + format(mw, 'g') + ' kDa)' if 'M' in unit else ''}",
            "",
            d["molecular_weight_note"] if "M" in unit else "",
        )
    dose = _concentration_to_dose(
        steps,
        conc,
        body_weight_kg=bw,
        distribution=distribution,
        volume_l=volume_l,
        safety_factor=d["mabel_safety_factor"] if safety_factor is None else safety_factor,
    )
    return DoseEstimate("MABEL (in vitro potency)", dose, bw, steps.frame(), {"target_ng_ml": conc})


def mabel_from_occupancy(
    kd: float,
    unit: str = "nM",
    *,
    occupancy: float | None = None,
    target: float | None = None,
    mw_kda: float | None = None,
    body_weight_kg: float | None = None,
    distribution: str | None = None,
    volume_l: float | None = None,
    safety_factor: float | None = None,
) -> DoseEstimate:
    """MABEL from receptor occupancy: the dose whose peak concentration gives ``occupancy``.

    ``target`` (the total target concentration, in ``unit``) switches from simple binding
    to the target-depletion quadratic form (Muller & Brennan 2009).
    """
    d = _defaults()
    bw = check_positive(body_weight_kg or d["body_weight_kg"], "body weight", field="body_weight")
    mw = mw_kda if mw_kda is not None else d["molecular_weight_kda"]
    kd_v = check_positive(kd, "Kd", field="kd")
    ro = (d["target_occupancy_percent"] / 100.0) if occupancy is None else float(occupancy)
    steps = _Steps("MABEL (receptor occupancy)")
    steps.add("Kd", kd_v, unit, "", "user", "binding at equilibrium, free drug = plasma drug")
    steps.add(
        "target receptor occupancy",
        ro * 100.0,
        "%",
        "",
        "EMA 2017; Saber 2016",
        d["target_occupancy_note"] if occupancy is None else "user-set",
    )
    if target is None:
        c = concentration_for_occupancy(ro, kd_v)
        steps.add(
            "target peak plasma concentration",
            c,
            unit,
            "C = Kd x RO / (1 - RO)",
            "Clark 1933",
            "simple binding: the target does not deplete the drug",
        )
    else:
        r = check_positive(target, "target concentration", field="target")
        steps.add("total target concentration", r, unit, "", "user", "")
        c = concentration_for_occupancy(ro, kd_v, r)
        steps.add(
            "target peak plasma concentration (total drug)",
            c,
            unit,
            "D = Kd x RO / (1 - RO) + RO x R",
            "Muller & Brennan 2009",
            "target depletion: drug bound to the target is part of the dose",
        )
    conc = to_ng_per_ml(c, unit, mw_kda=mw, field="kd")
    if unit != "ng/mL":
        steps.add(
            "target peak plasma concentration",
            conc,
            "ng/mL",
            f"1 nM = MW ng/mL (MW {mw:g} kDa)" if "M" in unit else "unit conversion",
            "",
            d["molecular_weight_note"] if "M" in unit else "",
        )
    dose = _concentration_to_dose(
        steps,
        conc,
        body_weight_kg=bw,
        distribution=distribution,
        volume_l=volume_l,
        safety_factor=d["mabel_safety_factor"] if safety_factor is None else safety_factor,
    )
    return DoseEstimate(
        "MABEL (receptor occupancy)",
        dose,
        bw,
        steps.frame(),
        {"target_ng_ml": conc, "occupancy": ro, "target_concentration": c, "unit": unit},
    )


def peak_concentration(
    dose: float,
    dose_unit: str = "mg/kg",
    *,
    body_weight_kg: float | None = None,
    distribution: str | None = None,
    volume_l: float | None = None,
) -> float:
    """Peak plasma concentration (ng/mL) of a dose under the initial-distribution assumption."""
    bw = body_weight_kg or _defaults()["body_weight_kg"]
    mgkg = dose_to_mg_per_kg(
        check_positive(dose, "dose", field="dose"), dose_unit, bw, field="dose"
    )
    vol = _volume(distribution, volume_l, bw)
    return mgkg * bw * 1e6 / (vol.litres * 1000.0)  # mg -> ng, L -> mL


def occupancy_at_dose(
    dose: float,
    dose_unit: str = "mg/kg",
    *,
    kd: float,
    kd_unit: str = "nM",
    target: float | None = None,
    mw_kda: float | None = None,
    body_weight_kg: float | None = None,
    distribution: str | None = None,
    volume_l: float | None = None,
) -> DoseEstimate:
    """Receptor occupancy at the peak concentration of a dose (e.g. a planned trial dose)."""
    d = _defaults()
    bw = check_positive(body_weight_kg or d["body_weight_kg"], "body weight", field="body_weight")
    mw = mw_kda if mw_kda is not None else d["molecular_weight_kda"]
    mgkg = dose_to_mg_per_kg(
        check_positive(dose, "dose", field="dose"), dose_unit, bw, field="dose"
    )
    _check_dose(mgkg, dose, dose_unit, "dose")
    vol = _volume(distribution, volume_l, bw)
    steps = _Steps("receptor occupancy at a dose")
    steps.add("dose", mgkg, "mg/kg", "", "user", "")
    steps.add("body weight", bw, "kg", "", "user / default", "")
    steps.add(
        "initial distribution volume",
        vol.litres,
        "L",
        vol.formula,
        vol.source,
        f"{vol.title}: {vol.assumption}",
    )
    c_ng = mgkg * bw * 1e6 / (vol.litres * 1000.0)
    steps.add("peak plasma concentration", c_ng, "ng/mL", "C = dose / V", vol.source, "")
    kd_ng = to_ng_per_ml(check_positive(kd, "Kd", field="kd"), kd_unit, mw_kda=mw, field="kd")
    c_nm = c_ng / mw
    kd_nm = kd_ng / mw
    steps.add(
        "peak plasma concentration",
        c_nm,
        "nM",
        f"C / MW (MW {mw:g} kDa)",
        "",
        d["molecular_weight_note"],
    )
    steps.add("Kd", kd_nm, "nM", "", "user", "")
    if target is None:
        ro = receptor_occupancy(c_nm, kd_nm)
        steps.add("receptor occupancy", 100 * ro, "%", "RO = C / (C + Kd)", "Clark 1933", "")
    else:
        r_nm = to_ng_per_ml(target, kd_unit, mw_kda=mw, field="target") / mw
        steps.add("total target concentration", r_nm, "nM", "", "user", "")
        ro = receptor_occupancy_quadratic(c_nm, kd_nm, r_nm)
        steps.add(
            "receptor occupancy",
            100 * ro,
            "%",
            "RO = ((Kd+R+D) - sqrt((Kd+R+D)^2 - 4RD)) / (2R)",
            "Muller & Brennan 2009",
            "",
        )
    return DoseEstimate(
        "receptor occupancy at a dose",
        mgkg,
        bw,
        steps.frame(),
        {"occupancy": ro, "peak_ng_ml": c_ng, "peak_nm": c_nm},
    )


# --- NOAEL-based MRSD ------------------------------------------------------------------------
def _species(name: str) -> dict:
    table = _knowledge()["species"]
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    aliases = {"cynomolgus": "monkey", "rhesus": "monkey", "nhp": "monkey", "minipig": "mini_pig"}
    key = aliases.get(key, key)
    if key not in table or "hed_divisor" not in table[key]:
        raise InputError(
            f"unknown species '{name}'",
            field="species",
            expected="one of " + ", ".join(k for k, v in table.items() if "hed_divisor" in v),
        )
    return {"key": key, **table[key]}


def human_equivalent_dose(
    noael_mg_per_kg: float, species: str, *, mw_kda: float | None = None, route: str = "iv"
) -> DoseEstimate:
    """HED (mg/kg) from an animal NOAEL by FDA 2005 Table 1 (body-surface-area scaling).

    ``HED = NOAEL / divisor`` with ``divisor = Km_human / Km_animal`` as printed in Table 1.
    A protein above 100 kDa given IV is scaled by mg/kg (HED = NOAEL; Section V.B).
    """
    d = _defaults()
    s = _species(species)
    noael = check_positive(noael_mg_per_kg, "NOAEL", field="noael")
    steps = _Steps("NOAEL / HED (FDA 2005)")
    steps.add(f"NOAEL in {s['name']}", noael, "mg/kg", "", "user", "")
    protein = (
        mw_kda is not None
        and mw_kda > d["protein_mg_per_kg_threshold_kda"]
        and route.lower() == "iv"
    )
    if protein:
        hed = noael
        steps.add("HED", hed, "mg/kg", "HED = NOAEL (mg/kg scaling)", "FDA 2005", d["protein_note"])
    else:
        steps.add(f"Km {s['name']}", s["km"], "kg/m2", "", "FDA 2005", "Table 1")
        steps.add("Km human", _knowledge()["species"]["human"]["km"], "kg/m2", "", "FDA 2005", "")
        steps.add(
            "HED divisor", s["hed_divisor"], "1", "Km human / Km animal", "FDA 2005", "Table 1"
        )
        hed = noael / s["hed_divisor"]
        steps.add("HED", hed, "mg/kg", "HED = NOAEL / divisor", "FDA 2005", "60-kg human")
    return DoseEstimate("NOAEL / HED (FDA 2005)", hed, 60.0, steps.frame(), {"species": s["key"]})


def mrsd_from_noael(
    noael_mg_per_kg: float,
    species: str,
    *,
    safety_factor: float | None = None,
    body_weight_kg: float | None = None,
    mw_kda: float | None = None,
    route: str = "iv",
) -> DoseEstimate:
    """Maximum recommended starting dose: the HED divided by the safety factor (FDA 2005)."""
    d = _defaults()
    est = human_equivalent_dose(noael_mg_per_kg, species, mw_kda=mw_kda, route=route)
    sf = check_positive(
        d["mrsd_safety_factor"] if safety_factor is None else safety_factor,
        "safety factor",
        field="safety_factor",
    )
    # FDA 2005 expresses the MRSD for a 60-kg human.
    bw = body_weight_kg or _knowledge()["species"]["human"]["reference_weight_kg"]
    steps = _Steps("NOAEL / MRSD (FDA 2005)")
    rows = est.steps.assign(approach=steps.approach).to_dict("records")
    steps.rows = rows
    steps.add(
        "safety factor",
        sf,
        "1",
        "",
        "FDA 2005",
        d["mrsd_safety_factor_note"] if safety_factor is None else "user-set",
    )
    mrsd = est.dose_mg_per_kg / sf
    steps.add("MRSD", mrsd * 1000, "ug/kg", "MRSD = HED / safety factor", "FDA 2005", "")
    steps.add("MRSD (total)", mrsd * bw, "mg", f"x {bw:g} kg", "", "")
    return DoseEstimate("NOAEL / MRSD (FDA 2005)", mrsd, bw, steps.frame(), est.details)


# --- the most sensitive assay ----------------------------------------------------------------
def most_sensitive(
    potency: pd.DataFrame,
    *,
    treatment: str | None = None,
    measure: str | None = None,
    aggregate: str = "geomean",
) -> dict:
    """The most sensitive assay of a potency table (:func:`cytosafe.curves.potency.potency`,
    or a :class:`~cytosafe.quantification.QuantificationResult`).

    Rows with ``status == "response"`` and a finite ``measure`` (default: the table's ECx,
    e.g. ``ec20``) are pooled per treatment x assay format x incubation x analyte across
    donors (``aggregate``: ``geomean`` (default), ``median`` or ``min``); the lowest pooled
    value is the most sensitive assay. Returns a record with the value, unit and what it
    was computed from.
    """
    potency = getattr(potency, "potency", potency)  # a QuantificationResult, or its table
    if potency is None or len(potency) == 0 or "status" not in potency:
        raise InputError("the potency table is empty", field="potency")
    if measure is None:
        pct = (
            potency["ecx_percent"].dropna()
            if "ecx_percent" in potency
            else pd.Series([], dtype=float)
        )
        measure = f"ec{float(pct.iloc[0]):g}" if len(pct) else "ec50"
    if measure not in potency:
        raise InputError(
            f"the potency table has no column '{measure}'",
            field="measure",
            expected="ec50 or the ECx the potency step reported (e.g. ec20)",
        )
    p = potency[(potency["status"] == "response") & np.isfinite(potency[measure].astype(float))]
    if treatment is not None:
        if treatment not in set(potency["treatment"]):
            raise InputError(
                f"treatment '{treatment}' is not in the potency table",
                field="treatment",
                expected="one of " + ", ".join(sorted(map(str, set(potency["treatment"])))),
            )
        p = p[p["treatment"] == treatment]
    if p.empty:
        raise InputError(
            f"no donor has an {measure.upper()} (no concentration-dependent response)"
            + (f" for '{treatment}'" if treatment else ""),
            field=measure,
            expected="at least one potency row with status 'response'",
        )
    key = [k for k in ("treatment", "assay_format", "incubation_h", "analyte") if k in p]
    p = p.assign(_inc=p["incubation_h"].fillna(-1)) if "incubation_h" in p else p
    key = ["_inc" if k == "incubation_h" else k for k in key]
    funcs = {
        "geomean": lambda v: float(np.exp(np.mean(np.log(v)))),
        "median": lambda v: float(np.median(v)),
        "min": lambda v: float(np.min(v)),
    }
    if aggregate not in funcs:
        raise InputError(
            f"unknown aggregate '{aggregate}'", field="aggregate", expected="geomean, median or min"
        )
    rows = []
    for k, g in p.groupby(key, sort=True):
        vals = g[measure].to_numpy(dtype=float)
        units = g["treatment_unit"].dropna().unique() if "treatment_unit" in g else []
        rows.append(
            {
                **dict(zip(key, k if isinstance(k, tuple) else (k,), strict=True)),
                "value": funcs[aggregate](vals),
                "unit": str(units[0]) if len(units) else "",
                "n_donors": len(vals),
                "donors": ", ".join(map(str, g.get("donor_id", pd.Series(dtype=str)))),
            }
        )
    pooled = pd.DataFrame(rows).sort_values("value", kind="stable")
    best = pooled.iloc[0].to_dict()
    if not best["unit"]:
        raise InputError(
            "the potency table has no treatment_unit for the most sensitive assay",
            field="treatment_unit",
        )
    inc = best.pop("_inc", -1)
    best["incubation_h"] = None if inc is None or inc < 0 else inc
    best["measure"] = measure
    best["aggregate"] = aggregate
    best["percent"] = float(measure[2:])
    best["candidates"] = pooled.drop(columns=["_inc"], errors="ignore")
    best["description"] = (
        f"{measure.upper()} of {best.get('treatment', '')} in {best.get('assay_format', '')}"
        f" ({best.get('analyte', '')}), {aggregate} over {best['n_donors']} responding donor(s)"
    )
    return best


# --- all approaches together -----------------------------------------------------------------
def fih_dose(
    *,
    ecx: float | None = None,
    ecx_unit: str = "ng/mL",
    ecx_percent: float = 20.0,
    ecx_source: str = "given by hand",
    potency: pd.DataFrame | None = None,
    treatment: str | None = None,
    aggregate: str = "geomean",
    kd: float | None = None,
    kd_unit: str = "nM",
    occupancy: float | None = None,
    target: float | None = None,
    noael: float | None = None,
    species: str | None = None,
    mw_kda: float | None = None,
    body_weight_kg: float | None = None,
    distribution: str | None = None,
    volume_l: float | None = None,
    mabel_safety_factor: float | None = None,
    mrsd_safety_factor: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every starting-dose approach the inputs allow, side by side.

    Returns ``(summary, steps)``: one summary row per approach (dose in ug/kg and mg for
    the body weight) with the lowest marked ``recommended`` (the most conservative, as
    EMA 2017 asks when approaches disagree), and the working of all of them.
    """
    estimates: list[DoseEstimate] = []
    common = {
        "mw_kda": mw_kda,
        "body_weight_kg": body_weight_kg,
        "distribution": distribution,
        "volume_l": volume_l,
    }
    if potency is not None and ecx is None:
        best = most_sensitive(potency, treatment=treatment, aggregate=aggregate)
        ecx, ecx_unit, ecx_percent, ecx_source = (
            best["value"],
            best["unit"],
            best["percent"],
            best["description"],
        )
    if ecx is not None:
        estimates.append(
            mabel_from_potency(
                ecx,
                ecx_unit,
                percent=ecx_percent,
                source=ecx_source,
                safety_factor=mabel_safety_factor,
                **common,
            )
        )
    if kd is not None:
        estimates.append(
            mabel_from_occupancy(
                kd,
                kd_unit,
                occupancy=occupancy,
                target=target,
                safety_factor=mabel_safety_factor,
                **common,
            )
        )
    if noael is not None:
        if species is None:
            raise InputError("a NOAEL needs its species", field="species")
        estimates.append(
            mrsd_from_noael(
                noael,
                species,
                safety_factor=mrsd_safety_factor,
                mw_kda=mw_kda,
                body_weight_kg=body_weight_kg,
            )
        )
    if not estimates:
        raise InputError(
            "nothing to compute a starting dose from",
            expected="an ECx (or a potency table), a Kd, or a NOAEL with its species",
        )
    summary = pd.DataFrame(
        {
            "approach": [e.approach for e in estimates],
            "dose_ug_per_kg": [e.dose_ug_per_kg for e in estimates],
            "dose_mg": [e.dose_mg for e in estimates],
            "body_weight_kg": [e.body_weight_kg for e in estimates],
        }
    )
    summary["recommended"] = summary["dose_ug_per_kg"] == summary["dose_ug_per_kg"].min()
    steps = pd.concat([e.steps for e in estimates], ignore_index=True)
    return summary, steps
