"""Every command's --help shows what its source says.

Typer renders help with Rich, which reads ``[word]`` as a markup tag and drops it: the
help of ``cytosafe reference evaluate --donors`` said "the library's cited  (9 donors"
and ``cytosafe simulate`` "with a  section". A bracketed word meant for the reader must
be written ``\\[word]``; this test renders every command's help and looks for each one.
"""

from __future__ import annotations

import re

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from cytosafe.cli import app

runner = CliRunner()
#: A Rich tag: an opening bracket not escaped, then a name, a closing tag ('/...'), a
#: colour ('#...') or a handler ('@...'), and a closing bracket (Rich's own tag pattern).
TAG = re.compile(r"(?<!\\)\[([a-zA-Z_/#@][^\]\[]*)\]")


def _commands(command=None, path=()):
    """Every command and group (a group's own help is shown too), the app's as ``""``."""
    command = command or get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = {" ".join(path): command for path, command in _commands()}


def _bracketed(command) -> list[str]:
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    return [match for text in texts for match in TAG.findall(text)]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_no_bracketed_word_is_eaten_as_markup(name):
    # Unescaped, a [word] in a help text is rendered as nothing: it must be escaped.
    assert not _bracketed(COMMANDS[name]), f"escape as \\[...] in the help of '{name}'"


def test_escaped_brackets_are_shown():
    result = runner.invoke(app, ["simulate", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.replace("│", " ").split())
    assert "with a [search] section" in text and "file's [potency] ec50" in text
    help_text = runner.invoke(app, ["reference", "evaluate", "--help"], terminal_width=200)
    assert "the library's cited donor panel (9 donors" in " ".join(
        help_text.output.replace("│", " ").split()
    )
