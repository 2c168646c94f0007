"""Transitional: the old private home of the translate knowledge loader.

``cytosafe.translate.commands`` still imports :func:`references` from here; once the
command lives in ``cytosafe.cli`` and imports :func:`cytosafe.translate.references`,
this module goes.
"""

from cytosafe.data import load
from cytosafe.translate.knowledge import FIH_FILE, MODEL_FILE, references

__all__ = ["FIH_FILE", "MODEL_FILE", "load", "references"]
