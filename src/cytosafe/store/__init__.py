"""The study store: a shared, versioned, audited home for assay studies and cohorts.

SQLAlchemy 2 models (:mod:`.models`) on SQLite (default, a file in the user's data
directory) or PostgreSQL (``CYTOSAFE_DATABASE_URL`` or the ``url`` argument), migrated by
Alembic on open (:mod:`.database`); transactional imports, versioned analyses and
sign-off (:mod:`.api`); result tables as Parquet (:mod:`.tables`); the hash-chained,
append-only audit trail (:mod:`.audit`).

The store depends on :mod:`cytosafe.schema` only; analysis packages never import it.

>>> from cytosafe.store import Store, create_user, create_study, import_quantification
>>> store = Store("sqlite:///lab.sqlite3")  # doctest: +SKIP
>>> create_user(store, "ada", role="analyst", password="...")  # doctest: +SKIP
>>> create_study(store, "CRA-EX-001", user="ada")  # doctest: +SKIP
>>> analysis = import_quantification(store, cytosafe.quantify(files), user="ada")  # doctest: +SKIP
>>> verify_audit(store) is None  # doctest: +SKIP
True
"""

from cytosafe.store.api import (
    AuthorizationError,
    SignedOffError,
    add_report,
    beat,
    complete_analysis,
    create_study,
    create_user,
    edit_measurement,
    file_hashes,
    import_analysis,
    import_grades,
    import_measurements,
    import_observations,
    import_quantification,
    load_measurements,
    load_table,
    quantification_settings,
    recover_interrupted,
    report_progress,
    set_status,
    sign_off,
    verify_password,
    verify_tables,
)
from cytosafe.store.audit import AuditBreak, AuditError, audit_entries, head, verify_audit
from cytosafe.store.database import DATABASE_URL_ENV, Store, default_url, open_store
from cytosafe.store.models import (
    Analysis,
    AnalysisTable,
    AuditEntry,
    Grade,
    Group,
    Measurement,
    Observation,
    Patient,
    Plate,
    Report,
    Study,
    User,
)

__all__ = [
    "DATABASE_URL_ENV",
    "Analysis",
    "AnalysisTable",
    "AuditBreak",
    "AuditEntry",
    "AuditError",
    "AuthorizationError",
    "Grade",
    "Group",
    "Measurement",
    "Observation",
    "Patient",
    "Plate",
    "Report",
    "SignedOffError",
    "Store",
    "Study",
    "User",
    "add_report",
    "audit_entries",
    "beat",
    "complete_analysis",
    "create_study",
    "create_user",
    "default_url",
    "edit_measurement",
    "file_hashes",
    "head",
    "import_analysis",
    "import_grades",
    "import_measurements",
    "import_observations",
    "import_quantification",
    "load_measurements",
    "load_table",
    "open_store",
    "quantification_settings",
    "recover_interrupted",
    "report_progress",
    "set_status",
    "sign_off",
    "verify_audit",
    "verify_password",
    "verify_tables",
]
