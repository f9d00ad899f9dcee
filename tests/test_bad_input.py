"""Every command × every class of bad value: one line `Error: ...` naming the option and the
fix, a non-zero exit, no traceback, and nothing written or changed.

The option cases are built from the click command objects, so a command or option added later
is covered without editing this file: each numeric option gets non-finite, non-numeric and
out-of-range values from its declared bounds, each path option the wrong kind, a missing path
and an unwritable or missing folder, each choice an unknown value. `SEMANTIC` lists the cases
only the command body can see (file contents, the store, windows, settings files, a full disk);
extend it when a command learns a new way to fail.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from liqmap.cli import cli
from liqmap.cli.options import Number, PathParam, TimeZone
from liqmap.store import Store

from factories import minutes, snapshot

#: Words of which a good message holds at least one: it says what to do.
FIX_WORDS = ("give", "choose", "fix", "swap", "create", "write elsewhere", "free space", "pick",
             "run `liqmap", "check", "drop", "pass", "see `liqmap", "put every setting",
             "did you mean", "use ", "known keys")
#: Types that are checked by construction (our types) or by click itself (choices, text, flags).
CHECKED_TYPES = (Number, PathParam, TimeZone, click.Choice, click.types.StringParamType,
                 click.types.BoolParamType)
SUBPROCESS_ENV_DROP = ("LIQMAP_CONFIG", "LIQMAP_RPC_URL", "LIQMAP_DATA_DIR", "LIQMAP_INTERVAL")


@dataclass(frozen=True)
class Workspace:
    """Files every case may point at. `ro` is a read-only folder, `full` a nearly full disk
    (both None when this machine cannot mount them)."""

    root: Path
    store: Path
    empty_store: Path
    csv: Path
    binary: Path
    binary_folder: Path
    text: Path
    folder: Path
    npz: Path
    ro: Path | None
    full: Path | None


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir()
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, check=False)
    return done.returncode == 0


def _make_store(root: Path) -> Path:
    store = Store(str(root))
    for i, ts in enumerate(minutes("2026-11-23T12:00", 10)):
        store.write_snapshot("SOL", *snapshot(ts, 20, seed=i))
    return root


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("bad-input")
    store = _make_store(root / "store")
    (root / "empty-store").mkdir()
    csv = root / "log.csv"
    csv.write_text("liq_price,size_sol,t_bin\n150.5,2.0,2026-11-23T12:00:00Z\n")
    binary = root / "blob.csv"
    binary.write_bytes(bytes(range(256)) * 40)
    (root / "binary-folder").mkdir()
    (root / "binary-folder" / "sol_positions_log.csv").write_bytes(binary.read_bytes())
    text = root / "notes.txt"
    text.write_text("not a directory\n")
    (root / "folder").mkdir()
    npz = root / "m.npz"
    result = CliRunner().invoke(cli, ["heatmap", "--data-dir", str(store), "--npz-out",
                                      str(npz), "--pmin", "100", "--pmax", "200"])
    assert result.exit_code == 0, result.output
    ro, full = root / "ro", root / "full"
    ro_ok = _mount_tmpfs(ro, "ro,size=64k")
    full_ok = _mount_tmpfs(full, "size=64k")
    if full_ok:
        (full / "filler").write_bytes(b"\0" * (60 << 10))
    yield Workspace(root, store, root / "empty-store", csv, binary, root / "binary-folder",
                    text, root / "folder", npz, ro if ro_ok else None, full if full_ok else None)
    for mounted, ok in ((ro, ro_ok), (full, full_ok)):
        if ok:
            subprocess.run(["umount", str(mounted)], check=False)


def tree_digest(root: Path) -> str:
    """Names and contents of every file under `root` (mount points included)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


# ------------------------------------------------------------------ cases from the commands
def all_commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(cli)
    found = []
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        found.append((name, command))
    return found


def bad_numbers(param_type: Number) -> list[tuple[str, str]]:
    """(class, value) pairs outside what `param_type` accepts."""
    b = param_type.bounds
    cases = [("non-finite", "nan"), ("non-finite", "inf"), ("non-finite", "-inf"),
             ("overflow", "1e999"), ("wrong type", "abc"), ("wrong type", "true"),
             ("empty", "")]
    if b.low is not None:
        cases.append(("below range", f"{b.low - 1:g}"))
        if b.low_open:
            cases.append(("zero" if b.low == 0 else "at open bound", f"{b.low:g}"))
        if b.low > 0:
            cases.append(("negative", "-1"))
    if b.high is not None:
        cases.append(("above range", f"{b.high + 1:g}"))
        if b.high_open:
            cases.append(("at open bound", f"{b.high:g}"))
    if b.whole:
        cases.append(("non-integer", f"{(b.low or 0) + 1.5:g}"))
    return cases


