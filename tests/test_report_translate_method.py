"""The simulation report's method text states the integrator's settings as the model holds them.

The first step after each dose start is cut into pieces from ``h / 2**GRADED_LEVELS``
(:data:`cytosafe.translate.model.GRADED_LEVELS`); the report derives the fraction it prints
from that constant, so the text cannot drift from the code.
"""

from __future__ import annotations

import textwrap

import pytest

from cytosafe.report.translate import render_translate_report
from cytosafe.translate import model
from cytosafe.translate.simulation import run_regimen_file

TINY = """
title = "tiny (SIMULATED)"
simulated = true
[simulation]
days = 3
subjects = 2
output_hours = 12
[potency]
ec50 = 1.0
unit = "ug/mL"
[[regimen]]
name = "flat"
doses = [{day = 1, amount = 1, unit = "mg", route = "iv", infusion_hours = 4}]
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("regimen") / "tiny.toml"
    path.write_text(textwrap.dedent(TINY), encoding="utf-8")
    return run_regimen_file(path, search=False)


def test_the_graded_first_step_is_stated_from_the_model(run, monkeypatch):
    html = render_translate_report(run, generated="2026-12-03 18:00 UTC")
    assert f"1/{2**model.GRADED_LEVELS} of a step" in html
    assert model.GRADED_LEVELS == 6 and "1/64 of a step" in html
    monkeypatch.setattr(model, "GRADED_LEVELS", 5)  # the text follows the constant
    html = render_translate_report(run, generated="2026-12-03 18:00 UTC")
    assert "1/32 of a step" in html and "1/64 of a step" not in html
