"""A seeded fuzz of every reader (issue 14, item 8 of "What to build").

The engine is ``benchmarks/fuzz_readers.py`` (its notes list the corpus and the
mutations: truncation, byte flips, deleted and duplicated lines, byte-order marks, CRLF,
UTF-16, junk, decimal commas, thousands separators, semicolons); this test runs a few
hundred of its cases, a fixed number per corpus file, and asserts for each:

* the read gives a valid table or an :class:`~cytosafe.errors.InputError` (or a subclass)
  naming a file, and nothing else;
* nothing is printed to stdout or stderr (xlrd printed its complaints);
* a planted locale trap (a decimal comma or a thousands separator) that reads as a valid
  table gives the numbers of the unmutated file (otherwise it is a silent misread).

CPU time is not asserted here (no timed assertions in unit tests): the readers' linear
work is checked by counting in ``tests/test_io_hostile_input.py``, and the benchmark
(``python benchmarks/fuzz_readers.py``, 10,000 cases) reports calls over 2 s of CPU.
The real exports are read in place from ``../shared/data/real-exports/``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from tests.real_exports import REAL

_ENGINE = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_readers.py"
_spec = importlib.util.spec_from_file_location("fuzz_readers", _ENGINE)
fuzz_readers = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("fuzz_readers", fuzz_readers)
_spec.loader.exec_module(fuzz_readers)

#: Cases per corpus file (17 files: about 310 reads, about 30 s).
CASES_PER_FILE = 18

ENTRIES = [
    "msd",
    "msd-two-plates",
    "xponent",
    "xponent-small",
    "bioplex-xml",
    "tidy-csv",
    "tidy-xlsx",
    "plate-map",
    "reader-matrix",
    "plater-map",
    "gen5-asm",
    "sample-map",
    "real-msd",
    "real-xponent",
    "real-flexmap",
    "real-bioplex-1",
    "real-bioplex-2",
]


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory):
    if not REAL.is_dir():
        pytest.fail(f"the real exports ({REAL}) must be beside the repository", pytrace=False)
    fuzz = fuzz_readers.Fuzzer(tmp_path_factory.mktemp("fuzz"))
    assert sorted(e.name for e in fuzz.entries) == sorted(ENTRIES)
    return fuzz


def test_every_corpus_file_reads_unmutated(fuzzer):
    """The fuzz starts from files that read: a failure below is the mutation's doing."""
    for entry in fuzzer.entries:
        assert fuzzer.baseline(entry) is not None, entry.name


@pytest.mark.parametrize("name", ENTRIES)
def test_mutated_exports_give_a_table_or_an_input_error(fuzzer, name):
    failures = []
    for k in range(CASES_PER_FILE):
        case = fuzzer.case(14_000 + 97 * k, name)
        problems = []
        if case.outcome not in {"valid", "input_error"}:
            problems.append(f"{case.outcome}: {case.error.strip()[-400:]}")
        if case.printed:
            problems.append("printed to stdout/stderr")
        if case.misread:
            problems.append("silent misread of a planted locale trap")
        if problems:
            failures.append(f"seed {14_000 + 97 * k} {case.mutations}: {'; '.join(problems)}")
    assert not failures, "\n".join(failures)


def test_locale_traps_are_planted(fuzzer):
    """The fuzz does plant decimal commas and thousands separators (a test that cannot
    fail is a defect): among the cases above, some change the file with a trap."""
    rng = fuzz_readers.random.Random(14)
    raw = fuzz_readers.EXAMPLES.joinpath("tidy", "elisa.csv").read_bytes()
    planted = [fuzz_readers.mutate(raw, rng, "decimal_comma") != raw for _ in range(5)]
    assert all(planted)
    assert fuzz_readers.mutate(b"a,12345.5,b\n", rng, "thousands") in {
        b"a,12,345.5,b\n",
        b"a,12.345,5,b\n",
    }