def bad_paths(param_type: PathParam, ws: Workspace) -> list[tuple[str, str]]:
    kind, mode = param_type.kind, param_type.mode
    cases: list[tuple[str, str]] = []
    if kind == "file":
        cases.append(("dir for file", str(ws.folder)))
    else:
        cases.append(("file for dir", str(ws.text)))
    if mode == "read":
        cases.append(("missing path", str(ws.root / "no-such-thing")))
    if mode == "write":
        name = "out.png" if kind == "file" else "out"
        if kind == "file":  # output folders are created with their parents
            cases.append(("missing folder", str(ws.root / "no-such-folder" / name)))
        cases.append(("file as folder", str(ws.text / name)))
        if ws.ro is not None:
            cases.append(("unwritable folder", str(ws.ro / name)))
    return cases


def bad_values(param: click.Parameter, ws: Workspace) -> list[tuple[str, str]]:
    t = param.type
    if isinstance(t, Number):
        return bad_numbers(t)
    if isinstance(t, PathParam):
        return bad_paths(t, ws)
    if isinstance(t, TimeZone):
        return [("unknown tz", "Mars/Phobos"), ("unknown tz", "asia/hong_kong")]
    if isinstance(t, click.Choice):
        return [("unknown choice", "no-such-choice")]
    return []


def valid_value(param: click.Parameter, ws: Workspace) -> str:
    """A value that parses, for a required parameter that is not under test."""
    t = param.type
    if isinstance(t, PathParam):
        if t.mode == "read":
            return str(ws.csv if t.kind == "file" else ws.folder)
        return str(ws.root / ("out.csv" if t.kind == "file" else "out-dir"))
    if isinstance(t, Number):
        return f"{max(t.bounds.low or 1, 1):g}"
    if isinstance(t, click.Choice):
        return str(t.choices[0])
    return "x"


def base_args(command: click.Command, skip: click.Parameter, ws: Workspace) -> list[str]:
    """Every required parameter but `skip`, with a valid value."""
    args: list[str] = []
    for param in command.params:
        if param is skip or not param.required:
            continue
        value = valid_value(param, ws)
        args += [value] if isinstance(param, click.Argument) else [param.opts[0], value]
    return args


def option_cases(ws: Workspace) -> Iterator[tuple[str, list[str], str]]:
    """(case id, argv, the name the error must show) for every option of every command."""
    for name, command in all_commands():
        for param in command.params:
            for klass, value in bad_values(param, ws):
                if isinstance(param, click.Argument):
                    argv = [name, *base_args(command, param, ws), value]
                    shown = param.human_readable_name
                else:
                    argv = [name, *base_args(command, param, ws), param.opts[0], value]
                    shown = param.opts[0]
                label = klass if isinstance(param.type, PathParam) else f"{klass} {value!r}"
                yield f"{name} {shown} {label}", argv, shown


# ------------------------------------------------------------------ cases in the command body
Case = tuple[str, Callable[[Workspace], list[str] | None], str]


def _toml(ws: Workspace, name: str, text: str | bytes) -> str:
    path = ws.root / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


def _full(ws: Workspace, name: str) -> str | None:
    return None if ws.full is None else str(ws.full / name)


def _with_full(make: Callable[[Workspace, str], list[str]], name: str
               ) -> Callable[[Workspace], list[str] | None]:
    def argv(ws: Workspace) -> list[str] | None:
        target = _full(ws, name)
        return None if target is None else make(ws, target)
    return argv


