"""The knowledge files and their one loader, cytosafe.data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cytosafe import data
from cytosafe.errors import InputError

SRC = Path(data.__file__).resolve().parents[1]
SHIPPED_TOML = sorted(p.name for p in Path(data.__file__).parent.glob("*.toml"))


@pytest.mark.parametrize("name", SHIPPED_TOML)
def test_every_shipped_knowledge_file_loads_once_and_has_a_version(name):
    first = data.load(name)
    assert first is data.load(name)  # parsed once, cached
    assert first["version"]
    assert data.path(name).is_file()


def test_the_model_files_of_the_boolean_network_are_shipped_beside_it():
    names = data.load("crs_boolean.toml")
    for key in ("network", "config"):
        assert data.path(names[key]).read_text(encoding="utf-8").strip()


def test_an_unknown_file_is_an_error_naming_it_and_the_shipped_files():
    with pytest.raises(InputError, match="not a shipped data file") as err:
        data.load("hazard_rule.toml")
    assert err.value.file == "hazard_rule.toml"
    assert "hazard_rules.toml" in err.value.expected


def test_load_checks_the_schema_a_caller_expects():
    assert data.load("crs_aop.toml", schema="cytosafe.aop")["schema"] == "cytosafe.aop"
    with pytest.raises(InputError, match=r"declares schema 'cytosafe\.aop'") as err:
        data.load("crs_aop.toml", schema="cytosafe.bayes")
    assert err.value.field == "schema"


def test_a_users_knowledge_file_needs_its_schema_and_a_version(tmp_path):
    path = tmp_path / "aop.toml"
    path.write_text('schema = "cytosafe.aop"\n', encoding="utf-8")
    with pytest.raises(InputError, match="has no version") as err:
        data.read_toml(path, schema="cytosafe.aop")
    assert err.value.file == str(path) and err.value.field == "version"
    path.write_text('schema = "cytosafe.aop"\nversion = "1"\n[x\n', encoding="utf-8")
    with pytest.raises(InputError, match="not valid TOML"):
        data.read_toml(path)
    with pytest.raises(InputError, match="file not found"):
        data.read_toml(tmp_path / "missing.toml")


def test_no_other_module_reads_the_shipped_files_by_itself():
    # One loader: packages ask cytosafe.data, they do not open cytosafe/data themselves.
    pattern = re.compile(r"files\(\s*[\"']cytosafe[\"']\s*\)")
    readers = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if p.parent.name != "data" and pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert readers == []
