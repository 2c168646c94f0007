"""``cytosafe aop``: export the CRS AOP, query its Bayesian network, simulate interventions.

Examples
--------
.. code-block:: console

    $ cytosafe aop export --out aop/                       # XML, GraphML, Cytoscape, SVG, HTML
    $ cytosafe aop query --modality car_t --evidence ke_vascular_leak=present
    $ cytosafe aop simulate --intervention none --intervention tocilizumab
    $ cytosafe aop fit --out bn-fit/        # fitted to the reference library, leave-one-out
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cytosafe.cli._common import parse_key_values
from cytosafe.errors import InputError

__all__ = ["EXPORT_FILES", "FIT_FILES", "AopAction", "aop_command"]

#: The files ``cytosafe aop export`` writes.
EXPORT_FILES = (
    "crs_aop.aopwiki.xml",
    "crs_aop.graphml",
    "crs_aop.cyjs",
    "crs_aop.svg",
    "crs_aop.html",
    "crs_aop_events.csv",
    "crs_aop_relationships.csv",
)


class AopAction(StrEnum):
    EXPORT = "export"
    QUERY = "query"
    SIMULATE = "simulate"
    MAP = "map"
    FIT = "fit"


#: The files ``cytosafe aop fit`` writes.
FIT_FILES = ("fitted_parameters.csv", "leave_one_out.csv", "leave_one_out.md", "settings.json")


#: The files ``cytosafe aop map`` writes.
MAP_FILES = ("evidence.csv", "crs_aop_evidence.svg", "crs_aop_evidence.html", "excluded.csv")


def _evidence(items: list[str] | None) -> dict[str, str]:
    return parse_key_values(items, option="--evidence", expected="KEY_EVENT=present|absent")


def aop_command(
    action: Annotated[AopAction, typer.Argument(help="export, query, simulate, map or fit.")],
    modality: Annotated[
        str | None,
        typer.Option(
            "--modality", help="Modality (query: required; export: draw its pathway only)."
        ),
    ] = None,
    evidence: Annotated[
        list[str] | None,
        typer.Option("--evidence", help="query: key-event evidence, KEY=present|absent (repeat)."),
    ] = None,
    parameters: Annotated[
        Path | None,
        typer.Option(
            "--parameters", help="query: your own Bayesian-network parameter file (TOML)."
        ),
    ] = None,
    interval: Annotated[
        bool, typer.Option("--interval", help="query: propagate the parameter intervals.")
    ] = False,
    intervention: Annotated[
        list[str] | None,
        typer.Option(
            "--intervention",
            help="simulate: none, tocilizumab, il1_blockade, corticosteroids, remove_mie "
            "(repeat; combine with '+').",
        ),
    ] = None,
    responses: Annotated[
        Path | None,
        typer.Option(
            "--responses", help="map: donor-level responses (responses.csv of cytosafe analyze)."
        ),
    ] = None,
    timeline: Annotated[
        Path | None,
        typer.Option("--timeline", help="map: a graded timeline (timeline.csv of cytosafe grade)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="export, map, fit: output directory; query: a CSV file; simulate: .csv, .svg "
            "or .html.",
        ),
    ] = None,
    fitted: Annotated[
        bool,
        typer.Option(
            "--fitted", help="query: also the network fitted to the reference compound library."
        ),
    ] = False,
    library: Annotated[
        Path | None,
        typer.Option("--library", help="fit: a reference library file (the shipped one)."),
    ] = None,
    fc_format: Annotated[
        str | None,
        typer.Option(
            "--fc-format",
            help="map: the test article's Fc format (igg1, igg2, igg4, fc_silent, none); "
            "FcgR engagement is mapped only when it engages FcgR.",
        ),
    ] = None,
    confirmed_only: Annotated[
        bool,
        typer.Option(
            "--confirmed-only",
            help="fit: only compounds whose clinical outcome is confirmed against its source.",
        ),
    ] = False,
) -> None:
    """The CRS adverse outcome pathway: export it, query it, simulate it, map evidence on it."""
    from rich.console import Console

    console = Console(highlight=False)
    if action is AopAction.EXPORT:
        _export(console, out, modality)
    elif action is AopAction.QUERY:
        _query(console, modality, _evidence(evidence), parameters, interval, out, fitted)
    elif action is AopAction.FIT:
        _fit(console, out, parameters, library, confirmed_only)
    elif action is AopAction.MAP:
        _map(console, responses, timeline, out, modality, fc_format)
    else:
        _simulate(console, modality, intervention, out)


def _export(console, out: Path | None, modality: str | None) -> None:
    from cytosafe._atomic import atomic_directory, atomic_write_text
    from cytosafe.aop.aopwiki_xml import write_aopwiki_xml
    from cytosafe.aop.export import aop_html, aop_svg, to_cytoscape_json, to_graphml
    from cytosafe.aop.graph import load_crs_aop
    from cytosafe.assays.knowledge import load_knowledge_base

    if out is None:
        raise InputError("export needs an output directory", field="--out", expected="a directory")
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", file=str(out), field="--out")
    kb = load_knowledge_base()
    if modality is not None:
        modality = kb.modality(modality).key
    aop = load_crs_aop()
    names = {k: m.name for k, m in kb.modalities.items()}
    # All files are written into a staging sibling first and moved into place only when
    # every one of them succeeded: a failed export leaves no half-written directory.
    with atomic_directory(out, EXPORT_FILES) as staging:
        write_aopwiki_xml(aop, staging / EXPORT_FILES[0], modality_names=names)
        to_graphml(aop, staging / EXPORT_FILES[1])
        to_cytoscape_json(aop, staging / EXPORT_FILES[2])
        atomic_write_text(staging / EXPORT_FILES[3], aop_svg(aop, modality=modality))
        aop_html(aop, staging / EXPORT_FILES[4], modality=modality)
        for name, table in (
            (EXPORT_FILES[5], aop.events_table()),
            (EXPORT_FILES[6], aop.relationships_table()),
        ):
            atomic_write_text(staging / name, table.to_csv(index=False, lineterminator="\n"))
    console.print(f"wrote {len(EXPORT_FILES)} files to {out}")


def _query(console, modality, evidence, parameters, interval, out, fitted=False) -> None:
    from rich.table import Table

    from cytosafe._atomic import atomic_write_text
    from cytosafe.aop.bayes import CrsBayesNetwork
    from cytosafe.assays.knowledge import load_knowledge_base

    if modality is None:
        raise InputError("query needs a modality", field="--modality")
    key = load_knowledge_base().modality(modality).key
    net = CrsBayesNetwork.for_modality(key, parameters)
    p = net.probability_interval(evidence) if interval else net.probability(evidence)
    text = f"[bold]{key}[/bold] · evidence {evidence or 'none'}\nP(CRS) = {p['p_crs']:.3f}"
    if interval:
        text += f" ({p['level']:.0%} interval {p['p_crs_low']:.3f}-{p['p_crs_high']:.3f})"
    text += f" · P(severe CRS) = {p['p_severe']:.3f}"
    if interval:
        text += f" ({p['p_severe_low']:.3f}-{p['p_severe_high']:.3f})"
    console.print(text)
    ranking = net.rank_assays(evidence)
    table = Table(title="Expected information of one more assay about the outcome")
    for col in ("assay", "key event", "bits", "P(CRS) if +", "P(CRS) if -", "expected |ΔP(CRS)|"):
        table.add_column(col)
    for r in ranking.head(10).itertuples(index=False):
        table.add_row(
            r.name,
            r.node,
            f"{r.mutual_information_bits:.3f}",
            f"{r.p_crs_if_positive:.3f}",
            f"{r.p_crs_if_negative:.3f}",
            f"{r.expected_change_p_crs:.3f}",
        )
    console.print(table)
    console.print(
        "Parameters: elicited and anchored, not fitted (see crs_bayes.toml); "
        f"source {net.params.source}"
    )
    result = {"modality": key, "evidence": evidence, **p, "basis": net.basis}
    if fitted:
        from cytosafe.aop.fit import fit_network

        fit = fit_network(net.params)
        nodes = {net._event_to_node.get(k, k): v for k, v in evidence.items()}
        q = fit.probability(key, nodes)
        console.print(
            f"Fitted ({q['basis']}; this modality's own tables: {q['modality_basis']}): "
            f"P(CRS) = {q['p_crs']:.3f} · P(severe CRS) = {q['p_severe']:.3f}"
        )
        result["fitted"] = q
    console.print(
        "The reference library's figures come from the cited publications; these "
        "probabilities support, never replace, a toxicologist's judgement."
    )
    if out is not None:
        ranking.insert(0, "basis", net.basis)  # every output says the tables are elicited
        atomic_write_text(out, ranking.to_csv(index=False, lineterminator="\n"))
        atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
        console.print(f"wrote {out}")


def _fit(console, out, parameters, library, confirmed_only) -> None:
    from rich.table import Table

    from cytosafe._atomic import atomic_directory, atomic_write_text
    from cytosafe.aop.bayes import load_bayes_parameters
    from cytosafe.aop.fit import DISCLAIMER, fit_network, leave_one_compound_out, loo_markdown
    from cytosafe.reference import load_library

    if out is None:
        raise InputError("fit needs an output directory", field="--out", expected="a directory")
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", file=str(out), field="--out")
    params = load_bayes_parameters(parameters)
    lib = load_library(library)
    net = fit_network(params, lib, confirmed_only=confirmed_only)
    loo = leave_one_compound_out(params, lib, confirmed_only=confirmed_only)
    view = Table(title=f"Leave-one-compound-out ({net.basis})")
    for col in ("compound", "modality", "observed", "P(severe) elicited", "fitted", "left out"):
        view.add_column(col)
    for r in loo.itertuples(index=False):
        observed = (
            f"{r.observed_crs_severe_percent:g} % severe"
            if r.observed_crs_severe_percent == r.observed_crs_severe_percent
            else {True: "severe: yes", False: "severe: no"}.get(
                r.observed_crs_severe, "severe: unknown"
            )
        )
        view.add_row(
            r.compound,
            r.modality,
            observed,
            f"{r.p_severe_elicited:.2f}",
            f"{r.p_severe_fitted:.2f}",
            f"{r.p_severe_left_out:.2f}",
        )
    console.print(view)
    settings = {
        "basis": net.basis,
        "compounds": list(net.compounds),
        "iterations": net.iterations,
        "equivalent_sample_size": net.settings.equivalent_sample_size,
        "min_weight": net.settings.min_weight,
        "case_weight": net.settings.case_weight,
        "max_subjects": net.settings.max_subjects,
        "case_weight_words": net.settings.describe_weight(),
        "confirmed_only": confirmed_only,
        "parameters": params.source,
        "parameters_version": params.version,
        "library": lib.file,
        "library_version": lib.version,
        "disclaimer": DISCLAIMER,
    }
    with atomic_directory(out, FIT_FILES) as staging:
        atomic_write_text(
            staging / FIT_FILES[0], net.parameters_table().to_csv(index=False, lineterminator="\n")
        )
        atomic_write_text(staging / FIT_FILES[1], loo.to_csv(index=False, lineterminator="\n"))
        atomic_write_text(staging / FIT_FILES[2], loo_markdown(loo, net))
        atomic_write_text(staging / FIT_FILES[3], json.dumps(settings, indent=2) + "\n")
    console.print(DISCLAIMER)
    console.print(f"wrote {len(FIT_FILES)} files to {out}")


def _simulate(console, modality, interventions, out) -> None:
    from rich.table import Table

    from cytosafe._atomic import atomic_write_text
    from cytosafe.aop.boolean import simulate, summarise

    names = interventions or [
        "none",
        "tocilizumab",
        "il1_blockade",
        "corticosteroids",
        "remove_mie",
    ]
    table = simulate(names, modality=modality)
    summary = summarise(table)
    view = Table(title="P(CRS node) in the Boolean model (relative time)")
    for col in ("intervention", "final", "maximum", "time-averaged"):
        view.add_column(col)
    for r in summary.itertuples(index=False):
        view.add_row(
            r.intervention, f"{r.p_CRS_final:.3f}", f"{r.p_CRS_max:.3f}", f"{r.p_CRS_mean:.3f}"
        )
    console.print(view)
    if out is not None:
        from cytosafe.aop.export import simulation_svg

        suffix = out.suffix.lower()
        if suffix == ".svg":
            atomic_write_text(out, simulation_svg(table))
        elif suffix in (".html", ".htm"):
            atomic_write_text(
                out,
                '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
                "<title>CRS mechanism simulation</title></head><body>"
                + simulation_svg(table)
                + summary.to_html(index=False, float_format="%.3f")
                + "</body></html>\n",
            )
        else:
            atomic_write_text(out, table.to_csv(index=False, lineterminator="\n"))
        console.print(f"wrote {out}")


def _read_csv(path: Path, option: str):
    import pandas as pd

    if not path.is_file():
        raise InputError("file not found", file=str(path), field=option)
    try:
        return pd.read_csv(path)
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot be read as CSV: {exc}", file=str(path), field=option) from None


def _map(console, responses, timeline, out, modality, fc_format=None) -> None:
    from rich.table import Table

    from cytosafe._atomic import atomic_directory, atomic_write_text
    from cytosafe.aop.evidence import (
        EXCLUSION_COLUMNS,
        evidence_exclusions,
        findings_from_timeline,
        map_evidence,
    )
    from cytosafe.aop.export import aop_html, aop_svg
    from cytosafe.aop.graph import load_crs_aop
    from cytosafe.assays.knowledge import load_knowledge_base

    if out is None:
        raise InputError("map needs an output directory", field="--out", expected="a directory")
    if modality is not None:
        modality = load_knowledge_base().modality(modality).key
    aop = load_crs_aop()
    frame = _read_csv(responses, "--responses") if responses else None
    table, lit = map_evidence(
        aop,
        responses=frame,
        findings=findings_from_timeline(_read_csv(timeline, "--timeline")) if timeline else None,
        modality=modality,
        fc_format=fc_format,
    )
    import pandas as pd

    excluded = (
        evidence_exclusions(aop, frame, modality=modality, fc_format=fc_format)
        if frame is not None
        else pd.DataFrame(columns=list(EXCLUSION_COLUMNS))
    )
    view = Table(title="Evidence on the CRS pathway")
    for col in ("key event", "source", "positive", "readouts", "note"):
        view.add_column(col)
    for r in table.itertuples(index=False):
        view.add_row(r.event, r.source, f"{r.n_positive}/{r.n_total} {r.unit}", r.readout, r.note)
    console.print(view)
    if len(excluded):
        console.print(
            f"{len(excluded)} readout group(s) measured but not counted (mechanism or cells); "
            "see excluded.csv"
        )
    if modality is None and frame is not None:
        console.print("No --modality: no molecular initiating event gets evidence.")
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", file=str(out), field="--out")
    with atomic_directory(out, MAP_FILES) as staging:
        atomic_write_text(staging / MAP_FILES[0], table.to_csv(index=False, lineterminator="\n"))
        atomic_write_text(
            staging / MAP_FILES[1],
            aop_svg(aop, highlight=lit, modality=modality, evidence=table),
        )
        aop_html(
            aop,
            staging / MAP_FILES[2],
            highlight=lit,
            modality=modality,
            evidence=table,
            excluded=excluded,
        )
        atomic_write_text(staging / MAP_FILES[3], excluded.to_csv(index=False, lineterminator="\n"))
    console.print(f"wrote {len(MAP_FILES)} files to {out}")
