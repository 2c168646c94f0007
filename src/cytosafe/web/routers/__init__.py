"""The REST API, one :class:`~fastapi.APIRouter` per resource, all under ``/api``.

:data:`ROUTERS` is the order :func:`cytosafe.web.create_app` includes them in (the order
of the OpenAPI document): sign-in and users, studies and plates, analyses (tables,
reports, sign-off), the audit trail, clinical grading, and the knowledge bases (assay
recommender, CRS AOP).
"""

from cytosafe.web.routers import analyses, audit, auth, clinical, knowledge, studies

__all__ = ["ROUTERS"]

ROUTERS = (
    auth.router,
    studies.router,
    analyses.router,
    audit.router,
    clinical.router,
    knowledge.router,
)
