"""Plate-reader ELISA exports through ASM (``cytosafe.io.asm``): layouts, options, plate maps.

The SoftMax Pro and Gen5 files are written here, by the generators below, in the layouts of
the public test exports of Benchling's ``allotropy`` (MIT, github.com/Benchling-Open-Source/
allotropy): SoftMax Pro "plate format" endpoint text (``tests/parsers/moldev_softmax_pro/
testdata/MD_SMP_absorbance_endpoint_example01.txt``: UTF-16 with a byte-order mark, CRLF, a
``##BLOCKS=`` line, a tab-separated ``Plate:`` header, a temperature column, one 12-column
grid per wavelength side by side, ``~End``) and Gen5 endpoint text
(``tests/parsers/agilent_gen5/testdata/absorbance/endpoint_wavelength_measurement_labels.txt``:
a preamble, ``Procedure Details`` naming the read and its wavelengths, a ``Results`` grid
with one line per wavelength per row, labelled ``<read>:<wavelength>``). Their numbers are
invented: a 96-well IL-6 ELISA whose ODs follow a 4PL of known parameters.

Tests that convert instrument files need ``allotropy`` (>= 0.1.114), a core dependency:
without it they fail (``needs_allotropy``), never skip; ASM JSON needs nothing beyond
CytoSafe.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytosafe.curves.calibration import CalibrationSettings
from cytosafe.errors import DataWarning, InputError
from cytosafe.io import asm
from cytosafe.io.platemap import write_plate_map
from cytosafe.io.reader import Probe
from cytosafe.io.registry import detect_format, read
from cytosafe.quantification import quantify
from cytosafe.schema.measurements import MEASUREMENT_COLUMNS, validate_measurements
from cytosafe.schema.wells import well_name

COMPARED = [c.name for c in MEASUREMENT_COLUMNS if c.name not in ("source_file", "source_row")]

# The 4PL every OD follows (drc LL.4: f(x) = d + (a - d) / (1 + (x/c)^b)); a is the OD of
# the zero calibrator, d the plateau.
A, B, C, D = 0.052, 1.35, 180.0, 3.1
LEVELS = [1000.0 / 2**k for k in range(7)]  # pg/mL, A-G in columns 1-2 (before rounding)
SAMPLE_CONCS = [4.0, 9.5, 21.0, 48.0, 95.0, 210.0, 420.0, 760.0]  # pg/mL in the well


def four_pl(x: float) -> float:
    return D + (A - D) / (1.0 + (x / C) ** B)


def four_pl_inverse(y: float) -> float:
    return C * ((A - D) / (y - D) - 1.0) ** (1.0 / B)


def printed(od: float) -> float:
    """An OD as plate-reader software prints it: 4 decimals (Gen5's default format)."""
    return float(f"{od:.4f}")


def needs_allotropy():
    """allotropy is a core dependency (pyproject.toml, requirements.lock): a missing or
    unusable one fails these tests with the reader's own message, it never skips them."""
    asm._allotropy("<test>")


# --------------------------------------------------------------------------- the plate


def elisa_design() -> pd.DataFrame:
    """What each well holds, and ``x``, the concentration in the well the OD is made
    from: standards 1:2 from 1000 pg/mL in duplicate (A-G, 1-2), blanks (H1-H2),
    supernatants of 4 donors x 2 treatments in duplicate (columns 3-6, half of them
    diluted 1:4), a kit control (H11); the other wells unused."""
    rows = []
    for r in range(8):
        for c in range(2):
            well = well_name(r, c)
            if r < 7:
                rows.append(
                    dict(
                        well=well,
                        sample_type="standard",
                        sample_id=f"STD{r + 1}",
                        replicate=c + 1,
                        x=LEVELS[r],
                    )
                )
            else:
                rows.append(
                    dict(well=well, sample_type="blank", sample_id="BLK", replicate=c + 1, x=0.0)
                )
        for t, (treatment, role) in enumerate([("medium", "negative_control"), ("TA-1", "test")]):
            for c in range(2):
                rows.append(
                    dict(
                        well=well_name(r, 2 + 2 * t + c),
                        sample_type="sample",
                        donor_id=f"D{r // 2 + 1}",
                        treatment=treatment,
                        treatment_role=role,
                        replicate=c + 1,
                        dilution_factor=4.0 if t == 1 else 1.0,
                        sample_id=f"D{r // 2 + 1}-{treatment}-{r % 2}",
                        x=SAMPLE_CONCS[r] if t == 0 else SAMPLE_CONCS[7 - r],
                    )
                )
    rows.append(
        dict(
            well="H11", sample_type="control", standard_concentration=250.0, sample_id="QC", x=250.0
        )
    )
    return pd.DataFrame(rows)


def plate_ods() -> tuple[dict[str, float], dict[str, float]]:
    """OD450 and OD570 of all 96 wells, as printed with 4 decimals: the 4PL plus the
    plate's background (the same in the two wells of a duplicate) where the design puts
    something, a low OD elsewhere (a plate reader reads every well)."""
    design = elisa_design().set_index("well")
    od450, od570 = {}, {}
    for r in range(8):
        for c in range(12):
            well = well_name(r, c)
            od570[well] = printed(0.038 + 0.0011 * r + 0.0007 * (c // 2))
            target = four_pl(design.loc[well, "x"]) if well in design.index else 0.011 * (c + 1)
            od450[well] = printed(target + od570[well])
    return od450, od570


def expected_table(plate_id: str = "IL6-P1", study_id: str = "CRA-EX-001") -> pd.DataFrame:
    """The table read_asm_plate should return with reference_wavelength=570. The standards'
    nominal concentrations are where the 4PL takes their (printed) signals, so that the
    series is noise-free (to the 10 digits a plate map holds)."""
    od450, od570 = plate_ods()
    table = elisa_design().drop(columns="x")
    table["signal"] = [od450[w] - od570[w] for w in table["well"]]
    is_std = table["sample_type"] == "standard"
    table.loc[is_std, "standard_concentration"] = [
        float(f"{four_pl_inverse(y):.10g}") for y in table.loc[is_std, "signal"]
    ]
    table.insert(0, "study_id", study_id)
    table.insert(1, "plate_id", plate_id)
    table.insert(3, "analyte", "IL-6")
    return validate_measurements(table)


# --------------------------------------------------------------------------- writers of the vendor layouts


def softmax_pro_text(
    plates: dict[str, dict[float, dict[str, float]]], *, temperature: float = 22.4
) -> str:
    """A SoftMax Pro "plate format" endpoint absorbance export, one block per plate, the
    wavelengths' 12-column grids side by side (96 wells)."""
    lines = [f"##BLOCKS= {len(plates)}"]
    for name, reads in plates.items():
        wls = list(reads)
        lines.append(
            "\t".join(
                [
                    *("Plate:", name, "1.3", "PlateFormat", "Endpoint", "Absorbance", "Raw"),
                    *("FALSE", "1", "", "", "", "", ""),  # pre-read, kinetic points, unused
                    *(str(len(wls)), " ".join(f"{w:g}" for w in wls) + " "),
                    *("1", "12", "96", "1", "8", "", ""),  # columns 1-12, 96 wells, rows 1-8
                ]
            )
        )
        numbers = "\t".join(str(k) for k in range(1, 13))
        lines.append("\t".join(["", "Temperature(\u00a1C)"] + [numbers, ""] * len(wls)))
        for r in range(8):
            cells = ["", f"{temperature:g}" if r == 0 else ""]
            for w in wls:
                cells += [repr(float(reads[w][well_name(r, c)])) for c in range(12)] + [""]
            lines.append("\t".join(cells))
        lines += ["", "~End"]
    return "\r\n".join(lines) + "\r\n"


def write_softmax_pro(path: Path, plates, *, encoding: str = "utf-16") -> Path:
    """SoftMax Pro saves text exports as UTF-16 (little-endian, with a byte-order mark)."""
    path.write_bytes(softmax_pro_text(plates).encode(encoding))
    return path


def gen5_text(
    reads: dict[float, dict[str, object]], *, read_name: str = "IL-6 ELISA", plate: str = "Plate 1"
) -> str:
    """A Gen5 endpoint absorbance export of one named read at one or more wavelengths."""
    wls = list(reads)
    lines = ["", "", "Software Version\t3.12.08", "", "", ""]
    lines += ["Experiment File Path:\t", "Protocol File Path:\t", "", "", ""]
    lines += [f"Plate Number\t{plate}", "Date\t3/14/2025", "Time\t10:12:31 AM"]
    lines += ["Reader Type:\tSynergy H1", "Reader Serial Number:\t21031415", "Reading Type\tReader"]
    lines += ["", "Procedure Details", "", "Plate Type\t96 WELL PLATE (Use plate lid)"]
    lines += ["Eject plate on completion\t", f"Read\t{read_name}", "\tAbsorbance Endpoint"]
    lines += ["\tFull Plate", "\tWavelengths:  " + ", ".join(f"{w:g}" for w in wls)]
    lines += ["\tRead Speed: Normal,  Delay: 100 msec,  Measurements/Data Point: 8", ""]
    lines += ["Results", "\t" + "\t".join(str(k) for k in range(1, 13))]
    for r in range(8):
        for k, w in enumerate(wls):
            cells = [chr(ord("A") + r) if k == 0 else ""]
            for c in range(12):
                v = reads[w][well_name(r, c)]
                cells.append(repr(float(v)) if isinstance(v, float) else str(v))
            lines.append("\t".join([*cells, f"{read_name}:{w:g}"]))
    lines.append("")
    return "\r\n".join(lines) + "\r\n"


def write_gen5(path: Path, reads, **kwargs) -> Path:
    path.write_bytes(gen5_text(reads, **kwargs).encode("utf-8"))
    return path


def write_long_map(table: pd.DataFrame, path: Path) -> Path:
    """A long plate map of the table that lists the unused wells as ``empty``."""
    write_plate_map(table, path, layout="long")
    lines = pd.read_csv(path, dtype=str, keep_default_na=False)
    used = set(lines["well"])
    unused = [well_name(r, c) for r in range(8) for c in range(12)]
    unused = [w for w in unused if w not in used]
    empty = pd.DataFrame({"well": unused, "sample_type": "empty"})
    if "plate_id" in lines.columns:
        empty["plate_id"] = lines["plate_id"].iloc[0]
    pd.concat([lines, empty], ignore_index=True).fillna("").to_csv(path, index=False)
    return path


@pytest.fixture
def plate_map(tmp_path: Path) -> Path:
    """The ELISA plate map as a plater grid, written by CytoSafe's own writer."""
    return write_plate_map(expected_table(), tmp_path / "IL6-P1_map.csv", layout="grid")


def raw_reads(plate_id: str = "IL6-P1") -> pd.DataFrame:
    """The plate's raw reads as a measurement table: OD450 and OD570 in all 96 wells."""
    od450, od570 = plate_ods()
    rows = [
        dict(well=w, analyte=name, signal=ods[w])
        for name, ods in (("OD450", od450), ("OD570", od570))
        for w in ods
    ]
    return validate_measurements(
        pd.DataFrame(rows).assign(study_id="S", plate_id=plate_id, sample_type="sample")
    )


@pytest.fixture(params=["softmax_pro", "gen5", "asm_json"])
def export(request, tmp_path: Path) -> Path:
    """The ELISA plate read at 450 and 570 nm, as SoftMax Pro or Gen5 write it (through
    allotropy), or as ASM JSON."""
    if request.param == "asm_json":
        return asm.write(raw_reads(), tmp_path / "il6_plate.json")
    needs_allotropy()
    od450, od570 = plate_ods()
    if request.param == "softmax_pro":
        return write_softmax_pro(tmp_path / "il6_softmax.txt", {"IL6-P1": {450: od450, 570: od570}})
    return write_gen5(tmp_path / "il6_gen5.txt", {450: od450, 570: od570}, plate="IL6-P1")


def sort(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(["plate_id", "analyte", "well"], kind="stable").reset_index(drop=True)


def assert_same(back: pd.DataFrame, table: pd.DataFrame) -> None:
    """Same values and dtypes in the schema columns; a column empty on both sides may
    differ in dtype (float NaN when added, object None when given)."""
    back, table = sort(back)[COMPARED], sort(table)[COMPARED]
    empty = [c for c in COMPARED if back[c].isna().all() and table[c].isna().all()]
    pd.testing.assert_frame_equal(
        back.drop(columns=empty), table.drop(columns=empty), check_exact=True
    )


# --------------------------------------------------------------------------- recognising


def test_sniff_knows_the_three_layouts_and_nothing_else(tmp_path):
    od450, _ = plate_ods()
    smp = write_softmax_pro(tmp_path / "a.txt", {"P1": {450: od450}})
    gen5 = write_gen5(tmp_path / "b.txt", {450: od450})
    json_file = asm.write(expected_table(), tmp_path / "c.json")
    tidy = tmp_path / "d.csv"
    tidy.write_text("study_id,plate_id,well,analyte,sample_type,signal\nS,P,A01,IL-6,sample,1\n")
    matrix = tmp_path / "e.csv"
    matrix.write_text("IL-6,1,2\nA,0.1,0.2\n")
    fhir = tmp_path / "f.json"
    fhir.write_text('{"resourceType": "Bundle", "entry": []}')
    assert [asm.sniff(Probe.of(p)) for p in (smp, gen5, json_file)] == [True, True, True]
    assert [asm.sniff(Probe.of(p)) for p in (tidy, matrix, fhir)] == [False, False, False]
    assert asm.detect_vendor(smp) == "softmax_pro"
    assert asm.detect_vendor(gen5) == "gen5"
    assert asm.detect_vendor(json_file) == "asm"
    assert [asm.export_kind(p) for p in (smp, gen5, json_file, tidy)] == [
        "softmax_pro",
        "gen5",
        "asm",
        None,
    ]
    assert asm.export_kind(tmp_path / "missing.txt") is None


def test_sniff_reads_the_registrys_probe_and_the_registry_picks_asm(tmp_path):
    """The registry's probe holds the first bytes: SoftMax Pro's UTF-16 is decoded from its
    byte-order mark. No other reader claims these files."""
    od450, _ = plate_ods()
    files = [
        write_softmax_pro(tmp_path / "a.txt", {"P1": {450: od450}}),
        write_gen5(tmp_path / "b.txt", {450: od450}),
        asm.write(expected_table(), tmp_path / "c.json"),
    ]
    assert all(asm.sniff(Probe.of(f)) for f in files)
    assert [detect_format(f) for f in files] == ["asm", "asm", "asm"]


def test_an_unrecognised_file_names_itself(tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("hello\n")
    with pytest.raises(InputError) as err:
        asm.parse(other)
    assert err.value.file == str(other)
    assert "SoftMax Pro" in err.value.expected


# --------------------------------------------------------------------------- SoftMax Pro and Gen5


def test_softmax_pro_ods_read_back_as_written_one_analyte_per_wavelength(tmp_path):
    needs_allotropy()
    od450, od570 = plate_ods()
    other = {w: v * 0.5 for w, v in od450.items()}
    path = write_softmax_pro(
        tmp_path / "two_plates.txt",
        {"Plate01": {450: od450, 570: od570}, "Plate02": {450: other, 570: od570}},
    )
    table = asm.parse(path, study_id="CRA-1")
    assert sorted(table["plate_id"].unique()) == ["Plate01", "Plate02"]
    assert sorted(table["analyte"].unique()) == ["OD450", "OD570"]
    assert len(table) == 2 * 2 * 96
    got = table.set_index(["plate_id", "analyte", "well"])["signal"]
    for well in od450:
        assert got[("Plate01", "OD450", well)] == od450[well]
        assert got[("Plate01", "OD570", well)] == od570[well]
        assert got[("Plate02", "OD450", well)] == other[well]
    assert set(table["well"]) == {well_name(r, c) for r in range(8) for c in range(12)}
    assert (table["study_id"] == "CRA-1").all()
    assert (table["sample_type"] == "sample").all()  # an export knows no roles
    assert table["source_file"].eq(str(path)).all()
    validate_measurements(table)


def test_softmax_pro_saved_as_utf8_reads_the_same(tmp_path):
    needs_allotropy()
    od450, _ = plate_ods()
    a = asm.parse(write_softmax_pro(tmp_path / "u16.txt", {"P": {450: od450}}))
    b = asm.parse(write_softmax_pro(tmp_path / "u8.txt", {"P": {450: od450}}, encoding="utf-8"))
    pd.testing.assert_series_equal(a["signal"], b["signal"])


def test_gen5_ods_read_back_as_written(tmp_path):
    needs_allotropy()
    od450, od570 = plate_ods()
    path = write_gen5(tmp_path / "il6_gen5.txt", {450: od450, 570: od570})
    table = asm.parse(path)
    assert list(table["plate_id"].unique()) == ["Plate 1"]
    got = table.set_index(["analyte", "well"])["signal"]
    assert all(got[("OD450", w)] == v for w, v in od450.items())
    assert all(got[("OD570", w)] == v for w, v in od570.items())
    assert table["well"].str.fullmatch(r"[A-H](0[1-9]|1[0-2])").all()  # A1 -> A01
    assert set(table["wavelength_nm"]) == {450.0, 570.0}


def test_reference_subtraction_is_450_minus_570_in_every_well(export):
    od450, od570 = plate_ods()
    table = asm.parse(export, wavelength=450, reference_wavelength=570)
    assert list(table["analyte"].unique()) == ["OD450-570"]
    got = table.set_index("well")["signal"]
    assert all(got[w] == od450[w] - od570[w] for w in od450)
    assert (table["wavelength_nm"] == 450).all() and (table["reference_wavelength_nm"] == 570).all()


def test_the_reference_alone_picks_the_other_wavelength(export):
    both = asm.parse(export, wavelength=450, reference_wavelength=570)
    alone = asm.parse(export, reference_wavelength=570)
    pd.testing.assert_frame_equal(both, alone)


def test_a_wavelength_alone_selects_its_raw_read_and_analyte_names_it(export):
    od450, _ = plate_ods()
    table = asm.parse(export, wavelength=450, analyte="IL-6")
    assert list(table["analyte"].unique()) == ["IL-6"]
    assert table.set_index("well")["signal"].to_dict() == od450
    assert table["reference_wavelength_nm"].isna().all()


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        (
            {"wavelength": 405},
            "wavelength",
            r"no absorbance reading at 405 nm \(it holds 450 nm, 570 nm\)",
        ),
        ({"reference_wavelength": 630}, "reference_wavelength", "no absorbance reading at 630 nm"),
        ({"wavelength": 450, "reference_wavelength": 450}, "reference_wavelength", "both 450 nm"),
        ({"wavelength": "four fifty"}, "wavelength", "is not a wavelength"),
        ({"analyte": "IL-6"}, "analyte", "two readings for analyte 'IL-6'"),
    ],
)
def test_a_wavelength_the_export_lacks_is_an_input_error(export, options, field, message):
    with pytest.raises(InputError, match=message) as err:
        asm.parse(export, **options)
    assert err.value.file == str(export)
    assert err.value.field == field


def test_a_reference_with_two_other_wavelengths_needs_the_wavelength(tmp_path):
    needs_allotropy()
    od450, od570 = plate_ods()
    path = write_gen5(tmp_path / "three.txt", {405: od570, 450: od450, 570: od570})
    with pytest.raises(InputError, match=r"several other wavelengths \(405, 450 nm\)") as err:
        asm.parse(path, reference_wavelength=570)
    assert err.value.field == "wavelength"


def test_a_difference_below_zero_is_stored_as_zero_with_a_warning(tmp_path):
    raw = raw_reads()
    a12 = (raw["well"] == "A12") & (raw["analyte"] == "OD450")
    ref = raw.loc[(raw["well"] == "A12") & (raw["analyte"] == "OD570"), "signal"].iloc[0]
    raw.loc[a12, "signal"] = ref - 0.003  # an empty well, within noise of the reference
    path = asm.write(raw, tmp_path / "neg.json")
    message = r"1 reading\(s\) below zero stored as 0.0 .*: A12 OD450-570 -0.003"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        raw_table = asm.parse(path, reference_wavelength=570)  # the raw table keeps it
    assert re.search(message, raw_table.attrs["warnings"][0])
    for reading in (asm.read_asm, read):  # the reader's and the registry's read warn
        with pytest.warns(DataWarning, match=message):
            table = reading(path, reference_wavelength=570)
        assert table.set_index("well").loc["A12", "signal"] == 0.0
        assert (table["signal"] >= 0).all()


# --------------------------------------------------------------------------- plate maps


def test_the_plate_map_adds_standards_and_samples(plate_map, export):
    table = asm.read_asm_plate(
        plate_map, export, study_id="CRA-EX-001", analyte="IL-6", reference_wavelength=570
    )
    assert_same(table, expected_table())
    assert table["source_file"].eq(str(export)).all()
    assert table["plate_map_file"].eq(str(plate_map)).all()
    standards = table[table["sample_type"] == "standard"]
    assert standards["standard_concentration"].nunique() == len(LEVELS)
    assert len(table) == len(elisa_design())  # unused wells are not read


def test_quantify_back_calculates_the_samples_of_a_noise_free_4pl(plate_map, export):
    table = asm.read_asm_plate(
        plate_map, export, study_id="CRA-EX-001", analyte="IL-6", reference_wavelength=570
    )
    result = quantify(table, settings=CalibrationSettings(model="4PL"))
    wells = result.concentrations.set_index("well")
    truth = expected_table().set_index("well")
    samples = truth[truth["sample_type"].isin(["sample", "control"])]
    expected = [four_pl_inverse(y) for y in samples["signal"]] * samples["dilution_factor"]
    np.testing.assert_allclose(wells.loc[samples.index, "concentration"], expected, rtol=1e-6)


def test_a_plate_map_read_beforehand_and_a_long_map_work_alike(plate_map, export, tmp_path):
    from cytosafe.io.platemap import read_plate_map

    long_map = write_long_map(expected_table(), tmp_path / "long.csv")
    kw = dict(study_id="CRA-EX-001", analyte="IL-6", reference_wavelength=570)
    a = asm.read_asm_plate(read_plate_map(plate_map), export, **kw)
    b = asm.read_asm_plate(long_map, export, **kw)
    assert_same(a, expected_table())
    assert_same(b, expected_table())


def test_a_saturated_well_stops_the_plate_only_where_the_map_uses_it(plate_map, tmp_path):
    needs_allotropy()
    od450, od570 = plate_ods()
    kw = dict(study_id="S", analyte="IL-6", reference_wavelength=570)
    unused = write_gen5(
        tmp_path / "unused.txt", {450: dict(od450, A12="OVRFLW"), 570: od570}, plate="IL6-P1"
    )
    assert len(asm.read_asm_plate(plate_map, unused, **kw)) == len(elisa_design())
    used = write_gen5(
        tmp_path / "used.txt", {450: dict(od450, A01="OVRFLW"), 570: od570}, plate="IL6-P1"
    )
    with pytest.raises(InputError, match=r"reported 'OVRFLW'.*saturated the detector") as err:
        asm.read_asm_plate(plate_map, used, **kw)
    assert (err.value.file, err.value.well, err.value.field) == (str(used), "A01", "signal")


def test_a_reading_the_map_does_not_describe_is_refused(tmp_path, export):
    lines = ["well,sample_type,standard_concentration", "A01,standard,100", "A02,blank,"]
    small = tmp_path / "small_map.csv"
    small.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="does not say what it holds") as err:
        asm.read_asm_plate(small, export, study_id="S", wavelength=450)
    assert err.value.file == str(export) and err.value.field == "well"


def test_a_multi_plate_export_reads_the_plate_the_map_names(tmp_path):
    needs_allotropy()
    od450, od570 = plate_ods()
    other = {w: v + 0.5 for w, v in od450.items()}
    path = write_softmax_pro(
        tmp_path / "two.txt",
        {"IL6-P0": {450: other, 570: od570}, "IL6-P1": {450: od450, 570: od570}},
    )
    plate_map = write_long_map(expected_table(), tmp_path / "map.csv")
    table = asm.read_asm_plate(
        plate_map, path, study_id="CRA-EX-001", analyte="IL-6", reference_wavelength=570
    )
    assert_same(table, expected_table())
    with pytest.raises(InputError, match="the plate map has no plate 'IL6-P0'") as err:
        asm.read_asm_plate(plate_map, path, study_id="S", plate_id="IL6-P0", wavelength=450)
    assert err.value.field == "plate_id"
    assert sorted(asm.parse(path, plate_id="IL6-P0")["plate_id"].unique()) == ["IL6-P0"]
    with pytest.raises(InputError, match="holds 2 plates, none called 'X'") as err:
        asm.parse(path, plate_id="X")
    assert err.value.expected == "one of IL6-P0, IL6-P1"


def test_a_negative_difference_in_a_used_well_is_zero_and_the_warning_names_only_it(
    plate_map, tmp_path
):
    raw = raw_reads()
    # H01 (a blank) and A12 (empty in the map) absorb less at 450 nm than at 570 nm.
    for well in ("H01", "A12"):
        ref = raw.loc[(raw["well"] == well) & (raw["analyte"] == "OD570"), "signal"].iloc[0]
        raw.loc[(raw["well"] == well) & (raw["analyte"] == "OD450"), "signal"] = ref - 0.002
    path = asm.write(raw, tmp_path / "neg.json")
    message = r"1 reading\(s\) below zero stored as 0.0 \(the schema .*\): H01 IL-6 -0.002$"
    with pytest.warns(DataWarning, match=message):
        table = asm.read_asm_plate(
            plate_map, path, study_id="S", analyte="IL-6", reference_wavelength=570
        )
    assert table.set_index("well").loc["H01", "signal"] == 0.0
    assert (table["signal"] >= 0).all() and "A12" not in set(table["well"])


# --------------------------------------------------------------------------- cytosafe.io.read_plate


def test_io_read_plate_sends_exports_to_asm_and_grids_to_the_matrix_reader(
    plate_map, export, tmp_path
):
    from cytosafe.io import read_plate
    from cytosafe.io.platemap import write_reader_matrix

    kw = dict(study_id="CRA-EX-001", analyte="IL-6")
    table = read_plate(plate_map, export, reference_wavelength=570, **kw)
    assert_same(table, expected_table())
    assert (table["wavelength_nm"] == 450).all() and table["source_file"].eq(str(export)).all()
    matrix = write_reader_matrix(expected_table(), tmp_path / "il6_matrix.csv")
    assert_same(read_plate(plate_map, matrix, **kw), expected_table())
    with pytest.raises(InputError, match="reference_wavelength is for plate-reader exports") as err:
        read_plate(plate_map, matrix, reference_wavelength=570, **kw)
    assert (err.value.file, err.value.field) == (str(matrix), "reference_wavelength")


@pytest.mark.parametrize("layout", ["softmax_pro", "asm_json"])
def test_cytosafe_quantify_maps_a_plate_reader_export_to_concentrations(
    layout, plate_map, tmp_path
):
    """End to end: ``cytosafe quantify --plate-map MAP --matrix EXPORT`` with the
    wavelengths, a noise-free 4PL, the samples' concentrations recovered."""
    from typer.testing import CliRunner

    from cytosafe.cli import app

    if layout == "softmax_pro":
        needs_allotropy()
        od450, od570 = plate_ods()
        export = write_softmax_pro(tmp_path / "il6.txt", {"IL6-P1": {450: od450, 570: od570}})
    else:
        export = asm.write(raw_reads(), tmp_path / "il6.json")
    out = tmp_path / "results"
    args = ["quantify", "--plate-map", plate_map, "--matrix", export, "--out", out, "--quiet"]
    args += ["--wavelength", "450", "--reference-wavelength", "570", "--model", "4PL"]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    wells = pd.read_csv(out / "concentrations.csv").set_index("well")
    truth = expected_table().set_index("well")
    samples = truth[truth["sample_type"].isin(["sample", "control"])]
    expected = [four_pl_inverse(y) for y in samples["signal"]] * samples["dilution_factor"]
    np.testing.assert_allclose(wells.loc[samples.index, "concentration"], expected, rtol=1e-6)
    assert set(wells["analyte"]) == {"OD450-570"} and set(wells["plate_id"]) == {"IL6-P1"}
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["wavelength"], settings["reference_wavelength"]) == (450, 570)
    assert settings["matrices"] == [str(export)]


def test_the_wavelength_options_need_a_matrix(tmp_path):
    from typer.testing import CliRunner

    from cytosafe.cli import app

    table = tmp_path / "t.csv"
    expected_table().to_csv(table, index=False)
    args = ["quantify", str(table), "--out", str(tmp_path / "o"), "--wavelength", "450"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "--wavelength" in result.output and "--matrix" in result.output
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- ASM JSON


def test_asm_json_round_trips_the_whole_table(tmp_path):
    il6 = expected_table()
    tnf = il6.assign(analyte="TNF", signal=il6["signal"] * 0.75, bead_count=61.0, exclude=True)
    table = validate_measurements(pd.concat([il6, tnf], ignore_index=True))
    path = asm.write(table, tmp_path / "elisa.json", measurement_time="2025-03-14T10:12:31+00:00")
    back = asm.parse(path)
    assert_same(validate_measurements(back), table)
    document = json.loads(path.read_text())
    assert document["$asm.manifest"].endswith("plate-reader/REC/2025/03/plate-reader.manifest")
    first = document["plate reader aggregate document"]["plate reader document"][0]
    md = first["measurement aggregate document"]["measurement document"][0]
    assert md["sample document"]["location identifier"] == "A1"
    assert md["sample document"]["sample role type"] == "standard sample role"
    assert md["sample document"]["mass concentration"] == {
        "value": table["standard_concentration"].iloc[0],
        "unit": "pg/mL",
    }


def test_written_asm_follows_the_allotrope_schema(tmp_path):
    from allotropy.allotrope.schemas import validate_asm_schema

    path = asm.write(expected_table(), tmp_path / "elisa.json")
    validate_asm_schema(json.loads(path.read_text()))


def test_an_od_analyte_is_written_at_its_wavelength(tmp_path):
    table = expected_table().assign(analyte="OD492")
    path = asm.write(table, tmp_path / "od.json")
    back = asm.parse(path)
    assert set(back["wavelength_nm"]) == {492.0}
    assert set(back["analyte"]) == {"OD492"}


def test_a_reference_subtracted_table_is_not_written_as_absorbance(tmp_path):
    table = expected_table().assign(analyte="OD450-570")
    with pytest.raises(InputError, match="reference-subtracted OD") as err:
        asm.write(table, tmp_path / "x.json")
    assert err.value.field == "analyte"
    assert not (tmp_path / "x.json").exists()


def test_allotropys_asm_reads_like_the_export_it_came_from(export, tmp_path):
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(asm.to_asm(export)))
    direct = asm.parse(export, reference_wavelength=570)
    via_json = asm.parse(saved, reference_wavelength=570)
    pd.testing.assert_frame_equal(
        direct.drop(columns="source_file"), via_json.drop(columns="source_file")
    )


def msd_style_asm() -> dict:
    """A plate-reader ASM as allotropy writes MSD Discovery Workbench data tables: the
    well in ``well location identifier`` (the spot in ``location identifier``), the assay
    in custom information, a role and a calibrator ``mass concentration``, ECL counts as
    ``luminescence``."""

    def md(well, spot, sample, role, conc, assay, counts):
        sample_document = {
            "sample identifier": sample,
            "location identifier": spot,
            "well location identifier": well,
            "well plate identifier": "Plate_9XY",
            "sample role type": role,
            "custom information document": {"dilution factor setting": 2},
        }
        if conc is not None:
            sample_document["mass concentration"] = {"value": conc, "unit": "ng/mL"}
        return {
            "measurement identifier": f"{well}-{spot}",
            "device control aggregate document": {
                "device control document": [{"detection type": "luminescence"}]
            },
            "sample document": sample_document,
            "luminescence": {"value": counts, "unit": "RLU"},
            "custom information document": {"assay identifier": assay},
        }

    docs = [
        [
            md("A01", "1", "S001", "standard sample role", 1.5, "IL-6", 5120.0),
            md("A01", "2", "S001", "standard sample role", 0.8, "TNF", 3100.0),
        ],
        [
            md("B01", "1", "U001", "unknown sample role", None, "IL-6", 812.0),
            md("B01", "2", "U001", "unknown sample role", None, "TNF", 95.0),
        ],
    ]
    return {
        "$asm.manifest": "http://purl.allotrope.org/manifests/plate-reader/REC/2024/06/plate-reader.manifest",
        "plate reader aggregate document": {
            "plate reader document": [
                {
                    "measurement aggregate document": {
                        "measurement time": "2016-01-20T13:40:36+00:00",
                        "plate well count": {"value": 96, "unit": "#"},
                        "measurement document": m,
                    }
                }
                for m in docs
            ]
        },
    }


def test_an_msd_style_asm_gives_wells_assays_roles_and_calibrators():
    table = asm.measurements_from_asm(msd_style_asm(), source="msd.json")
    table = validate_measurements(table)
    row = table.set_index(["well", "analyte"])
    assert row.loc[("A01", "IL-6"), "signal"] == 5120.0
    assert row.loc[("A01", "TNF"), "sample_type"] == "standard"
    assert row.loc[("A01", "IL-6"), "standard_concentration"] == 1500.0  # ng/mL -> pg/mL
    assert row.loc[("B01", "TNF"), "sample_type"] == "sample"
    assert (table["dilution_factor"] == 2.0).all()
    assert row.loc[("B01", "IL-6"), "sample_id"] == "U001"


# --------------------------------------------------------------------------- bad input


def test_malformed_json_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n "$asm.manifest": "x",\n "plate reader aggregate document": [,\n}\n')
    with pytest.raises(InputError, match="not valid JSON") as err:
        asm.parse(path, vendor="asm")
    assert (err.value.file, err.value.row) == (str(path), 3)


def test_an_asm_of_another_technique_is_refused(tmp_path):
    path = tmp_path / "luminex.json"
    path.write_text(
        json.dumps({"$asm.manifest": "m", "multi analyte profiling aggregate document": {}})
    )
    with pytest.raises(InputError, match="not a plate-reader ASM document") as err:
        asm.parse(path)
    assert err.value.file == str(path)


def test_a_kinetic_read_in_asm_is_refused_naming_the_well():
    document = msd_style_asm()
    md = document["plate reader aggregate document"]["plate reader document"][0][
        "measurement aggregate document"
    ]["measurement document"][0]
    md.pop("luminescence")
    md["absorbance data cube"] = {}
    with pytest.raises(InputError, match="kinetic and spectral reads are not read") as err:
        asm.measurements_from_asm(document, source="k.json")
    assert (err.value.file, err.value.well) == ("k.json", "A01")


def test_a_truncated_softmax_pro_block_is_an_input_error_without_a_traceback(tmp_path):
    needs_allotropy()
    od450, _ = plate_ods()
    text = softmax_pro_text({"P1": {450: od450}}).split("\r\n")
    del text[5:9]  # rows D-G of the grid
    path = tmp_path / "cut.txt"
    path.write_bytes("\r\n".join(text).encode("utf-16"))
    with pytest.raises(InputError, match="could not read this SoftMax Pro export") as err:
        asm.parse(path)
    assert err.value.file == str(path)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_a_gen5_file_without_results_is_an_input_error(tmp_path):
    needs_allotropy()
    od450, _ = plate_ods()
    text = gen5_text({450: od450}).split("Results")[0]
    path = tmp_path / "no_results.txt"
    path.write_text(text)
    with pytest.raises(InputError, match="could not read this Gen5 export") as err:
        asm.parse(path)
    assert err.value.file == str(path)


def test_a_gen5_saturated_well_names_the_well_and_the_readers_word(tmp_path):
    needs_allotropy()
    od450, _ = plate_ods()
    path = write_gen5(tmp_path / "sat.txt", {450: dict(od450, C05="OVRFLW", D07="MISSED")})
    with pytest.raises(InputError, match=r"reported 'OVRFLW'.*; 1 more wells like it") as err:
        asm.parse(path)
    assert (err.value.well, err.value.field) == ("C05", "signal")


def test_without_allotropy_instrument_files_need_it_but_asm_json_does_not(tmp_path, monkeypatch):
    od450, _ = plate_ods()
    gen5 = write_gen5(tmp_path / "g.txt", {450: od450})
    json_file = asm.write(expected_table(), tmp_path / "p.json")
    monkeypatch.setitem(sys.modules, "allotropy.to_allotrope", None)  # import fails
    with pytest.raises(InputError, match="needs the allotropy package") as err:
        asm.parse(gen5)
    assert err.value.file == str(gen5) and "allotropy>=" in err.value.expected
    assert len(asm.parse(json_file)) == len(expected_table())


def test_an_unknown_vendor_is_refused(tmp_path):
    needs_allotropy()
    od450, _ = plate_ods()
    gen5 = write_gen5(tmp_path / "g.txt", {450: od450})
    with pytest.raises(InputError, match="allotropy has no parser 'NO_SUCH_READER'") as err:
        asm.parse(gen5, vendor="NO_SUCH_READER")
    assert err.value.field == "vendor"


def test_reading_warns_of_nothing_on_a_clean_plate(export):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asm.parse(export, reference_wavelength=570)
