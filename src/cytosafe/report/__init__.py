"""Reports: self-contained HTML pages that a scientist can review and archive with a study.

``write_qc_report`` writes the quantification QC report (plate QC, standard curves,
standards, plate maps, flags, potency, methods) of a
:class:`~cytosafe.quantification.QuantificationResult`.
"""

from cytosafe.report.qc import REFERENCES, Reference, render_qc_report, write_qc_report

__all__ = ["REFERENCES", "Reference", "render_qc_report", "write_qc_report"]
