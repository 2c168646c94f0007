"""The store's public API (``cytosafe.store.__all__``): what the faces import from one place.

Signatures, accounts, plate annotation and deletion and study designs are public functions
of the store, re-exported by the package beside the rest; ``__all__`` is sorted (ruff's
RUF022 order) and names nothing that is not there.
"""

from __future__ import annotations

import cytosafe.store as store
from cytosafe.store import signatures, studies, users


def test_every_name_of_all_is_there_and_the_list_is_sorted():
    missing = [name for name in store.__all__ if not hasattr(store, name)]
    assert missing == []
    assert len(set(store.__all__)) == len(store.__all__)

    def isort_style(name: str) -> tuple[int, str]:  # constants, classes, then functions
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert store.__all__ == sorted(store.__all__, key=isort_style)


def test_signatures_accounts_and_plate_edits_are_re_exported_as_the_same_objects():
    wanted = {
        signatures: ["sign", "list_signatures", "signed_content", "SignatureRefused", "meanings"],
        users: ["change_password", "set_password", "update_user", "remove_from_group"],
        studies: ["annotate_plate", "delete_plate", "save_design"],
    }
    for module, names in wanted.items():
        for name in names:
            assert name in store.__all__, name
            assert getattr(store, name) is getattr(module, name), name
    assert store.WEB_SESSION == users.WEB_SESSION and "WEB_SESSION" in store.__all__
    assert store.Signature.__tablename__ == "signatures" and "Signature" in store.__all__
