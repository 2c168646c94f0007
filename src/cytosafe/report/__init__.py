"""Reports: self-contained HTML pages that a scientist can review and archive with a study.

``write_qc_report`` writes the quantification QC report (plate QC, standard curves,
standards, plate maps, flags, potency, methods) of a
:class:`~cytosafe.quantification.QuantificationResult`. One module per report
(:mod:`~cytosafe.report.qc`, :mod:`~cytosafe.report.hazard`,
:mod:`~cytosafe.report.clinical`, :mod:`~cytosafe.report.translate`,
:mod:`~cytosafe.report.assays`); what they share is public: the figure helpers in
:mod:`cytosafe.report.figures` and the page environment in :mod:`cytosafe.report.page`.
"""

from cytosafe.report.qc import REFERENCES, Reference, render_qc_report, write_qc_report

__all__ = ["REFERENCES", "Reference", "render_qc_report", "write_qc_report"]
