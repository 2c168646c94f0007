"""Bio-Rad Bio-Plex Manager 6 XML exports: the whole run as one document, read into the tidy table.

Bio-Plex Manager 6 (``File > Export > XML``) writes one document per run: root element
``BioPlexManager`` in the namespace ``http://www.Bio-Rad.com/XMLschema/2010/Bio-Plex_5``
(prefix ``bpm``), with ``BioPlexManagerVersion="6.x"``. Studied on the public example
``bio-rad_bio-plex_manager_example_01.xml`` of Benchling-Open-Source/allotropy
(``tests/parsers/biorad_bioplex_manager/testdata``, Bio-Plex Manager 6.2.0.175, 96 wells,
15 analytes) and the small and damaged variants beside it. The parts read::

    <bpm:BioPlexManager xmlns:bpm="..." BioPlexManagerVersion="6.2.0.175">
      <PlateDimensions Columns="12" Rows="8" TotalWells="96"/>
      <Wells>                          per acquired well (RowNo, ColNo): PlateID,
        <Well RowNo="1" ColNo="1">     AcquisitionTime, run settings and, per bead region,
          <PlateID>..</PlateID>        BeadRegion/RegionCount (beads counted) and Median,
          <BeadRegions><BeadRegion RegionNumber="21"><RegionCount>60</RegionCount>
                                                     <Median>3245.00</Median> ...
      <StandardCurves><Interpolators>  per analyte (RegionNumber): AnalyteName,
        <Interpolator RegionNumber="12">  ConcentrationUnits, RecoveryRange (%),
          <Regression Type="10">Logistic - 5PL</Regression>   the regression and
          <LogisticWeighting><LogisticWeightingModel>Power Law Variance</...>
          <LogisticWeightingCoefficientB>1.8</...>             its weighting model
      <Samples>                        Blanks/Blank, Standards/Standard, Controls/Control,
        <Standards><Standard>          Unknowns/Unknown: one element per sample group with
          <Description/><Label>S1</Label><Dilution>1.0E+000</Dilution>
          <Analytes><Analyte RegionNumber="12"> ... <ExpectedConc>..</ExpectedConc>
          <MemberWells><MemberWell RowNo="1" ColNo="1">  <- one per replicate well
            <MWAnalytes><MWAnalyte RegionNumber="12"><AnalyteName>alpha</AnalyteName>
              <Reading Valid="true" Code="0" OutlierType="None">1.0105E+003</Reading>
              <MWObsConc ReadingOK="true" RecoveryRange="...">..</MWObsConc>

How it is read (one row per member well x analyte):

* **signal** is ``MWAnalyte/Reading``: the median fluorescence intensity of the analyte's
  bead region in that well, the number Bio-Plex Manager computes with. It equals the
  well's ``Wells/Well/BeadRegions/BeadRegion/Median`` wherever the example carries both
  (120 of 120 pairs), and the group statistics are made of it (``Analytes/Analyte/RawMean``
  is the mean of the member wells' Readings; ``Mean`` is that minus the blank wells' mean,
  Bio-Plex's FI - Bkgd). It is read rather than ``Median`` because every member well has
  one, while ``Wells`` may hold only some wells (8 of 96 in the example). A reading with
  ``Valid="false"`` is not read (a :class:`~cytosafe.errors.DataWarning` names it,
  ``attrs["skipped"]`` lists it); ``Code`` (non-zero: an acquisition problem such as a low
  bead number) is kept in ``reading_code`` and such readings are named in a DataWarning
  (they are read, as Bio-Plex reads them), ``OutlierType`` other than ``None`` makes
  ``outlier`` true and leaves a standard or blank out of the fit (``exclude``).
* **sample_type** is the group's element: ``Standard`` -> standard (one whose
  ``ExpectedConc`` is 0 is the zero calibrator, a blank, as :mod:`cytosafe.io.bioplex`
  reads it, while another standard of the analyte has a concentration; when none has,
  the concentrations were never entered and the file is refused, naming the analyte:
  the public example is such a file), ``Blank`` -> blank, ``Control`` -> control, ``Unknown`` -> sample.
  ``sample_id`` is the ``Description`` of controls and samples (their ``Label``, ``C1``
  / ``X12``, when it is empty) and the ``Label`` of standards and blanks; ``replicate`` is
  the member well's place in its group.
* **analyte** is ``AnalyteName`` with its bead region (``RegionNumber``) in
  ``bead_region``; two regions under one name keep ``name (region)``, as
  :mod:`cytosafe.io.bioplex` names them.
* **standard_concentration** is the group's ``Analytes/Analyte/ExpectedConc`` for the
  analyte (a standard without one is an error; a control's 0 means no expected value),
  in ``ConcentrationUnits`` of the analyte's ``Interpolator``; **dilution_factor** the
  group's ``Dilution`` (1 where absent, as for blanks); **bead_count** the well's
  ``RegionCount`` where ``Wells`` holds the well, else empty.
* **vendor_concentration** is ``MWObsConc`` where ``ReadingOK="true"`` (empty with
  ``vendor_flag`` ``missing`` otherwise; ``vendor_recovery`` keeps ``RecoveryRange``),
  taken, like the Excel report's Obs Conc, as dilution included (an assumption: every
  MWObsConc of the public example is unset, ``ReadingOK="false"``, ``Data field has not
  been set``, so it could not be checked there); **net_signal** is the
  Reading minus the mean Reading of the ``Blank`` group's wells that are not outliers
  (Bio-Plex's FI - Bkgd: the group ``Mean`` of the example is its ``RawMean`` less that
  mean; zero calibrators are not in it). A ``Regression`` or ``LogisticWeightingModel``
  the convention does not reproduce (other than Logistic 4PL/5PL and Power Law
  Variance) is named in a DataWarning. **vendor_model** is the family of the analyte's ``Regression``
  (``Logistic - 5PL`` -> ``5PL-auto``: the XML prints no coefficients, so the slope's
  sign, hence the 5PL's form, is unknown; ``Logistic - 4PL`` -> ``4PL``), which the
  ``"printed"`` model of :data:`CALIBRATION` follows. An Interpolator's ``EquationErr``
  (Bio-Plex could not fit the curve, e.g. ``Unable to calculate regression - All expected
  values set to zero`` on every analyte of the public example, whose standards all have
  ExpectedConc 0) is passed on as a :class:`~cytosafe.errors.DataWarning`.

Units: ``ConcentrationUnits`` per analyte; where it is empty, the ``standard_unit``
argument; a file unit that differs from it is an error, as is no unit at all when the
analyte has concentrations (an ExpectedConc above 0 or an ObsConc).

Hostile input: the document is decoded as the other text exports are
(:func:`cytosafe.io._text.decode_text`) and parsed by expat with a document type declaration refused
(no entity can be declared, so none can expand or reach outside the file: the attacks
``defusedxml`` guards against), in one linear pass that keeps each element's line, so
every error names the file, the line (``row``), the well and the element or field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

import numpy as np
import pandas as pd

from cytosafe._atomic import atomic_write
from cytosafe.errors import InputError
from cytosafe.io._text import decode_text, short_error
from cytosafe.io._values import written_unit
from cytosafe.io.reader import Probe, finish, names_file
from cytosafe.schema.measurements import validate_measurements
from cytosafe.schema.units import CONCENTRATION_UNIT, analyte_unit, canonical_unit, is_arbitrary
from cytosafe.schema.wells import normalize_well

__all__ = [
    "CALIBRATION",
    "DESCRIPTION",
    "NAME",
    "NAMESPACE",
    "SUFFIXES",
    "parse",
    "read_bioplex_xml",
    "sniff",
    "write",
    "write_bioplex_xml",
]

NAME = "bioplex_xml"
DESCRIPTION = "a Bio-Rad Bio-Plex Manager 6 XML export (.xml)"
SUFFIXES = (".xml",)

#: The namespace of the root element of the export studied (module notes).
NAMESPACE = "http://www.Bio-Rad.com/XMLschema/2010/Bio-Plex_5"

#: How Bio-Plex Manager calibrates, the default of ``cytosafe quantify`` for its XML
#: exports (a user's explicit option overrides a field). Source: each analyte's
#: ``StandardCurves/Interpolators/Interpolator``: ``Regression`` names the regression
#: (``Logistic - 5PL`` in the public example; ``"printed"`` follows it per analyte through
#: ``vendor_model``) and ``LogisticWeighting`` its weighting, ``Power Law Variance`` with
#: ``LogisticWeightingCoefficientB`` 1.8 in the example: a variance growing as FI^1.8,
#: weights 1/FI^1.8, of which CytoSafe's nearest weighting is 1/y^2 (the one
#: :data:`cytosafe.io.bioplex.CALIBRATION` measured on Bio-Plex's Excel reports, whose
#: regression the XML's is). The fit is to FI with the blanks ignored, the Excel
#: convention's equivalent of Bio-Plex's FI - Bkgd (the constant background is absorbed by
#: the asymptotes); the 5PL's asymmetry kept in [0.1, 10] as there.
CALIBRATION = {
    "software": "Bio-Rad Bio-Plex Manager (XML)",
    "model": "printed",
    "weighting": "1/y2",
    "blank": "ignore",
    "asymmetry_bounds": (0.1, 10.0),
    "signal": "FI (MWAnalyte/Reading; equivalent to FI - Bkgd weighted by 1/FI^2)",
    "source": "Bio-Plex Manager XML: Interpolator/Regression and LogisticWeighting per analyte",
}

#: Default ``study_id`` when none is given (an export does not know its study).
DEFAULT_STUDY_ID = "unassigned"

#: Sample group element -> sample_type (the group elements of ``Samples``).
_GROUPS = {"Standard": "standard", "Blank": "blank", "Control": "control", "Unknown": "sample"}
_ROOT = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?BioPlexManager[\s>/]")
_NUMBER = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")
#: Regression text -> the model it names (5PL without coefficients: either form).
_REGRESSIONS = {"logistic-5pl": "5PL-auto", "logistic-4pl": "4PL"}

#: What a Reading's ``Code`` means (Bio-Plex Manager's acquisition error codes, as
#: allotropy's parser maps them, constants.ERROR_MAPPING; 0 is no error).
_READING_CODES = {
    1: "low bead number",
    2: "aggregated beads",
    3: "classify efficiency",
    4: "region selection",
    5: "platform temperature",
}


# --------------------------------------------------------------------------- the tree


@dataclass
class _Node:
    """An element: tag (as written, prefix included), attributes, its own text (the
    character data between its children, joined), children and 1-based line."""

    tag: str
    attrib: dict[str, str]
    line: int
    children: list[_Node] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.tag.rpartition(":")[2]

    @property
    def text(self) -> str:
        return "".join(self.parts).strip()

    def find(self, name: str) -> _Node | None:
        return next((c for c in self.children if c.name == name), None)

    def findall(self, name: str) -> list[_Node]:
        return [c for c in self.children if c.name == name]

    def path(self, *names: str) -> _Node | None:
        node: _Node | None = self
        for name in names:
            node = node.find(name) if node is not None else None
        return node


def _text(node: _Node, *names: str) -> str:
    """The text of the element at ``names`` under ``node`` ("" where there is none)."""
    found = node.path(*names)
    return found.text if found is not None else ""


def _load(path: Path) -> _Node:
    """The document's root element, parsed by expat in one pass; a DTD is refused."""
    if not path.is_file():
        raise InputError("file not found", file=str(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot be read: {exc}", file=str(path)) from None
    # Decoded as every text export is (UTF-8 with or without a byte-order mark, UTF-16,
    # Windows-1252): expat then reads the text as UTF-8, whatever the declaration says.
    text = decode_text(data, file=str(path))
    parser = expat.ParserCreate()
    stack: list[_Node] = []
    roots: list[_Node] = []

    def start(tag: str, attrib: dict[str, str]) -> None:
        node = _Node(tag, attrib, parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)

    def end(_tag: str) -> None:
        stack.pop()

    def chars(text: str) -> None:
        if stack:
            stack[-1].parts.append(text)

    def doctype(name, *_args) -> None:
        raise InputError(
            f"the document declares a document type ('<!DOCTYPE {name}'), which a Bio-Plex "
            "Manager export never does; it is refused unread (declared entities can expand "
            "without bound or reach outside the file)",
            file=str(path),
            row=parser.CurrentLineNumber,
            field="DOCTYPE",
            expected="a Bio-Plex Manager XML export without a document type declaration",
        )

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        raise InputError(
            f"not a Bio-Plex Manager XML export: the file is not well-formed XML "
            f"({expat.ErrorString(exc.code)}, column {exc.offset + 1})",
            file=str(path),
            row=exc.lineno,
            expected="a Bio-Plex Manager XML export (root element bpm:BioPlexManager)",
        ) from None
    except InputError:
        raise  # a document type, refused by its handler
    except (ValueError, RecursionError, MemoryError) as exc:  # e.g. a NUL byte, no encoding
        raise InputError(
            f"not a Bio-Plex Manager XML export: cannot be parsed as XML ({short_error(exc)})",
            file=str(path),
        ) from None
    if not roots:  # pragma: no cover - expat refuses a document without an element
        raise InputError("the XML document has no root element", file=str(path))
    return roots[0]


def _check_root(root: _Node, path: Path) -> None:
    prefix = root.tag.rpartition(":")[0]
    namespace = root.attrib.get(f"xmlns:{prefix}" if prefix else "xmlns", "")
    if root.name != "BioPlexManager" or "bio-rad.com/xmlschema" not in namespace.lower():
        raise InputError(
            f"not a Bio-Plex Manager XML export: the root element is '{root.tag}'"
            + (f" in namespace '{namespace}'" if namespace else " without a namespace"),
            file=str(path),
            row=root.line,
            field=root.tag,
            expected=f"root element bpm:BioPlexManager in namespace {NAMESPACE}",
        )
    if root.find("Samples") is None:
        raise InputError(
            "the export has no Samples element (the sample groups and their wells' readings)",
            file=str(path),
            row=root.line,
            field="Samples",
            expected="a Bio-Plex Manager XML export of a run with its samples",
        )


# --------------------------------------------------------------------------- values


def _number(node: _Node | None, what: str, where: dict, *, text: str | None = None) -> float:
    """The element's text (or ``text``) as a finite number; anything else is an error."""
    value = text if text is not None else (node.text if node is not None else "")
    if not _NUMBER.match(value):
        raise InputError(
            f"{what} '{value}' is not a number" if value else f"{what} is empty",
            field=what,
            expected="a number such as 1.25E+002",
            **{**where, "row": node.line if node is not None else where.get("row")},
        )
    number = float(value)
    if not math.isfinite(number):
        raise InputError(
            f"{what} '{value}' is not a finite number",
            field=what,
            expected="a finite number",
            **{**where, "row": node.line if node is not None else where.get("row")},
        )
    return number


def _is_whole(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes '²' or '١', which ``int`` refuses."""
    return bool(text) and text.isascii() and text.isdigit()


def _int_attr(node: _Node, attr: str, where: dict) -> int:
    value = node.attrib.get(attr, "").strip()
    if not _is_whole(value) or int(value) < 1:
        raise InputError(
            f"{node.name} has {attr}='{value}'" if value else f"{node.name} has no {attr}",
            field=f"{node.name}/@{attr}",
            expected="a whole number >= 1",
            **{**where, "row": node.line},
        )
    return int(value)


def _well(node: _Node, where: dict) -> str:
    row, col = _int_attr(node, "RowNo", where), _int_attr(node, "ColNo", where)
    if row > 26:
        raise InputError(
            f"{node.name} has RowNo='{row}'",
            field=f"{node.name}/@RowNo",
            expected="a plate row 1-16",
            **{**where, "row": node.line},
        )
    return normalize_well(f"{chr(64 + row)}{col}", **{**where, "row": node.line})


# --------------------------------------------------------------------------- sections


@dataclass
class _Curve:
    """What an Interpolator says of one bead region's analyte."""

    name: str
    unit: str
    regression: str
    weighting: str
    line: int
    error: str = ""


def _interpolators(root: _Node, file: str) -> dict[str, _Curve]:
    out: dict[str, _Curve] = {}
    node = root.path("StandardCurves", "Interpolators")
    for it in node.findall("Interpolator") if node is not None else ():
        region = it.attrib.get("RegionNumber", "").strip()
        where = {"file": file, "row": it.line}
        if not _is_whole(region):
            raise InputError(
                f"Interpolator has RegionNumber='{region}'",
                field="Interpolator/@RegionNumber",
                expected="a bead region number",
                **where,
            )
        out[region] = _Curve(
            name=_text(it, "AnalyteName"),
            unit=_text(it, "ConcentrationUnits"),
            regression=_text(it, "Regression"),
            weighting=_text(it, "LogisticWeighting", "LogisticWeightingModel"),
            line=it.line,
            error=_text(it, "EquationErr"),
        )
    return out


def _acquired(root: _Node, file: str) -> tuple[dict[tuple[str, str], float], dict[str, str]]:
    """From ``Wells``: (well, region) -> beads counted, and well -> its PlateID."""
    counts: dict[tuple[str, str], float] = {}
    plates: dict[str, str] = {}
    wells = root.find("Wells")
    for node in wells.findall("Well") if wells is not None else ():
        where = {"file": file}
        well = _well(node, where)
        where["well"] = well
        plate = node.find("PlateID")
        if plate is not None and plate.text:
            plates[well] = plate.text
        regions = node.find("BeadRegions")
        for bead in regions.findall("BeadRegion") if regions is not None else ():
            region = bead.attrib.get("RegionNumber", "").strip()
            count = bead.find("RegionCount")
            if count is None:
                continue
            value = _number(count, "RegionCount", where)
            if value < 0:
                raise InputError(
                    f"RegionCount {value:g} is negative",
                    field="RegionCount",
                    expected="a count >= 0",
                    **{**where, "row": count.line},
                )
            counts[(well, region)] = value
    return counts, plates


def _group_members(samples: _Node) -> list[tuple[str, _Node]]:
    """Every sample group element under ``Samples`` (``Standards/Standard``, ...)."""
    out = []
    for section in samples.children:
        for group in section.children:
            if group.name in _GROUPS:
                out.append((group.name, group))
    return out


# --------------------------------------------------------------------------- records


def _records(root: _Node, path: Path, skipped: list[dict]) -> list[dict]:
    file = str(path)
    counts, _ = _acquired(root, file)
    samples = root.find("Samples")
    records: list[dict] = []
    seen: dict[tuple[str, str], int] = {}
    #: The group each well belongs to (a well is one sample: in two groups, one for some
    #: analytes and another for others, its role would depend on the analyte).
    owner: dict[str, tuple[str, int]] = {}
    groups = _group_members(samples)
    if not groups:
        raise InputError(
            "the Samples element holds no Standard, Blank, Control or Unknown group",
            file=file,
            row=samples.line,
            field="Samples",
            expected="sample groups with member wells and their readings",
        )
    for kind, group in groups:
        label = _text(group, "Label")
        gwhere = {"file": file, "row": group.line}
        if not label:
            raise InputError(
                f"a {kind} group has no Label",
                field=f"{kind}/Label",
                expected="the group's label, e.g. S1, B, C1, X1",
                **gwhere,
            )
        what = f"{kind} {label}"
        description = _text(group, "Description")
        dil_node = group.find("Dilution")
        dilution = 1.0
        if dil_node is not None and dil_node.text:
            dilution = _number(dil_node, "Dilution", gwhere)
            if dilution <= 0:
                raise InputError(
                    f"{what} has Dilution {dilution:g}",
                    field="Dilution",
                    expected="a number > 0 (1 = neat)",
                    **{**gwhere, "row": dil_node.line},
                )
        expected: dict[str, tuple[float, int]] = {}
        analytes = group.find("Analytes")
        for an in analytes.findall("Analyte") if analytes is not None else ():
            conc = an.find("ExpectedConc")
            region = an.attrib.get("RegionNumber", "").strip()
            if conc is not None and conc.text:
                value = _number(conc, "ExpectedConc", gwhere)
                if value < 0:
                    raise InputError(
                        f"{what} has a negative ExpectedConc {value:g}",
                        field="ExpectedConc",
                        expected="a concentration >= 0",
                        **{**gwhere, "row": conc.line},
                    )
                expected[region] = (value, conc.line)
        members = group.find("MemberWells")
        wells = members.findall("MemberWell") if members is not None else []
        if not wells:
            raise InputError(
                f"{what} has no member well",
                field=f"{kind}/MemberWells",
                expected="one MemberWell per replicate well",
                **gwhere,
            )
        for replicate, member in enumerate(wells, start=1):
            well = _well(member, {"file": file})
            mwhere = {"file": file, "well": well}
            first = owner.setdefault(well, (what, member.line))
            if first[0] != what:
                raise InputError(
                    f"well {well} is a member of {what} and of {first[0]} (line {first[1]})",
                    field="MemberWell",
                    expected="each well in one sample group",
                    row=member.line,
                    **mwhere,
                )
            mw = member.find("MWAnalytes")
            readings = mw.findall("MWAnalyte") if mw is not None else []
            if not readings:
                raise InputError(
                    f"well {well} of {what} has no reading (no MWAnalyte)",
                    field="MWAnalytes",
                    expected="an MWAnalyte with a Reading per analyte read in the well",
                    row=member.line,
                    **mwhere,
                )
            for node in readings:
                rwhere = {**mwhere, "row": node.line}
                region = node.attrib.get("RegionNumber", "").strip()
                if not _is_whole(region):
                    raise InputError(
                        f"MWAnalyte of well {well} has RegionNumber='{region}'",
                        field="MWAnalyte/@RegionNumber",
                        expected="a bead region number",
                        **rwhere,
                    )
                name = _text(node, "AnalyteName")
                if not name:
                    raise InputError(
                        f"region {region} of well {well} has no AnalyteName",
                        field="AnalyteName",
                        expected="the analyte's name",
                        **rwhere,
                    )
                key = (region, well)
                if key in seen:
                    raise InputError(
                        f"duplicate well: {name} (region {region}) in well {well} already "
                        f"has a reading (line {seen[key]})",
                        field="MemberWell",
                        expected="one reading per well and analyte",
                        **rwhere,
                    )
                seen[key] = node.line
                reading = node.find("Reading")
                if reading is None or not reading.text:
                    raise InputError(
                        f"well {well} has no Reading for {name} (region {region})",
                        field="Reading",
                        expected="the well's median FI for the analyte",
                        **({**rwhere, "row": reading.line} if reading is not None else rwhere),
                    )
                signal = _number(reading, "Reading", mwhere)
                if signal < 0:
                    raise InputError(
                        f"Reading {signal:g} is negative",
                        field="Reading",
                        expected="a non-negative median FI",
                        **{**mwhere, "row": reading.line},
                    )
                if reading.attrib.get("Valid", "true").strip().lower() == "false":
                    skipped.append(
                        {"line": reading.line, "well": well, "label": label, "analyte": name,
                         "region": int(region), "reason": "Valid=false"}
                    )  # fmt: skip
                    continue
                sample_type = _GROUPS[kind]
                exp = expected.get(region)
                if sample_type == "standard":
                    if exp is None:
                        raise InputError(
                            f"{what} has no ExpectedConc for {name} (region {region})",
                            field="ExpectedConc",
                            expected="the standard's nominal concentration under "
                            f"{kind}/Analytes/Analyte[@RegionNumber='{region}']",
                            **{**gwhere, "well": well},
                        )
                    if exp[0] == 0:
                        sample_type = "blank"  # the zero calibrator
                obs = node.find("MWObsConc")
                obs_ok = obs is not None and obs.attrib.get("ReadingOK", "").lower() == "true"
                vendor = _number(obs, "MWObsConc", mwhere) if obs_ok else math.nan
                code = reading.attrib.get("Code", "0").strip() or "0"
                outlier = reading.attrib.get("OutlierType", "None").strip() not in ("", "None")
                records.append(
                    {
                        "region": region,
                        "analyte_name": name,
                        "well": well,
                        "sample_type": sample_type,
                        "signal": signal,
                        "dilution_factor": dilution,
                        "sample_id": description
                        if description and sample_type in ("control", "sample")
                        else label,
                        "replicate": replicate,
                        "bead_count": counts.get((well, region), math.nan),
                        "exclude": outlier and sample_type in ("standard", "blank"),
                        "source_row": reading.line,
                        "exp_conc": exp[0] if exp is not None else math.nan,
                        "_obs_conc": vendor,
                        "vendor_flag": None if obs_ok else "missing",
                        "vendor_recovery": None if obs is None else obs.attrib.get("RecoveryRange"),
                        "type_label": label,
                        "description": description or None,
                        "outlier": outlier,
                        "reading_code": int(code) if _is_whole(code) else math.nan,
                        "bead_region": int(region),
                        "_blank_group": kind == "Blank" and not outlier,
                        "_standard_group": kind == "Standard",
                    }
                )
    return records


def _analyte_names(records: list[dict], curves: dict[str, _Curve]) -> dict[str, str]:
    """Region -> analyte name; a name two regions share keeps ``name (region)``."""
    names: dict[str, str] = {}
    for rec in records:
        names.setdefault(rec["region"], rec["analyte_name"])
    regions: dict[str, set[str]] = {}
    for region, name in names.items():
        regions.setdefault(name.strip().lower(), set()).add(region)
    return {
        region: f"{name} ({region})" if len(regions[name.strip().lower()]) > 1 else name
        for region, name in names.items()
    }


def _unit(
    region: str, curves: dict[str, _Curve], standard_unit: str | None, file: str
) -> tuple[str | None, dict]:
    """The unit of a region's concentrations and where it was read."""
    curve = curves.get(region)
    if curve is not None and curve.unit:
        where = {"file": file, "row": curve.line, "field": "ConcentrationUnits"}
        canonical_unit(curve.unit, **where)
        if standard_unit is not None and canonical_unit(standard_unit) != canonical_unit(
            curve.unit
        ):
            raise InputError(
                f"the export declares concentrations in '{curve.unit}' (line {curve.line}) "
                f"but standard_unit='{standard_unit}' was given",
                file=file,
                field="standard_unit",
                expected=f"standard_unit='{curve.unit}' or None",
            )
        return curve.unit, where
    return standard_unit, {"file": file, "field": "standard_unit"}


# --------------------------------------------------------------------------- public API


def sniff(probe: Probe) -> bool:
    """A text file whose first lines open the root element ``BioPlexManager`` (any prefix):
    the export's own mark, which no other reader's sniff takes."""
    if probe.is_ole2 or probe.is_xlsx or not probe.lines:
        return False
    head = "\n".join(probe.lines[:20]).lstrip("\ufeff")
    return head.lstrip().startswith("<") and bool(_ROOT.search(head))


def read_bioplex_xml(
    path,
    *,
    study_id: str | None = None,
    plate_id: str | None = None,
    sample_map=None,
    standard_unit: str | None = None,
) -> pd.DataFrame:
    """Read a Bio-Plex Manager 6 XML export into the validated tidy measurement table.

    Parameters
    ----------
    path : str or Path
        The export (``.xml``); recognised by its root element, not its extension.
    study_id : str, optional
        Study identifier; defaults to ``"unassigned"``.
    plate_id : str, optional
        Plate identifier; defaults to the wells' ``PlateID``, else the file name.
    sample_map : DataFrame or path, optional
        Culture metadata joined with :func:`cytosafe.io.samples.annotate` (by
        ``sample_id``, the groups' Description, or by ``well``).
    standard_unit : str, optional
        Unit of the concentrations of analytes whose ``ConcentrationUnits`` is empty.

    Returns
    -------
    pandas.DataFrame
        One row per member well x analyte (module notes), validated. Extras:
        ``concentration_unit``, ``net_signal``, ``vendor_concentration`` (MWObsConc),
        ``vendor_flag``, ``vendor_recovery``, ``vendor_model``, ``regression``,
        ``weighting_model``, ``exp_conc``, ``exp_conc_unit``, ``type_label``,
        ``description``, ``outlier``, ``reading_code``, ``bead_region``.
        ``attrs["skipped"]`` lists readings marked ``Valid="false"``;
        ``attrs["software_version"]`` is ``BioPlexManagerVersion``.

    Raises
    ------
    InputError
        Naming the file, the line, the well and the element or field: not well-formed
        XML, a document type declaration, another root element, no Samples; a standard
        without an ExpectedConc; a member well without a Reading; the same well twice
        for one analyte; a value that is not a number; an unknown or conflicting unit.
        Nothing is returned on error.

    Examples
    --------
    >>> table = read_bioplex_xml("run.xml", study_id="CRA-001")  # doctest: +SKIP
    """
    table = parse(path, study_id=study_id, plate_id=plate_id, standard_unit=standard_unit)
    return finish(table, source=path, sample_map=sample_map)


@names_file
def parse(
    path,
    *,
    study_id: str | None = None,
    plate_id: str | None = None,
    standard_unit: str | None = None,
) -> pd.DataFrame:
    """The raw table of a Bio-Plex Manager XML export (the reader contract);
    :func:`read_bioplex_xml` validates it. Its warning waits in ``attrs["warnings"]``."""
    path = Path(path)
    file = str(path)
    if standard_unit is not None:
        analyte_unit(standard_unit, file=file, field="standard_unit")
    root = _load(path)
    _check_root(root, path)
    curves = _interpolators(root, file)
    skipped: list[dict] = []
    records = _records(root, path, skipped)
    if not records:
        raise InputError(
            "the export has no valid reading",
            file=file,
            field="Reading",
            expected="at least one member well with a Reading",
        )
    names = _analyte_names(records, curves)

    # Units per analyte (bead region), and FI - Bkgd from the blank wells' mean Reading.
    by_region: dict[str, list[dict]] = {}
    for rec in records:
        by_region.setdefault(rec["region"], []).append(rec)
    for region, recs in by_region.items():
        standards = [r for r in recs if r.pop("_standard_group")]
        if standards and not any(r["exp_conc"] > 0 for r in standards):
            # Not a zero calibrator: no standard has a concentration (Bio-Plex says
            # "All expected values set to zero" in EquationErr); read as blanks, the series
            # raised the background and sent samples below it.
            labels = list(dict.fromkeys(r["type_label"] for r in standards))
            raise InputError(
                f"every Standard of {recs[0]['analyte_name']} (region {region}) has "
                f"ExpectedConc 0 ({', '.join(labels[:6])}{', ...' if len(labels) > 6 else ''}): "
                "the standards' concentrations were not entered in Bio-Plex Manager",
                file=file,
                row=standards[0]["source_row"],
                field="ExpectedConc",
                expected="the kit's standard concentrations entered in Bio-Plex Manager's "
                "protocol (Standards), then the XML exported again",
            )
        needs_unit = any(r["exp_conc"] > 0 or math.isfinite(r["_obs_conc"]) for r in recs)
        unit, where = _unit(region, curves, standard_unit, file)
        if needs_unit and unit is None:
            raise InputError(
                f"{names[region]} (region {region}) has concentrations but the export "
                "declares no unit (its Interpolator's ConcentrationUnits is empty)",
                file=file,
                row=curves[region].line if region in curves else None,
                field="ConcentrationUnits",
                expected="the kit's unit given as standard_unit='pg/mL' (cytosafe quantify "
                "--standard-unit pg/mL; IU/mL, U/mL, AU/mL are kept as written)",
            )
        stored, factor = analyte_unit(unit, **where) if unit else (None, 1.0)
        blanks = [r["signal"] for r in recs if r.pop("_blank_group")]
        background = float(np.mean(blanks)) if blanks else 0.0
        curve = curves.get(region)
        regression = curve.regression if curve is not None else ""
        for rec in recs:
            has_expected = rec["sample_type"] == "standard" or (
                rec["sample_type"] == "control" and rec["exp_conc"] > 0
            )
            rec["analyte"] = names[region]
            rec["standard_concentration"] = rec["exp_conc"] * factor if has_expected else np.nan
            rec["vendor_concentration"] = rec.pop("_obs_conc") * factor
            rec["concentration_unit"] = stored
            rec["exp_conc_unit"] = canonical_unit(unit) if unit else None
            rec["net_signal"] = rec["signal"] - background
            rec["regression"] = regression or None
            rec["vendor_model"] = _REGRESSIONS.get(re.sub(r"\s+", "", regression.lower()))
            rec["weighting_model"] = (curve.weighting or None) if curve is not None else None

    if plate_id is None:
        _, plates = _acquired(root, file)
        distinct = list(dict.fromkeys(plates.values()))
        if len(distinct) > 1:
            raise InputError(
                "the wells name different PlateIDs: " + ", ".join(distinct[:5]),
                file=file,
                field="PlateID",
                expected="one plate per export, or pass plate_id=",
            )
        plate_id = distinct[0] if distinct else path.stem

    table = pd.DataFrame.from_records(records).drop(columns=["region", "analyte_name"])
    table.insert(0, "study_id", study_id or DEFAULT_STUDY_ID)
    table.insert(1, "plate_id", plate_id)
    table["source_file"] = file
    extras = ["concentration_unit", "net_signal", "vendor_concentration", "vendor_flag",
              "vendor_recovery", "vendor_model", "regression", "weighting_model", "exp_conc",
              "exp_conc_unit", "type_label", "description", "outlier", "reading_code",
              "bead_region"]  # fmt: skip
    table = table[[c for c in table.columns if c not in extras] + extras]
    table["bead_region"] = table["bead_region"].astype("Int64")
    table["reading_code"] = table["reading_code"].astype("Int64")

    pending = []
    if skipped:
        listed = "; ".join(
            f"line {s['line']} ({s['label']}, {s['well']}, {s['analyte']})" for s in skipped[:5]
        )
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        pending.append(
            f'{path}: {len(skipped)} reading(s) are marked Valid="false" by Bio-Plex '
            f"Manager and were not read: {listed}{more}"
        )
    coded = table[table["reading_code"].fillna(0) > 0]
    if len(coded):
        listed = "; ".join(
            f"line {r.source_row} ({r.well}, {r.analyte}: code {r.reading_code} "
            f"{_READING_CODES.get(int(r.reading_code), 'unknown')})"
            for r in coded.head(5).itertuples(index=False)
        )
        more = f"; and {len(coded) - 5} more" if len(coded) > 5 else ""
        pending.append(
            f"{path}: {len(coded)} reading(s) carry a Bio-Plex Manager error code and were "
            f"read as they are (column reading_code): {listed}{more}"
        )
    odd: list[str] = []
    for region, curve in curves.items():
        if region not in names:
            continue
        key = re.sub(r"\s+", "", curve.regression.lower())
        if curve.regression and key not in _REGRESSIONS:
            odd.append(f"{names[region]}: regression '{curve.regression}' (fitted 5PL)")
        if curve.weighting and curve.weighting.strip().lower() != "power law variance":
            odd.append(f"{names[region]}: weighting '{curve.weighting}' (weighted 1/y2)")
    if odd:
        pending.append(
            f"{path}: the convention reproduces Bio-Plex's Logistic 4PL/5PL with Power Law "
            f"Variance weighting; these Interpolators name another: {'; '.join(odd[:5])}"
            f"{'; ...' if len(odd) > 5 else ''}"
        )
    norm = root.find("NormalizationSettings")
    if norm is not None and (
        norm.attrib.get("NormalizationOn", "").strip().lower() == "true"
        or (_text(norm, "UsingNormFIForConcCalcs") or "").strip().lower() == "true"
    ):
        pending.append(
            f"{path}: Bio-Plex Manager's normalisation is on (NormalizationSettings, line "
            f"{norm.line}): its concentrations came from normalised FI, while CytoSafe "
            "calibrates the raw Readings, so the two will not agree (vendor_concentration)"
        )
    failed: dict[str, list[str]] = {}
    for region, curve in curves.items():
        if curve.error and region in names:
            failed.setdefault(curve.error, []).append(names[region])
    for error, analytes in failed.items():
        pending.append(
            f"{path}: Bio-Plex Manager could not fit the standard curve of {len(analytes)} "
            f"analyte(s) ({', '.join(analytes[:5])}{', ...' if len(analytes) > 5 else ''}): "
            f"its EquationErr says '{error}'"
        )
    table.attrs["warnings"] = pending
    table.attrs["skipped"] = skipped
    table.attrs["software_version"] = root.attrib.get("BioPlexManagerVersion")
    return table


# --------------------------------------------------------------------------- writing


def _num(value: float) -> str:
    return repr(float(value))


def write_bioplex_xml(measurements: pd.DataFrame, path, *, standard_unit: str | None = None):
    """Write a one-plate measurement table as a Bio-Plex Manager XML export.

    The layout the reader takes (module notes), reduced to what a measurement table
    holds: ``PlateDimensions``; ``Wells`` with each well's ``PlateID`` and, per analyte,
    ``BeadRegion`` ``RegionCount`` (bead_count) and ``Median`` (signal); one
    ``Interpolator`` per analyte with its ``AnalyteName`` and ``ConcentrationUnits``
    (no regression: the table holds no fit); and ``Samples`` with one group per standard
    level (``S1..`` by falling concentration), the blanks (``B``), and one per control
    or sample (``C1..``, ``X1..``, Description its ``sample_id``) and dilution, each with
    ``ExpectedConc`` per analyte (standards, controls) and its member wells' ``Reading``
    and ``MWObsConc`` (vendor_concentration). Bead regions are ``bead_region`` where
    given, else 1, 2, ... in the order of the analytes. Numbers are written as Python's
    shortest round-trip text, so a read gives back the same doubles.

    Raises
    ------
    InputError
        The table is not valid, holds several plates, or a well with different sample
        types or dilutions for two analytes (one well is one sample in the export).
    """
    import xml.etree.ElementTree as ET

    path = Path(path)
    table = validate_measurements(measurements).reset_index(drop=True)
    plates = list(dict.fromkeys(table["plate_id"]))
    if len(plates) > 1:
        raise InputError(
            f"a Bio-Plex Manager XML export holds one plate; the table has {len(plates)}",
            file=str(path),
            field="plate_id",
            expected="the rows of one plate",
        )
    analytes = list(dict.fromkeys(table["analyte"].astype(str)))
    units = {}
    for analyte in analytes:
        part = table[table["analyte"] == analyte]
        stored = part["concentration_unit"].iloc[0]
        units[analyte] = written_unit(
            part,
            standard_unit if stored == CONCENTRATION_UNIT or is_arbitrary(standard_unit) else None,
            layout="a Bio-Plex Manager XML export",
            file=str(path),
        )
    regions: dict[str, int] = {}
    given = table.get("bead_region")
    for k, analyte in enumerate(analytes, start=1):
        values = (
            pd.to_numeric(given[table["analyte"] == analyte], errors="coerce").dropna().unique()
            if given is not None
            else []
        )
        regions[analyte] = int(values[0]) if len(values) == 1 else k
    by_well: dict[str, pd.DataFrame] = {w: g for w, g in table.groupby("well", sort=True)}
    groups: dict[tuple, list[str]] = {}
    for well, rows in by_well.items():
        kinds = set(rows["sample_type"].astype(str))
        dils = set(rows["dilution_factor"].astype(float))
        if len(kinds) > 1 or len(dils) > 1:
            raise InputError(
                f"well {well} is a {' and a '.join(sorted(kinds))} or has several dilutions "
                "across analytes; the export holds one sample per well",
                file=str(path),
                well=well,
                field="sample_type",
                expected="one sample type and dilution per well",
            )
        kind, dil = kinds.pop(), dils.pop()
        if kind == "standard":
            key = tuple(sorted(zip(rows["analyte"], rows["standard_concentration"], strict=True)))
        elif kind == "blank":
            key = ()
        else:
            sid = rows["sample_id"].iloc[0]
            key = (sid if isinstance(sid, str) else f"\0{well}",)
        groups.setdefault((kind, key, dil), []).append(well)

    root = ET.Element(
        "bpm:BioPlexManager",
        {"xmlns:bpm": NAMESPACE, "BioPlexManagerVersion": "6.2 (written by CytoSafe)"},
    )
    ET.SubElement(root, "Description").text = "written by CytoSafe write_bioplex_xml"
    ET.SubElement(root, "PlateDimensions", {"Columns": "12", "Rows": "8", "TotalWells": "96"})
    wells_el = ET.SubElement(root, "Wells")
    for well, rows in by_well.items():
        el = ET.SubElement(wells_el, "Well", {"RowNo": str(ord(well[0]) - 64),
                                              "ColNo": str(int(well[1:]))})  # fmt: skip
        ET.SubElement(el, "PlateID").text = str(plates[0])
        beads = ET.SubElement(el, "BeadRegions")
        for _, row in rows.iterrows():
            bead = ET.SubElement(
                beads, "BeadRegion", {"RegionNumber": str(regions[row["analyte"]])}
            )
            if pd.notna(row["bead_count"]):
                ET.SubElement(bead, "RegionCount").text = _num(row["bead_count"])
            ET.SubElement(bead, "Median").text = _num(row["signal"])
    interp = ET.SubElement(ET.SubElement(root, "StandardCurves"), "Interpolators")
    for analyte in analytes:
        it = ET.SubElement(interp, "Interpolator", {"RegionNumber": str(regions[analyte])})
        ET.SubElement(it, "AnalyteName").text = analyte
        ET.SubElement(it, "ConcentrationUnits").text = units[analyte][0]
    samples = ET.SubElement(root, "Samples")
    vendor = (
        pd.to_numeric(table["vendor_concentration"], errors="coerce")
        if "vendor_concentration" in table.columns
        else pd.Series(np.nan, index=table.index)
    )
    order = {"standard": 0, "blank": 1, "control": 2, "sample": 3}
    tags = {"standard": ("Standards", "Standard", "S"), "blank": ("Blanks", "Blank", "B"),
            "control": ("Controls", "Control", "C"), "sample": ("Unknowns", "Unknown", "X")}  # fmt: skip

    def level(item):
        (kind, key, _dil), _ = item
        top = -max((c for _, c in key), default=0.0) if kind == "standard" else 0.0
        return order[kind], top

    counters: dict[str, int] = {}
    sections: dict[str, ET.Element] = {}
    for (kind, _key, dil), wells in sorted(groups.items(), key=level):
        section_tag, group_tag, prefix = tags[kind]
        if section_tag not in sections:
            sections[section_tag] = ET.SubElement(samples, section_tag)
        counters[kind] = counters.get(kind, 0) + 1
        label = "B" if kind == "blank" else f"{prefix}{counters[kind]}"
        group = ET.SubElement(sections[section_tag], group_tag)
        first = by_well[wells[0]]
        sid = first["sample_id"].iloc[0]
        ET.SubElement(group, "Description").text = (
            sid if kind in ("control", "sample") and isinstance(sid, str) else ""
        )
        ET.SubElement(group, "Label").text = label
        if kind != "blank":
            ET.SubElement(group, "Dilution").text = _num(dil)
        ans = ET.SubElement(group, "Analytes")
        for _, row in first.iterrows():
            an = ET.SubElement(ans, "Analyte", {"RegionNumber": str(regions[row["analyte"]])})
            ET.SubElement(an, "AnalyteName").text = row["analyte"]
            conc = row["standard_concentration"]
            if kind in ("standard", "control") and pd.notna(conc):
                ET.SubElement(an, "ExpectedConc").text = _num(conc / units[row["analyte"]][1])
        members = ET.SubElement(group, "MemberWells")
        for well in wells:
            mw = ET.SubElement(members, "MemberWell", {"RowNo": str(ord(well[0]) - 64),
                                                       "ColNo": str(int(well[1:]))})  # fmt: skip
            mwa = ET.SubElement(mw, "MWAnalytes")
            for i, row in by_well[well].iterrows():
                a = ET.SubElement(mwa, "MWAnalyte", {"RegionNumber": str(regions[row["analyte"]])})
                ET.SubElement(a, "AnalyteName").text = row["analyte"]
                ET.SubElement(
                    a, "Reading", {"Valid": "true", "Code": "0", "OutlierType": "None"}
                ).text = _num(row["signal"])
                v = vendor.iat[i] if i < len(vendor) else math.nan
                ok = pd.notna(v)
                ET.SubElement(a, "MWObsConc", {"ReadingOK": "true" if ok else "false"}).text = (
                    _num(v / units[row["analyte"]][1]) if ok else "0"
                )
    ET.indent(root, space="    ")
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")

    def write_file(target: Path) -> None:
        target.write_text(text + "\n", encoding="utf-8")

    atomic_write(path, write_file)
    return path


write = write_bioplex_xml
