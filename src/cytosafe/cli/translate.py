"""``cytosafe mabel ...`` and ``cytosafe simulate REGIMEN_FILE --out DIR``: the translate faces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cytosafe.errors import InputError

__all__ = ["MABEL_FILES", "SIMULATE_FILES", "mabel_command", "simulate_command"]

#: Files ``cytosafe mabel --out DIR`` writes.
MABEL_FILES = ("fih_dose.csv", "fih_steps.csv", "references.csv", "settings.json")
#: Files ``cytosafe simulate`` writes (search.csv only with a [search] section).
SIMULATE_FILES = (
    "comparison.csv",
    "per_dose.csv",
    "time_courses.csv",
    "subjects.csv",
    "parameters.csv",
    "search.csv",
    "settings.json",
    "report.html",
)


_POTENCY_FIELDS = {"potency", "treatment", "measure", "treatment_unit", "ec20", "ec50", "ec10"}


def _write_dir(out: Path, files: dict[str, object]) -> list[str]:
    """Write tables/JSON/text into ``out`` atomically (all files or none)."""
    import pandas as pd

    from cytosafe._atomic import atomic_directory

    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", file=str(out), field="--out")
    with atomic_directory(out, files) as staging:
        for name, obj in files.items():
            target = staging / name
            if isinstance(obj, pd.DataFrame):
                obj.to_csv(target, index=False, lineterminator="\n")
            elif callable(obj):
                obj(target)
            else:
                with target.open("w", encoding="utf-8", newline="\n") as fh:
                    json.dump(obj, fh, indent=2, ensure_ascii=False, default=str)
                    fh.write("\n")
    return list(files)


def mabel_command(
    ecx: Annotated[
        float | None, typer.Option(help="ECx of the most sensitive assay (by hand).")
    ] = None,
    ecx_unit: Annotated[str, typer.Option(help="Unit of --ecx (ng/mL, ug/mL, nM, ...).")] = "ng/mL",
    ecx_percent: Annotated[float, typer.Option(help="The x of --ecx (e.g. 20 for EC20).")] = 20.0,
    potency: Annotated[
        Path | None,
        typer.Option(
            help="potency.csv of `cytosafe quantify`: the most sensitive assay is chosen from it."
        ),
    ] = None,
    treatment: Annotated[str | None, typer.Option(help="Test article in --potency.")] = None,
    aggregate: Annotated[
        str, typer.Option(help="Across donors: geomean, median or min.")
    ] = "geomean",
    kd: Annotated[
        float | None, typer.Option(help="Binding affinity Kd (receptor occupancy MABEL).")
    ] = None,
    kd_unit: Annotated[str, typer.Option(help="Unit of --kd and --target.")] = "nM",
    occupancy: Annotated[
        float | None, typer.Option(help="Target receptor occupancy, percent (default 10).")
    ] = None,
    target: Annotated[
        float | None,
        typer.Option(help="Total target concentration: the target-depletion (quadratic) form."),
    ] = None,
    dose: Annotated[
        float | None, typer.Option(help="A planned dose: its receptor occupancy is reported.")
    ] = None,
    dose_unit: Annotated[str, typer.Option(help="Unit of --dose (mg/kg, ug/kg, mg).")] = "mg/kg",
    noael: Annotated[
        float | None, typer.Option(help="Animal NOAEL in mg/kg (MRSD by FDA 2005).")
    ] = None,
    species: Annotated[
        str | None, typer.Option(help="Species of the NOAEL (rat, monkey, dog, ...).")
    ] = None,
    mw: Annotated[float | None, typer.Option(help="Molecular weight, kDa (default 150).")] = None,
    body_weight: Annotated[float | None, typer.Option(help="Body weight, kg (default 70).")] = None,
    distribution: Annotated[
        str | None,
        typer.Option(
            help="Initial distribution: plasma_per_kg (40 mL/kg) or plasma_70kg (3 L/70 kg)."
        ),
    ] = None,
    volume: Annotated[
        float | None, typer.Option(help="Distribution volume in L (overrides --distribution).")
    ] = None,
    mabel_safety_factor: Annotated[
        float | None, typer.Option(help="Safety factor on the MABEL (default 1).")
    ] = None,
    mrsd_safety_factor: Annotated[
        float | None, typer.Option(help="Safety factor on the HED (default 10).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the tables into this directory.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
) -> None:
    """First-in-human starting dose: MABEL (potency, receptor occupancy) and NOAEL-based MRSD.

    Prints every input, assumption and formula with its citation; --out writes them as
    tables (fih_dose.csv, fih_steps.csv, references.csv, settings.json).
    """
    import pandas as pd

    from cytosafe.translate.fih import fih_dose, occupancy_at_dose
    from cytosafe.translate.knowledge import references

    pot = None
    if potency is not None:
        try:
            pot = pd.read_csv(potency)
        except FileNotFoundError:
            raise InputError("file not found", file=str(potency), field="--potency") from None
    if occupancy is not None and not 0 < occupancy < 100:
        raise InputError(
            f"--occupancy {occupancy:g}", field="--occupancy", expected="a percent in (0, 100)"
        )
    try:
        summary, steps = fih_dose(
            ecx=ecx,
            ecx_unit=ecx_unit,
            ecx_percent=ecx_percent,
            potency=pot,
            treatment=treatment,
            aggregate=aggregate,
            kd=kd,
            kd_unit=kd_unit,
            occupancy=None if occupancy is None else occupancy / 100.0,
            target=target,
            noael=noael,
            species=species,
            mw_kda=mw,
            body_weight_kg=body_weight,
            distribution=distribution,
            volume_l=volume,
            mabel_safety_factor=mabel_safety_factor,
            mrsd_safety_factor=mrsd_safety_factor,
        )
    except InputError as exc:
        # Errors about the potency table's content name the table.
        from_table = potency is not None and ecx is None and exc.field in _POTENCY_FIELDS
        raise (exc.located(file=str(potency)) if from_table else exc) from None
    if dose is not None:
        if kd is None:
            raise InputError("--dose needs --kd to compute its receptor occupancy", field="--kd")
        at = occupancy_at_dose(
            dose,
            dose_unit,
            kd=kd,
            kd_unit=kd_unit,
            target=target,
            mw_kda=mw,
            body_weight_kg=body_weight,
            distribution=distribution,
            volume_l=volume,
        )
        steps = pd.concat([steps, at.steps], ignore_index=True)
    refs = references()
    used = sorted({k for s in steps["source"] for k in refs if k in str(s)})
    ref_table = pd.DataFrame({"key": used, "citation": [refs[k] for k in used]})
    if out is not None:
        from cytosafe import __version__

        settings = {
            "cytosafe_version": __version__,
            "command": "mabel",
            "inputs": {
                "ecx": ecx,
                "ecx_unit": ecx_unit,
                "ecx_percent": ecx_percent,
                "potency": None if potency is None else str(potency),
                "treatment": treatment,
                "aggregate": aggregate,
                "kd": kd,
                "kd_unit": kd_unit,
                "occupancy_percent": occupancy,
                "target": target,
                "dose": dose,
                "dose_unit": dose_unit,
                "noael": noael,
                "species": species,
                "mw_kda": mw,
                "body_weight_kg": body_weight,
                "distribution": distribution,
                "volume_l": volume,
                "mabel_safety_factor": mabel_safety_factor,
                "mrsd_safety_factor": mrsd_safety_factor,
            },
            "outputs": list(MABEL_FILES),
        }
        _write_dir(
            out,
            {
                "fih_dose.csv": summary,
                "fih_steps.csv": steps,
                "references.csv": ref_table,
                "settings.json": settings,
            },
        )
    if quiet:
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    for approach, g in steps.groupby("approach", sort=False):
        t = Table(title=str(approach), title_justify="left", show_lines=False)
        for col in ("quantity", "value", "unit", "formula", "source"):
            t.add_column(col, justify="right" if col == "value" else "left")
        for r in g.itertuples(index=False):
            t.add_row(str(r.quantity), f"{r.value:.4g}", str(r.unit), str(r.formula), str(r.source))
        console.print(t)
        notes = [
            f"  {r.quantity}: {r.assumption}" for r in g.itertuples(index=False) if r.assumption
        ]
        for n in notes:
            console.print(f"[dim]{n}[/dim]")
    console.print("[bold]Starting dose by approach[/bold]")
    for r in summary.itertuples(index=False):
        mark = "  <- lowest (recommended)" if r.recommended else ""
        console.print(
            f"  {r.approach}: {r.dose_ug_per_kg:.4g} ug/kg = {r.dose_mg:.4g} mg for {r.body_weight_kg:g} kg{mark}"
        )
    for r in ref_table.itertuples(index=False):
        console.print(f"[dim]{r.key}: {r.citation}[/dim]")
    if out is not None:
        console.print(f"wrote {len(MABEL_FILES)} files to {out}")


def simulate_command(
    regimen_file: Annotated[
        Path, typer.Argument(help="Regimen file (TOML): doses, model, population.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = ...,
    subjects: Annotated[
        int | None, typer.Option(help="Virtual subjects per regimen (default: the file's).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: the file's).")] = None,
    chunk_size: Annotated[
        int, typer.Option(help="Subjects per Dask chunk for large populations.")
    ] = 5000,
    search: Annotated[
        bool, typer.Option("--search/--no-search", help="Run the file's step-up search.")
    ] = True,
    potency: Annotated[
        Path | None,
        typer.Option(
            help="potency.csv of `cytosafe quantify`: its EC50 replaces the file's \\[potency] ec50."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
) -> None:
    """Simulate cytokine release (IL-6) under the dosing regimens of REGIMEN_FILE.

    Writes comparison.csv, per_dose.csv, time_courses.csv, subjects.csv, parameters.csv,
    search.csv (with a \\[search] section), settings.json and report.html into OUT: all of
    them, or nothing.
    """
    import dataclasses

    from cytosafe import __version__
    from cytosafe.report.translate import write_translate_report
    from cytosafe.translate.simulation import run_regimen_file

    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", file=str(out), field="--out")
    if subjects is not None and subjects < 1:
        raise InputError(f"--subjects {subjects}", field="--subjects", expected="at least 1")
    if chunk_size < 1:
        raise InputError(f"--chunk-size {chunk_size}", field="--chunk-size", expected="at least 1")
    run = run_regimen_file(
        regimen_file,
        subjects=subjects,
        seed=seed,
        chunk_size=chunk_size,
        search=search,
        potency_table=potency,
    )
    res = run.result
    spec = run.spec
    settings = {
        "cytosafe_version": __version__,
        "command": "simulate",
        "regimen_file": str(regimen_file),
        "title": spec.title,
        "simulated": spec.simulated,
        "subjects": len(res.population["cl"]),
        "seed": spec.seed if seed is None else seed,
        "days": spec.days,
        "threshold_pg_ml": spec.threshold,
        "dt_hours": spec.dt_hours,
        "output_hours": spec.output_hours,
        "model": dataclasses.asdict(spec.settings),
        "parameters": run.typical,
        "omega": spec.omega,
        "potency": run.potency,
        "regimens": [
            {
                "name": r.name,
                "target_dose": r.target,
                "doses": [dataclasses.asdict(d) for d in r.doses],
            }
            for r in spec.regimens
        ],
    }
    files: dict[str, object] = {
        "comparison.csv": res.comparison(),
        "per_dose.csv": res.per_dose(),
        "time_courses.csv": res.time_courses(),
        "subjects.csv": res.subjects(),
        "parameters.csv": run.parameters,
    }
    if run.search is not None:
        files["search.csv"] = run.search
    settings["outputs"] = [*files, "settings.json", "report.html"]
    files["settings.json"] = settings
    files["report.html"] = lambda path: write_translate_report(run, path)
    _write_dir(out, files)
    if quiet:
        return
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    label = (
        " [yellow](SIMULATED)[/yellow]"
        if spec.simulated and "SIMULATED" not in spec.title.upper()
        else ""
    )
    console.print(f"[bold]CytoSafe {__version__}[/bold] · {spec.title}{label}")
    for r in res.comparison().itertuples(index=False):
        console.print(
            f"  {r.regimen}: peak IL-6 median {r.peak_il6_median:.3g} pg/mL "
            f"(90% {r.peak_il6_p05:.3g}-{r.peak_il6_p95:.3g}), "
            f"{100 * r.share_above_threshold:.0f}% above {spec.threshold:g}, target on day {r.time_to_target_day:g}"
        )
    if run.search is not None:
        best = run.search.iloc[0]
        console.print(
            f"  best step-up: {best['schedule']} ({100 * best['objective_quantile']:g}th "
            f"percentile of peak IL-6 {best['objective']:.3g} pg/mL, median "
            f"{best['peak_il6_median']:.3g})"
        )
    console.print(f"wrote {len(files)} files to {out}")
    console.print(f"report: [bold]{out / 'report.html'}[/bold]")
