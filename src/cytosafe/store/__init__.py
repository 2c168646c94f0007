"""The study store: a shared, versioned, audited home for assay studies and cohorts.

SQLAlchemy 2 models (:mod:`.models`) on SQLite (default, a file in the user's data
directory) or PostgreSQL (``CYTOSAFE_DATABASE_URL`` or the ``url`` argument), migrated by
Alembic on open (:mod:`.database`); result tables as Parquet (:mod:`.tables`); the
hash-chained, append-only audit trail (:mod:`.audit`). What the faces do with it, one
module per resource:

- :mod:`.users`: users, groups and API tokens;
- :mod:`.studies`: studies, their designs, and their plates of measurements
  (transactional imports, audited edits, annotations and deletions);
- :mod:`.exclusions`: wells excluded from (and restored to) the calibration, each with
  its reason, as audited events;
- :mod:`.analyses`: versioned analyses with their tables and report, sign-off;
- :mod:`.signatures`: electronic signatures (21 CFR Part 11 §11.50, §11.70, §11.200) with
  their meaning, re-authenticated by password, refusals audited;
- :mod:`.jobs`: background analyses (status, progress, heartbeat, recovery);
- :mod:`.clinical`: observations of a cohort and graded runs over them;
- :mod:`.integrity`: the fingerprints of stored objects the audit trail records, so that
  :func:`verify_audit` finds data changed behind the store's back, not only a changed log.

Every function takes a :class:`Store` (one transaction of its own) or a session of
:meth:`Store.session` (the caller's transaction), and attributes every change to a user
in the audit trail. This module's ``__all__`` is the public API; the store depends on
:mod:`cytosafe.schema` only, and analysis packages never import it.

>>> from cytosafe.store import Store, create_user, create_study
>>> from cytosafe.workflows import run_quantification, store_quantification
>>> store = Store("sqlite:///lab.sqlite3")  # doctest: +SKIP
>>> create_user(store, "ada", role="analyst", password="...")  # doctest: +SKIP
>>> create_study(store, "CRA-EX-001", user="ada")  # doctest: +SKIP
>>> analysis = store_quantification(store, run_quantification(files), user="ada")  # doctest: +SKIP
>>> verify_audit(store) is None  # doctest: +SKIP
True
"""

from cytosafe.store._session import AuthorizationError, SignedOffError
from cytosafe.store.analyses import (
    add_report,
    complete_analysis,
    file_hashes,
    import_analysis,
    load_table,
    sign_off,
    verify_tables,
)
from cytosafe.store.audit import (
    AuditBreak,
    AuditError,
    audit_entries,
    audit_problems,
    chain_heads,
    head,
    parse_heads,
    verify_audit,
)
from cytosafe.store.clinical import import_grades, import_observations
from cytosafe.store.database import (
    AUDIT_HEADS_ENV,
    DATABASE_URL_ENV,
    Store,
    default_url,
    open_store,
)
from cytosafe.store.exclusions import exclude_wells, include_wells, list_exclusions
from cytosafe.store.jobs import beat, recover_interrupted, report_progress, set_status
from cytosafe.store.models import (
    ANALYSIS_KINDS,
    ROLES,
    Analysis,
    AnalysisTable,
    AuditEntry,
    AuditHead,
    Grade,
    Group,
    Measurement,
    Observation,
    Patient,
    Plate,
    Report,
    Signature,
    Study,
    User,
)
from cytosafe.store.signatures import (
    Meaning,
    SignatureRefused,
    list_signatures,
    meanings,
    sign,
    signed_content,
)
from cytosafe.store.studies import (
    EDITABLE_FIELDS,
    annotate_plate,
    create_study,
    delete_plate,
    edit_measurement,
    import_measurements,
    load_measurements,
    save_design,
)
from cytosafe.store.tables import decode_table
from cytosafe.store.users import (
    WEB_SESSION,
    add_to_group,
    change_password,
    create_user,
    issue_token,
    remove_from_group,
    revoke_token,
    set_password,
    token_user,
    update_user,
    user_groups,
    verify_password,
)

__all__ = [
    "ANALYSIS_KINDS",
    "AUDIT_HEADS_ENV",
    "DATABASE_URL_ENV",
    "EDITABLE_FIELDS",
    "ROLES",
    "WEB_SESSION",
    "Analysis",
    "AnalysisTable",
    "AuditBreak",
    "AuditEntry",
    "AuditError",
    "AuditHead",
    "AuthorizationError",
    "Grade",
    "Group",
    "Meaning",
    "Measurement",
    "Observation",
    "Patient",
    "Plate",
    "Report",
    "Signature",
    "SignatureRefused",
    "SignedOffError",
    "Store",
    "Study",
    "User",
    "add_report",
    "add_to_group",
    "annotate_plate",
    "audit_entries",
    "audit_problems",
    "beat",
    "chain_heads",
    "change_password",
    "complete_analysis",
    "create_study",
    "create_user",
    "decode_table",
    "default_url",
    "delete_plate",
    "edit_measurement",
    "exclude_wells",
    "file_hashes",
    "head",
    "import_analysis",
    "import_grades",
    "import_measurements",
    "import_observations",
    "include_wells",
    "issue_token",
    "list_exclusions",
    "list_signatures",
    "load_measurements",
    "load_table",
    "meanings",
    "open_store",
    "parse_heads",
    "recover_interrupted",
    "remove_from_group",
    "report_progress",
    "revoke_token",
    "save_design",
    "set_password",
    "set_status",
    "sign",
    "sign_off",
    "signed_content",
    "token_user",
    "update_user",
    "user_groups",
    "verify_audit",
    "verify_password",
    "verify_tables",
]
