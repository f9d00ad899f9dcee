"""The README's example tables, parsed: the offline one (runs after `make run`) and the online
one (needs an RPC endpoint or the network)."""

from __future__ import annotations

import re
from pathlib import Path

README_PATH = Path(__file__).resolve().parents[1] / "README.md"
#: Titles (bold lines) that open the two example tables.
OFFLINE_TITLE = "**Offline, after `make run`**"
ONLINE_TITLE = "**Against mainnet"
#: A table row whose last cell is one command in backticks.
ROW = re.compile(r"^\| (?P<example>.+?) \| `(?P<command>[^`]*liqmap [^`]*)` \|$")


def example_rows(text: str | None = None) -> list[tuple[int, str, str]]:
    """(line number, example, command) of every table row whose command cell runs liqmap."""
    lines = (README_PATH.read_text() if text is None else text).splitlines()
    return [(i + 1, m["example"], m["command"]) for i, line in enumerate(lines)
            if (m := ROW.match(line))]


def table_rows(title: str, text: str | None = None) -> list[tuple[int, str, str]]:
    """The rows of the first table after the line starting with `title`."""
    lines = (README_PATH.read_text() if text is None else text).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("| "))
    last = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")),
                len(lines))
    return [row for row in example_rows(text) if first < row[0] <= last]


def demo_command() -> str:
    """The offline table's `liqmap demo ...` example (the demo the README's examples read)."""
    commands = [c for _, _, c in table_rows(OFFLINE_TITLE) if c.startswith("liqmap demo ")]
    assert len(commands) == 1, commands
    return commands[0]
