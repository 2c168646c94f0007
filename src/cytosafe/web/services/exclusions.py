"""Wells of a study excluded from (and restored to) the calibration, each with a reason.

The store makes each exclusion an audited event (:mod:`cytosafe.store.exclusions`); these
functions check that the user may see the study (404 otherwise; the role is checked by
the caller and again by the store) and answer as the API shows it. The next
quantification of the study leaves the excluded wells out and lists their reasons.
"""

from __future__ import annotations

import pandas as pd

from cytosafe.store import Store, User, exclude_wells, include_wells, list_exclusions
from cytosafe.web.deps import get_study
from cytosafe.web.schemas import ExcludedWellOut, ExclusionOut, ExclusionsIn

__all__ = ["change_wells", "excluded_wells"]


def _plain(value):
    return None if value is None or pd.isna(value) else value


def excluded_wells(store: Store, user: User, code: str) -> list[ExcludedWellOut]:
    """The study's excluded measurements with their reasons."""
    with store.reader() as session:
        study = get_study(session, user, code)
        table = list_exclusions(session, study)
    return [
        ExcludedWellOut(
            plate_id=r["plate_id"],
            well=r["well"],
            analyte=r["analyte"],
            sample_type=r["sample_type"],
            standard_concentration=_plain(r["standard_concentration"]),
            reason=_plain(r["exclusion_reason"]),
        )
        for r in table.to_dict("records")
    ]


def change_wells(
    store: Store, user: User, code: str, body: ExclusionsIn, *, exclude: bool = True
) -> list[ExclusionOut]:
    """Exclude (or, ``exclude=False``, restore) wells of the study, each with its reason:
    one transaction, one audit entry per well asked for."""
    with store.reader() as session:
        study = get_study(session, user, code)
    change = exclude_wells if exclude else include_wells
    events = change(store, study.code, [w.model_dump() for w in body.wells], user=user.username)
    return [
        ExclusionOut(
            plate_id=e["plate"],
            well=e["well"],
            analyte=e["analyte"],
            analytes=e["analytes"],
            reason=e["reason"],
            measurements_sha256=e["measurements_sha256"],
        )
        for e in events
    ]
