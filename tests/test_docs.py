"""The README and --help stay true: every command is documented and has help with an example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from liqmap.cli import COMMANDS, cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _example_table_commands() -> set[str]:
    rows = [line for line in README.splitlines() if line.startswith("| ") and "`liqmap " in line]
    return {m.group(1) for line in rows for m in re.finditer(r"`liqmap ([a-z-]+)", line)}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_with_an_example(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output and f"liqmap {name}" in result.output


def test_every_command_is_in_the_readme_table() -> None:
    assert set(COMMANDS) <= _example_table_commands()


def test_readme_names_the_two_setup_commands() -> None:
    assert "make run" in README and "make test" in README
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert re.search(r"^run: install\n\t\$\(BIN\)/liqmap demo$", makefile, re.M)
    assert re.search(r"^test: install lint pytest$", makefile, re.M)
