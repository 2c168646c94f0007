"""Calibration: standard curves per plate x analyte, back-calculation, LLOQ/ULOQ, flags, QC.

One curve is fitted to the standards of each plate x analyte (all curves in one batch),
every well is back-calculated through its own curve with a 95% interval, the quantifiable
range is read off the standards, and each value carries the flags a bioanalyst expects.

Acceptance rules (defaults; each is a field of :class:`CalibrationSettings`). Two sets of
them are named in :data:`ACCEPTANCE` and chosen with ``cytosafe quantify --acceptance``;
the sources disagree on how a run's range is read, so the choice is the user's:

* ``"cytosafe"`` (the defaults): the quantifiable range is read off this run's standards
  and every level inside it must pass. Multiplex cytokine panels are biomarker assays,
  outside ICH M10's scope (section 1) and validated fit for purpose (Lee et al., Pharm
  Res 2006;23:312-328); CytoSafe reads the range off each run's standards, and a level
  that fails inside the range ends the range there.
* ``"ich_m10"``: ICH M10's criteria for ligand-binding assays, for a lab that runs its
  CRA under them: at least 6 levels, at least 75 % of the standard levels in the range
  within limits (a failing inner level is tolerated and reported, not a break in the
  range; section 4.2.3 and, for study runs, 4.3.2), CV up to 25 % at the LLOQ and ULOQ
  (by analogy with section 4.2.4), kit controls at 3 levels at least (4.3.1), and at
  least half of them at each concentration level within limits besides two thirds of all
  of them (section 4.3.2). M10 counts the 75 % over the standards *excluding anchor
  points*; CytoSafe reads the range off the run, so the levels outside it (below the
  LLOQ, above the ULOQ) are its anchor points, and a standard the analyst excluded with a
  documented reason is not one of the run's standards.

The fields:

* **Calibrator accuracy** -- the back-calculated concentration of a standard level lies
  within 80-120% of nominal, 75-125% at the lowest and highest level of the range
  (the LLOQ and ULOQ). Source: ICH M10 *Bioanalytical method validation and study sample
  analysis* (2022), section 4.2.3 (ligand-binding assays: ±20%, ±25% at LLOQ/ULOQ), the
  same limits as the FDA *Bioanalytical Method Validation* guidance (2018), and DeSilva
  et al., Pharm Res 2003;20:1885-1900.
* **Precision** -- the CV of a level's replicate back-calculated concentrations at most
  20% (``max_cv``). ICH M10 sets no CV for calibration standards; its precision limits
  for QCs (section 4.2.4: 20 %, 25 % at the LLOQ and ULOQ) are applied by analogy, and
  the ``"ich_m10"`` set takes their 25 % at the ends (``end_max_cv``; the default keeps
  20 % there too). A level is judged
  on the mean of its replicates and their CV, as the vendors' software reports it, not
  replicate by replicate.
* **Quantifiable range** -- the longest run of consecutive standard levels whose two ends
  pass the end criteria and of whose levels at least ``min_passing_share`` pass (1: all
  of them, the default; 0.75 under ICH M10); LLOQ and ULOQ are the nominal concentrations
  of its ends. At least ``min_levels`` passing levels must lie in it (5 by default: fewer
  cannot identify a 5PL with any residual degrees of freedom; 6 under ICH M10), and a
  standard series with fewer levels is not fitted at all. A level that fails inside the
  range stays in the fit (leaving it out is the analyst's documented exclusion,
  :mod:`cytosafe.curves.exclusions`) and is counted in the QC table's
  ``levels_failing_in_range``.
* **Limit of detection** — mean blank signal plus 2.5 SD, back-calculated (the LLOD
  definition of Meso Scale Discovery's kit inserts); reported, not used for flags.
* **Kit controls** -- a control's back-calculated concentration *in the sample* (after
  its dilution factor, as xPONENT's % Recovery and Bio-Plex's (Obs/Exp) * 100) lies
  within ``recovery_range`` of its expected value; a curve passes when at least
  ``min_control_share`` (two thirds) of its controls do: the run acceptance rule of ICH
  M10 section 4.3.2 for ligand-binding assays (at least 67 % of the QCs within ±20 %).
  The same section also asks for at least 50 % at each concentration level
  (``min_control_level_share``; 0, not applied, by default; 0.5 under ``"ich_m10"``), and
  its section 4.3.1 QCs at 3 levels at least (``min_control_levels``; 0 by default, 3
  under ``"ich_m10"``: a curve with fewer judged control levels fails its controls). A
  control is judged on the mean of its replicate wells, and its level is its expected
  concentration.
* **Failed curves** — a curve that fails QC, or whose fit status is not in
  :data:`FIT_OK`, gives its sample and control wells the flag ``curve_failed`` and no
  concentration, unless the user accepts it (``accept_curves``: ``PLATE:ANALYTE`` or
  ``*``); a sample whose net signal is below the blank is ``below_blank``, not a number
  (issue 12, item 5).
* **Bead count** — fewer than 35 beads for an analyte in a well is flagged
  (``min_bead_count``); xPONENT protocols commonly acquire 50 beads per region and
  Luminex's xMAP guidance treats counts below ~35 as unreliable for the median.

Blanks (``blank=``), a documented choice because vendors differ:

* ``"zero_standard"`` (default): blanks enter the fit as a standard of concentration 0,
  anchoring the lower asymptote (the 5PL here is defined at ``x = 0``); as MSD Discovery
  Workbench treats the zero calibrator.
* ``"subtract"``: the plate's mean blank signal is subtracted from every signal before
  fitting, as xPONENT's Net MFI.
* ``"ignore"``: blanks are reported in QC only.

Weights 1/y and 1/y² need a rule for responses at or below zero, which blank subtraction
produces at the lowest standards. By default they get the weight of the curve's smallest
positive response (:func:`cytosafe.curves.fit.curve_weights`). With ``weight_floor`` set,
the weight is ``1 / max(|y|, weight_floor)`` (squared for 1/y²): xPONENT's rule (its
convention sets a floor of 1 MFI), with which our fit reaches the weighted RSS of the
Logistic 5P coefficients xPONENT prints on the drLumi export (measured; xPONENT does not
document it).

Asymmetry bounds: with ``asymmetry_bounds`` set, the 5PL's ``g`` is fitted within them
(:func:`cytosafe.curves.fit.fit_curves` ``bounds``): Bio-Plex Manager keeps ``g`` in
[0.1, 10] (its convention sets them; its own G-CSF curve of ``10JAN07_plate_1.xls`` sits
on g = 0.1).

Fit limits: every standard curve is fitted within :data:`CALIBRATION_LIMITS`, the
:class:`~cytosafe.curves.fit.FitLimits` defaults (slope, asymmetry and inflection relative
to the curve's own data; sources there) with asymptotes allowed up to 100 signal ranges
beyond the data instead of 10: MSD ECL curves whose top plateau lies far above the
highest standard reach ``d`` of 10-25 ranges on the demo study while back-calculating its
known truth within 10 % (``tests/test_examples.py``), and 100 ranges still rejects the
issue's fixtures by orders of magnitude (xPONENT IL1B: ``a = 2.9e14`` on a signal of
~2e4). Slopes may reach 20 instead of 10: Bio-Plex Manager's own mirror 5PL curves of
``10JAN07_plate_1.xls`` (G-CSF, IFN-g) have ``b = 11.6-11.8`` with ``g`` on its bound 0.1,
an effective slope ``b g`` of about 1.2, and our fit reproduces them; 20 still rejects the
issue's runaway slopes (potency keeps the default 10). A fit that runs beyond the limits
is ``degenerate`` and its wells get ``curve_failed``.

Back-calculation interval: the delta method on the inverse prediction. For a mean signal
``ȳ`` of ``k`` replicates, ``Var(x̂) ≈ [σ²/(w(ȳ)·k) + gᵀΣg] / f'(x̂)²`` with ``g = ∂f/∂θ``
at ``x̂`` and ``Σ`` the parameter covariance; the interval is symmetric on the log scale
with Student's t on the fit's residual degrees of freedom. Concentrations are reported in
the well (``concentration_in_well``) and in the sample (``concentration`` = in-well x
``dilution_factor``), in the curve's ``concentration_unit``: pg/mL, or an arbitrary unit
(IU/mL, ...) kept as the export wrote it (:mod:`cytosafe.schema.units`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cytosafe.curves.fit import FitLimits, FitResult, curve_weights, fit_curves
from cytosafe.curves.models import get_model
from cytosafe.errors import InputError
from cytosafe.schema.choices import BlankHandling, Covariance, CurveModel, Weighting, parse_choice
from cytosafe.schema.measurements import validate_measurements

__all__ = [
    "ACCEPTANCE",
    "FLAGS",
    "Calibration",
    "CalibrationSettings",
    "acceptance_fields",
    "acceptance_key",
    "acceptance_name",
    "calibrate",
    "calibrate_plates",
    "share_text",
]

#: Per-value flags, in the order they are reported.
FLAGS = (
    "no_curve",
    "curve_failed",
    "controls_failed",
    "below_blank",
    "outside_asymptotes",
    "below_lloq",
    "above_uloq",
    "extrapolated",
    "high_cv",
    "low_bead_count",
)

CURVE_KEY = ["study_id", "plate_id", "analyte"]

#: Fit statuses whose parameters may be used (:data:`cytosafe.curves.fit.STATUSES`): a
#: converged fit, or one that stopped improving within the fitter's tolerance ("stalled").
#: Anything else (``failed``, ``max_iter``, ``insufficient_data``, a ``degenerate`` fit, a
#: curve with too few levels) gives its wells ``curve_failed`` and no number.
FIT_OK = ("converged", "stalled")

#: The limits of a usable standard curve (module notes): FitLimits' defaults, asymptotes
#: within 100 signal ranges and slopes up to 20.
CALIBRATION_LIMITS = FitLimits(asymptote_ranges=100.0, slope=(0.1, 20.0))


@dataclass(frozen=True)
class CalibrationSettings:
    """Every choice calibration makes, recorded in results and reports.

    See the module docstring for the source of each default. ``model``, ``weighting``,
    ``blank`` and ``covariance`` take the strings of their enumerations in
    :mod:`cytosafe.schema.choices` (or the members) and hold the members, which equal
    their strings; an unknown choice is an :class:`~cytosafe.errors.InputError` here,
    naming the field and the choices, not later in the fit.

    Examples
    --------
    >>> CalibrationSettings(weighting="1/y").weighting == "1/y"
    True
    >>> CalibrationSettings(weighting="1/x")
    Traceback (most recent call last):
    ...
    cytosafe.errors.InputError: field 'weighting': unknown weighting '1/x' (expected none | 1/y | 1/y2 | 1/var)
    """

    model: CurveModel = CurveModel.FIVE_PL
    weighting: Weighting = Weighting.Y2
    blank: BlankHandling = BlankHandling.ZERO_STANDARD
    covariance: Covariance = Covariance.EXPECTED
    recovery_range: tuple[float, float] = (80.0, 120.0)
    end_recovery_range: tuple[float, float] = (75.0, 125.0)
    max_cv: float = 20.0
    end_max_cv: float = 20.0
    min_levels: int = 5
    min_passing_share: float = 1.0
    min_bead_count: float = 35.0
    confidence: float = 0.95
    lod_sd: float = 2.5
    min_control_share: float = 2 / 3
    min_control_level_share: float = 0.0
    min_control_levels: int = 0
    weight_floor: float | None = None
    asymmetry_bounds: tuple[float, float] | None = None
    accept_curves: tuple[str, ...] = ()
    control_failure: str = "flag"
    curve_models: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name, kind in _CHOICES.items():
            value = getattr(self, name)
            if name == "model" and _model_only(value):
                continue  # a family of curves.models not (yet) among the enumeration
            # Frozen: the validated member replaces the string it was given.
            object.__setattr__(self, name, parse_choice(kind, value, field=name))
        if not 0 < self.confidence < 1:
            raise InputError("confidence must lie between 0 and 1", field="confidence")
        if self.asymmetry_bounds is not None:
            low, high = (float(v) for v in self.asymmetry_bounds)
            if not 0 < low < high:
                raise InputError(
                    "asymmetry_bounds must be 0 < low < high",
                    field="asymmetry_bounds",
                    expected="e.g. (0.1, 10), Bio-Plex Manager's range of g",
                )
            object.__setattr__(self, "asymmetry_bounds", (low, high))
        if self.weight_floor is not None and not self.weight_floor > 0:
            raise InputError("weight_floor must be a positive signal", field="weight_floor")
        if self.min_levels < 4:
            raise InputError(
                "min_levels below 4 cannot identify a logistic curve", field="min_levels"
            )
        if self.min_control_levels < 0:
            raise InputError(
                f"min_control_levels must be 0 or more, not {self.min_control_levels}",
                field="min_control_levels",
            )
        for name in ("min_passing_share", "min_control_share", "min_control_level_share"):
            share = float(getattr(self, name))
            if not (0 < share <= 1 if name == "min_passing_share" else 0 <= share <= 1):
                raise InputError(
                    f"{name} must be a share of at most 1, not {share:g}",
                    field=name,
                    expected="a share, e.g. 0.75 for ICH M10's 75 % of the standards",
                )
        accepted = (
            (self.accept_curves,) if isinstance(self.accept_curves, str) else self.accept_curves
        )
        object.__setattr__(self, "accept_curves", tuple(str(a).strip() for a in accepted))
        for entry in self.accept_curves:
            if entry != "*" and ":" not in entry:
                raise InputError(
                    f"cannot read accepted curve '{entry}'",
                    field="accept_curves",
                    expected="PLATE:ANALYTE, or * for every curve",
                )
        if self.control_failure not in CONTROL_FAILURE:
            raise InputError(
                f"unknown control_failure '{self.control_failure}'",
                field="control_failure",
                expected=" | ".join(CONTROL_FAILURE),
            )
        pairs = dict(self.curve_models.items() if isinstance(self.curve_models, dict)
                     else self.curve_models)  # fmt: skip
        checked = []
        for curve, name in sorted(pairs.items()):
            if ":" not in str(curve):
                raise InputError(
                    f"cannot read curve '{curve}'", field="curve_models", expected="PLATE:ANALYTE"
                )
            member = name if _model_only(name) else parse_choice(CurveModel, name, field="model")
            checked.append((str(curve), str(member)))
        object.__setattr__(self, "curve_models", tuple(checked))

    def model_for(self, plate_id: object, analyte: object) -> str:
        """The model requested for the curve of ``plate_id`` x ``analyte``: its entry in
        ``curve_models`` (a vendor's printed family), else ``model``."""
        return dict(self.curve_models).get(f"{plate_id}:{analyte}", str(self.model))

    def accepts(self, plate_id: object, analyte: object) -> bool:
        """Whether the user accepted the curve of ``plate_id`` x ``analyte`` although it
        failed QC (``accept_curves``: ``PLATE:ANALYTE`` entries, ``*`` for all)."""
        return "*" in self.accept_curves or f"{plate_id}:{analyte}" in self.accept_curves

    def to_dict(self) -> dict:
        """The settings as plain JSON-ready values (choices as their strings)."""
        out = {k: _plain(v) for k, v in dataclasses.asdict(self).items()}
        out["accept_curves"] = list(self.accept_curves)
        out["curve_models"] = dict(self.curve_models)
        if self.asymmetry_bounds is not None:
            out["asymmetry_bounds"] = list(self.asymmetry_bounds)
        return out


#: What a curve whose kit controls fail the recovery rule does to its wells (module notes):
#: ``flag`` them ``controls_failed`` and keep their numbers, or ``withhold`` the numbers as
#: a failed curve's.
CONTROL_FAILURE = ("flag", "withhold")

#: The named sets of acceptance criteria (module notes; ``cytosafe quantify --acceptance``):
#: the fields each sets. :func:`acceptance_name` says which one a settings object holds.
#: The fields an acceptance set sets; CytoSafe's set is their defaults (sources in the
#: module notes), ICH M10's is spelled out, as its guideline states it.
_ACCEPTANCE_FIELDS = (
    "recovery_range", "end_recovery_range", "max_cv", "end_max_cv", "min_levels",
    "min_passing_share", "min_control_share", "min_control_level_share", "min_control_levels",
)  # fmt: skip
ACCEPTANCE: dict[str, dict[str, object]] = {
    "cytosafe": {
        f.name: f.default
        for f in dataclasses.fields(CalibrationSettings)
        if f.name in _ACCEPTANCE_FIELDS
    },
    # ICH M10 (2022), ligand-binding assays: 4.2.3 (calibration curve: >= 6 levels,
    # +/-20 %, +/-25 % at LLOQ and ULOQ, >= 75 % of the standards), 4.2.4 (CV <= 20 %,
    # <= 25 % at LLOQ and ULOQ), 4.3.2 (run acceptance: >= 2/3 of the QCs and >= 50 % at
    # each level within +/-20 %), 4.3.1 (a run holds QCs at 3 levels at least: low, medium,
    # high).
    "ich_m10": {
        "recovery_range": (80.0, 120.0),
        "end_recovery_range": (75.0, 125.0),
        "max_cv": 20.0,
        "end_max_cv": 25.0,
        "min_levels": 6,
        "min_passing_share": 0.75,
        "min_control_share": 2 / 3,
        "min_control_level_share": 0.5,
        "min_control_levels": 3,
    },
}

#: How each set is named in reports.
ACCEPTANCE_TITLES = {
    "cytosafe": "CytoSafe's defaults (every standard level in the range within limits)",
    "ich_m10": "ICH M10 (2022) for ligand-binding assays, sections 4.2.3, 4.2.4, 4.3.1 and 4.3.2",
}


def acceptance_name(settings: CalibrationSettings) -> str:
    """The named acceptance set ``settings`` holds (:data:`ACCEPTANCE`), or ``"custom"``
    when any of its acceptance fields differs from every named set.

    Examples
    --------
    >>> acceptance_name(CalibrationSettings())
    'cytosafe'
    >>> acceptance_name(CalibrationSettings(**ACCEPTANCE["ich_m10"]))
    'ich_m10'
    >>> acceptance_name(CalibrationSettings(max_cv=25.0))
    'custom'
    """
    for name, fields in ACCEPTANCE.items():
        if all(_same(getattr(settings, k), v) for k, v in fields.items()):
            return name
    return "custom"


def acceptance_key(name: str) -> str:
    """The key in :data:`ACCEPTANCE` of a set as a user writes it (``ICH-M10`` ->
    ``ich_m10``); an unknown name is an InputError."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in ACCEPTANCE:
        raise InputError(
            f"unknown acceptance criteria '{name}'",
            field="acceptance",
            expected=" | ".join(n.replace("_", "-") for n in ACCEPTANCE),
        )
    return key


def acceptance_fields(name: str) -> dict[str, object]:
    """The fields of the named acceptance set; an unknown name is an InputError."""
    return dict(ACCEPTANCE[acceptance_key(name)])


def _same(a: object, b: object) -> bool:
    if isinstance(b, tuple):
        return isinstance(a, (tuple, list)) and len(a) == len(b) and all(map(_same, a, b))
    return bool(np.isclose(float(a), float(b), rtol=0, atol=1e-9))


#: The forms ``5PL-auto`` chooses between, per curve, and the nested 4PL it falls back to
#: where neither 5PL form gives a usable fit (:func:`_calibrate_families`).
AUTO_FAMILIES = ("5PL", "5PL-mirror")
AUTO_FALLBACK = "4PL"

_CHOICES = {
    "model": CurveModel,
    "weighting": Weighting,
    "blank": BlankHandling,
    "covariance": Covariance,
}


def _model_only(value: object) -> bool:
    """A model name :mod:`cytosafe.curves.models` knows but :class:`CurveModel` does not
    list (the ``5PL-mirror`` family, which the vendor conventions need)."""
    from cytosafe.curves.models import MODELS

    return isinstance(value, str) and value in MODELS and value not in CurveModel.values()


def _plain(value: object) -> object:
    return str(value) if isinstance(value, str) else value


@dataclass
class Calibration:
    """Everything calibration produced.

    Attributes
    ----------
    wells: the measurement table with ``signal_used``, ``concentration_in_well``,
        ``concentration`` (in the sample, in the curve's ``concentration_unit``),
        ``ci_low``/``ci_high``, one boolean column
        per flag and a ``flags`` text column (``;``-separated).
    samples: one row per plate x analyte x replicate group (a sample, standard level or
        control): mean signal, CV, back-calculated mean with interval, flags; values in
        the curve's ``concentration_unit`` (pg/mL, or an arbitrary unit kept as written).
    curves: one row per plate x analyte: model parameters and errors, fit status, LLOQ,
        ULOQ, LOD, blank statistics.
    standards: one row per plate x analyte x standard level: nominal, mean signal,
        back-calculated concentration, recovery %, CV %, pass/fail, in range.
    qc: plate QC summary per plate x analyte with ``qc_pass`` and reasons.
    fit: the :class:`~cytosafe.curves.fit.FitResult` behind ``curves`` (with plates
        calibrated under different models, :func:`calibrate_plates`, that of the first
        group; ``curves["model"]`` names each curve's model).
    settings: the settings (of the first group of plates, see ``conventions``).
    conventions: one row per plate: the settings it was calibrated with and why
        (``reader``, ``model``, ``weighting``, ``blank``, ``signal``, ``source``,
        ``applied``); empty when one set of settings applied to every plate.
    """

    wells: pd.DataFrame
    samples: pd.DataFrame
    curves: pd.DataFrame
    standards: pd.DataFrame
    qc: pd.DataFrame
    fit: FitResult
    settings: CalibrationSettings
    curve_points: dict = field(default_factory=dict)
    conventions: pd.DataFrame = field(default_factory=pd.DataFrame)


def _group_key(df: pd.DataFrame) -> pd.Series:
    """Replicate group of each row: the sample name, else the culture description; either
    way at one dilution and one expected concentration. Wells of one name at two dilutions
    (a sample run neat and 1:4) or two expected values (two control levels given one
    description) are not replicates of one another: averaged, their signals gave a number
    that was neither (a Bio-Plex XML group's Description is shared so in practice)."""
    parts = ["sample_type", "donor_id", "treatment", "treatment_concentration", "assay_format", "incubation_h",
             "dilution_factor", "standard_concentration"]  # fmt: skip
    text = [df[c].astype(object).where(df[c].notna(), "").astype(str) for c in parts]
    described = text[0].str.cat(text[1:], sep="|")
    by_name = text[0].str.cat(
        [df["sample_id"].astype(object).where(df["sample_id"].notna(), "").astype(str),
         text[6], text[7]],
        sep="|",
    )  # fmt: skip
    return by_name.where(df["sample_id"].notna(), described)


def _pad(
    groups: np.ndarray, values: list[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Pad rows grouped by integer id ``groups`` into ``(n_groups, max_len)`` arrays."""
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    n = int(g.max()) + 1 if g.size else 0
    counts = np.bincount(g, minlength=n)
    width = int(counts.max()) if n else 0
    pos = np.arange(g.size) - np.repeat(np.cumsum(counts) - counts, counts)
    mask = np.zeros((n, width), dtype=bool)
    mask[g, pos] = True
    out = []
    for v in values:
        arr = np.full((n, width), np.nan)
        arr[g, pos] = v[order]
        out.append(arr)
    return mask, out, order


def t_quantile(q, df):
    """Student's t quantile ``q`` on ``df`` degrees of freedom (``scipy.stats.t.ppf``).

    ``scipy.special.stdtrit`` is the function ``scipy.stats.t.ppf`` evaluates, bit for bit
    on finite ``df >= 1`` and ``0 < q < 1``; importing it costs a tenth of what importing
    ``scipy.stats`` does (0.6 s of CPU), which a quantification run no longer pays.
    """
    from scipy.special import stdtrit

    return stdtrit(df, q)


def _validated(measurements: pd.DataFrame, validated: bool) -> pd.DataFrame:
    """A fresh, validated copy of ``measurements`` with a 0..n-1 index (the caller adds
    columns to it): :func:`validate_measurements`, or a copy when ``validated``."""
    if not validated:
        return validate_measurements(measurements)
    return measurements.reset_index(drop=True).copy()


def calibrate(
    measurements: pd.DataFrame,
    settings: CalibrationSettings | None = None,
    *,
    kernel: str = "auto",
    validated: bool = False,
) -> Calibration:
    """Fit standard curves and back-calculate every well of a measurement table.

    Parameters
    ----------
    measurements:
        The tidy measurement table (validated here unless ``validated``).
    settings:
        :class:`CalibrationSettings`; defaults to 5PL, 1/y² weights, blanks as the zero
        standard.
    kernel:
        The fitter's kernel (:func:`~cytosafe.curves.fit.fit_curves`): ``"auto"`` (the
        compiled one for large batches when Numba is installed, else NumPy), ``"numpy"``
        or ``"compiled"``. A small study never loads Numba under ``"auto"``.
    validated:
        The table is already the output of
        :func:`~cytosafe.schema.measurements.validate_measurements` (a workflow validates
        once where it reads; validating again costs a tenth of a second per call and
        changes nothing).

    Returns
    -------
    Calibration

    Raises
    ------
    InputError
        When a plate x analyte has fewer than ``min_levels`` standard levels (or none),
        naming the plate, analyte and source file.
    """
    settings = settings or CalibrationSettings()
    if settings.model == CurveModel.FIVE_PL_AUTO or settings.curve_models:
        return _calibrate_families(measurements, settings, kernel=kernel, validated=validated)
    model = get_model(settings.model)
    df = _validated(measurements, validated)
    df["curve_id"] = df.groupby(CURVE_KEY, sort=True, observed=True).ngroup()
    keys = (
        df.drop_duplicates("curve_id")
        .sort_values("curve_id")[[*CURVE_KEY, "curve_id"]]
        .reset_index(drop=True)
    )
    n_curves = len(keys)

    excluded = df["exclude"].to_numpy(dtype=bool)
    is_std = (df["sample_type"] == "standard").to_numpy() & ~excluded
    is_blank = (df["sample_type"] == "blank").to_numpy() & ~excluded
    levels = df.loc[is_std].groupby("curve_id")["standard_concentration"].nunique()
    levels = levels.reindex(range(n_curves), fill_value=0)
    # A curve with too few levels cannot be calibrated; it gets a status and a reason and
    # every other curve goes on (issue 12, item 6).
    short = (levels < settings.min_levels).to_numpy()

    # Blank statistics and blank subtraction.
    cid = df["curve_id"].to_numpy()
    sig = df["signal"].to_numpy(dtype=float)
    bl_n = np.bincount(cid[is_blank], minlength=n_curves).astype(float)
    bl_s1 = np.bincount(cid[is_blank], weights=sig[is_blank], minlength=n_curves)
    bl_s2 = np.bincount(cid[is_blank], weights=sig[is_blank] ** 2, minlength=n_curves)
    with np.errstate(invalid="ignore", divide="ignore"):
        blank_mean = np.where(bl_n > 0, bl_s1 / bl_n, np.nan)
        blank_sd = np.where(
            bl_n > 1, np.sqrt(np.maximum(bl_s2 - bl_n * blank_mean**2, 0) / (bl_n - 1)), np.nan
        )
    used = sig.copy()
    if settings.blank == BlankHandling.SUBTRACT:
        used = sig - np.nan_to_num(blank_mean[cid])
    df["signal_used"] = used

    # One batch fit over every curve.
    in_fit = is_std | (is_blank & (settings.blank == BlankHandling.ZERO_STANDARD))
    xs = np.where(is_std, df["standard_concentration"].to_numpy(dtype=float), 0.0)
    in_fit &= ~short[cid] & np.isfinite(used)
    if in_fit.any():
        mask, (X, Y), _ = _pad(cid[in_fit], [xs[in_fit], used[in_fit]])
    else:
        mask, X, Y = np.zeros((0, 1), dtype=bool), np.zeros((0, 1)), np.zeros((0, 1))
    if X.shape[0] < n_curves:  # trailing curves without standards: empty rows
        extra = n_curves - X.shape[0]
        width = max(X.shape[1], 1)
        X = np.vstack([np.pad(X, ((0, 0), (0, width - X.shape[1])), constant_values=np.nan),
                       np.full((extra, width), np.nan)])  # fmt: skip
        Y = np.vstack([np.pad(Y, ((0, 0), (0, width - Y.shape[1])), constant_values=np.nan),
                       np.full((extra, width), np.nan)])  # fmt: skip
        mask = np.vstack([np.pad(mask, ((0, 0), (0, width - mask.shape[1]))),
                          np.zeros((extra, width), dtype=bool)])  # fmt: skip
    floor = _floor(settings)
    explicit = None
    if floor is not None:
        with np.errstate(all="ignore"):
            raw = np.where(mask, _floored(Y, settings.weighting, floor), 0.0)
            weight_norm = raw.sum(1) / np.maximum(mask.sum(1), 1)
            explicit = raw / np.where(weight_norm > 0, weight_norm, 1.0)[:, None]
    fit = fit_rows(
        X, Y, mask, ~short & mask.any(1), model, settings.weighting, settings.covariance,
        weights=explicit, limits=CALIBRATION_LIMITS, kernel=kernel,
        bounds=(
            {"g": settings.asymmetry_bounds}
            if settings.asymmetry_bounds is not None and "g" in model.names
            else None
        ),
    )  # fmt: skip
    with np.errstate(all="ignore"):  # curves without fitted points have no weights
        if explicit is None:
            raw_w = curve_weights(X, Y, mask, settings.weighting)
            weight_norm = _weight_normaliser(X, Y, mask, settings.weighting)
        else:
            raw_w = explicit
    fit.status = np.where(short, "too_few_levels", fit.status).astype(object)
    accepted = np.array(
        [settings.accepts(p, a) for p, a in zip(keys["plate_id"], keys["analyte"], strict=True)],
        dtype=bool,
    )
    # A degenerate fit still has parameters: the analyst may accept it (issue 12, item 5);
    # a failed fit or a curve with too few levels has none to accept.
    usable = np.isin(fit.status, FIT_OK) | (accepted & (fit.status == "degenerate"))
    usable &= np.all(np.isfinite(fit.params), axis=1)

    # Replicate groups (samples, standard levels, controls) per curve.
    df["group"] = _group_key(df)
    df["group_id"] = df.groupby(["curve_id", "group", "exclude"], sort=False).ngroup()
    grp = df["group_id"].to_numpy()
    n_grp = int(grp.max()) + 1
    g_n = np.bincount(grp, minlength=n_grp).astype(float)
    g_mean = np.bincount(grp, weights=used, minlength=n_grp) / g_n
    g_curve = np.zeros(n_grp, dtype=int)
    g_curve[grp] = cid

    params = fit.params
    t_crit = t_quantile(0.5 + settings.confidence / 2, np.maximum(fit.df, 1))

    def back_calc(signal: np.ndarray, curve: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, ...]:
        p = params[curve]
        xhat = model.inverse(signal[:, None], p)[:, 0]
        ok = usable[curve] & np.isfinite(xhat)
        xh = np.where(ok, xhat, 1.0)
        J = model.jac(xh[:, None], p)[:, 0, :]
        cov = fit.cov[curve]
        var_curve = np.einsum("ik,ikl,il->i", J, cov, J)
        with np.errstate(all="ignore"):  # curves without fitted points have no weights
            if floor is None:
                w_new = _weight_at(
                    signal, curve, settings.weighting, weight_norm, X, Y, mask, raw_w
                )
            else:
                w_new = _floored(signal, settings.weighting, floor) / weight_norm[curve]
        var_obs = fit.sigma[curve] ** 2 / (w_new * k)
        slope = model.dfdx(xh[:, None], p)[:, 0]
        with np.errstate(all="ignore"):
            se_x = np.sqrt(var_curve + var_obs) / np.abs(slope)
            half = t_crit[curve] * se_x / xh
            lo, hi = xh * np.exp(-half), xh * np.exp(half)
        lo = np.where(ok & np.isfinite(lo), lo, np.nan)
        hi = np.where(ok & np.isfinite(hi), hi, np.nan)
        return np.where(ok, xhat, np.nan), lo, hi

    well_x, well_lo, well_hi = back_calc(used, cid, np.ones_like(used))
    grp_x, grp_lo, grp_hi = back_calc(g_mean, g_curve, g_n)

    # Replicate CV (of back-calculated concentrations where all replicates back-calculate,
    # else of the signal).
    def group_cv(values: np.ndarray) -> np.ndarray:
        v = np.where(np.isfinite(values), values, 0.0)
        fin = np.bincount(grp, weights=np.isfinite(values).astype(float), minlength=n_grp)
        s1 = np.bincount(grp, weights=v, minlength=n_grp)
        s2 = np.bincount(grp, weights=v**2, minlength=n_grp)
        with np.errstate(all="ignore"):
            mean = s1 / fin
            sd = np.sqrt(np.maximum(s2 - fin * mean**2, 0) / (fin - 1))
            cv = 100 * sd / np.abs(mean)
        return np.where((fin == g_n) & (g_n > 1), cv, np.nan), mean

    cv_conc, mean_conc = group_cv(well_x)
    cv_sig, _ = group_cv(used)
    cv = np.where(np.isfinite(cv_conc), cv_conc, cv_sig)

    # Standards table and the quantifiable range.
    std_tab, lloq, uloq = _standards_table(
        df, is_std, grp, g_mean, grp_x, cv, mean_conc, usable, n_curves, settings
    )
    x_min = np.full(n_curves, np.nan)
    x_max = np.full(n_curves, np.nan)
    xs_std = df.loc[is_std, "standard_concentration"].to_numpy(dtype=float)
    np.fmin.at(x_min, cid[is_std], xs_std)
    np.fmax.at(x_max, cid[is_std], xs_std)

    # LOD: blank mean + lod_sd * SD, back-calculated.
    lod_signal = blank_mean + settings.lod_sd * blank_sd
    if settings.blank == BlankHandling.SUBTRACT:
        lod_signal = settings.lod_sd * blank_sd
    lod, _, _ = back_calc(
        np.nan_to_num(lod_signal, nan=-np.inf), np.arange(n_curves), np.ones(n_curves)
    )
    lod = np.where(np.isfinite(lod_signal), lod, np.nan)

    # Flags per well and per group.
    a_idx, d_idx = model.names.index("a"), model.names.index("d")
    lo_asym = np.fmin(params[:, a_idx], params[:, d_idx])
    hi_asym = np.fmax(params[:, a_idx], params[:, d_idx])
    rising = params[:, d_idx] >= params[:, a_idx]

    # Net signal: above the plate's mean blank (the signal itself when blanks were
    # subtracted). A sample or control below it has no concentration: ``below_blank``.
    offset = np.zeros(n_curves) if settings.blank == BlankHandling.SUBTRACT else blank_mean
    measured = ~df["sample_type"].isin(["standard", "blank"]).to_numpy()
    g_measured = np.zeros(n_grp, dtype=bool)
    g_measured[grp] = measured

    def flags_for(signal, xhat, curve, cvs, beads, study):
        no_curve = ~usable[curve]
        with np.errstate(invalid="ignore"):
            below_blank = study & np.isfinite(offset[curve]) & (signal - offset[curve] < 0)
        outside = ~no_curve & ~((signal > lo_asym[curve]) & (signal < hi_asym[curve]))
        low_signal = np.where(rising[curve], signal <= lo_asym[curve], signal >= hi_asym[curve])
        below = ~no_curve & ((xhat < lloq[curve]) | (outside & low_signal) | np.isnan(lloq[curve]))
        above = ~no_curve & ((xhat > uloq[curve]) | (outside & ~low_signal)) & ~below
        extrap = ~no_curve & np.isfinite(xhat) & ((xhat < x_min[curve]) | (xhat > x_max[curve]))
        return {
            "no_curve": no_curve,
            "curve_failed": np.zeros_like(no_curve),  # set once QC has judged the curve
            "controls_failed": np.zeros_like(no_curve),  # likewise
            "below_blank": below_blank,
            "outside_asymptotes": outside,
            "below_lloq": below,
            "above_uloq": above,
            "extrapolated": extrap,
            "high_cv": np.nan_to_num(cvs, nan=0.0) > settings.max_cv,
            "low_bead_count": np.nan_to_num(beads, nan=np.inf) < settings.min_bead_count,
        }

    beads = df["bead_count"].to_numpy(dtype=float)
    well_flags = flags_for(used, well_x, cid, cv[grp], beads, measured)
    g_beads = np.full(n_grp, np.inf)
    np.fmin.at(g_beads, grp, np.nan_to_num(beads, nan=np.inf))
    grp_flags = flags_for(g_mean, grp_x, g_curve, cv, g_beads, g_measured)

    dil = df["dilution_factor"].to_numpy(dtype=float)
    wells = df.drop(columns=["group", "group_id", "curve_id"]).copy()
    wells["concentration_in_well"] = well_x
    wells["concentration"] = well_x * dil
    wells["ci_low"] = well_lo * dil
    wells["ci_high"] = well_hi * dil
    wells["replicate_cv"] = cv[grp]
    wells["lloq"] = lloq[cid] * dil
    wells["uloq"] = uloq[cid] * dil
    for name in FLAGS:
        wells[name] = well_flags[name]
    wells["flags"] = _flag_text(well_flags)

    first = df.drop_duplicates("group_id").set_index("group_id").sort_index()
    samples = first[[*CURVE_KEY, "sample_type", "sample_id", "donor_id", "treatment", "treatment_role",
                     "treatment_concentration", "treatment_unit", "assay_format", "incubation_h",
                     "dilution_factor", "standard_concentration",
                     "concentration_unit"]].copy()  # fmt: skip
    g_dil = first["dilution_factor"].to_numpy(dtype=float)
    samples["n_replicates"] = g_n.astype(int)
    samples["mean_signal"] = g_mean
    samples["cv"] = cv
    samples["concentration_in_well"] = grp_x
    samples["concentration"] = grp_x * g_dil
    samples["ci_low"] = grp_lo * g_dil
    samples["ci_high"] = grp_hi * g_dil
    samples["lloq"] = lloq[g_curve] * g_dil
    samples["uloq"] = uloq[g_curve] * g_dil
    for name in FLAGS:
        samples[name] = grp_flags[name]
    samples["flags"] = _flag_text(grp_flags)
    samples = samples.reset_index(drop=True)

    curves = keys.drop(columns="curve_id").copy()
    curves["model"] = model.name
    curves["weighting"] = str(settings.weighting)
    curves["blank_handling"] = str(settings.blank)
    fr = fit.to_frame()
    curves = pd.concat([curves, fr], axis=1)
    why = fit.reason if fit.reason is not None else np.full(n_curves, "", dtype=object)
    curves["fit_reason"] = np.where(short, "", why)
    curves["n_levels"] = levels.to_numpy()
    curves["lloq"] = lloq
    curves["uloq"] = uloq
    curves["lod"] = lod
    curves["min_standard"] = x_min
    curves["max_standard"] = x_max
    curves["blank_n"] = bl_n.astype(int)
    curves["blank_mean"] = blank_mean
    curves["blank_sd"] = blank_sd
    with np.errstate(all="ignore"):
        curves["blank_cv"] = 100 * blank_sd / blank_mean
    curves["formula"] = model.formula

    qc = _plate_qc(curves, std_tab, samples, settings)
    qc["accepted"] = accepted & ~qc["qc_pass"].to_numpy(dtype=bool) & usable
    controls_bad = ~qc["controls_pass"].to_numpy(dtype=bool)
    failed = (~qc["curve_pass"].to_numpy(dtype=bool) | ~usable) & ~(accepted & usable)
    if settings.control_failure == "withhold":
        failed |= controls_bad & ~(accepted & usable)
    curves["curve_failed"] = failed
    curves["controls_failed"] = controls_bad
    _fail_rows(wells, failed[cid] & measured, controls_bad[cid] & measured)
    _fail_rows(samples, failed[g_curve] & g_measured, controls_bad[g_curve] & g_measured)
    points = {"x": X, "y": Y, "mask": mask}
    return Calibration(wells, samples, curves, std_tab, qc, fit, settings, points)


def curve_keys(table: pd.DataFrame) -> list[tuple[str, str, str]]:
    """The ``(study_id, plate_id, analyte)`` of each row, as strings: the key of its curve."""
    return list(zip(*(table[k].astype(str) for k in CURVE_KEY), strict=True))


def _calibrate_families(
    measurements: pd.DataFrame,
    settings: CalibrationSettings,
    *,
    kernel: str = "auto",
    validated: bool = False,
) -> Calibration:
    """:func:`calibrate` where curves need different families: ``curve_models`` names a
    family per curve (a vendor's printed one), and ``5PL-auto`` curves take the 5PL form
    with the smaller AIC, or the 4PL where neither form gives a usable fit.

    Each family is calibrated on its own curves, and ``5PL-auto`` curves in both 5PL
    forms; every curve then keeps its own family's result, so a curve's numbers are
    exactly those of :func:`calibrate` with its family. The choice (AIC of each form, the
    status of a form not chosen) is the curve's ``model_choice``.

    The criterion is Akaike's information criterion for weighted least squares,
    ``AIC = n log(RSS_w / n) + 2 (p + 1)`` (Motulsky & Christopoulos, *Fitting models to
    biological data*, 2004, ch. 22); both forms have 5 parameters and the same weights, so
    it keeps the smaller weighted RSS, the choice xPONENT's own least squares makes when
    its printed slope may take either sign (:mod:`cytosafe.curves.models`). A fit whose
    status is usable (:data:`FIT_OK`, with a covariance) is preferred to one that is not
    (``degenerate``, or ``unidentified``: converged but with a rank-deficient Jacobian, such
    as a slope of 19 against an asymmetry of 0.05, so no interval). Where both 5PL forms are
    degenerate or unidentified (their asymmetry or asymptotes run beyond
    :data:`CALIBRATION_LIMITS`: the data do not determine the fifth parameter) and the
    4PL, the 5PL at ``g = 1`` where both forms meet, is usable, the curve takes the 4PL,
    the model the data support (Gottschalk & Dunn, Anal Biochem 2005;343:54-65, on the 5PL's
    asymmetry being poorly determined unless both ends of the curve are sampled).
    """
    df = _validated(measurements, validated)
    df["_row"] = np.arange(len(df))
    key = curve_keys(df)
    asked = {k: settings.model_for(k[1], k[2]) for k in dict.fromkeys(key)}
    row_ask = np.array([asked[k] for k in key], dtype=object)
    auto = str(CurveModel.FIVE_PL_AUTO)
    families = list(dict.fromkeys(
        f for a in asked.values()
        for f in ((*AUTO_FAMILIES, AUTO_FALLBACK) if a == auto else (a,))
    ))  # fmt: skip
    tried = (*AUTO_FAMILIES, AUTO_FALLBACK)
    plain = dataclasses.replace(settings, curve_models=())
    cals: dict[str, Calibration] = {}
    for fam in families:
        rows = (row_ask == fam) | ((row_ask == auto) & (fam in tried))
        cals[fam] = calibrate(
            df.loc[rows], dataclasses.replace(plain, model=fam), kernel=kernel, validated=True
        )

    def fits(fam: str) -> dict:
        c = cals[fam].curves
        ks = curve_keys(c)
        n = c["n_obs"].to_numpy(dtype=float)
        with np.errstate(all="ignore"):
            aic = n * np.log(np.maximum(c["rss"].to_numpy(dtype=float), 1e-300) / n)
        names = get_model(fam).names
        aic = aic + 2 * (len(names) + 1)
        # A fit without a covariance has parameters the data do not identify (the scaled
        # Jacobian is rank-deficient): usable alone, but not preferred to one that has.
        se = np.isfinite(c[[f"{n}_se" for n in names]].to_numpy(dtype=float)).all(1)
        status = np.where(np.isin(c["status"], FIT_OK) & ~se, "unidentified", c["status"])
        return {
            k: (a if np.isfinite(a) else np.inf, st)
            for k, a, st in zip(ks, aic, status, strict=True)
        }

    table = {fam: fits(fam) for fam in families}
    chosen: dict[tuple, str] = {}
    why: dict[tuple, str] = {}
    for k, ask in asked.items():
        if ask != auto:
            chosen[k], why[k] = ask, ""
            continue
        seen = [(fam, *table[fam][k]) for fam in AUTO_FAMILIES]
        usable = [s for s in seen if s[2] in FIT_OK]
        fallback = (AUTO_FALLBACK, *table[AUTO_FALLBACK][k])
        if usable or fallback[2] not in FIT_OK:
            tier = {"unidentified": 1}  # then degenerate and the rest
            best = min(seen, key=lambda s: (0 if s[2] in FIT_OK else tier.get(s[2], 2), s[1]))
            how = "the smaller AIC" if usable else "neither 5PL form is usable"
        else:
            best, how = fallback, "neither 5PL form is usable"
            seen.append(fallback)
        chosen[k] = best[0]
        why[k] = f"{best[0]}: {how} (AIC " + "; ".join(
            f"{fam} {aic:.1f}" + ("" if st in FIT_OK else f" {st}")
            for fam, aic, st in seen
        ) + ")"  # fmt: skip

    parts = []
    for fam in families:
        cal = cals[fam]
        keep = {k for k, f in chosen.items() if f == fam}
        if not keep:
            continue

        def mine(t: pd.DataFrame, keep=keep) -> pd.DataFrame:
            return t.loc[[k in keep for k in curve_keys(t)]]

        curves = mine(cal.curves).copy()
        curves["model_choice"] = [why[k] for k in curve_keys(curves)]
        part = Calibration(
            wells=mine(cal.wells), samples=mine(cal.samples), curves=curves,
            standards=mine(cal.standards), qc=mine(cal.qc), fit=cal.fit, settings=settings,
            curve_points=cal.curve_points,
        )  # fmt: skip
        parts.append(part)
    parts.sort(key=lambda p: -len(p.curves))  # the commonest family's fit first
    out = parts[0] if len(parts) == 1 else _join(parts)
    out.wells = out.wells.sort_values("_row", kind="mergesort").drop(columns="_row")
    for name in ("samples", "curves", "standards", "qc"):
        frame = getattr(out, name).sort_values(CURVE_KEY, kind="mergesort")
        setattr(out, name, frame.reset_index(drop=True))
    out.wells = out.wells.reset_index(drop=True)
    out.settings = settings
    return out


def _floor(settings: CalibrationSettings) -> float | None:
    """The weight floor that applies: only to 1/y and 1/y² weights."""
    if settings.weight_floor is None or settings.weighting not in (Weighting.Y, Weighting.Y2):
        return None
    return float(settings.weight_floor)


def _floored(values: np.ndarray, weighting: Weighting, floor: float) -> np.ndarray:
    """``1 / max(|y|, floor)`` (squared for 1/y²): xPONENT's weights (module notes)."""
    base = np.maximum(np.abs(np.nan_to_num(values, nan=floor)), floor)
    return 1.0 / base if weighting == Weighting.Y else 1.0 / base**2


def fit_rows(
    X,
    Y,
    mask,
    rows,
    model,
    weighting,
    covariance=Covariance.EXPECTED,
    weights=None,
    limits: FitLimits | None = None,
    bounds: dict | None = None,
    kernel: str = "auto",
) -> FitResult:
    """:func:`~cytosafe.curves.fit.fit_curves` on the curves ``rows`` only.

    The others (too few levels or points to identify the model) get NaN parameters and
    status ``insufficient_data`` (a caller may name it better), so that one curve that
    cannot be fitted never disturbs the batch. ``kernel`` is the fitter's (``"auto"``,
    ``"numpy"``, ``"compiled"``).
    """
    n, k = X.shape[0], model.n_params
    idx = np.flatnonzero(rows)
    if idx.size == n:
        return fit_curves(X, Y, model=model, weighting=weighting, mask=mask,
                          covariance=covariance, weights=weights, limits=limits or FitLimits(),
                          bounds=bounds, kernel=kernel)  # fmt: skip
    full = FitResult(
        model=model, params=np.full((n, k), np.nan), se=np.full((n, k), np.nan),
        cov=np.full((n, k, k), np.nan), rss=np.full(n, np.nan), df=np.zeros(n, dtype=int),
        sigma=np.full(n, np.nan), status=np.full(n, "insufficient_data", dtype=object),
        n_iter=np.zeros(n, dtype=int), n_obs=mask.sum(1).astype(int),
        fixed=np.zeros((n, k), dtype=bool), weighting=str(weighting), covariance=str(covariance),
        reason=np.full(n, "", dtype=object),
    )  # fmt: skip
    if idx.size:
        part = fit_curves(X[idx], Y[idx], model=model, weighting=weighting, mask=mask[idx],
                          covariance=covariance, limits=limits or FitLimits(), bounds=bounds,
                          weights=None if weights is None else weights[idx],
                          kernel=kernel)  # fmt: skip
        for name in ("params", "se", "cov", "rss", "df", "sigma", "status", "n_iter", "n_obs",
                     "fixed"):  # fmt: skip
            arr = getattr(full, name)
            arr = arr.astype(np.result_type(arr, getattr(part, name)))
            arr[idx] = getattr(part, name)
            setattr(full, name, arr)
        if part.reason is not None:
            full.reason[idx] = part.reason
        full.extra = part.extra
    return full


_VALUE_COLUMNS = ("concentration_in_well", "concentration", "ci_low", "ci_high")


def _fail_rows(table: pd.DataFrame, failed: np.ndarray, controls: np.ndarray) -> None:
    """No number from a failed curve, and none below the blank (issue 12, item 5): flag
    ``curve_failed`` and blank the values of ``failed`` rows and of ``below_blank`` rows;
    flag ``controls_failed`` the rows whose curve's kit controls failed."""
    table["curve_failed"] = failed
    table["controls_failed"] = controls
    gone = failed | table["below_blank"].to_numpy(dtype=bool)
    for col in _VALUE_COLUMNS:
        table[col] = table[col].where(~gone)
    flags = {name: table[name].to_numpy(dtype=bool) for name in FLAGS}
    table["flags"] = _flag_text(flags)


def calibrate_plates(
    measurements: pd.DataFrame,
    plate_settings: dict[tuple[str, str], CalibrationSettings],
    conventions: pd.DataFrame | None = None,
    *,
    kernel: str = "auto",
    validated: bool = False,
) -> Calibration:
    """Calibrate each plate with its own settings (a reader's vendor convention).

    Plates with equal settings are calibrated together by :func:`calibrate`; the results
    are joined into one :class:`Calibration`, each curve naming its model, weighting and
    blank handling in ``curves``. ``plate_settings`` maps ``(study_id, plate_id)`` to
    settings (a plate it does not name gets the defaults); ``conventions`` is kept as
    :attr:`Calibration.conventions`. ``kernel`` and ``validated`` as in :func:`calibrate`
    (the table is validated once here, not again per group).
    """
    df = _validated(measurements, validated)
    # Settings are looked up once per plate, not per row (a settings object per row cost
    # 0.8 s of CPU on a 60-plate study); the groups and their rows come out in the same
    # order as a per-row grouping would give.
    codes, plates = pd.factorize(
        pd.MultiIndex.from_arrays([df["study_id"].astype(str), df["plate_id"].astype(str)])
    )
    default = CalibrationSettings()
    groups: dict[CalibrationSettings, list[int]] = {}
    for code, key in enumerate(plates):
        groups.setdefault(plate_settings.get(tuple(key), default), []).append(code)
    parts = [
        calibrate(
            df.iloc[np.flatnonzero(np.isin(codes, members))], s, kernel=kernel, validated=True
        )
        for s, members in groups.items()
    ]
    out = parts[0] if len(parts) == 1 else _join(parts)
    if conventions is not None:
        out.conventions = conventions.reset_index(drop=True)
    return out


def _join(parts: list[Calibration]) -> Calibration:
    """One :class:`Calibration` of several calibrated groups of plates."""

    def cat(name: str) -> pd.DataFrame:
        return pd.concat([getattr(p, name) for p in parts], ignore_index=True)

    fit = parts[0].fit
    if all(p.fit.model.name == fit.model.name for p in parts):
        fit = dataclasses.replace(
            fit,
            **{
                name: np.concatenate([getattr(p.fit, name) for p in parts])
                for name in (
                    "params",
                    "se",
                    "cov",
                    "rss",
                    "df",
                    "sigma",
                    "status",
                    "n_iter",
                    "n_obs",
                    "fixed",
                )
            },
        )
    return Calibration(
        wells=cat("wells"), samples=cat("samples"), curves=cat("curves"),
        standards=cat("standards"), qc=cat("qc"), fit=fit, settings=parts[0].settings,
        curve_points=parts[0].curve_points,
    )  # fmt: skip


def _weight_normaliser(X, Y, mask, weighting):
    """Mean raw weight over each curve's fitted points (``curve_weights`` scales to mean 1)."""
    if weighting in (Weighting.NONE, Weighting.VAR):
        return np.ones(X.shape[0])
    pos = mask & (Y > 0)
    floor = np.where(pos, Y, np.inf).min(1, keepdims=True)
    floor = np.where(np.isfinite(floor), floor, 1.0)
    yy = np.where(pos, Y, floor)
    raw = 1 / yy if weighting == Weighting.Y else 1 / yy**2
    return np.where(mask, raw, 0).sum(1) / np.maximum(mask.sum(1), 1)


def _weight_at(signal, curve, weighting, norm, X, Y, mask, w_fit):
    """Weight (on the fit's scale) of a new observation with ``signal`` on ``curve``."""
    if weighting == Weighting.NONE:
        return np.ones_like(signal)
    if weighting in (Weighting.Y, Weighting.Y2):
        pos = mask & (Y > 0)
        floor = np.where(pos, Y, np.inf).min(1)
        s = np.where(signal > 0, signal, floor[curve])
        raw = 1 / s if weighting == Weighting.Y else 1 / s**2
        return raw / norm[curve]
    # 1/var: the weight of the fitted point whose signal is nearest (log scale).
    ly = np.log(np.where(mask & (Y > 0), Y, np.nan))
    ls = np.log(np.where(signal > 0, signal, np.nan))
    dist = np.abs(ly[curve] - ls[:, None])
    dist = np.where(np.isfinite(dist), dist, np.inf)
    j = np.argmin(dist, axis=1)
    return w_fit[curve, j]


def _standards_table(df, is_std, grp, g_mean, grp_x, cv, mean_conc, usable, n_curves, settings):
    std = df.loc[
        is_std,
        ["study_id", "plate_id", "analyte", "curve_id", "group_id", "standard_concentration",
         "dilution_factor"],
    ]  # fmt: skip
    std = std.drop_duplicates("group_id").sort_values(["curve_id", "standard_concentration"])
    gid = std["group_id"].to_numpy()
    cid = std["curve_id"].to_numpy()
    nominal = std["standard_concentration"].to_numpy(dtype=float)
    # Back-calculated in the sample, i.e. after the dilution factor, as xPONENT's and
    # Bio-Plex Manager's % Recovery (Obs/Exp) compare it with the expected value.
    dil = std["dilution_factor"].to_numpy(dtype=float)
    dil = np.where(np.isfinite(dil) & (dil > 0), dil, 1.0)
    back = np.where(np.isfinite(mean_conc[gid]), mean_conc[gid], grp_x[gid]) * dil
    recovery = 100 * back / nominal
    level_cv = cv[gid]
    cv_ok = np.nan_to_num(level_cv, nan=0.0)
    lo, hi = settings.recovery_range
    elo, ehi = settings.end_recovery_range
    inner = usable[cid] & (recovery >= lo) & (recovery <= hi) & (cv_ok <= settings.max_cv)
    end = usable[cid] & (recovery >= elo) & (recovery <= ehi) & (cv_ok <= settings.end_max_cv)

    # Longest run [i..j] with passing ends of whose levels at least min_passing_share pass
    # (all inner levels under the default share of 1), per curve (levels are few, <= ~16,
    # so the pairwise search per curve is cheap and exact).
    lloq = np.full(n_curves, np.nan)
    uloq = np.full(n_curves, np.nan)
    mask, (NOM, INNER, END), _ = _pad(cid, [nominal, inner.astype(float), end.astype(float)])
    inner_m = (INNER == 1) & mask
    end_m = (END == 1) & mask
    L = NOM.shape[1]
    cum = np.concatenate([np.zeros((NOM.shape[0], 1)), np.cumsum(inner_m, axis=1)], axis=1)
    best_len = np.zeros(NOM.shape[0], dtype=int)
    best_i = np.full(NOM.shape[0], -1)
    share = float(settings.min_passing_share)
    for i in range(L):
        for j in range(i + 1, L):  # a range needs at least two levels
            n_inner = cum[:, j] - cum[:, i + 1]
            # The two ends pass; the share counts them with the passing inner levels.
            enough = (n_inner + 2) >= share * (j - i + 1) - 1e-9
            ok = end_m[:, i] & end_m[:, j] & (n_inner == j - i - 1 if share >= 1 else enough)
            longer = ok & (j - i + 1 > best_len)
            best_len = np.where(longer, j - i + 1, best_len)
            best_i = np.where(longer, i, best_i)
    has = best_len > 0
    rows = np.arange(NOM.shape[0])
    lloq_c = np.where(has, NOM[rows, np.maximum(best_i, 0)], np.nan)
    uloq_c = np.where(has, NOM[rows, np.maximum(best_i + best_len - 1, 0)], np.nan)
    lloq[: NOM.shape[0]] = lloq_c  # rows of the padded arrays are curve ids
    uloq[: NOM.shape[0]] = uloq_c
    in_range = (nominal >= lloq[cid]) & (nominal <= uloq[cid])

    table = std[["study_id", "plate_id", "analyte", "standard_concentration"]].copy()
    table = table.rename(columns={"standard_concentration": "nominal"})
    table["n_replicates"] = np.bincount(grp, minlength=grp.max() + 1)[gid]
    table["mean_signal"] = g_mean[gid]
    table["cv"] = level_cv
    table["back_calculated"] = back
    table["recovery"] = recovery
    table["passes"] = inner
    table["passes_as_end"] = end
    table["in_range"] = in_range
    table["excluded"] = False
    table["exclusion_reason"] = None
    left_out = df.loc[
        df["exclude"].to_numpy(dtype=bool) & (df["sample_type"] == "standard").to_numpy()
    ]
    if len(left_out):
        extra = left_out.drop_duplicates("group_id")
        gid_x = extra["group_id"].to_numpy()
        ex = extra[["study_id", "plate_id", "analyte", "standard_concentration"]].rename(
            columns={"standard_concentration": "nominal"}
        )
        ex["n_replicates"] = np.bincount(grp, minlength=grp.max() + 1)[gid_x]
        ex["mean_signal"] = g_mean[gid_x]
        ex["cv"] = cv[gid_x]
        x_dil = extra["dilution_factor"].to_numpy(dtype=float)
        x_dil = np.where(np.isfinite(x_dil) & (x_dil > 0), x_dil, 1.0)
        ex["back_calculated"] = grp_x[gid_x] * x_dil
        ex["recovery"] = (
            100 * ex["back_calculated"].to_numpy() / ex["nominal"].to_numpy(dtype=float)
        )
        ex[["passes", "passes_as_end", "in_range"]] = False
        ex["excluded"] = True
        ex["exclusion_reason"] = (
            extra["exclusion_reason"].to_numpy(dtype=object)
            if "exclusion_reason" in extra.columns
            else "excluded in the input (exclude column)"
        )
        table = pd.concat([table, ex], ignore_index=True)
        table = table.sort_values(["study_id", "plate_id", "analyte", "nominal"], kind="stable")
    return table.reset_index(drop=True), lloq, uloq


def share_text(share: float) -> str:
    """A share as people say it: "two thirds" for 2/3 (not "67%", which 2 of 3 miss)."""
    return "two thirds" if abs(share - 2 / 3) < 1e-9 else f"{share:.0%}"


def _count(value: object) -> int:
    """A count from a merged QC column (missing: 0)."""
    return 0 if pd.isna(value) else int(value)


def _flag_text(flags: dict[str, np.ndarray]) -> np.ndarray:
    names = np.array(FLAGS, dtype=object)
    stack = np.column_stack([flags[n] for n in FLAGS])
    return np.array([";".join(names[row]) for row in stack], dtype=object)


def _plate_qc(curves, standards, samples, settings) -> pd.DataFrame:
    columns = ["status", "fit_reason", "n_levels", "lloq", "uloq", "lod", "blank_mean", "blank_cv"]
    qc = curves[[*CURVE_KEY, *columns]].copy()
    # A level of the range counts as passing when it meets the criteria of its place: the
    # end criteria at the LLOQ and ULOQ, the inner ones between them.
    std = standards.merge(
        curves[[*CURVE_KEY, "lloq", "uloq"]], on=CURVE_KEY, how="left", suffixes=("", "_c")
    )
    nominal = std["nominal"].to_numpy(dtype=float)
    at_end = np.isclose(nominal, std["lloq"].to_numpy(dtype=float)) | np.isclose(
        nominal, std["uloq"].to_numpy(dtype=float)
    )
    in_range = std["in_range"].to_numpy(dtype=bool)
    passing = np.where(at_end, std["passes_as_end"], std["passes"]).astype(bool)
    std["passing_in_range"] = in_range & passing
    std["failing_in_range"] = in_range & ~passing
    std_groups = std.groupby(CURVE_KEY, sort=False, observed=True)
    stats_std = std_groups.agg(
        levels_passing=("passes", "sum"),
        levels_in_range=("in_range", "sum"),
        levels_passing_in_range=("passing_in_range", "sum"),
        levels_failing_in_range=("failing_in_range", "sum"),
        median_recovery=("recovery", "median"),
        max_standard_cv=("cv", "max"),
    )
    qc = qc.merge(stats_std, left_on=CURVE_KEY, right_index=True, how="left")
    smp = samples[samples["sample_type"] == "sample"]
    s_groups = smp.groupby(CURVE_KEY, sort=False, observed=True)
    stats_smp = s_groups.agg(
        n_samples=("sample_type", "size"),
        median_sample_cv=("cv", "median"),
        share_below_lloq=("below_lloq", "mean"),
        share_above_uloq=("above_uloq", "mean"),
        share_high_cv=("high_cv", "mean"),
    )
    qc = qc.merge(stats_smp, left_on=CURVE_KEY, right_index=True, how="left")
    ctl = samples[samples["sample_type"] == "control"]
    # A control without an expected value (Bio-Plex prints Exp Conc 0, read as missing)
    # has no recovery to judge: it is not a kit control of the acceptance count.
    expected = pd.to_numeric(ctl["standard_concentration"], errors="coerce")
    ctl = ctl[np.isfinite(expected) & (expected > 0)].copy()
    if len(ctl):
        # The expected value of a kit control is a concentration in the sample: compare it
        # after the dilution factor (xPONENT's % Recovery, Bio-Plex's (Obs/Exp) * 100).
        ctl["recovery"] = 100 * ctl["concentration"] / ctl["standard_concentration"]
        lo, hi = settings.recovery_range
        ctl["ok"] = ctl["recovery"].between(lo, hi)
        stats_ctl = ctl.groupby(CURVE_KEY, sort=False, observed=True).agg(
            n_controls=("ok", "size"), controls_passing=("ok", "sum")
        )
        # ICH M10 4.3.2's second condition: at least a share of the controls at each
        # concentration level (a control's level is its expected concentration).
        # Levels are compared to 6 significant figures: expected values typed per well
        # (or computed, 1.1 * 1000 = 1100.0000000000002) are one level.
        ctl["level"] = [float(f"{v:.6g}") for v in ctl["standard_concentration"]]
        per_level = ctl.groupby([*CURVE_KEY, "level"], sort=False, observed=True)["ok"].mean()
        short_levels = per_level[per_level < settings.min_control_level_share - 1e-9]
        stats_ctl["control_levels_failing"] = (
            short_levels.groupby(level=list(range(len(CURVE_KEY))), observed=True).size()
            if len(short_levels)
            else 0
        )
        stats_ctl["control_levels"] = per_level.groupby(
            level=list(range(len(CURVE_KEY))), observed=True
        ).size()
        qc = qc.merge(stats_ctl, left_on=CURVE_KEY, right_index=True, how="left")
    else:
        qc["n_controls"] = 0
        qc["controls_passing"] = 0
        qc["control_levels"] = 0
        qc["control_levels_failing"] = 0
    reasons, curve_ok, controls_ok = [], [], []
    for row in qc.itertuples(index=False):
        why = []
        if row.status == "too_few_levels":
            why.append(
                f"only {int(row.n_levels)} standard level(s); at least {settings.min_levels} "
                "are needed"
            )
        elif row.status not in FIT_OK:
            detail = (
                f" ({row.fit_reason})" if isinstance(row.fit_reason, str) and row.fit_reason else ""
            )
            why.append(f"curve fit {row.status}{detail}")
        if row.status == "too_few_levels":
            pass
        elif not np.isfinite(row.lloq):
            why.append("no standard levels meet the acceptance criteria")
        elif row.levels_passing_in_range < settings.min_levels:
            passing = (
                ""
                if row.levels_failing_in_range == 0
                else f" ({int(row.levels_passing_in_range)} within limits)"
            )
            why.append(
                f"only {int(row.levels_in_range)} standard levels in the quantifiable range "
                f"({row.lloq:.4g}-{row.uloq:.4g}){passing}; at least {settings.min_levels} "
                "are needed"
            )
        curve_ok.append(not why)
        n_ctl = 0 if pd.isna(row.n_controls) else int(row.n_controls)
        n_ok = 0 if pd.isna(row.controls_passing) else int(row.controls_passing)
        ctl_ok = not (n_ctl and n_ok < settings.min_control_share * n_ctl - 1e-9)
        if not ctl_ok:
            why.append(
                f"{n_ctl - n_ok} of {n_ctl} kit controls outside recovery limits (at least "
                f"{share_text(settings.min_control_share)} must pass)"
            )
        short_levels = _count(row.control_levels_failing)
        if n_ctl and short_levels:
            ctl_ok = False
            why.append(
                f"{short_levels} of {_count(row.control_levels)} kit control levels with fewer "
                f"than {share_text(settings.min_control_level_share)} of their controls "
                "within recovery limits"
            )
        n_levels = _count(row.control_levels)
        if n_levels < settings.min_control_levels:
            ctl_ok = False
            count = "no" if n_levels == 0 else f"only {n_levels}"
            why.append(
                f"{count} kit control level(s) with an expected value; at least "
                f"{settings.min_control_levels} are needed to judge the run"
            )
        controls_ok.append(ctl_ok)
        reasons.append("; ".join(why))
    qc["curve_pass"] = curve_ok
    qc["controls_pass"] = controls_ok
    qc["qc_pass"] = [r == "" for r in reasons]
    qc["qc_reasons"] = reasons
    return qc
