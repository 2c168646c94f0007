"""The web face of CytoSafe: the REST API (FastAPI, OpenAPI documented) and the web
pages (server-rendered Jinja2, :mod:`cytosafe.web.pages`).

:func:`create_app` builds the app on a :class:`~cytosafe.store.Store` (:mod:`.app`);
``cytosafe serve`` runs it with uvicorn. The API is one router per resource
(:mod:`.routers`) over request and response bodies (:mod:`.schemas`) and dependencies
(:mod:`.deps`: sign-in, roles, lookups, uploads); routers and pages call the same
services (:mod:`.services`).

>>> from cytosafe.web import create_app
>>> app = create_app(Store("sqlite:///lab.sqlite3"))  # doctest: +SKIP
"""

from cytosafe.web.app import create_app
from cytosafe.web.settings import Settings

__all__ = ["Settings", "create_app"]
