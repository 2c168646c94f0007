"""FHIR R4 Bundles of Observation and MedicationAdministration onto the observation table.

A Bundle (JSON) is parsed and validated with ``fhir.resources`` (its R4B models, which
for these two resources are the R4 ones: ``medicationCodeableConcept``,
``effective[x]``, ``dosage.rate[x]``); a Bundle that does not validate is an
:class:`~cytosafe.errors.InputError` naming the file, the entry and the element.

Mapping:

| resource | selection | observation item | value / unit |
|---|---|---|---|
| Observation | LOINC ``8310-5`` Body temperature | ``temperature`` | ``valueQuantity`` (UCUM ``Cel`` or ``[degF]``) |
| Observation | LOINC ``8480-6`` Systolic blood pressure (also as a component of the ``85354-9`` panel) | ``systolic_bp`` | ``mm[Hg]`` |
| Observation | LOINC ``59408-5`` (SpO2 by pulse oximetry) or ``2708-6`` (SaO2) | ``spo2`` | ``%`` |
| Observation | LOINC ``3150-0`` Inhaled oxygen concentration | ``fio2`` | ``%`` |
| Observation | LOINC ``3151-8`` Inhaled oxygen flow rate | ``oxygen_flow`` | ``L/min`` |
| Observation | LOINC ``29463-7`` Body weight | ``weight`` | ``kg`` / ``[lb_av]`` |
| Observation | code system :data:`LOCAL_SYSTEM`, code = an item name (``oxygen_device``, ``ice_score``, ``consciousness``, ``seizure``, ``motor_findings``, ``raised_icp``, ``death``) | that item | ``valueCodeableConcept`` code, ``valueString``, ``valueInteger`` or ``valueQuantity`` |
| MedicationAdministration | medication text/display naming the ``product`` | ``infusion`` (hour 0) | |
| MedicationAdministration | medication text/display naming a treatment or vasopressor (:data:`cytosafe.io.sdtm.CM_TREATMENTS`) | that item | vasopressors: ``dosage.rateQuantity`` at the start and 0 at ``effectivePeriod.end``; treatments: ``dosage.dose`` |

Time: ``effectiveDateTime`` (or ``effectiveInstant``, ``effectivePeriod.start``); patient:
``subject.reference`` (``Patient/<id>`` gives ``<id>``). Oxygen devices and ICANS findings
have no LOINC code in common use, hence the CytoSafe-local code system. Resources with
status ``entered-in-error``, ``cancelled`` or ``not-done``, and Observations with other
codes, are listed in :attr:`FHIRData.skipped` with the reason, never used.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cytosafe.errors import InputError
from cytosafe.io._text import decode_text, short_error
from cytosafe.io.sdtm import CM_TREATMENTS
from cytosafe.schema.observations import MAPPED_COLUMNS, Observations, validate_observations

__all__ = ["LOCAL_SYSTEM", "LOINC", "FHIRData", "load_bundle", "read_fhir"]

LOINC_SYSTEM = "http://loinc.org"
#: The CytoSafe-local code system for items without a LOINC code.
LOCAL_SYSTEM = "https://cytosafe.org/fhir/CodeSystem/observation-item"
#: LOINC code -> observation item.
LOINC = {
    "8310-5": "temperature",
    "8480-6": "systolic_bp",
    "59408-5": "spo2",
    "2708-6": "spo2",
    "3150-0": "fio2",
    "3151-8": "oxygen_flow",
    "29463-7": "weight",
}
_BP_PANEL = "85354-9"
_LOCAL_ITEMS = {"oxygen_device", "ice_score", "consciousness", "seizure", "motor_findings",
                "raised_icp", "death"}  # fmt: skip
_SKIP_STATUS = {"entered-in-error", "cancelled", "not-done"}
_VASOPRESSORS = {"norepinephrine", "epinephrine", "dopamine", "phenylephrine", "vasopressin"}


@dataclass
class FHIRData:
    """What :func:`read_fhir` returns: the validated observations and the entries skipped."""

    observations: Observations
    skipped: pd.DataFrame


def _patient(resource: Any) -> str:
    ref = getattr(getattr(resource, "subject", None), "reference", None) or ""
    return ref.split("/", 1)[1] if ref.startswith("Patient/") else ref


def _time(resource: Any) -> tuple[str, str]:
    for name in ("effectiveDateTime", "effectiveInstant"):
        value = getattr(resource, name, None)
        if value is not None:
            return (value.isoformat() if hasattr(value, "isoformat") else str(value)), ""
    period = getattr(resource, "effectivePeriod", None)
    if period is not None and period.start is not None:
        end = period.end.isoformat() if period.end is not None else ""
        return period.start.isoformat(), end
    return "", ""


def _quantity(q: Any) -> tuple[str, str]:
    if q is None:
        return "", ""
    if q.value is None:
        return "", (q.code or q.unit or "")
    value = format(q.value, "f")
    if "." in value:  # 38.10 -> 38.1, 140.0 -> 140; never 140 -> 14
        value = value.rstrip("0").rstrip(".")
    return value, (q.code or q.unit or "")


def _names(concept: Any) -> list[str]:
    if concept is None:
        return []
    names = [concept.text or ""]
    names += [(c.display or "") for c in (concept.coding or [])]
    return [n.strip().upper() for n in names if n]


def _codes(concept: Any, system: str) -> list[str]:
    if concept is None:
        return []
    return [c.code for c in (concept.coding or []) if c.system == system and c.code]


def load_bundle(path: str | Path) -> dict:
    """The JSON of a FHIR Bundle file, parsed: UTF-8 with or without a byte-order mark, or
    UTF-16; a number that is not finite, JSON that does not parse or a resource that is not
    a Bundle is an :class:`~cytosafe.errors.InputError` naming the file."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", file=str(path))
    source = str(path)

    def finite(text: str) -> float:
        # JSON's 1e400 overflows to infinity, and Python's json also takes NaN and
        # Infinity: no observation is infinite (issue 14).
        value = float(text)
        if not math.isfinite(value):
            raise InputError(
                f"'{text}' is not a finite number", file=source, expected="a finite number"
            )
        return value

    def constant(text: str) -> float:
        raise InputError(f"'{text}' is not a number", file=source, expected="a finite number")

    try:
        # UTF-8 with or without a byte-order mark, or UTF-16 (cytosafe.io._text).
        text = decode_text(path.read_bytes(), file=source)
        data = json.loads(text, parse_float=finite, parse_constant=constant)
    except InputError:
        raise
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not JSON: {exc.msg} (column {exc.colno})", file=source, row=exc.lineno
        ) from None
    except (ValueError, RecursionError) as exc:  # an integer of 5,000 digits, deep nesting
        raise InputError(f"not readable JSON: {short_error(exc)}", file=source) from None
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise InputError(
            "not a FHIR Bundle", file=str(path), field="resourceType", expected="Bundle"
        )
    return data


