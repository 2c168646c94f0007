"""The request and response bodies of the REST API (pydantic models; OpenAPI components).

The quantification request validates its curve model and weighting against the shared
enumerations of :mod:`cytosafe.schema.choices`, so the API accepts exactly the options
calibration knows, and lists them in its OpenAPI document.
"""

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from cytosafe.schema.choices import CurveModel, Weighting

__all__ = [
    "AnalysisOut",
    "AopQuery",
    "PlateOut",
    "QuantifyIn",
    "SignOffIn",
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
    password: str = Field(min_length=8)
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


class QuantifyIn(BaseModel):
    plates: list[str] | None = Field(None, description="Plates to quantify (default: all).")
    model: CurveModel = Field(CurveModel.FIVE_PL, description="Standard-curve model.")
    weighting: Weighting = Field(Weighting.Y2, description="Weights of the curve fit.")


class SignOffIn(BaseModel):
    meaning: str = Field("approved", description="What the signature means (21 CFR 11.50).")


class AopQuery(BaseModel):
    modality: str = Field(description="Drug modality, e.g. cd3_bispecific.")
    evidence: dict[str, str | int | bool] = Field(
        {}, description="Key event -> state ('present' / 'absent', or 1 / 0)."
    )
