"""The registry of readers: which modules read which exports, and :func:`read`.

Each reader is a module that follows the contract of :mod:`cytosafe.io.reader`
(``NAME``, ``DESCRIPTION``, ``sniff``, ``parse`` and, where the layout has one, ``write``).
Registering a reader is one line: add its name to :data:`FORMATS`. The order of
that tuple is the order in which :func:`detect_format` asks the readers' ``sniff``:

1. ``bioplex`` -- a BIFF8 ``.xls`` (the only ``.xls`` export supported), or an ``.xlsx``
   whose sheet opens with ``Analyte:`` lines or holds the one-sheet report (analytes side
   by side over ``Type``, ``Well`` and ``Description``, :mod:`cytosafe.io.bioplex_wide`);
2. ``bioplex_xml`` -- a text file opening the root element ``BioPlexManager`` (Bio-Plex
   Manager 6's XML export, namespace ``http://www.Bio-Rad.com/XMLschema/2010/Bio-Plex_5``),
   asked before the text readers below, none of which takes an XML document;
3. ``xponent`` -- a first line ``Program,xPONENT``;
4. ``msd`` -- an ``.xlsx`` with DW's ``Exp_Data_Tbl`` sheet or an ``Assay`` data-table
   header; a text file with DW's ``Name,Value`` preamble or ``Experiment Data Table``
   title, or a data-table header (``Sample``, ``Well``) whose signal column comes later;
5. ``asm`` -- Allotrope Simple Model JSON, or a SoftMax Pro / Gen5 text export;
6. ``tidy`` -- last, as the most permissive: a header naming ``well`` and ``signal``, or
   any other ``.xlsx`` workbook.

Before the last, catch-all reader is asked, the readers' optional ``refuse(probe)`` hooks
name a related format of their vendor that they do not read (a raw MESO plate file, a
Luminex INTELLIFLEX table): an :class:`~cytosafe.errors.InputError` saying what to export
instead. A file no reader claims is an :class:`~cytosafe.errors.InputError` too. Plate maps come in
pairs with the file that holds the signals, and are read with :func:`read_plate`: a
SoftMax Pro, Gen5 or ASM export (recognised by :func:`cytosafe.io.asm.export_kind`) goes
to :func:`cytosafe.io.asm.read_asm_plate`, anything else is a reader matrix for
:func:`cytosafe.io.platemap.read_plate`; both join by
:func:`cytosafe.io.platemap.join_plate_map`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType

import pandas as pd

from cytosafe.errors import InputError
from cytosafe.io.reader import Probe, finish, prepare

__all__ = [
    "FORMATS",
    "READERS",
    "READER_MODULES",  # noqa: F822 -- made by the module's __getattr__, on first use
    "detect_format",
    "get_reader",
    "read",
    "read_plate",
    "read_unvalidated",
]

#: The names of the single-file formats :func:`read` takes, in the order
#: :func:`detect_format` asks their readers; each is the reader module
#: ``cytosafe.io.<name>``, whose ``NAME`` it is.
FORMATS: tuple[str, ...] = ("bioplex", "bioplex_xml", "xponent", "msd", "asm", "tidy")


def _module(name: str) -> ModuleType:
    # Imported on first use: a run reading MSD exports never loads the ASM or tidy reader
    # (issue 16, item 4: importing all five cost ~0.04 s of every quantification).
    return importlib.import_module(f"cytosafe.io.{name}")


class _Readers(Mapping[str, ModuleType]):
    """Reader name -> module, each module imported when it is first looked up."""

    def __getitem__(self, name: str) -> ModuleType:
        if name not in FORMATS:
            raise KeyError(name)
        return _module(name)

    def __iter__(self) -> Iterator[str]:
        return iter(FORMATS)

    def __len__(self) -> int:
        return len(FORMATS)

    def __repr__(self) -> str:
        return f"READERS({', '.join(FORMATS)})"


#: Reader name -> module (a read-only mapping in the order of :data:`FORMATS`).
READERS: Mapping[str, ModuleType] = _Readers()


def __getattr__(name: str):
    # READER_MODULES, the tuple of all the reader modules, imports them when it is asked for.
    if name == "READER_MODULES":
        return tuple(_module(n) for n in FORMATS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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

    The readers are asked in the order of :data:`FORMATS` (see the module notes);
    the file's name and extension are not used, so a renamed export is still recognised.

    Raises
    ------
    InputError
        The file does not exist or cannot be read, a workbook cannot be opened, or no
        reader recognises the content.
    """
    probe = Probe.of(path)
    # The specific readers first; a file that opens as a tidy table (its header names well
    # and signal) is tidy; then the refusals (a related format of a vendor, named but not
    # read); the tidy reader, which takes any workbook, last: asked before the refusals it
    # took INTELLIFLEX's workbook and said "missing columns", asked after them all a tidy
    # table with an 'R12: RP1 Median' column would be refused.
    *specific, catch_all = FORMATS
    for name in specific:
        reader = READERS[name]
        if reader.sniff(probe):
            return reader.NAME
    from cytosafe.io.tidy import has_tidy_header

    if catch_all == "tidy" and has_tidy_header(probe):
        return READERS[catch_all].NAME
    for name in FORMATS:
        refuse = getattr(READERS[name], "refuse", None)
        why = refuse(probe) if refuse is not None else None
        if why is not None:
            raise InputError(why[0], file=str(path), expected=why[1])
    if READERS[catch_all].sniff(probe):
        return READERS[catch_all].NAME
    raise InputError(
        "the file is not a format CytoSafe recognises",
        file=str(path),
        expected="one of: "
        + "; ".join(f"{m.NAME} ({m.DESCRIPTION})" for m in READERS.values())
        + " (plate maps with reader matrices or plate-reader exports are read with "
        "read_plate / --plate-map)",
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
        Unit of the file's concentrations when it states none (default pg/mL): a mass
        unit is converted to pg/mL, an arbitrary unit (IU/mL, U/mL, AU/mL, ...) kept as
        written and named in ``concentration_unit`` (:mod:`cytosafe.schema.units`).
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
    table, check = _parse(path, format, study_id, plate_id, standard_unit, options)
    return finish(table, source=path, sample_map=sample_map, check=check)


def read_unvalidated(
    path: str | Path,
    *,
    format: str | None = None,
    study_id: str | None = None,
    plate_id: str | None = None,
    sample_map: pd.DataFrame | str | Path | None = None,
    standard_unit: str | None = None,
    **options: object,
) -> tuple[pd.DataFrame, dict, list[str]]:
    """:func:`read` up to validation (:func:`cytosafe.io.reader.prepare`): the table, the
    reader's ``attrs`` and its warnings, not yet issued.

    For a caller that validates many files' tables at once and then issues their
    warnings; :func:`validate_measurements <cytosafe.schema.measurements.validate_measurements>`
    of the table, with these ``attrs``, is what :func:`read` returns. Parameters as
    :func:`read`.
    """
    table, check = _parse(path, format, study_id, plate_id, standard_unit, options)
    return prepare(table, source=path, sample_map=sample_map, check=check)


def _parse(path, format, study_id, plate_id, standard_unit, options):
    """The chosen (or recognised) reader's raw table of ``path`` and the reader's own
    ``check`` of the joined table (None when it has none): what :func:`read` and
    :func:`read_unvalidated` share."""
    reader = get_reader(format) if format is not None else READERS[detect_format(path)]
    table = reader.parse(
        path, study_id=study_id, plate_id=plate_id, standard_unit=standard_unit, **options
    )
    return table, getattr(reader, "check", None)


def read_plate(
    plate_map: str | Path | pd.DataFrame,
    matrix: str | Path,
    *,
    study_id: str | None,
    plate_id: str | None = None,
    analyte: str | None = None,
    standard_unit: str | None = None,
    wavelength: float | None = None,
    reference_wavelength: float | None = None,
    vendor: str | None = None,
) -> pd.DataFrame:
    """Join a plate map and the file holding the plate's signals into the validated table.

    The signals may be a plate-reader export, read through ASM
    (:func:`cytosafe.io.asm.read_asm_plate`: ASM JSON, a SoftMax Pro or Gen5 text export,
    recognised from the content, or any allotropy parser named by ``vendor``), or a reader
    matrix (:func:`cytosafe.io.platemap.read_plate`: plate-shaped grids, one per analyte).
    Both join by :func:`cytosafe.io.platemap.join_plate_map`.

    Parameters
    ----------
    plate_map : str, Path or DataFrame
        The plate map (:func:`cytosafe.io.platemap.read_plate_map`).
    matrix : str or Path
        The plate-reader export or reader matrix.
    study_id, plate_id, analyte, standard_unit :
        As for :func:`cytosafe.io.platemap.read_plate`.
    wavelength, reference_wavelength : float, optional
        The measurement and reference wavelengths (nm) of a plate-reader export
        (:mod:`cytosafe.io.asm`: the reference reading is subtracted well by well); a
        reader matrix holds one number per well and analyte, so they are refused there.
    vendor : str, optional
        An allotropy parser for an export not recognised from its content
        (:func:`cytosafe.io.asm.to_asm`).

    Returns
    -------
    pandas.DataFrame
        The table of :func:`~cytosafe.schema.measurements.validate_measurements`.

    Raises
    ------
    InputError
        What the chosen reader refuses; wavelengths given with a reader matrix.

    Examples
    --------
    >>> table = read_plate("plate_map.csv", "il6_softmax.txt", study_id="CRA-01",
    ...                    analyte="IL-6", wavelength=450, reference_wavelength=570)  # doctest: +SKIP
    """
    from cytosafe.io import asm, platemap

    if vendor is not None or asm.export_kind(matrix) is not None:
        return asm.read_asm_plate(
            plate_map,
            matrix,
            study_id=study_id,
            plate_id=plate_id,
            analyte=analyte,
            wavelength=wavelength,
            reference_wavelength=reference_wavelength,
            standard_unit=standard_unit,
            vendor=vendor,
        )
    for name, value in (("wavelength", wavelength), ("reference_wavelength", reference_wavelength)):
        if value is not None:
            raise InputError(
                f"{name} is for plate-reader exports; this file is read as a reader matrix, "
                "which holds one number per well and analyte",
                file=str(matrix),
                field=name,
                expected="a SoftMax Pro, Gen5 or ASM export, or no wavelength options",
            )
    return platemap.read_plate(
        plate_map,
        matrix,
        study_id=study_id,
        plate_id=plate_id,
        analyte=analyte,
        standard_unit=standard_unit,
    )