def read_fhir(
    path: str | Path,
    *,
    product: str | None = None,
    errors: str = "raise",
    extra: pd.DataFrame | None = None,
) -> FHIRData:
    """Read a FHIR R4 Bundle (JSON) of Observations and MedicationAdministrations.

    Parameters
    ----------
    path:
        The Bundle as a JSON file.
    product:
        Name of the cell product whose MedicationAdministration is the infusion (hour 0).
    errors:
        ``"raise"`` or ``"quarantine"`` (see
        :func:`cytosafe.schema.observations.validate_observations`).
    extra:
        Observation rows already mapped from the same Bundle (columns
        :data:`~cytosafe.schema.observations.MAPPED_COLUMNS`), validated with the rest:
        its laboratory Observations (:func:`cytosafe.clinical.labs.labs_from_fhir`), which
        this reader then does not list as skipped.

    Returns
    -------
    FHIRData
    """
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    path = Path(path)
    data = load_bundle(path)
    try:
        bundle = Bundle.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(x) for x in err.get("loc", ())]
        row = int(loc[1]) + 1 if len(loc) > 1 and loc[0] == "entry" and loc[1].isdigit() else None
        raise InputError(
            f"invalid FHIR R4 resource: {err.get('msg', exc)}",
            file=str(path),
            row=row,
            field=".".join(x for x in loc[2:] if not x.isdigit()) or None,
            expected="a valid FHIR R4 Bundle",
        ) from None

    rows: list[tuple] = []
    skipped: list[tuple] = []
    src = str(path)
    # entries mapped by the laboratory reader are used, not skipped
    mapped = set() if extra is None else set(extra["source_row"].astype(int))

    def add(n, pid, t, item, value, unit, fields):
        rows.append((pid, t, item, value, unit, src, n, fields))

    for n, entry in enumerate(bundle.entry or [], start=1):
        res = entry.resource
        kind = res.get_resource_type() if res is not None else ""
        status = getattr(res, "status", None) or ""
        if kind not in ("Observation", "MedicationAdministration"):
            skipped.append((src, n, f"{kind or 'empty entry'} is not read"))
            continue
        if status in _SKIP_STATUS:
            skipped.append((src, n, f"{kind} with status {status}"))
            continue
        pid = _patient(res)
        t, end = _time(res)
        if kind == "Observation":
            found = False
            for code in _codes(res.code, LOINC_SYSTEM):
                if code in LOINC:
                    value, unit = _quantity(res.valueQuantity)
                    add(n, pid, t, LOINC[code], value, unit,
                        "time=Observation.effectiveDateTime;value=Observation.valueQuantity.value;unit=Observation.valueQuantity.code")  # fmt: skip
                    found = True
                elif code == _BP_PANEL:
                    for comp in res.component or []:
                        if "8480-6" in _codes(comp.code, LOINC_SYSTEM):
                            value, unit = _quantity(comp.valueQuantity)
                            add(n, pid, t, "systolic_bp", value, unit,
                                "value=Observation.component.valueQuantity.value;unit=Observation.component.valueQuantity.code")  # fmt: skip
                            found = True
            for code in _codes(res.code, LOCAL_SYSTEM):
                if code in _LOCAL_ITEMS:
                    if res.valueCodeableConcept is not None:
                        codes = [c.code for c in res.valueCodeableConcept.coding or [] if c.code]
                        value, unit = (
                            (codes[0] if codes else (res.valueCodeableConcept.text or "")),
                            "",
                        )
                    elif res.valueString is not None:
                        value, unit = res.valueString, ""
                    elif res.valueInteger is not None:
                        value, unit = str(res.valueInteger), ""
                    else:
                        value, unit = _quantity(res.valueQuantity)
                    add(n, pid, t, code, value, unit, "value=Observation.value[x]")
                    found = True
            if not found and n not in mapped:
                skipped.append((src, n, "Observation code not used for grading"))
            continue
        # MedicationAdministration
        names = _names(res.medicationCodeableConcept)
        if product is not None and product.strip().upper() in names:
            add(
                n,
                pid,
                t,
                "infusion",
                product,
                "",
                "value=MedicationAdministration.medicationCodeableConcept",
            )
            continue
        item = next((CM_TREATMENTS[x] for x in names if x in CM_TREATMENTS), None)
        if item is None:
            skipped.append(
                (src, n, f"medication {names[0] if names else '(none)'} not used for grading")
            )
            continue
        dosage = res.dosage
        if item in _VASOPRESSORS:
            value, unit = _quantity(getattr(dosage, "rateQuantity", None))
            add(n, pid, t, item, value, unit,
                "value=MedicationAdministration.dosage.rateQuantity.value;unit=MedicationAdministration.dosage.rateQuantity.code")  # fmt: skip
            if end:
                add(
                    n,
                    pid,
                    end,
                    item,
                    "0",
                    unit,
                    "time=MedicationAdministration.effectivePeriod.end",
                )
        else:
            value, unit = _quantity(getattr(dosage, "dose", None))
            add(n, pid, t, item, value, unit, "value=MedicationAdministration.dosage.dose.value")
    if not rows and (extra is None or not len(extra)):
        raise InputError(
            "the Bundle holds no Observation or MedicationAdministration used for grading", file=src
        )
    table = pd.DataFrame(rows, columns=list(MAPPED_COLUMNS))
    if extra is not None and len(extra):
        table = pd.concat([table, extra[list(MAPPED_COLUMNS)]], ignore_index=True)
    obs = validate_observations(table, source=src, errors=errors)
    skip = pd.DataFrame(skipped, columns=["source_file", "source_row", "reason"])
    if len(obs.quarantine):
        skip = pd.concat(
            [skip, obs.quarantine[["source_file", "source_row", "reason"]]], ignore_index=True
        )
    return FHIRData(obs, skip)
