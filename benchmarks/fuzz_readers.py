"""Hostile input for every reader: a seeded mutation fuzzer over real and example exports.

Issue 14 (item 8 of "What to build"): every reader, given a damaged or foreign-locale
file, either returns a valid measurement table or raises an
:class:`~cytosafe.errors.InputError` (or one of its subclasses), within a time bound, with
nothing printed by a third-party library, and never misreads a planted locale trap.

The corpus is built from the example study (``examples/cra-study/``: MSD, xPONENT, tidy
CSV, a tidy workbook written from it, the ELISA plate map with its reader matrix, the
culture sample maps), the test fixtures (a Gen5 export read through ASM, a Bio-Plex
Manager 6 XML run written by ``run_xml`` of ``tests/test_io_bioplex_xml.py``) and the real
vendor exports in ``../shared/data/real-exports/`` (read in place, never copied; see its
SOURCES.md). Each case takes one file and applies one to three mutations:

``truncate``, ``flip`` (random bytes), ``delete_lines``, ``duplicate_lines``, ``bom``
(UTF-8 byte-order mark), ``crlf``, ``utf16`` (re-encoded as UTF-16 with or without its
mark), ``junk`` (text or binary lines inserted or appended), and the *locale traps*
``decimal_comma`` (every or one ``d.d`` written ``d,d``), ``thousands`` (``12345.6``
written ``12,345.6`` or ``12.345,6``) and ``semicolons`` (the delimiter of a European
Excel; with ``decimal_comma`` the whole European CSV).

Outcomes, counted per case: ``valid`` (a table), ``input_error`` (naming its file),
``unnamed_error`` (an InputError naming no file: a defect), ``other`` (any other
exception: a defect), ``slow`` (a call over :data:`SLOW_CPU_S` of CPU), ``printed``
(something written to stdout/stderr) and ``silent_misread`` (a planted locale trap that
changed a number's text, read into a valid table whose numbers differ from the unmutated
file's). The targets of issue 14: 0 other, 0 slow, 0 silent misreads; and here also 0
unnamed errors and 0 printed.

Run: ``python benchmarks/fuzz_readers.py [-n 10000] [--seed 14] [--jobs 2]``; the test
suite runs a few hundred cases of the same engine (``tests/test_fuzz_readers.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import re
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "cra-study"
FIXTURES = ROOT / "tests" / "fixtures"
REAL = ROOT.parent / "shared" / "data" / "real-exports"

#: CPU seconds above which one read counts as slow (issue 14, "How it is checked").
SLOW_CPU_S = 2.0

#: The mutations; the locale traps are the ones whose valid reads are compared.
MUTATIONS = (
    "truncate",
    "flip",
    "delete_lines",
    "duplicate_lines",
    "bom",
    "crlf",
    "utf16",
    "junk",
    "decimal_comma",
    "thousands",
    "semicolons",
)
LOCALE_TRAPS = frozenset({"decimal_comma", "thousands"})


@dataclass(frozen=True)
class Entry:
    """One corpus file: how it is read, and which of its files the fuzzer mutates.

    ``kind`` is ``read`` (:func:`cytosafe.io.read` of ``target``), ``plate``
    (:func:`cytosafe.io.read_plate` of ``target`` as plate map or matrix, with
    ``partner`` as the other) or ``samples`` (:func:`cytosafe.io.read` of ``partner``
    with ``target`` as its sample map).
    """

    name: str
    kind: str
    target: Path
    role: str = "file"
    partner: Path | None = None


def corpus(workdir: Path) -> list[Entry]:
    """The files the fuzzer starts from (a small tidy workbook is written to ``workdir``)."""
    from cytosafe.io import read_tidy, write_tidy

    small_xlsx = workdir / "elisa_tidy.xlsx"
    if not small_xlsx.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write_tidy(read_tidy(EXAMPLES / "tidy" / "elisa.csv"), small_xlsx)
    entries = [
        Entry("msd", "read", EXAMPLES / "msd" / "plate_MSD-01.csv"),
        Entry("msd-two-plates", "read", FIXTURES / "msd" / "two_plates.csv"),
        Entry("xponent", "read", EXAMPLES / "luminex" / "plate_LX-01.csv"),
        Entry("xponent-small", "read", FIXTURES / "xponent" / "small_plate.csv"),
        Entry("bioplex-xml", "read", FIXTURES / "bioplex_xml" / "run.xml"),
        Entry("tidy-csv", "read", EXAMPLES / "tidy" / "elisa.csv"),
        Entry("tidy-xlsx", "read", small_xlsx),
        Entry(
            "plate-map",
            "plate",
            EXAMPLES / "elisa" / "plate_map.csv",
            "map",
            EXAMPLES / "elisa" / "reader_matrix.csv",
        ),
        Entry(
            "reader-matrix",
            "plate",
            EXAMPLES / "elisa" / "reader_matrix.csv",
            "matrix",
            EXAMPLES / "elisa" / "plate_map.csv",
        ),
        Entry(
            "plater-map",
            "plate",
            FIXTURES / "platemap" / "il6_plate_map_plater.csv",
            "map",
            FIXTURES / "platemap" / "gen5_il6_od450.txt",
        ),
        Entry(
            "gen5-asm",
            "plate",
            FIXTURES / "platemap" / "gen5_il6_od450.txt",
            "matrix",
            FIXTURES / "platemap" / "il6_plate_map_plater.csv",
        ),
        Entry(
            "sample-map",
            "samples",
            EXAMPLES / "msd" / "samples.csv",
            "samples",
            EXAMPLES / "msd" / "plate_MSD-01.csv",
        ),
    ]
    real = {
        "real-msd": "tidy-data-4.csv",
        "real-xponent": "pone.0187901.s001.csv",
        "real-flexmap": (
            "Flexmap_v433091_V540cLIA_NB-swarupap-5107580-0033_20241018_102647 (002) (3).csv"
        ),
        "real-bioplex-1": "pnLINCO20070302A.xls",
        "real-bioplex-2": "10JAN07_plate_1.xls",
    }
    for name, file in real.items():
        if (REAL / file).is_file():
            entries.append(Entry(name, "read", REAL / file))
    return entries


# --------------------------------------------------------------------------- mutations

_DECIMAL = re.compile(rb"(?<=\d)\.(?=\d)")
# A whole cell holding a number of four or more integer digits (not digits inside a name).
_BIG = re.compile(rb'(?m)(?:^|(?<=[,;\t"]))(\d{4,})(\.\d+)?(?=[,;\t"\r\n]|$)')
# Mutations that change no number: the company of a planted locale trap, so that a valid
# read with other numbers than the original's is the trap's doing.
_NEUTRAL_BEFORE = ("semicolons",)
_NEUTRAL_AFTER = ("bom", "crlf", "utf16")


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True) or [data]


def _text_of(data: bytes) -> str:
    from cytosafe.io._text import decode_text

    try:
        return decode_text(data, file="fuzz")
    except Exception:
        return data.decode("latin-1")


def mutate(data: bytes, rng: random.Random, name: str) -> bytes:
    """Apply the mutation ``name`` to ``data``."""
    if name == "truncate":
        return data[: rng.randrange(len(data) + 1)]
    if name == "flip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            if out:
                out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if name in {"delete_lines", "duplicate_lines"}:
        lines = _lines(data)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(lines))
            if name == "delete_lines" and len(lines) > 1:
                del lines[i]
            else:
                lines.insert(i, lines[i])
        return b"".join(lines)
    if name == "bom":
        return b"\xef\xbb\xbf" + data
    if name == "crlf":
        return re.sub(rb"\r?\n", b"\r\n", data)
    if name == "utf16":
        text = _text_of(data)
        return text.encode(rng.choice(["utf-16", "utf-16-le", "utf-16-be"]))
    if name == "junk":
        lines = _lines(data)
        choice = rng.random()
        if choice < 0.3:  # a long tail of lone cells (the quadratic MSD trap of issue 14)
            junk = [b"junk\n"] * rng.randint(100, 3000)
        elif choice < 0.6:
            junk = [bytes(rng.randrange(256) for _ in range(rng.randint(1, 80))) + b"\n"]
        else:
            junk = [b",".join(b"x" * rng.randint(0, 3) for _ in range(rng.randint(1, 30))) + b"\n"]
        at = len(lines) if rng.random() < 0.5 else rng.randrange(len(lines) + 1)
        return b"".join(lines[:at] + junk + lines[at:])
    if name == "decimal_comma":
        if rng.random() < 0.5:
            return _DECIMAL.sub(b",", data)
        spots = list(_DECIMAL.finditer(data))
        if not spots:
            return data
        m = rng.choice(spots)
        return data[: m.start()] + b"," + data[m.end() :]
    if name == "thousands":
        # English grouping (12,345.6), or a whole European file (12.345,6 and 0,105): a
        # European export is consistent, so its decimals are written with commas too.
        european = rng.random() < 0.5
        sep = b"\x01" if european else b","  # European points placed after the commas

        def group(m: re.Match[bytes]) -> bytes:
            digits = m.group(1)
            if digits[:1] == b"0":
                return m.group(0)
            return f"{int(digits):,}".encode().replace(b",", sep) + (m.group(2) or b"")

        grouped = _BIG.sub(group, data)
        if not european:
            return grouped
        return _DECIMAL.sub(b",", grouped).replace(b"\x01", b".")
    if name == "semicolons":
        return data.replace(b",", b";")
    raise ValueError(name)


def mutated(data: bytes, rng: random.Random) -> tuple[bytes, tuple[str, ...], bool]:
    """One to three random mutations of ``data``, their names, and whether a locale trap
    was planted (changed the file; then the other mutations change no number)."""
    names = tuple(rng.choice(MUTATIONS) for _ in range(rng.choice([1, 1, 1, 2, 3])))
    traps = [n for n in names if n in LOCALE_TRAPS]
    if not traps:
        for name in names:
            data = mutate(data, rng, name)
        return data, names, False
    before = [n for n in _NEUTRAL_BEFORE if rng.random() < 0.3]
    after = rng.sample(_NEUTRAL_AFTER, rng.randint(0, 1))
    for name in before:
        data = mutate(data, rng, name)
    untrapped = data
    data = mutate(data, rng, traps[0])
    planted = data != untrapped
    for name in after:
        data = mutate(data, rng, name)
    return data, (*before, traps[0], *after), planted


# --------------------------------------------------------------------------- reading


def _reader(entry: Entry, path: Path) -> Callable[[], pd.DataFrame]:
    import cytosafe.io as cio

    if entry.kind == "read":
        return lambda: cio.read(path)
    if entry.kind == "samples":
        return lambda: cio.read(entry.partner, sample_map=path)
    if entry.role == "map":
        return lambda: cio.read_plate(path, entry.partner, study_id="FUZZ")
    return lambda: cio.read_plate(entry.partner, path, study_id="FUZZ")


_COMPARED = ("signal", "concentration", "dilution_factor", "expected_concentration")


def _numbers(table: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in _COMPARED if c in table.columns]
    # Not plate_id: a trap planted in a name (a batch called 'NB-5107580') renames the
    # plate without touching a number.
    keys = [c for c in ("well", "analyte") if c in table.columns]
    out = table[keys + cols].copy()
    return out.sort_values(keys, kind="stable").reset_index(drop=True) if keys else out


def same_numbers(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two tables hold the same numbers (NaN equal to NaN)."""
    x, y = _numbers(a), _numbers(b)
    if x.shape != y.shape or list(x.columns) != list(y.columns):
        return False
    for col in x.columns:
        u, v = x[col].to_numpy(), y[col].to_numpy()
        if col in _COMPARED:
            u, v = u.astype(float), v.astype(float)
            if not np.allclose(u, v, rtol=1e-9, atol=0, equal_nan=True):
                return False
        elif not (pd.Series(u).astype(str) == pd.Series(v).astype(str)).all():
            return False
    return True


