"""The many-plate commands' options.

``--workers N`` (processes here) and ``--scheduler ADDRESS`` (a Dask cluster) together are
a usage error naming both, on every command that takes them: before, the scheduler won and
the user was not told.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cytosafe.cli import app

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "examples" / "cra-study"
MSD = sorted((STUDY / "msd").glob("plate_*.csv"))
COHORT = ROOT / "examples" / "crs-cohort" / "observations.csv"
#: Nothing listens here; a command that tried the cluster would fail on it, not on usage.
NOWHERE = "tcp://127.0.0.1:9"
runner = CliRunner()

#: Each command that takes --workers and --scheduler, with inputs it runs on.
COMMANDS = {
    "quantify": ["quantify", str(MSD[0])],
    "analyze": ["analyze", str(STUDY / "study.toml")],
    "grade": ["grade", str(COHORT)],
}


def _text(output: str) -> str:
    """The output with Typer's box drawing and line wrapping taken out."""
    return " ".join(output.replace("│", " ").replace("╭", " ").replace("╰", " ").split())


@pytest.mark.parametrize("workers_first", [True, False], ids=["workers-first", "scheduler-first"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_workers_with_a_scheduler_is_a_usage_error_naming_both(command, workers_first, tmp_path):
    workers, scheduler = ["--workers", "2"], ["--scheduler", NOWHERE]
    options = [*workers, *scheduler] if workers_first else [*scheduler, *workers]
    out = tmp_path / "out"
    result = runner.invoke(app, [*COMMANDS[command], "--out", str(out), *options])
    text = _text(result.output)
    assert result.exit_code == 2, text
    assert "'--workers' / '--scheduler'" in text, text
    assert "not both" in text, text
    assert not out.exists()  # refused before any work


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_one_worker_with_a_scheduler_is_refused_too(command, tmp_path):
    """``--workers 1`` asks for this process, which the cluster would silently overrule."""
    args = [*COMMANDS[command], "--out", str(tmp_path / "o"), "-w", "1", "--scheduler", NOWHERE]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "not both" in _text(result.output)


def test_a_bad_worker_count_is_still_named_on_its_own():
    result = runner.invoke(app, ["grade", str(COHORT), "--out", "x", "--workers", "0"])
    text = _text(result.output)
    assert result.exit_code == 2 and "--workers" in text and "1 or more" in text
