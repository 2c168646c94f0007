"""The shipped simulated example study ``examples/cra-study``.

Two promises are checked: the files are exactly what ``examples/generate_cra_study.py``
writes with its seed (so nobody edits data by hand and the generator stays runnable),
and the truth tables agree with the design they claim to describe.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytosafe.curves.calibration import CalibrationSettings, calibrate
from cytosafe.io.samples import annotate
from cytosafe.schema.measurements import validate_measurements

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "generate_cra_study.py"
SHIPPED = ROOT / "examples" / "cra-study"
HAND_WRITTEN = {"README.md"}


def _load_generator():
    spec = importlib.util.spec_from_file_location("generate_cra_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cra-study")
    assert gen.main(["--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def study():
    return gen.simulate(gen.SEED)


def _csv(rel: str) -> pd.DataFrame:
    return pd.read_csv(SHIPPED / rel, keep_default_na=False, na_values=[""])


# --- the shipped files are the generator's output --------------------------------------
def test_regenerating_writes_the_same_set_of_files(regenerated):
    assert _files(regenerated) == _files(SHIPPED) - HAND_WRITTEN


LAYOUTS = {"tables": gen.write_tables, **{f.__name__: f for f in gen.EXPORTS}}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_regenerating_gives_byte_identical_files(study, layout, tmp_path):
    try:
        with gen.fixed_clock():
            written = LAYOUTS[layout](study, tmp_path)
    except ModuleNotFoundError as exc:
        pytest.skip(f"the generator needs {exc.name}, not written yet")
    differ = [
        rel
        for rel in sorted(p.relative_to(tmp_path).as_posix() for p in written)
        if not (SHIPPED / rel).exists()
        or (SHIPPED / rel).read_bytes() != (tmp_path / rel).read_bytes()
    ]
    assert not differ, (
        f"{len(differ)} shipped file(s) differ from the generator's output, e.g. {differ[:5]}; "
        "run `python examples/generate_cra_study.py` and review the change"
    )


def test_the_study_is_small_and_labelled_simulated():
    size = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file())
    assert size < 5_000_000
    assert "SIMULATED" in (SHIPPED / "README.md").read_text(encoding="utf-8")
    assert "SIMULATED" in (SHIPPED / "study.toml").read_text(encoding="utf-8")
    assert "python examples/generate_cra_study.py" in (SHIPPED / "README.md").read_text(
        encoding="utf-8"
    )


# --- the design ------------------------------------------------------------------------
def test_every_donor_gets_every_treatment_of_each_format():
    samples = _csv("design/samples.csv")
    per_cell = samples.groupby(["assay_format", "donor_id"]).size().unstack()
    assert list(per_cell.columns) == list(gen.DONORS)
    assert (per_cell.loc["whole_blood"] == 15).all()
    assert (per_cell.loc["pbmc_aqueous"] == 15).all()
    assert (per_cell.loc["pbmc_high_density"] == 4).all()
    assert samples["sample_id"].is_unique
    roles = samples.drop_duplicates("treatment").set_index("treatment")["treatment_role"]
    assert roles.to_dict() == {
        "medium": "negative_control",
        "vehicle": "vehicle",
        "isotype_IgG1": "isotype_control",
        "anti-CD3": "positive_control",
        "CD28-SA": "positive_control",
        "TA-1": "test",
        "TA-2": "test",
    }
    ta = samples[samples["treatment"].isin(["TA-1", "TA-2"])]
    assert sorted(ta["treatment_concentration"].unique()) == list(gen.TA_CONCENTRATIONS)


def test_plates_hold_at_most_96_wells_and_each_sample_in_duplicate(study):
    for platform, table in study.measurements.items():
        validate_measurements(table)
        wells = table.groupby("plate_id")["well"].nunique()
        assert (wells <= 96).all(), platform
        smp = table[table["sample_type"] == "sample"]
        n = smp.groupby(["plate_id", "sample_id", "analyte"]).size()
        assert (n == 2).all(), platform
        # sample names are unique per plate: one name, one donor x treatment x concentration
        key = ["donor_id", "assay_format", "treatment", "treatment_concentration"]
        assert (smp.groupby(["plate_id", "sample_id"])[key].nunique() == 1).all().all()


def test_standards_and_blanks_carry_the_vendor_names(study):
    names = {
        "msd": ({f"S{i:03d}" for i in range(1, 9)}, "Blank"),
        "luminex": ({f"Standard{i}" for i in range(1, 9)}, "Background0"),
        "elisa": ({f"STD{i}" for i in range(1, 9)}, "Blank"),
    }
    for platform, (standards, blank) in names.items():
        t = study.measurements[platform]
        assert set(t.loc[t["sample_type"] == "standard", "sample_id"]) == standards
        assert set(t.loc[t["sample_type"] == "blank", "sample_id"]) == {blank}
        top = t[t["sample_id"] == sorted(standards)[0]]["standard_concentration"]
        assert (
            top == t.groupby("analyte")["standard_concentration"].transform("max")[top.index]
        ).all()


def test_whole_blood_plasma_is_diluted_and_luminex_wells_have_bead_counts(study):
    msd = study.measurements["msd"]
    wb = msd[(msd["sample_type"] == "sample") & (msd["assay_format"] == "whole_blood")]
    assert (wb["dilution_factor"] == 2).all()
    lx = study.measurements["luminex"]
    assert lx["bead_count"].notna().all()
    low = lx[lx["bead_count"] < 35]
    assert 0 < low[["plate_id", "well"]].drop_duplicates().shape[0] <= 10


def test_sample_maps_name_every_sample_once_per_plate(study):
    for platform in ("msd", "luminex"):
        smap = _csv(f"{platform}/samples.csv")
        assert list(smap.columns) == list(gen.SAMPLE_MAP_COLUMNS)
        assert not smap.duplicated(["plate_id", "sample_id"]).any()
        t = study.measurements[platform]
        smp = t[t["sample_type"] == "sample"].drop_duplicates(["plate_id", "sample_id"])
        merged = smp.merge(smap, on=["plate_id", "sample_id"], suffixes=("", "_map"))
        assert len(merged) == len(smap) == len(smp)
        for col in ("donor_id", "treatment", "treatment_role", "assay_format"):
            assert (merged[col].astype(str) == merged[f"{col}_map"].astype(str)).all(), col
        assert np.allclose(merged["dilution_factor"], merged["dilution_factor_map"])


@pytest.mark.parametrize("platform", ["msd", "luminex"])
def test_an_export_joined_to_its_sample_map_gives_the_tidy_table(study, platform):
    tidy = study.measurements[platform]
    # what a reader knows: wells, names, standards and signals, not the cultures
    known = ["study_id", "plate_id", "well", "analyte", "sample_type", "sample_id"]
    known += ["standard_concentration", "replicate", "signal", "bead_count"]
    bare = tidy[[c for c in known if c in tidy.columns]]
    joined = annotate(bare, SHIPPED / platform / "samples.csv")[list(tidy.columns)]
    pd.testing.assert_frame_equal(joined, tidy, check_dtype=False)


def _same_measurements(read: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The tidy columns of ``expected`` equal those read back, row for row."""
    key = ["plate_id", "well", "analyte"]
    cols = [c for c in expected.columns if c in read.columns]
    got = read.sort_values(key, ignore_index=True)[cols]
    want = expected.sort_values(key, ignore_index=True)[cols]
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_categorical=False)