@dataclass
class Result:
    outcome: str  # valid | input_error | unnamed_error (an InputError naming no file) | other
    cpu: float
    printed: str
    table: pd.DataFrame | None
    error: str = ""


def run(entry: Entry, path: Path) -> Result:
    """Read ``path`` as ``entry`` says, capturing output, warnings and CPU time."""
    from cytosafe.errors import InputError

    out = io.StringIO()
    start = time.process_time()
    table = None
    error = ""
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(out),
    ):
        warnings.simplefilter("ignore")
        try:
            table = _reader(entry, path)()
            outcome = "valid"
        except InputError as exc:
            outcome = "input_error" if exc.file else "unnamed_error"
            error = str(exc)
        except Exception as exc:
            outcome = "other"
            error = "".join(traceback.format_exception(exc))
    return Result(outcome, time.process_time() - start, out.getvalue(), table, error)


@dataclass
class Case:
    entry: str
    mutations: tuple[str, ...]
    outcome: str
    cpu: float
    printed: bool
    misread: bool
    error: str
    data: bytes


class Fuzzer:
    """Runs seeded cases over the corpus; :meth:`case` is one mutated read."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.entries = corpus(workdir)
        self._raw = {e.name: e.target.read_bytes() for e in self.entries}
        self._baseline: dict[str, pd.DataFrame | None] = {}
        # Each file read once unmutated first: the libraries a reader imports on first
        # use (allotropy takes about 2 s) are not the reader's time.
        for entry in self.entries:
            self.baseline(entry)

    def baseline(self, entry: Entry) -> pd.DataFrame | None:
        if entry.name not in self._baseline:
            self._baseline[entry.name] = run(entry, entry.target).table
        return self._baseline[entry.name]

    def case(self, seed: int, name: str | None = None) -> Case:
        """Case ``seed``: a random corpus file (or the one called ``name``), mutated."""
        rng = random.Random(seed)
        entry = rng.choice(self.entries)
        if name is not None:
            entry = next(e for e in self.entries if e.name == name)
        raw = self._raw[entry.name]
        data, names, planted = mutated(raw, rng)
        path = self.workdir / f"case{os.getpid()}{entry.target.suffix}"
        path.write_bytes(data)
        result = run(entry, path)
        misread = False
        if planted and result.outcome == "valid":
            base = self.baseline(entry)
            misread = base is not None and not same_numbers(base, result.table)
        return Case(
            entry.name,
            names,
            result.outcome,
            result.cpu,
            bool(result.printed),
            misread,
            result.error,
            data,
        )


def junk_scaling(workdir: Path) -> list[tuple[str, int, float]]:
    """Issue 14's repro of defect 1: each text export with 10,000, 40,000 and 160,000
    lone-cell lines after its data, and the CPU seconds of each read (the best of three)."""
    out = []
    for entry in corpus(workdir):
        if entry.kind != "read" or entry.target.suffix != ".csv":
            continue
        base = entry.target.read_bytes().rstrip(b"\r\n") + b"\n"
        for n in (10_000, 40_000, 160_000):
            path = workdir / f"junk{n}.csv"
            path.write_bytes(base + b"junk\n" * n)
            best = min(run(entry, path).cpu for _ in range(3))
            out.append((entry.name, n, best))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="cases (default 10000)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--keep", type=Path, help="write failing cases' files here")
    args = parser.parse_args(argv)
    counts: Counter[str] = Counter()
    per_entry: Counter[tuple[str, str]] = Counter()
    worst, worst_case = 0.0, ""
    cpu_by_entry: dict[str, list[float]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        times = junk_scaling(Path(tmp))
        print("lone-cell junk lines appended (CPU s, best of 3; linear: x4 per step):")
        for k in range(0, len(times), 3):
            (name, _, t10), (_, _, t40), (_, _, t160) = times[k : k + 3]
            print(
                f"  {name:15s} 10k {t10:.3f}  40k {t40:.3f}  160k {t160:.3f}  "
                f"ratio 160k/40k {t160 / max(t40, 1e-9):.1f}"
            )
        fuzz = Fuzzer(Path(tmp))
        for i in range(args.n):
            case = fuzz.case(args.seed * 1_000_003 + i)
            counts[case.outcome] += 1
            per_entry[(case.entry, case.outcome)] += 1
            cpu_by_entry.setdefault(case.entry, []).append(case.cpu)
            if case.cpu > worst:
                worst, worst_case = case.cpu, f"case {i} {case.entry} {case.mutations}"
            bad = []
            if case.outcome in {"other", "unnamed_error"}:
                bad.append(case.outcome)
            if case.cpu > SLOW_CPU_S:
                counts["slow"] += 1
                bad.append("slow")
            if case.printed:
                counts["printed"] += 1
                bad.append("printed")
            if case.misread:
                counts["silent_misread"] += 1
                bad.append("silent_misread")
            if bad:
                print(f"case {i} {case.entry} {case.mutations}: {', '.join(bad)}", file=sys.stderr)
                if case.error:
                    print("   " + case.error.strip().splitlines()[-1][:300], file=sys.stderr)
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    (args.keep / f"case{i}-{case.entry}").write_bytes(case.data)
    elapsed = time.perf_counter() - started
    print(f"fuzz_readers: {args.n} mutated files (seed {args.seed}), {elapsed:.0f} s")
    keys = ("valid", "input_error", "unnamed_error", "other", "slow", "printed", "silent_misread")
    for key in keys:
        print(f"  {key:15s} {counts[key]}")
    print(f"  slowest call    {worst:.2f} s CPU ({worst_case})")
    print(
        "CPU per call, median / max: "
        + ", ".join(f"{e} {np.median(t):.2f}/{max(t):.2f}" for e, t in sorted(cpu_by_entry.items()))
    )
    print("per file: " + ", ".join(f"{e}/{o}={n}" for (e, o), n in sorted(per_entry.items())))
    failed = sum(counts[k] for k in keys[2:])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
