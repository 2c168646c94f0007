"""Readers and writers of instrument exports.

Every reader returns the validated tidy measurement table
(:func:`cytosafe.schema.validate_measurements`); :func:`read` recognises the format of a
file from its content, so a user can pass any export without saying what it is.

| format (``NAME``) | module | reader | writer |
|---|---|---|---|
| ``tidy`` CSV / XLSX | :mod:`~cytosafe.io.tidy` | :func:`read_tidy` | :func:`write_tidy` |
| ``msd`` Discovery Workbench | :mod:`~cytosafe.io.msd` | :func:`read_msd` | :func:`write_msd` |
| ``xponent`` Luminex CSV | :mod:`~cytosafe.io.xponent` | :func:`read_xponent` | :func:`write_xponent` |
| ``bioplex`` Bio-Plex Manager (.xls/.xlsx) | :mod:`~cytosafe.io.bioplex` | :func:`read_bioplex` | :func:`write_bioplex` |
| ``bioplex_xml`` Bio-Plex Manager 6 XML | :mod:`~cytosafe.io.bioplex_xml` | :func:`read_bioplex_xml` | :func:`write_bioplex_xml` |
| ``asm`` ASM JSON, SoftMax Pro, Gen5 | :mod:`~cytosafe.io.asm` | :func:`read_asm`, :func:`read_asm_plate` | :func:`write_asm` |
| plate map + reader matrix (96/384) | :mod:`~cytosafe.io.platemap` | :func:`~cytosafe.io.platemap.read_plate` | :func:`write_plate_map`, :func:`write_reader_matrix` |

Plate maps come in pairs with the file that holds the plate's signals, and are read with
:func:`read_plate` (``cytosafe quantify --plate-map MAP --matrix FILE``): a SoftMax Pro,
Gen5 or ASM export goes to :func:`read_asm_plate`, a reader matrix to
:func:`cytosafe.io.platemap.read_plate`, and both join by :func:`join_plate_map`;
:func:`read` takes single-file exports. All end with the same closing steps
(:func:`cytosafe.io.reader.finish`): provenance, the sample-map join, validation, warnings.

Damaged and foreign-locale files
--------------------------------
Every reader gives the validated table or an :class:`~cytosafe.errors.InputError` naming
the file (and the row, well and field where known), with nothing printed by a third-party
library, in time linear in the file (issue 14; ``tests/test_fuzz_readers.py`` and
``benchmarks/fuzz_readers.py`` hold them to it):

* text exports may be UTF-8 (with or without a byte-order mark), UTF-16 (with or without
  its mark) or Windows-1252 (:func:`cytosafe.io._text.decode_text`); text with NUL bytes
  is refused as binary;
* a number written with a decimal comma or a thousands separator (``0,105``, ``1,234``,
  ``1.234,5``) is refused, never guessed: in a comma-separated file a decimal comma
  splits a cell and makes its line wider than the header, which every reader refuses;
  the one conversion is a plate map or reader matrix separated by semicolons or tabs
  whose numbers all use decimal commas (read with a :class:`~cytosafe.errors.DataWarning`;
  a file mixing ``0,105`` and ``0.105`` is refused);
* an infinity (``inf``, ``1e400``) where a number is required is refused.

Adding a reader
---------------
Write a module (or sub-package) ``cytosafe/io/<vendor>.py`` that follows the contract of
:mod:`cytosafe.io.reader`: ``NAME``, ``DESCRIPTION``, ``sniff(probe)``, ``parse(path, *,
study_id=None, plate_id=None, standard_unit=None)`` returning the raw table, and, where
the vendor layout has one, ``write(measurements, path)`` with ``SUFFIXES``. State the
vendor's conventions in its docstring, with the files they were studied on. Then add the
module to :data:`cytosafe.io.registry.READER_MODULES` (one line; its place in the tuple is
its turn in :func:`detect_format`) and, optionally, a ``read_<vendor>`` function that is
``finish(parse(...))``. ``tests/test_io_contract.py`` then runs the reader contract over it
(round trip through its writer, a bad-input error naming file and row, the schema's
columns out); a reader without a writer must be listed, with the reason, in that test's
exemptions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names as a type checker and an editor see them
    from cytosafe.io.asm import read_asm, read_asm_plate, write_asm
    from cytosafe.io.bioplex import read_bioplex, read_bioplex_equations, write_bioplex
    from cytosafe.io.bioplex_xml import read_bioplex_xml, write_bioplex_xml
    from cytosafe.io.msd import read_msd, write_msd
    from cytosafe.io.platemap import (
        join_plate_map,
        read_plate_map,
        read_reader_matrix,
        write_plate_map,
        write_reader_matrix,
    )
    from cytosafe.io.reader import Probe, finish
    from cytosafe.io.registry import (
        FORMATS,
        READERS,
        detect_format,
        get_reader,
        read,
        read_plate,
    )
    from cytosafe.io.samples import annotate, read_sample_map
    from cytosafe.io.tidy import read_tidy, write_tidy
    from cytosafe.io.xponent import read_xponent, write_xponent

#: Public name -> the module that defines it. The modules are imported on first use
#: (PEP 562), so ``import cytosafe.io.samples`` loads no reader and a plate-map run no
#: workbook reader; :data:`cytosafe.io.registry.READER_MODULES` keeps the readers' order.
_HOME = {
    **dict.fromkeys(["read_asm", "read_asm_plate", "write_asm"], "asm"),
    **dict.fromkeys(["read_bioplex", "read_bioplex_equations", "write_bioplex"], "bioplex"),
    **dict.fromkeys(["read_bioplex_xml", "write_bioplex_xml"], "bioplex_xml"),
    **dict.fromkeys(["read_msd", "write_msd"], "msd"),
    **dict.fromkeys(
        [
            "join_plate_map",
            "read_plate_map",
            "read_reader_matrix",
            "write_plate_map",
            "write_reader_matrix",
        ],
        "platemap",
    ),
    **dict.fromkeys(["Probe", "finish"], "reader"),
    **dict.fromkeys(
        ["FORMATS", "READERS", "detect_format", "get_reader", "read", "read_plate"], "registry"
    ),
    **dict.fromkeys(["annotate", "read_sample_map"], "samples"),
    **dict.fromkeys(["read_tidy", "write_tidy"], "tidy"),
    **dict.fromkeys(["read_xponent", "write_xponent"], "xponent"),
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})


__all__ = [
    "FORMATS",
    "READERS",
    "Probe",
    "annotate",
    "detect_format",
    "finish",
    "get_reader",
    "join_plate_map",
    "read",
    "read_asm",
    "read_asm_plate",
    "read_bioplex",
    "read_bioplex_equations",
    "read_bioplex_xml",
    "read_msd",
    "read_plate",
    "read_plate_map",
    "read_reader_matrix",
    "read_sample_map",
    "read_tidy",
    "read_xponent",
    "write_asm",
    "write_bioplex",
    "write_bioplex_xml",
    "write_msd",
    "write_plate_map",
    "write_reader_matrix",
    "write_tidy",
    "write_xponent",
]
