"""The request and response bodies of the REST API (pydantic models; OpenAPI components).

The quantification request validates its curve model, weighting, blank handling and
covariance against the shared enumerations of :mod:`cytosafe.schema.choices`, so the API
accepts exactly the options calibration knows, and lists them in its OpenAPI document.
Each is optional: an option left out is not sent, and each plate gets its reader's vendor
convention (:func:`cytosafe.quantification.plate_conventions`), as ``cytosafe quantify``
without options does.
"""

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from cytosafe.schema.choices import BlankHandling, Covariance, CurveModel, Weighting

__all__ = [
    "AnalysisOut",
    "AopQuery",
    "ExcludedWellOut",
    "ExclusionIn",
    "ExclusionOut",
    "ExclusionsIn",
    "PlateOut",
    "QuantifyIn",
    "SignOffIn",
    "SignatureOut",
    "StudyIn",
    "StudyOut",
    "TableOut",
    "TokenOut",
    "UserIn",
    "UserOut",
]


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")


class UserIn(BaseModel):
    username: str
    password: str = Field(
        min_length=12, max_length=128, description="12-128 characters, not a common password"
    )
    role: Literal["viewer", "analyst", "study_director", "admin"] = "viewer"
    display_name: str | None = None
    groups: list[str] = []


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str | None
    role: str
    groups: list[str]


class StudyIn(BaseModel):
    code: str = Field(description="The study id (the tidy tables' study_id).")
    title: str | None = None
    kind: Literal["cra", "clinical"] = "cra"
    group: str | None = Field(None, description="Group that may see the study (yours).")


class StudyOut(BaseModel):
    code: str
    title: str | None
    kind: str
    group: str | None
    created_at: dt.datetime


class PlateOut(BaseModel):
    code: str
    source_file: str | None
    n_measurements: int | None = None
    measurements_sha256: str


class TableOut(BaseModel):
    name: str
    n_rows: int
    columns: list[dict[str, str]]
    sha256: str


class AnalysisOut(BaseModel):
    id: int
    study: str
    kind: str
    version: int
    status: str
    progress: float | None = Field(None, description="0-1: how far the job is.")
    message: str | None = None
    settings: dict
    cytosafe_version: str
    created_by: str | None
    created_at: dt.datetime
    signed_off_by: str | None
    signed_off_at: dt.datetime | None
    tables: list[TableOut]
    reports: list[str]


_CONVENTION = "; default: each plate's vendor convention (settings.conventions says which)"


class QuantifyIn(BaseModel):
    plates: list[str] | None = Field(None, description="Plates to quantify (default: all).")
    model: CurveModel | None = Field(None, description="Standard-curve model" + _CONVENTION)
    weighting: Weighting | None = Field(None, description="Weights of the curve fit" + _CONVENTION)
    blank: BlankHandling | None = Field(None, description="How blanks enter the fit" + _CONVENTION)
    covariance: Covariance | None = Field(None, description="Parameter covariance" + _CONVENTION)
    acceptance: Literal["cytosafe", "ich-m10", "ich_m10"] | None = Field(
        None,
        description="Acceptance criteria of the standards and kit controls: 'cytosafe' "
        "(default: every standard level of the range within limits, at least 5) or 'ich-m10' "
        "(ICH M10 for ligand-binding assays, sections 4.2.3, 4.2.4, 4.3.1 and 4.3.2).",
    )

    def options(self) -> dict[str, str]:
        """The calibration options the caller set (they override the conventions)."""
        chosen = {"model": self.model, "weighting": self.weighting, "blank": self.blank,
                  "covariance": self.covariance, "acceptance": self.acceptance}  # fmt: skip
        return {k: str(v) for k, v in chosen.items() if v is not None}


class ExclusionIn(BaseModel):
    plate_id: str
    well: str = Field(description="The well (B3 and B03 are the same well).")
    analyte: str | None = Field(None, description="The analyte (default: every analyte).")
    reason: str = Field(
        min_length=1,
        description="Why: a documented, assignable reason (ICH M10, 2022, section 8).",
    )


class ExclusionsIn(BaseModel):
    wells: list[ExclusionIn] = Field(min_length=1)


class ExclusionOut(BaseModel):
    """One exclusion (or restoration) as its audit entry records it."""

    plate_id: str
    well: str
    analyte: str | None = Field(description="As asked (None: every analyte of the well).")
    analytes: list[str] = Field(description="The measurements changed.")
    reason: str
    measurements_sha256: str = Field(description="The plate's fingerprint after the change.")


class ExcludedWellOut(BaseModel):
    plate_id: str
    well: str
    analyte: str
    sample_type: str
    standard_concentration: float | None
    reason: str | None


class SignOffIn(BaseModel):
    """An electronic signature (21 CFR 11.50, 11.200): the meaning chosen from the
    configured list (``cytosafe/data/signature_meanings.toml``), an optional comment, and
    the signer's credentials entered again (the API asks for both at every signature)."""

    meaning: str = Field(
        max_length=200,
        description="What the signature means: authored | reviewed | approved (21 CFR "
        "11.50(a)(3)); 'approved' makes the analysis final.",
    )
    comment: str | None = Field(
        None, max_length=20_000, description="Why, or on what condition (at most 500 characters)."
    )
    username: str | None = Field(
        None, max_length=200, description="The signer's user name, entered again."
    )
    password: str = Field(
        max_length=1024, repr=False, description="The signer's password, entered again."
    )


class SignatureOut(BaseModel):
    """One electronic signature as the manifest prints it (21 CFR 11.50)."""

    id: int
    name: str = Field(description="The signer's printed name.")
    username: str
    signed_at: dt.datetime = Field(description="When it was executed (UTC).")
    meaning: str
    statement: str = Field(description="What the signer stated by signing with this meaning.")
    comment: str | None
    signed_sha256: str | None = Field(
        description="SHA-256 of what was signed: the analysis and its tables' and reports' "
        "SHA-256 (the audit entry of the signature holds it in full)."
    )


class AopQuery(BaseModel):
    modality: str = Field(description="Drug modality, e.g. cd3_bispecific.")
    evidence: dict[str, str | int | bool] = Field(
        {}, description="Key event -> state ('present' / 'absent', or 1 / 0)."
    )
