"""The recommender reproduces the published cases of issue 5, and its faces work.

* a CD28 superagonist (TGN1412) gets a format that detects it (high-density pre-culture or
  endothelial co-culture) ranked above the plain PBMC aqueous assay (Stebbings 2007,
  Findlay 2011, Römer 2011);
* a CD3 bispecific gets target-cell co-culture;
* an Fc-silent antibody gets a note that Fc-mediated release is not expected.
"""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from cytosafe.assays import recommend
from cytosafe.cli import EXIT_INPUT_ERROR, reporting_errors
from cytosafe.cli.recommend import recommend_command
from cytosafe.report.assays import recommendation_html, recommendation_markdown

runner = CliRunner()


def rank(rec, fmt: str) -> int:
    return int(rec.ranking.loc[rec.ranking["format"] == fmt, "rank"].iloc[0])


def test_cd28_superagonist_gets_preculture_and_endothelial_coculture_above_pbmc_aqueous():
    rec = recommend("cd28_superagonist", target="CD28", fc="igg4")
    aqueous = rank(rec, "pbmc_aqueous")
    assert rank(rec, "pbmc_high_density_preculture") < aqueous
    assert rank(rec, "pbmc_endothelial_coculture") < aqueous
    top = rec.ranking.loc[0, "format"]
    assert rec.ranking.loc[0, "detects"]["cd28_superagonism"] == "yes", top
    assert "cd28_superagonism" not in rec.uncovered


def test_pbmc_aqueous_is_said_to_miss_tgn1412_with_its_sources():
    rec = recommend("cd28_superagonist")
    reasons = rec.ranking.loc[rec.ranking["format"] == "pbmc_aqueous", "reasons"].iloc[0]
    assert any(r.startswith("no for CD28 superagonism (Stebbings") for r in reasons)
    assert any(r.startswith("missed tgn1412") for r in reasons)


def test_cd3_bispecific_gets_target_cell_coculture():
    rec = recommend("cd3_bispecific", target="CD20")
    assert rec.ranking.loc[0, "format"] == "target_cell_coculture"
    assert "target_cell_coculture" in rec.chosen
    assert any(c["key"] == "target_negative_cells" for c in rec.controls)


def test_fc_silent_antibody_gets_a_note_that_fc_mediated_release_is_not_expected():
    for rec in (
        recommend("fc_silent_mab", target="CD52"),
        recommend("igg1_mab", target="CD52", fc="fc_silent"),
    ):
        assert all(m.key != "fcgr_crosslinking" for m in rec.mechanisms)
        assert any("Fc-mediated" in n and "not expected" in n for n in rec.notes)


def test_an_fc_competent_igg1_needs_an_fcgr_format_and_the_alemtuzumab_control():
    rec = recommend("igg1_mab", target="CD52", fc="igg1")
    assert rec.ranking.loc[0, "format"] == "whole_blood"
    assert any(c["key"] == "alemtuzumab" for c in rec.controls)
    assert not any("Fc-mediated" in n for n in rec.notes)


def test_a_mechanism_no_format_detects_is_named():
    rec = recommend("checkpoint_inhibitor", target="PD-1", fc="igg4")
    assert rec.uncovered == ["checkpoint_disinhibition"]
    assert any("Checkpoint disinhibition" in n for n in rec.notes)


def test_choosing_the_other_side_of_a_disagreement_changes_the_ranking():
    default = recommend("cd28_superagonist")
    sceptical = recommend("cd28_superagonist", options={"whole_blood_cd28_superagonist": "no"})
    wb = default.ranking["format"] == "whole_blood"
    assert (
        default.ranking.loc[wb, "coverage"].iloc[0]
        > sceptical.ranking.loc[sceptical.ranking["format"] == "whole_blood", "coverage"].iloc[0]
    )


def test_the_panel_follows_the_mechanisms():
    cd28 = recommend("cd28_superagonist").panel
    assert {"IL-2", "IFN-g", "lymphoproliferation"} <= set(cd28)
    car_t = recommend("car_t", target="CD19").panel
    assert {"IL-6", "IL-1b", "Ang-2"} <= set(car_t)


def test_markdown_and_html_carry_the_ranking_the_gaps_and_the_references():
    rec = recommend("checkpoint_inhibitor", target="PD-1")
    md = recommendation_markdown(rec)
    assert "## Ranked formats" in md and "Not covered by the chosen formats" in md
    assert "[tay2022]" in md
    page = recommendation_html(rec)
    assert page.startswith("<!DOCTYPE html>") and "Checkpoint disinhibition" in page
    assert "<script" not in page


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("recommend")(reporting_errors(recommend_command))
    app.command("other")(lambda: None)  # two commands, so the sub-command name is required
    return app


def test_cli_prints_the_table_and_writes_markdown_and_html(tmp_path):
    md, page = tmp_path / "rec.md", tmp_path / "rec.html"
    result = runner.invoke(
        cli(),
        [
            "recommend",
            "--modality",
            "cd28_superagonist",
            "--target",
            "CD28",
            "--fc",
            "igg4",
            "--out",
            str(md),
        ],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 0, result.output
    assert "High-density PBMC pre-culture" in result.output
    assert md.read_text(encoding="utf-8").startswith("# Cytokine release assay recommendation")
    result = runner.invoke(cli(), ["recommend", "--modality", "cd3_bispecific", "--out", str(page)])
    assert result.exit_code == 0, result.output
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_cli_bad_input_is_one_line_and_exit_code_2():
    result = runner.invoke(cli(), ["recommend", "--modality", "antisense"])
    assert result.exit_code == EXIT_INPUT_ERROR
    assert "error: field 'modality': unknown modality 'antisense'" in result.output
    result = runner.invoke(cli(), ["recommend", "--modality", "car_t", "--option", "nonsense"])
    assert result.exit_code == EXIT_INPUT_ERROR


def test_cli_prints_cd69_and_cd25_as_activation_markers_not_cytokines():
    result = runner.invoke(
        cli(), ["recommend", "--modality", "cd3_bispecific", "--target", "CD20"],
        env={"COLUMNS": "300"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Cytokine panel" not in result.output
    markers = re.search(r"T-cell activation markers: (.*)", result.output).group(1)
    assert "CD69" in markers and "CD25" in markers
    soluble = re.search(r"Cytokines and other soluble mediators: (.*)", result.output).group(1)
    assert "IL-6" in soluble and "CD69" not in soluble and "CD25" not in soluble
