"""Hostile input to the readers: issue 14, defects 1-4 of "Why" and item 1 of "What to build".

1. Readers run in linear time (the MSD reader copied the rest of the file for every lone
   cell: 40,000 junk lines took 3.8 s of CPU). Checked by counting the work, not by timing
   (the project has no timed assertions in unit tests; ``benchmarks/fuzz_readers.py``
   reports CPU times).
2. Locale traps (decimal commas, thousands separators) are an error naming file, row and
   field, or a documented conversion with a warning; never a silent misread.
3. Every non-finite number (``inf``, ``1e400``) where a number is required is an
   :class:`~cytosafe.errors.InputError`.
4. Every reader failure is an InputError naming the file, with nothing printed by a
   third-party library; UTF-16 and UTF-8 with a byte-order mark are read.
"""

from __future__ import annotations

import io
import re
import sys
import warnings
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from tests.real_exports import real

import cytosafe.io as cio
from cytosafe.errors import DataWarning, InputError
from cytosafe.io import msd
from cytosafe.io._values import parse_vendor_value

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cra-study"
FIXTURES = Path(__file__).parent / "fixtures"
PLATE_MAP = EXAMPLES / "elisa" / "plate_map.csv"
MATRIX = EXAMPLES / "elisa" / "reader_matrix.csv"
MSD_PLATE = EXAMPLES / "msd" / "plate_MSD-01.csv"
MSD_SAMPLES = EXAMPLES / "msd" / "samples.csv"
XPONENT_PLATE = EXAMPLES / "luminex" / "plate_LX-01.csv"
TIDY = EXAMPLES / "tidy" / "elisa.csv"


def _quiet_read(*args, **kwargs) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return cio.read(*args, **kwargs)


def _quiet_plate(plate_map, matrix) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return cio.read_plate(plate_map, matrix, study_id="S")


def _same_numbers(a: pd.DataFrame, b: pd.DataFrame) -> None:
    columns = ["well", "analyte", "signal", "standard_concentration", "dilution_factor"]
    pd.testing.assert_frame_equal(
        a[columns].reset_index(drop=True), b[columns].reset_index(drop=True)
    )


# --------------------------------------------------------------------------- 1. linear time


class _CountingList(list):
    """A list that counts the elements its slices copy."""

    copied = 0

    def __getitem__(self, key):
        if isinstance(key, slice):
            _CountingList.copied += len(range(*key.indices(len(self))))
        return super().__getitem__(key)


def test_msd_sections_copy_nothing_per_lone_cell(tmp_path):
    """Issue 14, defect 1: 4,000 lone cells after the data rows made the MSD reader copy
    the rest of the record list at each one (8 million element copies, quadratic); the
    look-ahead now costs nothing per line."""
    base = MSD_PLATE.read_bytes().rstrip(b"\r\n") + b"\n"
    path = tmp_path / "junk.csv"
    path.write_bytes(base + b"junk\n" * 4000)
    records, _ = msd._load(path)
    _CountingList.copied = 0
    msd._sections(_CountingList(records), str(path))
    assert _CountingList.copied <= len(records)


def _python_calls(read) -> int:
    """How many Python function calls (and generator resumptions) ``read`` makes."""
    count = 0

    def profile(frame, event, arg):
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(profile)
    try:
        read()
    except InputError:
        pass
    finally:
        sys.setprofile(None)
    return count