def test_msd_exports_read_back_to_the_tidy_table(study):
    from cytosafe.io.msd import read_msd

    files = sorted((SHIPPED / "msd").glob("plate_*.csv"))
    assert len(files) == 9
    read = pd.concat([read_msd(f, study_id=gen.STUDY_ID) for f in files], ignore_index=True)
    read = annotate(read, SHIPPED / "msd" / "samples.csv")
    _same_measurements(read, study.measurements["msd"])


def test_luminex_exports_read_back_to_the_tidy_table(study):
    from cytosafe.io.xponent import read_xponent

    files = sorted((SHIPPED / "luminex").glob("plate_*.csv"))
    assert len(files) == 9
    read = pd.concat([read_xponent(f) for f in files], ignore_index=True)
    read = annotate(read, SHIPPED / "luminex" / "samples.csv")
    _same_measurements(read, study.measurements["luminex"])


@pytest.mark.parametrize(
    ("file", "platform"),
    [
        ("measurements.csv", "msd"),
        ("measurements.xlsx", "msd"),
        ("luminex.csv", "luminex"),
        ("elisa.csv", "elisa"),
    ],
)
def test_tidy_files_read_back_to_the_tidy_table(study, file, platform):
    from cytosafe.io.tidy import read_tidy

    expected = study.measurements[platform]
    read = read_tidy(SHIPPED / "tidy" / file)
    assert set(expected.columns) <= set(read.columns)
    _same_measurements(read, expected)


