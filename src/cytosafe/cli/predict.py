"""``cytosafe predict OBS --predictor NAME --out DIR``: published predictors of severe CRS
(:func:`cytosafe.clinical.predict.predict`) and, from the same observations graded, their
performance (:func:`cytosafe.clinical.predict.performance`).

OBS is one or more observation tables (CSV/XLSX; vital signs, treatments and laboratory
items, concatenated), SDTM domains (a folder of ``.xpt`` files or several; LB gives the
laboratory results) or a FHIR R4 Bundle (``.json``; its laboratory Observations), read as
``cytosafe grade`` reads them (:func:`cytosafe.workflows.grading.read_clinical_input`). Writes into DIR, all or nothing:

* ``predictions.csv`` - per patient: the call (positive / negative / not evaluable with
  what was missing), score, cut-off and its source, inputs and their times, the hour the
  call first turned positive, the rule version and its checking status;
* ``performance.csv`` and ``performance_patients.csv`` - sensitivity, specificity, PPV,
  NPV with exact intervals, AUC, and the lead time to the first grade >= 3, against the
  grades of the same observations under ``--scale`` (left out with ``--no-outcomes``);
* ``settings.json`` - the predictor, its source and version, every option.

Predictors support a clinician's judgement and do not replace it: every file says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cytosafe.cli._common import OutOption, QuietOption, parse_key_values

__all__ = ["predict_command"]


def predict_command(
    observations: Annotated[
        list[Path],
        typer.Argument(
            help="Observation table(s) (CSV/XLSX: patient_id, time, item, value, unit) with "
            "vital signs and laboratory items; several files are read as one table. Or SDTM "
            ".xpt domains (a folder; LB for laboratory results) or a FHIR Bundle (.json)."
        ),
    ],
    out: OutOption = ...,
    predictor: Annotated[
        str,
        typer.Option(
            "--predictor",
            "-p",
            help="hay2017 (fever and MCP-1 within 36 h), pennisi2021 (m-EASIX) or "
            "teachey2016 (never evaluable: its coefficients were not confirmed).",
        ),
    ] = "hay2017",
    at: Annotated[
        float | None,
        typer.Option("--at", metavar="HOURS", help="Predict at this hour after the infusion."),
    ] = None,
    timepoint: Annotated[
        str,
        typer.Option(
            "--timepoint",
            help="pennisi2021: lymphodepletion, day_minus1, day_plus1 (default) or day_plus3.",
        ),
    ] = "day_plus1",
    cutoff: Annotated[
        list[str] | None,
        typer.Option(
            "--cutoff",
            metavar="NAME=VALUE",
            help="Replace a cut-off (mcp1=PG_PER_ML for hay2017, m_easix=VALUE for "
            "pennisi2021); the rows then say 'user-supplied cut-off'.",
        ),
    ] = None,
    scale: Annotated[
        str, typer.Option("--scale", "-s", help="Grading scale of the outcomes.")
    ] = "astct2019",
    no_outcomes: Annotated[
        bool,
        typer.Option("--no-outcomes", help="Predict only; do not grade or compute performance."),
    ] = False,
    timezone: Annotated[
        str | None,
        typer.Option("--timezone", help="IANA time zone of times written without an offset."),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Predict severe CRS per patient with a published predictor; write predictions and,
    against the grades of the same observations, sensitivity, specificity, PPV, NPV, AUC
    and lead time. Predictors support a clinician's judgement and do not replace it."""
    import json

    from cytosafe import data
    from cytosafe._atomic import atomic_directory
    from cytosafe.clinical import grade
    from cytosafe.clinical.predict import (
        DISCLAIMER,
        performance,
        predict,
        predictor_spec,
    )
    from cytosafe.errors import InputError

    spec = predictor_spec(predictor)
    cutoffs = parse_key_values(cutoff, option="--cutoff", expected="NAME=VALUE")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", file=str(out), field="--out")
    if all(p.is_dir() or p.suffix.lower() in (".xpt", ".json") for p in observations):
        from cytosafe.workflows.grading import read_clinical_input

        obs, _, _ = read_clinical_input(
            observations if len(observations) > 1 else observations[0], timezone=timezone
        )
    else:
        obs = _tables(observations, timezone)
    predictions = predict(obs, predictor, at=at, timepoint=timepoint, cutoffs=cutoffs)
    tables = {"predictions": predictions}
    perf = None
    if not no_outcomes:
        perf = performance(predictions, grade(obs, scale), scale=scale)
        tables["performance"] = perf.metrics
        tables["performance_patients"] = perf.patients
    settings = {
        "disclaimer": DISCLAIMER,
        "predictor": predictor,
        "rule_version": f"{predictor} {spec['version']}",
        "rule_status": spec["status"],
        "source": spec["source"],
        "population": spec["population"],
        "outcome": spec["outcome"],
        "predictors_file_version": data.load("crs_predictors.toml")["version"],
        "at_hours": at,
        "timepoint": timepoint if spec["kind"] == "index" else None,
        "cutoffs": cutoffs,
        "outcome_scale": None if no_outcomes else scale,
        "observations": [str(p) for p in observations],
    }
    names = [f"{n}.csv" for n in tables] + ["settings.json"]
    with atomic_directory(out, names) as staging:
        for name, frame in tables.items():
            frame.to_csv(staging / f"{name}.csv", index=False, lineterminator="\n")
        with (staging / "settings.json").open("w", encoding="utf-8", newline="\n") as fh:
            json.dump(settings, fh, indent=2, ensure_ascii=False, default=str)
            fh.write("\n")
    if not quiet:
        counts = predictions["status"].value_counts()
        typer.echo(
            f"{predictor} ({spec['status']}): "
            + ", ".join(
                f"{k} {int(counts.get(k, 0))}" for k in ("positive", "negative", "not evaluable")
            )
        )
        if perf is not None:
            m = perf.metrics.set_index("measure")["text"]
            typer.echo(
                f"against {scale}: sensitivity {m['sensitivity']}, specificity "
                f"{m['specificity']}, lead time {m['lead_time_hours']}"
            )
        typer.echo(DISCLAIMER)
        typer.echo(f"wrote {len(names)} files to {out}")


def _tables(observations: list[Path], timezone: str | None):
    """Observation tables (CSV/XLSX) read as one validated table."""
    import pandas as pd

    from cytosafe.errors import InputError
    from cytosafe.schema.observations import validate_observations

    frames = []
    for path in observations:
        if not path.is_file():
            raise InputError("no such file", file=str(path))
        try:
            if path.suffix.lower() in (".xlsx", ".xlsm"):
                frame = pd.read_excel(path, dtype=str)
            else:
                frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the table: {exc}", file=str(path)) from None
        frame["source_file"] = str(path)
        frame["source_row"] = range(2, len(frame) + 2)
        frames.append(frame)
    return validate_observations(pd.concat(frames, ignore_index=True), timezone=timezone)
