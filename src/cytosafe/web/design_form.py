"""The study-design form: a study file's tables as a web form, stored in ``studies.design``.

A design is the JSON of the study file's tables (:mod:`cytosafe.hazard.design`):
``[study]``, ``[[treatment]]`` (name, role, concentrations and unit, formats, matched
negative control, formats where a control is expected to respond), ``[[format]]``,
``[analysis]`` (curve model, weighting, blanks) and ``[hazard]``; other tables of an
imported file (``[[platform]]``, notes) are kept as they came. The TOML stays the
exchange format: :func:`design_from_toml` imports a study file (the upload fills the form)
and :func:`design_toml` exports one, which :func:`cytosafe.hazard.load_study` reads back
to the same design. Every design is validated by :func:`validate_design`, i.e. by
``load_study`` itself, so the form refuses exactly what ``cytosafe analyze`` refuses.

A design belongs to its web study: ``study.id`` is always the study's code (a file
written for another id is accepted and says so), and ``[analysis] inputs`` and
``sample_map`` are dropped (the stored plates, with their maps, are what is analysed).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cytosafe.errors import InputError
from cytosafe.hazard.design import BELOW_LLOQ, MULTIPLICITY, StudyDesign, load_study
from cytosafe.schema.choices import BlankHandling, CurveModel, Weighting
from cytosafe.schema.measurements import TREATMENT_ROLES

__all__ = [
    "ROLE_LABELS",
    "design_from_form",
    "design_from_toml",
    "design_toml",
    "dumps_toml",
    "form_context",
    "own_design",
    "validate_design",
]

#: How the form names each treatment role (the study file's words are the values).
ROLE_LABELS = {
    "test": "Test article",
    "positive_control": "Positive control",
    "negative_control": "Negative control",
    "vehicle": "Vehicle",
    "isotype_control": "Isotype control",
}
#: Blank rows the form offers for new treatments and formats (more for a new design: the
#: form has no add-a-row control, and the example CRA study alone has 7 treatments).
BLANK_ROWS = 3
NEW_ROWS = 10
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


# --- TOML out -------------------------------------------------------------------------------
def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a TOML basic string (same escapes; control characters \\uXXXX).
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise InputError(f"cannot write {value!r} to TOML", expected="text, numbers, true/false")


def _is_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _table(lines: list[str], path: list[str], table: Mapping, header: str | None) -> None:
    if header is not None:
        lines.append("")
        lines.append(header)
    for k, v in table.items():
        if not isinstance(v, Mapping) and not _is_tables(v):
            lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in table.items():
        sub = [*path, _key(k)]
        if isinstance(v, Mapping):
            _table(lines, sub, v, "[" + ".".join(sub) + "]")
        elif _is_tables(v):
            for item in v:
                _table(lines, sub, item, "[[" + ".".join(sub) + "]]")


def dumps_toml(data: Mapping[str, Any]) -> str:
    """``data`` (tables of text, numbers, booleans, lists and tables) as TOML text that
    :mod:`tomllib` reads back to the same values."""
    lines: list[str] = []
    _table(lines, [], data, None)
    return "\n".join(lines).strip() + "\n"


# --- designs --------------------------------------------------------------------------------
def own_design(design: Mapping[str, Any], code: str) -> tuple[dict, list[str]]:
    """``design`` as the web study ``code``'s: its id, no file references (a copy); with
    notes on what was changed."""
    notes = []
    out = json.loads(json.dumps(design))  # a deep copy of plain JSON values
    study = out.setdefault("study", {})
    if not isinstance(study, dict):
        raise InputError("[study] must be a table", field="study")
    if study.get("id") not in (None, code):
        notes.append(
            f"The study file is for study '{study['id']}'; it is used as the design of "
            f"this study, '{code}'."
        )
    study["id"] = code
    analysis = out.get("analysis")
    if isinstance(analysis, dict):
        dropped = [k for k in ("inputs", "sample_map") if k in analysis]
        for k in dropped:
            analysis.pop(k)
        if dropped:
            notes.append(
                "Its [analysis] " + " and ".join(dropped) + " were left out: the study's "
                "stored plates (with their sample maps) are analysed."
            )
        if not analysis:
            out.pop("analysis")
    return out, notes


def design_toml(design: Mapping[str, Any], code: str) -> str:
    """The study file (TOML) of a stored design, for download and for the hazard job."""
    own, _ = own_design(design, code)
    head = (
        f"# Study design of {code}, exported from CytoSafe (the web study's design form).\n"
        "# [analysis] names no inputs: the web app analyses the study's stored plates.\n\n"
    )
    return head + dumps_toml(own)


def validate_design(
    design: Mapping[str, Any], code: str, *, file: str = "design form"
) -> StudyDesign:
    """The :class:`~cytosafe.hazard.design.StudyDesign` of ``design``, read by
    :func:`cytosafe.hazard.load_study` from its TOML, so the form accepts what
    ``cytosafe analyze`` accepts.

    Raises
    ------
    InputError
        As ``load_study`` does (the key and treatment named), ``file`` being where the
        design came from (its line is left out: the design was rewritten).
    """
    text = design_toml(design, code)
    with tempfile.TemporaryDirectory(prefix="cytosafe-design-") as folder:
        path = Path(folder) / "study.toml"
        path.write_text(text, encoding="utf-8")
        try:
            parsed = load_study(path)
        except InputError as exc:
            raise InputError(
                exc.message, file=file, field=exc.field, expected=exc.expected
            ) from None
    return parsed


def design_from_toml(raw: bytes, code: str, *, file: str = "study.toml") -> tuple[dict, list[str]]:
    """A study file's design (validated) as the web study ``code``'s, with notes on what
    was changed to make it the study's (another ``study.id``; inputs left out).

    Raises
    ------
    InputError
        Not UTF-8, not TOML (with the line), or a design ``load_study`` refuses.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", file=file, expected="a TOML study file") from None
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        if line is None:
            m = re.search(r"line (\d+)", str(exc))
            line = int(m.group(1)) if m else None
        raise InputError(f"not valid TOML: {exc}", file=file, row=line) from None
    design, notes = own_design(parsed, code)
    validate_design(design, code, file=file)
    return design, notes