SEMANTIC: list[Case] = [
    # settings files: strict schema
    ("toml interval inf", lambda ws: ["--config", _toml(ws, "a.toml", "interval = inf\n"),
                                      "collect", "--once"], "interval"),
    ("toml interval nan", lambda ws: ["--config", _toml(ws, "b.toml", "interval = nan\n"),
                                      "collect", "--once"], "interval"),
    ("toml boolean as number", lambda ws: ["--config", _toml(ws, "c.toml", "timeout = true\n"),
                                           "collect", "--once"], "timeout"),
    ("toml misspelt key", lambda ws: ["--config", _toml(ws, "d.toml", 'rpc_ulr = "http://a"\n'),
                                      "collect", "--once"], "did you mean 'rpc_url'"),
    ("toml unknown table", lambda ws: ["--config", _toml(ws, "e.toml", "[rpc]\nurl = 1\n"),
                                       "status", "--data-dir", str(ws.store)], "'rpc'"),
    ("toml key outside [liqmap]", lambda ws: [
        "--config", _toml(ws, "f.toml", "[liqmap]\ninterval = 60\n[other]\nx = 1\n"),
        "collect", "--once"], "outside [liqmap]"),
    ("toml string as number", lambda ws: ["--config", _toml(ws, "g.toml", 'max_retries = "x"\n'),
                                          "collect", "--once"], "max_retries"),
    ("toml negative retries", lambda ws: ["--config", _toml(ws, "h.toml", "max_retries = -1\n"),
                                          "collect", "--once"], "max_retries"),
    ("toml non-integer interval", lambda ws: [
        "--config", _toml(ws, "i.toml", "interval = 1.5\n"), "collect", "--once"], "interval"),
    ("toml data_dir is a file", lambda ws: [
        "--config", _toml(ws, "j.toml", f'data_dir = "{ws.text}"\n'), "status"], "data_dir"),
    ("toml binary", lambda ws: ["--config", _toml(ws, "k.toml", bytes(range(256))), "status"],
     "not a text file"),
    ("toml invalid", lambda ws: ["--config", _toml(ws, "l.toml", "interval = = 1\n"), "status"],
     "not valid TOML"),
    ("rpc url does not parse", lambda ws: [
        "collect", "--once", "--data-dir", str(ws.root / "c-store"), "--rpc-url",
        "https://rpc.example:xyz/?api-key=SECRET"], "does not parse"),
    ("toml unknown market", lambda ws: ["--config", _toml(ws, "m.toml", 'markets = "XRP"\n'),
                                        "collect", "--once"], "XRP"),
    # binary files where a CSV or npz is expected
    ("import binary csv", lambda ws: ["import-legacy", str(ws.binary), "--data-dir",
                                      str(ws.root / "new-store")], "not a text file"),
    ("heatmap binary folder csv", lambda ws: ["heatmap", "--folder", str(ws.binary_folder),
                                              "--out", str(ws.root / "h.png")], "not a text file"),
    ("heatmap binary price csv", lambda ws: [
        "heatmap", "--folder", str(_legacy_folder(ws)), "--price-csv", str(ws.binary),
        "--out", str(ws.root / "h.png")], "price CSV"),
    ("backtest binary hedge log", lambda ws: [
        "backtest", "--heatmap", str(ws.npz), "--hedge-log", str(ws.binary), "--out-dir",
        str(ws.root / "bt")], "hedge log"),
    ("backtest binary npz", lambda ws: ["backtest", "--heatmap", _binary_npz(ws), "--out-dir",
                                        str(ws.root / "bt")], "npz"),
    ("simulate binary price file", lambda ws: ["simulate", "--price-from", str(ws.binary),
                                               "--minutes", "1"], "price"),
    # stores that are missing, empty, or asked for a window they do not hold
    ("status missing store", lambda ws: ["status", "--data-dir", str(ws.root / "nope")],
     "no store at"),
    ("export missing store", lambda ws: ["export", "--data-dir", str(ws.root / "nope"),
                                         "--out", str(ws.root / "e.csv")], "no store at"),
    ("export empty store", lambda ws: ["export", "--data-dir", str(ws.empty_store),
                                       "--out", str(ws.root / "e.csv")], "no SOL positions"),
    ("export reversed window", lambda ws: [
        "export", "--data-dir", str(ws.store), "--out", str(ws.root / "e.csv"),
        "--t-start", "2026-11-23T12:05", "--t-end", "2026-11-23T12:00"], "swap them"),
    ("export window without data", lambda ws: [
        "export", "--data-dir", str(ws.store), "--out", str(ws.root / "e.csv"),
        "--t-start", "2020-01-01", "--t-end", "2020-01-02"], "no SOL positions"),
    ("export legacy source empty", lambda ws: [
        "export", "--data-dir", str(ws.store), "--source", "legacy", "--out",
        str(ws.root / "e.csv")], "no SOL legacy"),
    ("status reversed window", lambda ws: [
        "status", "--data-dir", str(ws.store), "--t-start", "2026-11-23T12:05", "--t-end",
        "2026-11-23T12:00"], "swap them"),
    ("heatmap reversed window", lambda ws: [
        "heatmap", "--data-dir", str(ws.store), "--t-start", "2026-11-23T12:05", "--t-end",
        "2026-11-23T12:00", "--out", str(ws.root / "h.png")], "swap them"),
    ("backtest reversed window", lambda ws: [
        "backtest", "--heatmap", str(ws.npz), "--t-start", "2026-11-23T12:05", "--t-end",
        "2026-11-23T12:00", "--out-dir", str(ws.root / "bt")], "swap them"),
    ("heatmap missing store", lambda ws: ["heatmap", "--data-dir", str(ws.root / "nope"),
                                          "--out", str(ws.root / "h.png")], "no store at"),
    ("levels missing store", lambda ws: ["levels", "--data-dir", str(ws.root / "nope")],
     "no store at"),
    ("levels empty store", lambda ws: ["levels", "--data-dir", str(ws.empty_store)],
     "no SOL snapshots"),
    ("compact missing store", lambda ws: ["compact", "--data-dir", str(ws.root / "nope")],
     "no store at"),
    ("heatmap bad time", lambda ws: ["heatmap", "--data-dir", str(ws.store), "--t-start",
                                     "yesterday-ish"], "--t-start"),
    ("heatmap window outside data", lambda ws: [
        "heatmap", "--data-dir", str(ws.store), "--t-start", "2020-01-01", "--t-end",
        "2020-01-01T01:00", "--out", str(ws.root / "h.png")], "no SOL snapshots"),
    ("heatmap huge window", lambda ws: [
        "heatmap", "--data-dir", str(ws.store), "--t-start", "1970-01-01", "--t-end",
        "2100-01-01", "--bin", "0.01", "--pmin", "1", "--pmax", "1000",
        "--out", str(ws.root / "h.png")], "--"),
    ("environment interval nan", lambda ws: ["collect", "--once"], "interval"),
    # a full disk
    ("heatmap png on a full disk", _with_full(lambda ws, out: [
        "heatmap", "--data-dir", str(ws.store), "--pmin", "100", "--pmax", "200", "--out", out],
        "h.png"), "No space left"),
    ("heatmap npz on a full disk", _with_full(lambda ws, out: [
        "heatmap", "--data-dir", str(ws.store), "--pmin", "100", "--pmax", "200", "--bin",
        "0.01", "--npz-out", out], "m.npz"), "No space left"),
    ("levels png on a full disk", _with_full(lambda ws, out: [
        "levels", "--data-dir", str(ws.store), "--pmin", "100", "--pmax", "200", "--out", out],
        "l.png"), "No space left"),
    ("export csv on a full disk", _with_full(lambda ws, out: [
        "export", "--data-dir", str(_big_store(ws)), "--out", out], "e.csv"), "No space left"),
    ("backtest outputs on a full disk", _with_full(lambda ws, out: [
        "backtest", "--heatmap", str(ws.npz), "--out-dir", out], "bt"), "No space left"),
]
ENV_CASES = {"environment interval nan": {"LIQMAP_INTERVAL": "nan"}}


