"""Transitional: the figure helpers moved to the public :mod:`cytosafe.report.figures`.

``cytosafe.web.pages`` still imports ``natural_key`` from here; this module goes once it
imports from :mod:`cytosafe.report.figures`.
"""

from cytosafe.report.figures import *  # noqa: F403
from cytosafe.report.figures import __all__  # noqa: F401