@pytest.mark.parametrize(
    ("name", "read"),
    [
        ("msd", lambda p: cio.read(p)),
        ("xponent", lambda p: cio.read(p)),
        ("tidy", lambda p: cio.read(p)),
        ("plate map", lambda p: cio.read_plate(p, MATRIX, study_id="S")),
        ("reader matrix", lambda p: cio.read_plate(PLATE_MAP, p, study_id="S")),
        ("sample map", lambda p: cio.read(MSD_PLATE, sample_map=p)),
    ],
)
def test_work_grows_linearly_with_junk_lines(tmp_path, name, read):
    """Four times the junk lines, at most ~four times the work (a bound of 6 leaves room
    for fixed costs; a quadratic reader does 16 times the work)."""
    source = {
        "msd": MSD_PLATE,
        "xponent": XPONENT_PLATE,
        "tidy": TIDY,
        "plate map": PLATE_MAP,
        "reader matrix": MATRIX,
        "sample map": MSD_SAMPLES,
    }[name]
    base = source.read_bytes().rstrip(b"\r\n") + b"\n"
    calls = []
    for n in (1000, 4000):
        path = tmp_path / f"junk{n}{source.suffix}"
        path.write_bytes(base + b"junk\n" * n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            calls.append(_python_calls(lambda path=path: read(path)))
    assert calls[1] < 6 * calls[0], calls


# --------------------------------------------------------------------------- 2. locale traps


def test_decimal_comma_plate_map_is_refused_naming_file_row_field(tmp_path):
    """Issue 14, defect 2: '.' changed to ',' in the example plate map gave standards of
    37/5 and 18/75 and exit 0; each comma split a cell and shifted the row."""
    path = tmp_path / "plate_map.csv"
    path.write_text(PLATE_MAP.read_text().replace(".", ","))
    with pytest.raises(InputError, match="decimal comma") as info:
        cio.read_plate(path, MATRIX, study_id="S")
    assert info.value.file == str(path) and info.value.row is not None and info.value.field


def test_one_decimal_comma_in_a_matrix_row_with_blank_wells_is_refused(tmp_path):
    """A row ending in blank wells absorbs the split cell without a cell beyond column
    12: the row's width betrays it."""
    text = MATRIX.read_text().splitlines()
    row_c = next(i for i, line in enumerate(text) if line.startswith("C,"))
    assert text[row_c].endswith(",,")
    text[row_c] = re.sub(r"(\d)\.(\d)", r"\1,\2", text[row_c], count=1)
    path = tmp_path / "matrix.csv"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(InputError, match="decimal comma") as info:
        cio.read_plate(PLATE_MAP, path, study_id="S")
    assert info.value.row == row_c + 1


def test_european_csv_plate_is_read_with_a_warning(tmp_path):
    """Semicolons and decimal commas throughout (a European Excel's CSV): the documented
    conversion, with a DataWarning, and the same numbers as the English file."""
    plate_map, matrix = tmp_path / "map.csv", tmp_path / "matrix.csv"
    for src, dst in ((PLATE_MAP, plate_map), (MATRIX, matrix)):
        dst.write_text(re.sub(r"(\d)\.(\d)", r"\1,\2", src.read_text().replace(",", ";")))
    with pytest.warns(DataWarning, match="decimal comma"):
        got = cio.read_plate(plate_map, matrix, study_id="S")
    _same_numbers(_quiet_plate(PLATE_MAP, MATRIX), got)


def test_semicolon_file_mixing_decimal_comma_and_point_is_refused(tmp_path):
    matrix = tmp_path / "matrix.csv"
    text = MATRIX.read_text().replace(",", ";")
    matrix.write_text(text.replace("2.304", "2,304", 1))
    with pytest.raises(InputError, match="both with a decimal comma") as info:
        cio.read_plate(PLATE_MAP, matrix, study_id="S")
    assert info.value.file == str(matrix)


def test_decimal_comma_in_tidy_row_with_empty_last_cell_is_refused(tmp_path):
    """The tidy example's last column is empty on every row: a split cell shifts the
    row into it without a non-empty cell beyond the header."""
    lines = TIDY.read_text().splitlines()
    assert lines[1].endswith(",")
    lines[1] = lines[1].replace("2.304", "2,304")
    path = tmp_path / "tidy.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="more cells than the header") as info:
        cio.read(path)
    assert (info.value.file, info.value.row) == (str(path), 2)


def test_decimal_comma_in_semicolon_tidy_file_names_the_comma(tmp_path):
    path = tmp_path / "tidy.csv"
    path.write_text(re.sub(r"(\d)\.(\d)", r"\1,\2", TIDY.read_text().replace(",", ";")))
    with pytest.raises(InputError, match="decimal comma") as info:
        cio.read(path)
    assert info.value.file == str(path) and info.value.row == 2 and info.value.field


def test_decimal_comma_in_xponent_export_is_refused(tmp_path):
    """xPONENT writes every line equally wide; an unquoted '1,5' widens its line."""
    lines = XPONENT_PLATE.read_text().splitlines()
    median = next(i for i, line in enumerate(lines) if line.startswith("DataType:,Median"))
    row = median + 2
    lines[row] = re.sub(r"(\d)\.(\d)", r"\1,\2", lines[row], count=1)
    path = tmp_path / "lx.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="decimal comma") as info:
        cio.read(path)
    assert (info.value.file, info.value.row) == (str(path), row + 1)


def test_quoted_decimal_comma_in_xponent_is_refused_not_read_as_missing(tmp_path):
    """A quoted '1,5' keeps the line's width; it was read as "no value" (NaN)."""
    lines = XPONENT_PLATE.read_text().splitlines()
    median = next(i for i, line in enumerate(lines) if line.startswith("DataType:,Median"))
    row = median + 2
    cells = lines[row].split(",")
    k = next(i for i, c in enumerate(cells) if i > 1 and re.fullmatch(r"\d+\.\d+", c))
    cells[k] = '"' + cells[k].replace(".", ",") + '"'
    lines[row] = ",".join(cells)
    path = tmp_path / "lx.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="decimal comma") as info:
        cio.read(path)
    assert info.value.file == str(path)


def test_decimal_comma_in_msd_export_is_refused(tmp_path):
    lines = MSD_PLATE.read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if "Sample" in line and "Well" in line)
    lines[header + 1] = re.sub(r"(\d)\.(\d)", r"\1,\2", lines[header + 1])
    path = tmp_path / "msd.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as info:
        cio.read(path)
    assert (info.value.file, info.value.row) == (str(path), header + 2)