def test_elisa_plate_map_and_reader_matrix_read_back_to_the_tidy_table(study):
    from cytosafe.io.platemap import read_plate

    read = read_plate(
        SHIPPED / "elisa" / "plate_map.csv",
        SHIPPED / "elisa" / "reader_matrix.csv",
        study_id=gen.STUDY_ID,
    )
    _same_measurements(read, study.measurements["elisa"])


# --- the truth -------------------------------------------------------------------------
def test_culture_truth_lies_on_the_4pl_of_each_donor_and_treatment():
    cultures = _csv("truth/cultures.csv")
    curves = _csv("truth/curves.csv")
    key = ["donor_id", "assay_format", "treatment", "analyte"]
    df = cultures.merge(curves, on=key, how="left", validate="many_to_one")
    assert len(df) == len(cultures) == len(_csv("design/samples.csv")) * len(gen.ANALYTES)
    x = df["treatment_concentration"].to_numpy()
    h, ec50 = df["hill"].to_numpy(), df["ec50"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(df["amplitude"] > 0, x**h / (x**h + ec50**h), 0.0)
    expected = df["baseline"] + df["amplitude"] * np.nan_to_num(frac)
    assert np.allclose(df["expected_concentration"], expected, rtol=2e-5)
    # the culture error is modest: no culture is more than ~5 SD off its curve
    log_err = np.log(df["true_concentration"] / df["expected_concentration"])
    assert np.abs(log_err).max() < 5 * gen.CULTURE_CV_LOG


def test_well_truth_is_the_culture_truth_divided_by_the_dilution(study):
    wells = _csv("truth/wells.csv")
    cultures = _csv("truth/cultures.csv").set_index(["sample_id", "analyte"])
    smp = wells[wells["sample_type"] == "sample"]
    truth = cultures.loc[pd.MultiIndex.from_frame(smp[["sample_id", "analyte"]])]
    assert np.array_equal(smp["true_concentration"].to_numpy(), truth["true_concentration"])
    assert np.allclose(
        smp["true_concentration_in_well"], smp["true_concentration"] / smp["dilution_factor"]
    )
    assert (wells.loc[wells["sample_type"] == "blank", "true_concentration"] == 0).all()
    # one truth row per measured plate x well x analyte, standards at their nominal value
    tidy = pd.concat(study.measurements.values(), ignore_index=True)
    merged = tidy.merge(wells, on=["plate_id", "well", "analyte"], validate="one_to_one")
    assert len(merged) == len(tidy) == len(wells)
    std = merged[merged["sample_type_x"] == "standard"]
    assert np.array_equal(std["standard_concentration"], std["true_concentration"])


def test_responders_follow_the_stated_rule():
    r = _csv("truth/responders.csv")
    kits = _csv("design/kits.csv")
    lloq = kits[kits["platform"] == "msd"].set_index("analyte")["nominal_lloq_in_well_pg_ml"]
    dil = [
        gen.dilution_factor("msd", f, t, c)
        for f, t, c in zip(r["assay_format"], r["treatment"], r["top_concentration"], strict=True)
    ]
    assert np.allclose(r["lloq_pg_ml"], r["analyte"].map(lloq) * dil, rtol=1e-3)
    rule = (r["top_concentration_pg_ml"] >= 2 * r["medium_concentration_pg_ml"]) & (
        r["top_concentration_pg_ml"] >= r["lloq_pg_ml"]
    )
    assert (r["responder"] == rule).all()
    # borderline: within 1.5-fold of either threshold; everything else is a clear call
    fold, top_over_lloq = r["fold_change"], r["top_concentration_pg_ml"] / r["lloq_pg_ml"]
    clear_yes = (fold >= 3.001) & (top_over_lloq >= 1.501)
    clear_no = (fold < 1.333) | (top_over_lloq < 0.666)
    assert not (r["borderline"] & (clear_yes | clear_no)).any()
    assert (r["borderline"] | clear_yes | clear_no).all()
    assert (r.loc[clear_yes, "responder"]).all() and not r.loc[clear_no, "responder"].any()
    # the top concentration is the treatment's highest, measured against the same donor's medium
    cultures = _csv("truth/cultures.csv")
    medium = cultures[cultures["treatment"] == "medium"].set_index(
        ["donor_id", "assay_format", "analyte"]
    )["true_concentration"]
    idx = pd.MultiIndex.from_frame(r[["donor_id", "assay_format", "analyte"]])
    assert np.array_equal(r["medium_concentration_pg_ml"], medium.loc[idx].to_numpy())


def test_the_expected_hazard_pattern():
    r = _csv("truth/responders.csv")
    hits = r[r["responder"]]
    donors = hits.groupby(["assay_format", "treatment"])["donor_id"].nunique()
    # no release from the Fc-silent antibody or any negative control
    assert not hits["treatment"].isin(["TA-2", "vehicle", "isotype_IgG1"]).any()
    # the positive control works in every donor of every format
    for fmt in ("whole_blood", "pbmc_aqueous", "pbmc_high_density"):
        assert donors[(fmt, "anti-CD3")] == 8
    # TA-1 releases in most donors; D07 (few target cells) not in whole blood
    assert donors[("whole_blood", "TA-1")] >= 6
    assert donors[("pbmc_aqueous", "TA-1")] >= 6
    d07 = hits[(hits["donor_id"] == "D07") & (hits["treatment"] == "TA-1")]
    assert "whole_blood" not in set(d07["assay_format"])
    # the CD28 superagonist is seen only after high-density pre-culture
    sa = r[r["treatment"] == "CD28-SA"]
    assert donors[("pbmc_high_density", "CD28-SA")] == 8
    assert not sa.loc[sa["assay_format"] != "pbmc_high_density", "responder"].any()


# --- the data behave like an immunoassay -----------------------------------------------
@pytest.mark.parametrize("platform", ["msd", "elisa"])
def test_back_calculated_concentrations_recover_the_truth(study, platform):
    cal = calibrate(study.measurements[platform], CalibrationSettings(model="4PL"))
    assert cal.qc["qc_pass"].all()
    w = cal.wells.merge(study.well_truth, on=["plate_id", "well", "analyte"])
    smp = w[w["sample_type_x"] == "sample"]
    assert smp["below_lloq"].any()  # unstimulated cytokines sit under the range
    if platform == "msd":
        assert 0 < smp["above_uloq"].mean() < 0.05  # and a few stimulated ones above it
    ok = smp[~smp["below_lloq"] & ~smp["above_uloq"]]
    log_ratio = np.log(ok["concentration"] / ok["true_concentration"])
    assert abs(np.median(log_ratio)) < 0.1
    assert np.quantile(np.abs(log_ratio), 0.9) < 0.3
