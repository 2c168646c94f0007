"""What the web app does, as plain functions over the store and the analysis workflows.

The REST API (:mod:`cytosafe.web.routers`) and the web pages (:mod:`cytosafe.web.pages`)
both call these, after their own sign-in and role checks, so a page and its endpoint
answer alike; neither calls the other. Each function takes the store (and, where it
needs them, the server's settings, job runner, compute pool or table cache) and the
signed-in user; it raises :class:`~cytosafe.errors.InputError` for bad input (422) and
:class:`~fastapi.HTTPException` for a study or analysis the user cannot see (404) or a
group they are not in (403).

One module per resource, as the routers: :mod:`.users` (sign-in), :mod:`.studies`
(studies, plates, uploads), :mod:`.exclusions` (wells excluded from the calibration with a
reason, audited), :mod:`.analyses` (background runs through
:mod:`cytosafe.workflows`, tables, reports, sign-off), :mod:`.clinical` (grading in a
compute worker), :mod:`.knowledge` (assay recommender, AOP figure) and :mod:`.examples`
(the example data of ``cytosafe serve``).
"""

from cytosafe.web.services.analyses import (
    analysis_out,
    list_analyses,
    read_analysis,
    read_report,
    read_table,
    rerun_quantification,
    run_hazard,
    run_quantification,
    sign_analysis,
    stored_table,
)
from cytosafe.web.services.clinical import (
    clinical_study,
    grade_and_store,
    grade_upload,
    parse_scales,
    upload_observations,
)
from cytosafe.web.services.examples import EXAMPLE_COHORT, EXAMPLE_STUDY, load_examples
from cytosafe.web.services.exclusions import change_wells, excluded_wells
from cytosafe.web.services.knowledge import (
    aop_evidence,
    aop_figure,
    hazard_analyses,
    recommend_assays,
    reference_evaluation,
)
from cytosafe.web.services.studies import (
    list_plates,
    list_studies,
    new_study,
    read_study,
    store_exports,
    study_out,
)
from cytosafe.web.services.users import list_users, new_user, sign_in, sign_out, user_out

__all__ = [
    "EXAMPLE_COHORT",
    "EXAMPLE_STUDY",
    "analysis_out",
    "aop_evidence",
    "aop_figure",
    "change_wells",
    "clinical_study",
    "excluded_wells",
    "grade_and_store",
    "grade_upload",
    "hazard_analyses",
    "list_analyses",
    "list_plates",
    "list_studies",
    "list_users",
    "load_examples",
    "new_study",
    "new_user",
    "parse_scales",
    "read_analysis",
    "read_report",
    "read_study",
    "read_table",
    "recommend_assays",
    "reference_evaluation",
    "rerun_quantification",
    "run_hazard",
    "run_quantification",
    "sign_analysis",
    "sign_in",
    "sign_out",
    "store_exports",
    "stored_table",
    "study_out",
    "upload_observations",
    "user_out",
]