def _binary_npz(ws: Workspace) -> str:
    path = ws.root / "blob.npz"
    if not path.exists():
        path.write_bytes(ws.binary.read_bytes())
    return str(path)


def _legacy_folder(ws: Workspace) -> Path:
    folder = ws.root / "legacy"
    if not folder.is_dir():
        folder.mkdir()
        (folder / "sol_positions_log.csv").write_bytes(ws.csv.read_bytes())
    return folder


def _big_store(ws: Workspace) -> Path:
    """A store whose CSV export is larger than the space left on the full disk."""
    root = ws.root / "big-store"
    if not root.is_dir():
        store = Store(str(root))
        for i, ts in enumerate(minutes("2026-11-23T12:00", 5)):
            store.write_snapshot("SOL", *snapshot(ts, 400, seed=i))
    return root


# ------------------------------------------------------------------ the checks
def run_cli(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, argv, env=env, prog_name="liqmap")
    return result.exit_code, result.output


def assert_clean(code: int, output: str, must_name: str) -> None:
    """Exit != 0, exactly one non-blank line: `Error: ...` naming `must_name` and a fix."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert code != 0, output
    assert "Traceback" not in output, output
    assert len(lines) == 1, output
    line = lines[0]
    assert line.startswith("Error: "), line
    assert "internal error" not in line, line
    assert must_name in line, (must_name, line)
    assert any(word in line for word in FIX_WORDS), line


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, ws: Workspace) -> None:
    for name in list(os.environ):
        if name.startswith("LIQMAP_") and name != "LIQMAP_NODE_MODULES":
            monkeypatch.delenv(name)
    monkeypatch.chdir(ws.root)


def _option_case_ids() -> list[str]:
    """Collection-time ids: the same generator over a placeholder workspace."""
    placeholder = Path("/nonexistent-bad-input")
    fake = Workspace(placeholder, placeholder, placeholder, placeholder, placeholder,
                     placeholder, placeholder, placeholder, placeholder, placeholder, placeholder)
    return [case_id for case_id, _, _ in option_cases(fake)]


OPTION_CASES = _option_case_ids()


@pytest.mark.parametrize("case_id", OPTION_CASES)
def test_bad_option_value(case_id: str, ws: Workspace, clean_env: None) -> None:
    cases = {cid: (argv, shown) for cid, argv, shown in option_cases(ws)}
    if case_id not in cases:  # unwritable-folder cases need a read-only mount
        pytest.skip("needs a read-only mount (root)")
    argv, shown = cases[case_id]
    before = tree_digest(ws.root)
    code, output = run_cli(argv)
    assert_clean(code, output, shown)
    assert tree_digest(ws.root) == before


@pytest.mark.parametrize(("case_id", "make_argv", "must_name"), SEMANTIC,
                         ids=[case[0] for case in SEMANTIC])
def test_bad_input_in_command(case_id: str, make_argv: Callable[[Workspace], list[str] | None],
                              must_name: str, ws: Workspace, clean_env: None) -> None:
    argv = make_argv(ws)
    if argv is None:
        pytest.skip("needs a size-limited tmpfs (root)")
    before = tree_digest(ws.root)
    code, output = run_cli(argv, env=ENV_CASES.get(case_id))
    assert_clean(code, output, must_name)
    assert tree_digest(ws.root) == before


def test_every_option_has_a_checked_type() -> None:
    """A new option with a plain float/int/path type would not be checked: harden() upgrades
    click's own types, and anything else must be added to CHECKED_TYPES on purpose."""
    for name, command in all_commands():
        for param in command.params:
            assert isinstance(param.type, CHECKED_TYPES), (name, param.name, param.type)


