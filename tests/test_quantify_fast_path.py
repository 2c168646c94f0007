"""The quantification's fast path (issue 16, item 4) computes what the slow one did.

Validation once where a table is read, Student's t from ``scipy.special``, the fitter's
kernel chosen by the caller, the QC report's grouping by row positions, the packed plotly.js
kept on disk, and workflows imported on first use: each must leave every number as it was.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cytosafe.curves.calibration import CalibrationSettings, calibrate, calibrate_plates, t_quantile
from cytosafe.curves.potency import _f_sf
from cytosafe.errors import FitError
from cytosafe.quantification import load_measurements, quantify
from cytosafe.schema.measurements import validate_measurements

ROOT = Path(__file__).resolve().parents[1]
PLATE = ROOT / "examples" / "cra-study" / "msd" / "plate_MSD-01.csv"
TABLES = ("wells", "samples", "curves", "standards", "qc")


@pytest.fixture(scope="module")
def measurements() -> pd.DataFrame:
    return load_measurements([PLATE], study_id="CRA-EX-001")[0]


def _same_calibration(a, b) -> None:
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
def test_t_quantile_is_scipy_stats_t_ppf_bit_for_bit(confidence):
    df = np.arange(1, 1001)
    q = 0.5 + confidence / 2
    assert np.array_equal(t_quantile(q, df), stats.t.ppf(q, df))


def test_f_survival_is_scipy_stats_f_sf_bit_for_bit():
    rng = np.random.default_rng(16)
    f = np.concatenate([rng.standard_normal(2000) * 5, rng.exponential(3, 2000)])
    dfn = rng.integers(-1, 40, f.size).astype(float)  # 0 and -1: no F-test, NaN from both
    dfd = rng.integers(-1, 40, f.size).astype(float)
    edge = np.array([0.0, -0.0, -1.0, np.inf, -np.inf, np.nan, 1e-300, 1e300])
    f = np.concatenate([f, edge, edge])
    dfn = np.concatenate([dfn, np.full(edge.size, 3.0), [0, 1, 2, -1, np.nan, np.inf, 3, 0.5]])
    dfd = np.concatenate([dfd, np.full(edge.size, 7.0), [1, 0, 2, 5, 3, np.inf, np.nan, -1]])
    with np.errstate(all="ignore"):
        ours = _f_sf(f, dfn, dfd)
    np.testing.assert_array_equal(ours, stats.f.sf(f, dfn, dfd))  # NaN where both are NaN


def test_a_table_marked_validated_calibrates_as_one_validated_again(measurements):
    settings = CalibrationSettings(model="4PL")
    shuffled = measurements.iloc[::-1]  # any index: calibrate renumbers the rows either way
    _same_calibration(calibrate(shuffled, settings), calibrate(shuffled, settings, validated=True))
    plates = {("CRA-EX-001", "MSD-01"): settings}
    _same_calibration(
        calibrate_plates(measurements, plates),
        calibrate_plates(measurements, plates, validated=True),
    )


def test_quantify_of_a_validated_table_equals_quantify_of_the_raw_one(measurements):
    raw = measurements.astype({"signal": object})  # as a reader hands it over, unchecked
    slow, fast = quantify(raw), quantify(validate_measurements(raw), validated=True)
    _same_calibration(slow.calibration, fast.calibration)
    pd.testing.assert_frame_equal(slow.potency, fast.potency)


def test_calibrate_passes_the_kernel_to_the_fitter(measurements):
    settings = CalibrationSettings(model="4PL")
    _same_calibration(calibrate(measurements, settings), calibrate(measurements, settings,
                                                                   kernel="numpy"))  # fmt: skip
    with pytest.raises(FitError, match="kernel"):
        calibrate(measurements, settings, kernel="fast")


def test_report_groups_rows_as_pandas_groupby_does():
    from cytosafe.report.qc import _positions

    table = pd.DataFrame(
        {"a": ["y", "x", "y", None, "x", None], "b": [2.0, 1.0, 2.0, np.nan, 1.0, np.nan]}
    )
    expected = table.groupby(["a", "b"], sort=False, dropna=False).indices
    got = _positions(table, ["a", "b"])
    assert len(got) == len(expected) == 3
    for (key, rows), (want_key, want) in zip(got.items(), expected.items(), strict=True):
        assert rows.tolist() == list(want), key
        assert all(
            k == w or (pd.isna(k) and pd.isna(w)) for k, w in zip(key, want_key, strict=True)
        ), key


@pytest.fixture
def packer(monkeypatch):
    """The plotly.js packer with its in-process value forgotten before and after, and a
    count of the packings it runs."""
    from cytosafe.report import page

    packings = []
    real = page._pack

    def counting(data, *level):
        packings.append(len(data))
        return real(data, *level)

    monkeypatch.setattr(page, "_pack", counting)
    page._plotly_packed.cache_clear()
    yield page, packings
    page._plotly_packed.cache_clear()


def test_packed_plotly_js_is_kept_on_disk_and_read_back(tmp_path, monkeypatch, packer):
    page, packings = packer
    monkeypatch.setenv("CYTOSAFE_CACHE_DIR", str(tmp_path))
    first = page._plotly_packed()
    assert len(packings) == 1
    assert first == page._pack(page._plotly_js().encode("utf-8"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        p.name for p in tmp_path.glob("plotly-*.gz.b64")
    ]  # one entry and no temp file left behind
    (kept,) = tmp_path.glob("plotly-*.gz.b64")
    assert page._read_packed(kept) == first
    # What is on disk is what a later run embeds: a valid entry planted there is returned.
    page._write_packed(kept, "PLANTED")
    page._plotly_packed.cache_clear()
    packings.clear()
    assert page._plotly_packed() == "PLANTED" and packings == []


@pytest.mark.parametrize("damage", ["empty", "cut", "flipped", "headless"])
def test_a_damaged_packed_plotly_js_is_ignored_and_repaired(tmp_path, monkeypatch, packer, damage):
    page, packings = packer
    monkeypatch.setenv("CYTOSAFE_CACHE_DIR", str(tmp_path))
    # A small stand-in for the bundle: the test checks the cache, not gzip's speed.
    monkeypatch.setattr(page, "_plotly_js", lambda: "plotly stand-in " * 200)
    fresh = page._plotly_packed()
    (kept,) = tmp_path.glob("plotly-*.gz.b64")
    data = kept.read_bytes()
    damaged = {
        "empty": b"",
        "cut": data[:100],
        "flipped": data[:-1] + (b"A" if data[-1:] != b"A" else b"B"),
        "headless": data.partition(b"\n")[2],
    }[damage]
    kept.write_bytes(damaged)
    page._plotly_packed.cache_clear()
    packings.clear()
    assert page._plotly_packed() == fresh
    assert len(packings) == 1  # packed afresh, not read from the damaged entry
    assert page._read_packed(kept) == fresh  # and written again
    assert [p.name for p in tmp_path.iterdir()] == [kept.name]


def test_threads_asking_at_once_pack_once(tmp_path, monkeypatch, packer):
    import threading
    import time

    page, packings = packer
    monkeypatch.setenv("CYTOSAFE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(page, "_plotly_js", lambda: "plotly stand-in " * 200)
    counting = page._pack

    def slow(data, *level):  # widens the window in which the threads overlap
        time.sleep(0.2)
        return counting(data, *level)

    monkeypatch.setattr(page, "_pack", slow)
    got = []
    threads = [threading.Thread(target=lambda: got.append(page._plotly_packed())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 4 and len(set(got)) == 1
    assert len(packings) == 1
    assert [p.name for p in tmp_path.iterdir()] == [
        p.name for p in tmp_path.glob("plotly-*.gz.b64")
    ]


def test_no_cache_directory_packs_each_time(tmp_path, monkeypatch, packer, measurements):
    page, packings = packer
    from cytosafe.report.qc import render_qc_report

    for name, folder in (("HOME", "home"), ("XDG_CACHE_HOME", "xdg")):
        (tmp_path / folder).mkdir()
        monkeypatch.setenv(name, str(tmp_path / folder))
    monkeypatch.setenv("CYTOSAFE_CACHE_DIR", "")
    monkeypatch.setattr(page, "_plotly_js", lambda: "plotly stand-in " * 200)
    assert page._cache_dir() is None
    first = page._plotly_packed()
    page._plotly_packed.cache_clear()
    assert page._plotly_packed() == first
    assert len(packings) == 2  # packed by each process (here: after each forgetting)
    assert page.environment().bytecode_cache is None
    render_qc_report(quantify(measurements), generated="2026-12-03 18:00 UTC")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # nothing kept anywhere


def test_compiled_templates_are_kept_on_disk_and_render_the_same(
    tmp_path, monkeypatch, measurements
):
    import jinja2

    from cytosafe.report import page
    from cytosafe.report.qc import render_qc_report

    result = quantify(measurements)
    monkeypatch.setenv("CYTOSAFE_CACHE_DIR", "")
    assert page.environment().bytecode_cache is None

    def render():
        return render_qc_report(result, generated="2026-12-03 18:00 UTC")

    fresh = render()
    monkeypatch.setenv("CYTOSAFE_CACHE_DIR", str(tmp_path))
    assert render() == fresh  # compiles and keeps
    (folder,) = tmp_path.glob("templates-*")
    kept = sorted(folder.glob("__jinja2_*.cache"))
    assert len(kept) >= 2  # qc.html and the _base.html it extends
    with monkeypatch.context() as m:  # read back: compiling now fails the render

        def no_compile(*args, **kwargs):
            raise AssertionError("compiled again instead of read from the cache")

        m.setattr(jinja2.Environment, "compile", no_compile)
        assert render() == fresh
    # A cache that cannot be written (a read-only home) is skipped, never an error.
    for path in kept:
        path.unlink()

    def refuse(*args, **kwargs):
        raise PermissionError("read-only")

    monkeypatch.setattr("jinja2.bccache.tempfile.NamedTemporaryFile", refuse)
    assert render() == fresh
    assert not list(folder.glob("__jinja2_*.cache"))


def test_compiled_templates_are_kept_apart_by_the_environments_options(tmp_path, monkeypatch):
    import jinja2

    import cytosafe
    from cytosafe.report import page

    monkeypatch.setenv("CYTOSAFE_CACHE_DIR", str(tmp_path))
    source = "{% if true %}\nyes\n{% endif %}\n"

    def render(**options):
        env = jinja2.Environment(
            loader=jinja2.DictLoader({"t.html": source}),
            bytecode_cache=page._template_cache(options),
            **options,
        )
        return env.get_template("t.html").render()

    assert render(trim_blocks=False) == "\nyes\n"
    assert render(trim_blocks=True) == "yes\n"  # not the entry compiled without trim_blocks
    assert render(trim_blocks=False) == "\nyes\n"
    folders = sorted(p.name for p in tmp_path.glob("templates-*"))
    assert len(folders) == 2
    assert all(f"-{cytosafe.__version__}-jinja{jinja2.__version__}-" in f for f in folders)


def test_workflows_are_imported_on_first_use():
    code = (
        "import sys, cytosafe.workflows as w\n"
        "from cytosafe.workflows import run_quantification, QUANTIFICATION_FILES\n"
        "assert 'cytosafe.workflows.analysis' not in sys.modules\n"
        "assert 'cytosafe.workflows.grading' not in sys.modules\n"
        "assert callable(w.run_analysis) and w.GRADING_TABLES\n"
        "assert set(w.__all__) <= set(dir(w))\n"
        "try:\n    w.nothing\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit(1)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_small_quantification_never_imports_numba():
    code = (
        "import sys\n"
        "from cytosafe.quantification import load_measurements, quantify\n"
        f"table = load_measurements([{str(PLATE)!r}], study_id='S')[0]\n"
        "quantify(table, validated=True)\n"
        "assert 'numba' not in sys.modules, 'numba was imported'\n"
        "assert 'scipy.stats' not in sys.modules, 'scipy.stats was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_io_package_imports_a_reader_on_first_use():
    code = (
        "import sys, cytosafe.io as io, cytosafe.io.samples\n"
        "readers = ('asm', 'bioplex', 'bioplex_xml', 'msd', 'platemap', 'registry', 'tidy',"
        " 'xponent')\n"
        "assert not [m for m in readers if f'cytosafe.io.{m}' in sys.modules]\n"
        "from cytosafe.io import read_msd\n"
        "assert read_msd.__module__ == 'cytosafe.io.msd' and 'cytosafe.io.asm' not in sys.modules\n"
        "assert all(getattr(io, name) is not None for name in io.__all__)\n"
        "assert io.FORMATS == ('bioplex', 'bioplex_xml', 'xponent', 'msd', 'asm', 'tidy')\n"
        "assert set(io.__all__) <= set(dir(io))\n"
        "try:\n    io.nothing\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit(1)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_reading_an_msd_export_imports_no_other_reader():
    code = (
        "import sys\n"
        "from cytosafe.io.registry import READERS, read\n"
        f"read({str(PLATE)!r})\n"
        "assert 'cytosafe.io.asm' not in sys.modules and 'cytosafe.io.tidy' not in sys.modules\n"
        "assert list(READERS) == ['bioplex', 'bioplex_xml', 'xponent', 'msd', 'asm', 'tidy']\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_version_is_the_installed_distributions_read_on_first_use():
    code = (
        "import sys, cytosafe\n"
        "assert 'importlib.metadata' not in sys.modules, 'importlib.metadata was imported'\n"
        "found = cytosafe.__version__\n"
        "from importlib.metadata import version\n"
        "assert found == version('cytosafe') == cytosafe.__version__, found\n"
        "assert '__version__' in dir(cytosafe)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_command_spares_the_interpreter_its_teardown_collections_once(monkeypatch):
    from typer.testing import CliRunner

    import cytosafe.cli._common as common
    from cytosafe.cli import app

    registered = []
    monkeypatch.setattr(common, "_TEARDOWN", [])
    monkeypatch.setattr(common.atexit, "register", registered.append)
    for _ in range(2):
        assert CliRunner().invoke(app, ["recommend", "--modality", "nothing"]).exit_code == 2
    assert registered == [common._spare_teardown]


def test_garbage_at_exit_is_still_finalised_and_output_flushed(tmp_path):
    # The exit handler collects once before it freezes: a cycle that is garbage when the
    # command ends still has its finalizer run, as in a normal shutdown.
    mark = tmp_path / "finalised"
    code = (
        "import sys\n"
        "from cytosafe.cli._common import _exit_quickly\n"
        "_exit_quickly()\n"
        "class Cycle:\n"
        "    def __del__(self):\n"
        f"        open({str(mark)!r}, 'w').write('yes')\n"
        "c = Cycle(); c.me = c; del c\n"
        "import gc; gc.disable()\n"  # only the exit handler may collect it
        "sys.stdout.write('done')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "done"
    assert mark.read_text() == "yes"


MSD_DIR = ROOT / "examples" / "cra-study" / "msd"


def _file_by_file(monkeypatch, *args, **kwargs):
    """load_measurements as it read before the exports were validated at once."""
    import cytosafe.quantification as q

    with monkeypatch.context() as m:
        m.setattr(q, "_read_at_once", lambda *a, **k: None)
        return load_measurements(*args, **kwargs)


def test_exports_validated_at_once_equal_exports_validated_one_by_one(monkeypatch):
    import cytosafe.quantification as q

    plates = sorted(MSD_DIR.glob("plate_*.csv"))
    kwargs = {"sample_map": MSD_DIR / "samples.csv", "study_id": "CRA-EX-001"}
    used = []
    real = q._read_at_once
    monkeypatch.setattr(q, "_read_at_once", lambda *a: used.append(real(*a)) or used[-1])
    table, sources = load_measurements(plates, **kwargs)
    assert len(used) == 1 and used[0] is not None  # read at once, not file by file
    slow, slow_sources = _file_by_file(monkeypatch, plates, **kwargs)
    assert sources == slow_sources == [str(p) for p in plates]
    pd.testing.assert_frame_equal(table, slow)  # values, dtypes, categories, column order
    assert table.attrs == slow.attrs  # each plate's header differs: pandas keeps none


def test_the_readers_attrs_are_kept_as_pandas_concat_keeps_them(tmp_path, monkeypatch):
    paths = _tidy_exports(tmp_path)
    import cytosafe.quantification as q

    joined, _ = q._read_at_once(paths, None, None, None, None)
    assert joined.attrs == _file_by_file(monkeypatch, paths)[0].attrs


def _tidy_exports(tmp_path, n=3):
    from test_report_qc import simulate_study

    paths = []
    for plate, part in simulate_study(n, ("IL-6",)).groupby("plate_id"):
        path = tmp_path / f"{plate}.csv"
        part.to_csv(path, index=False)
        paths.append(path)
    return paths


def test_files_with_different_columns_are_read_one_by_one_with_the_same_table(
    tmp_path, monkeypatch
):
    paths = _tidy_exports(tmp_path)
    extra = pd.read_csv(paths[1]).assign(operator="AB")
    extra.to_csv(paths[1], index=False)
    import cytosafe.quantification as q

    assert q._read_at_once(paths, None, None, None, None) is None
    pd.testing.assert_frame_equal(load_measurements(paths)[0], _file_by_file(monkeypatch, paths)[0])


def test_the_first_file_in_error_is_named_as_when_read_one_by_one(tmp_path):
    # Read at once, the second file (not an export) fails first; read one by one, the
    # first file's negative signal does, and that is the error the user gets.
    from cytosafe.errors import InputError

    first, second = _tidy_exports(tmp_path, 2)
    bad = pd.read_csv(first)
    bad.loc[5, "signal"] = -3.0
    bad.to_csv(first, index=False)
    second.write_text("not,an\nexport,at all\n")
    with pytest.raises(InputError) as err:
        load_measurements([first, second])
    assert err.value.file == str(first) and err.value.field == "signal"
    assert err.value.row == 7


def test_any_failure_of_the_read_at_once_falls_back_to_the_first_file_in_error(
    tmp_path, monkeypatch
):
    # A parser that fails with something other than a CytoSafe error (a bug, a decoding
    # error) on a later file must not hide the InputError of an earlier file.
    import cytosafe.quantification as q
    from cytosafe.errors import InputError

    first, second = _tidy_exports(tmp_path, 2)
    bad = pd.read_csv(first)
    bad.loc[5, "signal"] = -3.0
    bad.to_csv(first, index=False)

    def broken(*args, **kwargs):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setattr(q, "_read_at_once", broken)
    with pytest.raises(InputError) as err:
        load_measurements([first, second])
    assert err.value.file == str(first) and err.value.field == "signal"


def test_a_plate_in_two_files_is_named_as_when_read_one_by_one(tmp_path):
    from cytosafe.errors import InputError

    first, second = _tidy_exports(tmp_path, 2)
    pd.read_csv(first).to_csv(second, index=False)
    with pytest.raises(InputError, match="appears in two inputs") as err:
        load_measurements([first, second])
    assert err.value.file == str(second)


def test_packed_figures_unpack_to_the_figures_of_the_plain_page(measurements):
    # The figures are packed at gzip level 6 (page.FIGURES_LEVEL), plotly.js at 9: a
    # reader of the page gets the same figures as from the plain form.
    import base64
    import gzip
    import re

    from cytosafe.report import page
    from cytosafe.report.qc import render_qc_report

    result = quantify(measurements)
    plain = render_qc_report(result)
    packed = render_qc_report(result, packed=True)
    assert page.figure_specs(packed) == page.figure_specs(plain) != {}
    blob = re.search(r'id="cs-figures-packed">(.*?)</script>', packed, re.S).group(1)
    data = gzip.decompress(base64.b64decode(blob))
    assert blob == page._pack(data, page.FIGURES_LEVEL) != page._pack(data)


def test_a_command_runs_with_fewer_collections_and_restores_the_collector():
    import gc

    import typer

    from cytosafe.cli._common import COMMAND_GC_THRESHOLD, reporting_errors
    from cytosafe.errors import InputError

    seen = []

    def command(fail: bool) -> None:
        seen.append(gc.get_threshold())
        if fail:
            raise InputError("bad", field="x")

    before = gc.get_threshold()
    reporting_errors(command)(False)
    with pytest.raises(typer.Exit):  # after the one-line error
        reporting_errors(command)(True)
    assert seen == [(max(before[0], COMMAND_GC_THRESHOLD), *before[1:])] * 2
    assert gc.get_threshold() == before
    # A command that runs until stopped (serve, monitor) keeps the collector's thresholds.
    seen.clear()
    reporting_errors(command, long_running=True)(False)
    assert seen == [before]


def test_only_serve_and_monitor_are_registered_as_long_running():
    import typer

    from cytosafe.cli import app

    def commands(group: typer.Typer, prefix: str = ""):
        for c in group.registered_commands:
            yield prefix + (c.name or c.callback.__name__), c.callback
        for g in group.registered_groups:
            yield from commands(g.typer_instance, prefix + g.name + " ")

    flags = dict(commands(app))
    assert len(flags) > 10
    running = {name for name, callback in flags.items() if callback.long_running}
    assert running == {"serve", "monitor"}


def _msd_raw(n=3):
    from cytosafe.io.registry import read_unvalidated

    return [read_unvalidated(p)[0] for p in sorted(MSD_DIR.glob("plate_*.csv"))[:n]]


def test_exports_joined_to_the_map_at_once_equal_each_joined_alone():
    from cytosafe.io.samples import join_sample_map, read_sample_map

    smap = read_sample_map(MSD_DIR / "samples.csv")
    raw = _msd_raw()
    alone = pd.concat([join_sample_map(t, smap) for t in raw], ignore_index=True)
    at_once = join_sample_map(
        pd.concat(raw, ignore_index=True), smap, exports=[len(t) for t in raw]
    )
    pd.testing.assert_frame_equal(at_once, alone)


def test_joined_at_once_each_export_must_still_hold_what_the_map_names():
    # A map without plate ids names samples every export must hold: one that only the
    # other export holds is the first export's error, joined alone or at once.
    from cytosafe.errors import InputError
    from cytosafe.io.samples import join_sample_map

    first, second = _msd_raw(2)
    second = second.copy()
    second.loc[second.index[0], "sample_id"] = "ONLY-HERE"
    both = pd.concat([first, second], ignore_index=True)
    ids = both["sample_id"].dropna().astype(str).str.strip().unique()
    smap = pd.DataFrame({"sample_id": ids, "donor_id": "D9"})  # every sample of both
    join_sample_map(both, smap)  # as one export, the map's sample is there
    with pytest.raises(InputError, match="which the export does not contain") as alone:
        join_sample_map(first, smap)
    with pytest.raises(InputError, match="which the export does not contain") as at_once:
        join_sample_map(both, smap, exports=[len(first), len(second)])
    assert str(at_once.value) == str(alone.value)


def test_the_summary_off_a_terminal_is_plain_text_without_rich(capsys):
    # Off a terminal the summary is printed as plain text (no rich import); text that
    # looks like rich markup ("[bold]") is printed as written.
    from types import SimpleNamespace

    from cytosafe.cli.quantify import _summary
    from cytosafe.curves.calibration import FLAGS

    qc = pd.DataFrame(
        {
            "study_id": ["S", "S"],
            "plate_id": ["P1", "P2"],
            "analyte": ["IL-6", "IL-6"],
            "qc_pass": [True, False],
            "qc_reasons": ["", "[bold] r2 < 0.99"],
        }
    )
    wells = pd.DataFrame({"sample_type": ["sample", "standard"], **{f: [False] * 2 for f in FLAGS}})
    wells["below_lloq"] = [True, True]
    result = SimpleNamespace(
        calibration=SimpleNamespace(qc=qc, wells=wells),
        potency=pd.DataFrame({"status": ["response", "no_response", "response"]}),
    )
    _summary(result, Path("out"))
    assert capsys.readouterr().out.splitlines() == [
        f"CytoSafe {cytosafe_version()} · 2 plate(s) × 1 analyte(s), 2 measurements",
        "curves passing QC: 1 / 2",
        "  ✗ P2 IL-6: [bold] r2 < 0.99",
        "flags on sample wells: below_lloq 1",
        "potency: no_response 1, response 2",
        "wrote 8 files to out",
        f"report: {Path('out') / 'report.html'}",
    ]


def cytosafe_version() -> str:
    import cytosafe

    return cytosafe.__version__