@pytest.mark.parametrize("text", ["0,105", "1,234", "1.234,5", "1,234.5", "< 0,105", "*1,55"])
def test_vendor_value_refuses_locale_numbers(text):
    """'1,234' is 1.234 in Germany and 1234 in the US: refused, never guessed (the
    thousands-separator stripping of '1,234.5' is gone with it)."""
    with pytest.raises(InputError, match="decimal comma or a thousands separator"):
        parse_vendor_value(text)


def test_sample_map_decimal_comma_names_the_map(tmp_path):
    path = tmp_path / "samples.csv"
    text = MSD_SAMPLES.read_text().replace(",", ";")
    path.write_text(re.sub(r"(\d)\.(\d)", r"\1,\2", text))
    with pytest.raises(InputError, match="decimal comma") as info:
        cio.read(MSD_PLATE, sample_map=path)
    assert (info.value.file, info.value.row) == (str(path), 2)
    assert info.value.field == "treatment_concentration"


# --------------------------------------------------------------------------- 3. non-finite


@pytest.mark.parametrize("value", ["inf", "1e400", "-inf", "Infinity"])
def test_infinite_dilution_factor_in_sample_map_is_refused(tmp_path, value):
    """Issue 14, defect 3: 'inf' or '1e400' as a dilution factor gave concentration=inf
    and exit 0."""
    lines = MSD_SAMPLES.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + "," + value
    path = tmp_path / "samples.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="not a finite number") as info:
        cio.read(MSD_PLATE, sample_map=path)
    assert (info.value.file, info.value.row, info.value.field) == (
        str(path),
        2,
        "dilution_factor",
    )


@pytest.mark.parametrize("column", ["standard_concentration", "dilution_factor", "incubation_h"])
def test_infinite_number_in_tidy_table_is_refused(tmp_path, column):
    table = pd.read_csv(TIDY, dtype=str, keep_default_na=False)
    table.loc[0, column] = "inf"
    path = tmp_path / "tidy.csv"
    table.to_csv(path, index=False)
    with pytest.raises(InputError, match="not a finite number") as info:
        cio.read(path)
    assert (info.value.row, info.value.field) == (2, column)


def test_overflowing_number_in_vendor_cell_is_refused():
    with pytest.raises(InputError, match="not a finite number"):
        parse_vendor_value("1e400")


def test_infinite_dilution_in_measurement_table_is_refused():
    from cytosafe.schema.measurements import validate_measurements

    table = _quiet_read(TIDY)
    table["dilution_factor"] = table["dilution_factor"].astype(object)
    table.loc[3, "dilution_factor"] = float("inf")
    with pytest.raises(InputError, match="not a finite number"):
        validate_measurements(table)


# --------------------------------------------------------------------------- 4. failures


