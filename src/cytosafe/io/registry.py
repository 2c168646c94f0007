"""The registry of readers: which modules read which exports, and :func:`read`.

Each reader is a module that follows the contract of :mod:`cytosafe.io.reader`
(``NAME``, ``DESCRIPTION``, ``sniff``, ``parse`` and, where the layout has one, ``write``).
Registering a reader is one line: add its module to :data:`READER_MODULES`. The order of
that tuple is the order in which :func:`detect_format` asks the readers' ``sniff``:

1. ``bioplex`` -- a BIFF8 ``.xls`` (the only ``.xls`` export supported), or an ``.xlsx``
   whose sheet opens with ``Analyte:`` lines;
2. ``xponent`` -- a first line ``Program,xPONENT``;
3. ``msd`` -- an ``.xlsx`` with DW's ``Exp_Data_Tbl`` sheet or an ``Assay`` data-table
   header; a text file with DW's ``Name,Value`` preamble or ``Experiment Data Table``
   title, or a data-table header (``Sample``, ``Well``) whose signal column comes later;
4. ``asm`` -- Allotrope Simple Model JSON, or a SoftMax Pro / Gen5 text export;
5. ``tidy`` -- last, as the most permissive: a header naming ``well`` and ``signal``, or
   any other ``.xlsx`` workbook.

A file no reader claims is an :class:`~cytosafe.errors.InputError`; plate maps with reader
matrices come in pairs and are read with :func:`cytosafe.io.platemap.read_plate`.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pandas as pd

from cytosafe.errors import InputError
from cytosafe.io import asm, bioplex, msd, tidy, xponent
from cytosafe.io.reader import Probe, finish

__all__ = ["FORMATS", "READERS", "READER_MODULES", "detect_format", "get_reader", "read"]

#: The reader modules, in the order :func:`detect_format` asks them.
READER_MODULES: tuple[ModuleType, ...] = (bioplex, xponent, msd, asm, tidy)

#: Reader name -> module.
READERS: dict[str, ModuleType] = {m.NAME: m for m in READER_MODULES}

#: The names of the single-file formats :func:`read` takes.
FORMATS: tuple[str, ...] = tuple(READERS)


def get_reader(name: str) -> ModuleType:
    """The reader module called ``name``; an unknown name is an :class:`InputError`."""
    key = str(name).strip().lower()
    if key not in READERS:
        raise InputError(
            f"unknown export format '{name}'", field="format", expected=" | ".join(READERS)
        )
    return READERS[key]


def detect_format(path: str | Path) -> str:
    """Recognise an export from its content: the ``NAME`` of the first reader that sniffs it.

    The readers are asked in the order of :data:`READER_MODULES` (see the module notes);
    the file's name and extension are not used, so a renamed export is still recognised.

    Raises
    ------
    InputError
        The file does not exist or cannot be read, a workbook cannot be opened, or no
        reader recognises the content.
    """
    probe = Probe.of(path)
    for reader in READER_MODULES:
        if reader.sniff(probe):
            return reader.NAME
    raise InputError(
        "the file is not a format CytoSafe recognises",
        file=str(path),
        expected="one of: "
        + "; ".join(f"{m.NAME} ({m.DESCRIPTION})" for m in READER_MODULES)
        + " (plate maps with reader matrices are read with read_plate / --plate-map)",
    )


def read(
    path: str | Path,
    *,
    format: str | None = None,
    study_id: str | None = None,
    plate_id: str | None = None,
    sample_map: pd.DataFrame | str | Path | None = None,
    standard_unit: str | None = None,
    **options: object,
) -> pd.DataFrame:
    """Read any supported single-file export into the validated tidy measurement table.

    Parameters
    ----------
    path : str or Path
        The export.
    format : str, optional
        A reader's name (:data:`FORMATS`); by default recognised by :func:`detect_format`.
    study_id, plate_id : str, optional
        Override the file's own study and plate (each reader documents its defaults).
    sample_map : DataFrame or path, optional
        Culture metadata (donor, treatment, concentration), see
        :func:`cytosafe.io.samples.read_sample_map`.
    standard_unit : str, optional
        Unit of the file's concentrations when it states none (default pg/mL).
    **options
        Options of the chosen reader's ``parse`` (e.g. ``sheet`` for a tidy workbook).

    Returns
    -------
    pandas.DataFrame
        The table of :func:`~cytosafe.schema.measurements.validate_measurements`, after
        the closing steps of :func:`cytosafe.io.reader.finish`.

    Examples
    --------
    >>> table = read("plate_1.csv", sample_map="samples.csv")  # doctest: +SKIP
    """
    reader = get_reader(format) if format is not None else READERS[detect_format(path)]
    table = reader.parse(
        path, study_id=study_id, plate_id=plate_id, standard_unit=standard_unit, **options
    )
    return finish(table, source=path, sample_map=sample_map, check=getattr(reader, "check", None))
