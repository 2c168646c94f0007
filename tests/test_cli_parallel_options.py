"""The many-plate commands' options and progress bar.

``--workers N`` (processes here) and ``--scheduler ADDRESS`` (a Dask cluster) together are
a usage error naming both, on every command that takes them: before, the scheduler won and
the user was not told. And the progress bar of ``cytosafe quantify`` never moves back,
not even when the at-once read of the exports falls back to reading them file by file
(:func:`cytosafe.quantification.load_measurements`), which reports every file again from 0.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cytosafe.cli import app
from cytosafe.cli._common import Progress
from cytosafe.workflows import run_quantification

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


def _shown(progress: Progress) -> tuple[float, str]:
    """What the rich bar itself shows: its task's completed fraction and description."""
    (task,) = progress._bar.tasks
    return task.completed, task.description


def test_the_bar_never_moves_back():
    progress = Progress(enabled=True)
    with progress.running():
        progress(0.5, "reading b.csv")
        progress(0.0, "reading a.csv")
        assert _shown(progress) == (0.5, "reading a.csv")
        progress(0.75, "fitting")
        assert _shown(progress) == (0.75, "fitting")
    # A new run starts from 0 again.
    with progress.running():
        progress(0.25, "reading a.csv")
        assert _shown(progress) == (0.25, "reading a.csv")


@pytest.fixture
def mismatched(tmp_path) -> list[Path]:
    """Two tidy tables of one plate each whose columns differ (the second has no
    bead_count): the at-once read reads both, then falls back to file by file."""
    table = pd.read_csv(STUDY / "tidy" / "measurements.csv")
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    table[table["plate_id"] == "MSD-01"].to_csv(first, index=False)
    one = table[table["plate_id"] == "MSD-02"].drop(columns=["bead_count"])
    one.to_csv(second, index=False)
    return [first, second]


def test_the_bar_does_not_restart_when_the_at_once_read_falls_back(mismatched):
    progress = Progress(enabled=True)
    messages, shown = [], []

    def watch(fraction: float, message: str) -> None:
        progress(fraction, message)
        messages.append(message)
        shown.append(_shown(progress)[0])

    with progress.running():
        run_quantification(mismatched, progress=watch)
    assert messages.count("reading a.csv") == 2  # read at once, then again file by file
    assert shown == sorted(shown)
    assert shown[-1] == 1.0


def test_load_measurements_reports_progress_that_never_falls(mismatched):
    # The library itself: a caller's own callback (no Progress bar between) sees the
    # fraction hold while the fallback reads the files again.
    from cytosafe.quantification import load_measurements

    seen: list[tuple[float, str]] = []
    load_measurements(mismatched, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert [m for _, m in seen].count("reading a.csv") == 2
    assert fractions == sorted(fractions)


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_the_library_refuses_workers_with_a_scheduler_too(workers):
    # run_quantification, run_analysis (both through workflows.parallel.quantifier) and
    # run_grading (grading._partitioning) let the cluster win before; 1 (the library's
    # default) and None ('not chosen') pass, as they cannot be told from no choice.
    from cytosafe.errors import InputError
    from cytosafe.workflows import run_analysis, run_grading

    calls = [
        lambda: run_quantification(MSD[:1], workers=workers, scheduler=NOWHERE),
        lambda: run_analysis(STUDY / "study.toml", workers=workers, scheduler=NOWHERE),
        lambda: run_grading(COHORT, workers=workers, scheduler=NOWHERE),
    ]
    for call in calls:
        with pytest.raises(InputError) as err:
            call()
        assert err.value.field == "workers" and "not both" in err.value.expected