def _workbook_with_broken_sheet(tmp_path: Path) -> Path:
    """The tidy example as a workbook whose sheet XML breaks off after its first rows."""
    good = tmp_path / "good.xlsx"
    cio.write_tidy(_quiet_read(TIDY), good)
    broken = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(broken, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.startswith("xl/worksheets/"):
                data = data[: len(data) // 3]
            dst.writestr(info, data)
    return broken


def test_corrupt_xlsx_is_an_input_error_naming_the_file(tmp_path, capfd):
    """Issue 14, defect 4: a damaged .xlsx raised xml.etree's ParseError with a 127-line
    traceback (a read-only sheet is parsed while its rows are read)."""
    path = _workbook_with_broken_sheet(tmp_path)
    with pytest.raises(InputError, match="cannot be") as info:
        cio.read(path)
    assert info.value.file == str(path)
    assert capfd.readouterr() == ("", "")


def test_truncated_xls_prints_nothing(tmp_path, capfd):
    """xlrd printed 'WARNING *** file size ... File is truncated' to stdout."""
    source = real("pnLINCO20070302A.xls").read_bytes()
    path = tmp_path / "plate.xls"
    path.write_bytes(source[: len(source) // 2])
    with pytest.raises(InputError, match=r"cannot be read as an \.xls workbook") as info:
        cio.read(path)
    assert info.value.file == str(path)
    assert capfd.readouterr() == ("", "")


def test_binary_noise_is_an_input_error_without_nul_characters(tmp_path):
    path = tmp_path / "noise.csv"
    path.write_bytes(b"Sample,Well\x00\x00\x01,Signal\n" + bytes(range(256)) * 4)
    with pytest.raises(InputError) as info:
        cio.read(path)
    assert "\x00" not in str(info.value) and info.value.file == str(path)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig"])
@pytest.mark.parametrize(
    "source",
    [MSD_PLATE, XPONENT_PLATE, TIDY, "tidy-data-4.csv", "pone.0187901.s001.csv"],
    ids=["msd", "xponent", "tidy", "real-msd", "real-xponent"],
)
def test_utf16_and_bom_exports_are_read(tmp_path, encoding, source):
    """UTF-16 (with its mark, as Excel's 'Unicode text' writes it, or without) and UTF-8
    with a byte-order mark: the same table as the UTF-8 file."""
    source = source if isinstance(source, Path) else real(source)
    text = source.read_bytes().decode("utf-8-sig", errors="replace")
    plain, path = tmp_path / f"plain{source.suffix}", tmp_path / f"enc{source.suffix}"
    plain.write_text(text, encoding="utf-8")
    path.write_bytes(text.encode(encoding))
    _same_numbers(_quiet_read(plain), _quiet_read(path))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_utf16_plate_map_matrix_and_sample_map_are_read(tmp_path, encoding):
    files = {}
    for name, src in (("map", PLATE_MAP), ("matrix", MATRIX), ("samples", MSD_SAMPLES)):
        files[name] = tmp_path / f"{name}.csv"
        files[name].write_bytes(src.read_text().encode(encoding))
    _same_numbers(_quiet_plate(PLATE_MAP, MATRIX), _quiet_plate(files["map"], files["matrix"]))
    _same_numbers(
        _quiet_read(MSD_PLATE, sample_map=MSD_SAMPLES),
        _quiet_read(MSD_PLATE, sample_map=files["samples"]),
    )


def test_truncated_utf16_is_an_input_error_or_a_table(tmp_path):
    data = TIDY.read_text().encode("utf-16")
    path = tmp_path / "tidy.csv"
    path.write_bytes(data[: len(data) // 2 + 1])
    try:
        _quiet_read(path)
    except InputError as exc:
        assert exc.file == str(path)


def test_damaged_sample_map_workbook_is_an_input_error(tmp_path):
    path = tmp_path / "samples.xlsx"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    with pytest.raises(InputError) as info:
        cio.read(MSD_PLATE, sample_map=path)
    assert info.value.file == str(path)


def test_xponent_reader_keeps_its_own_message_for_a_foreign_binary(tmp_path):
    path = tmp_path / "plate.csv"
    path.write_bytes(io.BytesIO(b"\x00\x01binary" * 10).getvalue())
    with pytest.raises(InputError, match="not a Luminex xPONENT export"):
        cio.read(path, format="xponent")


def test_gen5_line_that_allotropy_takes_for_a_pattern_is_an_input_error(tmp_path):
    """Found by the fuzz: a line 'a(b' in a Gen5 export made allotropy's parser raise
    re.error (not a ValueError) from a cell it used as a regular expression."""
    gen5 = FIXTURES / "platemap" / "gen5_il6_od450.txt"
    lines = gen5.read_text().splitlines(keepends=True)
    path = tmp_path / "gen5.txt"
    path.write_text("".join([*lines[:18], "a(b\n", *lines[18:]]))
    with pytest.raises(InputError, match="could not read this Gen5 export") as info:
        cio.read_plate(FIXTURES / "platemap" / "il6_plate_map_plater.csv", path, study_id="S")
    assert info.value.file == str(path)


def test_sample_map_whose_header_lost_a_column_is_an_input_error(tmp_path):
    """Found by the fuzz: with every row one cell wider than the header, pandas took the
    first column for row labels and the join failed with a TypeError."""
    lines = MSD_SAMPLES.read_text().splitlines()
    lines[0] = lines[0].rsplit(",", 1)[0]
    path = tmp_path / "samples.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="the header 11") as info:
        cio.read(MSD_PLATE, sample_map=path)
    assert (info.value.file, info.value.row) == (str(path), 2)


def test_gen5_header_of_junk_is_refused_before_allotropy(tmp_path):
    """Found by the fuzz: 1,700 lines inserted into a Gen5 header took allotropy over 2 s
    of CPU (its custom metadata grows with the square of the lines it does not know)."""
    gen5 = FIXTURES / "platemap" / "gen5_il6_od450.txt"
    lines = gen5.read_text().splitlines(keepends=True)
    path = tmp_path / "gen5.txt"
    path.write_text("".join([*lines[:12], *["junk\n"] * 300, *lines[12:]]))
    with pytest.raises(InputError, match="header runs past line 200") as info:
        cio.read_plate(FIXTURES / "platemap" / "il6_plate_map_plater.csv", path, study_id="S")
    assert (info.value.file, info.value.row) == (str(path), 201)