def test_every_command_has_cases() -> None:
    """Each registered command's numeric and path options appear in the table."""
    for name, command in all_commands():
        typed = [p for p in command.params if isinstance(p.type, Number | PathParam)]
        if typed:
            assert any(cid.startswith(f"{name} ") for cid in OPTION_CASES), name


def test_status_over_a_century_is_quick(ws: Workspace, clean_env: None) -> None:
    """A 1970-2100 window used to build 68 M timestamps and loop over them (a hang)."""
    done = subprocess.run(
        [sys.executable, "-m", "liqmap", "status", "--data-dir", str(ws.store), "--t-start",
         "1970-01-01", "--t-end", "2100-01-01"],
        capture_output=True, text=True, timeout=60, env=_subprocess_env(), check=False)
    assert done.returncode == 0, done.stderr
    assert "snapshots 10/68374081" in done.stdout
    assert "in 2 range(s)" in done.stdout


def _subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SUBPROCESS_ENV_DROP}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                         env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("argv", [
    ["collect", "--interval", "inf", "--once"],
    ["status", "--interval", "0"],
    ["demo", "--hours", "nan"],
    ["simulate", "--speed", "nan"],
    ["backtest", "--tz", "Mars/Phobos"],
])
def test_real_process_prints_one_line(argv: list[str], ws: Workspace) -> None:
    """The console entry point, not only CliRunner: stderr is one line, stdout empty."""
    done = subprocess.run([sys.executable, "-m", "liqmap", *argv], capture_output=True,
                          text=True, timeout=60, cwd=ws.root, env=_subprocess_env(), check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert_clean(done.returncode, done.stderr, argv[1])
