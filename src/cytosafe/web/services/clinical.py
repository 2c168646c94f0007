"""Clinical grading of uploaded observations: read and graded in a compute worker
(:class:`~cytosafe.web.compute.ComputePool`, hence module-level functions that pickle),
then stored with their grades and report in one transaction. The page's upload takes an
observation table, SDTM domains or a FHIR Bundle alike (:func:`upload_clinical`), graded
on the scales picked from the scales data file (:func:`scale_choices`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import UploadFile

from cytosafe.errors import InputError
from cytosafe.store import (
    Store,
    Study,
    User,
    add_report,
    import_grades,
    import_observations,
)
from cytosafe.web.compute import ComputePool
from cytosafe.web.deps import Uploads, get_study, strip_folder_column, uploads
from cytosafe.web.settings import Settings
from cytosafe.web.tables import records

__all__ = [
    "clinical_study",
    "grade_and_store",
    "grade_upload",
    "parse_scales",
    "scale_choices",
    "upload_clinical",
    "upload_observations",
]


def parse_scales(text: str) -> list[str]:
    """Comma-separated scale names; none named: ASTCT 2019."""
    return [s.strip() for s in text.split(",") if s.strip()] or ["astct2019"]


def _grades_out(result: Any) -> dict:
    """The scales, per-patient and cohort tables of a grading, as the API returns them."""
    return {
        "scales": result.scales,
        "patients": records(result.patients),
        "cohort": records(result.cohort),
    }


def grade_upload(path: str, scales: list[str]) -> dict:
    """Grade one uploaded observation table (run in a compute worker)."""
    from cytosafe.clinical import grade, read_observations

    return _grades_out(grade(read_observations(path), scales))


def _sdtm_files(parts: dict[str, str], folder: str) -> tuple[list[Path], dict[str, str]]:
    """The uploaded SDTM domains as files named after their domain (``dm.xpt``, ...), as
    :func:`cytosafe.workflows.grading.read_clinical_input` knows them by name, and the
    uploaded name of each copy: an upload named otherwise (the API takes each domain in
    its own field) is copied under its domain's name into a folder of the upload's own."""
    import shutil

    if all(Path(p).stem.lower() == key for key, p in parts.items()):
        return [Path(p) for p in parts.values()], {}
    domains = Path(folder) / "sdtm-domains"
    domains.mkdir(exist_ok=True)
    files, named = [], {}
    for key, p in parts.items():
        target = domains / f"{key}.xpt"
        shutil.copyfile(p, target)
        files.append(target)
        named[str(target)] = str(p)
    return files, named


def _read_and_grade(
    kind: str,
    parts: dict[str, str],
    folder: str,
    product: str | None,
    scales: list[str],
    title: str,
) -> tuple[Any, Any, str]:
    """Read uploaded observations (a table, SDTM domains or a FHIR bundle), grade them and
    render the report (run in a compute worker); file names lose the upload folder.

    SDTM domains and FHIR Bundles are read as ``cytosafe grade`` reads them
    (:func:`cytosafe.workflows.grading.read_clinical_input`): laboratory results (SDTM LB,
    a Bundle's laboratory Observations) come with the vital signs, so that the stored
    observations hold what the predictors read (grading itself ignores them)."""
    from cytosafe.clinical import grade, read_observations
    from cytosafe.report.clinical import render_clinical_report
    from cytosafe.workflows.grading import read_clinical_input

    if kind == "table":
        obs = read_observations(parts["file"])
    elif kind == "sdtm":
        files, named = _sdtm_files(parts, folder)
        obs, _, _ = read_clinical_input(files, product=product)
        if named:  # each row names the file as it was uploaded
            obs.table["source_file"] = obs.table["source_file"].replace(named)
    else:
        obs, _, _ = read_clinical_input(Path(parts["bundle"]), product=product)
    obs.table = strip_folder_column(obs.table, folder)
    result = grade(obs, scales)
    # The report names each uploaded file with its SHA-256 (issue 15: every report, whatever
    # face made it). Packed (a third of the size): served under the report policy's
    # 'strict-dynamic'.
    inputs = [_file_input(Path(p)) for p in parts.values()]
    html = render_clinical_report(result, title=title, packed=True, inputs=inputs)
    return obs, result, html


def _file_input(path: Path) -> dict:
    """An uploaded file as a report input: its name as uploaded, size and SHA-256."""
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return {"name": path.name, "sha256": digest.hexdigest(), "bytes": path.stat().st_size}


def _as_stored(table: pd.DataFrame) -> pd.DataFrame:
    """The rows to store: ``value`` in the unit stored beside it.

    Validation gives each number in its item's canonical unit (``value_num``, ``unit``:
    e.g. CRP 9.5 mg/dL becomes 95 mg/L; a vasopressor in ug/kg/min becomes ug/min) but keeps
    the ``value`` as written; stored as it is, 9.5 would read as 9.5 mg/L. Where the
    number changed, the converted number is stored; elsewhere the value as written."""
    out = table[_STORED].copy()
    if "value_num" in table.columns:
        written = pd.to_numeric(table["value"], errors="coerce").to_numpy(dtype=float)
        canonical = pd.to_numeric(table["value_num"], errors="coerce").to_numpy(dtype=float)
        changed = np.isfinite(written) & np.isfinite(canonical)
        changed[changed] = ~np.isclose(written[changed], canonical[changed], rtol=1e-12, atol=0)
        out["value"] = out["value"].astype(object)
        out.loc[changed, "value"] = [format(x, ".15g") for x in canonical[changed]]
    return out


_STORED = ["patient_id", "time", "item", "value", "unit", "source_file", "source_row"]


def clinical_study(store: Store, user: User, code: str) -> Study:
    """A clinical study ``user`` can see (404 otherwise; a CRA study is bad input)."""
    with store.reader() as session:
        study = get_study(session, user, code)
    if study.kind != "clinical":
        raise InputError(
            f"study '{code}' is a {study.kind} study",
            field="study",
            expected="a clinical study (kind 'clinical')",
        )
    return study


def grade_and_store(
    store: Store,
    compute: ComputePool,
    study: Study,
    user: User,
    up: Uploads,
    kind: str,
    parts: dict,
    product: str | None,
    scales: str,
) -> dict:
    """Read and grade uploaded observations (``kind``: ``table``, ``sdtm`` or ``fhir``)
    in a compute worker, then store the observations, their grades (a grading analysis)
    and its report in one transaction; returns the per-patient and cohort tables."""
    from cytosafe import __version__

    source = ", ".join(Path(p).name for p in parts.values())
    obs, result, html = compute.call(
        _read_and_grade,
        kind,
        {k: str(v) for k, v in parts.items()},
        str(up.dir),
        product or None,
        parse_scales(scales),
        f"{study.code}: CRS grading",
    )
    with store.session() as session:
        n = import_observations(
            session, _as_stored(obs.table), study=study.code, user=user.username, source=source
        )
        analysis = import_grades(
            session,
            result.timeline,
            study=study.code,
            user=user.username,
            settings={
                "cytosafe_version": __version__,
                "command": "grade",
                "scales": list(result.scales),
                "source": source,
            },
            tables={"patients": result.patients, "cohort": result.cohort},
        )
        add_report(session, analysis, html, user=user.username)
    return {"analysis": analysis.id, "observations": n, **_grades_out(result)}


def upload_observations(
    store: Store,
    settings: Settings,
    compute: ComputePool,
    user: User,
    code: str,
    file: UploadFile,
    scales: str = "astct2019",
) -> dict:
    """Store an uploaded observation table (patient_id, time, item, value, unit) and its
    grades (a grading analysis) in one transaction; returns the per-patient and cohort
    tables."""
    study = clinical_study(store, user, code)
    with uploads(settings) as up:
        path = up.save(file, "observations.csv")
        return grade_and_store(
            store, compute, study, user, up, "table", {"file": path}, None, scales
        )


#: The SDTM domains a web upload reads: those ``cytosafe grade`` reads, laboratory ``lb``
#: among them (:data:`cytosafe.workflows.grading.SDTM_DOMAINS`).
WEB_SDTM_DOMAINS = ("dm", "vs", "ex", "cm", "pr", "ae", "lb")


def scale_choices() -> list[dict[str, str]]:
    """The grading scales of the scales data file (``clinical_scales.toml``), in its order:
    ``name``, ``title``, ``version``, ``source``, for the scale picker."""
    from cytosafe.data import load

    scales = load("clinical_scales.toml")["scale"]
    return [
        {
            "name": name,
            "title": str(entry.get("title", name)),
            "version": str(entry.get("version", "")),
            "source": str(entry.get("source", "")),
        }
        for name, entry in scales.items()
    ]


def _kind(paths: list[Path]) -> tuple[str, dict[str, Path]]:
    """What the uploaded files are: SDTM domains (``.xpt``, named by domain), one FHIR
    Bundle (``.json``) or one observation table (CSV/XLSX)."""
    suffixes = {p.suffix.lower() for p in paths}
    if suffixes == {".xpt"}:
        parts: dict[str, Path] = {}
        for p in paths:
            key = p.stem.lower()
            if key not in WEB_SDTM_DOMAINS:
                raise InputError(
                    f"'{p.name}' is not an SDTM domain the web upload grades",
                    file=p.name,
                    expected="dm.xpt, vs.xpt and optionally ex, cm, pr, ae, lb (.xpt)",
                )
            if key in parts:
                raise InputError(f"domain {key.upper()} given twice", file=p.name)
            parts[key] = p
        for need in ("dm", "vs"):
            if need not in parts:
                raise InputError(
                    f"no {need.upper()} domain among the SDTM files",
                    file=", ".join(p.name for p in paths),
                    expected=f"{need}.xpt (DM and VS are required)",
                )
        return "sdtm", parts
    if len(paths) != 1:
        raise InputError(
            "several files that are not SDTM domains",
            file=", ".join(p.name for p in paths),
            expected="one observation table, one FHIR Bundle (.json) or SDTM domains (.xpt)",
        )
    if suffixes == {".json"}:
        return "fhir", {"bundle": paths[0]}
    return "table", {"file": paths[0]}


def upload_clinical(
    store: Store,
    settings: Settings,
    compute: ComputePool,
    user: User,
    code: str,
    files: list[UploadFile],
    scales: list[str] | str = "astct2019",
    product: str | None = None,
) -> dict:
    """Store uploaded observations and their grades, whatever their form: an observation
    table (CSV/XLSX), SDTM domains (``dm.xpt``, ``vs.xpt`` and optionally ``ex``, ``cm``,
    ``pr``, ``ae``, ``lb``) or a FHIR R4 Bundle (``.json``), read by the readers ``cytosafe grade``
    uses; ``scales`` as picked (names of the scales data file; unknown names are an
    :class:`InputError`)."""
    from cytosafe.clinical.scales import get_scale

    names = scales if isinstance(scales, list) else parse_scales(scales)
    names = [n.strip() for s in names for n in str(s).split(",") if n.strip()]
    for name in names:
        get_scale(name)
    if not files:
        raise InputError("choose the observations to upload", field="files")
    study = clinical_study(store, user, code)
    with uploads(settings) as up:
        paths = [up.save(f, f"observations-{i}.csv") for i, f in enumerate(files, 1)]
        kind, parts = _kind(paths)
        return grade_and_store(
            store, compute, study, user, up, kind, parts, product, ",".join(names) or "astct2019"
        )
