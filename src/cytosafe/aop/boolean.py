"""Mechanism simulation: a Boolean network of the CRS pathway run with MaBoSS (``cmaboss``).

The model (``data/crs_mechanism.bnd`` with defaults in ``data/crs_mechanism.cfg``) has
the key events of the CRS AOP as nodes, the MIE and three interventions as inputs, and
rates that make it a continuous-time Markov process; MaBoSS estimates, from many
stochastic trajectories, the probability of each node being on over time.
``data/crs_boolean.toml`` lists the interventions (IL-6 receptor blockade, IL-1 blockade,
corticosteroids, removing the MIE) and modality presets, each as configuration values with
their sources.

Examples
--------
>>> table = simulate(["none", "tocilizumab"])
>>> final = table[table["time"] == table["time"].max()].set_index("intervention")["CRS"]
>>> bool(final["tocilizumab"] < final["none"])
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from cytosafe.assays.references import load_references
from cytosafe.data import Fields, entries, read_toml, unique_keys
from cytosafe.data import path as data_path
from cytosafe.errors import InputError

__all__ = ["BooleanModel", "Intervention", "load_boolean_model", "simulate", "summarise"]


@dataclass(frozen=True)
class Intervention:
    key: str
    name: str
    settings: dict[str, float]
    citations: tuple[str, ...]
    status: str
    note: str | None = None


@dataclass(frozen=True)
class BooleanModel:
    """The MaBoSS model text, its interventions and modality presets."""

    network: str
    config: str
    outcome_node: str
    node_events: dict[str, str]
    interventions: dict[str, Intervention]
    modalities: dict[str, Intervention]
    source: str

    def configure(self, settings: dict[str, float]) -> str:
        """The configuration text with ``settings`` (``$param`` or ``Node.istate``) applied."""
        text = self.config
        for key, value in settings.items():
            pattern = re.compile(r"^(\s*" + re.escape(key) + r"\s*=\s*)[^;]*;", re.M)
            text, n = pattern.subn(lambda m, v=value: f"{m.group(1)}{_number(v)};", text)
            if n != 1:
                raise InputError(
                    f"the configuration has no single setting {key!r}",
                    file=self.source,
                    field=key,
                    expected="a $parameter or Node.istate of crs_mechanism.cfg",
                )
        return text


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def load_boolean_model(path: str | Path | None = None) -> BooleanModel:
    """Load ``crs_boolean.toml`` and the model files it names (the shipped ones by default)."""
    if path is None:
        return _shipped()
    return _load(Path(path))


@cache
def _shipped() -> BooleanModel:
    return _load(data_path("crs_boolean.toml"))


def _settings(f: Fields) -> dict[str, float]:
    values = f.get("set", dict)
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            f.fail(f"{k} = {v!r}", field="set", expected="numbers")
    return {k: float(v) for k, v in values.items()}


def _load(path: Path) -> BooleanModel:
    known = load_references().__contains__
    data = read_toml(path, schema="cytosafe.boolean")
    top = Fields(data, path, "model")
    net_path = path.parent / top.text("network")
    cfg_path = path.parent / top.text("config")
    try:
        network, config = net_path.read_text(encoding="utf-8"), cfg_path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError("model file not found", file=str(exc.filename)) from None
    for f in entries(data, "parameters", path):
        f.citations(known)
        f.status()

    def read(section: str) -> dict[str, Intervention]:
        return {
            key: Intervention(
                key=key,
                name=f.text("name", default=key),
                settings=_settings(f),
                citations=f.citations(known),
                status=f.status(),
                note=f.text("note", default=None),
            )
            for key, f in unique_keys(entries(data, section, path)).items()
        }

    model = BooleanModel(
        network=network,
        config=config,
        outcome_node=top.text("outcome_node"),
        node_events=dict(top.get("nodes", dict)),
        interventions=read("intervention"),
        modalities=read("modality"),
        source=str(path),
    )
    if not re.search(r"^\s*Node\s+" + re.escape(model.outcome_node) + r"\b", network, re.M):
        top.fail(f"outcome node {model.outcome_node!r} is not in the network", field="outcome_node")
    # Every setting must exist in the configuration: check them all now.
    for item in [*model.interventions.values(), *model.modalities.values()]:
        model.configure(item.settings)
    return model


def simulate(
    interventions: list[str] | tuple[str, ...] = (
        "none",
        "tocilizumab",
        "il1_blockade",
        "corticosteroids",
        "remove_mie",
    ),
    *,
    modality: str | None = None,
    settings: dict[str, float] | None = None,
    sample_count: int | None = None,
    seed: int | None = None,
    model: BooleanModel | None = None,
) -> pd.DataFrame:
    """Simulate the CRS mechanism under each intervention.

    Parameters
    ----------
    interventions:
        Keys of ``crs_boolean.toml`` (``none``, ``tocilizumab``, ``il1_blockade``,
        ``corticosteroids``, ``remove_mie``); combine them with ``+``
        (``"tocilizumab+corticosteroids"``).
    modality:
        A modality preset (which key events the MIE drives); ``default`` otherwise.
    settings:
        Further configuration values (``$param`` or ``Node.istate``).
    sample_count, seed:
        Number of MaBoSS trajectories and the random seed (the configuration's defaults
        otherwise; a fixed seed makes runs reproducible).

    Returns
    -------
    pandas.DataFrame
        One row per intervention and time point: ``intervention``, ``time`` and the
        probability of every reported node (``CRS`` is the adverse outcome).
    """
    import cmaboss

    model = model or load_boolean_model()
    if modality is not None and modality not in model.modalities:
        from cytosafe.assays.knowledge import load_knowledge_base

        modality = load_knowledge_base().modality(modality).key  # an unknown name raises
    preset = model.modalities.get(modality if modality in model.modalities else "default")
    frames = []
    for name in interventions:
        values: dict[str, float] = dict(preset.settings) if preset else {}
        for part in name.split("+"):
            if part not in model.interventions:
                raise InputError(
                    f"unknown intervention {part!r}",
                    field="intervention",
                    expected=", ".join(model.interventions),
                )
            values.update(model.interventions[part].settings)
        values.update(settings or {})
        run = {}
        if sample_count is not None:
            run["sample_count"] = int(sample_count)
        if seed is not None:
            run["seed_pseudorandom"] = int(seed)
        config = model.configure(values)
        config = _run_settings(config, run)
        result = cmaboss.MaBoSSSim(network_str=model.network, config_str=config).run()
        out = result.get_nodes_probtraj()
        probs, times, nodes = np.asarray(out[0]), list(out[1]), list(out[2])
        frame = pd.DataFrame(probs, columns=nodes)
        frame.insert(0, "time", times)
        frame.insert(0, "intervention", name)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    if model.outcome_node not in table:
        table[model.outcome_node] = 0.0
    return table


def _run_settings(config: str, run: dict[str, int]) -> str:
    for key, value in run.items():
        config, n = re.subn(
            r"^(\s*" + key + r"\s*=\s*)[^;]*;",
            lambda m, v=value: f"{m.group(1)}{v};",
            config,
            flags=re.M,
        )
        if n == 0:
            config += f"\n{key} = {value};\n"
    return config


def summarise(table: pd.DataFrame, node: str = "CRS") -> pd.DataFrame:
    """Per intervention: P(node) at the last time point, its maximum, and the time-averaged
    probability (area under the curve divided by the duration)."""
    rows = []
    for name, g in table.groupby("intervention", sort=False):
        t, p = g["time"].to_numpy(), g[node].to_numpy()
        auc = (
            float(np.sum((p[1:] + p[:-1]) / 2 * np.diff(t))) / (t[-1] - t[0])
            if len(t) > 1
            else float(p[0])
        )
        rows.append(
            {
                "intervention": name,
                f"p_{node}_final": float(p[-1]),
                f"p_{node}_max": float(p.max()),
                f"p_{node}_mean": auc,
            }
        )
    return pd.DataFrame(rows)