# --- the form -------------------------------------------------------------------------------
def _names(text: str) -> list[str]:
    return [t.strip() for t in re.split(r"[,;\n]", text or "") if t.strip()]


def _numbers(text: str, *, row: int, name: str) -> list[float]:
    out = []
    for item in _names(text):
        try:
            value = float(item)
        except ValueError:
            raise InputError(
                f"'{item}' is not a number (treatment '{name}')",
                file="design form",
                row=row,
                field="concentrations",
                expected="numbers separated by commas, e.g. 0.1, 1, 10",
            ) from None
        if not math.isfinite(value) or value < 0:
            raise InputError(
                f"'{item}' is not a non-negative concentration (treatment '{name}')",
                file="design form",
                row=row,
                field="concentrations",
                expected="numbers ≥ 0",
            )
        out.append(value)
    return out


def _column(form: Mapping[str, Any], name: str) -> list[str]:
    getter = getattr(form, "getlist", None)
    values = getter(name) if getter else form.get(name, [])
    if isinstance(values, str):
        values = [values]
    return [str(v) for v in values]


def design_from_form(form: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict:
    """The design a submitted form describes, on top of ``base`` (the stored or imported
    design: what the form does not show, such as custom hazard rules, platforms, a
    treatment's ``code``, is kept). Rows without a name are left out.

    Raises
    ------
    InputError
        A concentration that is not a number (naming the form's row and treatment).
    """
    base = json.loads(json.dumps(base or {}))
    out: dict[str, Any] = dict(base)
    study = dict(base.get("study") or {})
    for key, field in (("title", "title"), ("description", "description")):
        value = str(form.get(field, "") or "").strip()
        if value:
            study[key] = value
        else:
            study.pop(key, None)
    for key in ("donors", "analytes"):
        names = _names(str(form.get(key, "") or ""))
        if names:
            study[key] = names
        else:
            study.pop(key, None)
    unit = str(form.get("concentration_unit", "") or "").strip()
    if unit:
        study["concentration_unit"] = unit
    out["study"] = study

    before = {t.get("name"): t for t in base.get("treatment", []) if isinstance(t, dict)}
    columns = {
        k: _column(form, f"t_{k}")
        for k in ("name", "role", "conc", "unit", "formats", "control", "expect", "benchmark",
                  "description")
    }  # fmt: skip
    treatments = []
    for i, name in enumerate(columns["name"]):
        name = name.strip()
        if not name:
            continue

        def cell(key: str, i: int = i) -> str:
            values = columns[key]
            return values[i].strip() if i < len(values) else ""

        t = dict(before.get(name, {}))
        t["name"] = name
        t["role"] = cell("role")
        t["concentrations"] = _numbers(cell("conc"), row=i + 1, name=name)
        t["unit"] = cell("unit")
        t["formats"] = _names(cell("formats"))
        for key, value in (
            ("negative_control", cell("control")),
            ("description", cell("description")),
        ):
            if value:
                t[key] = value
            else:
                t.pop(key, None)
        expect = _names(cell("expect"))
        if expect:
            t["expect_response_in"] = expect
        else:
            t.pop("expect_response_in", None)
        if cell("benchmark") == "yes":
            t["benchmark"] = True
        else:
            t.pop("benchmark", None)
        treatments.append(t)
    out["treatment"] = treatments

    before_f = {f.get("name"): f for f in base.get("format", []) if isinstance(f, dict)}
    fcols = {k: _column(form, f"f_{k}") for k in ("name", "code", "incubation", "description")}
    formats = []
    for i, name in enumerate(fcols["name"]):
        name = name.strip()
        if not name:
            continue
        f = dict(before_f.get(name, {}))
        f["name"] = name
        for key, field in (("code", "code"), ("description", "description")):
            values = fcols[field]
            value = values[i].strip() if i < len(values) else ""
            if value:
                f[key] = value
            else:
                f.pop(key, None)
        hours = fcols["incubation"][i].strip() if i < len(fcols["incubation"]) else ""
        if hours:
            try:
                f["incubation_h"] = float(hours)
            except ValueError:
                raise InputError(
                    f"'{hours}' is not a number of hours (format '{name}')",
                    file="design form",
                    row=i + 1,
                    field="incubation_h",
                    expected="a number, e.g. 24",
                ) from None
        else:
            f.pop("incubation_h", None)
        formats.append(f)
    if formats:
        out["format"] = formats
    else:
        out.pop("format", None)

    analysis = dict(base.get("analysis") or {})
    for key in ("model", "weighting", "blank"):
        value = str(form.get(key, "") or "").strip()
        if value:
            analysis[key] = value
        else:
            analysis.pop(key, None)
    if analysis:
        out["analysis"] = analysis
    else:
        out.pop("analysis", None)

    hazard = dict(base.get("hazard") or {})
    for key in ("rule_set", "below_lloq", "multiplicity", "reference_positive_control"):
        value = str(form.get(key, "") or "").strip()
        if value:
            hazard[key] = value
        else:
            hazard.pop(key, None)
    if hazard:
        out["hazard"] = hazard
    else:
        out.pop("hazard", None)
    return out


def _joined(values: Any) -> str:
    if isinstance(values, list | tuple):
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
    return "" if values is None else str(values)


def form_context(design: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the form template shows: the design's rows (as text) and blank rows, and the
    choices of every select."""
    from cytosafe.data import load

    design = design or {}
    study = design.get("study") or {}
    treatments = [
        {
            "name": t.get("name", ""),
            "role": t.get("role", ""),
            "conc": _joined(t.get("concentrations", [])),
            "unit": t.get("unit", ""),
            "formats": _joined(t.get("formats", [])),
            "control": t.get("negative_control", "") or "",
            "expect": _joined(t.get("expect_response_in", [])),
            "benchmark": bool(t.get("benchmark")),
            "description": t.get("description", ""),
        }
        for t in design.get("treatment", [])
        if isinstance(t, dict)
    ]
    formats = [
        {
            "name": f.get("name", ""),
            "code": f.get("code", ""),
            "incubation": "" if f.get("incubation_h") is None else f"{f['incubation_h']:g}",
            "description": f.get("description", ""),
        }
        for f in design.get("format", [])
        if isinstance(f, dict)
    ]
    hazard = design.get("hazard") or {}
    rule_sets = list(load("hazard_rules.toml")["rule_set"])
    if hazard.get("rule"):
        rule_sets.append("study")
    return {
        "study": {
            "title": study.get("title", ""),
            "description": study.get("description", ""),
            "donors": _joined(study.get("donors", [])),
            "analytes": _joined(study.get("analytes", [])),
            "concentration_unit": study.get("concentration_unit", ""),
        },
        # A new design gets room for a typical study (controls, test articles).
        "treatments": treatments
        + [_blank_treatment() for _ in range(BLANK_ROWS if treatments else NEW_ROWS)],
        "formats": formats
        + [{"name": "", "code": "", "incubation": "", "description": ""}] * BLANK_ROWS,
        "analysis": design.get("analysis") or {},
        "hazard": hazard,
        "roles": [(r, ROLE_LABELS.get(r, r)) for r in TREATMENT_ROLES],
        "rule_sets": rule_sets,
        "below_lloq": list(BELOW_LLOQ),
        "multiplicity": list(MULTIPLICITY),
        "models": list(CurveModel),
        "weightings": list(Weighting),
        "blanks": list(BlankHandling),
        "base": json.dumps(design, ensure_ascii=False),
        "has_design": bool(design),
    }


def _blank_treatment() -> dict[str, Any]:
    return {
        "name": "",
        "role": "",
        "conc": "",
        "unit": "",
        "formats": "",
        "control": "",
        "expect": "",
        "benchmark": False,
        "description": "",
    }
