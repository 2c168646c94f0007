"""The study-design form's pieces (issue 15, item 2): the TOML writer reads back to the
same tables, a form keeps what it does not show, a stored design runs as the study file
``cytosafe analyze`` reads, an uploaded file for another study id is made this study's,
and the plate grid knows its plate format."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd
import pytest

from cytosafe.errors import InputError
from cytosafe.hazard.design import load_study
from cytosafe.web.design_form import (
    design_from_form,
    design_from_toml,
    design_toml,
    dumps_toml,
    form_context,
    validate_design,
)
from cytosafe.web.plate_layout import plate_grid
from cytosafe.web.services.studies import own_study_file

STUDY_FILE = Path(__file__).resolve().parents[1] / "examples" / "cra-study" / "study.toml"
RULES = """
[study]
id = "S-1"
[[treatment]]
name = "medium"
role = "negative_control"
[[treatment]]
name = "TA-1"
role = "test"
code = "T1"
[hazard]
rule_set = "study"
below_lloq = "lloq/2"
[[hazard.rule]]
name = "three-fold"
min_fold_change = 3.0
above_lloq = true
[[hazard.rule]]
name = "big increase"
min_difference = 500.0
[[platform]]
name = "msd"
plates = ["P1", "P2"]
"""


def test_the_writer_reads_back_to_the_same_tables():
    example = tomllib.loads(STUDY_FILE.read_text(encoding="utf-8"))
    assert tomllib.loads(dumps_toml(example)) == example
    nested = tomllib.loads(RULES)
    assert tomllib.loads(dumps_toml(nested)) == nested
    odd = {"study": {"title": 'a "quoted"\nline\tand é', "x y": [1, 2.5, True]}}
    assert tomllib.loads(dumps_toml(odd)) == odd


def test_a_stored_design_is_the_study_file_analyze_reads(tmp_path):
    design, notes = design_from_toml(RULES.encode(), "WEB-1")
    assert notes == [
        "The study file is for study 'S-1'; it is used as the design of this study, 'WEB-1'."
    ]
    path = tmp_path / "study.toml"
    path.write_text(design_toml(design, "WEB-1"), encoding="utf-8")
    read = load_study(path)
    assert read.study_id == "WEB-1"
    assert [r.name for r in read.settings.rule_set.rules] == ["three-fold", "big increase"]
    assert read.settings.below_lloq == "lloq/2"
    assert validate_design(design, "WEB-1").matched_control("TA-1") == "medium"


def test_the_form_keeps_what_it_does_not_show():
    base, _ = design_from_toml(RULES.encode(), "WEB-1")
    form = {
        "t_name": ["medium", "TA-1", ""],
        "t_role": ["negative_control", "test", ""],
        "t_conc": ["", "1, 10", ""],
        "t_unit": ["", "nM", ""],
        "t_formats": ["", "", ""],
        "t_control": ["", "", ""],
        "t_expect": ["", "", ""],
        "t_benchmark": ["", "yes", ""],
        "t_description": ["", "", ""],
        "rule_set": "study",
        "below_lloq": "lloq/2",
    }
    design = design_from_form(form, base)
    ta1 = design["treatment"][1]
    assert ta1["code"] == "T1" and ta1["concentrations"] == [1.0, 10.0] and ta1["benchmark"]
    assert design["hazard"]["rule"] == base["hazard"]["rule"]
    assert design["platform"] == base["platform"]
    assert "format" not in design  # no format rows
    context = form_context(design)
    assert "study" in context["rule_sets"]  # its own rules stay selectable
    assert [t["name"] for t in context["treatments"][:2]] == ["medium", "TA-1"]
    with pytest.raises(InputError, match="'x' is not a number") as info:
        design_from_form({**form, "t_conc": ["", "1, x", ""]}, base)
    assert info.value.row == 2 and info.value.field == "concentrations"


@pytest.mark.parametrize(
    "text",
    [
        '[study]\nid = "OTHER"  # the lab\'s code\ntitle = "t"\n',
        'study.id = "OTHER"\nstudy.title = "t"\n',
        'study = { id = "OTHER", title = "t" }\n',
    ],
)
def test_an_uploaded_file_for_another_id_runs_as_this_study(text):
    body = text + '[[treatment]]\nname = "medium"\nrole = "negative_control"\n'
    new, note = own_study_file(body.encode(), "WEB-1", "study.toml")
    parsed = tomllib.loads(new.decode())
    assert parsed["study"] == {"id": "WEB-1", "title": "t"}
    assert parsed["treatment"] == [{"name": "medium", "role": "negative_control"}]
    assert "is for study 'OTHER'; it was run as this study, 'WEB-1'" in note
    same, none = own_study_file(new, "WEB-1", "study.toml")
    assert same == new and none is None


def test_the_plate_grid_is_96_or_384_wells():
    wells = pd.DataFrame(
        {
            "well": ["A01", "H12", "A01"],
            "analyte": ["IL-6", "IL-6", "TNF"],
            "sample_type": ["standard", "sample", "standard"],
            "signal": [1500.0, 20.0, 3.0],
            "donor_id": [None, "D1", None],
            "treatment": [None, "TA-1", None],
        }
    )
    grid = plate_grid(wells, "IL-6")
    assert grid["size"] == 96 and grid["cells"][0][0]["signal"] == "1.5k"
    assert grid["cells"][7][11]["title"].startswith("H12 · Sample")
    assert "donor D1" in grid["cells"][7][11]["title"]
    assert grid["cells"][3][3]["type"] == ""  # an empty well
    wide = wells.assign(well=["A01", "P24", "A01"])
    assert plate_grid(wide, "TNF")["size"] == 384
    assert plate_grid(wells, "nope")["analyte"] == "IL-6"
