"""The Bio-Plex Manager 6 XML reader (:mod:`cytosafe.io.bioplex_xml`).

The fixture is CytoSafe's own: a run written here in the export's layout (root
``bpm:BioPlexManager`` in Bio-Rad's namespace; ``Wells``, ``StandardCurves`` and
``Samples`` with Standard, Blank, Control and Unknown groups, numbers in Bio-Plex's
``1.01050000000000000E+003`` form, an ObsConc after its statistics' children), with
readings on known 5PL curves in Bio-Plex's own parameterisation
(``FI = d + (a - d) / (1 + (x / c)^b)^g``, ``b < 0`` for a rising curve), so that the
back-calculated concentrations can be checked against the concentrations the readings
were made from.
"""

from __future__ import annotations

import importlib.util
import math
import random
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import cytosafe.io as cio
from cytosafe.errors import DataWarning, InputError
from cytosafe.io import bioplex_xml
from cytosafe.quantification import plate_conventions, quantify

NS = bioplex_xml.NAMESPACE

#: Bio-Plex's 5PL of each analyte: region, (a, b, c, d, g) with a the top, d the bottom.
CURVES = {
    "IL-6": (25, (25000.0, -1.1, 800.0, 20.0, 0.7)),
    "TNF-a": (36, (18000.0, -0.9, 1500.0, 15.0, 1.3)),
}
#: Standard levels (pg/mL), S1 the highest: 10000 / 3^k.
LEVELS = [10000.0 / 3**k for k in range(8)]
CONTROL = 500.0
#: Unknowns: (label, description, concentration in the well, dilution).
UNKNOWNS = [
    ("X1", "D1-MED", 40.0, 2.0),
    ("X2", "D1-CD3", 350.0, 2.0),
    ("X3", "D2-MED", 1200.0, 2.0),
    ("X4", "D2-CD3", 4000.0, 2.0),
]


def fi(analyte: str, conc: float) -> float:
    a, b, c, d, g = CURVES[analyte][1]
    if conc == 0:
        return d
    return d + (a - d) / (1 + (conc / c) ** b) ** g


def vendor(x: float) -> str:
    """A number as Bio-Plex Manager writes it: 17 decimals, a three-digit exponent."""
    mantissa, exponent = f"{x:.17E}".split("E")
    return f"{mantissa}E{int(exponent):+04d}"


def _group(kind, label, wells, *, conc=None, dil=1.0, description="", obs=None, reading=None):
    """One sample group: its Analytes (ExpectedConc) and MemberWells (Reading, MWObsConc)."""
    analytes = []
    for name, (region, _) in CURVES.items():
        expected = ""
        if conc is not None:
            expected = f"<ExpectedConc>{vendor(conc)}</ExpectedConc>"
        analytes.append(
            f'<Analyte RegionNumber="{region}"><AnalyteName>{name}</AnalyteName>'
            f"<ReplicateCount>{len(wells)}</ReplicateCount>{expected}"
            '<ObsConc RecoveryRange="InRange" RecoveryRangeCode="0">'
            "<StdDeviation>0.0</StdDeviation><CV>0.0</CV>0.0</ObsConc></Analyte>"
        )
    members = []
    for row, col in wells:
        mw = []
        for name, (region, _) in CURVES.items():
            signal = reading(name) if reading else fi(name, conc or 0.0)
            value = obs(name) if obs else None
            obs_xml = (
                f'<MWObsConc ReadingOK="true" ReadError="" ReadErrorCode="0" '
                f'RecoveryRange="InRange" RecoveryRangeCode="0">{vendor(value)}</MWObsConc>'
                if value is not None
                else '<MWObsConc ReadingOK="false" ReadError="Data field has not been set" '
                'ReadErrorCode="9" RecoveryRange="NotInRange" RecoveryRangeCode="9">'
                "0.00000000000000000E+000</MWObsConc>"
            )
            mw.append(
                f'<MWAnalyte RegionNumber="{region}">\n'
                f"<AnalyteName>{name}</AnalyteName>\n"
                f'<Reading Valid="true" Code="0" OutlierType="None">{vendor(signal)}</Reading>\n'
                f"{obs_xml}\n</MWAnalyte>"
            )
        members.append(
            f'<MemberWell RowNo="{row}" ColNo="{col}" WellNumber="{(row - 1) * 12 + col}">\n'
            f"<MWAnalytes>\n" + "\n".join(mw) + "\n</MWAnalytes>\n</MemberWell>"
        )
    dilution = "" if kind == "Blank" else f"<Dilution>{vendor(dil)}</Dilution>"
    return (
        f"<{kind}>\n<Description>{description}</Description><Label>{label}</Label>\n"
        f"{dilution}\n<Analytes>\n"
        + "\n".join(analytes)
        + "\n</Analytes>\n<MemberWells>\n"
        + "\n".join(members)
        + f"\n</MemberWells>\n</{kind}>"
    )


