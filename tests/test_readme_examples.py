"""Every example of the README's offline table runs as written after `make run`.

The commands are run as a user types them (bash, `liqmap` = `python -m liqmap`, the venv's
`python` on PATH) in a folder holding a copy of the session's demo outputs (`demo-out`, made by
the table's own `liqmap demo ...` example with `--hours 0.5 --positions 100` appended, see
conftest `demo_run`), two at a time in the table's order, except that a command writing into a
store (`WRITERS`) runs alone after everything above it. Each must exit 0 without a traceback.
Commands that run until Ctrl-C are bounded by a timeout instead of changing them:
`liqmap serve ...` runs until it prints its URL (with `--port 0` appended: the README's 8050 may
be taken on a shared machine), `liqmap simulate ...` for `RUN_S` seconds after its node is up;
then each gets SIGINT (Ctrl-C) and must stop cleanly (exit 0). The online table's commands
cannot run offline: their options are checked with `--help`. No README table row with a liqmap
command lies outside the two tables.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from liqmap.cli import cli
from readme_examples import (
    OFFLINE_TITLE,
    ONLINE_TITLE,
    example_rows,
    table_rows,
)

from conftest import DemoRun, clean_env

#: How long `liqmap simulate` examples run once their node is up, before Ctrl-C (s).
RUN_S = 1.0
#: Examples run this many at a time (the machine has 2 cores).
WORKERS = 2
#: Commands that write into a store: each runs alone, in the table's order.
WRITERS = ("import-legacy", "compact", "recover")
#: Longest any one example may take (s), a hang guard.
TIMEOUT_S = 180.0
#: Placeholder values of the online examples' shell variables.
PLACEHOLDERS = {"$PRIMARY": "https://rpc-a.example", "$BACKUP": "https://rpc-b.example",
                "$RPC": "https://rpc.example", "$WS": "wss://rpc.example"}


def _shell(command: str) -> str:
    """`command` with `liqmap` run as `python -m liqmap` (this interpreter)."""
    return re.sub(r"(^|\s)liqmap(?=\s)", rf"\1{shlex.quote(sys.executable)} -m liqmap",
                  command)


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # as in the activated venv: `python` is there
    return clean_env(PATH=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]))


def _verb(command: str) -> str:
    """The liqmap command an example runs (`serve` for `X=... liqmap serve ...`)."""
    words = shlex.split(command)
    return words[words.index("liqmap") + 1] if "liqmap" in words else ""


def _run(command: str, cwd: Path) -> tuple[int, str]:
    """Exit code and output of one example (bounded ones: see the module doc)."""
    verb = _verb(command)
    if verb == "serve":
        return _until_ready(_shell(command + " --port 0"), cwd, "liqmap serve: http")
    if verb == "simulate":
        return _until_ready(_shell(command), cwd, "local Solana node:", RUN_S)
    done = subprocess.run(["bash", "-c", _shell(command)], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    return done.returncode, done.stdout + done.stderr


def _until_ready(shell: str, cwd: Path, ready: str, linger_s: float = 0.0) -> tuple[int, str]:
    """Run until a line of stdout starts with `ready` (+ `linger_s`), then Ctrl-C (SIGINT)."""
    with tempfile.TemporaryFile("w+") as stderr:  # progress bars: a pipe nobody reads fills
        proc = subprocess.Popen(["bash", "-c", shell], cwd=cwd, env=_env(), text=True,
                                stdout=subprocess.PIPE, stderr=stderr,
                                start_new_session=True)  # Ctrl-C reaches the group, as in a shell
        assert proc.stdout is not None
        lines = [proc.stdout.readline()]
        deadline = time.monotonic() + TIMEOUT_S
        while lines[-1] and not lines[-1].startswith(ready) and time.monotonic() < deadline:
            lines.append(proc.stdout.readline())
        time.sleep(linger_s)
        _signal_group(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        stderr.seek(0)
        return proc.returncode, "".join(lines) + out + stderr.read()


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended by itself (an error, say)
        os.killpg(pid, signum)


def test_every_readme_example_is_in_one_of_the_two_tables() -> None:
    offline, online = table_rows(OFFLINE_TITLE), table_rows(ONLINE_TITLE)
    assert len(offline) >= 20 and len(online) >= 5
    assert sorted(offline + online) == example_rows()
    for _, example, command in offline:
        assert "$" not in command.replace("$(python", ""), f"{example} needs a variable"


@pytest.mark.parametrize(("line", "example", "command"), table_rows(ONLINE_TITLE))
def test_online_examples_take_their_options(line: int, example: str, command: str) -> None:
    for name, value in PLACEHOLDERS.items():
        command = command.replace(name, value)
    words = shlex.split(command)
    result = CliRunner().invoke(cli, [*words[words.index("liqmap") + 1:], "--help"])
    assert result.exit_code == 0, f"README line {line} ({example}): {result.output}"


def _phases(rows: list[tuple[int, str, str]]) -> list[list[tuple[int, str, str]]]:
    """`rows` in order, cut so that a command writing into a store runs alone, after every
    example above it and before every one below; the others of a phase run `WORKERS` at a
    time."""
    phases: list[list[tuple[int, str, str]]] = [[]]
    for row in rows:
        if _verb(row[2]) in WRITERS:
            phases += [[row], []]
        else:
            phases[-1].append(row)
    return [p for p in phases if p]


def _check(row: tuple[int, str, str], cwd: Path) -> str | None:
    line, example, command = row
    started = time.monotonic()
    code, output = _run(command, cwd)
    print(f"{time.monotonic() - started:5.1f} s  exit {code}  {command}")
    if code != 0 or "Traceback" in output:
        return f"README line {line} ({example}): `{command}` exit {code}:\n{output[-2000:]}"
    return None


@pytest.mark.slow
@pytest.mark.surfnet
@pytest.mark.timeout(1200)  # a hang guard: about 1 min of CPU, but a loaded machine is slower
def test_every_offline_example_runs_as_written(demo_run: DemoRun, tmp_path: Path) -> None:
    shutil.copytree(demo_run.out, tmp_path / "demo-out", symlinks=True)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows = [r for r in table_rows(OFFLINE_TITLE) if not r[2].startswith("liqmap demo ")]
    # the `liqmap demo ...` example is the session's demo itself (conftest `demo_run`)
    failures = []
    with ThreadPoolExecutor(WORKERS) as pool:
        for phase in _phases(rows):
            failures += [f for f in pool.map(lambda r: _check(r, tmp_path), phase) if f]
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"{len(rows)} examples: {now.ru_utime + now.ru_stime - cpu.ru_utime - cpu.ru_stime:.0f}"
          " s CPU in their processes")
    assert not failures, "\n\n".join(failures)


def test_serve_stops_cleanly_on_ctrl_c_as_soon_as_it_shows_its_url(tmp_path: Path) -> None:
    """A Ctrl-C right after the URL is printed, while uvicorn is still starting, stops the
    server with exit 0 (it used to be lost, leaving the server running, or end in a
    KeyboardInterrupt)."""
    (tmp_path / "store").mkdir()
    for _ in range(2):
        code, output = _until_ready(_shell("liqmap serve --data-dir store --port 0"), tmp_path,
                                    "liqmap serve: http")
        assert code == 0 and "Traceback" not in output, output
