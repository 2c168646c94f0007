"""The web face of CytoSafe: the REST API (FastAPI, OpenAPI documented) and the web
pages (server-rendered Jinja2, :mod:`cytosafe.web.pages`).

:func:`create_app` builds the app on a :class:`~cytosafe.store.Store`; ``cytosafe serve``
(:func:`cytosafe.web.commands.serve_command`) runs it with uvicorn. See
:mod:`cytosafe.web.app` for authentication, roles and the endpoints.

>>> from cytosafe.web import create_app
>>> app = create_app(Store("sqlite:///lab.sqlite3"))  # doctest: +SKIP
"""

from cytosafe.web.app import Settings, create_app

__all__ = ["Settings", "create_app"]