def run_xml(*, unit: str = "pg/mL", root: str = "bpm:BioPlexManager") -> str:
    """The fixture run: 8 standards, blanks, a control and 4 samples, each in duplicate
    (standards in rows A-B, columns 1-8; blanks A12/B12; control C1/D1; samples
    C3-C6/D3-D6); ObsConc of the samples and control = the 5PL's inverse x dilution."""
    standards = [
        _group("Standard", f"S{k + 1}", [(1, k + 1), (2, k + 1)], conc=conc)
        for k, conc in enumerate(LEVELS)
    ]
    blanks = [_group("Blank", "B", [(1, 12), (2, 12)])]
    controls = [
        _group("Control", "C1", [(3, 1), (4, 1)], conc=CONTROL, description="Kit control",
               obs=lambda name: CONTROL)
    ]  # fmt: skip
    unknowns = [
        _group("Unknown", label, [(3, 3 + n), (4, 3 + n)], dil=dil, description=desc,
               reading=lambda name, x=x: fi(name, x), obs=lambda name, x=x, dil=dil: x * dil)
        for n, (label, desc, x, dil) in enumerate(UNKNOWNS)
    ]  # fmt: skip
    interpolators = "\n".join(
        f'<Interpolator RegionNumber="{region}" External="false" IsValid="true">\n'
        f"<AnalyteName>{name}</AnalyteName>\n<ConcentrationUnits>{unit}</ConcentrationUnits>\n"
        '<RecoveryRange Unit="%" Min="70" Max="130" />\n'
        '<Regression Type="10">Logistic - 5PL</Regression>\n<LogisticWeighting>\n'
        "<LogisticWeightingModel>Power Law Variance</LogisticWeightingModel>\n"
        '<LogisticWeightingCoefficientA AutoCalc="true">1.0E-002</LogisticWeightingCoefficientA>\n'
        "<LogisticWeightingCoefficientB>1.8E+000</LogisticWeightingCoefficientB>\n"
        "</LogisticWeighting>\n</Interpolator>"
        for name, (region, _) in CURVES.items()
    )
    # Two acquired wells in Wells, with their bead counts (the export may hold only some).
    wells = "\n".join(
        f'<Well RowNo="{row}" ColNo="{col}" WellNo="{(row - 1) * 12 + col}">\n'
        "<PlateID>PLATE-XML-1</PlateID>\n<AcquisitionTime>2026-11-02T10:00:00Z</AcquisitionTime>\n"
        "<BeadRegions>\n"
        + "\n".join(
            f'<BeadRegion RegionNumber="{region}"><RegionCount>{50 + region}</RegionCount>'
            f"<Median>{fi(name, LEVELS[col - 1]):.2f}</Median></BeadRegion>"
            for name, (region, _) in CURVES.items()
        )
        + "\n</BeadRegions>\n</Well>"
        for row, col in ((1, 1), (2, 1))
    )
    prefix = root.partition(":")[0] if ":" in root else None
    xmlns = f'xmlns:{prefix}="{NS}"' if prefix else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{root} {xmlns} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'XmlExportDateTime="2026-11-02T12:00:00Z" BioPlexManagerVersion="6.2.0.175">\n'
        "<NativeDocumentName>cytosafe fixture</NativeDocumentName>\n<Description></Description>\n"
        '<PlateDimensions Columns="12" Rows="8" TotalWells="96" />\n'
        f"<Wells>\n{wells}\n</Wells>\n"
        '<NormalizationSettings NormalizationOn="false" />\n'
        f"<StandardCurves>\n<Interpolators>\n{interpolators}\n</Interpolators>\n</StandardCurves>\n"
        "<Samples>\n"
        f"<Blanks>\n{''.join(blanks)}\n</Blanks>\n"
        f"<Controls>\n{''.join(controls)}\n</Controls>\n"
        f'<Standards StdLotName="" StdLotExpirationDateValid="false">\n{"".join(standards)}\n'
        "</Standards>\n"
        f"<Unknowns>\n{''.join(unknowns)}\n</Unknowns>\n"
        f"</Samples>\n</{root}>\n"
    )


@pytest.fixture
def run_file(tmp_path) -> Path:
    path = tmp_path / "run.xml"
    path.write_text(run_xml(), encoding="utf-8")
    return path


def write(tmp_path: Path, text: str, name: str = "bad.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(path: Path, row: int) -> str:
    return path.read_text(encoding="utf-8").splitlines()[row - 1]


# --------------------------------------------------------------------------- reading


def test_the_run_is_recognised_and_read(run_file):
    assert cio.detect_format(run_file) == "bioplex_xml"
    table = cio.read(run_file, study_id="CRA-X")
    assert len(table) == 2 * (len(LEVELS) * 2 + 2 + 2 + len(UNKNOWNS) * 2)
    assert set(table["analyte"]) == set(CURVES)
    assert set(table["plate_id"]) == {"PLATE-XML-1"} and set(table["study_id"]) == {"CRA-X"}
    assert table.groupby("sample_type", observed=True).size().to_dict() == {
        "standard": 32, "blank": 4, "sample": 16, "control": 4}  # fmt: skip
    il6 = table[table["analyte"] == "IL-6"].set_index("well")
    assert il6.loc["A01", "signal"] == pytest.approx(fi("IL-6", LEVELS[0]), rel=1e-15)
    assert il6.loc["A01", "standard_concentration"] == LEVELS[0]
    assert il6.loc["B08", "standard_concentration"] == pytest.approx(LEVELS[7], rel=1e-15)
    assert il6.loc["A01", "bead_count"] == 75 and math.isnan(il6.loc["A02", "bead_count"])
    assert il6.loc["A01", "bead_region"] == 25
    assert (il6.loc["C01", "sample_id"], il6.loc["C01", "standard_concentration"]) == (
        "Kit control", CONTROL)  # fmt: skip
    assert il6.loc["C04", "sample_id"] == "D1-CD3" and il6.loc["C04", "dilution_factor"] == 2.0
    assert (il6.loc["C04", "replicate"], il6.loc["D04", "replicate"]) == (1, 2)
    assert il6.loc["A02", "sample_id"] == "S2" and il6.loc["A12", "sample_id"] == "B"
    assert il6.loc["C04", "vendor_concentration"] == pytest.approx(700.0)
    assert il6.loc["A01", "vendor_flag"] == "missing"
    assert set(table["concentration_unit"]) == {"pg/mL"}
    assert set(table["vendor_model"]) == {"5PL-auto"}
    assert set(table["weighting_model"]) == {"Power Law Variance"}
    # FI - Bkgd: the Reading less the Blank group's mean Reading (its d, 20 for IL-6).
    assert il6.loc["A01", "net_signal"] == pytest.approx(fi("IL-6", LEVELS[0]) - 20.0)
    # Every row names the line of its Reading.
    row = int(il6.loc["C04", "source_row"])
    assert "<Reading" in line_of(run_file, row)
    assert table.attrs["software_version"] == "6.2.0.175"


def test_a_unit_in_ng_per_ml_is_stored_in_pg_per_ml(tmp_path):
    path = write(tmp_path, run_xml(unit="ng/mL"))
    table = cio.read(path)
    assert set(table["concentration_unit"]) == {"pg/mL"}
    top = table[(table["well"] == "A01") & (table["analyte"] == "IL-6")].iloc[0]
    assert top["standard_concentration"] == pytest.approx(LEVELS[0] * 1000)
    assert top["exp_conc"] == LEVELS[0] and top["exp_conc_unit"] == "ng/mL"


def test_the_file_without_a_unit_takes_standard_unit(tmp_path):
    path = write(tmp_path, run_xml(unit=""))
    with pytest.raises(InputError, match="declares no unit") as info:
        cio.read(path)
    assert info.value.field == "ConcentrationUnits" and "<Interpolator" in line_of(
        path, info.value.row
    )
    table = cio.read(path, standard_unit="IU/mL")
    assert set(table["concentration_unit"]) == {"IU/mL"}


def test_a_unit_that_contradicts_standard_unit_is_refused(run_file):
    with pytest.raises(InputError, match="declares concentrations in 'pg/mL'") as info:
        cio.read(run_file, standard_unit="IU/mL")
    assert info.value.field == "standard_unit"


def test_a_zero_standard_is_the_zero_calibrator(tmp_path):
    text = run_xml().replace(
        f"<ExpectedConc>{vendor(LEVELS[7])}</ExpectedConc>",
        f"<ExpectedConc>{vendor(0.0)}</ExpectedConc>",
    )
    table = cio.read(write(tmp_path, text))
    s8 = table[table["well"].isin(["A08", "B08"])]
    assert set(s8["sample_type"]) == {"blank"} and s8["standard_concentration"].isna().all()


def test_an_invalid_reading_is_skipped_with_a_warning(tmp_path):
    text = run_xml()
    target = f'<Reading Valid="true" Code="0" OutlierType="None">{vendor(fi("IL-6", 350.0))}'
    assert text.count(target) == 2
    text = text.replace(
        target, target.replace('Valid="true" Code="0"', 'Valid="false" Code="1"'), 1
    )
    path = write(tmp_path, text)
    with pytest.warns(DataWarning, match=r"1 reading\(s\) are marked Valid=\"false\""):
        table = cio.read(path)
    assert len(table) == 2 * 28 - 1
    assert table.attrs["skipped"][0]["well"] == "C04"


def test_an_outlier_standard_is_left_out_of_the_fit(tmp_path):
    text = run_xml()
    target = f'OutlierType="None">{vendor(fi("TNF-a", LEVELS[2]))}'
    text = text.replace(target, target.replace('"None"', '"Manual"'), 1)
    table = cio.read(write(tmp_path, text))
    out = table[table["exclude"]]
    assert out[["well", "analyte"]].values.tolist() == [["A03", "TNF-a"]]
    assert out["outlier"].all()


def test_two_bead_regions_under_one_name_stay_two_analytes(tmp_path):
    text = run_xml().replace("<AnalyteName>TNF-a</AnalyteName>", "<AnalyteName>IL-6</AnalyteName>")
    table = cio.read(write(tmp_path, text))
    assert set(table["analyte"]) == {"IL-6 (25)", "IL-6 (36)"}


def test_utf16_export_reads_the_same(run_file, tmp_path):
    path = tmp_path / "run16.xml"
    path.write_bytes(run_file.read_text(encoding="utf-8").encode("utf-16"))
    assert cio.detect_format(path) == "bioplex_xml"
    columns = ["well", "analyte", "signal", "standard_concentration", "dilution_factor"]
    pd.testing.assert_frame_equal(cio.read(path)[columns], cio.read(run_file)[columns])


def test_no_other_reader_claims_the_export(run_file):
    probe = cio.Probe.of(run_file)
    claim = [name for name, reader in cio.READERS.items() if reader.sniff(probe)]
    assert claim == ["bioplex_xml"]


# --------------------------------------------------------------------------- quantify


def test_quantify_back_calculates_the_known_concentrations(run_file):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        result = quantify(run_file)
    conv = plate_conventions(result.measurements)
    assert conv["software"].iloc[0] == "Bio-Rad Bio-Plex Manager (XML)"
    assert conv["weighting"].iloc[0] == "1/y2" and conv["blank"].iloc[0] == "ignore"
    assert conv["model"].iloc[0] == "5PL-auto"
    assert result.qc["qc_pass"].all() and len(result.qc) == 2
    wells = result.concentrations
    samples = wells[wells["sample_type"].astype(str) == "sample"].copy()
    truth = {desc: x * dil for _, desc, x, dil in UNKNOWNS}
    samples["truth"] = samples["sample_id"].map(truth)
    assert len(samples) == 16 and samples["truth"].notna().all()
    np.testing.assert_allclose(samples["concentration"], samples["truth"], rtol=1e-6)
    # The vendor's ObsConc (the same truth, as Bio-Plex would print it) agrees.
    diff = (samples["concentration"] / samples["vendor_concentration"] - 1).abs()
    assert samples["vendor_concentration"].notna().all() and diff.median() < 1e-6


def test_cytosafe_quantify_command_calibrates_the_export(run_file, tmp_path):
    from cytosafe.cli import app

    out = tmp_path / "results"
    res = CliRunner().invoke(app, ["quantify", str(run_file), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "curves passing QC: 2 / 2" in res.stdout
    conc = pd.read_csv(out / "concentrations.csv")
    sample = conc[(conc["sample_id"] == "D2-MED") & (conc["analyte"] == "TNF-a")]
    np.testing.assert_allclose(sample["concentration"], 2400.0, rtol=1e-6)


# --------------------------------------------------------------------------- bad input


def test_not_xml_is_refused_naming_the_file(tmp_path):
    path = write(tmp_path, "well,signal\nA1,12\n", "plate.xml")
    with pytest.raises(InputError, match="not well-formed XML") as info:
        cio.read(path, format="bioplex_xml")
    assert info.value.file == str(path) and info.value.row == 1


def test_a_truncated_export_names_its_last_line(run_file, tmp_path):
    text = run_file.read_text(encoding="utf-8")
    path = write(tmp_path, text[: len(text) // 2])
    with pytest.raises(InputError, match="not well-formed XML") as info:
        cio.read(path)  # still recognised by its root element
    assert info.value.file == str(path) and info.value.row >= text[: len(text) // 2].count("\n")


@pytest.mark.parametrize(
    ("root", "xmlns"),
    [("bpm:Experiment", NS), ("bpm:BioPlexManager", "http://example.org/other")],
)
def test_a_wrong_root_is_refused(tmp_path, root, xmlns):
    text = run_xml(root=root).replace(NS, xmlns)
    path = write(tmp_path, text)
    with pytest.raises(InputError, match="not a Bio-Plex Manager XML export: the root") as info:
        cio.read(path, format="bioplex_xml")
    assert info.value.field == root and info.value.row == 2


def test_a_document_type_declaration_is_refused_unread(tmp_path):
    """The entity expansion of 'billion laughs' never starts: the DTD is refused."""
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    text = (
        run_xml()
        .replace(
            "<bpm:BioPlexManager",
            f'<!DOCTYPE bpm:BioPlexManager [<!ENTITY l0 "lol">{lol}]>\n<bpm:BioPlexManager',
            1,
        )
        .replace("<Description></Description>", "<Description>&l9;</Description>", 1)
    )
    path = write(tmp_path, text)
    with pytest.raises(InputError, match="declares a document type") as info:
        cio.read(path)
    assert info.value.file == str(path) and info.value.field == "DOCTYPE"


def test_a_standard_without_expected_concentration_is_refused(tmp_path):
    text = run_xml()
    target = f"<ExpectedConc>{vendor(LEVELS[2])}</ExpectedConc>"
    assert text.count(target) == 2
    path = write(tmp_path, text.replace(target, "", 1))
    with pytest.raises(InputError, match="Standard S3 has no ExpectedConc for IL-6") as info:
        cio.read(path)
    err = info.value
    assert (err.field, err.well) == ("ExpectedConc", "A03")
    assert "<Standard>" in line_of(path, err.row)


def test_a_well_without_a_reading_is_refused(tmp_path):
    text = run_xml()
    target = (
        f'<Reading Valid="true" Code="0" OutlierType="None">{vendor(fi("TNF-a", 4000.0))}</Reading>'
    )
    path = write(tmp_path, text.replace(target, "", 1))
    with pytest.raises(InputError, match="well C06 has no Reading for TNF-a") as info:
        cio.read(path)
    assert (info.value.field, info.value.well) == ("Reading", "C06")
    assert "<MWAnalyte" in line_of(path, info.value.row)


def test_a_member_well_without_any_analyte_is_refused(tmp_path):
    text = re.sub(
        r'(<MemberWell RowNo="3" ColNo="3" WellNumber="27">).*?(</MemberWell>)',
        r"\1\n<MWAnalytes>\n</MWAnalytes>\n\2",
        run_xml(),
        count=1,
        flags=re.DOTALL,
    )
    path = write(tmp_path, text)
    with pytest.raises(InputError, match="well C03 of Unknown X1 has no reading") as info:
        cio.read(path)
    assert (info.value.field, info.value.well) == ("MWAnalytes", "C03")
    assert '<MemberWell RowNo="3" ColNo="3"' in line_of(path, info.value.row)


def test_duplicate_wells_are_refused(tmp_path):
    text = run_xml().replace('<MemberWell RowNo="4" ColNo="4"', '<MemberWell RowNo="3" ColNo="4"')
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=r"duplicate well: IL-6 .* in well C04") as info:
        cio.read(path)
    assert (info.value.field, info.value.well) == ("MemberWell", "C04")


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (f">{vendor(fi('IL-6', 1200.0))}</Reading>", ">12,5</Reading>", "Reading"),
        (f">{vendor(fi('IL-6', 1200.0))}</Reading>", ">inf</Reading>", "Reading"),
        (f"<ExpectedConc>{vendor(LEVELS[1])}", "<ExpectedConc>n/a", "ExpectedConc"),
        (f"<Dilution>{vendor(2.0)}", "<Dilution>1:2", "Dilution"),
        ("<RegionCount>75</RegionCount>", "<RegionCount>many</RegionCount>", "RegionCount"),
        (f">{vendor(CONTROL)}</MWObsConc>", ">OOR</MWObsConc>", "MWObsConc"),
    ],
)
def test_a_value_that_is_not_a_number_is_refused(tmp_path, old, new, field):
    text = run_xml()
    assert old in text
    path = write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(InputError, match="is not a") as info:
        cio.read(path)
    err = info.value
    assert err.field == field and err.file == str(path)
    assert new.split(">")[-1].split("<")[0] in line_of(path, err.row)


def test_a_negative_reading_is_refused(tmp_path):
    old = f">{vendor(fi('IL-6', 40.0))}</Reading>"
    path = write(tmp_path, run_xml().replace(old, ">-3.0</Reading>", 1))
    with pytest.raises(InputError, match="Reading -3 is negative") as info:
        cio.read(path)
    assert info.value.well == "C03"


def test_an_export_without_samples_is_refused(tmp_path):
    text = run_xml()
    start, end = text.index("<Samples>"), text.index("</Samples>") + len("</Samples>")
    path = write(tmp_path, text[:start] + text[end:])
    with pytest.raises(InputError, match="no Samples element") as info:
        cio.read(path)
    assert info.value.field == "Samples"


def test_the_reader_and_writer_are_exported_beside_read_bioplex(run_file, tmp_path):
    # They were reachable only as cytosafe.io.bioplex_xml.read_bioplex_xml.
    assert {"read_bioplex_xml", "write_bioplex_xml"} <= set(cio.__all__)
    from cytosafe.io import read_bioplex_xml, write_bioplex_xml

    assert read_bioplex_xml is bioplex_xml.read_bioplex_xml
    table = read_bioplex_xml(run_file)
    again = read_bioplex_xml(write_bioplex_xml(table, tmp_path / "again.xml"))
    columns = ["well", "analyte", "sample_type", "signal", "standard_concentration"]
    key = ["analyte", "well"]
    pd.testing.assert_frame_equal(
        table[columns].sort_values(key).reset_index(drop=True),
        again[columns].sort_values(key).reset_index(drop=True),
    )


# --------------------------------------------------------------------------- fuzz


def test_the_fuzz_corpus_fixture_is_the_run_written_here():
    """``tests/fixtures/bioplex_xml/run.xml`` (the fuzz corpus's Bio-Plex XML,
    ``benchmarks/fuzz_readers.py``) is :func:`run_xml`'s output, synthetic values only;
    regenerate it from there when the fixture run changes."""
    fixture = Path(__file__).parent / "fixtures" / "bioplex_xml" / "run.xml"
    assert fixture.read_text(encoding="utf-8") == run_xml()


def _fuzz_engine():
    engine = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_readers.py"
    spec = importlib.util.spec_from_file_location("fuzz_readers", engine)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_readers", module)
    spec.loader.exec_module(module)
    return module


def test_mutated_exports_give_a_table_or_an_input_error(run_file, tmp_path, capfd):
    """The mutations of ``benchmarks/fuzz_readers.py`` (truncation, byte flips, deleted
    and duplicated lines, BOM, CRLF, UTF-16, junk, locale traps) on the fixture: each read
    is a valid table or an InputError naming the file, and nothing is printed."""
    fuzz = _fuzz_engine()
    raw = run_file.read_bytes()
    outcomes = {"valid": 0, "input_error": 0}
    for seed in range(40):
        data, names, _ = fuzz.mutated(raw, random.Random(9_000 + seed))
        path = tmp_path / f"m{seed}.xml"
        path.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DataWarning)
                cio.read(path, format="bioplex_xml")
            outcomes["valid"] += 1
        except InputError as exc:
            assert exc.file == str(path), (seed, names, exc)
            outcomes["input_error"] += 1
    assert outcomes["valid"] and outcomes["input_error"], outcomes
    assert capfd.readouterr() == ("", "")


def test_standards_that_all_have_expected_concentration_zero_are_refused(tmp_path):
    # The public example's situation (allotropy's bio-rad_bio-plex_manager_example_01.xml:
    # every ExpectedConc 0, EquationErr "All expected values set to zero"): read as zero
    # calibrators, the whole series became blanks, raised the background and sent the
    # samples below it. It is refused, saying what to do in Bio-Plex Manager.
    text = run_xml()
    for level in LEVELS:
        text = text.replace(
            f"<ExpectedConc>{vendor(level)}</ExpectedConc>",
            f"<ExpectedConc>{vendor(0.0)}</ExpectedConc>",
        )
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=r"every Standard of IL-6 .* has ExpectedConc 0") as info:
        cio.read(path)
    err = info.value
    assert err.field == "ExpectedConc" and err.file == str(path) and "S1" in err.message
    assert "<Reading" in line_of(path, err.row)


def test_readings_with_an_error_code_are_read_with_a_warning_naming_them(tmp_path):
    text = run_xml()
    target = f'<Reading Valid="true" Code="0" OutlierType="None">{vendor(fi("IL-6", 350.0))}'
    text = text.replace(target, target.replace('Code="0"', 'Code="1"'), 1)
    with pytest.warns(DataWarning, match=r"1 reading\(s\) carry a Bio-Plex Manager error code"):
        table = cio.read(write(tmp_path, text))
    coded = table[table["reading_code"] > 0]
    assert coded[["well", "analyte"]].values.tolist() == [["C04", "IL-6"]]


def test_an_outlier_blank_stays_out_of_the_background(tmp_path):
    # FI - Bkgd (net_signal) subtracts the mean of the blank wells Bio-Plex kept.
    text = run_xml()
    target = f'OutlierType="None">{vendor(fi("IL-6", 0.0))}'
    assert target in text
    text = text.replace(target, f'OutlierType="Manual">{vendor(5 * fi("IL-6", 0.0))}', 1)
    table = cio.read(write(tmp_path, text))
    il6 = table[(table["analyte"] == "IL-6") & (table["sample_type"] == "sample")]
    np.testing.assert_allclose(il6["net_signal"], il6["signal"] - fi("IL-6", 0.0), rtol=1e-9)


def test_a_regression_the_convention_does_not_reproduce_is_named_in_a_warning(tmp_path):
    text = run_xml().replace(
        '<Regression Type="10">Logistic - 5PL</Regression>', "<Regression>Linear</Regression>", 1
    )
    with pytest.warns(DataWarning, match=r"regression 'Linear' \(fitted 5PL\)"):
        cio.read(write(tmp_path, text))


@pytest.mark.parametrize(("old", "new"), [('<MWAnalyte RegionNumber="25"', '<MWAnalyte RegionNumber="²5"'),
                                          ('Reading Valid="true" Code="0"',
                                           'Reading Valid="true" Code="¹"')])  # fmt: skip
def test_unicode_digits_give_an_input_error_or_are_not_codes(tmp_path, old, new):
    # str.isdigit takes '²', which int() refuses: a ValueError escaped before.
    text = run_xml()
    assert old in text
    path = write(tmp_path, text.replace(old, new, 1))
    if "RegionNumber" in old:
        with pytest.raises(InputError, match="RegionNumber"):
            cio.read(path)
    else:
        table = cio.read(path)
        assert table["reading_code"].isna().sum() == 1


def test_bio_plex_normalisation_is_named_in_a_warning(tmp_path):
    # Bio-Plex then computes its concentrations from normalised FI; CytoSafe calibrates
    # the raw Readings, so the printed concentrations are no reference.
    settings = (
        '<NormalizationSettings NormalizationOn="true">'
        "<UsingNormFIForConcCalcs>true</UsingNormFIForConcCalcs></NormalizationSettings>\n"
    )
    off = '<NormalizationSettings NormalizationOn="false" />\n'
    assert off in run_xml()
    text = run_xml().replace(off, settings)
    with pytest.warns(DataWarning, match="normalisation is on"):
        cio.read(write(tmp_path, text))


def test_a_well_in_two_sample_groups_is_refused(tmp_path):
    # A control's well listed again under a standard: its role would depend on which
    # group's reading is taken. The writer refuses such a table; the reader now too.
    text = run_xml().replace('<MemberWell RowNo="3" ColNo="1"', '<MemberWell RowNo="1" ColNo="1"')
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=r"well A01 is a member of .* and of ") as info:
        cio.read(path)
    err = info.value
    assert "Control C1" in err.message and "Standard S1" in err.message
    assert (err.field, err.well) == ("MemberWell", "A01") and "<MemberWell" in line_of(
        path, err.row
    )
